"""Standard recipes: `fit` with settings that work, for the forecasters of `helpers.models`.

- `train_forecaster`: any forecaster (the STGCN of notebook 08, the command line's models) on the
  parts of `helpers.data.make_splits`: Adam, cosine decay, masked loss, best epoch kept.
- `fit_lstm_forecaster`: notebook 06's LSTM on a `GraphTimeSeries`, returning an `LSTMRun`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from helpers.data import Splits, make_splits, shuffled_loader
from helpers.distributed import Runtime
from helpers.models import LSTMForecaster
from helpers.train.callbacks import Callback
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
