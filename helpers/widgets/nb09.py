"""Notebook 09's trick explorer: the cost of a training step with memory tricks, from cached
measurements (the widget table of `benchmarks/speed.py`).

- `trick_costs(rows, tricks, batch_size)`: the measured time and peak memory of one combination.
- `trick_figure(rows, tricks, batch_size)`: that combination against the plain step, as bars.
- `TrickExplorer(rows)`: tick tricks and pick a batch size; the bars redraw from the cache.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as widgets
from matplotlib.figure import Figure

from helpers.plots import cost_bars, figure_png


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
            return {"seconds": row["seconds"], "peak_bytes": row["peak_bytes"]}
    measured = sorted({row["batch_size"] for row in rows})
    offered = sorted({t for row in rows for t in row["tricks"]})
    raise ValueError(f"no measurement of tricks {sorted(wanted)} at batch size {batch_size}; "
                     f"measured batch sizes: {measured}, tricks: combinations of {offered}")


def trick_figure(rows: Sequence[Mapping], tricks: Sequence[str], batch_size: int,
                 reference_batch: int = 32) -> Figure:
    """Time and peak memory of a step with `tricks` at `batch_size`, against the plain step at
    `reference_batch` (grey) and the plain step at `batch_size`; bars are relative to the reference
    (`helpers.plots.cost_bars`)."""
    chosen = f"{', '.join(sorted(tricks)) or 'plain'}, batch {batch_size}"
    reference = f"plain, batch {reference_batch}"
    costs = {reference: trick_costs(rows, (), reference_batch),
             f"plain, batch {batch_size}": trick_costs(rows, (), batch_size),
             chosen: trick_costs(rows, tricks, batch_size)}  # equal labels merge
    c = costs[chosen]
    return cost_bars(costs, reference, title=f"{chosen}: {1000 * c['seconds']:.0f} ms, "
                                             f"{c['peak_bytes'] / 1e6:.1f} MB peak")


class TrickExplorer(widgets.VBox):
    """Tick memory tricks and pick a batch size; the bars of `trick_figure` update from cached
    measurements.

    rows: the widget table of benchmarks/speed.py. CSS classes: speed-explorer,
    speed-check-<trick>, speed-batch, speed-plot.
    """

    def __init__(self, rows: Sequence[Mapping]):
        self.rows = list(rows)
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
        for control in (*self.checks.values(), self.batch):
            control.observe(lambda _change: self.redraw(), names="value")
        super().__init__([widgets.HBox([*self.checks.values(), self.batch]), self.plot])
        self.add_class("speed-explorer")
        self.redraw()

    @property
    def tricks(self) -> list[str]:
        """The ticked tricks."""
        return [name for name, box in self.checks.items() if box.value]

    def redraw(self) -> None:
        """Redraw `trick_figure` for the ticked tricks and the chosen batch size."""
        self.plot.value = figure_png(trick_figure(self.rows, self.tricks, self.batch.value,
                                                  reference_batch=max(self.batch.options)))
