"""Hooks into `fit`: the `Callback` base class, the `TrainState` callbacks see, and
`StopOnNonFiniteLoss` (notebook 09), which ends a diverged run at its first NaN loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from helpers.train.loop import History


class Callback:
    """Hooks into `fit`. Subclass and override what you need; each receives the live `TrainState`.

    on_fit_start / on_fit_end: once; on_epoch_start / on_epoch_end: every epoch (on_epoch_end runs
    after validation and after the checkpoint is written); on_batch_end: after every training batch,
    with `state.batch_loss` set. Set `state.stop_reason` to a sentence to stop training: after the
    current batch (from on_batch_end) or before the next epoch. A callback with `state_dict()` and
    `load_state_dict()` has its state saved in checkpoints and restored on resume.
    """

    def on_fit_start(self, state: TrainState) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def on_batch_end(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_fit_end(self, state: TrainState) -> None: ...


@dataclass
class TrainState:
    """What callbacks see: the objects being trained and where the run is."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    history: History
    epochs: int
    epoch: int = 0  # the current (or last completed) epoch, from 1
    step: int = 0  # batches trained so far, over all epochs
    batch_loss: float = math.nan
    best_value: float = math.inf
    bad_epochs: int = 0
    stop_reason: str | None = None


class StopOnNonFiniteLoss(Callback):
    """Stop training the first time a batch's loss is NaN or infinite; say where, and what to try.

    The message goes to `state.stop_reason` (so `History.stop_reason`) and, with verbose=True, is
    printed. Without it a diverged run keeps "training" on NaN weights until its last epoch.
    """

    def __init__(self, verbose: bool = True):
        self.verbose = verbose

    def on_batch_end(self, state: TrainState) -> None:
        if math.isfinite(state.batch_loss) or state.stop_reason is not None:
            return
        lr = state.optimizer.param_groups[0]["lr"]
        state.stop_reason = (f"stopped: the loss is {state.batch_loss} at epoch {state.epoch}, "
                             f"step {state.step} (learning rate {lr:.4g}); lower the learning "
                             f"rate, add warmup, or clip the gradients")
        if self.verbose:
            print(state.stop_reason)
