"""helpers.train: the loop equals a hand-written loop, accumulation equals a larger batch, bad input fails;
early stopping keeps the best weights; a resumed run equals an uninterrupted one; checkpoints (helpers.files)
are written atomically and read with weights_only=True; evaluate reports per-horizon errors in original units;
the command line (helpers.cli) trains, writes its files, and turns bad arguments or files into one error
line."""

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import run_cli, write_network
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.cli import default_out
from helpers.data import load_csv_folder, load_metro, make_splits, sliding_windows
from helpers.files import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from helpers.models import STGCN, STGCNConfig, baseline_forecast
from helpers.train import (
    OPTIMIZER_NAMES,
    Callback,
    History,
    evaluate,
    evaluate_loss,
    fit,
    make_optimizer,
    masked_loss,
    predict,
    train_epoch,
    train_forecaster,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
        DataLoader(train, batch_size=24, shuffle=True, generator=torch.Generator().manual_seed(1)),
        F.mse_loss,
        torch.optim.Adam(ours.parameters(), lr=0.01),
        epochs=3,
        val_loader=DataLoader(val, batch_size=7),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = DataLoader(train, batch_size=24, shuffle=True, generator=torch.Generator().manual_seed(1))  # 24+24+16
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


def test_scheduler_steps_once_per_optimizer_step(problem):
    model, train, _ = problem
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    train_epoch(model, DataLoader(train, batch_size=8), F.mse_loss, optimizer, scheduler, accumulation_steps=2)
    assert scheduler.last_epoch == 4 and optimizer.param_groups[0]["lr"] == pytest.approx(1 / 5)


class GradProbe(nn.Module):
    """Records, at every forward call, whether autograd was recording and whether the input needs a graph."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append((torch.is_grad_enabled(), x.requires_grad))
        return x


def test_evaluate_is_the_full_batch_loss_in_eval_mode_without_graph(problem):
    model, _, val = problem
    model.append(nn.Dropout(0.5))
    probe = GradProbe()
    model.insert(1, probe)  # after the first Linear: its output would need a graph if autograd were on
    loss = evaluate_loss(model, DataLoader(val, batch_size=5), F.mse_loss)
    assert type(loss) is float  # a number, not a tensor holding a graph
    assert probe.seen == [(False, False)] * 7  # 32 samples in batches of 5: no batch built a graph
    assert not model.training
    with torch.no_grad():
        assert loss == pytest.approx(F.mse_loss(model(val.tensors[0]), val.tensors[1]).item(), rel=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_predict_switches_to_eval_mode(problem):
    """A model left in training mode (dropout and BatchNorm active) forecasts as in evaluation mode."""
    _, _, val = problem
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
    model.train()
    model(torch.randn(64, 6) * 3 + 1)  # move BatchNorm's running statistics away from (0, 1)
    model.train()
    pred, target = predict(model, DataLoader(val, batch_size=5))
    assert not model.training
    with torch.no_grad():
        expected = model.eval()(val.tensors[0])
    torch.testing.assert_close(pred, expected)
    assert torch.equal(target, val.tensors[1])


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
    expected = {"SGD": torch.optim.SGD, "Momentum": torch.optim.SGD, "AdaGrad": torch.optim.Adagrad,
                "RMSProp": torch.optim.RMSprop, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
    assert set(OPTIMIZER_NAMES) == set(expected)
    for name in OPTIMIZER_NAMES:
        optimizer = make_optimizer(name, params, 0.1)
        assert type(optimizer) is expected[name], name  # exactly that class (AdamW is a subclass of Adam)
        assert optimizer.param_groups[0]["lr"] == 0.1
    assert make_optimizer("Momentum", params, 0.1).param_groups[0]["momentum"] == 0.9
    assert make_optimizer("SGD", params, 0.1).param_groups[0]["momentum"] == 0
    assert make_optimizer("Adam", params, 0.1, betas=(0.8, 0.9)).param_groups[0]["betas"] == (0.8, 0.9)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m, d: make_optimizer("Lion", m.parameters(), 0.1), ["SGD", "'Lion'"]),
        (lambda m, d: make_optimizer("Adam", m.parameters(), 0.0), ["lr", "(0, inf]", "0.0"]),
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


# --- losses, early stopping, checkpoints and resume -----------------------------------------------
def test_masked_loss_ignores_missing_targets():
    pred = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    target = torch.tensor([[1.5, float("nan"), 2.0], [float("nan"), 5.5, 8.0]])
    observed = ~torch.isnan(target)
    for kind, reference in [("mse", F.mse_loss), ("mae", F.l1_loss), ("huber", F.huber_loss)]:
        loss = masked_loss(kind)(pred, target)
        assert loss.item() == pytest.approx(reference(pred[observed], target[observed]).item())
    masked_loss("mse")(pred, target).backward()
    assert pred.grad[~observed].eq(0).all() and pred.grad[observed].ne(0).all()
    nothing = masked_loss("mse")(pred, torch.full_like(target, float("nan")))
    assert nothing.item() == 0.0
    with pytest.raises(ValueError, match="loss kind must be one of"):
        masked_loss("l3")


def noisy_problem(seed=0):
    """A model with dropout (uses the global RNG) and a shuffled loader with its own generator; the data are
    always the same, `seed` draws the initial weights and the shuffling."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 5, generator=g)
    y = x @ torch.randn(5, 2, generator=g) + 0.3 * torch.randn(80, 2, generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))
    train = DataLoader(TensorDataset(x[:60], y[:60]), batch_size=8, shuffle=True,
                       generator=torch.Generator().manual_seed(seed + 1))
    val = DataLoader(TensorDataset(x[60:], y[60:]), batch_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=6 * len(train))
    return model, train, val, optimizer, scheduler


class Crash(Callback):
    """Raise (like a power cut) at the end of a given epoch, or in the middle of it."""

    def __init__(self, epoch, mid_epoch=False):
        self.epoch, self.mid_epoch = epoch, mid_epoch

    def on_batch_end(self, state):
        if self.mid_epoch and state.epoch == self.epoch and state.step % 8 == 3:
            raise KeyboardInterrupt("crash")

    def on_epoch_end(self, state):
        if state.epoch == self.epoch:
            raise KeyboardInterrupt("crash")


def same_history(a: History, b: History) -> bool:
    return (a.train_loss, a.val_loss, a.lr, a.best_epoch, a.stop_reason) == \
        (b.train_loss, b.val_loss, b.lr, b.best_epoch, b.stop_reason)


@pytest.mark.parametrize("mid_epoch", [False, True], ids=["after-epoch-2", "during-epoch-3"])
def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path, mid_epoch):
    model, train, val, optimizer, scheduler = noisy_problem()
    whole = fit(model, train, F.mse_loss, optimizer, 6, val_loader=val, scheduler=scheduler,
                checkpoint=tmp_path / "whole.pt", restore_best=False)

    model2, train2, val2, optimizer2, scheduler2 = noisy_problem()
    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(model2, train2, F.mse_loss, optimizer2, 6, val_loader=val2, scheduler=scheduler2, checkpoint=path,
            callbacks=[Crash(3 if mid_epoch else 2, mid_epoch)], restore_best=False)
    assert load_checkpoint(path)["epoch"] == 2
    # A fresh process would rebuild everything from scratch, with other random states.
    model3, train3, val3, optimizer3, scheduler3 = noisy_problem(seed=5)
    torch.manual_seed(123)
    resumed = fit(model3, train3, F.mse_loss, optimizer3, 6, val_loader=val3, scheduler=scheduler3,
                  checkpoint=path, resume_from=path, restore_best=False)
    assert same_history(resumed, whole) and len(resumed.train_loss) == 6
    for a, b in zip(model.state_dict().values(), model3.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert optimizer3.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_resume_needs_the_same_set_up(tmp_path):
    model, train, val, optimizer, scheduler = noisy_problem()
    fit(model, train, F.mse_loss, optimizer, 1, scheduler=scheduler, checkpoint=tmp_path / "c.pt")
    model, train, val, optimizer, _ = noisy_problem()
    with pytest.raises(ValueError, match="with a scheduler, this run has none"):
        fit(model, train, F.mse_loss, optimizer, 2, resume_from=tmp_path / "c.pt")
    with pytest.raises(FileNotFoundError, match="expected a file"):
        fit(model, train, F.mse_loss, optimizer, 2, resume_from=tmp_path / "missing.pt")


def test_early_stopping_keeps_the_best_weights():
    model, train, val, optimizer, _ = noisy_problem()
    seen = {}
    history = fit(model, train, F.mse_loss, make_optimizer("SGD", model.parameters(), 0.3), 30, val_loader=val,
                  patience=2, on_epoch_end=lambda epoch, h: seen.update({epoch: copy.deepcopy(model.state_dict())}))
    best = history.best_epoch
    assert history.val_loss[best - 1] == min(history.val_loss)
    assert len(history.train_loss) == best + 2 < 30  # stopped two epochs after the best one
    assert history.stop_reason.startswith(f"early stopping at epoch {best + 2}: no improvement for 2 epochs")
    for k, v in model.state_dict().items():
        assert torch.equal(v, seen[best][k])  # the best epoch's weights are back
    assert evaluate_loss(model, val, F.mse_loss) == pytest.approx(history.val_loss[best - 1], rel=1e-6)


def test_callbacks_see_every_batch_and_can_stop():
    class StopAfter(Callback):
        def __init__(self):
            self.calls = []

        def on_fit_start(self, state):
            self.calls.append("start")

        def on_batch_end(self, state):
            self.calls.append(state.step)
            if state.step == 10:
                state.stop_reason = "enough"

        def on_fit_end(self, state):
            self.calls.append("end")

    model, train, val, optimizer, _ = noisy_problem()
    cb = StopAfter()
    history = fit(model, train, F.mse_loss, optimizer, 5, callbacks=[cb])
    assert cb.calls == ["start", *range(1, 11), "end"]  # 8 batches per epoch: stopped in epoch 2
    assert len(history.train_loss) == 2 and history.stop_reason == "enough"


def test_checkpoint_loads_with_weights_only_and_refuses_code(tmp_path):
    model, train, val, optimizer, scheduler = noisy_problem()
    fit(model, train, F.mse_loss, optimizer, 1, scheduler=scheduler, checkpoint=tmp_path / "c.pt",
        extra={"config": {"blocks": [[8, 4, 8]], "name": "x"}})
    ckpt = torch.load(tmp_path / "c.pt", weights_only=True)  # plain torch, the strict loader: no error
    assert ckpt["extra"]["config"]["blocks"] == [[8, 4, 8]] and ckpt["history"]["train_loss"]
    save_checkpoint({"format": CHECKPOINT_FORMAT, "payload": Crash(1)}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="weights_only=True"):
        load_checkpoint(tmp_path / "evil.pt")
    save_checkpoint({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="expected format"):
        load_checkpoint(tmp_path / "other.pt")


def test_a_failed_write_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    path = save_checkpoint({"format": CHECKPOINT_FORMAT, "epoch": 1}, tmp_path / "c.pt")
    before = path.read_bytes()

    def broken_replace(src, dst):
        Path(dst).write_bytes(b"")  # a rename cannot half-happen; make sure we would notice if it were used
        raise OSError("disk full")

    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise OSError("disk full")  # after part of the bytes went out

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"format": CHECKPOINT_FORMAT, "epoch": 2}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"format": CHECKPOINT_FORMAT, "epoch": 2}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]
    assert load_checkpoint(path)["epoch"] == 1


# --- evaluate: per-horizon metrics in original units -------------------------------------------------
class Shift(nn.Module):
    """Predicts the last input step plus a constant, for every horizon step: (B, T, N, 1) -> (B, H, N)."""

    def __init__(self, horizon, shift):
        super().__init__()
        self.horizon, self.shift = horizon, shift

    def forward(self, x):
        return x[:, -1:, :, 0].expand(-1, self.horizon, -1) + self.shift


def test_evaluate_reports_masked_errors_per_horizon_in_original_units():
    g = torch.Generator().manual_seed(0)
    values = 50 + 10 * torch.randn(60, 4, 1, generator=g)
    values[50, 2, 0] = float("nan")
    splits = make_splits(values, input_len=4, output_len=2, fractions=(0.5, 0.2, 0.3))
    test = DataLoader(splits.test, batch_size=5)
    metrics = evaluate(Shift(2, 0.5), test, splits.scaler)
    # by hand: the forecast in original units is last value + 0.5 * std
    std, mean = splits.scaler.std[0], splits.scaler.mean[0]
    raw = values[splits.bounds[2][0]:, :, 0]
    x, y = sliding_windows(raw, 4, 2)
    x = x.nan_to_num(nan=mean.item())  # make_splits fills a missing input with the training mean
    err = (x[:, -1:] + 0.5 * std - y)
    ok = ~torch.isnan(err)
    assert metrics["step"] == [1, 2]
    for k in range(2):
        e = err[:, k][ok[:, k]]
        assert metrics["mae"][k] == pytest.approx(e.abs().mean().item(), rel=1e-4)
        assert metrics["rmse"][k] == pytest.approx(e.square().mean().sqrt().item(), rel=1e-4)
    assert metrics["overall"]["rmse"] == pytest.approx(err[ok].square().mean().sqrt().item(), rel=1e-4)
    assert mean > 0  # (the scaler really shifted the data, so original units differ from scaled ones)


# --- the command line --------------------------------------------------------------------------------
SMALL_STGCN = ["--channels", "4,2,4", "--blocks", "1", "--kt", "2", "--input-len", "6", "--horizon", "2",
               "--predict-change", "--batch-size", "16", "--threads", "1",
               "--clock", "off", "--forecast", "level"]  # the counts alone, as independent_metrics rebuilds it


def independent_metrics(data: Path, ckpt: dict, device: str = "cpu") -> dict:
    """The test errors of a SMALL_STGCN run's checkpoint, computed without the command line: the model rebuilt
    from its settings with the kept (best) weights, the test windows, errors in the data's own units."""
    ds = load_csv_folder(data)
    splits = make_splits(ds, input_len=6, output_len=2)
    config = STGCNConfig(num_nodes=ds.num_nodes, input_len=6, horizon=2, blocks=((4, 2, 4),), Kt=2,
                         predict_change=True)
    model = STGCN(config, ds.adjacency)
    model.load_state_dict(ckpt["best_model"])
    return evaluate(model.to(device), DataLoader(splits.test, batch_size=7), splits.scaler,
                    device=torch.device(device))


def test_cli_trains_and_writes_checkpoint_metrics_and_plot(tmp_path, capsys):
    data = write_network(tmp_path / "net")
    out = tmp_path / "run"
    status, stdout, err = run_cli(["--data", data, "--epochs", "2", "--out", out, "--json", *SMALL_STGCN], capsys)
    assert status == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["model"] == "stgcn" and result["epochs_run"] == 2 and result["metrics"]["step"] == [1, 2]
    assert "step  minutes" in stdout and "\n   2      120 " in stdout  # the per-horizon table, 60-minute steps
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json", "predictions.png"]
    assert json.loads((out / "metrics.json").read_text()) == result
    assert (out / "predictions.png").read_bytes()[:4] == b"\x89PNG"
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["epoch"] == 2 and ckpt["extra"]["model"] == "stgcn"
    expected = independent_metrics(data, ckpt)  # the reported errors are those of the saved model
    for key in ("mae", "rmse", "mape"):
        assert result["metrics"][key] == pytest.approx(expected[key], rel=1e-4), key
        assert result["metrics"]["overall"][key] == pytest.approx(expected["overall"][key], rel=1e-4), key
    # --resume with more epochs continues the same run
    status, stdout, err = run_cli(["--data", data, "--epochs", "3", "--out", out, "--json", "--resume",
                                   *SMALL_STGCN], capsys)
    assert status == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["epochs_run"] == 3


@pytest.mark.parametrize("model", ["lstm", "persistence", "ha"])
def test_cli_other_models(tmp_path, capsys, model):
    data = write_network(tmp_path / "net")
    status, stdout, err = run_cli(["--data", data, "--model", model, "--epochs", "1", "--out", tmp_path / "o",
                                   "--json", "--hidden", "8", "--input-len", "6", "--horizon", "2",
                                   "--threads", "1"], capsys)
    assert status == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["model"] == model and len(result["metrics"]["mae"]) == 2
    assert (result["parameters"] > 0) == (model == "lstm")


def test_cli_persistence_on_los_loop_matches_the_published_figure(shared_dir, tmp_path, capsys):
    """The README of the data quotes persistence at 6.42 / 3.56 (RMSE / MAE) on the 3rd step, 70/10/20 split."""
    status, stdout, err = run_cli(["--data", "los-loop", "--data-root", shared_dir / "data" / "los-loop",
                                   "--model", "persistence", "--horizon", "3", "--out", tmp_path / "o", "--json"],
                                  capsys)
    assert status == 0, err
    metrics = json.loads(stdout.strip().splitlines()[-1])["metrics"]
    assert metrics["rmse"][2] == pytest.approx(6.42, abs=0.005) and metrics["mae"][2] == pytest.approx(3.56, abs=0.005)


def corrupt_los_loop(folder: Path) -> Path:
    """Los-loop files with the wrong bytes: refused by their checksum (and nothing is downloaded)."""
    folder.mkdir()
    for name in ("los_speed.csv", "los_adj.csv"):
        (folder / name).write_text("1,2\n3,4\n")
    return folder


def bad_series(folder: Path) -> Path:
    write_network(folder)
    text = (folder / "series.csv").read_text().splitlines()
    text[5] = text[5].rsplit(",", 1)[0] + ",fast"
    (folder / "series.csv").write_text("\n".join(text) + "\n")
    return folder


def wrong_adjacency(folder: Path) -> Path:
    write_network(folder)
    (folder / "adjacency.csv").write_text("0,1\n1,0\n")
    return folder


@pytest.mark.parametrize("make_argv, words", [
    (lambda d, tmp: ["--out", tmp / "o"], ["--data"]),
    (lambda d, tmp: ["--data", tmp / "nowhere", "--out", tmp / "o"], ["--data", "no such folder"]),
    (lambda d, tmp: ["--data", d, "--out", tmp / "o", "--epochs", "0"], ["--epochs", "positive int", "'0'"]),
    (lambda d, tmp: ["--data", d, "--out", tmp / "o", "--model", "gru"], ["--model", "'gru'"]),
    (lambda d, tmp: ["--data", d, "--out", tmp / "o", "--split", "0.5,0.5"], ["three positive fractions"]),
    (lambda d, tmp: ["--data", d, "--out", tmp / "o", "--input-len", "500"], ["input_len + output_len"]),
    (lambda d, tmp: ["--data", d, "--out", tmp / "o", "--input-len", "4", "--kt", "3"], ["input_len=4 is too short"]),
    (lambda d, tmp: ["--data", d, "--out", tmp / "o", "--resume"], ["--resume", "checkpoint.pt"]),
    (lambda d, tmp: ["--data", d, "--out", d / "series.csv"], ["--out", "expected a folder"]),
    (lambda d, tmp: ["--data", bad_series(tmp / "bad"), "--out", tmp / "o"], ["series.csv", "row 6", "'fast'"]),
    (lambda d, tmp: ["--data", wrong_adjacency(tmp / "bad"), "--out", tmp / "o"], ["adjacency.csv", "4 x 4"]),
    (lambda d, tmp: ["--data", write_network(tmp / "bare", timestamps=False), "--out", tmp / "o"],
     ["interval_minutes"]),
    (lambda d, tmp: ["--data", "los-loop", "--data-root", corrupt_los_loop(tmp / "los"), "--out", tmp / "o"],
     ["los_speed.csv", "SHA-256", "root="]),
])
def test_cli_bad_arguments_and_files_give_one_error_line_and_write_nothing(tmp_path, capsys, make_argv, words):
    data = write_network(tmp_path / "net")
    argv = make_argv(data, tmp_path)
    status, stdout, err = run_cli(argv, capsys)
    assert status == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: test_cli_trains_on_cuda runs instead")
def test_cli_cuda_is_refused_clearly_without_a_gpu(tmp_path, capsys):
    status, _, err = run_cli(["--data", write_network(tmp_path / "n"), "--out", tmp_path / "o", "--device", "cuda"],
                             capsys)
    assert status == 2 and "no CUDA GPU" in err and err.count("\n") == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cli_trains_on_cuda(tmp_path, capsys):
    """With a GPU, --device cuda trains there, and its errors are those of its checkpoint evaluated on the CPU."""
    data = write_network(tmp_path / "net")
    status, stdout, err = run_cli(["--data", data, "--epochs", "1", "--out", tmp_path / "o", "--json",
                                   "--device", "cuda", *SMALL_STGCN], capsys)
    assert status == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    expected = independent_metrics(data, load_checkpoint(tmp_path / "o" / "checkpoint.pt"))
    assert result["metrics"]["overall"]["mae"] == pytest.approx(expected["overall"]["mae"], rel=1e-3)


def test_cli_stops_early_with_patience(tmp_path, capsys):
    """--patience reaches training: with patience 1 the run stops at the first epoch without improvement."""
    data = write_network(tmp_path / "net")
    argv = ["--data", data, "--epochs", "25", "--out", tmp_path / "o", "--json", "--lr", "0.05", *SMALL_STGCN]
    status, stdout, err = run_cli([*argv, "--patience", "1"], capsys)
    assert status == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["epochs_run"] == result["best_epoch"] + 1 < 25
    assert result["stop_reason"].startswith(f"early stopping at epoch {result['epochs_run']}")


class MixSteps(nn.Module):
    """(B, T, N, 1) -> (B, H, N): a learned mix of the input steps, the same for every node."""

    def __init__(self, input_len, horizon):
        super().__init__()
        self.lin = nn.Linear(input_len, horizon)

    def forward(self, x):
        return self.lin(x[..., 0].transpose(1, 2)).transpose(1, 2)


def test_train_forecaster_decays_the_learning_rate_over_all_batches():
    """The cosine of train_forecaster spans every batch of every epoch: half the rate after epoch 1 of 2, zero
    after the last (not a cosine over a number of epochs counted as steps)."""
    values = 10 + torch.randn(120, 3, 1, generator=torch.Generator().manual_seed(0))
    splits = make_splits(values, input_len=4, output_len=2)
    torch.manual_seed(0)
    history = train_forecaster(MixSteps(4, 2), splits, epochs=2, batch_size=20, lr=0.01)
    assert 60 < len(splits.train) <= 80  # 4 batches per epoch (an odd count could hide a periodic mistake)
    assert history.lr == pytest.approx([0.005, 0.0], abs=1e-9)


def test_baselines_on_metro_fill_missing_inputs_and_order_as_expected():
    """Metro has sensor outages: persistence repeats what a model sees (the training mean) where the last
    reading is missing, so its errors stay finite; HA beats persistence at 45 minutes on this data."""
    ds = load_metro()
    splits = make_splits(ds, 12, 3)
    assert torch.isnan(splits.test.inputs[:, -1, :, 0]).any()
    scores = {}
    for name in ("persistence", "ha"):
        pred, target = baseline_forecast(name, ds, splits)
        assert pred.shape == target.shape == (len(splits.test), 3, ds.num_nodes) and torch.isfinite(pred).all()
        scores[name] = (pred - target).abs().nanmean(dim=(0, 2))
    assert scores["persistence"][0] < scores["ha"][0] and scores["ha"][2] < scores["persistence"][2]


def test_plot_forecast_breaks_lines_at_time_gaps_and_checks_shapes():
    from matplotlib.figure import Figure

    from helpers.plots import plot_forecast

    times = np.datetime64("2025-03-03T22:00") + np.array([0, 15, 30, 465, 480], dtype="timedelta64[m]")
    ax = Figure().subplots()
    plot_forecast(torch.arange(5.0), {"model": torch.arange(5.0) + 1}, times, ax=ax, title="t")
    truth, model = ax.get_lines()
    assert np.isnan(truth.get_ydata()).sum() == 1 and len(truth.get_ydata()) == 6  # one break: overnight
    assert model.get_label() == "model" and ax.get_title() == "t"
    with pytest.raises(ValueError, match="expected shape"):
        plot_forecast(torch.arange(5.0), {"bad": torch.arange(4.0)}, ax=ax)
    with pytest.raises(ValueError, match="times: expected shape"):
        plot_forecast(torch.arange(5.0), {}, times[:3], ax=ax)


def test_cli_default_out_folder(tmp_path, monkeypatch, capsys):
    """Without --out the results go to runs/<data>-<model> under the working directory."""
    assert default_out("metro", "stgcn") == Path("runs/metro-stgcn")
    assert default_out(str(tmp_path / "my-net"), "lstm") == Path("runs/my-net-lstm")
    monkeypatch.chdir(tmp_path)
    status, _, err = run_cli(["--data", "metro", "--model", "persistence", "--horizon", "2", "--json"], capsys)
    assert status == 0, err
    assert sorted(p.name for p in (tmp_path / "runs/metro-persistence").iterdir()) == [
        "metrics.json", "predictions.png"]
