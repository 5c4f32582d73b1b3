"""Shared by the command-line tests: a small network on disk, and the command line run in-process."""

from pathlib import Path

import numpy as np
import torch

from helpers.cli import main


def write_network(folder: Path, steps: int = 160, nodes: int = 4, timestamps: bool = True) -> Path:
    """A small network of `nodes` on a line, with a daily-looking signal, as series.csv + adjacency.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    t = torch.arange(steps, dtype=torch.float32)
    series = 20 + 5 * torch.sin(2 * torch.pi * t[:, None] / 24 + torch.arange(nodes)) + torch.arange(nodes)
    header = (["timestamp"] if timestamps else []) + [f"s{i}" for i in range(nodes)]
    rows = [",".join(header)]
    for k, row in enumerate(series.tolist()):
        stamp = [str(np.datetime64("2024-05-01T00:00") + np.timedelta64(60 * k, "m"))] if timestamps else []
        rows.append(",".join(stamp + [f"{v:.3f}" for v in row]))
    (folder / "series.csv").write_text("\n".join(rows) + "\n")
    adj = torch.zeros(nodes, nodes)
    idx = torch.arange(nodes - 1)
    adj[idx, idx + 1] = adj[idx + 1, idx] = 1.0
    (folder / "adjacency.csv").write_text("\n".join(",".join(f"{v:g}" for v in r) for r in adj.tolist()) + "\n")
    return folder


def run_cli(argv, capsys):
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse exits on a bad argument
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err
