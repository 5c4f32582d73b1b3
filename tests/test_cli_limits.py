"""Absurd sizes, an unwritable --out and Ctrl-C get one line each, before anything is allocated or trained
(issue 18, item 8); progress shows in a log file as one line per epoch (issue 19); and the good behaviour
issue 18 lists at the top has a test each (the rest are named in the report: tests/test_train.py,
tests/test_files.py, tests/test_data_metro.py)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cli_helpers import run_cli, write_network
from torch.utils.data import DataLoader, TensorDataset

import helpers.cli
from helpers.files import load_checkpoint
from helpers.train import Callback, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]
TINY = ["--channels", "4,2,4", "--blocks", "1", "--kt", "2", "--input-len", "6", "--horizon", "2",
        "--batch-size", "16", "--threads", "1"]


def one_error_line(err, *words):
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err, err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_network(tmp_path_factory.mktemp("net") / "net")


@pytest.mark.parametrize("change,words", [
    (["--model", "lstm", "--hidden", "1000000"], ["--hidden 1000000", "GiB", "memory"]),
    (["--channels", "100000,16,100000"], ["--channels 100000,16,100000", "GiB"]),
    (["--batch-size", "100000000000000000000"], ["--batch-size", "training windows"]),
    (["--threads", str(2**31)], ["--threads", str(2**31)]),
])
def test_absurd_sizes_get_one_line_before_anything_is_allocated(data, tmp_path, capsys, change, words):
    status, out, err = run_cli(["--data", data, "--epochs", "1", "--out", tmp_path / "o", *TINY, *change], capsys)
    assert status == 2
    one_error_line(err, *words)
    assert not (tmp_path / "o").exists()  # nothing written either


def test_the_memory_estimate_lets_the_default_sizes_through(data, tmp_path, capsys):
    status, _, err = run_cli(["--data", data, "--epochs", "1", "--out", tmp_path / "o", "--model", "lstm",
                              "--hidden", "8", *TINY], capsys)
    assert status == 0, err


@pytest.mark.parametrize("where", ["below a file", "read-only"])
def test_an_unwritable_out_is_found_before_training(data, tmp_path, capsys, monkeypatch, where):
    if where == "below a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
    else:
        out = Path("/proc/self/run")  # a folder no one can create files in, not even root
    trained = []
    monkeypatch.setattr(helpers.cli, "train_forecaster", lambda *a, **k: trained.append(1))
    status, _, err = run_cli(["--data", data, "--epochs", "1", "--out", out, *TINY], capsys)
    assert status == 2 and not trained
    one_error_line(err, "--out", str(out))


class Interrupt(Callback):
    """Ctrl-C in the middle of epoch `epoch`."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_end(self, state):
        if state.epoch == self.epoch:
            raise KeyboardInterrupt


def test_ctrl_c_prints_one_line_exits_130_and_keeps_the_last_checkpoint(data, tmp_path, capsys, monkeypatch):
    original = helpers.cli.train_forecaster

    def with_interrupt(*args, callbacks=(), **kwargs):
        return original(*args, callbacks=[*callbacks, Interrupt(2)], **kwargs)

    monkeypatch.setattr(helpers.cli, "train_forecaster", with_interrupt)
    status, _, err = run_cli(["--data", data, "--epochs", "3", "--out", tmp_path / "o", *TINY], capsys)
    assert status == 130
    assert err.splitlines()[-1] == "interrupted; resume with --resume" and "Traceback" not in err
    assert load_checkpoint(tmp_path / "o" / "checkpoint.pt")["epoch"] == 1
    monkeypatch.setattr(helpers.cli, "train_forecaster", original)
    status, _, err = run_cli(["--data", data, "--epochs", "3", "--out", tmp_path / "o", "--resume", *TINY], capsys)
    assert status == 0, err
    assert load_checkpoint(tmp_path / "o" / "checkpoint.pt")["epoch"] == 3


def test_sigint_to_a_real_run(data, tmp_path):
    """The signal a terminal sends on Ctrl-C, to a separate process, after its first checkpoint."""
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "helpers.train", "--data", str(data), "--epochs", "400",
                             "--patience", "400", "--out", str(out), *TINY], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted; resume with --resume" and "Traceback" not in err
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] >= 1  # whole, and loadable with weights_only=True


# --- progress where stderr is not a terminal ----------------------------------------------------------------------
def small_fit(**kwargs):
    torch.manual_seed(0)
    x, y = torch.randn(40, 3), torch.randn(40, 1)
    model = torch.nn.Linear(3, 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    return fit(model, loader, F.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1), 3, val_loader=loader,
               **kwargs)


def test_progress_in_a_log_file_is_one_plain_line_per_epoch(capsys):
    small_fit(progress=True)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 3 and "\r" not in err, err  # no bar redrawn with carriage returns
    pattern = r"epoch (\d)/3: train loss \d+\.\d{4}, validation loss \d+\.\d{4}, \d+\.\d s, about \d+ s left"
    for k, line in enumerate(lines, start=1):
        match = re.fullmatch(pattern, line)
        assert match and int(match.group(1)) == k, line
    assert lines[-1].endswith("about 0 s left")


def test_progress_on_a_terminal_is_a_tqdm_bar(monkeypatch):
    from tqdm import tqdm

    from helpers.train.fit import _progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = _progress(3, 0)
    try:
        assert isinstance(bar, tqdm)
    finally:
        bar.close()


def test_progress_is_shown_by_the_main_process_only(capsys):
    from helpers.distributed import Runtime

    small_fit(progress=True, runtime=Runtime(torch.device("cpu"), rank=1, world_size=1))
    assert capsys.readouterr().err == ""


# --- the good behaviour at the top of issue 18 -------------------------------------------------------------------
def test_jupyterlab_binds_localhost_and_keeps_its_token():
    makefile = (ROOT / "Makefile").read_text()
    labs = [line for line in makefile.splitlines() if "jupyter lab" in line]
    assert labs
    for line in labs:
        assert "--ip=127.0.0.1" in line, line
        assert not re.search(r"token\s*=\s*(''|\"\"|\s|$)", line), line  # no empty token: a token is required
        assert "0.0.0.0" not in line and "disable_check_xsrf" not in line, line
