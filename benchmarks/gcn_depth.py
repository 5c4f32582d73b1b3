"""Depth with and without a graph, gradient checkpointing in deep GCNs, and dense against sparse
graph operators (notebook 07).

    .venv/bin/python benchmarks/gcn_depth.py [depth] [checkpointing] [sparse]   (default: all three)

0. depth: `helpers.node_task.depth_sweep` on notebook 07's next-step task (hidden 16, 2 epochs, Adam 5e-3),
   depths 2, 8 and 16, blocks plain, res, res+ and dense, each on the metro graph and on the identity
   operator (the no-graph control: the same network with no edges), seeds 0, 1 and 2: test MAE in passengers
   and the mean pairwise cosine of the trained node embeddings, per run and as mean, min and max over seeds.
1. A res+ GCN (`helpers.node_task.node_model`, hidden 64) on a batch of 64 samples of notebook 07's
   next-step task, at depths 8, 16, 32 and 64, with and without `ckpt_grad`: the activation bytes autograd
   keeps for backward (`helpers.speed.memory_breakdown`, exact), the peak memory of a training step (torch's
   profiler, `helpers.speed.peak_memory`) and the step time (median and quartiles of REPEATS timed steps,
   after one untimed); the gradients are checked to agree.
2. `helpers.graph.propagate` with a dense and a CSR operator on ring graphs of 51 to 3,000 nodes (4 links
   per node), 64 channels.
Writes the figures to benchmarks/results/gcn_depth.json; a part run alone replaces only its own entries (`<key>`
and `<key>_conditions`: machine, torch version, threads, load average before and after). Timings depend on the
machine and its load: they are reported, never asserted in a test.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from helpers.data import load_metro
from helpers.files import write_atomic
from helpers.graph import normalized_adjacency, propagate, to_sparse
from helpers.node_task import depth_sweep, next_step_task, node_model
from helpers.speed import memory_breakdown, peak_memory
from helpers.train import masked_loss

RESULTS = Path(__file__).resolve().parent / "results" / "gcn_depth.json"
THREADS = 1  # as notebook 07
REPEATS = 15  # timed calls per measurement
DEPTH_SEEDS = (0, 1, 2)


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def timings(fn, repeats: int = REPEATS) -> dict:
    """Median and quartiles (seconds) of `repeats` calls of fn, after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    q1, median, q3 = statistics.quantiles(times, n=4)
    return {"median": median, "q1": q1, "q3": q3, "repeats": repeats}


def depth_control(depths=(2, 8, 16), blocks=("plain", "res", "res+", "dense"), seeds=DEPTH_SEEDS) -> dict:
    task = next_step_task(load_metro())
    runs = []
    for seed in seeds:
        for graph in (True, False):
            for r in depth_sweep(task, depths, blocks, seed=seed, graph=graph):
                runs.append(asdict(r))
                print(f"seed {seed} {'graph   ' if graph else 'no graph'} {r.block:>5} {r.depth:>2}: "
                      f"MAE {r.mae:.3f}, cosine {r.cosine:.4f}, {r.seconds:.1f} s", flush=True)
    summary = []
    for graph in (True, False):
        for block in blocks:
            for depth in depths:
                mine = [r for r in runs if (r["graph"], r["block"], r["depth"]) == (graph, block, depth)]
                row = {"graph": graph, "block": block, "depth": depth}
                for key in ("mae", "cosine"):
                    values = [r[key] for r in mine]
                    row[key] = {"mean": statistics.mean(values), "min": min(values), "max": max(values)}
                summary.append(row)
    return {"settings": {"hidden": 16, "epochs": 2, "lr": 5e-3, "batch_size": 64, "seeds": list(seeds),
                         "depths": list(depths), "blocks": list(blocks)},
            "runs": runs, "summary": summary}


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
            timing = timings(step)
            row[f"{key}_step_seconds"] = timing["median"]
            row[f"{key}_step_seconds_quartiles"] = [timing["q1"], timing["q3"]]
        row["max_gradient_difference"] = (grads[True] - grads[False]).abs().max().item()
        row["step_time_ratio"] = row["checkpointed_step_seconds"] / row["plain_step_seconds"]
        row["repeats"] = REPEATS
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
        dense = timings(lambda op=op, x=x: propagate(op, x))
        csr = timings(lambda op=sparse, x=x: propagate(op, x))
        dense_s, sparse_s = dense["median"], csr["median"]
        rows.append({"nodes": n, "channels": channels, "batch": 8, "dense_seconds": dense_s, "csr_seconds": sparse_s,
                     "dense_seconds_quartiles": [dense["q1"], dense["q3"]],
                     "csr_seconds_quartiles": [csr["q1"], csr["q3"]], "repeats": REPEATS})
        print(f"{n:>5} nodes: dense {1e3 * dense_s:8.3f} ms, CSR {1e3 * sparse_s:8.3f} ms "
              f"({dense_s / sparse_s:.1f}x)")
    return rows


PARTS = {"depth": ("depth_with_and_without_graph", depth_control),
         "checkpointing": ("checkpointing_res_plus_gcn", checkpointing),
         "sparse": ("propagate_dense_vs_csr", dense_vs_sparse)}


def main(parts=tuple(PARTS)) -> None:
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"expected parts among {sorted(PARTS)}, got {unknown}")
    torch.set_num_threads(THREADS)
    result = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    result.pop("machine", None)
    for part in parts:
        key, run = PARTS[part]
        before = load()
        result[key] = run()
        result[f"{key}_conditions"] = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
            "threads": THREADS, "load_average_before": before, "load_average_after": load(),
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    RESULTS.parent.mkdir(exist_ok=True)
    write_atomic(RESULTS, (json.dumps(result, indent=1) + "\n").encode())
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or tuple(PARTS))
