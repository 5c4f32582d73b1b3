"""Notebook 06's widget: `LSTMPlayground`, a short LSTM training run with chosen hidden size,
sequence length and learning rate, and live loss curves."""

from __future__ import annotations

import ipywidgets as widgets
from torch.utils.data import DataLoader

from helpers.checks import check_int
from helpers.train import LSTMRun, evaluate, fit_lstm_forecaster
from helpers.widgets.base import TrainButtonWidget, control_look


class LSTMPlayground(TrainButtonWidget):
    """Train `helpers.train.fit_lstm_forecaster` on one station with a chosen hidden size, input
    length (the sequence the LSTM reads) and learning rate, for `epochs` epochs, with live loss
    curves.

    station: a one-station `GraphTimeSeries`, e.g.
    `add_time_of_day(select_nodes(ds, ["Fernhill"]))`.
    The "train" button (or `run()`) trains from `seed`, redraws `training_figure` after every epoch
    and ends with the test MAE per horizon step in passengers. CSS classes: lstm-playground,
    lstm-hidden, lstm-input-len, lstm-lr, lstm-button, lstm-plot, lstm-status.
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
        self.test_mae: list[float] = []
        super().__init__("lstm-playground", {"hidden": self.hidden, "input-len": self.input_len,
                                             "lr": self.lr}, epochs=epochs)

    def _train(self) -> LSTMRun:
        """Train with the current settings; the plot updates every epoch, the status at the end."""
        settings = (f"hidden {self.hidden.value}, sequence {self.input_len.value}, "
                    f"lr {self.lr.value:.4f}")
        self.result = fit_lstm_forecaster(self.station, input_len=self.input_len.value,
                                          horizon=self.horizon, hidden_size=self.hidden.value,
                                          lr=self.lr.value, epochs=self.epochs, seed=self.seed,
                                          on_epoch_end=self.epoch_view(self.epochs, settings))
        splits = self.result.splits
        test = DataLoader(splits.test, batch_size=512)
        self.test_mae = evaluate(self.result.model, test, splits.scaler)["mae"]
        steps = ", ".join(f"{v:.1f}" for v in self.test_mae)
        minutes = self.station.interval_minutes
        self.status.value = f"test MAE per step (passengers per {minutes} min): {steps}"
        return self.result
