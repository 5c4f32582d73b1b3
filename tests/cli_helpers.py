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


def write_metro_like_folder(folder: Path, days: int = 14, nodes: int = 6, seed: int = 0) -> Path:
    """A synthetic metro as a user's export: service 05:30-23:30 at 15-minute steps (the nights are
    gaps), a long series.csv `timestamp,node,inflow,outflow`, adjacency.csv with node names, and
    holidays.csv (the first Wednesday). Stations on a line, each with a sharp morning or evening
    peak; weekends and the holiday follow a flatter profile. Each day's volume is the profile times
    a city-wide factor of that day (weather, events: lognormal, sd 0.15), and surges persist (AR(1),
    0.8 a step) and reach the next station one step later. The historical average knows the
    profile but not the day's factor nor the surges; persistence knows the last reading but not
    the ramp of a peak; a network that sees the last hour and the clock can know all three.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    slots = 72  # 05:30 .. 23:15
    hours = 5.5 + 0.25 * np.arange(slots)
    start = np.datetime64("2025-03-03", "D")  # a Monday
    holiday = start + 2
    days_off = [(d % 7 >= 5) or (start + d == holiday) for d in range(days)]
    peak = np.where(np.arange(nodes) % 2 == 0, 8.0, 17.5)  # residential mornings, offices evenings
    size = 40 + 20 * rng.random(nodes)
    working = size * (0.4 + 3.0 * np.exp(-0.5 * ((hours[:, None] - peak) / 0.8) ** 2))  # (slots, nodes)
    weekend = size * (0.3 + 0.8 * np.exp(-0.5 * ((hours[:, None] - 14.0) / 3.0) ** 2))
    factor = np.exp(rng.normal(0.0, 0.15, days))
    profile = np.concatenate([f * (weekend if off else working) for f, off in zip(factor, days_off, strict=True)])
    surge = np.zeros_like(profile)
    shocks = rng.normal(0.0, 6.0, profile.shape)
    for t in range(1, len(profile)):
        spread = np.concatenate([[0.0], surge[t - 1, :-1]])  # from the station before, one step late
        surge[t] = 0.8 * surge[t - 1] + 0.15 * spread + shocks[t]
    inflow = np.clip(profile + surge + rng.normal(0.0, 3.0, profile.shape), 0, None).round()
    outflow = np.clip(0.9 * np.roll(profile, 1, axis=1) + 0.5 * surge, 0, None).round()
    stamps = np.concatenate([(start + d).astype("datetime64[m]") + (60 * hours).astype("timedelta64[m]")
                             for d in range(days)])
    names = [f"S{k}" for k in range(nodes)]
    rows = ["timestamp,node,inflow,outflow"]
    for t, stamp in enumerate(stamps):
        rows += [f"{stamp},{name},{inflow[t, k]:g},{outflow[t, k]:g}" for k, name in enumerate(names)]
    (folder / "series.csv").write_text("\n".join(rows) + "\n")
    adjacency = np.zeros((nodes, nodes))
    adjacency[np.arange(nodes - 1), np.arange(1, nodes)] = adjacency[np.arange(1, nodes), np.arange(nodes - 1)] = 1
    lines = [",".join(names)] + [",".join(f"{v:g}" for v in row) for row in adjacency]
    (folder / "adjacency.csv").write_text("\n".join(lines) + "\n")
    (folder / "holidays.csv").write_text(f"date\n{holiday}\n")
    return folder
