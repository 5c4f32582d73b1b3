"""Does the STGCN need the clock? Clock inputs and deviation forecasts on the shipped metro set.

    .venv/bin/python benchmarks/clock_inputs.py [--seeds 3] [--epochs 6]

In metro data the daily profile dominates: a network that sees only the last hour of counts cannot
tell 07:00 from 21:00, while the historical average (HA) knows the profile. Trains the command
line's STGCN (`python -m helpers.train`, in process) three ways:
- "counts":            counts in, counts out, no clock (the command line before issue 16);
- "clock":             + time of day (sin, cos) and day type inputs (`--clock time+day`);
- "clock+deviation":   the same inputs, forecasting the deviation from HA's profile
                       (`--forecast deviation`; the profile is added back);
("counts" only in the cheap "first week" regime: the CPU time of the full one went to the others)
and the two baselines, HA and persistence, in two regimes:
- "all weeks":  the command line's split (70/10/20 % of the 8 weeks: train = the first 5.6 weeks);
- "first week": train on the first week only; the validation and test parts are the same steps as
                in "all weeks" (the series is written as a CSV folder with the weeks between left
                out: a gap, which the windows rule never crosses).
Every network is trained with seeds 0..S-1; the file records mean, min and max of the test MAE and
RMSE (inflow, passengers per 15 minutes, all horizon steps), the conditions (machine, torch, load,
epochs) and each run. Writes benchmarks/results/clock_inputs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from helpers.cli import build_parser, run
from helpers.data import load_metro, save_csv_folder, split_bounds
from helpers.data.series import GraphTimeSeries
from helpers.distributed import setup_runtime
from helpers.files import write_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "clock_inputs.json"
VARIANTS = {
    "counts": ["--clock", "off", "--forecast", "level"],
    "clock": ["--clock", "time+day", "--forecast", "level"],
    "clock+deviation": ["--clock", "time+day", "--forecast", "deviation"],
}
NETWORK = ["--channels", "32,8,32", "--blocks", "1", "--batch-size", "64", "--lr", "2e-3", "--threads", "1"]
#: The variants trained in each regime ("counts", the old command line, only where training is cheap).
REGIMES = {"first week": ("counts", "clock", "clock+deviation"), "all weeks": ("clock", "clock+deviation")}


def first_week_folder(folder: Path) -> tuple[str, str]:
    """The shipped set with only its first week before the validation part, as a CSV folder; returns
    (the folder, the --split that gives the same validation and test steps as the full set)."""
    ds = load_metro()
    (_, train_stop), (val_start, val_stop), (test_start, stop) = split_bounds(ds.num_steps)
    week = 7 * ds.meta["steps_per_day"]
    keep = torch.cat([torch.arange(week), torch.arange(val_start, stop)])
    sub = GraphTimeSeries(ds.values[keep], ds.adjacency, ds.interval_minutes, ds.node_names, ds.coords,
                          ds.timestamps[keep.numpy()], ds.channel_names,
                          {"holidays": ds.meta["holidays"], "unit": ds.meta["unit"]})
    save_csv_folder(sub, folder, channel=None)
    n = len(keep)
    fractions = [week / n, (val_stop - val_start) / n, (stop - test_start) / n]
    val_end = week + val_stop - val_start
    assert split_bounds(n, fractions) == [(0, week), (week, val_end), (val_end, n)]
    return str(folder), ",".join(repr(f) for f in fractions)


def one_run(data: str, model: str, extra: list[str], out: Path) -> dict:
    args = build_parser().parse_args(["--data", data, "--model", model, "--out", str(out), "--overwrite",
                                      *extra])
    start = time.perf_counter()
    result = run(args, setup_runtime("cpu", "auto"))
    overall = result["metrics"]["overall"]
    return {"mae": overall["mae"], "rmse": overall["rmse"], "epochs_run": result["epochs_run"],
            "best_epoch": result.get("best_epoch"), "seconds": round(time.perf_counter() - start, 1),
            "test_windows": result["test_windows"]}


def summary(runs: list[dict]) -> dict:
    out = {}
    for key in ("mae", "rmse"):
        values = [r[key] for r in runs]
        out[key] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    options = parser.parse_args()
    torch.set_num_threads(1)
    load_before = [round(v, 2) for v in os.getloadavg()]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        week_data, week_split = first_week_folder(tmp / "first-week")
        regimes = {"first week": (week_data, ["--split", week_split]), "all weeks": ("metro", [])}
        for regime, (data, split) in regimes.items():
            table = {}
            for baseline in ("ha", "persistence"):
                table[baseline] = one_run(data, baseline, split, tmp / "run")
                print(regime, baseline, table[baseline], flush=True)
            for name in REGIMES[regime]:
                flags = VARIANTS[name]
                runs = []
                for seed in range(options.seeds):
                    extra = [*split, *flags, *NETWORK, "--epochs", str(options.epochs), "--seed", str(seed)]
                    runs.append({"seed": seed, **one_run(data, "stgcn", extra, tmp / "run")})
                    print(regime, name, runs[-1], flush=True)
                table[f"stgcn {name}"] = {**summary(runs), "runs": runs}
            results[regime] = table
    record = {
        "what": "test MAE and RMSE of inflow (passengers per 15 minutes, all 3 horizon steps, 12 steps in), "
                "shipped metro set, windows inside service hours only",
        "conditions": {
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "threads": 1,
            "load_average_before": load_before, "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "epochs": options.epochs, "patience": 5, "seeds": list(range(options.seeds)),
            "network": " ".join(NETWORK), "date": time.strftime("%Y-%m-%d"),
        },
        "results": results,
    }
    write_atomic(RESULTS, (json.dumps(record, indent=1) + "\n").encode())
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
