"""Interactive widgets of the notebooks, each a thin shell over plain, tested functions.

The functions that compute and draw (`explorer_settings`, `explorer_figure`, `explorer_readout`)
work without a browser; the widget classes only wire sliders to them and show the result as a PNG
in an `ipywidgets.Image`. Every widget carries CSS classes (`opt-...`) so a browser test can find
its controls.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache

import ipywidgets as widgets
import numpy as np
import PIL.Image
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, FuncFormatter, NullFormatter, NullLocator
from torch.utils.data import DataLoader, Dataset

from helpers.optim import OPTIMISERS, SURFACES, OptimiserPath, get_surface, optimiser_paths, surface_grid
from helpers.train import OPTIMIZER_NAMES, History, fit, make_optimizer

__all__ = [
    "OPTIMISER_COLOURS",
    "explorer_settings",
    "explorer_figure",
    "explorer_readout",
    "figure_png",
    "OptimiserExplorer",
    "training_figure",
    "TrainingPlayground",
]

#: One colour per optimiser, the same in every figure.
OPTIMISER_COLOURS = dict(zip(OPTIMISERS, ["C0", "C1", "C2", "C3", "C4"], strict=True))


def explorer_settings(
    optimisers: Sequence[str],
    lr: float,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    alpha: float = 0.99,
) -> dict[str, dict[str, object]]:
    """Turn the explorer's controls into step-function keyword arguments per optimiser.

    One learning rate for all; `momentum` is Momentum's, `(beta1, beta2)` are Adam's betas and
    `alpha` is RMSProp's squared-gradient decay. Returns {name: kwargs} in OPTIMISERS order.
    """
    unknown = [name for name in optimisers if name not in OPTIMISERS]
    if unknown:
        raise ValueError(f"optimisers must be among {list(OPTIMISERS)}, got {unknown}")
    extra = {"Momentum": {"momentum": momentum}, "RMSProp": {"alpha": alpha}, "Adam": {"betas": (beta1, beta2)}}
    return {name: {"lr": lr, **extra.get(name, {})} for name in OPTIMISERS if name in optimisers}


@lru_cache(maxsize=8)
def _contour_data(surface_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid and log-spaced contour levels of the loss gap f - f* (computed once per surface)."""
    s = SURFACES[surface_name]
    X, Y, Z = (t.numpy() for t in surface_grid(s, 120))
    gap = Z - s.min_loss
    levels = np.geomspace(max(np.quantile(gap, 0.005), 1e-3), gap.max(), 14)
    return X, Y, gap, levels


def explorer_figure(surface: str, paths: Mapping[str, OptimiserPath], title: str | None = None) -> Figure:
    """Two panels: the optimisers' paths on the surface's contour plot, and their loss curves.

    title: an optional headline above both panels.
    surface: a key of SURFACES; paths: the result of `optimiser_paths` on it. The right panel shows
    f(x_t) - f* (the gap to the minimum) on a log scale, so every surface's curves are comparable.
    Built with matplotlib's object API (no pyplot), so nothing is shown unless asked for.
    """
    s = get_surface(surface)
    X, Y, gap, levels = _contour_data(s.name)
    fig = Figure(figsize=(8.0, 3.3), dpi=90, layout="none")  # fixed margins: constrained layout doubles redraw time
    ax_map, ax_loss = fig.subplots(1, 2, width_ratios=[1.15, 1])
    fig.subplots_adjust(left=0.085, right=0.985, bottom=0.14, top=0.91, wspace=0.32)
    ax_map.contour(X, Y, gap, levels=levels, colors="0.6", linewidths=0.7)
    ax_map.plot(*s.minimum, marker="*", color="k", markersize=11, linestyle="none")
    ax_map.plot(*s.start, marker="o", color="k", markersize=5, linestyle="none")
    for name, path in paths.items():
        colour = OPTIMISER_COLOURS[name]
        xy = path.xy.numpy()
        ax_map.plot(xy[:, 0], xy[:, 1], "-", color=colour, linewidth=1.4, marker=".", markersize=3, label=name)
        gap_t = np.clip(path.loss.numpy() - s.min_loss, 1e-12, None)
        ax_loss.semilogy(gap_t, color=colour, linewidth=1.4, label=name)
        if path.diverged_at is not None:
            ax_loss.plot(path.diverged_at - 1, gap_t[path.diverged_at - 1], "x", color=colour, markersize=9)
    ax_map.set(xlim=s.xlim, ylim=s.ylim, xlabel="x", ylabel="y", title=f"{s.name}: paths from o to *")
    ax_loss.set(xlabel="step", ylabel="loss - minimum (log)", title="loss gap per step (x: diverged)")
    if title:
        fig.suptitle(title, fontsize=11)
        fig.subplots_adjust(top=0.82)
    if paths:
        ax_loss.legend(loc="lower left", fontsize=7, framealpha=0.8)
    ax_loss.grid(True, alpha=0.3)
    ax_loss.yaxis.set_major_formatter(FuncFormatter(_power_of_ten))  # plain text: mathtext labels cost 70 ms
    ax_loss.yaxis.set_minor_locator(NullLocator())
    return fig


def _power_of_ten(value: float, _position) -> str:
    return f"1e{math.log10(value):.0f}" if value > 0 else ""


def explorer_readout(paths: Mapping[str, OptimiserPath]) -> str:
    """One line: each optimiser's final loss with 4 decimals, or the step at which it diverged."""
    parts = []
    for name, path in paths.items():
        if path.diverged_at is not None:
            parts.append(f"{name} diverged at step {path.diverged_at}")
        else:
            parts.append(f"{name} {path.loss[-1].item():.4f}")
    return "final loss: " + " | ".join(parts) if parts else "final loss: (no optimiser ticked)"


def figure_png(fig: Figure, dpi: int = 90, colors: int | None = 64) -> bytes:
    """The figure as PNG bytes (for an `ipywidgets.Image`), reduced to `colors` colours (None: keep all).

    A line plot needs few colours; the palette PNG is about a fifth of the full-colour one, which keeps
    widget updates and the notebooks small.
    """
    if colors is not None and (isinstance(colors, bool) or not isinstance(colors, int) or not 2 <= colors <= 256):
        raise ValueError(f"colors must be an int in [2, 256] or None, got {colors!r}")
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


class OptimiserExplorer(widgets.VBox):
    """The optimiser explorer: pick a surface, tick optimisers, set lr, momentum, betas and steps.

    Every change recomputes the paths with `optimiser_paths` and redraws `explorer_figure` into
    `self.plot` (an Image) and `explorer_readout` into `self.readout` (a Label). Choosing a surface
    loads its suggested learning rate and number of steps. CSS classes: opt-explorer, opt-surface,
    opt-check-<name>, opt-lr, opt-momentum, opt-beta1, opt-beta2, opt-alpha, opt-steps, opt-plot,
    opt-readout. `self.last_redraw_s` holds the duration of the last redraw.
    """

    def __init__(self, surface: str = "ill-conditioned bowl", optimisers: Sequence[str] = ("SGD", "Momentum", "Adam")):
        s = get_surface(surface)
        explorer_settings(optimisers, lr=s.lr)  # validates the names
        style, wide = {"description_width": "110px"}, widgets.Layout(width="350px")

        def slider(cls, css, description, value, **kw):
            w = cls(value=value, description=description, continuous_update=False, style=style, layout=wide, **kw)
            w.add_class(css)
            return w

        self.surface = widgets.Dropdown(
            options=list(SURFACES), value=s.name, description="surface", style=style, layout=wide
        )
        self.surface.add_class("opt-surface")
        self.checks = {
            name: widgets.Checkbox(
                value=name in optimisers,
                description=name,
                indent=False,
                layout=widgets.Layout(width="auto", margin="0 16px 0 0"),
            )
            for name in OPTIMISERS
        }
        for name, box in self.checks.items():
            box.add_class(f"opt-check-{name.lower()}")
        self.lr = slider(
            widgets.FloatLogSlider,
            "opt-lr",
            "learning rate",
            s.lr,
            base=10,
            min=-4,
            max=0,
            step=0.05,
            readout_format=".4f",
        )
        self.momentum = slider(widgets.FloatSlider, "opt-momentum", "momentum", 0.9, min=0.0, max=0.99, step=0.01)
        self.beta1 = slider(widgets.FloatSlider, "opt-beta1", "Adam beta1", 0.9, min=0.0, max=0.99, step=0.01)
        self.beta2 = slider(
            widgets.FloatSlider,
            "opt-beta2",
            "Adam beta2",
            0.999,
            min=0.9,
            max=0.9999,
            step=0.0001,
            readout_format=".4f",
        )
        self.alpha = slider(
            widgets.FloatSlider,
            "opt-alpha",
            "RMSProp alpha",
            0.99,
            min=0.5,
            max=0.999,
            step=0.001,
            readout_format=".3f",
        )
        self.steps = slider(widgets.IntSlider, "opt-steps", "steps", s.steps, min=10, max=600, step=10)
        self.plot = widgets.Image(format="png", layout=widgets.Layout(width="720px"))
        self.plot.add_class("opt-plot")
        self.readout = widgets.Label()
        self.readout.add_class("opt-readout")
        self.last_redraw_s = 0.0
        self._paused = False

        ticks = widgets.HBox(
            [widgets.Label("optimisers:", layout=widgets.Layout(width="115px")), *self.checks.values()]
        )
        sliders = widgets.HBox(
            [
                widgets.VBox([self.surface, self.lr, self.steps, self.momentum]),
                widgets.VBox([self.beta1, self.beta2, self.alpha]),
            ]
        )
        super().__init__([sliders, ticks, self.plot, self.readout])
        self.add_class("opt-explorer")
        for w in [self.lr, self.momentum, self.beta1, self.beta2, self.alpha, self.steps, *self.checks.values()]:
            w.observe(self._on_change, names="value")
        self.surface.observe(self._on_surface, names="value")
        self.redraw()

    @property
    def ticked(self) -> list[str]:
        """The names of the ticked optimisers, in OPTIMISERS order."""
        return [name for name, box in self.checks.items() if box.value]

    def compute(self) -> dict[str, OptimiserPath]:
        """The paths for the current control values (no drawing)."""
        settings = explorer_settings(
            self.ticked, self.lr.value, self.momentum.value, self.beta1.value, self.beta2.value, self.alpha.value
        )
        if not settings:
            return {}
        return optimiser_paths(self.surface.value, settings, steps=self.steps.value)

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

    def _on_surface(self, change) -> None:
        s = get_surface(change["new"])
        with self._hold():
            self.lr.value, self.steps.value = s.lr, s.steps


# --- training playground (notebook 04) -------------------------------------------------------------


def training_figure(history: History, epochs: int, title: str = "") -> Figure:
    """Train and validation loss per epoch on a log scale, the x axis fixed to 1..epochs (so a live
    curve grows from left to right)."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    fig = Figure(figsize=(6.0, 2.8), dpi=90, layout="none")
    ax = fig.subplots()
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.17, top=0.88)
    for values, label, style in [(history.train_loss, "train", "o-"), (history.val_loss, "validation", "s--")]:
        if values:
            ax.plot(range(1, len(values) + 1), values, style, markersize=4, label=label)
    ax.set(xlim=(0.5, epochs + 0.5), xlabel="epoch", ylabel="loss (log scale)", yscale="log", title=title)
    for axis_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis_formatter(FormatStrFormatter("%.2g"))  # 0.5, not 5 x 10^-1
    ax.grid(True, alpha=0.3)
    if history.train_loss:
        ax.legend(fontsize=8, loc="upper right")
    return fig


class TrainingPlayground(widgets.VBox):
    """Train a small model on a slice of data with a chosen learning rate, batch size and optimiser.

    make_model(): returns a fresh model (called after seeding, so every run starts from the same
    weights); train_set / val_set: Datasets of (x, y); loss_fn(prediction, target) -> mean loss.
    The "train" button (or `run()`) trains for `epochs` epochs with `helpers.train.fit` and redraws the
    loss curve and the status line after every epoch. CSS classes: train-playground, train-lr,
    train-batch, train-optimiser, train-button, train-plot, train-status.
    """

    def __init__(
        self,
        make_model,
        train_set: Dataset,
        val_set: Dataset,
        loss_fn,
        epochs: int = 6,
        seed: int = 0,
        lr: float = 1e-3,
        batch_size: int = 32,
        optimiser: str = "Adam",
    ):
        if optimiser not in OPTIMIZER_NAMES:
            raise ValueError(f"optimiser must be one of {OPTIMIZER_NAMES}, got {optimiser!r}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
        self.make_model, self.train_set, self.val_set = make_model, train_set, val_set
        self.loss_fn, self.epochs, self.seed = loss_fn, epochs, seed
        style, wide = {"description_width": "100px"}, widgets.Layout(width="340px")
        self.lr = widgets.FloatLogSlider(
            value=lr,
            base=10,
            min=-4,
            max=0,
            step=0.1,
            description="learning rate",
            readout_format=".4f",
            continuous_update=False,
            style=style,
            layout=wide,
        )
        self.batch_size = widgets.Dropdown(
            options=[8, 16, 32, 64, 128, 256], value=batch_size, description="batch size", style=style, layout=wide
        )
        self.optimiser = widgets.Dropdown(
            options=list(OPTIMIZER_NAMES), value=optimiser, description="optimiser", style=style, layout=wide
        )
        self.button = widgets.Button(description="train", button_style="primary", icon="play")
        self.plot = widgets.Image(
            format="png",
            value=figure_png(training_figure(History(), epochs, "press train")),
            layout=widgets.Layout(width="540px"),  # the PNG's own width: 6 inches at 90 dpi
        )
        self.status = widgets.Label("not trained yet")
        for w, css in [
            (self.lr, "train-lr"),
            (self.batch_size, "train-batch"),
            (self.optimiser, "train-optimiser"),
            (self.button, "train-button"),
            (self.plot, "train-plot"),
            (self.status, "train-status"),
        ]:
            w.add_class(css)
        self.history: History | None = None
        self.last_run_s = 0.0
        self.button.on_click(lambda _button: self.run())
        super().__init__(
            [
                widgets.HBox([widgets.VBox([self.lr, self.batch_size, self.optimiser]), self.button]),
                self.plot,
                self.status,
            ]
        )
        self.add_class("train-playground")

    def run(self) -> History:
        """Train a fresh model with the current settings; the plot and status update after each epoch."""
        t0 = time.perf_counter()
        settings = f"{self.optimiser.value}, lr {self.lr.value:.4f}, batch {self.batch_size.value}"
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        model = self.make_model()
        train_loader = DataLoader(self.train_set, batch_size=self.batch_size.value, shuffle=True, generator=generator)
        val_loader = DataLoader(self.val_set, batch_size=256)
        optimizer = make_optimizer(self.optimiser.value, model.parameters(), self.lr.value)
        self.button.disabled = True

        def show(epoch: int, history: History) -> None:
            self.plot.value = figure_png(training_figure(history, self.epochs, settings))
            self.status.value = (
                f"epoch {epoch}/{self.epochs}: train loss {history.train_loss[-1]:.4f}, "
                f"validation loss {history.val_loss[-1]:.4f}"
            )

        try:
            self.history = fit(
                model, train_loader, self.loss_fn, optimizer, self.epochs, val_loader=val_loader, on_epoch_end=show
            )
        finally:
            self.button.disabled = False
        self.last_run_s = time.perf_counter() - t0
        return self.history


# --- notebook 02 --- window explorer: input length, output length and stride on a chronological split ---------

from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from helpers.data import split_bounds  # noqa: E402

__all__ += ["window_counts", "window_figure"]

#: Colours of the window explorer: the three chronological parts, and a window's input and target.
PART_COLOURS = {"train": "C0", "val": "C1", "test": "C2"}
WINDOW_COLOURS = {"input": "C0", "target": "C3"}


def _check_positive_ints(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {value!r}")


def window_counts(
    num_steps: int, input_len: int, output_len: int, stride: int = 1, fractions: Sequence[float] = (0.7, 0.1, 0.2)
) -> dict[str, int]:
    """How many (input, target) windows each chronological part of a series holds.

    The series of `num_steps` steps is cut into consecutive parts by `helpers.data.split_bounds(num_steps,
    fractions)` and each part is windowed on its own, as `helpers.data.make_splits` does, so no window
    crosses a boundary: a part of L steps holds (L - input_len - output_len) // stride + 1 windows, or 0
    when L < input_len + output_len. Returns {"train": ..., "val": ..., "test": ...} for three fractions
    (or {"part 0": ..., ...} for another number of parts).
    """
    _check_positive_ints(num_steps=num_steps, input_len=input_len, output_len=output_len, stride=stride)
    bounds = split_bounds(num_steps, fractions)
    names = list(PART_COLOURS) if len(bounds) == 3 else [f"part {i}" for i in range(len(bounds))]
    span = input_len + output_len
    return {
        name: max((stop - start - span) // stride + 1, 0) for name, (start, stop) in zip(names, bounds, strict=True)
    }


def window_figure(
    series: torch.Tensor,
    input_len: int,
    output_len: int,
    stride: int = 1,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    *,
    steps_per_day: int = 72,
    zoom_steps: int = 72,
    max_windows: int = 8,
    ylabel: str = "value",
) -> Figure:
    """The windows on a series: where the parts are, and how the first windows tile the start of it.

    series: (time,) one node's series, NaN = missing (drawn as a gap).
    Top panel: the whole series (x in days), the train/val/test parts shaded and labelled with their
    window counts (`window_counts`). Bottom panels: the first `zoom_steps` steps of the series, and below
    it the first `max_windows` training windows, one row each: input steps in blue, target steps in red.
    The zoom widens to show every drawn window. The title states the settings and the counts.
    Built with matplotlib's object API (no pyplot).
    """
    if not isinstance(series, torch.Tensor) or series.ndim != 1:
        got = tuple(series.shape) if isinstance(series, torch.Tensor) else type(series).__name__
        raise ValueError(f"series: expected a 1-d (time,) tensor, got {got}")
    _check_positive_ints(steps_per_day=steps_per_day, zoom_steps=zoom_steps, max_windows=max_windows)
    counts = window_counts(len(series), input_len, output_len, stride, fractions)
    bounds = split_bounds(len(series), fractions)
    values = series.detach().cpu().double().numpy()

    fig = Figure(figsize=(8.0, 5.2), dpi=90, layout="constrained")
    ax_all, ax_zoom, ax_windows = fig.subplots(3, 1, height_ratios=[1.2, 1, 1.1])
    days = np.arange(len(values)) / steps_per_day
    ax_all.plot(days, values, color="0.35", linewidth=0.5)
    for (name, count), (start, stop), colour in zip(counts.items(), bounds, PART_COLOURS.values(), strict=False):
        ax_all.axvspan(start / steps_per_day, stop / steps_per_day, color=colour, alpha=0.15, linewidth=0)
        ax_all.text(
            (start + stop) / 2 / steps_per_day,
            0.97,
            f"{name}\n{count:,} windows",
            ha="center",
            va="top",
            fontsize=8,
            transform=ax_all.get_xaxis_transform(),
        )
    top = np.nanmax(values) if np.isfinite(values).any() else 1.0
    ax_all.set(xlabel="day", ylabel=ylabel, xlim=(0, len(values) / steps_per_day), ylim=(None, 1.35 * top))
    parts = ", ".join(f"{name} {count:,}" for name, count in counts.items())
    ax_all.set_title(f"input {input_len}, output {output_len}, stride {stride}: {parts} windows", fontsize=10)

    shown = min(max_windows, counts[next(iter(counts))])  # the first part's first windows
    zoom = min(max(zoom_steps, (shown - 1) * stride + input_len + output_len), len(values))
    steps = np.arange(zoom)
    ax_zoom.plot(steps, values[:zoom], color="0.35", linewidth=1.0, marker=".", markersize=3)
    ax_zoom.set(ylabel=ylabel, xlim=(-0.5, zoom - 0.5))
    ax_zoom.set_title(f"the first {zoom} steps and the first training windows", fontsize=9)
    ax_zoom.tick_params(labelbottom=False)

    for w in range(shown):
        start = w * stride
        ax_windows.barh(w, input_len, left=start - 0.5, height=0.7, color=WINDOW_COLOURS["input"])
        ax_windows.barh(w, output_len, left=start + input_len - 0.5, height=0.7, color=WINDOW_COLOURS["target"])
    ax_windows.set(xlim=ax_zoom.get_xlim(), ylim=(max(shown, 1) - 0.4, -0.6), xlabel="step", ylabel="window")
    ax_windows.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_windows.legend(
        handles=[Patch(color=c, label=k) for k, c in WINDOW_COLOURS.items()], loc="upper right", fontsize=8, ncols=2
    )
    ax_windows.grid(False)
    return fig


# --- notebook 05 --- LSTM playground: hidden size, sequence length and learning rate of a short training run ---

from helpers.models import LSTMRun, fit_lstm_forecaster  # noqa: E402
from helpers.train import evaluate  # noqa: E402

__all__ += ["LSTMPlayground"]


class LSTMPlayground(widgets.VBox):
    """Train `helpers.models.fit_lstm_forecaster` on one station with a chosen hidden size, input length
    (the sequence the LSTM reads) and learning rate, for `epochs` epochs, with live loss curves.

    station: a one-station `GraphTimeSeries` (e.g. `add_time_of_day(select_nodes(ds, ["Fernhill"]))`).
    The "train" button (or `run()`) trains from `seed`, redraws `training_figure` after every epoch and
    ends with the test MAE per horizon step in passengers. CSS classes: lstm-playground, lstm-hidden,
    lstm-input-len, lstm-lr, lstm-button, lstm-plot, lstm-status.
    """

    def __init__(self, station, epochs: int = 4, hidden_size: int = 32, input_len: int = 12, lr: float = 5e-3,
                 horizon: int = 4, seed: int = 0):
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
        self.station, self.epochs, self.horizon, self.seed = station, epochs, horizon, seed
        style, wide = {"description_width": "110px"}, widgets.Layout(width="360px")
        self.hidden = widgets.Dropdown(options=[4, 8, 16, 32, 64, 128], value=hidden_size, description="hidden size",
                                       style=style, layout=wide)
        self.input_len = widgets.IntSlider(value=input_len, min=2, max=48, step=2, description="sequence length",
                                           continuous_update=False, style=style, layout=wide)
        self.lr = widgets.FloatLogSlider(value=lr, base=10, min=-4, max=-0.5, step=0.1, description="learning rate",
                                         readout_format=".4f", continuous_update=False, style=style, layout=wide)
        self.button = widgets.Button(description="train", button_style="primary", icon="play")
        self.plot = widgets.Image(format="png", value=figure_png(training_figure(History(), epochs, "press train")),
                                  layout=widgets.Layout(width="540px"))
        self.status = widgets.Label("not trained yet")
        for w, css in [(self.hidden, "lstm-hidden"), (self.input_len, "lstm-input-len"), (self.lr, "lstm-lr"),
                       (self.button, "lstm-button"), (self.plot, "lstm-plot"), (self.status, "lstm-status")]:
            w.add_class(css)
        self.result: LSTMRun | None = None
        self.test_mae: list[float] = []
        self.last_run_s = 0.0
        self.button.on_click(lambda _button: self.run())
        super().__init__([widgets.HBox([widgets.VBox([self.hidden, self.input_len, self.lr]), self.button]),
                          self.plot, self.status])
        self.add_class("lstm-playground")

    def run(self) -> LSTMRun:
        """Train with the current settings; the plot updates after each epoch, the status at the end."""
        t0 = time.perf_counter()
        settings = f"hidden {self.hidden.value}, sequence {self.input_len.value}, lr {self.lr.value:.4f}"

        def show(epoch: int, history: History) -> None:
            self.plot.value = figure_png(training_figure(history, self.epochs, settings))
            self.status.value = f"epoch {epoch}/{self.epochs}: validation loss {history.val_loss[-1]:.4f}"

        self.button.disabled = True
        try:
            self.result = fit_lstm_forecaster(self.station, input_len=self.input_len.value, horizon=self.horizon,
                                              hidden_size=self.hidden.value, lr=self.lr.value, epochs=self.epochs,
                                              seed=self.seed, on_epoch_end=show)
        finally:
            self.button.disabled = False
        splits = self.result.splits
        self.test_mae = evaluate(self.result.model, DataLoader(splits.test, batch_size=512), splits.scaler)["mae"]
        steps = ", ".join(f"{v:.1f}" for v in self.test_mae)
        self.status.value = f"test MAE per step (passengers per {self.station.interval_minutes} min): {steps}"
        self.last_run_s = time.perf_counter() - t0
        return self.result


# --- notebook 06 --- depth explorer: accuracy and over-smoothing of deep GCNs against depth ---------------------

from helpers.graph import BLOCKS  # noqa: E402
from helpers.node_task import DepthResult, NextStepTask, depth_sweep  # noqa: E402

__all__ += ["BLOCK_COLOURS", "depth_figure", "DepthExplorer"]

#: One colour per skip connection, the same in every figure of notebook 06.
BLOCK_COLOURS = dict(zip(BLOCKS, ["C0", "C2", "C1", "C4"], strict=True))


def depth_figure(results: Sequence[DepthResult], reference_mae: float | None = None, title: str = "") -> Figure:
    """Two panels against depth (log2 axis), one line per skip connection: test MAE in passengers, and
    1 - mean pairwise cosine similarity of the node embeddings on a log axis (down = embeddings collapsing).

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
        style = dict(marker="o", markersize=4, color=BLOCK_COLOURS.get(block), label=block)
        ax_mae.plot(depths, [r.mae for r in rows], **style)
        ax_cos.plot(depths, [max(1 - r.cosine, 1e-7) for r in rows], **style)
    if reference_mae is not None:
        ax_mae.axhline(reference_mae, color="0.5", linestyle=":", linewidth=1, label="historical average")
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


class DepthExplorer(widgets.VBox):
    """Train GCNs of depth 1, 2, 4, ... up to a chosen depth with a chosen skip connection and hidden size,
    and plot `depth_figure` (accuracy and embedding spread against depth).

    task: a `helpers.node_task.NextStepTask`; reference: optional `DepthResult`s drawn as well (e.g. the
    notebook's plain stack), and reference_mae a horizontal line. The "train" button (or `run()`) calls
    `depth_sweep`. CSS classes: depth-explorer, depth-max, depth-block, depth-hidden, depth-button,
    depth-plot, depth-status.
    """

    DEPTHS = (1, 2, 4, 8, 16, 32)

    def __init__(self, task: NextStepTask, max_depth: int = 8, block: str = "res+", hidden: int = 16,
                 reference: Sequence[DepthResult] = (), reference_mae: float | None = None, seed: int = 0):
        if max_depth not in self.DEPTHS:
            raise ValueError(f"max_depth must be one of {self.DEPTHS}, got {max_depth!r}")
        self.task, self.reference, self.reference_mae, self.seed = task, list(reference), reference_mae, seed
        style, wide = {"description_width": "110px"}, widgets.Layout(width="300px")
        self.max_depth = widgets.Dropdown(options=list(self.DEPTHS), value=max_depth, description="up to depth",
                                          style=style, layout=wide)
        self.block = widgets.Dropdown(options=list(BLOCKS), value=block, description="connection",
                                      style=style, layout=wide)
        self.hidden = widgets.Dropdown(options=[8, 16, 32, 64], value=hidden, description="hidden size",
                                       style=style, layout=wide)
        self.button = widgets.Button(description="train", button_style="primary", icon="play")
        self.plot = widgets.Image(format="png", layout=widgets.Layout(width="720px"))
        self.status = widgets.Label("press train (about a second per layer trained)")
        for w, css in [(self.max_depth, "depth-max"), (self.block, "depth-block"), (self.hidden, "depth-hidden"),
                       (self.button, "depth-button"), (self.plot, "depth-plot"), (self.status, "depth-status")]:
            w.add_class(css)
        self.results: list[DepthResult] = []
        self.last_run_s = 0.0
        self.button.on_click(lambda _button: self.run())
        super().__init__([widgets.HBox([widgets.VBox([self.max_depth, self.block, self.hidden]), self.button]),
                          self.plot, self.status])
        self.add_class("depth-explorer")

    def run(self) -> list[DepthResult]:
        """Train one network per depth with the current settings and redraw."""
        t0 = time.perf_counter()
        depths = [d for d in self.DEPTHS if d <= self.max_depth.value]
        self.button.disabled = True
        self.status.value = f"training {len(depths)} networks ..."
        try:
            self.results = depth_sweep(self.task, depths, [self.block.value], hidden=self.hidden.value,
                                       seed=self.seed)
        finally:
            self.button.disabled = False
        shown = [r for r in self.reference if r.block != self.block.value] + self.results
        title = f"{self.block.value}, hidden {self.hidden.value}"
        self.plot.value = figure_png(depth_figure(shown, self.reference_mae, title))
        best = min(self.results, key=lambda r: r.mae)
        self.status.value = f"best test MAE {best.mae:.2f} at depth {best.depth}; deepest: {self.results[-1].mae:.2f}"
        self.last_run_s = time.perf_counter() - t0
        return self.results


# --- notebook 08 ---------------------------------------------------------------------------------
def trick_costs(rows: Sequence[Mapping], tricks: Sequence[str], batch_size: int) -> dict[str, float]:
    """The cached cost of one training step: {"seconds", "peak_bytes"} of `tricks` at `batch_size`.

    rows: the widget table of benchmarks/speed.py (`result["widget"]`), each {"batch_size", "tricks",
    "seconds", "peak_bytes"}; the order of `tricks` does not matter. Raises ValueError for a combination
    that was not measured.
    """
    wanted = set(tricks)
    for row in rows:
        if row["batch_size"] == batch_size and set(row["tricks"]) == wanted:
            return {"seconds": row["seconds"], "peak_bytes": row["peak_bytes"]}
    measured = sorted({row["batch_size"] for row in rows})
    raise ValueError(f"no measurement of tricks {sorted(wanted)} at batch size {batch_size}; measured batch sizes: "
                     f"{measured}, tricks: combinations of {sorted({t for row in rows for t in row['tricks']})}")


def trick_figure(rows: Sequence[Mapping], tricks: Sequence[str], batch_size: int, reference_batch: int = 32) -> Figure:
    """Time and peak memory of a step with `tricks` at `batch_size`, against the plain step at `reference_batch`
    (grey) and the plain step at `batch_size`; bars are relative to the reference (`helpers.speed.cost_bars`)."""
    from helpers.speed import cost_bars

    chosen = ", ".join(sorted(tricks)) or "plain"
    costs = {f"plain, batch {reference_batch}": trick_costs(rows, (), reference_batch),
             f"plain, batch {batch_size}": trick_costs(rows, (), batch_size),
             f"{chosen}, batch {batch_size}": trick_costs(rows, tricks, batch_size)}  # equal labels merge
    c = costs[f"{chosen}, batch {batch_size}"]
    return cost_bars(costs, f"plain, batch {reference_batch}",
                     title=f"{chosen}, batch {batch_size}: {1000 * c['seconds']:.0f} ms, "
                           f"{c['peak_bytes'] / 1e6:.1f} MB peak")


class TrickExplorer(widgets.VBox):
    """Tick memory tricks and pick a batch size; the bars of `trick_figure` update from cached measurements.

    rows: the widget table of benchmarks/speed.py. CSS classes: speed-explorer, speed-check-<trick>,
    speed-batch, speed-plot.
    """

    def __init__(self, rows: Sequence[Mapping]):
        self.rows = list(rows)
        names = sorted({t for row in self.rows for t in row["tricks"]})
        sizes = sorted({row["batch_size"] for row in self.rows})
        self.checks = {name: widgets.Checkbox(value=False, description=name, indent=False,
                                              layout=widgets.Layout(width="120px")) for name in names}
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
        return [name for name, box in self.checks.items() if box.value]

    def redraw(self) -> None:
        self.plot.value = figure_png(trick_figure(self.rows, self.tricks, self.batch.value,
                                                  reference_batch=max(self.batch.options)))


# --- notebook 07 --- STGCN playground: kernel sizes, widths, depth, graph convolution and learning rate ---------

from helpers.stgcn import GRAPH_CONVS, STGCN, STGCNConfig, count_parameters  # noqa: E402
from helpers.train import train_forecaster  # noqa: E402

__all__ += ["STGCN_WIDTHS", "STGCNPlayground"]

#: Channel triples (temporal, spatial, temporal) offered by the playground, small to the paper's.
STGCN_WIDTHS = ("8,4,8", "16,8,16", "32,8,32", "32,16,32", "64,16,64")


class STGCNPlayground(widgets.VBox):
    """Build an STGCN from sliders (Kt, Ks, channel widths, number of blocks, Chebyshev or first-order graph
    convolution, learning rate), see its parameter count at once, and train it briefly with live loss curves.

    splits: `helpers.data.make_splits` parts (inputs (time, nodes, channels), target channel 0); adj: the
    (nodes, nodes) adjacency. `config()` turns the controls into an `STGCNConfig` (ValueError when the
    input window is too short for the blocks); `describe()` is the line the widget shows. The "train" button
    (or `run()`) calls `helpers.train.train_forecaster` for `epochs` epochs from `seed`, redraws
    `training_figure` after each epoch and ends with the test MAE in original units. CSS classes:
    stgcn-playground, stgcn-kt, stgcn-ks, stgcn-widths, stgcn-blocks, stgcn-graph, stgcn-lr, stgcn-button,
    stgcn-plot, stgcn-status.
    """

    def __init__(self, splits, adj: torch.Tensor, epochs: int = 3, lr: float = 5e-3, widths: str = "16,8,16",
                 blocks: int = 2, Kt: int = 3, Ks: int = 3, graph_conv: str = "cheb", batch_size: int = 64,
                 seed: int = 0):
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
        if widths not in STGCN_WIDTHS:
            raise ValueError(f"widths must be one of {STGCN_WIDTHS}, got {widths!r}")
        self.splits, self.adj, self.epochs, self.batch_size, self.seed = splits, adj, epochs, batch_size, seed
        x, y = splits.train[0]
        self._shape = {"num_nodes": x.shape[1], "input_len": x.shape[0], "horizon": y.shape[0],
                       "in_channels": x.shape[2] if x.ndim == 3 else 1}
        style, wide = {"description_width": "120px"}, widgets.Layout(width="360px")

        def slider(value, low, high, description):
            return widgets.IntSlider(value=value, min=low, max=high, description=description,
                                     continuous_update=False, style=style, layout=wide)

        self.kt = slider(Kt, 1, 4, "Kt (time kernel)")
        self.ks = slider(Ks, 1, 4, "Ks (Chebyshev)")
        self.blocks = slider(blocks, 1, 3, "ST-Conv blocks")
        self.widths = widgets.Dropdown(options=STGCN_WIDTHS, value=widths, description="channels",
                                       style=style, layout=wide)
        self.graph = widgets.ToggleButtons(options=GRAPH_CONVS, value=graph_conv, description="graph conv",
                                           style={"description_width": "120px", "button_width": "80px"})
        self.lr = widgets.FloatLogSlider(value=lr, base=10, min=-4, max=-1, step=0.1, description="learning rate",
                                         readout_format=".4f", continuous_update=False, style=style, layout=wide)
        self.button = widgets.Button(description="train", button_style="primary", icon="play")
        self.plot = widgets.Image(format="png", value=figure_png(training_figure(History(), epochs, "press train")),
                                  layout=widgets.Layout(width="540px"))
        self.info = widgets.Label()
        self.status = widgets.Label("not trained yet")
        for w, css in [(self.kt, "stgcn-kt"), (self.ks, "stgcn-ks"), (self.widths, "stgcn-widths"),
                       (self.blocks, "stgcn-blocks"), (self.graph, "stgcn-graph"), (self.lr, "stgcn-lr"),
                       (self.button, "stgcn-button"), (self.plot, "stgcn-plot"), (self.status, "stgcn-status")]:
            w.add_class(css)
        self.history: History | None = None
        self.test_mae: list[float] = []
        self.last_run_s = 0.0
        for control in (self.kt, self.ks, self.blocks, self.widths, self.graph):
            control.observe(lambda _change: self._refresh(), names="value")
        self.button.on_click(lambda _button: self.run())
        super().__init__([widgets.HBox([widgets.VBox([self.kt, self.ks, self.blocks]),
                                        widgets.VBox([self.widths, self.graph, self.lr, self.button])]),
                          self.info, self.plot, self.status])
        self.add_class("stgcn-playground")
        self._refresh()

    def config(self) -> STGCNConfig:
        """The STGCNConfig of the current controls (ValueError if the window is too short for them)."""
        widths = tuple(int(c) for c in self.widths.value.split(","))
        return STGCNConfig(**self._shape, blocks=(widths,) * self.blocks.value, Kt=self.kt.value, Ks=self.ks.value,
                           graph_conv=self.graph.value)

    def describe(self) -> str:
        """One line: the architecture and its parameter count, or why these settings cannot work."""
        try:
            config = self.config()
        except ValueError as exc:
            return f"not possible: {exc}"
        parameters = count_parameters(STGCN(config, self.adj))
        graph = "Chebyshev, Ks=" + str(config.Ks) if config.graph_conv == "cheb" else "first-order GCN"
        return (f"{len(config.blocks)} block(s) of {self.widths.value} channels, Kt={config.Kt}, {graph}: "
                f"{parameters:,} parameters, {config.time_left} time step(s) reach the output block")

    def _refresh(self) -> None:
        text = self.describe()
        self.info.value = text
        self.button.disabled = text.startswith("not possible")

    def run(self) -> History:
        """Train a fresh model with the current settings; the plot updates after each epoch, the status at the end."""
        t0 = time.perf_counter()
        config = self.config()
        torch.manual_seed(self.seed)
        model = STGCN(config, self.adj)
        settings = f"{self.describe().split(':')[0]}, lr {self.lr.value:.4f}"

        def show(epoch: int, history: History) -> None:
            self.plot.value = figure_png(training_figure(history, self.epochs, settings))
            self.status.value = f"epoch {epoch}/{self.epochs}: validation loss {history.val_loss[-1]:.4f}"

        self.button.disabled = True
        try:
            self.history = train_forecaster(model, self.splits, epochs=self.epochs, batch_size=self.batch_size,
                                            lr=self.lr.value, seed=self.seed, on_epoch_end=show)
        finally:
            self.button.disabled = False
        self.test_mae = evaluate(model, DataLoader(self.splits.test, batch_size=256), self.splits.scaler)["mae"]
        steps = ", ".join(f"{v:.2f}" for v in self.test_mae)
        self.status.value = f"test MAE per step: {steps} ({self.epochs} epochs, {time.perf_counter() - t0:.0f} s)"
        self.last_run_s = time.perf_counter() - t0
        return self.history
