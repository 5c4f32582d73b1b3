"""Notebook 03's window explorer: does a shuffled split flatter a forecaster, and by how much?

- `leakage_split(starts, span, shuffled)`: training and test windows of a chronological split (the
  test windows start in the last part of the series, the training windows end before it) or of a
  shuffled one (as many training windows, drawn at random).
- `leakage_errors(series, segments, input_len, output_len, k)`: one station's or the network's
  windows (inside the segments only: no window crosses the night), the k-nearest-neighbour forecaster scored on the
  chronological split and on three shuffles, as MAE per forecast step; returned as a `Leakage`.
- `leakage_figure(result, split)` and `leakage_readout(result, split)`: which days the chosen
  split's windows come from, and the MAE of both splits.
- `WindowExplorer`: a split toggle, station, input length, horizon and k; every change reruns the
  forecaster (or, for the toggle, only redraws); CSS classes `win-...`. `SPLIT_COLORS`, `SPLITS`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.checks import check_choice, check_int
from helpers.data import GraphTimeSeries, window_starts
from helpers.models import nearest_neighbour_forecast
from helpers.plots import figure_png
from helpers.widgets.base import control_look

#: Colours of the explorer: training and test windows.
SPLIT_COLORS = {"train": "C0", "test": "C2"}
#: The two ways of splitting windows the explorer compares.
SPLITS = ("chronological", "shuffled")


def leakage_split(starts: torch.Tensor, span: int, shuffled: bool, test_fraction: float = 0.2,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices into `starts` of the training and the test windows: (n_train,), (n_test,) int64.

    starts: (windows,) ascending first step of each window; span = input_len + output_len.
    Chronological: the test windows start at or after the step `cut` that leaves `test_fraction` of
    the windows after it, the training windows end (target included) before `cut`, so that no test
    step was seen in training. Shuffled: a random permutation (seeded) of all windows, the first
    n_train (as many as the chronological split has) for training and the rest for testing.
    """
    check_int("span", span)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction}")
    cut = int(starts[int((1.0 - test_fraction) * len(starts))])
    train = torch.nonzero(starts + span <= cut).flatten()
    test = torch.nonzero(starts >= cut).flatten()
    if not shuffled:
        return train, test
    order = torch.randperm(len(starts), generator=torch.Generator().manual_seed(seed))
    return order[: len(train)], order[len(train):]


@dataclass
class Leakage:
    """What `leakage_errors` returns. For each split in SPLITS: the first steps of its training and
    test windows (the shuffled split's first shuffle), and `mae[split]`, (runs, output_len): the
    test MAE per forecast step of each run (one chronological run, one per shuffle).
    `final_mae`: (shuffles,) the shuffled runs' MAE on their test windows in the chronological test
    period only (the same stretch of time as the chronological test)."""

    station: str
    input_len: int
    output_len: int
    k: int
    num_steps: int
    train_starts: dict[str, torch.Tensor]
    test_starts: dict[str, torch.Tensor]
    mae: dict[str, torch.Tensor]
    final_mae: torch.Tensor

    def overall(self, split: str) -> torch.Tensor:
        """(runs,) each run's MAE over every forecast step."""
        return self.mae[split].mean(dim=1)


def leakage_errors(series: torch.Tensor, segments: Sequence[tuple[int, int]], input_len: int,
                   output_len: int, k: int = 5, station: str = "", shuffles: int = 3) -> Leakage:
    """Score the k-nearest-neighbour forecaster on a chronological split and on `shuffles`
    shuffled splits (seeds 0, 1, ...) with the same number of training windows.

    series: (time,) one station's counts or (time, nodes) the network's (NaN = missing, set to 0
    here); segments: the series' regular stretches ([(start, stop), ...]); windows stay inside one
    (no window crosses the night). MAE in the series' units, averaged over the nodes.
    """
    if not isinstance(series, torch.Tensor) or series.ndim not in (1, 2):
        got = tuple(series.shape) if isinstance(series, torch.Tensor) else type(series).__name__
        raise ValueError(f"series: expected a (time,) or (time, nodes) tensor, got {got}")
    check_int("k", k)
    check_int("shuffles", shuffles)
    span = input_len + output_len
    starts = window_starts(segments, input_len, output_len)
    if len(starts) < 5 * span + k:
        raise ValueError(f"windows: expected at least {5 * span + k} windows inside the "
                         f"segments, got {len(starts)}")
    flow = series.nan_to_num(0.0)
    steps = starts[:, None] + torch.arange(span)  # (windows, span)
    x, y = flow[steps[:, :input_len]], flow[steps[:, input_len:]]  # (windows, in[, nodes]), (.., out)
    runs = {"chronological": [leakage_split(starts, span, False)]}
    runs["shuffled"] = [leakage_split(starts, span, True, seed=seed) for seed in range(shuffles)]
    final_start = starts[runs["chronological"][0][1][0]]
    mae, final = {}, []
    for split, pairs in runs.items():
        errors = []
        for train, test in pairs:
            prediction = nearest_neighbour_forecast(x[train], y[train], x[test], k=k)
            error = (prediction - y[test]).abs().reshape(len(test), output_len, -1).mean(dim=2)
            errors.append(error.mean(dim=0))  # error: (test windows, output_len)
            if split == "shuffled":
                final.append(error[starts[test] >= final_start].mean())  # same period
        mae[split] = torch.stack(errors)
    first = {split: pairs[0] for split, pairs in runs.items()}
    return Leakage(station, input_len, output_len, k, len(series),
                   {split: starts[train] for split, (train, _) in first.items()},
                   {split: starts[test] for split, (_, test) in first.items()},
                   mae, torch.stack(final))


def _where_windows_lie(ax, result: Leakage, split: str, steps_per_day: int) -> None:
    """Per day of the series: how many training (bottom) and test (top) windows start in it."""
    days = int(np.ceil(result.num_steps / steps_per_day))
    train = np.bincount(result.train_starts[split].numpy() // steps_per_day, minlength=days)
    test = np.bincount(result.test_starts[split].numpy() // steps_per_day, minlength=days)
    ax.bar(np.arange(days), train, width=1.0, color=SPLIT_COLORS["train"], label="train")
    ax.bar(np.arange(days), test, width=1.0, bottom=train, color=SPLIT_COLORS["test"],
           label="test")
    ax.set(xlim=(-0.5, days - 0.5), xlabel="day", ylabel="windows starting that day",
           title=f"{split} split: which days the windows come from")
    ax.legend(fontsize=7, loc="lower left", framealpha=0.9)


def leakage_figure(result: Leakage, split: str = "chronological", steps_per_day: int = 72,
                   units: str = "passengers per 15 min") -> Figure:
    """Left: per day of the series, how many of `split`'s training and test windows start in it.
    Right: the test MAE per forecast step of both splits (shuffled: mean over the shuffles, band
    from the lowest to the highest), `split` drawn bold. Built with matplotlib's object API."""
    check_choice("split", split, SPLITS)
    fig = Figure(figsize=(8.0, 3.0), dpi=90, layout="none")
    ax_time, ax_mae = fig.subplots(1, 2, width_ratios=[1.25, 1])
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.88, wspace=0.28)
    _where_windows_lie(ax_time, result, split, steps_per_day)
    horizon = np.arange(1, result.output_len + 1)
    for name in SPLITS:
        chosen, runs = name == split, result.mae[name].numpy()  # (runs, output_len)
        color = "k" if chosen else "0.55"
        overall = result.overall(name)
        label = (f"{name} {overall.mean():.1f}" if len(runs) == 1 else
                 f"{name} {overall.mean():.1f} ({overall.min():.1f}-{overall.max():.1f})")
        ax_mae.plot(horizon, runs.mean(axis=0), "o-" if name == SPLITS[0] else "s--", color=color,
                    linewidth=2.0 if chosen else 1.0, markersize=5 if chosen else 3, label=label)
        if len(runs) > 1:
            ax_mae.fill_between(horizon, runs.min(axis=0), runs.max(axis=0), color=color,
                                alpha=0.2, linewidth=0)
    ax_mae.set(xlabel="forecast step (15 min each)", ylabel=f"MAE ({units})",
               xlim=(0.5, result.output_len + 0.5), ylim=(0, None),
               title=f"{result.station}: test MAE, k = {result.k}")
    ax_mae.set_xticks(horizon if result.output_len <= 12 else horizon[::2])
    ax_mae.legend(fontsize=7, loc="lower right", title="mean MAE (range)", title_fontsize=7)
    ax_mae.grid(True, alpha=0.3)
    return fig


def leakage_readout(result: Leakage, split: str = "chronological") -> str:
    """One HTML line: the chosen split's MAE and window counts, the other split's MAE, and whether
    the chronological MAE lies outside the range of the shuffles (else: no difference)."""
    check_choice("split", split, SPLITS)
    chrono, shuffled = float(result.overall("chronological")[0]), result.overall("shuffled")
    low, high = float(shuffled.min()), float(shuffled.max())
    if low <= chrono <= high:
        verdict = "inside the range of the shuffles: no difference at these settings"
    else:
        verdict = f"{'above' if chrono > high else 'below'} every shuffle's"
    runs = len(shuffled)
    return (f"<b>{split} split</b>: {len(result.test_starts[split]):,} test windows, "
            f"{len(result.train_starts[split]):,} training windows ({result.station}, "
            f"{result.input_len} steps in, {result.output_len} out, k = {result.k}). "
            f"MAE: chronological {chrono:.2f}; shuffled {float(shuffled.mean()):.2f} "
            f"(range {low:.2f}-{high:.2f} over {runs} shuffles), {float(result.final_mae.mean()):.2f} "
            f"on its test windows in the chronological test period. The chronological MAE is "
            f"{verdict}.")


class WindowExplorer(widgets.VBox):
    """Chronological or shuffled split, station, input length, horizon and k of the forecaster.

    ds: the series (its inflow, channel 0, is forecast; its `segments` keep windows inside a day).
    station: a node name, or None for the whole network (every station's inflow in one window).
    Every change reruns `leakage_errors` for the chosen station (or network) and redraws `leakage_figure` into
    `self.plot` (an Image) and `leakage_readout` into `self.readout` (an HTML line under it).
    CSS classes: win-explorer, win-split, win-station, win-input, win-horizon, win-k, win-plot,
    win-readout. `self.last_redraw_s` holds the duration of the last redraw.
    """

    def __init__(self, ds: GraphTimeSeries, station: str | None = None, input_len: int = 12,
                 output_len: int = 3, k: int = 5):
        self.ds = ds
        look = control_look(90, 330)
        self.split = widgets.ToggleButtons(options=list(SPLITS), value="chronological",
                                           description="split", style={"description_width": "90px"})
        self.network = f"all {ds.num_nodes} stations"
        self.station = widgets.Dropdown(options=[self.network, *ds.node_names],
                                        value=station or self.network, description="station",
                                        **look)
        self.input_len = widgets.IntSlider(value=input_len, min=1, max=48, description="input steps",
                                           continuous_update=False, **look)
        self.output_len = widgets.IntSlider(value=output_len, min=1, max=12, description="horizon",
                                            continuous_update=False, **look)
        self.k = widgets.IntSlider(value=k, min=1, max=20, description="k neighbours",
                                   continuous_update=False, **look)
        self.plot = widgets.Image(format="png", layout=widgets.Layout(width="720px"))
        self.readout = widgets.HTML()
        parts = {"split": self.split, "station": self.station, "input": self.input_len,
                 "horizon": self.output_len, "k": self.k, "plot": self.plot,
                 "readout": self.readout}
        for key, part in parts.items():
            part.add_class(f"win-{key}")
        self.last_redraw_s = 0.0
        self.result: Leakage | None = None
        self._cache: dict[tuple, Leakage] = {}
        controls = widgets.HBox([widgets.VBox([self.split, self.station]),
                                 widgets.VBox([self.input_len, self.output_len, self.k])])
        super().__init__([controls, self.plot, self.readout])
        self.add_class("win-explorer")
        for control in (self.station, self.input_len, self.output_len, self.k):
            control.observe(lambda _change: self.redraw(), names="value")
        self.split.observe(lambda _change: self.redraw(recompute=False), names="value")
        self.redraw()

    def compute(self) -> Leakage:
        """Both splits' errors for the current controls (no drawing); settings seen before are
        answered from a cache."""
        key = (self.station.value, self.input_len.value, self.output_len.value, self.k.value)
        if key not in self._cache:
            inflow = self.ds.values[..., 0]  # (time, nodes)
            if self.station.value != self.network:
                inflow = inflow[:, self.ds.node_names.index(self.station.value)]
            self._cache[key] = leakage_errors(inflow, self.ds.segments, *key[1:],
                                              station=self.station.value)
        return self._cache[key]

    def redraw(self, recompute: bool = True) -> None:
        """Rerun the forecaster (unless only the split changed) and refresh plot and readout."""
        start = time.perf_counter()
        if recompute or self.result is None:
            self.result = self.compute()
        steps_per_day = self.ds.meta.get("steps_per_day", 72)
        self.plot.value = figure_png(leakage_figure(self.result, self.split.value, steps_per_day))
        self.readout.value = leakage_readout(self.result, self.split.value)
        self.last_redraw_s = time.perf_counter() - start
