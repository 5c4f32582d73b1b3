"""The command line's runs lose nothing and say nothing wrong (issue 18, items 1, 2 and 5): a folder that
already holds a run is refused unless --resume or --overwrite says what to do; --resume refuses, in one line,
settings that cannot continue the saved run and continues the cosine schedule over more --epochs; a checkpoint
without its entries or of another model gives one line; a diverged run stops at its first non-finite loss with
exit status 1 and keeps its last good checkpoint; metrics.json and the --json line are strict JSON."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from cli_helpers import run_cli, write_network
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.cli import main
from helpers.files import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from helpers.train import fit, masked_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--channels", "4,2,4", "--blocks", "1", "--kt", "2", "--input-len", "6", "--horizon", "2",
        "--batch-size", "16", "--threads", "1", "--json"]


def strict_json(text):
    """json.loads that refuses NaN and Infinity (which Python's json writes and reads by default)."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def one_error_line(err, *words):
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-epoch STGCN run on the small network: (data folder, run folder)."""
    tmp = tmp_path_factory.mktemp("runs")
    data = write_network(tmp / "net")
    try:
        status = main([str(a) for a in ["--data", data, "--epochs", "2", "--out", tmp / "run", *TINY]])
    except SystemExit as exc:
        status = exc.code
    assert status == 0
    return data, tmp / "run"


# --- 1. a second run into the same --out -----------------------------------------------------------------------
def test_a_second_run_into_a_used_out_is_refused_unless_overwrite(tmp_path, capsys):
    data = write_network(tmp_path / "net")
    out = tmp_path / "o"
    status, _, err = run_cli(["--data", data, "--epochs", "1", "--out", out, *TINY], capsys)
    assert status == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    status, stdout, err = run_cli(["--data", data, "--model", "persistence", "--out", out, *TINY], capsys)
    assert status == 2 and stdout == ""
    one_error_line(err, str(out), "already holds a run", "--resume", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    status, _, err = run_cli(["--data", data, "--out", out, "--resume", "--overwrite", *TINY], capsys)
    assert status == 2
    one_error_line(err, "--resume and --overwrite")
    # --overwrite replaces the run, and leaves none of the old run's files (a baseline writes no checkpoint)
    status, stdout, err = run_cli(["--data", data, "--model", "persistence", "--out", out, "--overwrite", *TINY],
                                  capsys)
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "predictions.png"]
    assert strict_json((out / "metrics.json").read_text())["model"] == "persistence"


def test_overwrite_keeps_the_old_run_when_the_arguments_are_bad(tmp_path, capsys):
    data = write_network(tmp_path / "net")
    out = tmp_path / "o"
    assert run_cli(["--data", data, "--model", "persistence", "--out", out, *TINY], capsys)[0] == 0
    status, _, err = run_cli(["--data", data, "--out", out, "--overwrite", *TINY, "--input-len", "500"], capsys)
    assert status == 2
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "predictions.png"]


# --- 2. --resume with other settings -----------------------------------------------------------------------------
@pytest.mark.parametrize("change, words", [
    (["--lr", "0.01"], ["--lr 0.001", "--lr 0.01"]),
    (["--batch-size", "8"], ["--batch-size 16", "--batch-size 8"]),
    (["--split", "0.6,0.2,0.2"], ["--split 0.7,0.1,0.2", "--split 0.6,0.2,0.2"]),
    (["--loss", "mae"], ["--loss mse", "--loss mae"]),
    (["--model", "lstm"], ["--model stgcn", "--model lstm"]),
    (["--channels", "4,4,4"], ["--channels 4,2,4", "--channels 4,4,4"]),
    (["--horizon", "1"], ["--horizon 2", "--horizon 1"]),
    (["--time-of-day"], ["no --time-of-day", "asks for --time-of-day"]),
    (["--seed", "1", "--per-node"], ["--seed 0", "--seed 1", "--per-node"]),
])
def test_resume_refuses_other_settings_in_one_line(trained, capsys, change, words):
    data, out = trained
    before = (out / "checkpoint.pt").read_bytes()
    status, stdout, err = run_cli(["--data", data, "--epochs", "3", "--out", out, "--resume", *TINY, *change],
                                  capsys)
    assert status == 2 and stdout == ""
    one_error_line(err, "--resume", "only --epochs, --patience", *words)
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_refuses_fewer_epochs_than_already_run(trained, capsys):
    data, out = trained
    status, _, err = run_cli(["--data", data, "--epochs", "1", "--out", out, "--resume", *TINY], capsys)
    assert status == 2
    one_error_line(err, "--epochs", "trained 2 epochs", "got 1")


def test_resume_with_more_epochs_continues_the_cosine_schedule(trained, capsys, tmp_path):
    """A 2-epoch run resumed to 4 epochs follows the cosine over 4 epochs from where it stands: the learning rate
    after epoch k is lr * (1 + cos(pi k / 4)) / 2 (it restarted before: [.., 5e-4, 1e-3] for epochs 3 and 4)."""
    data, trained_out = trained
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes((trained_out / "checkpoint.pt").read_bytes())
    status, stdout, err = run_cli(["--data", data, "--epochs", "4", "--out", out, "--resume", "--patience", "9",
                                   *TINY], capsys)
    assert status == 0, err
    assert strict_json(stdout.splitlines()[-1])["epochs_run"] == 4
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["epoch"] == 4 and ckpt["extra"]["args"]["epochs"] == 4
    lrs = ckpt["history"]["lr"]
    assert lrs[2:] == pytest.approx([1e-3 * (1 + math.cos(math.pi * k / 4)) / 2 for k in (3, 4)], abs=1e-9)


def test_resume_from_a_checkpoint_without_its_entries_is_one_line(tmp_path, capsys):
    data = write_network(tmp_path / "net")
    out = tmp_path / "o"
    out.mkdir()
    save_checkpoint({"format": CHECKPOINT_FORMAT, "epoch": 1}, out / "checkpoint.pt")  # no arguments, no model, ...
    status, _, err = run_cli(["--data", data, "--out", out, "--resume", *TINY], capsys)
    assert status == 2
    one_error_line(err, "--resume", "without its arguments")
    args = {"data": str(data), "model": "stgcn", "channels": [4, 2, 4], "blocks": 1, "kt": 2, "input_len": 6,
            "horizon": 2, "batch_size": 16}
    # arguments, nothing else
    save_checkpoint({"format": CHECKPOINT_FORMAT, "epoch": 1, "extra": {"args": args}}, out / "checkpoint.pt")
    status, _, err = run_cli(["--data", data, "--out", out, "--resume", *TINY, "--epochs", "2"], capsys)
    assert status == 2
    one_error_line(err, "resume_from", "model", "optimizer")


def small_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    y = x[:, :1] + 0.1 * torch.randn(64, 1, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=16)


def test_fit_resume_from_another_model_or_an_incomplete_checkpoint_is_one_value_error(tmp_path):
    loader = small_problem()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    fit(model, loader, F.mse_loss, torch.optim.Adam(model.parameters()), 1, checkpoint=tmp_path / "c.pt")
    other = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 1))
    with pytest.raises(ValueError, match="different model") as info:
        fit(other, loader, F.mse_loss, torch.optim.Adam(other.parameters()), 2, resume_from=tmp_path / "c.pt")
    assert "\n" not in str(info.value)
    ckpt = load_checkpoint(tmp_path / "c.pt")
    del ckpt["history"], ckpt["rng"]
    save_checkpoint(ckpt, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="without history, rng"):
        fit(model, loader, F.mse_loss, torch.optim.Adam(model.parameters()), 2, resume_from=tmp_path / "partial.pt")


def test_fit_resume_with_a_longer_cosine_follows_the_new_schedule(tmp_path):
    """fit(resume_from=...) with a CosineAnnealingLR built for more steps continues along the new cosine; with the
    same scheduler it is the exact resume of tests/test_train.py."""
    loader = small_problem()  # 4 batches per epoch
    torch.manual_seed(0)
    model = nn.Linear(6, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, loader, F.mse_loss, opt, 2, scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8),
        checkpoint=tmp_path / "c.pt")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, loader, F.mse_loss, opt, 6, resume_from=tmp_path / "c.pt",
                  scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=24))
    expected = [0.1 * (1 + math.cos(math.pi * 4 * k / 24)) / 2 for k in range(3, 7)]
    assert history.lr[2:] == pytest.approx(expected, abs=1e-12)


# --- 5. a diverged run -------------------------------------------------------------------------------------------
def test_a_diverged_run_exits_1_in_one_line_and_writes_no_metrics(tmp_path, capsys):
    data = write_network(tmp_path / "net")
    out = tmp_path / "o"
    status, stdout, err = run_cli(["--data", data, "--epochs", "3", "--out", out, "--lr", "1e6", *TINY], capsys)
    assert status == 1 and stdout == ""
    one_error_line(err, "training diverged: the loss is", "at epoch 1, step", "lower the learning rate",
                   "no checkpoint was written")
    assert list(out.iterdir()) == []


def poisoned_loss(name):
    """masked_loss(name) until validation has run once; NaN for training batches after that (epoch 2 diverges)."""
    base, validated = masked_loss(name), []

    def loss(pred, target):
        value = base(pred, target)
        if not torch.is_grad_enabled():
            validated.append(True)
        elif validated:
            value = value * math.nan
        return value

    return loss


def test_a_run_diverging_in_epoch_2_keeps_the_checkpoint_of_epoch_1(tmp_path, capsys, monkeypatch):
    data = write_network(tmp_path / "net")
    out = tmp_path / "o"
    monkeypatch.setattr("helpers.train.recipes.masked_loss", poisoned_loss)
    status, stdout, err = run_cli(["--data", data, "--epochs", "3", "--out", out, *TINY], capsys)
    assert status == 1 and stdout == ""
    one_error_line(err, "training diverged", "at epoch 2, step", f"{out / 'checkpoint.pt'} keeps epoch 1")
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and ckpt["stop_reason"] is None
    assert all(torch.isfinite(w).all() for w in ckpt["model"].values())
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]


def test_metrics_json_and_the_json_line_write_null_for_a_missing_number(tmp_path, capsys):
    """No target reaches --mape-min-target, so MAPE has nothing to average: null, never a bare NaN."""
    data = write_network(tmp_path / "net")
    out = tmp_path / "o"
    status, stdout, err = run_cli(["--data", data, "--model", "persistence", "--out", out,
                                   "--mape-min-target", "1e9", *TINY], capsys)
    assert status == 0, err
    assert "NaN" not in stdout.splitlines()[-1] and "NaN" not in (out / "metrics.json").read_text()
    for result in (strict_json(stdout.splitlines()[-1]), strict_json((out / "metrics.json").read_text())):
        assert result["metrics"]["mape"] == [None, None] and result["metrics"]["overall"]["mape"] is None
        assert result["metrics"]["mae"][0] > 0
    assert "nan" in stdout  # the table shows the missing number as nan


@pytest.mark.parametrize("argv, words", [
    (["--lr", "inf"], ["--lr", "positive finite float", "'inf'"]),
    (["--lr", "nan"], ["--lr", "'nan'"]),
    (["--mape-min-target", "nan"], ["--mape-min-target", "'nan'"]),
    (["--mape-min-target", "inf"], ["--mape-min-target", "'inf'"]),
    (["--mape-min-target", "-1"], ["--mape-min-target", "'-1'"]),
])
def test_non_finite_numbers_are_refused_before_anything_runs(tmp_path, capsys, argv, words):
    status, stdout, err = run_cli(["--data", "metro", "--model", "persistence", "--out", tmp_path / "o", *argv], capsys)
    assert status == 2 and stdout == ""
    one_error_line(err, *words)
    assert not (tmp_path / "o").exists()
