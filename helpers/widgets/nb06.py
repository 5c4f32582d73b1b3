"""Notebook 06's widget: `LSTMPlayground`, a short LSTM training run with chosen hidden size,
sequence length and learning rate, live loss curves, earlier runs and the baselines beside them."""

from __future__ import annotations

import ipywidgets as widgets
from torch.utils.data import DataLoader

from helpers.checks import check_int
from helpers.data import make_splits
from helpers.train import LSTMRun, evaluate, fit_lstm_forecaster
from helpers.widgets.base import TrainButtonWidget, control_look, validation_baselines


class LSTMPlayground(TrainButtonWidget):
    """Train `helpers.train.fit_lstm_forecaster` on one station with a chosen hidden size, input
    length (the sequence the LSTM reads) and learning rate, for `epochs` epochs, with live loss
    curves.

    station: a one-station `GraphTimeSeries`, e.g.
    `add_time_of_day(select_nodes(ds, ["Fernhill"]))`.
    The "train" button (or `run()`) trains from `seed`, redraws `training_figure` after every epoch
    (with the validation loss of persistence and the historical average for the chosen sequence
    length, and the validation curves of earlier runs, `runs`) and ends with the VALIDATION MAE
    per horizon step in passengers (`val_mae`) beside the baselines' (the test part stays unseen).
    CSS classes: lstm-playground, lstm-hidden, lstm-input-len, lstm-lr, lstm-button,
    lstm-progress, lstm-plot, lstm-status.
    """

    def __init__(self, station, epochs: int = 4, hidden_size: int = 32, input_len: int = 12,
                 lr: float = 5e-3, horizon: int = 4, seed: int = 0):
        self.epochs = check_int("epochs", epochs)
        self.station, self.horizon, self.seed = station, horizon, seed
        look = control_look(110, 360)
        self.hidden = widgets.Dropdown(options=[4, 8, 16, 32, 64, 128], value=hidden_size,
                                       description="hidden size", **look)
        self.input_len = widgets.IntSlider(value=input_len, min=2, max=48, step=2,
                                           description="sequence length", continuous_update=False,
                                           **look)
        self.lr = widgets.FloatLogSlider(value=lr, base=10, min=-4, max=-0.5, step=0.1,
                                         description="learning rate", readout_format=".4f",
                                         continuous_update=False, **look)
        self.result: LSTMRun | None = None
        self.val_mae: list[float] = []
        self.runs: list[tuple[str, list[float]]] = []
        self._baselines: dict[int, dict[str, dict[str, float]]] = {}
        super().__init__("lstm-playground", {"hidden": self.hidden, "input-len": self.input_len,
                                             "lr": self.lr}, epochs=epochs)

    def baselines(self, input_len: int) -> dict[str, dict[str, float]]:
        """`validation_baselines` of the windows of `input_len` steps (computed once per length)."""
        if input_len not in self._baselines:
            splits = make_splits(self.station, input_len=input_len, output_len=self.horizon)
            self._baselines[input_len] = validation_baselines(splits, self.station)
        return self._baselines[input_len]

    def _train(self) -> LSTMRun:
        """Train with the current settings; the plot updates every epoch, the status at the end."""
        settings = (f"hidden {self.hidden.value}, sequence {self.input_len.value}, "
                    f"lr {self.lr.value:.4f}")
        baselines = self.baselines(self.input_len.value)
        view = self.epoch_view(self.epochs, settings, earlier=list(self.runs),
                               baselines={name: b["loss"] for name, b in baselines.items()})
        self.result = fit_lstm_forecaster(self.station, input_len=self.input_len.value,
                                          horizon=self.horizon, hidden_size=self.hidden.value,
                                          lr=self.lr.value, epochs=self.epochs, seed=self.seed,
                                          on_epoch_end=view)
        self.runs.append((settings, list(self.result.history.val_loss)))
        splits = self.result.splits
        val = DataLoader(splits.val, batch_size=512)
        self.val_mae = evaluate(self.result.model, val, splits.scaler)["mae"]
        steps = ", ".join(f"{v:.1f}" for v in self.val_mae)
        others = ", ".join(f"{name} {b['mae']:.1f}" for name, b in baselines.items())
        minutes = self.station.interval_minutes
        self.status.value = (f"validation MAE per step (passengers per {minutes} min): {steps}; "
                             f"mean over steps: {others}")
        return self.result
