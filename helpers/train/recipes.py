"""Standard recipes: `fit` with settings that work, for the forecasters of `helpers.models`.

- `train_forecaster`: any forecaster (the STGCN of notebook 08, the command line's models) on the
  parts of `helpers.data.make_splits`: Adam, cosine decay, masked loss, best epoch kept.
- `fit_lstm_forecaster`: notebook 06's LSTM on a `GraphTimeSeries`, returning an `LSTMRun`.
- `forecast_inputs` / `forecast_in_units`: what the command line's networks see (the clock, and
  optionally the deviation from the historical profile instead of the count) and how their
  forecasts return to the data's units.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from helpers.data import (
    GraphTimeSeries,
    Splits,
    add_day_type,
    add_time_of_day,
    make_splits,
    shuffled_loader,
)
from helpers.distributed import Runtime
from helpers.models import LSTMForecaster, subtract_profile
from helpers.train.callbacks import Callback
from helpers.train.evaluate import target_steps
from helpers.train.fit import fit
from helpers.train.loop import History, make_optimizer, masked_loss


def train_forecaster(
    model: nn.Module,
    splits: Splits,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    loss: str = "mse",
    seed: int = 0,
    patience: int | None = None,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
    on_epoch_end: Callable[[int, History], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
    extra: dict | None = None,
    runtime: Runtime | None = None,
) -> History:
    """Train a forecaster on the parts of `helpers.data.make_splits` with one standard recipe;
    returns the History.

    Adam with learning rate `lr`, decayed to zero along a cosine over all `epochs` (stepped every
    batch), the `masked_loss(loss)` (missing targets left out), a validation pass per epoch and the
    best epoch's weights kept (`fit`, which also takes patience, progress, callbacks, on_epoch_end,
    checkpoint, resume_from, extra, runtime). The training windows are shuffled by a generator
    seeded with `seed`; torch's global generator (dropout) is seeded with it too.
    """
    runtime = runtime or Runtime(next(model.parameters()).device)
    torch.manual_seed(seed)
    trained = runtime.wrap(model, seed)  # DistributedDataParallel when several processes run
    train_loader = runtime.train_loader(splits.train, batch_size, seed)
    val_loader = DataLoader(splits.val, batch_size=256)
    optimizer = make_optimizer("Adam", model.parameters(), lr)
    steps = epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return fit(trained, train_loader, masked_loss(loss), optimizer, epochs, val_loader=val_loader,
               scheduler=scheduler, patience=patience, progress=progress, callbacks=callbacks,
               on_epoch_end=on_epoch_end, checkpoint=checkpoint, resume_from=resume_from,
               extra=extra, runtime=runtime)


@dataclass
class LSTMRun:
    """What `fit_lstm_forecaster` returns: the trained model, the data splits it used, its loss
    history."""

    model: LSTMForecaster
    splits: Splits
    history: History


def fit_lstm_forecaster(ds, input_len: int = 12, horizon: int = 4, hidden_size: int = 32,
                        lr: float = 5e-3, epochs: int = 8, batch_size: int = 64, seed: int = 0,
                        on_epoch_end: Callable[[int, History], None] | None = None) -> LSTMRun:
    """Train an `LSTMForecaster` on a `GraphTimeSeries` (one station or a network) with notebook
    06's recipe.

    Windows of `input_len` steps of every channel predict the next `horizon` steps of channel 0
    (`helpers.data.make_splits`: chronological 70/10/20 parts, z-scored with training statistics,
    missing inputs filled with the training mean). Adam, masked MSE, `epochs` epochs; the weights of
    the epoch with the lowest validation loss are kept. Seeds torch with `seed` before building the
    model.
    """
    splits = make_splits(ds, input_len=input_len, output_len=horizon)
    torch.manual_seed(seed)
    model = LSTMForecaster(in_features=ds.num_channels, hidden_size=hidden_size, horizon=horizon)
    train_loader = shuffled_loader(splits.train, batch_size, seed)
    val_loader = DataLoader(splits.val, batch_size=512)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = fit(model, train_loader, masked_loss("mse"), optimizer, epochs, val_loader=val_loader,
                  on_epoch_end=on_epoch_end)
    return LSTMRun(model, splits, history)


#: What `forecast_inputs` may add to a network's inputs: nothing, the time of day (sin, cos), or the
#: time of day and the day type (1 on weekends and holidays); auto = time+day if there are timestamps.
CLOCKS = ("auto", "off", "time", "time+day")
#: What a network forecasts: the reading (level) or its deviation from the historical average; auto =
#: deviation if there are timestamps (the better of the two in benchmarks/results/clock_inputs.json).
FORECASTS = ("auto", "level", "deviation")


@dataclass
class ForecastData:
    """What `forecast_inputs` returns: `ds`, the series a network trains on (channel 0 = the target
    or its deviation from the profile, then the other channels, then clock channels), and `profile`
    (time, nodes), the historical average added back to its forecasts (None: forecasts are
    counts)."""

    ds: GraphTimeSeries
    profile: torch.Tensor | None


def forecast_inputs(ds: GraphTimeSeries, fit_stop: int, clock: str = "auto",
                    forecast: str = "auto") -> ForecastData:
    """The inputs of a network forecasting channel 0 of `ds`.

    clock: one of `CLOCKS`; "time" adds sin/cos of the time of day, "time+day" also the day type
        (both need timestamps): a network that sees only the last hour of counts cannot tell 07:00
        from 21:00, and in metro data the daily profile dominates.
    forecast: one of `FORECASTS`; "deviation" forecasts channel 0 minus its historical average (by
        time of day and day type, fitted on steps before `fit_stop`, the training part) instead of
        the reading itself ("level").
    With "auto", a series with timestamps gets time+day and deviation, one without off and level.
    """
    if clock not in CLOCKS or forecast not in FORECASTS:
        raise ValueError(f"clock, forecast: expected one of {CLOCKS} and one of {FORECASTS}, "
                         f"got {clock!r}, {forecast!r}")
    timed = ds.timestamps is not None
    if clock == "auto":
        clock = "time+day" if timed else "off"
    profile = None
    if forecast == "deviation" or (forecast == "auto" and timed):
        ds, profile = subtract_profile(ds, fit_stop)
    if clock != "off":
        ds = add_time_of_day(ds)
    if clock == "time+day":
        ds = add_day_type(ds)
    return ForecastData(ds, profile)


def forecast_in_units(pred: torch.Tensor, splits: Splits, data: ForecastData,
                      part: str = "test") -> torch.Tensor:
    """A network's scaled forecasts (samples, horizon, nodes) of one part of `splits` (made from
    `data.ds`) in the data's own units: unscaled, plus the profile if it forecast deviations."""
    pred = splits.scaler.inverse_transform(pred.double(), channel=0)
    if data.profile is not None:
        pred = pred + data.profile.double()[target_steps(splits, part)]
    return pred
