"""The shell the notebooks' training widgets share, and their loss-curve figure.

- `TrainButtonWidget`: controls, a "train" button, a figure and a status line. The button runs the
  subclass's `_train()` with the button disabled and the run timed; a notebook's widget holds only
  its controls and what a run does (`TrainingPlayground`, `LSTMPlayground`, `DepthExplorer`,
  `STGCNPlayground`).
- `training_figure(history, epochs)`: train and validation loss per epoch, the figure the training
  widgets of notebooks 05, 06 and 08 redraw after every epoch.
- `control_look(label_width, width)`: the style and layout keyword arguments of a row of controls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import ipywidgets as widgets
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter

from helpers.checks import check_int
from helpers.plots import figure_png
from helpers.train import History


def control_look(label_width: int, width: int) -> dict[str, object]:
    """`style` and `layout` for controls whose descriptions take `label_width` pixels of `width`."""
    return {"style": {"description_width": f"{label_width}px"},
            "layout": widgets.Layout(width=f"{width}px")}


def training_figure(history: History, epochs: int, title: str = "") -> Figure:
    """Train and validation loss per epoch on a log scale, the x axis fixed to 1..epochs (so a live
    curve grows from left to right)."""
    check_int("epochs", epochs)
    fig = Figure(figsize=(6.0, 2.8), dpi=90, layout="none")
    ax = fig.subplots()
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.17, top=0.88)
    curves = [(history.train_loss, "train", "o-"), (history.val_loss, "validation", "s--")]
    for values, label, style in curves:
        if values:
            ax.plot(range(1, len(values) + 1), values, style, markersize=4, label=label)
    ax.set(xlim=(0.5, epochs + 0.5), xlabel="epoch", ylabel="loss (log scale)", yscale="log",
           title=title)
    for axis_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis_formatter(FormatStrFormatter("%.2g"))  # 0.5, not 5 x 10^-1
    ax.grid(True, alpha=0.3)
    if history.train_loss:
        ax.legend(fontsize=8, loc="upper right")
    return fig


class TrainButtonWidget(widgets.VBox):
    """Controls, a "train" button, a figure (`self.plot`, an Image), a status line (`self.status`).

    A subclass creates its controls, calls `super().__init__(name, {key: control})` and implements
    `_train()`. `run()` (what the button calls) disables the button while `_train()` runs, keeps the
    seconds it took in `last_run_s` and returns its result. epochs: draw an empty `training_figure`
    of that many epochs until the first run. CSS classes: `name` on the widget, and
    `<prefix>-<key>` on each control, `<prefix>-button`, `<prefix>-plot`, `<prefix>-status`, where
    prefix is `name` up to its first "-" (e.g. "lstm" of "lstm-playground").
    """

    def __init__(self, name: str, controls: Mapping[str, widgets.Widget], *,
                 status: str = "not trained yet", epochs: int | None = None,
                 plot_width: str = "540px"):
        self.button = widgets.Button(description="train", button_style="primary", icon="play")
        self.plot = widgets.Image(format="png", layout=widgets.Layout(width=plot_width))
        if epochs is not None:
            self.plot.value = figure_png(training_figure(History(), epochs, "press train"))
        self.status = widgets.Label(status)
        prefix = name.split("-")[0]
        parts = {**controls, "button": self.button, "plot": self.plot, "status": self.status}
        for key, part in parts.items():
            part.add_class(f"{prefix}-{key}")
        self.last_run_s = 0.0
        self._started = 0.0
        self.button.on_click(lambda _button: self.run())
        super().__init__(self._rows(list(controls.values())))
        self.add_class(name)

    def _rows(self, controls: list[widgets.Widget]) -> list[widgets.Widget]:
        """The children: the controls in a column beside the button, the plot, the status line."""
        return [widgets.HBox([widgets.VBox(controls), self.button]), self.plot, self.status]

    def _train(self):
        """What the button does (a subclass's own); returns the run's result."""
        raise NotImplementedError

    def run(self):
        """Train with the current settings (as the button does) and return the result."""
        self._started = time.perf_counter()
        was_disabled, self.button.disabled = self.button.disabled, True
        try:
            result = self._train()
        finally:
            self.button.disabled = was_disabled
        self.last_run_s = self.elapsed()
        return result

    def elapsed(self) -> float:
        """Seconds since the current (or last) run started."""
        return time.perf_counter() - self._started

    def show(self, fig: Figure, status: str) -> None:
        """Put `fig` in the plot and `status` in the status line."""
        self.plot.value = figure_png(fig)
        self.status.value = status

    def epoch_view(self, epochs: int, title: str,
                   train_loss: bool = False) -> Callable[[int, History], None]:
        """An `on_epoch_end(epoch, history)` callback: redraw `training_figure` titled `title` and
        write the epoch's validation loss (and train loss, if asked) into the status line."""

        def show_epoch(epoch: int, history: History) -> None:
            train = f"train loss {history.train_loss[-1]:.4f}, " if train_loss else ""
            self.show(training_figure(history, epochs, title),
                      f"epoch {epoch}/{epochs}: {train}validation loss {history.val_loss[-1]:.4f}")

        return show_epoch
