"""Notebook 05's widgets: the optimizer explorer and the training playground.

- `explorer_settings`, `explorer_figure`, `explorer_readout`: what the explorer computes and draws,
  plain functions that work without a browser; `OPTIMIZER_COLORS`: one colour per optimizer;
  `EXPLORER_LRS`: each optimizer's starting learning rate on each surface.
- `OptimizerExplorer`: sliders and ticks wired to them; every change redraws a PNG in an
  `ipywidgets.Image`. Its controls carry CSS classes (`opt-...`) so a browser test can find them.
- `TrainingPlayground`: train a small model with a chosen learning rate, batch size and optimizer,
  with live loss curves (`widgets.base.training_figure`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator
from torch.utils.data import DataLoader, Dataset

from helpers.checks import check_choice, check_int
from helpers.data import shuffled_loader
from helpers.optim import OPTIMIZERS, SURFACES, OptimizerPath, get_surface, optimizer_paths, surface_grid
from helpers.plots import figure_png
from helpers.train import OPTIMIZER_NAMES, History, fit, make_optimizer
from helpers.widgets.base import TrainButtonWidget, control_look, training_figure

#: One colour per optimizer, the same in every figure.
OPTIMIZER_COLORS = dict(zip(OPTIMIZERS, ["C0", "C1", "C2", "C3", "C4"], strict=True))

#: The explorer's starting learning rate of each optimizer on each surface. SGD's and Momentum's
#: lr multiplies the gradient, so it must stay below 2 / (largest curvature); AdaGrad's, RMSProp's
#: and Adam's divide the gradient by its own scale first, so their lr is roughly a step length in
#: parameter units. Each value is a round number at which that optimizer makes steady progress in
#: the surface's suggested number of steps (notebook 05 compares them); none is tuned to be best.
EXPLORER_LRS: dict[str, dict[str, float]] = {
    "ill-conditioned bowl": {"SGD": 0.3, "Momentum": 0.1, "AdaGrad": 1.0, "RMSProp": 0.1,
                             "Adam": 0.1},
    "Rosenbrock": {"SGD": 0.002, "Momentum": 0.002, "AdaGrad": 1.0, "RMSProp": 0.05, "Adam": 0.2},
    "saddle": {"SGD": 0.05, "Momentum": 0.05, "AdaGrad": 0.05, "RMSProp": 0.05, "Adam": 0.05},
}


def explorer_settings(
    optimizers: Sequence[str],
    lr: float | Mapping[str, float],
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    alpha: float = 0.99,
) -> dict[str, dict[str, object]]:
    """Turn the explorer's controls into step-function keyword arguments per optimizer.

    lr: one learning rate for all, or {name: lr} with an entry for each optimizer in `optimizers`;
    `momentum` is Momentum's, `(beta1, beta2)` are Adam's betas and `alpha` is RMSProp's
    squared-gradient decay. Returns {name: kwargs} in OPTIMIZERS order.
    """
    unknown = [name for name in optimizers if name not in OPTIMIZERS]
    if unknown:
        raise ValueError(f"optimizers must be among {list(OPTIMIZERS)}, got {unknown}")
    rates = lr if isinstance(lr, Mapping) else {name: lr for name in optimizers}
    missing = [name for name in optimizers if name not in rates]
    if missing:
        raise ValueError(f"lr: expected a learning rate for each of {list(optimizers)}, "
                         f"got none for {missing}")
    extra = {"Momentum": {"momentum": momentum}, "RMSProp": {"alpha": alpha},
             "Adam": {"betas": (beta1, beta2)}}
    return {name: {"lr": rates[name], **extra.get(name, {})}
            for name in OPTIMIZERS if name in optimizers}


@lru_cache(maxsize=8)
def _contour_data(surface_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid and log-spaced contour levels of the loss gap f - f* (computed once per surface)."""
    s = SURFACES[surface_name]
    X, Y, Z = (t.numpy() for t in surface_grid(s, 120))
    gap = Z - s.min_loss
    levels = np.geomspace(max(np.quantile(gap, 0.005), 1e-3), gap.max(), 14)
    return X, Y, gap, levels


def explorer_figure(surface: str, paths: Mapping[str, OptimizerPath],
                    title: str | None = None) -> Figure:
    """Two panels: the optimizers' paths on the surface's contour plot, and their loss curves.

    title: an optional headline above both panels.
    surface: a key of SURFACES; paths: the result of `optimizer_paths` on it. The right panel shows
    f(x_t) - f* (the gap to the minimum) on a log scale, so every surface's curves are comparable.
    Built with matplotlib's object API (no pyplot), so nothing is shown unless asked for.
    """
    s = get_surface(surface)
    X, Y, gap, levels = _contour_data(s.name)
    fig = Figure(figsize=(8.0, 3.3), dpi=90, layout="none")  # constrained layout: 2x redraw time
    ax_map, ax_loss = fig.subplots(1, 2, width_ratios=[1.15, 1])
    fig.subplots_adjust(left=0.085, right=0.985, bottom=0.14, top=0.91, wspace=0.32)
    ax_map.contour(X, Y, gap, levels=levels, colors="0.6", linewidths=0.7)
    ax_map.plot(*s.minimum, marker="*", color="k", markersize=11, linestyle="none")
    ax_map.plot(*s.start, marker="o", color="k", markersize=5, linestyle="none")
    for name, path in paths.items():
        color = OPTIMIZER_COLORS[name]
        xy = path.xy.numpy()
        ax_map.plot(xy[:, 0], xy[:, 1], "-", color=color, linewidth=1.4, marker=".", markersize=3,
                    label=name)
        gap_t = np.clip(path.loss.numpy() - s.min_loss, 1e-12, None)
        ax_loss.semilogy(gap_t, color=color, linewidth=1.4, label=name)
        if path.diverged_at is not None:
            ax_loss.plot(path.diverged_at - 1, gap_t[path.diverged_at - 1], "x", color=color,
                         markersize=9)
    ax_map.set(xlim=s.xlim, ylim=s.ylim, xlabel="x", ylabel="y",
               title=f"{s.name}: paths from o to *")
    ax_loss.set(xlabel="step", ylabel="loss - minimum (log)",
                title="loss gap per step (x: diverged)")
    if title:
        fig.suptitle(title, fontsize=11)
        fig.subplots_adjust(top=0.82)
    if paths:
        ax_loss.legend(loc="lower left", fontsize=7, framealpha=0.8)
    ax_loss.grid(True, alpha=0.3)
    # plain-text tick labels: mathtext ones cost 70 ms a redraw
    ax_loss.yaxis.set_major_formatter(FuncFormatter(_power_of_ten))
    ax_loss.yaxis.set_minor_locator(NullLocator())
    return fig


def _power_of_ten(value: float, _position) -> str:
    return f"1e{math.log10(value):.0f}" if value > 0 else ""


def explorer_readout(paths: Mapping[str, OptimizerPath]) -> str:
    """One line: each optimizer's final loss with 4 decimals, or the step at which it diverged."""
    parts = []
    for name, path in paths.items():
        if path.diverged_at is not None:
            parts.append(f"{name} diverged at step {path.diverged_at}")
        else:
            parts.append(f"{name} {path.loss[-1].item():.4f}")
    return "final loss: " + " | ".join(parts) if parts else "final loss: (no optimiser ticked)"


class OptimizerExplorer(widgets.VBox):
    """The optimizer explorer: pick a surface, tick optimizers, set each one's learning rate, the
    momentum, betas, alpha, the gradient noise and the number of steps.

    Every change recomputes the paths with `optimizer_paths` and redraws `explorer_figure` into
    `self.plot` (an Image) and `explorer_readout` into `self.readout` (a Label). Choosing a surface
    loads its learning rates (`EXPLORER_LRS`) and number of steps. `self.lrs` holds one learning-rate
    slider per optimizer; `noise` is the standard deviation of the Gaussian noise added to every
    gradient coordinate (the same draws for all optimizers). CSS classes: opt-explorer, opt-surface,
    opt-check-<name>, opt-lr and opt-lr-<name> (each learning rate), opt-momentum, opt-beta1,
    opt-beta2, opt-alpha, opt-noise, opt-steps, opt-plot, opt-readout (names lower case).
    `self.last_redraw_s` holds the duration of the last redraw.
    """

    def __init__(self, surface: str = "ill-conditioned bowl",
                 optimizers: Sequence[str] = ("SGD", "Momentum", "Adam")):
        s = get_surface(surface)
        explorer_settings(optimizers, lr=s.lr)  # validates the names
        look = control_look(110, 350)

        def slider(cls, css, description, value, **kw):
            w = cls(value=value, description=description, continuous_update=False, **look, **kw)
            w.add_class(css)
            return w

        self.surface = widgets.Dropdown(options=list(SURFACES), value=s.name, description="surface",
                                        **look)
        self.surface.add_class("opt-surface")
        tick_layout = widgets.Layout(width="auto", margin="0 16px 0 0")
        self.checks = {name: widgets.Checkbox(value=name in optimizers, description=name,
                                              indent=False, layout=tick_layout)
                       for name in OPTIMIZERS}
        for name, box in self.checks.items():
            box.add_class(f"opt-check-{name.lower()}")
        self.lrs = {name: slider(widgets.FloatLogSlider, "opt-lr", f"lr {name}",
                                 EXPLORER_LRS[s.name][name], base=10, min=-4, max=0.5, step=0.05,
                                 readout_format=".4f")
                    for name in OPTIMIZERS}
        for name, w in self.lrs.items():
            w.add_class(f"opt-lr-{name.lower()}")
        self.momentum = slider(widgets.FloatSlider, "opt-momentum", "momentum", 0.9, min=0.0,
                               max=0.99, step=0.01)
        self.beta1 = slider(widgets.FloatSlider, "opt-beta1", "Adam beta1", 0.9, min=0.0, max=0.99,
                            step=0.01)
        self.beta2 = slider(widgets.FloatSlider, "opt-beta2", "Adam beta2", 0.999, min=0.9,
                            max=0.9999, step=0.0001, readout_format=".4f")
        self.alpha = slider(widgets.FloatSlider, "opt-alpha", "RMSProp alpha", 0.99, min=0.5,
                            max=0.999, step=0.001, readout_format=".3f")
        self.steps = slider(widgets.IntSlider, "opt-steps", "steps", s.steps, min=10, max=600,
                            step=10)
        self.noise = slider(widgets.FloatSlider, "opt-noise", "gradient noise", 0.0, min=0.0,
                            max=5.0, step=0.1)
        self.plot = widgets.Image(format="png", layout=widgets.Layout(width="720px"))
        self.plot.add_class("opt-plot")
        self.readout = widgets.Label()
        self.readout.add_class("opt-readout")
        self.last_redraw_s = 0.0
        self._paused = False
        ticks = widgets.HBox([widgets.Label("optimisers:", layout=widgets.Layout(width="115px")),
                              *self.checks.values()])
        sliders = widgets.HBox([
            widgets.VBox([self.surface, self.steps, self.noise, self.momentum, self.beta1,
                          self.beta2, self.alpha]),
            widgets.VBox(list(self.lrs.values()))])
        super().__init__([sliders, ticks, self.plot, self.readout])
        self.add_class("opt-explorer")
        for w in [*self.lrs.values(), self.momentum, self.beta1, self.beta2, self.alpha,
                  self.noise, self.steps, *self.checks.values()]:
            w.observe(self._on_change, names="value")
        self.surface.observe(self._on_surface, names="value")
        for box in self.checks.values():
            box.observe(self._enable_controls, names="value")
        self._enable_controls()
        self.redraw()

    @property
    def ticked(self) -> list[str]:
        """The names of the ticked optimizers, in OPTIMIZERS order."""
        return [name for name, box in self.checks.items() if box.value]

    def compute(self) -> dict[str, OptimizerPath]:
        """The paths for the current control values (no drawing)."""
        rates = {name: w.value for name, w in self.lrs.items()}
        settings = explorer_settings(self.ticked, rates, self.momentum.value,
                                     self.beta1.value, self.beta2.value, self.alpha.value)
        if not settings:
            return {}
        return optimizer_paths(self.surface.value, settings, steps=self.steps.value,
                               noise=self.noise.value)

    def redraw(self) -> None:
        """Recompute the paths and refresh the plot and the readout."""
        t0 = time.perf_counter()
        paths = self.compute()
        self.plot.value = figure_png(explorer_figure(self.surface.value, paths))
        self.readout.value = explorer_readout(paths)
        self.last_redraw_s = time.perf_counter() - t0

    @contextmanager
    def _hold(self):
        """Change several controls with one redraw at the end."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False
        self.redraw()

    def _on_change(self, _change) -> None:
        if not self._paused:
            self.redraw()

    def _enable_controls(self, _change=None) -> None:
        """Disable the controls of unticked optimizers: moving them would change nothing."""
        ticked = set(self.ticked)
        for name, w in self.lrs.items():
            w.disabled = name not in ticked
        self.momentum.disabled = "Momentum" not in ticked
        self.beta1.disabled = self.beta2.disabled = "Adam" not in ticked
        self.alpha.disabled = "RMSProp" not in ticked

    def _on_surface(self, change) -> None:
        s = get_surface(change["new"])
        with self._hold():
            for name, w in self.lrs.items():
                w.value = EXPLORER_LRS[s.name][name]
            self.steps.value = s.steps


class TrainingPlayground(TrainButtonWidget):
    """Train a small model on a slice of data with a chosen learning rate, batch size and optimizer.

    make_model(): returns a fresh model (called after seeding, so every run starts from the same
    weights); train_set / val_set: Datasets of (x, y); loss_fn(prediction, target) -> mean loss.
    The "train" button (or `run()`) trains for `epochs` epochs with `helpers.train.fit` and redraws
    the loss curves and the status line (validation loss, never test) after every epoch; earlier
    runs stay on the plot, labelled with their settings (`runs`: (label, validation losses)).
    baselines: optional {name: validation loss in loss_fn's units} drawn as horizontal lines (e.g.
    from `helpers.widgets.validation_baselines`). CSS classes: train-playground, train-lr,
    train-batch, train-optimizer, train-button, train-progress, train-plot, train-status.
    """

    def __init__(self, make_model, train_set: Dataset, val_set: Dataset, loss_fn, epochs: int = 6,
                 seed: int = 0, lr: float = 1e-3, batch_size: int = 32, optimizer: str = "Adam",
                 baselines: Mapping[str, float] | None = None):
        check_choice("optimizer", optimizer, OPTIMIZER_NAMES)
        self.epochs = check_int("epochs", epochs)
        self.make_model, self.train_set, self.val_set = make_model, train_set, val_set
        self.loss_fn, self.seed = loss_fn, seed
        self.baselines = dict(baselines or {})
        look = control_look(100, 340)
        self.lr = widgets.FloatLogSlider(value=lr, base=10, min=-4, max=0, step=0.1,
                                         description="learning rate", readout_format=".4f",
                                         continuous_update=False, **look)
        self.batch_size = widgets.Dropdown(options=[8, 16, 32, 64, 128, 256], value=batch_size,
                                           description="batch size", **look)
        self.optimizer = widgets.Dropdown(options=list(OPTIMIZER_NAMES), value=optimizer,
                                          description="optimiser", **look)
        self.history: History | None = None
        self.runs: list[tuple[str, list[float]]] = []
        super().__init__("train-playground", {"lr": self.lr, "batch": self.batch_size,
                                              "optimizer": self.optimizer}, epochs=epochs)
        if self.baselines:
            self.plot.value = figure_png(training_figure(History(), epochs, "press train",
                                                         baselines=self.baselines))

    def _train(self) -> History:
        """Train a fresh model with the current settings; the plot and status update every epoch."""
        settings = f"{self.optimizer.value}, lr {self.lr.value:.4f}, batch {self.batch_size.value}"
        torch.manual_seed(self.seed)
        model = self.make_model()
        train_loader = shuffled_loader(self.train_set, self.batch_size.value, self.seed)
        val_loader = DataLoader(self.val_set, batch_size=256)
        optimizer = make_optimizer(self.optimizer.value, model.parameters(), self.lr.value)
        view = self.epoch_view(self.epochs, settings, train_loss=True, earlier=list(self.runs),
                               baselines=self.baselines)
        self.history = fit(model, train_loader, self.loss_fn, optimizer, self.epochs,
                           val_loader=val_loader, on_epoch_end=view)
        self.runs.append((settings, list(self.history.val_loss)))
        return self.history
