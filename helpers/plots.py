"""Plots shared by several notebooks. Each function draws on a matplotlib `Axes` and returns it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes


def plot_network(
    ds,
    values=None,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    label: str = "",
    cmap: str = "viridis",
    highlight=(),
    names: bool = False,
) -> Axes:
    """Draw a network map: edges (or, for a metro, its coloured lines) and the nodes at `ds.coords`.

    ds: a `helpers.data.GraphTimeSeries` with `coords` (nodes, 2). A metro (`ds.meta["lines"]`) is drawn
        line by line in `ds.meta["line_colors"]`, with transfer stations as larger white circles.
    values: optional (nodes,) numbers (tensor, array or list) that colour the nodes, with a colour bar
        labelled `label`; NaN nodes are drawn hollow.
    highlight: node indices to ring in red (e.g. the station a later plot shows).
    names: write each node's name beside it.
    """
    if ds.coords is None:
        raise ValueError("plot_network needs node coordinates: expected ds.coords of shape (nodes, 2), got None")
    xy = ds.coords.numpy()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 4.8))
    lines = ds.meta.get("lines")
    if lines:
        colors = ds.meta.get("line_colors", {})
        for name, stops in lines.items():
            ax.plot(xy[stops, 0], xy[stops, 1], "-", lw=3, color=colors.get(name), alpha=0.8, label=name, zorder=1)
        ax.legend(loc="best", fontsize=8, frameon=False, title="line", title_fontsize=8)
    else:
        src, dst = torch.nonzero(ds.adjacency > 0, as_tuple=True)
        for i, j in zip(src.tolist(), dst.tolist(), strict=True):
            ax.plot(xy[[i, j], 0], xy[[i, j], 1], "-", lw=0.6, color="0.6", zorder=1)

    transfers = set(ds.meta.get("transfer_stations", []))
    size = np.array([70 if i in transfers else 30 for i in range(ds.num_nodes)])
    if values is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, c="white", edgecolors="black", linewidths=1.0, zorder=2)
    else:
        v = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=float)
        if v.shape != (ds.num_nodes,):
            raise ValueError(f"values: expected one number per node, shape ({ds.num_nodes},), got {v.shape}")
        known = ~np.isnan(v)
        points = ax.scatter(xy[known, 0], xy[known, 1], s=size[known] * 1.6, c=v[known], cmap=cmap,
                            edgecolors="black", linewidths=0.6, zorder=2)
        ax.scatter(xy[~known, 0], xy[~known, 1], s=size[~known], facecolors="none", edgecolors="black", zorder=2)
        ax.figure.colorbar(points, ax=ax, label=label, shrink=0.8)
    rings = list(highlight)
    if rings:
        ax.scatter(xy[rings, 0], xy[rings, 1], s=260, facecolors="none", edgecolors="red", linewidths=2, zorder=3)
    if names:
        for (x, y), name in zip(xy, ds.node_names, strict=True):
            ax.annotate(name, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set(aspect="equal", xticks=[], yticks=[], title=title or ds.meta.get("name", "network"))
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return ax


# --- forecasts (notebook 07, helpers.train) ------------------------------------------------------------
def plot_forecast(
    truth,
    forecasts: dict,
    times=None,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    ylabel: str = "",
) -> Axes:
    """Draw a series against one or more forecasts of it: truth in black, each forecast in colour.

    truth: (steps,) numbers; forecasts: {label: (steps,) numbers} (NaN leaves a gap); times: (steps,)
    datetime64 (or numbers) for the x axis, default 0 .. steps - 1.
    """
    y = np.asarray(truth.detach().cpu() if isinstance(truth, torch.Tensor) else truth, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"truth: expected a 1-d series, got shape {y.shape}")
    x = np.arange(len(y)) if times is None else np.asarray(times)
    if x.shape != y.shape:
        raise ValueError(f"times: expected shape {y.shape} like truth, got {x.shape}")
    series = {"truth": y}
    for label, f in forecasts.items():
        f = np.asarray(f.detach().cpu() if isinstance(f, torch.Tensor) else f, dtype=float)
        if f.shape != y.shape:
            raise ValueError(f"forecast {label!r}: expected shape {y.shape} like truth, got {f.shape}")
        series[label] = f
    if len(x) > 2:  # break the lines where time jumps (e.g. overnight, outside service hours)
        steps = np.diff(x)
        breaks = np.flatnonzero(steps > np.median(steps)) + 1
        x = np.insert(x, breaks, x[breaks - 1])
        series = {label: np.insert(v, breaks, np.nan) for label, v in series.items()}
    if ax is None:
        _, ax = plt.subplots(figsize=(8.0, 3.0))
    for label, v in series.items():
        style = {"color": "black", "lw": 1.2} if label == "truth" else {"lw": 1.0, "alpha": 0.85}
        ax.plot(x, v, label=label, **style)
    ax.set(ylabel=ylabel, xlabel="time" if times is not None else "step", title=title)
    ax.legend(fontsize=8, loc="best")
    if times is not None and np.issubdtype(x.dtype, np.datetime64):
        ax.figure.autofmt_xdate()
    return ax
