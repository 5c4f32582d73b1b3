"""helpers.train: the loop equals a hand-written loop, accumulation equals a larger batch, bad input fails."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.train import OPTIMIZER_NAMES, History, evaluate, fit, make_optimizer, train_epoch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: one thread is fastest, and immune to other processes competing for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g)
    y = x[:, :2].sum(dim=1, keepdim=True) + 0.1 * torch.randn(96, 1, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))
    return model, TensorDataset(x[:64], y[:64]), TensorDataset(x[64:], y[64:])


def test_fit_equals_a_hand_written_loop(problem):
    model, train, val = problem
    ours = copy.deepcopy(model)
    history = fit(
        ours,
        DataLoader(train, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(1)),
        F.mse_loss,
        torch.optim.Adam(ours.parameters(), lr=0.01),
        epochs=3,
        val_loader=DataLoader(val, batch_size=7),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = DataLoader(train, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(1))
    train_losses, val_losses = [], []
    for _ in range(3):
        model.train()
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        train_losses.append(total / 64)
        model.eval()
        with torch.no_grad():
            val_losses.append(F.mse_loss(model(val.tensors[0]), val.tensors[1]).item())
    for a, b in zip(ours.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert history.train_loss == pytest.approx(train_losses, rel=1e-6)
    assert history.val_loss == pytest.approx(val_losses, rel=1e-6)  # weighted by batch size: 7+7+7+7+4
    assert history.train_loss[-1] < history.train_loss[0]


def test_accumulating_four_batches_of_8_equals_one_batch_of_32(problem):
    model, train, _ = problem
    big, small = copy.deepcopy(model), copy.deepcopy(model)
    opt_big, opt_small = torch.optim.SGD(big.parameters(), lr=0.1), torch.optim.SGD(small.parameters(), lr=0.1)
    loss_big = train_epoch(big, DataLoader(train, batch_size=32), F.mse_loss, opt_big)
    loss_small = train_epoch(small, DataLoader(train, batch_size=8), F.mse_loss, opt_small, accumulation_steps=4)
    for a, b in zip(big.parameters(), small.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert loss_small == pytest.approx(loss_big, rel=1e-6)
    unaccumulated = copy.deepcopy(model)
    train_epoch(
        unaccumulated, DataLoader(train, batch_size=8), F.mse_loss, torch.optim.SGD(unaccumulated.parameters(), lr=0.1)
    )
    assert (unaccumulated[0].weight - big[0].weight).abs().max() > 1e-3  # 8 steps differ from 2 steps


def test_scheduler_steps_once_per_optimiser_step(problem):
    model, train, _ = problem
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    train_epoch(model, DataLoader(train, batch_size=8), F.mse_loss, optimizer, scheduler, accumulation_steps=2)
    assert scheduler.last_epoch == 4 and optimizer.param_groups[0]["lr"] == pytest.approx(1 / 5)


def test_evaluate_is_the_full_batch_loss_in_eval_mode_without_graph(problem):
    model, _, val = problem
    model.append(nn.Dropout(0.5))
    loss = evaluate(model, DataLoader(val, batch_size=5), F.mse_loss)
    assert not model.training
    with torch.no_grad():
        assert loss == pytest.approx(F.mse_loss(model(val.tensors[0]), val.tensors[1]).item(), rel=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_on_epoch_end_sees_the_growing_history(problem):
    model, train, val = problem
    seen = []
    fit(
        model,
        DataLoader(train, batch_size=32),
        F.mse_loss,
        torch.optim.SGD(model.parameters(), lr=0.05),
        3,
        val_loader=DataLoader(val, batch_size=32),
        on_epoch_end=lambda epoch, h: seen.append((epoch, len(h.train_loss), len(h.val_loss))),
    )
    assert seen == [(1, 1, 1), (2, 2, 2), (3, 3, 3)]


def test_make_optimizer_names_and_momentum():
    params = [nn.Parameter(torch.zeros(2))]
    for name in OPTIMIZER_NAMES:
        assert isinstance(make_optimizer(name, params, 0.1), torch.optim.Optimizer)
    assert make_optimizer("Momentum", params, 0.1).param_groups[0]["momentum"] == 0.9
    assert make_optimizer("SGD", params, 0.1).param_groups[0]["momentum"] == 0
    assert make_optimizer("Adam", params, 0.1, betas=(0.8, 0.9)).param_groups[0]["betas"] == (0.8, 0.9)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m, d: make_optimizer("Lion", m.parameters(), 0.1), ["SGD", "'Lion'"]),
        (lambda m, d: make_optimizer("Adam", m.parameters(), 0.0), ["positive", "0.0"]),
        (lambda m, d: fit(m, DataLoader(d), F.mse_loss, torch.optim.SGD(m.parameters(), 0.1), 0), ["epochs", "0"]),
        (lambda m, d: fit(m, d, F.mse_loss, torch.optim.SGD(m.parameters(), 0.1), 1), ["DataLoader", "TensorDataset"]),
        (
            lambda m, d: train_epoch(
                m, DataLoader(d), F.mse_loss, torch.optim.SGD(m.parameters(), 0.1), accumulation_steps=0
            ),
            ["accumulation_steps", "0"],
        ),
    ],
)
def test_bad_input_raises_value_error(problem, call, words):
    model, train, _ = problem
    with pytest.raises(ValueError) as info:
        call(model, train)
    for word in words:
        assert word in str(info.value)


def test_history_defaults_are_independent():
    a, b = History(), History()
    a.train_loss.append(1.0)
    assert b.train_loss == []
