"""A 675-stop bus network trained from the command line, before and after a change (issue 19).

    .venv/bin/python benchmarks/large_network.py --before PATH [--runs 3] [--epochs 30]

PATH is a checkout of the workbook at the commit to compare with (e.g. `git worktree add PATH
COMMIT`); "after" is this tree, or the checkout given by --after. The network is
`graph_scaling.transit_network(675, 2.04)` (690 edges, average degree 2.04) with 744 hourly steps
(`transit_dataset`), written as a CSV folder.
Each run is what a user types, with stderr going to a file (not a terminal):

    python -m helpers.train --data DIR --model stgcn --epochs 30 --patience 30 --json

(--patience 30 so that every run trains all its epochs, whatever its validation curve). Runs
alternate before, after, before, ... so that a drift of the machine's load hits both; each records
wall seconds, user and system CPU seconds and peak resident memory of the process (os.wait4), the
load average before and after, the epochs run and the test MAE. --json turns the progress lines
off, so the sample of the plain per-epoch log comes from one more, untimed run of 3 epochs without
--json, stderr to a file (`--sample-only` redoes just that part of the results file).

Then, with the current code, what limits a training step next (`--skip-runs` measures only this):
- a profile of 3 steps of the command line's default STGCN on this network, by kind of operation;
- the floating-point operations of one step (torch.utils.flop_counter; a sparse operator's products
  counted by their stored entries), and the rate of one large float32 matrix product here: their
  ratio is the time of a step that did nothing but arithmetic at that rate, a floor for this model
  on this machine;
- the temporal convolution of the second block, forward and backward, as `TemporalConv` and as
  torch's conv2d; and a step with and without `helpers.speed.keep_freed_memory` (each in a fresh
  process, since that setting lasts for the process).
Writes benchmarks/results/large_network.json (atomically). Times are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from graph_scaling import transit_dataset, transit_network  # noqa: E402
from torch import nn  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from helpers.data.csv_folder import save_csv_folder  # noqa: E402
from helpers.files import write_atomic  # noqa: E402
from helpers.models import STGCN, STGCNConfig, TemporalConv  # noqa: E402
from helpers.speed import keep_freed_memory, median_seconds  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "large_network.json"
NODES, DEGREE = 675, 2.04
#: The command line's STGCN on this data: 4 input channels (the value and the "time+day" clock of
#: --clock auto on hourly data), head width 64 (--hidden), batch 32, 12 steps in, 3 out.
IN_CHANNELS, HIDDEN, BATCH = 4, 64, 32


def commit_of(path: Path) -> str:
    out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def one_run(checkout: Path, data: Path, epochs: int, log: Path) -> dict:
    """One command-line training run in `checkout`; stderr to `log`."""
    with tempfile.TemporaryDirectory() as out, open(log, "w") as err:
        command = [sys.executable, "-m", "helpers.train", "--data", str(data), "--model", "stgcn",
                   "--epochs", str(epochs), "--patience", str(epochs), "--out", out, "--json"]
        load_before = os.getloadavg()
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=checkout, stdout=subprocess.PIPE, stderr=err, text=True)
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} in {checkout} failed ({status}):\n{log.read_text()[-2000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"wall_seconds": round(wall, 2), "user_seconds": round(usage.ru_utime, 2),
            "system_seconds": round(usage.ru_stime, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "epochs_run": result["epochs_run"], "train_seconds": result["train_seconds"],
            "test_mae": round(result["metrics"]["overall"]["mae"], 4)}


def sample_log(checkout: Path, data: Path, epochs: int = 3) -> dict:
    """The stderr of a run without --json, which a log file (not a terminal) receives."""
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-m", "helpers.train", "--data", str(data), "--model", "stgcn",
                               "--epochs", str(epochs), "--out", out], cwd=checkout,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    return {"command": f"python -m helpers.train --data DIR --model stgcn --epochs {epochs} --out OUT 2> log",
            "commit": commit_of(checkout), "log": done.stderr.splitlines()}


def summary(runs: list[dict]) -> dict:
    def stats(key):
        values = [r[key] for r in runs]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return {key: stats(key) for key in ("wall_seconds", "train_seconds", "user_seconds", "system_seconds",
                                        "peak_rss_mib", "test_mae")}


# --- what limits a step next -------------------------------------------------------------------------
def default_model() -> tuple[STGCN, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    config = STGCNConfig(num_nodes=NODES, in_channels=IN_CHANNELS, hidden_channels=HIDDEN)
    model = STGCN(config, transit_network(NODES, DEGREE))
    return model, torch.randn(BATCH, 12, NODES, IN_CHANNELS), torch.randn(BATCH, 3, NODES)


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer) -> None:
    optimizer.zero_grad()
    F.mse_loss(model(x), y).backward()
    optimizer.step()


KINDS = {"matrix products": ("aten::mm", "aten::addmm", "aten::bmm"),
         "convolution forward": ("aten::mkldnn_convolution", "aten::convolution"),
         "normalisation": ("aten::native_layer_norm", "aten::native_layer_norm_backward"),
         "optimizer": ("aten::_foreach",)}


def sparse_aware_mm_flops(a: torch.Tensor, b: torch.Tensor, *args, out_val=None, **kwargs) -> int:
    """Floating-point operations of a @ b, counting only the stored entries of a sparse a (torch's
    own formula counts a sparse (N, N) operator as if it were dense)."""
    rows_times_inner = a._nnz() if a.layout != torch.strided else a.shape[0] * a.shape[1]
    return 2 * rows_times_inner * b.shape[1]


sparse_aware_mm_flops._get_raw = True  # FlopCounterMode passes the tensors, not only their shapes


def step_profile() -> dict:
    """Self CPU time of 3 training steps by kind of operation, and the step's floating-point work."""
    model, x, y = default_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        train_step(model, x, y, optimizer)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            train_step(model, x, y, optimizer)
    kinds: dict[str, float] = {}
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue
        kind = next((k for k, names in KINDS.items() if event.key.startswith(names)),
                    "elementwise, copies and the rest")
        kinds[kind] = kinds.get(kind, 0.0) + event.self_cpu_time_total / 1e6 / 3
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.mm: sparse_aware_mm_flops}) as counter:
        train_step(model, x, y, optimizer)
    a, b = torch.randn(129600, 192), torch.randn(192, 128)
    rate = 2 * a.size(0) * a.size(1) * b.size(1) / median_seconds(lambda: a @ b, repeats=7)
    flops = counter.get_total_flops()
    step = median_seconds(lambda: train_step(model, x, y, optimizer), repeats=5)
    return {"seconds_by_kind_per_step": {k: round(v, 3) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
            "step_seconds_median": round(step, 3),
            "gflop_per_step": round(flops / 1e9, 1),
            "matrix_product_gflops_here": round(rate / 1e9, 1),
            "floor_seconds_per_step": round(flops / rate, 3)}


def temporal_conv_backward() -> dict:
    """Block 2's first temporal convolution (64 -> 2 x 64 channels, Kt 3, 8 -> 6 steps), forward and
    backward, as `TemporalConv` and as torch's conv2d with the same weights."""
    torch.manual_seed(0)
    conv = TemporalConv(64, 128, 3)
    x = torch.randn(BATCH, 8, NODES, 64, requires_grad=True)
    grad = torch.randn(BATCH, 6, NODES, 128)
    ours = median_seconds(lambda: conv(x).backward(grad), repeats=7)
    torch_conv = median_seconds(lambda: F.conv2d(x.permute(0, 3, 1, 2), conv.weight, conv.bias)
                            .permute(0, 2, 3, 1).backward(grad), repeats=7)
    return {"temporal_conv_seconds": round(ours, 4), "conv2d_seconds": round(torch_conv, 4),
            "conv2d_over_temporal_conv": round(torch_conv / ours, 2)}


def step_in_fresh_process(keep: bool) -> float:
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import large_network as b, torch\n"
            f"if {keep}: b.keep_freed_memory()\n"
            "m, x, y = b.default_model(); o = torch.optim.Adam(m.parameters(), lr=1e-3)\n"
            "print(b.median_seconds(lambda: b.train_step(m, x, y, o), repeats=5))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def limits() -> dict:
    keep_freed_memory()  # as the command line does
    result = {"step": step_profile(), "temporal_convolution": temporal_conv_backward()}
    pairs = [(step_in_fresh_process(False), step_in_fresh_process(True)) for _ in range(2)]
    result["keep_freed_memory"] = {"step_seconds_without": [round(a, 3) for a, _ in pairs],
                                   "step_seconds_with": [round(b, 3) for _, b in pairs]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a checkout of the commit to compare with")
    parser.add_argument("--after", type=Path, default=ROOT, help="the checkout to time as 'after' (default: this one)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--skip-runs", action="store_true", help="only the step measurements")
    parser.add_argument("--sample-only", action="store_true",
                        help="only redo the sample log in the existing results file")
    args = parser.parse_args()
    if args.sample_only:
        with tempfile.TemporaryDirectory() as tmp:
            save_csv_folder(transit_dataset(NODES, DEGREE), Path(tmp) / "bus675")
            result = json.loads(RESULTS.read_text())
            result["sample_log"] = sample_log(args.after, Path(tmp) / "bus675")
        write_atomic(RESULTS, (json.dumps(result, indent=1) + "\n").encode())
        print("\n".join(result["sample_log"]["log"]))
        return
    if not args.skip_runs and (args.before is None or not (args.before / "helpers").is_dir()):
        parser.error(f"--before must be a checkout of the workbook, got {args.before}")
    load_before, t0 = os.getloadavg(), time.perf_counter()
    result = {"command": "python -m helpers.train --data DIR --model stgcn --epochs "
                         f"{args.epochs} --patience {args.epochs} --json (stderr to a file)",
              "network": {"nodes": NODES, "edges": int(transit_network(NODES, DEGREE).triu().sum()),
                          "steps": 744, "interval_minutes": 60}}
    if not args.skip_runs:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "bus675"
            save_csv_folder(transit_dataset(NODES, DEGREE), data)
            runs = {"before": [], "after": []}
            for i in range(args.runs):
                for name, checkout in (("before", args.before), ("after", args.after)):
                    log = Path(tmp) / f"{name}{i}.log"
                    runs[name].append(one_run(checkout, data, args.epochs, log))
                    print(name, i, runs[name][-1], flush=True)
            result["sample_log"] = sample_log(args.after, data)
        result["before"] = {"commit": commit_of(args.before), "runs": runs["before"],
                            "summary": summary(runs["before"])}
        result["after"] = {"commit": commit_of(args.after), "runs": runs["after"], "summary": summary(runs["after"])}
    result["limits"] = limits()
    print(json.dumps(result["limits"], indent=1))
    result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                         "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                         "python": platform.python_version(), "load_average_before": load_before,
                         "load_average_after": os.getloadavg(), "seconds": round(time.perf_counter() - t0)}
    write_atomic(RESULTS, (json.dumps(result, indent=1) + "\n").encode())
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
