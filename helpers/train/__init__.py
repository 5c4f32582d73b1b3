"""Training: the loop of notebook 05 made reusable, whole runs with checkpoints, and standard
recipes; import every name from `helpers.train`.

- `train.loop`: `train_epoch`, `evaluate_loss`, `make_optimizer` by name (`OPTIMIZER_NAMES`),
  `masked_loss` (`LOSS_NAMES`), `History`.
- `train.callbacks`: `Callback`, `TrainState`, `StopOnNonFiniteLoss`.
- `train.schedules`: `warmup_factor`, `warmup_cosine_factor`, `warmup_cosine`, `scaled_lr`.
- `train.fit`: `fit`: epochs, validation, early stopping, checkpoints, exact resume.
- `train.evaluate`: `predict`, `evaluate`, `forecast_metrics` (per horizon step, original units),
  `target_steps` (the steps a split's windows forecast).
- `train.recipes`: `train_forecaster` (STGCN and the command line), `fit_lstm_forecaster`
  (`LSTMRun`), `forecast_inputs` (`CLOCKS`, `FORECASTS`, `ForecastData`) and `forecast_in_units`.
- `Runtime` and `setup_runtime` (the device and rank of a run) come from `helpers.distributed`.

The command line `python -m helpers.train` is `helpers.cli` (train/__main__.py calls it).
"""

from helpers.distributed import Runtime, setup_runtime
from helpers.train.callbacks import Callback, StopOnNonFiniteLoss, TrainState
from helpers.train.evaluate import evaluate, forecast_metrics, predict, target_steps
from helpers.train.fit import fit
from helpers.train.loop import (
    LOSS_NAMES,
    OPTIMIZER_NAMES,
    History,
    LossFn,
    evaluate_loss,
    make_optimizer,
    masked_loss,
    train_epoch,
)
from helpers.train.recipes import (
    CLOCKS,
    FORECASTS,
    ForecastData,
    LSTMRun,
    fit_lstm_forecaster,
    forecast_in_units,
    forecast_inputs,
    train_forecaster,
)
from helpers.train.schedules import scaled_lr, warmup_cosine, warmup_cosine_factor, warmup_factor

__all__ = [
    "History",
    "LossFn",
    "OPTIMIZER_NAMES",
    "LOSS_NAMES",
    "make_optimizer",
    "masked_loss",
    "train_epoch",
    "evaluate_loss",
    "Callback",
    "TrainState",
    "StopOnNonFiniteLoss",
    "warmup_factor",
    "scaled_lr",
    "warmup_cosine_factor",
    "warmup_cosine",
    "fit",
    "predict",
    "evaluate",
    "forecast_metrics",
    "train_forecaster",
    "fit_lstm_forecaster",
    "LSTMRun",
    "target_steps",
    "CLOCKS",
    "FORECASTS",
    "ForecastData",
    "forecast_inputs",
    "forecast_in_units",
    "Runtime",
    "setup_runtime",
]
