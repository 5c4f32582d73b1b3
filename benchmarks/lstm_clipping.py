"""Gradient clipping and truncated backpropagation through time on notebook 06's station forecast.

    .venv/bin/python benchmarks/lstm_clipping.py

Trains notebook 06's LSTM forecaster (Fernhill, 12 quarter-hours in, 4 out, hidden 32, Adam, masked MSE,
8 epochs, the weights of the epoch with the lowest validation loss kept: `fit_lstm_forecaster`'s recipe)
with seeds 0-4 in seven variants:
- learning rate 5e-3 (the notebook's) without clipping, with gradient clipping at max_norm 1.0 (a common
  default) and at 0.1 (below the typical gradient norm here), and learning rate 5e-2 (ten times larger)
  without and with clipping at 0.1 (`torch.nn.utils.clip_grad_norm_`, between backward and the step);
- learning rate 5e-3 with truncated backpropagation through time (`LSTMForecaster(truncate=k)`, k = 4 and 1:
  the gradient reaches only the last k of the 12 input steps).
Records per run the test MAE, RMSE and MAPE per horizon step (passengers per 15 minutes), the kept epoch, the
gradient norm before clipping at every optimizer step (median, 99th percentile, largest) and the share of
steps that clipping shortened; and per variant the mean, min and max over seeds. Writes
benchmarks/results/lstm_clipping.json with the machine, torch version, threads and load average.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from helpers.data import add_time_of_day, load_metro, make_splits, select_nodes, shuffled_loader
from helpers.files import write_atomic
from helpers.models import LSTMForecaster
from helpers.train import evaluate, fit, masked_loss

RESULTS = Path(__file__).resolve().parent / "results" / "lstm_clipping.json"
THREADS = 1  # as notebook 06
SEEDS = (0, 1, 2, 3, 4)
VARIANTS = {  # name: (learning rate, max_norm or None, truncate or None)
    "lr 5e-3": (5e-3, None, None),
    "lr 5e-3, clipped at 1": (5e-3, 1.0, None),
    "lr 5e-3, clipped at 0.1": (5e-3, 0.1, None),
    "lr 5e-2": (5e-2, None, None),
    "lr 5e-2, clipped at 0.1": (5e-2, 0.1, None),
    "lr 5e-3, truncated k=4": (5e-3, None, 4),
    "lr 5e-3, truncated k=1": (5e-3, None, 1),
}


def train(station, splits, seed: int, lr: float, max_norm: float | None, truncate: int | None) -> dict:
    """One run of notebook 06's recipe; clipping runs as a pre-step hook of the optimizer, i.e. after
    backward and before every update. Returns the run's record."""
    torch.manual_seed(seed)
    model = LSTMForecaster(in_features=station.num_channels, hidden_size=32, horizon=4, truncate=truncate)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    norms = []

    def clip(optimizer, args, kwargs):
        limit = max_norm if max_norm is not None else float("inf")  # inf: measure only
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), limit).item())

    optimizer.register_step_pre_hook(clip)
    start = time.perf_counter()
    history = fit(model, shuffled_loader(splits.train, 64, seed), masked_loss("mse"), optimizer, 8,
                  val_loader=DataLoader(splits.val, batch_size=512))
    seconds = time.perf_counter() - start
    metrics = evaluate(model, DataLoader(splits.test, batch_size=512), splits.scaler)
    ordered = sorted(norms)
    return {"seed": seed, "mae": metrics["mae"], "rmse": metrics["rmse"], "mape": metrics["mape"],
            "mean_mae": statistics.mean(metrics["mae"]), "kept_epoch": history.best_epoch,
            "val_loss": history.val_loss, "grad_norm_median": statistics.median(norms),
            "grad_norm_p99": ordered[int(0.99 * (len(ordered) - 1))], "grad_norm_max": ordered[-1],
            "clipped_share": (sum(n > max_norm for n in norms) / len(norms)) if max_norm else 0.0,
            "steps": len(norms), "seconds": seconds}


def spread(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "min": min(values), "max": max(values)}


def main() -> None:
    torch.set_num_threads(THREADS)
    load_before = [round(v, 2) for v in os.getloadavg()]
    station = add_time_of_day(select_nodes(load_metro(), ["Fernhill"]))
    splits = make_splits(station, input_len=12, output_len=4)
    variants = {}
    for name, (lr, max_norm, truncate) in VARIANTS.items():
        runs = [train(station, splits, seed, lr, max_norm, truncate) for seed in SEEDS]
        summary = {"lr": lr, "max_norm": max_norm, "truncate": truncate, "runs": runs,
                   "mean_mae": spread([r["mean_mae"] for r in runs]),
                   "mae_per_step": [spread([r["mae"][k] for r in runs]) for k in range(4)],
                   "rmse_per_step": [spread([r["rmse"][k] for r in runs]) for k in range(4)],
                   "grad_norm_max": spread([r["grad_norm_max"] for r in runs]),
                   "grad_norm_median": spread([r["grad_norm_median"] for r in runs]),
                   "seconds": spread([r["seconds"] for r in runs]),
                   "clipped_share": spread([r["clipped_share"] for r in runs])}
        variants[name] = summary
        m = summary["mean_mae"]
        print(f"{name:>24}: MAE over the hour {m['mean']:.2f} ({m['min']:.2f}-{m['max']:.2f}), largest gradient "
              f"norm {summary['grad_norm_max']['mean']:.1f}, clipped {summary['clipped_share']['mean']:.0%}",
              flush=True)
    result = {
        "variants": variants,
        "settings": {"station": "Fernhill", "input_len": 12, "horizon": 4, "hidden": 32, "epochs": 8,
                     "batch_size": 64, "optimizer": "Adam", "loss": "masked MSE", "seeds": list(SEEDS),
                     "kept": "epoch with the lowest validation loss"},
        "conditions": {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
                       "threads": THREADS, "load_average_before": load_before,
                       "load_average_after": [round(v, 2) for v in os.getloadavg()],
                       "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    write_atomic(RESULTS, (json.dumps(result, indent=1) + "\n").encode())
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
