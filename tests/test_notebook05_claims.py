"""The teaching claims of notebook 05, checked on the shipped metro data with the notebook's settings.

Each test repeats one experiment of the notebook (same station, windows, model, seeds and
hyperparameters) and asserts what the notebook's text says about it.
"""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from helpers.data import load_metro, make_splits
from helpers.metrics import masked_mae
from helpers.optim import adam_step, optimizer_paths
from helpers.train import fit, make_optimizer, scaled_lr, warmup_factor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def central():
    """Central's windows as in the notebook: 24 inputs (12 steps x inflow, outflow), next inflow, scaled."""
    metro = load_metro()
    station = metro.node_names.index("Central")
    splits = make_splits(metro.values[:, [station]], input_len=12, output_len=1)

    def as_dataset(part):
        x = part.inputs.nan_to_num(0.0).flatten(1)
        y = part.targets.flatten(1)
        keep = ~torch.isnan(y[:, 0])
        return TensorDataset(x[keep], y[keep])

    return splits, as_dataset(splits.train), as_dataset(splits.val), as_dataset(splits.test)


def make_forecaster(dropout=0.1):
    return nn.Sequential(nn.Linear(24, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 1))


def test_trained_forecaster_beats_persistence_on_the_test_set(central):
    splits, train_set, val_set, test_set = central
    torch.manual_seed(0)
    model = make_forecaster()
    loader = DataLoader(train_set, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    fit(model, loader, F.mse_loss, torch.optim.Adam(model.parameters(), lr=1e-3), 15)
    x, y = test_set.tensors
    model.eval()
    with torch.no_grad():
        forecast = model(x)
    to_passengers = partial(splits.scaler.inverse_transform, channel=0)
    mae_model = masked_mae(to_passengers(forecast)[:, None], to_passengers(y)[:, None])
    mae_persistence = masked_mae(to_passengers(x.view(-1, 12, 2)[:, -1, :1])[:, None], to_passengers(y)[:, None])
    assert mae_model < 0.85 * mae_persistence


def test_warmup_avoids_the_early_loss_blow_up(central):
    _, train_set, _, _ = central

    def first_losses(warmup_steps, steps=50):
        torch.manual_seed(0)
        model = make_forecaster()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_factor, warmup_steps=warmup_steps))
        loader = DataLoader(train_set, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
        losses = []
        while len(losses) < steps:  # an epoch has 44 batches
            for x, y in loader:
                optimizer.zero_grad()
                loss = F.mse_loss(model(x), y)
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                if len(losses) == steps:
                    break
        return torch.tensor(losses)

    without, with_warmup = first_losses(0), first_losses(50)
    # Targets are z-scored, so predicting their mean scores about 1.
    assert without.max() > 5  # "jumps to about 9"
    assert with_warmup.max() < 1.5  # "never exceeds 1.3"


def test_both_scaling_rules_beat_a_fixed_lr_at_batch_512(central):
    _, train_set, val_set, _ = central
    val_loader = DataLoader(val_set, batch_size=256)

    def final_val(optimiser_name, base_lr, rule, batch_size=512):
        torch.manual_seed(0)
        model = make_forecaster()
        loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
        lr = scaled_lr(base_lr, 32, batch_size, rule)
        optimizer = make_optimizer(optimiser_name, model.parameters(), lr)
        return fit(model, loader, F.mse_loss, optimizer, 4, val_loader=val_loader).val_loss[-1]

    for optimiser_name, base_lr in [("Momentum", 0.01), ("Adam", 1e-3)]:
        fixed = final_val(optimiser_name, base_lr, "none")
        assert final_val(optimiser_name, base_lr, "sqrt") < fixed
        assert final_val(optimiser_name, base_lr, "linear") < fixed


def test_class_weights_and_oversampling_raise_recall_of_the_rare_class(central):
    _, train_set, _, test_set = central
    threshold = train_set.tensors[1].quantile(0.95)
    train_cls = TensorDataset(train_set.tensors[0], (train_set.tensors[1] > threshold).float())
    x_test, truth = test_set.tensors[0], (test_set.tensors[1] > threshold).float()
    labels = train_cls.tensors[1][:, 0]
    share = labels.mean().item()

    def recall_and_precision(remedy):
        torch.manual_seed(0)
        classifier = nn.Sequential(nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 1))
        g = torch.Generator().manual_seed(0)
        if remedy == "oversampling":
            weights = torch.where(labels > 0, 1 / share, 1 / (1 - share))
            loader = DataLoader(
                train_cls, batch_size=64, sampler=WeightedRandomSampler(weights, len(labels), generator=g)
            )
        else:
            loader = DataLoader(train_cls, batch_size=64, shuffle=True, generator=g)
        pos_weight = torch.tensor((1 - share) / share) if remedy == "class weights" else None
        loss_fn = partial(F.binary_cross_entropy_with_logits, pos_weight=pos_weight)
        fit(classifier, loader, loss_fn, torch.optim.Adam(classifier.parameters(), lr=1e-2), 5)
        classifier.eval()
        with torch.no_grad():
            flagged = (classifier(x_test) > 0).float()
        hits = (flagged * truth).sum()
        return (hits / truth.sum()).item(), (hits / flagged.sum()).item()

    plain_recall, plain_precision = recall_and_precision("none")
    for remedy in ("class weights", "oversampling"):
        recall, precision = recall_and_precision(remedy)
        assert recall > plain_recall and precision < plain_precision, remedy


def test_rmsprop_first_step_is_ten_times_the_learning_rate():
    """Notebook 05: RMSProp's first step is lr / sqrt(1 - alpha) = 10 lr per coordinate (no bias correction)."""
    paths = optimizer_paths("saddle", {"RMSProp": {"lr": 0.05}, "Adam": {"lr": 0.05}}, steps=1)
    for name, expected in [("RMSProp", 0.5), ("Adam", 0.05)]:
        step = (paths[name].xy[1] - paths[name].xy[0]).abs()
        torch.testing.assert_close(step, torch.full((2,), expected, dtype=torch.float64), rtol=1e-4, atol=0)


def test_adam_weight_decay_is_not_adamw():
    """Notebook 05: with Adam, L2 decay of a parameter with no loss gradient is rescaled to full-lr steps."""

    def second_parameter(name):  # the workbook's optimizers by name, as the notebook builds them
        p = nn.Parameter(torch.ones(2))
        optimizer = make_optimizer(name, [p], 0.01, weight_decay=0.1)
        for _ in range(100):
            optimizer.zero_grad()
            (10 * p[0]).backward()
            optimizer.step()
        return p[1].item()

    def second_parameter_by_hand(decoupled):  # the notebook's from-scratch update rule
        p, state = torch.ones(2), {}
        for _ in range(100):
            p = adam_step(p, torch.tensor([10.0, 0.0]), state, lr=0.01, weight_decay=0.1,
                          decoupled_weight_decay=decoupled)
        return p[1].item()

    adamw = second_parameter("AdamW")
    assert adamw == pytest.approx((1 - 0.01 * 0.1) ** 100, rel=1e-5)  # shrunk by 1 - lr * decay per step
    assert second_parameter("Adam") < adamw - 0.5  # decayed in steps of about lr, far faster
    assert second_parameter_by_hand(True) == pytest.approx(adamw, rel=1e-5)
    assert second_parameter_by_hand(False) == pytest.approx(second_parameter("Adam"), rel=1e-4, abs=1e-6)
