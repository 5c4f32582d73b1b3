"""The shell the notebooks' training widgets share, their loss-curve figure and their baselines.

- `TrainButtonWidget`: controls, a "train" button, a progress bar, a figure and a status line. The
  button runs the subclass's `_train()` in a background thread (the kernel stays responsive; a
  second click during a run starts nothing), with every control disabled and the run timed; a
  notebook's widget holds only its controls and what a run does (`TrainingPlayground`,
  `LSTMPlayground`, `DepthExplorer`, `STGCNPlayground`).
- `training_figure(history, epochs, title, earlier, baselines)`: train and validation loss per
  epoch, earlier runs' validation curves and the baselines' validation loss on the same axes.
- `validation_baselines(splits, dataset)`: persistence and historical average on the validation
  windows, as a loss in the training's scaled units and as an MAE in passengers.
- `StaticFallback`: a widget mix-in whose output, in a front end without a live kernel, shows the
  initial picture and says that the widget is live in JupyterLab.
- `control_look(label_width, width)`: the style and layout keyword arguments of a row of controls.
"""

from __future__ import annotations

import base64
import html
import math
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, FuncFormatter, MaxNLocator

from helpers.checks import check_int
from helpers.data import sliding_windows
from helpers.models import historical_average
from helpers.plots import figure_png
from helpers.train import History

#: What a widget's output says where no kernel drives it (a static HTML view, a dead kernel).
STATIC_NOTE = "This widget is live in JupyterLab (run the notebook); this is its first picture."
#: Colours of the baselines' horizontal lines in every training figure.
BASELINE_STYLES = {"persistence": ("0.35", ":"), "historical average": ("0.6", "-.")}
#: At most this many earlier runs are drawn (the latest ones); the legend says how many are left out.
MAX_EARLIER = 6


def control_look(label_width: int, width: int) -> dict[str, object]:
    """`style` and `layout` for controls whose descriptions take `label_width` pixels of `width`."""
    return {"style": {"description_width": f"{label_width}px"},
            "layout": widgets.Layout(width=f"{width}px")}


def validation_baselines(splits, dataset=None, part: str = "val") -> dict[str, dict[str, float]]:
    """{"persistence": {"loss", "mae"}, "historical average": {...}} on the `part` windows of
    `helpers.data.make_splits` (target channel 0): loss = masked MSE in the scaled units a
    forecaster trains on, mae = masked MAE in the data's units (passengers). Persistence repeats
    the last input step (as the model sees it: a missing one is the fill value). The historical
    average needs the `GraphTimeSeries` the splits came from (`dataset`; left out without it).
    """
    windows = getattr(splits, part)
    target = windows.targets  # (samples, horizon, nodes), scaled
    last = windows.inputs[:, -1:, ..., 0] if windows.inputs.ndim == 4 else windows.inputs[:, -1:]
    if windows.fill_value is not None:
        last = last.nan_to_num(float(windows.fill_value))
    forecasts = {"persistence": last.expand_as(target)}
    if dataset is not None:
        start, stop = splits.bounds[("train", "val", "test").index(part)]
        average = historical_average(dataset, fit_stop=splits.bounds[0][1])[start:stop]  # (time, nodes)
        horizon = target.shape[1]
        ha = sliding_windows(average, windows.input_len, horizon)[1][windows.starts]
        zero = splits.scaler.inverse_transform(torch.zeros_like(ha), channel=0)
        one = splits.scaler.inverse_transform(torch.ones_like(ha), channel=0)
        forecasts["historical average"] = (ha - zero) / (one - zero)
    observed = ~torch.isnan(target)
    scale = (splits.scaler.inverse_transform(torch.ones_like(target), channel=0)
             - splits.scaler.inverse_transform(torch.zeros_like(target), channel=0))
    result = {}
    for name, forecast in forecasts.items():
        error = (forecast - target)[observed]
        result[name] = {"loss": error.pow(2).mean().item(),
                        "mae": (error.abs() * scale[observed]).mean().item()}
    return result


def training_figure(history: History, epochs: int, title: str = "",
                    earlier: Sequence[tuple[str, Sequence[float]]] = (),
                    baselines: Mapping[str, float] | None = None) -> Figure:
    """Train and validation loss per epoch on a log scale, the x axis fixed to 1..epochs (so a live
    curve grows from left to right).

    earlier: (label, validation losses) of earlier runs, drawn thin (the latest MAX_EARLIER);
    baselines: {name: validation loss} drawn as horizontal lines. The legend sits right of the axes.
    """
    check_int("epochs", epochs)
    fig = Figure(figsize=(7.6, 2.8), dpi=90, layout="none")
    ax = fig.subplots()
    fig.subplots_adjust(left=0.11, right=0.62, bottom=0.17, top=0.88)
    shown = list(earlier)[-MAX_EARLIER:]
    for i, (label, values) in enumerate(shown):
        if values:
            ax.plot(range(1, len(values) + 1), values, "-", linewidth=1, alpha=0.55,
                    color=f"C{2 + i % 8}", label=textwrap.fill(f"earlier: {label}", 34))
    curves = [(history.train_loss, "train", "o-", "C0"), (history.val_loss, "validation", "s--", "C1")]
    for values, label, style, color in curves:
        if values:
            ax.plot(range(1, len(values) + 1), values, style, markersize=4, color=color,
                    label=f"{label} (this run)")
    for name, loss in (baselines or {}).items():
        color, style = BASELINE_STYLES.get(name, ("0.5", ":"))
        ax.axhline(loss, color=color, linestyle=style, linewidth=1.2, label=f"{name} (validation)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlim=(0.5, epochs + 0.5), xlabel="epoch", ylabel="loss (log scale)", yscale="log",
           title=title)
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))  # 0.5, not 5 x 10^-1
    ax.yaxis.set_minor_formatter(FuncFormatter(_sparse_minor))
    ax.grid(True, alpha=0.3)
    if ax.get_lines():
        hidden = len(earlier) - len(shown)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                  title=f"({hidden} older runs not drawn)" if hidden else None, title_fontsize=7)
    return fig


def _sparse_minor(value: float, _position) -> str:
    """Label the minor ticks 2x, 3x and 5x of a power of ten only (0.2, 0.3, 0.5), not every one."""
    mantissa = round(value / 10 ** math.floor(math.log10(value)), 6) if value > 0 else 0
    return f"{value:.2g}" if mantissa in (2, 3, 5) else ""


class StaticFallback:
    """Mix-in for a widget: its output also carries text/plain and text/html that show the widget's
    picture at display time (`self.plot`) and STATIC_NOTE, which front ends without a live kernel
    (a static HTML view, GitHub) show instead of the interactive view."""

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        picture = getattr(self, "plot", None)
        image = ""
        if picture is not None and picture.value:
            data = base64.b64encode(picture.value).decode("ascii")
            image = f'<img src="data:image/png;base64,{data}" alt="the widget\'s first picture"/>'
        bundle["text/html"] = f"<div>{image}<p><em>{html.escape(STATIC_NOTE)}</em></p></div>"
        bundle["text/plain"] = f"{type(self).__name__}: {STATIC_NOTE}"
        return bundle


class TrainButtonWidget(StaticFallback, widgets.VBox):
    """Controls, a "train" button, a progress bar, a figure (`self.plot`, an Image) and a status
    line (`self.status`).

    A subclass creates its controls, calls `super().__init__(name, {key: control})` and implements
    `_train()`. `run()` (what the button calls) disables the button and every control while
    `_train()` runs, keeps the seconds it took in `last_run_s` and returns its result; a second
    `run()` while one is going returns None and starts nothing. The button runs it in a background
    thread (`wait()` joins it). `step(done, total, text)` moves the progress bar. epochs: draw an
    empty `training_figure` of that many epochs until the first run. CSS classes: `name` on the
    widget, and `<prefix>-<key>` on each control, `<prefix>-button`, `<prefix>-progress`,
    `<prefix>-plot`, `<prefix>-status`, where prefix is `name` up to its first "-" (e.g. "lstm"
    of "lstm-playground").
    """

    def __init__(self, name: str, controls: Mapping[str, widgets.Widget], *,
                 status: str = "not trained yet", epochs: int | None = None,
                 plot_width: str = "684px"):
        self.button = widgets.Button(description="train", button_style="primary", icon="play")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="progress",
                                            layout=widgets.Layout(width="300px"))
        self.plot = widgets.Image(format="png", layout=widgets.Layout(width=plot_width))
        if epochs is not None:
            self.plot.value = figure_png(training_figure(History(), epochs, "press train"))
        # HTML, not Label: a long status line wraps instead of being cut off
        self.status = widgets.HTML(status, layout=widgets.Layout(width=plot_width))
        self.controls = dict(controls)
        prefix = name.split("-")[0]
        parts = {**controls, "button": self.button, "progress": self.progress, "plot": self.plot,
                 "status": self.status}
        for key, part in parts.items():
            part.add_class(f"{prefix}-{key}")
        self.last_run_s = 0.0
        self.runs_started = 0
        self._started = 0.0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.button.on_click(lambda _button: self.start())
        super().__init__(self._rows(list(controls.values())))
        self.add_class(name)

    def _rows(self, controls: list[widgets.Widget]) -> list[widgets.Widget]:
        """The children: the controls in a column beside the button, progress, plot, status line."""
        return [widgets.HBox([widgets.VBox(controls), widgets.VBox([self.button, self.progress])]),
                self.plot, self.status]

    def _train(self):
        """What the button does (a subclass's own); returns the run's result."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._lock.locked()

    def start(self) -> None:
        """What the button does: `run()` in a background thread, unless a run is going."""
        if self.running:
            return
        self._thread = threading.Thread(target=self._run_quietly, daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a run the button started."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run_quietly(self) -> None:
        try:
            self.run()
        except Exception as exc:  # a thread's error would be lost: show it where the learner looks
            self.status.value = html.escape(f"the run failed: {type(exc).__name__}: {exc}")

    def run(self):
        """Train with the current settings (as the button does) and return the result; None (and
        nothing started) if a run is going."""
        if not self._lock.acquire(blocking=False):
            return None
        self._started = time.perf_counter()
        self.runs_started += 1
        parts = [*self.controls.values(), self.button]
        was_disabled = [part.disabled for part in parts]
        for part in parts:
            part.disabled = True
        self.button.description = "training ..."
        try:
            result = self._train()
        finally:
            for part, disabled in zip(parts, was_disabled, strict=True):
                part.disabled = disabled
            self.button.description = "train"
            self._lock.release()
        self.last_run_s = self.elapsed()
        self._after_run()
        return result

    def _after_run(self) -> None:
        """What a subclass updates once a run is over (e.g. controls that do not apply)."""

    def elapsed(self) -> float:
        """Seconds since the current (or last) run started."""
        return time.perf_counter() - self._started

    def step(self, done: int, total: int, text: str = "") -> None:
        """Move the progress bar to done/total, label it with the seconds so far and, if given,
        write `text` into the status line."""
        self.progress.max = max(total, 1)
        self.progress.value = done
        self.progress.description = f"{self.elapsed():.0f} s"
        if text:
            self.status.value = text

    def show(self, fig: Figure, status: str) -> None:
        """Put `fig` in the plot and `status` in the status line."""
        self.plot.value = figure_png(fig)
        self.status.value = status

    def epoch_view(self, epochs: int, title: str, train_loss: bool = False,
                   earlier: Sequence[tuple[str, Sequence[float]]] = (),
                   baselines: Mapping[str, float] | None = None) -> Callable[[int, History], None]:
        """An `on_epoch_end(epoch, history)` callback: redraw `training_figure` titled `title` (with
        the earlier runs and baselines), move the progress bar and write the epoch's validation
        loss (and train loss, if asked) into the status line."""

        def show_epoch(epoch: int, history: History) -> None:
            train = f"train loss {history.train_loss[-1]:.4f}, " if train_loss else ""
            self.step(epoch, epochs)
            self.show(training_figure(history, epochs, title, earlier, baselines),
                      f"epoch {epoch}/{epochs}: {train}validation loss {history.val_loss[-1]:.4f}")

        return show_epoch
