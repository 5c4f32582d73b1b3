"""Gradient checkpointing in deep GCNs, and dense against sparse graph operators (notebook 07).

    .venv/bin/python benchmarks/gcn_depth.py

1. A res+ GCN (`helpers.node_task.node_model`, hidden 64) on a batch of 64 samples of notebook 07's
   next-step task, at depths 8, 16, 32 and 64, with and without `ckpt_grad`: the activation bytes autograd
   keeps for backward (`helpers.speed.memory_breakdown`, exact), the peak memory of a training step (torch's
   profiler, `helpers.speed.peak_memory`) and the median step time; the gradients are checked to agree.
2. `helpers.graph.propagate` with a dense and a CSR operator on ring graphs of 51 to 3,000 nodes (4 links
   per node), 64 channels.
Writes the figures to benchmarks/results/gcn_depth.json. Timings depend on the machine and its load: they are
reported, never asserted in a test.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from helpers.data import load_metro
from helpers.files import write_atomic
from helpers.graph import normalized_adjacency, propagate, to_sparse
from helpers.node_task import next_step_task, node_model
from helpers.speed import median_seconds, memory_breakdown, peak_memory
from helpers.train import masked_loss

RESULTS = Path(__file__).resolve().parent / "results" / "gcn_depth.json"
THREADS = 1  # as notebook 07


def checkpointing(depths=(8, 16, 32, 64), hidden: int = 64, batch: int = 64) -> list[dict]:
    metro = load_metro()
    task = next_step_task(metro)
    x, y = task.features[:batch], task.targets[:batch]
    loss_fn = masked_loss("mse")
    rows = []
    for depth in depths:
        row = {"depth": depth, "hidden": hidden, "batch": batch}
        grads = {}
        for ckpt in (False, True):
            torch.manual_seed(0)
            model = node_model(True, metro.adjacency, hidden=hidden, num_layers=depth, block="res+", ckpt_grad=ckpt)
            kept = memory_breakdown(model, loss_fn, x, y, torch.optim.SGD(model.parameters(), lr=0.0)).activations

            def step(model=model):
                model.zero_grad()
                loss_fn(model(x), y).backward()

            step()
            grads[ckpt] = torch.cat([p.grad.flatten() for p in model.parameters()])
            key = "checkpointed" if ckpt else "plain"
            row[f"{key}_activation_bytes"] = kept
            row[f"{key}_peak_bytes"] = peak_memory(step)
            row[f"{key}_step_seconds"] = median_seconds(step, repeats=5)
        row["max_gradient_difference"] = (grads[True] - grads[False]).abs().max().item()
        rows.append(row)
        mib = {k: v / 2**20 for k, v in row.items() if k.endswith("_bytes")}
        print(f"depth {depth:>2}: activations {mib['plain_activation_bytes']:7.2f} -> "
              f"{mib['checkpointed_activation_bytes']:7.2f} MiB, peak {mib['plain_peak_bytes']:7.2f} -> "
              f"{mib['checkpointed_peak_bytes']:7.2f} MiB, step {1e3 * row['plain_step_seconds']:7.1f} -> "
              f"{1e3 * row['checkpointed_step_seconds']:7.1f} ms, max |grad diff| {row['max_gradient_difference']:.1e}")
    return rows


def ring(nodes: int) -> torch.Tensor:
    """A ring where each node links to the next two on each side (4 links per node)."""
    adj = torch.zeros(nodes, nodes)
    idx = torch.arange(nodes)
    adj[idx, (idx + 1) % nodes] = adj[idx, (idx + 2) % nodes] = 1.0
    return adj + adj.T


def dense_vs_sparse(sizes=(51, 300, 1000, 3000), channels: int = 64) -> list[dict]:
    rows = []
    for n in sizes:
        op = normalized_adjacency(ring(n))
        sparse = to_sparse(op, "csr")
        x = torch.randn(8, n, channels, generator=torch.Generator().manual_seed(0))  # (batch, nodes, channels)
        assert torch.allclose(propagate(op, x), propagate(sparse, x), atol=1e-5)
        dense_s = median_seconds(lambda op=op, x=x: propagate(op, x), repeats=7)
        sparse_s = median_seconds(lambda op=sparse, x=x: propagate(op, x), repeats=7)
        rows.append({"nodes": n, "channels": channels, "batch": 8, "dense_seconds": dense_s, "csr_seconds": sparse_s})
        print(f"{n:>5} nodes: dense {1e3 * dense_s:8.3f} ms, CSR {1e3 * sparse_s:8.3f} ms "
              f"({dense_s / sparse_s:.1f}x)")
    return rows


def main() -> None:
    torch.set_num_threads(THREADS)
    result = {
        "checkpointing_res_plus_gcn": checkpointing(),
        "propagate_dense_vs_csr": dense_vs_sparse(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {THREADS} thread",
    }
    RESULTS.parent.mkdir(exist_ok=True)
    write_atomic(RESULTS, (json.dumps(result, indent=1) + "\n").encode())
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
