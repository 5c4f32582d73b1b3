"""Notebook 07's depth explorer: accuracy and over-smoothing of deep GCNs against depth.

- `depth_figure(results)`: test MAE and the spread of node embeddings against depth, one line per
  skip connection (`BLOCK_COLORS`).
- `node_baselines(task, part)`: persistence and historical average MAE on a part of the task.
- `depth_runs_figure(runs, baselines)`: the explorer's picture: validation MAE and embedding
  spread against depth, mean and range over seeds, one line per run (the latest drawn boldly).
- `DepthExplorer`: trains GCNs up to a chosen depth with a chosen skip connection and hidden size,
  over several seeds, and draws `depth_runs_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogFormatterSciNotation, NullFormatter

from helpers.checks import check_choice, check_int
from helpers.graph import BLOCKS, mean_pairwise_cosine
from helpers.metrics import masked_mae
from helpers.node_task import DepthResult, NextStepTask, node_model, passenger_mae, train_node_model
from helpers.widgets.base import BASELINE_STYLES, MAX_EARLIER, TrainButtonWidget, control_look

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
    fig, ax_mae, ax_cos = _depth_axes("test MAE (passengers / 15 min)")
    for block in dict.fromkeys(r.block for r in results):
        rows = sorted((r for r in results if r.block == block), key=lambda r: r.depth)
        depths = [r.depth for r in rows]
        style = dict(marker="o", markersize=4, color=BLOCK_COLORS.get(block), label=block)
        ax_mae.plot(depths, [r.mae for r in rows], **style)
        ax_cos.plot(depths, [max(1 - r.cosine, 1e-7) for r in rows], **style)
    if reference_mae is not None:
        ax_mae.axhline(reference_mae, color="0.5", linestyle=":", linewidth=1,
                       label="historical average")
    ax_mae.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _depth_axes(mae_label: str) -> tuple[Figure, object, object]:
    fig = Figure(figsize=(8.0, 3.0), dpi=90, layout="constrained")
    ax_mae, ax_cos = fig.subplots(1, 2)
    for ax in (ax_mae, ax_cos):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
        ax.set_xlabel("depth (graph convolution layers)")
    ax_mae.set(ylabel=mae_label, title="accuracy")
    ax_cos.set(yscale="log", ylabel="1 - mean cosine similarity", title="spread of node embeddings")
    ax_cos.yaxis.set_minor_formatter(NullFormatter())  # label the powers of ten only
    return fig, ax_mae, ax_cos


@torch.no_grad()
def node_baselines(task: NextStepTask, part: str = "val") -> dict[str, float]:
    """MAE in passengers of two forecasts on `part`: the historical average (the usual flow) and
    persistence (the inflow now, as the model sees it: a missing reading counts as usual). Both
    over the samples whose previous sample is the step before (all but each day's first), where
    persistence is defined."""
    rows = task.parts[check_choice("part", part, task.parts)]
    usual_next, steps = task.usual_next[rows], task.steps[rows]  # (n, nodes), (n,)
    target = (1 + task.targets[rows, 0]) * usual_next  # passengers (NaN: missing)
    follows = torch.zeros(len(steps), dtype=torch.bool)
    follows[1:] = steps[1:] == steps[:-1] + 1
    now = (1 + task.features[rows][..., 0]) * usual_next.roll(1, dims=0)  # usual_next[i-1] = usual_t
    target = torch.where(follows[:, None], target, torch.nan)
    target = target.unsqueeze(1)  # (n, horizon 1, nodes), as helpers.metrics expects
    return {"persistence": masked_mae(now.unsqueeze(1), target).item(),
            "historical average": masked_mae(usual_next.unsqueeze(1), target).item()}


def depth_runs_figure(runs: Sequence[tuple[str, Sequence[Sequence[DepthResult]]]],
                      baselines: Mapping[str, float] | None = None) -> Figure:
    """Validation MAE and embedding spread against depth for each run (label, results per seed):
    the mean over seeds as a line, the range (min to max) as a band; the latest run bold, earlier
    ones (the latest MAX_EARLIER) thin; baselines ({name: MAE}) as horizontal lines."""
    if not runs:
        raise ValueError("runs: expected at least one (label, results per seed), got none")
    fig, ax_mae, ax_cos = _depth_axes("validation MAE (passengers / 15 min)")
    ax_cos.yaxis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False,
                                                             minor_thresholds=(1, 0.5)))
    shown = list(runs)[-MAX_EARLIER - 1:]
    for i, (label, per_seed) in enumerate(shown):
        latest = i == len(shown) - 1
        depths = [r.depth for r in per_seed[0]]
        mae = torch.tensor([[r.mae for r in seed] for seed in per_seed])  # (seeds, depths)
        spread = torch.tensor([[max(1 - r.cosine, 1e-7) for r in seed] for seed in per_seed])
        color = BLOCK_COLORS.get(per_seed[0][0].block) if latest else f"C{5 + i % 5}"
        style = dict(marker="o", markersize=4 if latest else 2, color=color,
                     linewidth=2 if latest else 1, alpha=1.0 if latest else 0.6)
        name = f"{label} ({len(per_seed)} seeds)" if latest else f"earlier: {label}"
        for ax, values in ((ax_mae, mae), (ax_cos, spread)):
            ax.plot(depths, values.mean(0), label=name, **style)
            low, high = values.min(0).values, values.max(0).values
            ax.fill_between(depths, low, high, color=color, alpha=0.2 if latest else 0.08, linewidth=0)
            if latest:  # the range as a bar too: a band is invisible at a single depth
                ax.vlines(depths, low, high, color=color, linewidth=1)
    for name, value in (baselines or {}).items():
        color, style = BASELINE_STYLES.get(name, ("0.5", ":"))
        ax_mae.axhline(value, color=color, linestyle=style, linewidth=1.2, label=f"{name}")
    ax_mae.legend(fontsize=7)
    fig.suptitle("line: mean over seeds; band: lowest to highest seed", fontsize=9)
    return fig


class DepthExplorer(TrainButtonWidget):
    """Train GCNs of depth 1, 2, 4, ... up to a chosen depth with a chosen skip connection and
    hidden size, each from `seeds` seeds, and plot `depth_runs_figure`: VALIDATION MAE (the test
    part stays unseen) and embedding spread, mean and range over the seeds, with earlier runs and
    the baselines (`node_baselines` on the validation part) on the same axes.

    task: a `helpers.node_task.NextStepTask`. reference and reference_mae are accepted for old
    calls and not drawn (they were test-set numbers from one seed). The "train" button (or `run()`)
    returns one `DepthResult` per depth whose mae and cosine are the means over the seeds on the
    validation part; `per_seed` holds every network's. CSS classes: depth-explorer, depth-max,
    depth-block, depth-hidden, depth-button, depth-progress, depth-plot, depth-status.
    """

    DEPTHS = (1, 2, 4, 8, 16, 32)

    def __init__(self, task: NextStepTask, max_depth: int = 8, block: str = "res+",
                 hidden: int = 16, reference: Sequence[DepthResult] = (),
                 reference_mae: float | None = None, seed: int = 0, seeds: int = 3,
                 epochs: int = 2):
        check_choice("max_depth", max_depth, self.DEPTHS)
        self.seeds = check_int("seeds", seeds)
        self.task, self.seed, self.epochs = task, seed, check_int("epochs", epochs)
        look = control_look(110, 300)
        self.max_depth = widgets.Dropdown(options=list(self.DEPTHS), value=max_depth,
                                          description="up to depth", **look)
        self.block = widgets.Dropdown(options=list(BLOCKS), value=block, description="connection",
                                      **look)
        self.hidden = widgets.Dropdown(options=[8, 16, 32, 64], value=hidden,
                                       description="hidden size", **look)
        self.baselines = node_baselines(task, "val")
        self.results: list[DepthResult] = []
        self.per_seed: list[list[DepthResult]] = []
        self.runs: list[tuple[str, list[list[DepthResult]]]] = []
        super().__init__("depth-explorer",
                         {"max": self.max_depth, "block": self.block, "hidden": self.hidden},
                         status=f"press train: {seeds} seeds per depth, every depth up to the one "
                                f"chosen", plot_width="720px")

    def _network(self, depth: int, seed: int) -> DepthResult:
        """Train one GCN and measure it on the validation part."""
        torch.manual_seed(seed)
        model = node_model(True, self.task.adjacency, hidden=self.hidden.value, num_layers=depth,
                           block=self.block.value)
        history = train_node_model(model, self.task, epochs=self.epochs, seed=seed)
        val = self.task.features[self.task.parts["val"]][:256]
        with torch.no_grad():
            model.eval()
            cosine = mean_pairwise_cosine(model.embed(val)).mean().item()
        return DepthResult(self.block.value, depth, passenger_mae(model, self.task, "val"), cosine,
                           history.train_loss[-1], sum(history.seconds))

    def _train(self) -> list[DepthResult]:
        """Train one network per depth and seed with the current settings and redraw."""
        depths = [d for d in self.DEPTHS if d <= self.max_depth.value]
        total, done = self.seeds * sum(depths), 0  # progress in layers trained
        self.per_seed = []
        for seed in range(self.seed, self.seed + self.seeds):
            rows = []
            for depth in depths:
                self.step(done, total, f"training: seed {seed - self.seed + 1}/{self.seeds}, "
                                       f"depth {depth} ...")
                rows.append(self._network(depth, seed))
                done += depth
            self.per_seed.append(rows)
        self.step(total, total)
        self.results = [DepthResult(self.block.value, depth,
                                    sum(rows[i].mae for rows in self.per_seed) / self.seeds,
                                    sum(rows[i].cosine for rows in self.per_seed) / self.seeds,
                                    sum(rows[i].train_loss for rows in self.per_seed) / self.seeds,
                                    sum(rows[i].seconds for rows in self.per_seed))
                        for i, depth in enumerate(depths)]
        label = f"{self.block.value}, hidden {self.hidden.value}"
        self.runs.append((label, self.per_seed))
        best = min(self.results, key=lambda r: r.mae)
        maes = [rows[-1].mae for rows in self.per_seed]
        self.show(depth_runs_figure(self.runs, self.baselines),
                  f"validation MAE, mean of {self.seeds} seeds: best {best.mae:.2f} at depth "
                  f"{best.depth}; deepest ({depths[-1]}): {self.results[-1].mae:.2f} (range "
                  f"{min(maes):.2f}-{max(maes):.2f}); historical average "
                  f"{self.baselines['historical average']:.2f}")
        return self.results
