"""Redraw and training times of the notebooks' widgets, at the settings each notebook starts them with.

The optimiser explorer of 05 is timed per redraw (the other redrawing widgets, 03's window explorer and
09's trick explorer, are timed in the browser by tests/test_browser.py); the training widgets (05 training
playground, 06 LSTM playground, 07 depth explorer, 08 STGCN playground) per press of "train" (`run()`, the
code the button runs). Each is repeated and reported as median and interquartile range, with the machine's
load before and after, torch's version and thread count (one thread, as the notebooks set). Not asserted
anywhere: the notebooks quote these numbers.

    .venv/bin/python benchmarks/widget_times.py            # writes benchmarks/results/widget_times.json
    .venv/bin/python benchmarks/widget_times.py --repeats 3 --redraw-repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from helpers.data import add_time_of_day, load_metro, make_splits, select_nodes  # noqa: E402
from helpers.files import write_atomic  # noqa: E402
from helpers.node_task import next_step_task  # noqa: E402
from helpers.widgets import (  # noqa: E402
    DepthExplorer,
    LSTMPlayground,
    OptimizerExplorer,
    STGCNPlayground,
    TrainingPlayground,
)


def summary(seconds: list[float]) -> dict:
    q = statistics.quantiles(seconds, n=4, method="inclusive") if len(seconds) > 1 else [seconds[0]] * 3
    return {"median_s": round(q[1], 3), "iqr_s": [round(q[0], 3), round(q[2], 3)],
            "runs_s": [round(s, 3) for s in seconds]}


def timed(action, repeats: int) -> dict:
    load_before = os.getloadavg()[0]
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - t0)
    return {**summary(seconds), "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def notebook05_playground(metro) -> TrainingPlayground:
    """The playground as notebook 05 builds it (Central, 12 steps x 2 channels -> next inflow)."""
    central = metro.node_names.index("Central")
    splits = make_splits(metro.values[:, [central]], input_len=12, output_len=1)

    def as_dataset(part):
        x, y = part.inputs.nan_to_num(0.0).flatten(1), part.targets.flatten(1)
        keep = ~torch.isnan(y[:, 0])
        return TensorDataset(x[keep], y[keep])

    train_set, val_set = as_dataset(splits.train), as_dataset(splits.val)

    def make_forecaster(dropout=0.1):
        return nn.Sequential(nn.Linear(24, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 1))

    return TrainingPlayground(make_forecaster, TensorDataset(*(t[:1000] for t in train_set.tensors)), val_set,
                              F.mse_loss, epochs=6, lr=1e-3, batch_size=32, optimizer="Adam")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="presses of train per training widget")
    parser.add_argument("--redraw-repeats", type=int, default=7, help="redraws per redrawing widget")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "widget_times.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    metro = load_metro()
    results = {}

    explorer = OptimizerExplorer("ill-conditioned bowl", ["SGD", "Momentum", "Adam"])
    results["05 OptimizerExplorer redraw"] = timed(explorer.redraw, args.redraw_repeats)

    playground = notebook05_playground(metro)
    results["05 TrainingPlayground train (6 epochs, Adam, lr 0.001, batch 32)"] = timed(playground.run, args.repeats)
    lstm = LSTMPlayground(add_time_of_day(select_nodes(metro, ["Fernhill"])), epochs=4)
    results["06 LSTMPlayground train (4 epochs, hidden 32, sequence 12)"] = timed(lstm.run, args.repeats)
    depth = DepthExplorer(next_step_task(metro), max_depth=8, block="res+", hidden=16)
    results["07 DepthExplorer train (depths 1-8, 3 seeds, res+, hidden 16)"] = timed(depth.run, args.repeats)
    depth.max_depth.value = 4
    results["07 DepthExplorer train (depths 1-4, 3 seeds, res+, hidden 16)"] = timed(depth.run, args.repeats)
    stgcn = STGCNPlayground(make_splits(metro, input_len=12, output_len=3), metro.adjacency, epochs=3)
    results["08 STGCNPlayground train (3 epochs, 2 blocks 16,8,16, Kt 3, Ks 3)"] = timed(stgcn.run, args.repeats)

    record = {
        "what": "seconds per redraw / per press of train, at the notebooks' settings; median and IQR",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "conditions": {"machine": platform.platform(), "processor": platform.processor() or platform.machine(),
                       "cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                       "python": platform.python_version(),
                       "note": "load_1min is os.getloadavg() before and after each widget's repeats; a machine "
                               "shared with other work inflates every time"},
        "results": results,
    }
    write_atomic(Path(args.out), (json.dumps(record, indent=2) + "\n").encode())
    for name, r in results.items():
        print(f"{name}: median {r['median_s']:.2f} s, IQR {r['iqr_s'][0]:.2f}-{r['iqr_s'][1]:.2f} s, "
              f"load {r['load_1min']}")


if __name__ == "__main__":
    main()
