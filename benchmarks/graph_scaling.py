"""Dense against sparse graph operators in STGCN training, from the shipped 51 nodes to 5,000 (issue 19).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/graph_scaling.py [--threads 2] [--quick]

Synthetic transit-like networks (`transit_network`: bus lines as chains of stops joined at transfer
stops, average degree 2-4) carry 744 hourly steps (`transit_dataset`: a month of daily peaks). For each
size, the default STGCN of `python -m helpers.train` (Chebyshev order 3, blocks (64, 16, 64) x 2, batch
32, 12 steps in, 3 out) trains a few batches with its graph operator dense, sparse COO and CSR ("auto" is
the one `helpers.graph.choose_layout` picks); the seconds per batch (median of the timed steps) times the
batches of one epoch give the seconds per training epoch, and `helpers.speed.peak_memory` the peak of
torch's allocations in one step. Few steps per point (1 warm-up, then 5 timed up to 700 nodes, 2 above),
so that it runs on two loaded cores: the points are estimates, recorded with every step's wall and CPU
seconds, the load average, the thread count and the torch version. The dense operator is not timed above
700 nodes (--dense-limit): its products grow with the square of the nodes. `crossover` says from which
size sparse steps were faster beyond the noise (non-overlapping quartiles of CPU seconds);
`helpers.graph.SPARSE_MIN_NODES` cites the gain at each size. Freed memory is kept for reuse
(`helpers.speed.keep_freed_memory`), as the command line does.

Writes benchmarks/results/graph_scaling.json (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no OpenMP spin-waiting

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from helpers.data import GraphTimeSeries, load_los_loop, load_metro  # noqa: E402
from helpers.files import write_atomic  # noqa: E402
from helpers.graph import SPARSE_MAX_DENSITY, SPARSE_MIN_NODES, choose_layout, to_sparse  # noqa: E402
from helpers.models import STGCN, STGCNConfig, graph_operator  # noqa: E402
from helpers.speed import keep_freed_memory, peak_memory  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "graph_scaling.json"


# --- synthetic transit-like networks ---------------------------------------------------------------
def transit_network(nodes: int, degree: float = 2.0, seed: int = 0) -> torch.Tensor:
    """A bus network of `nodes` stops with average degree about `degree` (>= 2), as a symmetric 0/1
    (nodes, nodes) adjacency with a zero diagonal.

    Lines of 10 to 40 stops are chains; each line after the first meets a stop of an earlier line
    (a transfer), which makes a tree (average degree just under 2); extra links between stops of
    nearby lines bring the edge count to `degree * nodes / 2`.
    """
    rng = np.random.default_rng(seed)
    edges: set[tuple[int, int]] = set()
    start = 0
    while start < nodes:
        length = min(int(rng.integers(10, 41)), nodes - start)
        edges.update((i, i + 1) for i in range(start, start + length - 1))
        if start > 0:  # a transfer to an earlier stop
            edges.add((int(rng.integers(0, start)), start + int(rng.integers(0, length))))
        start += length
    target = max(len(edges), round(degree * nodes / 2))
    while len(edges) < target:
        i = int(rng.integers(0, nodes))
        j = int(np.clip(i + rng.integers(-60, 61), 0, nodes - 1))  # a stop on a nearby line
        if i != j:
            edges.add((min(i, j), max(i, j)))
    adj = torch.zeros(nodes, nodes)
    index = torch.tensor(sorted(edges)).T
    adj[index[0], index[1]] = adj[index[1], index[0]] = 1.0
    return adj


def transit_dataset(nodes: int, degree: float = 2.0, steps: int = 744, seed: int = 0
                    ) -> GraphTimeSeries:
    """Hourly boardings at every stop of `transit_network(nodes, degree, seed)`: `steps` hours from
    2024-01-01 (744 = 31 days), a morning and an evening peak, quieter weekends, each stop's level
    shared in part with its neighbours, Poisson noise."""
    adj = transit_network(nodes, degree, seed)
    rng = np.random.default_rng(seed + 1)
    level = rng.lognormal(3.0, 0.6, nodes)
    neighbours = (adj.numpy() @ level) / np.maximum(adj.numpy().sum(1), 1)
    level = 0.6 * level + 0.4 * neighbours
    hours = np.arange(steps)
    hour, day = hours % 24, hours // 24
    profile = (0.1 + np.exp(-0.5 * ((hour - 8) / 1.5) ** 2) + 0.8 * np.exp(-0.5 * ((hour - 17.5) / 2) ** 2)
               + 0.3 * ((hour >= 6) & (hour <= 22)))
    profile = profile * np.where(day % 7 >= 5, 0.55, 1.0)
    shift = rng.integers(-1, 2, nodes)  # some stops peak an hour early or late
    rates = np.stack([np.roll(profile, s) for s in shift], axis=1) * level  # (steps, nodes)
    values = rng.poisson(rates).astype(np.float32)
    stamps = np.datetime64("2024-01-01T00:00", "m") + hours.astype("timedelta64[h]")
    return GraphTimeSeries(values, adj, interval_minutes=60, node_names=[f"stop{i}" for i in range(nodes)],
                           timestamps=stamps.astype("datetime64[m]"), meta={"unit": "boardings"})


# --- the measurement -------------------------------------------------------------------------------
BATCH, INPUT_LEN, HORIZON = 32, 12, 3  # the command line's defaults
#: Training batches per epoch of a 744-step series: 744 - 12 - 3 + 1 = 730 windows, 70 % for training.
BATCHES_PER_EPOCH = -(-int(0.7 * (744 - INPUT_LEN - HORIZON + 1)) // BATCH)
LAYOUTS = {"dense": "dense", "sparse": "sparse", "csr": "csr"}


def networks(quick: bool) -> list[tuple[str, torch.Tensor]]:
    """(name, adjacency) from 51 to 5,000 nodes."""
    nets = [("shipped metro (51)", load_metro().adjacency)]
    los = Path(__file__).resolve().parents[2] / "shared" / "data" / "los-loop"
    try:
        nets.append(("Los-loop (207)", load_los_loop(los if los.is_dir() else None).adjacency))
    except (OSError, ValueError):
        nets.append(("Los-loop-sized (207, synthetic)", transit_network(207, 4.0)))
    sizes = ((100, 2.0), (400, 2.0), (675, 2.04), (2000, 3.0), (5000, 4.0))
    nets += [(f"transit {n} (degree {d:g})", transit_network(n, d)) for n, d in sizes]
    return nets[:3] if quick else nets


def seconds_per_step(adj: torch.Tensor, layout: str, steps: int) -> dict:
    """Median wall and CPU seconds of `steps` training steps (Adam) of the default STGCN, after one
    warm-up step, and the peak memory torch allocates in one step."""
    torch.manual_seed(0)
    n = adj.size(0)
    config = STGCNConfig(num_nodes=n, input_len=INPUT_LEN, horizon=HORIZON,
                         graph_operator="dense" if layout == "csr" else layout)
    model = STGCN(config, adj)
    operator = to_sparse(model.operator, "csr") if layout == "csr" else model.operator
    x, y = torch.randn(BATCH, INPUT_LEN, n), torch.randn(BATCH, HORIZON, n)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad()
        F.mse_loss(model(x, operator), y).backward()
        optimizer.step()

    step()
    wall, cpu = [], []
    for _ in range(steps):
        w0, c0 = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {"wall_seconds": wall, "cpu_seconds": cpu, "median_wall": statistics.median(wall),
            "median_cpu": statistics.median(cpu), "peak_bytes": peak_memory(step)}


def scaling(quick: bool, dense_limit: int) -> list[dict]:
    rows = []
    for name, adj in networks(quick):
        n = adj.size(0)
        edges = int((adj + adj.T > 0).sum()) // 2
        row = {"network": name, "nodes": n, "edges": edges, "average_degree": round(2 * edges / n, 2),
               "auto_layout": choose_layout(graph_operator(adj, "cheb"))}
        steps = 1 if quick else (5 if n <= 700 else 2)
        for layout in LAYOUTS:
            if layout != "sparse" and n > dense_limit:
                row[layout] = None  # too slow on two cores: about N^2 per product
                continue
            m = seconds_per_step(adj, layout, steps)
            m["epoch_seconds"] = m["median_wall"] * BATCHES_PER_EPOCH
            m["epoch_cpu_seconds"] = m["median_cpu"] * BATCHES_PER_EPOCH
            row[layout] = m
            print(f"{name:>34} {layout:>6}: {m['median_wall']:7.3f} s/step wall, {m['median_cpu']:7.3f} "
                  f"s CPU, peak {m['peak_bytes'] / 2**20:8.1f} MiB  (load {os.getloadavg()[0]:.1f})",
                  flush=True)
        row["auto"] = row[row["auto_layout"]]
        rows.append(row)
    return rows


def crossover(rows: list[dict]) -> dict:
    """Where sparse training steps became faster than dense ones beyond the noise: the sparse step's
    upper quartile below the dense step's lower quartile (CPU seconds, less disturbed by other processes
    than wall time); overlapping quartiles count as no difference."""

    def quartiles(m):
        q = statistics.quantiles(m["cpu_seconds"], n=4, method="inclusive")
        return q[0], q[2]

    verdicts = {}
    for r in rows:
        if r["dense"] is None:
            continue
        (d1, _), (_, s3) = quartiles(r["dense"]), quartiles(r["sparse"])
        (s1, _), (_, d3) = quartiles(r["sparse"]), quartiles(r["dense"])
        verdicts[r["network"]] = "sparse faster" if s3 < d1 else ("dense faster" if d3 < s1 else "no difference")
    faster = [r["nodes"] for r in rows if verdicts.get(r["network"]) == "sparse faster"]
    not_faster = [r["nodes"] for r in rows if verdicts.get(r["network"], "").startswith(("no", "dense"))]
    return {"measure": "CPU seconds per step; sparse faster when its upper quartile is below dense's lower one",
            "verdicts": verdicts,
            "sparse_faster_from_nodes": min(faster) if faster else None,
            "largest_without_a_sparse_gain": max(not_faster) if not_faster else None,
            "rule_in_helpers_graph": {"SPARSE_MIN_NODES": SPARSE_MIN_NODES, "SPARSE_MAX_DENSITY": SPARSE_MAX_DENSITY}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="three small networks, one step each")
    parser.add_argument("--dense-limit", type=int, default=700, help="largest network timed with a dense operator")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the command line does
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    rows = scaling(args.quick, args.dense_limit)
    result = {
        "command": "OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/graph_scaling.py"
                   + (" --quick" if args.quick else ""),
        "what": (f"one training step (forward, backward, Adam) of the default STGCN (Chebyshev Ks=3, blocks "
                 f"(64,16,64) x 2, batch {BATCH}, {INPUT_LEN} steps in, {HORIZON} out), graph operator dense, sparse "
                 f"COO or CSR; epoch seconds = median step x {BATCHES_PER_EPOCH} batches (a 744-step series, "
                 f"70 % training windows), validation not included; 'auto' is the layout helpers.graph."
                 f"choose_layout picks, its row the same measurement; peak_bytes: torch's allocations in one step "
                 f"(helpers.speed.peak_memory). Few steps per point (1 warm-up + 5 timed up to 700 nodes, 2 above) "
                 f"on a shared machine: estimates. Freed memory is kept for reuse "
                 f"(helpers.speed.keep_freed_memory), as the command line does. Dense is not timed above "
                 f"--dense-limit nodes."),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                    "torch": torch.__version__, "load_average_before": load_before,
                    "load_average_after": os.getloadavg(), "seconds": round(time.perf_counter() - t0, 1)},
        "networks": rows,
        "crossover": crossover(rows),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    write_atomic(RESULTS, (json.dumps(result, indent=1) + "\n").encode())
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
