"""The teaching claims of notebook 05, checked on the shipped metro data with the notebook's settings.

Each test repeats one experiment of the notebook (same station, windows, model, seeds and
hyperparameters) and asserts what the notebook's text says about it.
"""

import json
import weakref
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.data import load_metro, make_splits
from helpers.metrics import masked_mae
from helpers.optim import SURFACES, adam_step, optimizer_paths
from helpers.speed import memory_breakdown
from helpers.train import fit, make_optimizer, warmup_factor
from helpers.widgets import EXPLORER_LRS, explorer_settings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "optimiser_sweeps.json"


@pytest.fixture(scope="module")
def metro_splits():
    metro = load_metro()
    return metro, make_splits(metro, input_len=12, output_len=1, per_node=True)


@pytest.fixture(scope="module")
def central(metro_splits):
    """Central's windows as in the notebook: 24 inputs (12 steps x inflow, outflow), next inflow, scaled."""
    metro, splits = metro_splits
    station = metro.node_names.index("Central")

    def as_dataset(part):
        x = part.inputs[:, :, station, :].nan_to_num(0.0).flatten(1)
        y = part.targets[:, :, station]
        keep = ~torch.isnan(y[:, 0])
        return TensorDataset(x[keep], y[keep])

    return splits, station, as_dataset(splits.train), as_dataset(splits.val), as_dataset(splits.test)


@pytest.fixture(scope="module")
def sweeps():
    return json.loads(RESULTS.read_text())


def make_forecaster(dropout=0.1):
    return nn.Sequential(nn.Linear(24, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 1))


def test_trained_forecaster_beats_persistence_on_the_test_set(central):
    splits, station, train_set, val_set, test_set = central
    torch.manual_seed(0)
    model = make_forecaster()
    loader = DataLoader(train_set, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    fit(model, loader, F.mse_loss, torch.optim.Adam(model.parameters(), lr=1e-3), 15)
    x, y = test_set.tensors
    model.eval()
    with torch.no_grad():
        forecast = model(x)

    def to_passengers(z):
        return z * splits.scaler.std[station, 0] + splits.scaler.mean[station, 0]

    mae_model = masked_mae(to_passengers(forecast)[:, None], to_passengers(y)[:, None])
    mae_persistence = masked_mae(to_passengers(x.view(-1, 12, 2)[:, -1, :1])[:, None], to_passengers(y)[:, None])
    assert mae_model < 0.85 * mae_persistence


def test_warmup_avoids_the_early_loss_blow_up_over_three_seeds(central):
    _, _, train_set, _, _ = central

    def step_losses(warmup_steps, seed, steps=150):
        torch.manual_seed(seed)
        model = make_forecaster()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_factor, warmup_steps=warmup_steps))
        loader = DataLoader(train_set, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))
        losses = []
        while len(losses) < steps:
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

    without = [step_losses(0, seed) for seed in range(3)]
    warmed = [step_losses(50, seed) for seed in range(3)]
    # Targets are z-scored, so predicting their mean scores about 1.
    assert all(run[:50].max() > 5 for run in without)  # "jumps far above that"
    assert all(run.max() < 3 for run in warmed)  # the whole run, not only the warmup
    assert any(run.max() > run[:50].max() for run in warmed)  # "can come after the warmup ends"
    late = [sum(run[100:].mean().item() for run in runs) / 3 for runs in (without, warmed)]
    assert late[0] < late[1]  # "the runs without warmup are even lower"


def spread(cell):
    return cell["min"], cell["max"]


def test_lr_scaling_claims_hold_in_the_results_file(central, sweeps):
    _, _, train_set, val_set, _ = central
    part = sweeps["lr_batch"]
    assert part["settings"]["train_windows"] == len(train_set)  # made from today's data and windows
    assert part["settings"]["val_windows"] == len(val_set)
    assert len(part["settings"]["seeds"]) >= 3 and "load_before" in sweeps["lr_batch_conditions"]
    cell = {(r["optimizer"], r["rule"], r["batch_size"]): r["val_mse"] for r in part["summary"]}
    assert cell["Adam", "none", 512]["mean"] > 3 * cell["Adam", "none", 32]["mean"]
    assert cell["Adam", "linear", 512]["max"] < cell["Adam", "sqrt", 512]["min"]  # ranges do not overlap
    for rule in ("sqrt", "linear"):
        assert cell["Momentum", rule, 512]["max"] < cell["Momentum", "none", 512]["min"]
        assert cell["Momentum", rule, 256]["mean"] > cell["Momentum", "none", 256]["mean"]
    low, high = spread(cell["Momentum", "sqrt", 512])
    assert low <= cell["Momentum", "linear", 512]["max"] and cell["Momentum", "linear", 512]["min"] <= high  # overlap


def test_rare_class_claims_hold_in_the_results_file(metro_splits, sweeps):
    _, splits = metro_splits
    part = sweeps["imbalance"]
    threshold = torch.nanquantile(splits.train.targets[:, 0, :], 0.99, dim=0)
    train_targets, test_targets = splits.train.targets[:, 0, :], splits.test.targets[:, 0, :]
    assert part["settings"]["train_samples"] == int((~torch.isnan(train_targets)).sum())
    assert part["settings"]["test_positives"] == int((test_targets > threshold).sum())
    rows = {r["remedy"]: r for r in part["summary"]}
    plain = rows["none"]["default"]
    assert plain["accuracy"]["mean"] - part["settings"]["always_no_test_accuracy"] < 0.005
    assert plain["recall"]["max"] < 0.2
    for remedy in ("class weights", "oversampling"):
        default = rows[remedy]["default"]
        assert default["recall"]["min"] > 0.6 and default["precision"]["max"] < 0.06
        assert default["f1"]["max"] < plain["f1"]["min"]
    for key in ("f1",):
        tuned = [spread(rows[r]["tuned"][key]) for r in rows]
        assert max(low for low, _ in tuned) <= min(high for _, high in tuned)  # all ranges overlap
    ap = [spread(rows[r]["average_precision"]) for r in rows]
    assert max(low for low, _ in ap) <= min(high for _, high in ap)


def test_a_tensor_total_keeps_activations_only_without_backward(central):
    _, _, train_set, _, _ = central
    torch.manual_seed(0)
    model = make_forecaster()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    loader = DataLoader(train_set, batch_size=64)

    def kept_bytes(backward):
        alive = []

        def pack(t):
            if t.untyped_storage().data_ptr() not in params:
                alive.append(weakref.ref(t))
            return t

        running = 0.0
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            for i, (x, y) in enumerate(loader, start=1):
                loss = F.mse_loss(model(x), y)
                if backward:
                    model.zero_grad()
                    loss.backward()
                running = running + loss
                if i == 20:
                    break
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                    for r in alive if (t := r()) is not None}
        return sum(storages.values())

    assert kept_bytes(True) < 0.01 * kept_bytes(False)


def test_accumulation_shrinks_only_the_activations(central):
    _, _, train_set, _, _ = central
    x, y = (t[:64].clone() for t in train_set.tensors)
    sizes = {}
    for batch in (64, 16):
        torch.manual_seed(0)
        net = make_forecaster(dropout=0.0)
        sizes[batch] = memory_breakdown(net, F.mse_loss, x[:batch].clone(), y[:batch].clone(),
                                        torch.optim.Adam(net.parameters(), lr=1e-3))
    big, small = sizes[64], sizes[16]
    assert (big.parameters, big.gradients, big.optimizer_state) == (small.parameters, small.gradients,
                                                                      small.optimizer_state)
    assert big.activations == pytest.approx(4 * small.activations, rel=0.05)


def test_explorer_defaults_as_the_notebook_describes():
    rosenbrock = SURFACES["Rosenbrock"]
    paths = optimizer_paths(rosenbrock, explorer_settings(["SGD", "Momentum", "Adam"], EXPLORER_LRS["Rosenbrock"]),
                            steps=rosenbrock.steps)
    final = {name: path.loss[-1].item() for name, path in paths.items()}
    assert final["Momentum"] < final["Adam"] < final["SGD"]
    shared = optimizer_paths(rosenbrock, explorer_settings(["SGD", "Momentum", "Adam"], 0.001), steps=rosenbrock.steps)
    assert max(shared, key=lambda name: shared[name].loss[-1].item()) == "Adam"  # "Adam used to end worst"
    bowl = SURFACES["ill-conditioned bowl"]
    settings = explorer_settings(["SGD", "Momentum", "Adam"], EXPLORER_LRS[bowl.name])
    exact = optimizer_paths(bowl, settings, steps=bowl.steps)
    noisy = optimizer_paths(bowl, settings, steps=bowl.steps, noise=1.0)
    assert all(noisy[name].loss[-1] > 10 * exact[name].loss[-1] for name in settings)
    for name in ("SGD", "Momentum"):  # "reach the minimum's neighbourhood quickly but keep jittering near it"
        distance = noisy[name].xy.norm(dim=1)  # the minimum is (0, 0)
        assert distance[:30].min() < 0.5 and distance[-20:].max() < 2.0
        last_y = noisy[name].xy[-20:, 1]
        assert (last_y > 0).any() and (last_y < 0).any()
    assert noisy["Adam"].xy[-1, 0] < exact["Adam"].xy[-1, 0] - 0.5  # "still on its way" from x = -4.5


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
