"""Per-horizon errors of the STGCN, the LSTM and the baselines on the metro data, over several seeds
(notebook 08).

    .venv/bin/python benchmarks/stgcn_horizons.py            # seeds 0 1 2 in one process
    # or one process per seed, then merged (what the committed file used; see its "command" and "parts"):
    .venv/bin/python benchmarks/stgcn_horizons.py --seeds 0 --threads 1 --part /tmp/seed0.json   (1, 2 alike)
    .venv/bin/python benchmarks/stgcn_horizons.py --merge /tmp/seed0.json /tmp/seed1.json /tmp/seed2.json

Notebook 08's settings: 12 steps in, 3 out, every channel (flows and the clock) as input, six epochs.
For each seed: the STGCN of the notebook (two blocks of 16, 8, 16 channels, Kt = 3, Chebyshev Ks = 3,
Adam lr 5e-3, batch 64), the same STGCN with Ks = 1 (the graph convolution sees each station alone:
the ablation of exercise 08.6), and notebook 06's LSTM (`fit_lstm_forecaster`). Persistence and the
historical average have no seed. Every model is scored on the same test windows in passengers per
15 minutes: MAE, RMSE and MAPE (targets below 10 passengers left out) per horizon step and pooled.
Writes benchmarks/results/stgcn_horizons.json (per seed, plus mean/min/max over seeds) with its
conditions: machine, threads, load, torch version, seeds, windows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from helpers.data import add_time_of_day, load_metro, make_splits
from helpers.files import write_atomic
from helpers.models import STGCN, STGCNConfig, baseline_forecast
from helpers.train import fit_lstm_forecaster, forecast_metrics, predict, train_forecaster

RESULTS = Path(__file__).resolve().parent / "results" / "stgcn_horizons.json"
INPUT_LEN, HORIZON, EPOCHS, MIN_TARGET = 12, 3, 6, 10
METRICS = ("mae", "rmse", "mape")


def scores(pred: torch.Tensor, target: torch.Tensor) -> dict:
    """Per-step and pooled MAE, RMSE, MAPE (MAPE as a fraction) in passengers per 15 minutes."""
    table = forecast_metrics(pred, target, min_target=MIN_TARGET)
    return {**{m: [round(v, 4) for v in table[m]] for m in METRICS},
            "overall": {m: round(v, 4) for m, v in table["overall"].items()}}


def stgcn_scores(metro, splits, seed: int, ks: int) -> dict:
    config = STGCNConfig(num_nodes=metro.num_nodes, input_len=INPUT_LEN, horizon=HORIZON,
                         in_channels=metro.num_channels, blocks=((16, 8, 16), (16, 8, 16)), Kt=3, Ks=ks,
                         graph_conv="cheb")
    torch.manual_seed(seed)
    model = STGCN(config, metro.adjacency)
    train_forecaster(model, splits, epochs=EPOCHS, batch_size=64, lr=5e-3, seed=seed)
    pred, target = (splits.scaler.inverse_transform(t, channel=0)
                    for t in predict(model, DataLoader(splits.test, batch_size=256)))
    return scores(pred, target)


def lstm_scores(metro, seed: int) -> dict:
    run = fit_lstm_forecaster(metro, input_len=INPUT_LEN, horizon=HORIZON, epochs=EPOCHS, seed=seed)
    pred, target = (run.splits.scaler.inverse_transform(t, channel=0)
                    for t in predict(run.model, DataLoader(run.splits.test, batch_size=256)))
    return scores(pred, target)


def summary(runs: list[dict]) -> dict:
    """Mean, min and max over seeds of every per-step and pooled figure."""
    def stats(values):
        return {"mean": round(sum(values) / len(values), 4), "min": min(values), "max": max(values)}

    out = {m: [stats([r[m][s] for r in runs]) for s in range(HORIZON)] for m in METRICS}
    out["overall"] = {m: stats([r["overall"][m] for r in runs]) for m in METRICS}
    return out


def run_seeds(seeds: list[int], threads: int) -> dict:
    """Train and score every model for `seeds`; the raw runs with this process's conditions."""
    torch.set_num_threads(threads)
    metro = add_time_of_day(load_metro())
    splits = make_splits(metro, input_len=INPUT_LEN, output_len=HORIZON)
    load_before = [round(v, 2) for v in os.getloadavg()]
    t0 = time.perf_counter()
    runs = {"persistence": [scores(*baseline_forecast("persistence", metro, splits))],
            "historical average": [scores(*baseline_forecast("ha", metro, splits))],
            "LSTM": [], "STGCN": [], "STGCN Ks=1": []}
    for seed in seeds:
        runs["STGCN"].append(stgcn_scores(metro, splits, seed, ks=3))
        runs["STGCN Ks=1"].append(stgcn_scores(metro, splits, seed, ks=1))
        runs["LSTM"].append(lstm_scores(metro, seed))
        print(f"seed {seed}: pooled MAE " + ", ".join(f"{name} {r[-1]['overall']['mae']:.4f}"
                                                     for name, r in runs.items()), flush=True)
    return {"seeds": seeds, "runs": runs, "threads": torch.get_num_threads(),
            "windows": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test),
                        "removed_crossing_gaps": splits.removed},
            "channels": list(metro.channel_names), "load_before": load_before,
            "load_after": [round(v, 2) for v in os.getloadavg()],
            "wall_seconds": round(time.perf_counter() - t0, 1)}


def merge(parts: list[dict], command: str) -> dict:
    """One result from the parts (one process per seed or group of seeds), with every condition."""
    seeds = [s for p in parts for s in p["seeds"]]
    if len(set(seeds)) != len(seeds) or any(p["windows"] != parts[0]["windows"] for p in parts):
        raise ValueError(f"parts must hold distinct seeds on the same windows, got seeds {seeds}")
    models = {}
    for name in parts[0]["runs"]:
        seeded = name not in ("persistence", "historical average")
        runs = [r for p in parts for r in p["runs"][name]] if seeded else parts[0]["runs"][name]
        models[name] = {"seeds": seeds if seeded else None, "runs": runs, "summary": summary(runs)}
    return {
        "models": models,
        "unit": "passengers per 15 minutes; MAPE as a fraction, targets below 10 passengers left out",
        "settings": {"input_len": INPUT_LEN, "horizon": HORIZON, "epochs": EPOCHS, "channels": parts[0]["channels"],
                     "stgcn": "blocks (16,8,16)x2, Kt=3, Ks=3 (or 1), cheb, glu gate, LayerNorm, Adam lr 5e-3, "
                              "batch 64, cosine decay, best validation epoch",
                     "lstm": "fit_lstm_forecaster defaults (hidden 32, Adam lr 5e-3, batch 64)"},
        "windows": parts[0]["windows"],
        "threads": parts[0]["threads"],
        "processes": len(parts),
        "parts": [{k: p[k] for k in ("seeds", "threads", "load_before", "load_after", "wall_seconds")}
                  for p in parts],
        "load_before": [max(p["load_before"][i] for p in parts) for i in range(3)],
        "load_after": [max(p["load_after"][i] for p in parts) for i in range(3)],
        "wall_seconds": max(p["wall_seconds"] for p in parts),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   f"torch {torch.__version__}",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
    }


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--part", help="write only this process's raw runs to PART (merge them later)")
    parser.add_argument("--merge", nargs="+", help="merge part files into --out")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    command = " ".join(["python benchmarks/stgcn_horizons.py", *(argv if argv is not None else sys.argv[1:])])
    if args.merge:
        result = merge([json.loads(Path(p).read_text()) for p in args.merge], command)
        out = Path(args.out)
    else:
        part = run_seeds(args.seeds, args.threads)
        result, out = (part, Path(args.part)) if args.part else (merge([part], command), Path(args.out))
    write_atomic(out, (json.dumps(result, indent=1) + "\n").encode())
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
