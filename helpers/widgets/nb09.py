"""Notebook 09's trick explorer: the cost of a training step with memory tricks, from cached
measurements (the widget table of `benchmarks/speed.py`).

- `trick_costs(rows, tricks, batch_size)`: the measured time and peak memory of one combination.
- `trick_verdict(rows, tricks, batch_size, band)`: faster, slower or no difference than the plain
  step at the same batch size, judged against the measured noise (`helpers.speed.time_verdict`).
- `trick_figure(rows, tricks, batch_size, band=...)`: that combination against the plain step, as
  bars; the time panel shades the no-difference band around the plain step.
- `TrickExplorer(rows, band)`: tick tricks and pick a batch size; the bars and a one-line verdict
  redraw from the cache.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as widgets
from matplotlib.figure import Figure

from helpers.plots import cost_bars, figure_png
from helpers.speed import time_verdict

_SPREAD = ("seconds", "seconds_q1", "seconds_q3")


def trick_costs(rows: Sequence[Mapping], tricks: Sequence[str],
                batch_size: int) -> dict[str, float]:
    """The cached cost of one training step: {"seconds", "peak_bytes"} of `tricks` at `batch_size`.

    rows: the widget table of benchmarks/speed.py (`result["widget"]`), each {"batch_size",
    "tricks", "seconds", "peak_bytes"}; the order of `tricks` does not matter. Raises ValueError for
    a combination that was not measured.
    """
    wanted = set(tricks)
    for row in rows:
        if row["batch_size"] == batch_size and set(row["tricks"]) == wanted:
            return {k: row[k] for k in (*_SPREAD, "peak_bytes") if k in row}
    measured = sorted({row["batch_size"] for row in rows})
    offered = sorted({t for row in rows for t in row["tricks"]})
    raise ValueError(f"no measurement of tricks {sorted(wanted)} at batch size {batch_size}; "
                     f"measured batch sizes: {measured}, tricks: combinations of {offered}")


def trick_verdict(rows: Sequence[Mapping], tricks: Sequence[str], batch_size: int,
                  band: float = 0.0) -> str:
    """"faster", "slower" or "no difference": the step with `tricks` against the plain step at the
    same `batch_size`. band: the relative noise of a timing (`helpers.speed.noise_band`); rows
    without quartiles are judged by the ratio of the times alone."""
    chosen, plain = trick_costs(rows, tricks, batch_size), trick_costs(rows, (), batch_size)
    if not all(k in c for c in (chosen, plain) for k in _SPREAD):
        chosen = {**chosen, "seconds_q1": chosen["seconds"], "seconds_q3": chosen["seconds"]}
        plain = {**plain, "seconds_q1": plain["seconds"], "seconds_q3": plain["seconds"]}
    return time_verdict(chosen, plain, band)


def trick_figure(rows: Sequence[Mapping], tricks: Sequence[str], batch_size: int,
                 reference_batch: int = 32, band: float | None = None) -> Figure:
    """Time and peak memory of a step with `tricks` at `batch_size`, against the plain step at
    `reference_batch` (grey) and the plain step at `batch_size`; bars are relative to the reference
    (`helpers.plots.cost_bars`). band: the relative noise of a timing; when given, the time panel
    shades the times within the noise of the plain step at `batch_size`, and the chosen bar is grey
    when the verdict is "no difference"."""
    chosen = f"{', '.join(sorted(tricks)) or 'plain'}, batch {batch_size}"
    reference = f"plain, batch {reference_batch}"
    plain = f"plain, batch {batch_size}"
    costs = {reference: trick_costs(rows, (), reference_batch), plain: trick_costs(rows, (), batch_size),
             chosen: trick_costs(rows, tricks, batch_size)}  # equal labels merge
    c = costs[chosen]
    fig = cost_bars(costs, reference, title=f"{chosen}: {1000 * c['seconds']:.0f} ms, "
                                            f"{c['peak_bytes'] / 1e6:.1f} MB peak")
    if band is not None:
        time_ax = fig.axes[0]
        level = costs[plain]["seconds"] / costs[reference]["seconds"]
        time_ax.axvspan(level / (1 + band), level * (1 + band), color="gold", alpha=0.3, lw=0,
                        label="no difference (noise)")
        time_ax.legend(loc="lower right", fontsize=7)
        if chosen != plain and trick_verdict(rows, tricks, batch_size, band) == "no difference":
            time_ax.patches[list(costs).index(chosen)].set_color("0.8")
    return fig


class TrickExplorer(widgets.VBox):
    """Tick memory tricks and pick a batch size; the bars of `trick_figure` and a one-line verdict
    update from cached measurements.

    rows: the widget table of benchmarks/speed.py; band: the relative noise of its timings (the
    benchmark's `noise_band`), which decides "no difference". CSS classes: speed-explorer,
    speed-check-<trick>, speed-batch, speed-plot, speed-readout.
    """

    def __init__(self, rows: Sequence[Mapping], band: float = 0.0):
        self.rows = list(rows)
        self.band = band
        names = sorted({t for row in self.rows for t in row["tricks"]})
        sizes = sorted({row["batch_size"] for row in self.rows})
        self.checks = {name: widgets.Checkbox(value=False, description=name, indent=False,
                                              layout=widgets.Layout(width="120px"))
                       for name in names}
        for name, box in self.checks.items():
            box.add_class(f"speed-check-{name}")
        self.batch = widgets.Dropdown(options=sizes, value=sizes[-1], description="batch size")
        self.batch.add_class("speed-batch")
        self.plot = widgets.Image(format="png")
        self.plot.add_class("speed-plot")
        self.readout = widgets.HTML()
        self.readout.add_class("speed-readout")
        for control in (*self.checks.values(), self.batch):
            control.observe(lambda _change: self.redraw(), names="value")
        super().__init__([widgets.HBox([*self.checks.values(), self.batch]), self.readout,
                          self.plot])
        self.add_class("speed-explorer")
        self.redraw()

    @property
    def tricks(self) -> list[str]:
        """The ticked tricks."""
        return [name for name, box in self.checks.items() if box.value]

    def redraw(self) -> None:
        """Redraw `trick_figure` and the verdict for the ticked tricks and the chosen batch size."""
        size = self.batch.value
        self.plot.value = figure_png(trick_figure(self.rows, self.tricks, size,
                                                  reference_batch=max(self.batch.options),
                                                  band=self.band))
        chosen, plain = trick_costs(self.rows, self.tricks, size), trick_costs(self.rows, (), size)
        verdict = trick_verdict(self.rows, self.tricks, size, self.band)
        self.readout.value = (
            f"{', '.join(self.tricks) or 'plain'} at batch {size}: time x"
            f"{chosen['seconds'] / plain['seconds']:.2f}, peak memory x"
            f"{chosen['peak_bytes'] / plain['peak_bytes']:.2f} of the plain step at batch {size}; "
            f"time: <b>{verdict}</b> (noise band x{1 / (1 + self.band):.2f} to x{1 + self.band:.2f})")
