"""Notebook 03's window explorer: how input length, output length and stride cut a series.

- `window_counts(num_steps, input_len, output_len, stride)`: the windows each chronological part
  holds (what `helpers.data.make_splits` will produce).
- `window_figure(series, input_len, output_len, stride)`: the parts on the whole series, and the
  first training windows on its start; `PART_COLORS`, `WINDOW_COLORS` are its colours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from helpers.checks import check_int
from helpers.data import split_bounds

#: Colours of the window explorer: the three chronological parts, and a window's input and target.
PART_COLORS = {"train": "C0", "val": "C1", "test": "C2"}
WINDOW_COLORS = {"input": "C0", "target": "C3"}


def _check_ints(**values) -> None:
    """`check_int` each keyword argument: an int >= 1."""
    for name, value in values.items():
        check_int(name, value)


def window_counts(num_steps: int, input_len: int, output_len: int, stride: int = 1,
                  fractions: Sequence[float] = (0.7, 0.1, 0.2)) -> dict[str, int]:
    """How many (input, target) windows each chronological part of a series holds.

    The series of `num_steps` steps is cut into consecutive parts by
    `helpers.data.split_bounds(num_steps, fractions)` and each part is windowed on its own, as
    `helpers.data.make_splits` does, so no window crosses a boundary: a part of L steps holds
    (L - input_len - output_len) // stride + 1 windows, or 0 when L < input_len + output_len.
    Returns {"train": ..., "val": ..., "test": ...} for three fractions (or {"part 0": ..., ...}
    for another number of parts).
    """
    _check_ints(num_steps=num_steps, input_len=input_len, output_len=output_len, stride=stride)
    bounds = split_bounds(num_steps, fractions)
    names = list(PART_COLORS) if len(bounds) == 3 else [f"part {i}" for i in range(len(bounds))]
    span = input_len + output_len
    return {name: max((stop - start - span) // stride + 1, 0)
            for name, (start, stop) in zip(names, bounds, strict=True)}


def window_figure(series: torch.Tensor, input_len: int, output_len: int, stride: int = 1,
                  fractions: Sequence[float] = (0.7, 0.1, 0.2), *, steps_per_day: int = 72,
                  zoom_steps: int = 72, max_windows: int = 8, ylabel: str = "value") -> Figure:
    """The windows on a series: where the parts are, and how the first windows tile its start.

    series: (time,) one node's series, NaN = missing (drawn as a gap).
    Top panel: the whole series (x in days), the train/val/test parts shaded and labelled with their
    window counts (`window_counts`). Bottom panels: the first `zoom_steps` steps of the series, and
    below it the first `max_windows` training windows, one row each: input steps in blue, target
    steps in red. The zoom widens to show every drawn window. The title states the settings and the
    counts. Built with matplotlib's object API (no pyplot).
    """
    if not isinstance(series, torch.Tensor) or series.ndim != 1:
        got = tuple(series.shape) if isinstance(series, torch.Tensor) else type(series).__name__
        raise ValueError(f"series: expected a 1-d (time,) tensor, got {got}")
    _check_ints(steps_per_day=steps_per_day, zoom_steps=zoom_steps, max_windows=max_windows)
    counts = window_counts(len(series), input_len, output_len, stride, fractions)
    values = series.detach().cpu().double().numpy()
    fig = Figure(figsize=(8.0, 5.2), dpi=90, layout="constrained")
    ax_all, ax_zoom, ax_windows = fig.subplots(3, 1, height_ratios=[1.2, 1, 1.1])
    _draw_parts(ax_all, values, counts, split_bounds(len(series), fractions), steps_per_day, ylabel)
    parts = ", ".join(f"{name} {count:,}" for name, count in counts.items())
    ax_all.set_title(f"input {input_len}, output {output_len}, stride {stride}: {parts} windows",
                     fontsize=10)

    shown = min(max_windows, counts[next(iter(counts))])  # the first part's first windows
    zoom = min(max(zoom_steps, (shown - 1) * stride + input_len + output_len), len(values))
    ax_zoom.plot(np.arange(zoom), values[:zoom], color="0.35", linewidth=1.0, marker=".",
                 markersize=3)
    ax_zoom.set(ylabel=ylabel, xlim=(-0.5, zoom - 0.5))
    ax_zoom.set_title(f"the first {zoom} steps and the first training windows", fontsize=9)
    ax_zoom.tick_params(labelbottom=False)

    for w in range(shown):
        start = w * stride
        ax_windows.barh(w, input_len, left=start - 0.5, height=0.7, color=WINDOW_COLORS["input"])
        ax_windows.barh(w, output_len, left=start + input_len - 0.5, height=0.7,
                        color=WINDOW_COLORS["target"])
    ax_windows.set(xlim=ax_zoom.get_xlim(), ylim=(max(shown, 1) - 0.4, -0.6), xlabel="step",
                   ylabel="window")
    ax_windows.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_windows.legend(handles=[Patch(color=c, label=k) for k, c in WINDOW_COLORS.items()],
                      loc="upper right", fontsize=8, ncols=2)
    ax_windows.grid(False)
    return fig


def _draw_parts(ax: Axes, values: np.ndarray, counts: dict[str, int],
                bounds: list[tuple[int, int]], steps_per_day: int, ylabel: str) -> None:
    """The whole series in days, each part shaded in its colour and labelled with its windows."""
    ax.plot(np.arange(len(values)) / steps_per_day, values, color="0.35", linewidth=0.5)
    for (name, count), (start, stop), color in zip(counts.items(), bounds, PART_COLORS.values(),
                                                   strict=False):
        ax.axvspan(start / steps_per_day, stop / steps_per_day, color=color, alpha=0.15,
                   linewidth=0)
        ax.text((start + stop) / 2 / steps_per_day, 0.97, f"{name}\n{count:,} windows", ha="center",
                va="top", fontsize=8, transform=ax.get_xaxis_transform())
    top = np.nanmax(values) if np.isfinite(values).any() else 1.0
    ax.set(xlabel="day", ylabel=ylabel, xlim=(0, len(values) / steps_per_day),
           ylim=(None, 1.35 * top))
