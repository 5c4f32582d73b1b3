"""Notebook 07's depth explorer: accuracy and over-smoothing of deep GCNs against depth.

- `depth_figure(results)`: test MAE and the spread of node embeddings against depth, one line per
  skip connection (`BLOCK_COLORS`).
- `DepthExplorer`: trains GCNs up to a chosen depth with a chosen skip connection and hidden size
  (`helpers.node_task.depth_sweep`) and draws `depth_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from helpers.checks import check_choice
from helpers.graph import BLOCKS
from helpers.node_task import DepthResult, NextStepTask, depth_sweep
from helpers.widgets.base import TrainButtonWidget, control_look

#: One colour per skip connection, the same in every figure of notebook 07.
BLOCK_COLORS = dict(zip(BLOCKS, ["C0", "C2", "C1", "C4"], strict=True))


def depth_figure(results: Sequence[DepthResult], reference_mae: float | None = None,
                 title: str = "") -> Figure:
    """Two panels against depth (log2 axis), one line per skip connection: test MAE in passengers,
    and 1 - mean pairwise cosine similarity of the node embeddings on a log axis (down = embeddings
    collapsing).

    results: records of `helpers.node_task.depth_sweep`; reference_mae: a horizontal line (e.g. the
    historical average's MAE) for scale. Built with matplotlib's object API (no pyplot).
    """
    if not results:
        raise ValueError("results: expected at least one DepthResult, got none")
    fig = Figure(figsize=(8.0, 3.0), dpi=90, layout="constrained")
    ax_mae, ax_cos = fig.subplots(1, 2)
    for block in dict.fromkeys(r.block for r in results):
        rows = sorted((r for r in results if r.block == block), key=lambda r: r.depth)
        depths = [r.depth for r in rows]
        style = dict(marker="o", markersize=4, color=BLOCK_COLORS.get(block), label=block)
        ax_mae.plot(depths, [r.mae for r in rows], **style)
        ax_cos.plot(depths, [max(1 - r.cosine, 1e-7) for r in rows], **style)
    if reference_mae is not None:
        ax_mae.axhline(reference_mae, color="0.5", linestyle=":", linewidth=1,
                       label="historical average")
    for ax in (ax_mae, ax_cos):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
        ax.set_xlabel("depth (graph convolution layers)")
    ax_mae.set(ylabel="test MAE (passengers / 15 min)", title="accuracy")
    ax_cos.set(yscale="log", ylabel="1 - mean cosine similarity", title="spread of node embeddings")
    ax_cos.yaxis.set_minor_formatter(NullFormatter())  # label the powers of ten only
    ax_mae.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


class DepthExplorer(TrainButtonWidget):
    """Train GCNs of depth 1, 2, 4, ... up to a chosen depth with a chosen skip connection and
    hidden size, and plot `depth_figure` (accuracy and embedding spread against depth).

    task: a `helpers.node_task.NextStepTask`; reference: optional `DepthResult`s drawn as well (e.g.
    the notebook's plain stack), and reference_mae a horizontal line. The "train" button (or
    `run()`) calls `depth_sweep`. CSS classes: depth-explorer, depth-max, depth-block, depth-hidden,
    depth-button, depth-plot, depth-status.
    """

    DEPTHS = (1, 2, 4, 8, 16, 32)

    def __init__(self, task: NextStepTask, max_depth: int = 8, block: str = "res+",
                 hidden: int = 16, reference: Sequence[DepthResult] = (),
                 reference_mae: float | None = None, seed: int = 0):
        check_choice("max_depth", max_depth, self.DEPTHS)
        self.task, self.reference, self.reference_mae = task, list(reference), reference_mae
        self.seed = seed
        look = control_look(110, 300)
        self.max_depth = widgets.Dropdown(options=list(self.DEPTHS), value=max_depth,
                                          description="up to depth", **look)
        self.block = widgets.Dropdown(options=list(BLOCKS), value=block, description="connection",
                                      **look)
        self.hidden = widgets.Dropdown(options=[8, 16, 32, 64], value=hidden,
                                       description="hidden size", **look)
        self.results: list[DepthResult] = []
        super().__init__("depth-explorer",
                         {"max": self.max_depth, "block": self.block, "hidden": self.hidden},
                         status="press train (about a second per layer trained)",
                         plot_width="720px")

    def _train(self) -> list[DepthResult]:
        """Train one network per depth with the current settings and redraw."""
        depths = [d for d in self.DEPTHS if d <= self.max_depth.value]
        self.status.value = f"training {len(depths)} networks ..."
        self.results = depth_sweep(self.task, depths, [self.block.value], hidden=self.hidden.value,
                                   seed=self.seed)
        shown = [r for r in self.reference if r.block != self.block.value] + self.results
        title = f"{self.block.value}, hidden {self.hidden.value}"
        best = min(self.results, key=lambda r: r.mae)
        self.show(depth_figure(shown, self.reference_mae, title),
                  f"best test MAE {best.mae:.2f} at depth {best.depth}; "
                  f"deepest: {self.results[-1].mae:.2f}")
        return self.results
