"""Notebook 08's widget: `STGCNPlayground`, an STGCN built from sliders (kernel sizes, widths,
depth, graph convolution, learning rate), its parameter count at once, and a short training run;
`STGCN_WIDTHS` are the channel widths it offers."""

from __future__ import annotations

import ipywidgets as widgets
import torch
from torch.utils.data import DataLoader

from helpers.checks import check_choice, check_int
from helpers.models import GRAPH_CONVS, STGCN, STGCNConfig, count_parameters
from helpers.plots import figure_png
from helpers.train import History, evaluate, train_forecaster
from helpers.widgets.base import TrainButtonWidget, control_look, training_figure, validation_baselines

#: Channel triples (temporal, spatial, temporal) offered by the playground, small to the paper's.
STGCN_WIDTHS = ("8,4,8", "16,8,16", "32,8,32", "32,16,32", "64,16,64")


class STGCNPlayground(TrainButtonWidget):
    """Build an STGCN from sliders (Kt, Ks, channel widths, number of blocks, Chebyshev or
    first-order graph convolution, learning rate), see its parameter count at once, and train it
    briefly with live loss curves.

    splits: `helpers.data.make_splits` parts (inputs (time, nodes, channels), target channel 0);
    adj: the (nodes, nodes) adjacency. `config()` turns the controls into an `STGCNConfig`
    (ValueError when the input window is too short for the blocks); `describe()` is the line the
    widget shows. The "train" button (or `run()`) calls `helpers.train.train_forecaster` for
    `epochs` epochs from `seed`, redraws `training_figure` after each epoch (with the validation
    loss of persistence and, given `dataset` (the GraphTimeSeries the splits came from), of the
    historical average, and the validation curves of earlier runs, `runs`) and ends with the
    VALIDATION MAE per step in original units (`val_mae`; the test part stays unseen). Ks is
    disabled while the first-order graph convolution (which has no Ks) is chosen. CSS classes:
    stgcn-playground, stgcn-kt, stgcn-ks, stgcn-widths, stgcn-blocks, stgcn-graph, stgcn-lr,
    stgcn-button, stgcn-progress, stgcn-plot, stgcn-status.
    """

    def __init__(self, splits, adj: torch.Tensor, epochs: int = 3, lr: float = 5e-3,
                 widths: str = "16,8,16", blocks: int = 2, Kt: int = 3, Ks: int = 3,
                 graph_conv: str = "cheb", batch_size: int = 64, seed: int = 0, dataset=None):
        self.epochs = check_int("epochs", epochs)
        check_choice("widths", widths, STGCN_WIDTHS)
        self.splits, self.adj, self.batch_size, self.seed = splits, adj, batch_size, seed
        x, y = splits.train[0]
        self._shape = {"num_nodes": x.shape[1], "input_len": x.shape[0], "horizon": y.shape[0],
                       "in_channels": x.shape[2] if x.ndim == 3 else 1}
        look = control_look(120, 360)

        def slider(value, low, high, description):
            return widgets.IntSlider(value=value, min=low, max=high, description=description,
                                     continuous_update=False, **look)

        self.kt = slider(Kt, 1, 4, "Kt (time kernel)")
        self.ks = slider(Ks, 1, 4, "Ks (Chebyshev)")
        self.blocks = slider(blocks, 1, 3, "ST-Conv blocks")
        self.widths = widgets.Dropdown(options=STGCN_WIDTHS, value=widths, description="channels",
                                       **look)
        self.graph = widgets.ToggleButtons(options=GRAPH_CONVS, value=graph_conv,
                                           description="graph conv",
                                           style={"description_width": "120px",
                                                  "button_width": "80px"})
        self.lr = widgets.FloatLogSlider(value=lr, base=10, min=-4, max=-1, step=0.1,
                                         description="learning rate", readout_format=".4f",
                                         continuous_update=False, **look)
        self.info = widgets.Label()
        self.history: History | None = None
        self.val_mae: list[float] = []
        self.runs: list[tuple[str, list[float]]] = []
        self.baselines = validation_baselines(splits, dataset)
        super().__init__("stgcn-playground",
                         {"kt": self.kt, "ks": self.ks, "widths": self.widths,
                          "blocks": self.blocks, "graph": self.graph, "lr": self.lr},
                         epochs=epochs)
        self.plot.value = figure_png(training_figure(History(), epochs, "press train",
                                                     baselines=self._baseline_losses()))
        for control in (self.kt, self.ks, self.blocks, self.widths, self.graph):
            control.observe(lambda _change: self._refresh(), names="value")
        self._refresh()

    def _rows(self, controls: list[widgets.Widget]) -> list[widgets.Widget]:
        """Two columns of controls (the button under the second), the info line, plot, status."""
        columns = [widgets.VBox([self.kt, self.ks, self.blocks]),
                   widgets.VBox([self.widths, self.graph, self.lr,
                                 widgets.HBox([self.button, self.progress])])]
        return [widgets.HBox(columns), self.info, self.plot, self.status]

    def config(self) -> STGCNConfig:
        """The STGCNConfig of the current controls (ValueError if the window is too short)."""
        widths = tuple(int(c) for c in self.widths.value.split(","))
        return STGCNConfig(**self._shape, blocks=(widths,) * self.blocks.value, Kt=self.kt.value,
                           Ks=self.ks.value, graph_conv=self.graph.value)

    def describe(self) -> str:
        """One line: the architecture and its parameter count, or why these settings cannot work."""
        try:
            config = self.config()
        except ValueError as exc:
            return f"not possible: {exc}"
        parameters = count_parameters(STGCN(config, self.adj))
        graph = f"Chebyshev, Ks={config.Ks}" if config.graph_conv == "cheb" else "first-order GCN"
        return (f"{len(config.blocks)} block(s) of {self.widths.value} channels, Kt={config.Kt}, "
                f"{graph}: {parameters:,} parameters, {config.time_left} time step(s) reach the "
                f"output block")

    def _baseline_losses(self) -> dict[str, float]:
        return {name: b["loss"] for name, b in self.baselines.items()}

    def _refresh(self) -> None:
        text = self.describe()
        self.info.value = text
        if not self.running:  # a run restores the controls itself when it ends
            self.button.disabled = text.startswith("not possible")
            self.ks.disabled = self.graph.value != "cheb"  # first-order GCN: no Ks

    def _after_run(self) -> None:
        self._refresh()

    def _train(self) -> History:
        """Train a fresh model with the current settings; the plot updates every epoch, the status
        at the end."""
        config = self.config()
        torch.manual_seed(self.seed)
        model = STGCN(config, self.adj)
        settings = f"{self.describe().split(':')[0]}, lr {self.lr.value:.4f}"
        view = self.epoch_view(self.epochs, settings, earlier=list(self.runs),
                               baselines=self._baseline_losses())
        self.history = train_forecaster(model, self.splits, epochs=self.epochs,
                                        batch_size=self.batch_size, lr=self.lr.value,
                                        seed=self.seed, on_epoch_end=view)
        self.runs.append((settings, list(self.history.val_loss)))
        val = DataLoader(self.splits.val, batch_size=256)
        self.val_mae = evaluate(model, val, self.splits.scaler)["mae"]
        steps = ", ".join(f"{v:.2f}" for v in self.val_mae)
        others = ", ".join(f"{name} {b['mae']:.2f}" for name, b in self.baselines.items())
        self.status.value = (f"validation MAE per step: {steps}; mean over steps: {others} "
                             f"({self.epochs} epochs, {self.elapsed():.0f} s)")
        return self.history
