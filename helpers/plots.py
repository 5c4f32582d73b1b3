"""The figures the notebooks, the widgets and the command line share.

- `plot_network(ds, values)`: the network map, nodes coloured by a value (on an `Axes`, returned).
- `plot_forecast(truth, forecasts)`: a series against forecasts of it (on an `Axes`, returned).
- `cost_bars(costs, baseline)`: time and peak memory relative to a baseline, as bars (a `Figure`).
- `figure_png(fig)`: a figure as palette PNG bytes, for the widgets' `ipywidgets.Image`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from helpers.checks import check_int

__all__ = ["plot_network", "plot_forecast", "cost_bars", "figure_png"]


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

    ds: a `helpers.data.GraphTimeSeries` with `coords` (nodes, 2). A metro (`ds.meta["lines"]`) is
        drawn line by line in `ds.meta["line_colors"]`, with transfer stations as larger circles.
    values: optional (nodes,) numbers (tensor, array or list) that colour the nodes, with a colour
        bar labelled `label`; NaN nodes are drawn hollow.
    highlight: node indices to ring in red (e.g. the station a later plot shows).
    names: write each node's name beside it.
    """
    if ds.coords is None:
        raise ValueError("plot_network needs node coordinates: expected ds.coords of shape "
                         "(nodes, 2), got None")
    xy = ds.coords.numpy()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 4.8))
    lines = ds.meta.get("lines")
    if lines:
        colors = ds.meta.get("line_colors", {})
        for name, stops in lines.items():
            ax.plot(xy[stops, 0], xy[stops, 1], "-", lw=3, color=colors.get(name), alpha=0.8,
                    label=name, zorder=1)
        ax.legend(loc="best", fontsize=8, frameon=False, title="line", title_fontsize=8)
    else:
        src, dst = torch.nonzero(ds.adjacency > 0, as_tuple=True)
        for i, j in zip(src.tolist(), dst.tolist(), strict=True):
            ax.plot(xy[[i, j], 0], xy[[i, j], 1], "-", lw=0.6, color="0.6", zorder=1)

    transfers = set(ds.meta.get("transfer_stations", []))
    size = np.array([70 if i in transfers else 30 for i in range(ds.num_nodes)])
    if values is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, c="white", edgecolors="black", linewidths=1.0,
                   zorder=2)
    else:
        v = _numbers(values)
        if v.shape != (ds.num_nodes,):
            raise ValueError(f"values: expected one number per node, shape ({ds.num_nodes},), "
                             f"got {v.shape}")
        known = ~np.isnan(v)
        points = ax.scatter(xy[known, 0], xy[known, 1], s=size[known] * 1.6, c=v[known], cmap=cmap,
                            edgecolors="black", linewidths=0.6, zorder=2)
        ax.scatter(xy[~known, 0], xy[~known, 1], s=size[~known], facecolors="none",
                   edgecolors="black", zorder=2)
        ax.figure.colorbar(points, ax=ax, label=label, shrink=0.8)
    rings = list(highlight)
    if rings:
        ax.scatter(xy[rings, 0], xy[rings, 1], s=260, facecolors="none", edgecolors="red",
                   linewidths=2, zorder=3)
    if names:
        for (x, y), name in zip(xy, ds.node_names, strict=True):
            ax.annotate(name, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set(aspect="equal", xticks=[], yticks=[], title=title or ds.meta.get("name", "network"))
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return ax


def _numbers(values) -> np.ndarray:
    """A tensor, array or list as a float NumPy array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
    return np.asarray(values, dtype=float)


# --- forecasts (notebook 08, helpers.train) -------------------------------------------------------
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

    truth: (steps,) numbers; forecasts: {label: (steps,) numbers} (NaN leaves a gap);
    times: (steps,) datetime64 (or numbers) for the x axis, default 0 .. steps - 1.
    """
    y = _numbers(truth)
    if y.ndim != 1:
        raise ValueError(f"truth: expected a 1-d series, got shape {y.shape}")
    x = np.arange(len(y)) if times is None else np.asarray(times)
    if x.shape != y.shape:
        raise ValueError(f"times: expected shape {y.shape} like truth, got {x.shape}")
    series = {"truth": y}
    for label, f in forecasts.items():
        f = _numbers(f)
        if f.shape != y.shape:
            raise ValueError(f"forecast {label!r}: expected shape {y.shape} like truth, "
                             f"got {f.shape}")
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


# --- costs of a training step (notebook 09, its widget) -------------------------------------------
def cost_bars(costs: Mapping[str, Mapping[str, float]], baseline: str, title: str = "") -> Figure:
    """A figure of two horizontal bar charts: time and peak memory of each entry relative to
    `baseline`.

    costs: {label: {"seconds": s, "peak_bytes": b}}, e.g. rows of a trick table. Bars within 2% of
    the baseline are light grey, cheaper ones green, dearer ones red. Returns the Figure.
    """
    if baseline not in costs:
        raise ValueError(f"baseline must be one of the labels {list(costs)}, got {baseline!r}")
    labels = list(costs)
    base = costs[baseline]
    fig = Figure(figsize=(8.0, 0.35 * len(labels) + 1.2), dpi=90, layout="constrained")
    time_ax, mem_ax = fig.subplots(1, 2, sharey=True)
    panels = ((time_ax, "seconds", "time per step"), (mem_ax, "peak_bytes", "peak memory"))
    for ax, key, name in panels:
        values = [costs[k][key] / base[key] for k in labels]
        colors = ["0.6" if k == baseline else "tab:green" if v < 0.98 else "tab:red" if v > 1.02
                  else "0.8" for k, v in zip(labels, values, strict=True)]
        ax.barh(labels, values, color=colors)
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_xlabel(f"{name} / baseline")
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.2f}", va="center", fontsize=8)
    time_ax.invert_yaxis()
    fig.suptitle(title or "relative to the baseline (dark grey): green is cheaper, red is dearer "
                          "(2% or more)")
    return fig


# --- figures as PNG bytes (the widgets) ----------------------------------------------------------
def figure_png(fig: Figure, dpi: int = 90, colors: int | None = 64) -> bytes:
    """The figure as PNG bytes (for an `ipywidgets.Image`), reduced to `colors` colours (None: all).

    A line plot needs few colours; the palette PNG is about a fifth of the full-colour one, which
    keeps widget updates and the notebooks small.
    """
    check_int("colors", colors, 2, 256, none_ok=True)
    buffer = io.BytesIO()
    if colors is None:
        fig.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # render once to pixels, then quantise and encode once
    image = PIL.Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")
    image.quantize(colors=colors, method=PIL.Image.Quantize.FASTOCTREE).save(buffer, format="png")
    return buffer.getvalue()
