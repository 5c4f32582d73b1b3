"""Notebook 05's multi-seed experiments: learning-rate scaling with the batch size, and a rare class.

    .venv/bin/python benchmarks/optimiser_sweeps.py [lr_batch] [imbalance]   (default: both)

0. lr_batch: the forecaster of notebook 05 (Linear 24-64, ReLU, Dropout 0.1, Linear 64-1) on Central's
   next inflow, trained for 4 epochs at batch sizes 32 to 512 with Momentum (base lr 0.01) and Adam (base
   lr 0.001), the learning rate unchanged, scaled by the square root or linearly from batch 32
   (`helpers.train.scaled_lr`); validation MSE (scaled units) at the end, seeds 0-4 (each seed sets the
   initial weights and the batch order).
1. imbalance: "will the next quarter-hour be among this station's busiest 1%?" pooled over all 51 stations
   (thresholds per station, from the training part). A small classifier (Linear 24-16, ReLU, Linear 16-1,
   Adam 1e-2, batch 512, 2 epochs) trained three ways: plain, class weights (pos_weight = n_neg / n_pos),
   oversampling (WeightedRandomSampler, both classes equally likely); seeds 0-4. Test accuracy, recall,
   precision and F1 at the default threshold (logit 0) and at the threshold that maximises F1 on the
   validation part, and the test average precision (threshold-free: the mean precision at each positive,
   ranking by logit).
Data as notebook 05: `make_splits(metro, 12, 1, per_node=True)` (chronological 70/10/20, no window across
the overnight closure, each station z-scored with its own training statistics), missing inputs filled with
the mean. Writes benchmarks/results/optimiser_sweeps.json; a part run alone replaces only its own entries
(`<key>` and `<key>_conditions`: machine, torch version, threads, seeds, load average before and after).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from helpers.data import load_metro, make_splits, shuffled_loader
from helpers.files import write_atomic
from helpers.train import fit, make_optimizer, scaled_lr

RESULTS = Path(__file__).resolve().parent / "results" / "optimiser_sweeps.json"
THREADS = 1  # as notebook 05
SEEDS = (0, 1, 2, 3, 4)
BATCH_SIZES = (32, 64, 128, 256, 512)
RULES = ("none", "sqrt", "linear")
REMEDIES = ("none", "class weights", "oversampling")
RARE_SHARE = 0.01


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def spread(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "min": min(values), "max": max(values)}


def central_datasets(splits, station: int) -> list[TensorDataset]:
    """Notebook 05's (24 inputs, next inflow) datasets of one station; windows with a missing target dropped."""
    parts = []
    for part in (splits.train, splits.val, splits.test):
        x = part.inputs[:, :, station, :].nan_to_num(0.0).flatten(1)  # (samples, 12 steps * 2 channels)
        y = part.targets[:, :, station]  # (samples, 1)
        keep = ~torch.isnan(y[:, 0])
        parts.append(TensorDataset(x[keep], y[keep]))
    return parts


def make_forecaster(dropout: float = 0.1) -> nn.Module:
    return nn.Sequential(nn.Linear(24, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 1))


def lr_batch() -> dict:
    metro = load_metro()
    splits = make_splits(metro, input_len=12, output_len=1, per_node=True)
    train_set, val_set, _ = central_datasets(splits, metro.node_names.index("Central"))
    val_loader = DataLoader(val_set, batch_size=256)
    runs = []
    for name, base_lr in (("Momentum", 0.01), ("Adam", 1e-3)):
        for rule in RULES:
            for batch_size in BATCH_SIZES:
                lr = scaled_lr(base_lr, base_batch_size=32, batch_size=batch_size, rule=rule)
                for seed in SEEDS:
                    torch.manual_seed(seed)
                    model = make_forecaster()
                    history = fit(model, shuffled_loader(train_set, batch_size, seed), F.mse_loss,
                                  make_optimizer(name, model.parameters(), lr), 4, val_loader=val_loader)
                    runs.append({"optimizer": name, "rule": rule, "batch_size": batch_size, "lr": lr,
                                 "seed": seed, "val_mse": history.val_loss[-1]})
                values = [r["val_mse"] for r in runs[-len(SEEDS):]]
                print(f"{name:8s} {rule:6s} batch {batch_size:3d}: val MSE {statistics.mean(values):.4f} "
                      f"[{min(values):.4f}, {max(values):.4f}]", flush=True)
    summary = []
    for name in ("Momentum", "Adam"):
        for rule in RULES:
            for batch_size in BATCH_SIZES:
                values = [r["val_mse"] for r in runs
                          if (r["optimizer"], r["rule"], r["batch_size"]) == (name, rule, batch_size)]
                summary.append({"optimizer": name, "rule": rule, "batch_size": batch_size,
                                "val_mse": spread(values)})
    return {"settings": {"epochs": 4, "base_batch_size": 32, "base_lr": {"Momentum": 0.01, "Adam": 1e-3},
                         "batch_sizes": list(BATCH_SIZES), "rules": list(RULES), "seeds": list(SEEDS),
                         "train_windows": len(train_set), "val_windows": len(val_set)},
            "runs": runs, "summary": summary}


def pooled_rare_class(splits) -> tuple[list[TensorDataset], float]:
    """(train, val, test) datasets of (24 inputs, is-rare label) over all stations, and the train share."""
    threshold = torch.nanquantile(splits.train.targets[:, 0, :], 1 - RARE_SHARE, dim=0)  # (nodes,)
    parts = []
    for part in (splits.train, splits.val, splits.test):
        x = part.inputs.nan_to_num(0.0).permute(0, 2, 1, 3).flatten(2)  # (samples, nodes, 24)
        y = part.targets[:, 0, :]  # (samples, nodes)
        keep = ~torch.isnan(y)
        parts.append(TensorDataset(x[keep], (y > threshold).float()[keep][:, None]))
    return parts, parts[0].tensors[1].mean().item()


def scores_at(logits: torch.Tensor, truth: torch.Tensor, threshold: float) -> dict:
    flagged = logits >= threshold
    hits = (flagged & truth).sum().item()
    return {"accuracy": (flagged == truth).float().mean().item(), "recall": hits / truth.sum().item(),
            "precision": hits / max(flagged.sum().item(), 1),
            "f1": 2 * hits / (flagged.sum().item() + truth.sum().item()), "flagged": int(flagged.sum())}


def best_f1_threshold(logits: torch.Tensor, truth: torch.Tensor) -> float:
    """The logit threshold (flag >= it) with the highest F1, over every distinct logit."""
    order = logits.argsort(descending=True)
    hits = truth[order].float().cumsum(0)  # true positives when flagging the top k+1
    f1 = 2 * hits / (torch.arange(1, len(logits) + 1) + truth.sum())
    return logits[order][f1.argmax()].item()


def average_precision(logits: torch.Tensor, truth: torch.Tensor) -> float:
    order = logits.argsort(descending=True)
    hits = truth[order].float()
    precision_at_k = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return (precision_at_k * hits).sum().item() / hits.sum().item()


def imbalance() -> dict:
    splits = make_splits(load_metro(), input_len=12, output_len=1, per_node=True)
    (train, val, test), share = pooled_rare_class(splits)
    labels = train.tensors[1][:, 0]
    runs = []
    for remedy in REMEDIES:
        for seed in SEEDS:
            start = time.perf_counter()
            torch.manual_seed(seed)
            classifier = nn.Sequential(nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 1))
            if remedy == "oversampling":
                weights = torch.where(labels > 0, 1 / share, 1 / (1 - share))
                sampler = WeightedRandomSampler(weights, len(labels), generator=torch.Generator().manual_seed(seed))
                loader = DataLoader(train, batch_size=512, sampler=sampler)
            else:
                loader = shuffled_loader(train, 512, seed)
            pos_weight = torch.tensor((1 - share) / share) if remedy == "class weights" else None
            loss_fn = partial(F.binary_cross_entropy_with_logits, pos_weight=pos_weight)
            fit(classifier, loader, loss_fn, torch.optim.Adam(classifier.parameters(), lr=1e-2), 2)
            classifier.eval()
            with torch.no_grad():
                val_logits, test_logits = (classifier(d.tensors[0])[:, 0] for d in (val, test))
            val_truth, test_truth = (d.tensors[1][:, 0] > 0 for d in (val, test))
            tuned = best_f1_threshold(val_logits, val_truth)
            run = {"remedy": remedy, "seed": seed, "default": scores_at(test_logits, test_truth, 0.0),
                   "tuned_threshold": tuned, "tuned": scores_at(test_logits, test_truth, tuned),
                   "average_precision": average_precision(test_logits, test_truth),
                   "seconds": time.perf_counter() - start}
            runs.append(run)
            d, t = run["default"], run["tuned"]
            print(f"{remedy:13s} seed {seed}: default recall {d['recall']:.3f} precision {d['precision']:.3f} "
                  f"F1 {d['f1']:.3f} | tuned F1 {t['f1']:.3f} | AP {run['average_precision']:.3f} "
                  f"({run['seconds']:.1f} s)", flush=True)
    summary = []
    for remedy in REMEDIES:
        mine = [r for r in runs if r["remedy"] == remedy]
        row = {"remedy": remedy, "average_precision": spread([r["average_precision"] for r in mine])}
        for where in ("default", "tuned"):
            row[where] = {k: spread([r[where][k] for r in mine])
                          for k in ("accuracy", "recall", "precision", "f1", "flagged")}
        summary.append(row)
    test_truth = test.tensors[1][:, 0]
    return {"settings": {"rare_share": RARE_SHARE, "epochs": 2, "batch_size": 512, "lr": 1e-2,
                         "seeds": list(SEEDS), "train_samples": len(train), "train_positive_share": share,
                         "test_samples": len(test), "test_positives": int(test_truth.sum()),
                         "always_no_test_accuracy": 1 - test_truth.mean().item()},
            "runs": runs, "summary": summary}


def main(parts: list[str]) -> None:
    torch.set_num_threads(THREADS)
    known = {"lr_batch": lr_batch, "imbalance": imbalance}
    unknown = [p for p in parts if p not in known]
    if unknown:
        raise SystemExit(f"parts must be among {list(known)}, got {unknown}")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for part in parts or list(known):
        before, start = load(), time.perf_counter()
        results[part] = known[part]()
        results[f"{part}_conditions"] = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
            "threads": THREADS, "seeds": list(SEEDS), "load_before": before, "load_after": load(),
            "seconds": round(time.perf_counter() - start, 1)}
        write_atomic(RESULTS, (json.dumps(results, indent=1) + "\n").encode())
        print(f"{part}: written to {RESULTS}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
