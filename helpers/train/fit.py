"""`fit`: a whole training run. Epochs with validation, early stopping, a learning-rate schedule
(any torch scheduler, stepped once per optimizer step), `Callback` hooks, progress (a tqdm bar on
a terminal or in Jupyter, one plain line per epoch in a log file), and a checkpoint written
atomically after every epoch; `fit(..., resume_from=path)` continues a run
exactly as if it had never stopped.

Checkpoints are `helpers.files.save_checkpoint` files: tensors and plain Python values only, read
back with `torch.load(weights_only=True)` by `helpers.files.load_checkpoint`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

import torch
from torch import nn
from torch.utils.data import DataLoader

from helpers.checks import check_int
from helpers.distributed import Runtime
from helpers.files import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from helpers.train.callbacks import Callback, TrainState
from helpers.train.loop import History, LossFn, _check_loader, evaluate_loss, train_epoch


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    *,
    val_loader: DataLoader | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    accumulation_steps: int = 1,
    on_epoch_end: Callable[[int, History], None] | None = None,
    progress: bool = False,
    patience: int | None = None,
    min_delta: float = 0.0,
    restore_best: bool = True,
    callbacks: Sequence[Callback] = (),
    checkpoint: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
    extra: dict | None = None,
    runtime: Runtime | None = None,
) -> History:
    """Train for up to `epochs` epochs; returns the History (losses per epoch, ...).

    Each epoch: `train_epoch`, the validation loss (when `val_loader` is given), early stopping, the
    checkpoint, then `on_epoch_end(epoch, history)` (epoch counts from 1) and the callbacks.
    - Early stopping watches the validation loss (the training loss without a validation loader):
      the best epoch's weights are kept, and with `patience=k` training stops after k epochs
      without an improvement larger than `min_delta`. restore_best=True (the default) loads the best
      weights into `model` at the end; with restore_best=False the model keeps the last epoch's.
    - scheduler: any torch scheduler, stepped once per optimizer step (smooth within an epoch),
      built for `epochs * len(train_loader)` steps; resumed with more epochs, it follows the new one.
    - checkpoint: a file written atomically after every epoch with everything needed to continue:
      model, optimizer, scheduler, history, early-stopping state, callbacks' states, random-number
      generator states (torch's and the train loader's generator), plus the best weights and
      `extra` (plain values); an epoch with a non-finite loss is not written. resume_from: such a
      file; training continues after its last epoch and ends as an uninterrupted run would.
    - runtime: the device (the model and every batch are moved there) and the process's rank; only
      the main process shows progress and writes the checkpoint. progress=True: a tqdm bar on a
      terminal or in Jupyter, else (a log file) one line per epoch on stderr (`_EpochLines`).
    """
    check_int("epochs", epochs)
    _check_loader(train_loader, "train_loader")
    if val_loader is not None:
        _check_loader(val_loader, "val_loader")
    check_int("patience", patience, none_ok=True)
    runtime = runtime or Runtime(next(model.parameters()).device)  # by default, where the model is
    model.to(runtime.device)
    state = TrainState(model, optimizer, scheduler, History(), epochs)
    callbacks = list(callbacks)
    best_weights = _copy_weights(model)
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from, map_location=runtime.device)
        best_weights = _restore(ckpt, state, train_loader, callbacks)
    for cb in callbacks:
        cb.on_fit_start(state)
    bar = _progress(epochs, state.epoch) if progress and runtime.is_main else None
    try:
        while state.epoch < epochs and state.stop_reason is None:
            state.epoch += 1
            for cb in callbacks:
                cb.on_epoch_start(state)
            _train_and_validate(state, train_loader, val_loader, loss_fn, accumulation_steps, callbacks,
                                runtime)
            if _is_best_epoch(state, val_loader is not None, min_delta, patience):
                best_weights = _copy_weights(model)
            if checkpoint is not None and runtime.is_main and _finite_epoch(state.history):
                snapshot = _snapshot(state, best_weights, train_loader, callbacks, extra)
                save_checkpoint(snapshot, checkpoint)
            _show_epoch(bar, state.history)
            if on_epoch_end is not None:
                on_epoch_end(state.epoch, state.history)
            for cb in callbacks:
                cb.on_epoch_end(state)
    finally:  # also on Ctrl-C: the bar's last line comes before any message that follows
        _close_progress(bar)
    if restore_best and state.history.best_epoch is not None:
        model.load_state_dict(best_weights)
    for cb in callbacks:
        cb.on_fit_end(state)
    return state.history


def _train_and_validate(state: TrainState, train_loader: DataLoader, val_loader: DataLoader | None,
                        loss_fn: LossFn, accumulation_steps: int, callbacks: list[Callback],
                        runtime: Runtime) -> None:
    """One epoch: training (the callbacks see every batch), then the validation loss; appends the
    epoch's losses, seconds and learning rate to the history."""

    def after_step(batch_loss: float) -> bool:
        state.step += 1
        state.batch_loss = batch_loss
        for cb in callbacks:
            cb.on_batch_end(state)
        return state.stop_reason is not None

    model, history, device = state.model, state.history, runtime.device
    if hasattr(train_loader.sampler, "set_epoch"):  # a DistributedSampler reshuffles per epoch
        train_loader.sampler.set_epoch(state.epoch)
    t0 = time.perf_counter()
    train_loss = train_epoch(model, train_loader, loss_fn, state.optimizer, state.scheduler,
                             accumulation_steps, device=device, on_step=after_step)
    history.train_loss.append(runtime.mean_over_processes(train_loss))
    if val_loader is not None:  # on the main process, without DDP's wrapper
        plain = getattr(model, "module", model) if runtime.world_size > 1 else model
        history.val_loss.append(runtime.value_from_main(
            lambda: evaluate_loss(plain, val_loader, loss_fn, device=device)))
    history.seconds.append(time.perf_counter() - t0)
    history.lr.append(state.optimizer.param_groups[0]["lr"])


def _is_best_epoch(state: TrainState, validated: bool, min_delta: float, patience: int | None
                   ) -> bool:
    """Early stopping: whether this epoch improved on the best one by more than `min_delta` (it
    then becomes the best); after `patience` epochs without, `state.stop_reason` says so."""
    history = state.history
    watched = history.val_loss[-1] if validated else history.train_loss[-1]
    improved = watched < state.best_value - min_delta
    if improved:
        state.best_value, state.bad_epochs, history.best_epoch = watched, 0, state.epoch
    else:
        state.bad_epochs += 1
        if patience is not None and state.bad_epochs >= patience and state.stop_reason is None:
            state.stop_reason = (f"early stopping at epoch {state.epoch}: no improvement for "
                                 f"{patience} epochs (best {state.best_value:.4f} at epoch "
                                 f"{history.best_epoch})")
    history.stop_reason = state.stop_reason
    return improved


def _finite_epoch(history: History) -> bool:
    """Whether the last epoch's losses are finite (a diverged epoch is never checkpointed)."""
    losses = history.train_loss[-1:] + history.val_loss[-1:]
    return all(math.isfinite(v) for v in losses)


def _progress(epochs: int, done: int):
    """A tqdm bar on a terminal or in Jupyter, else `_EpochLines` (a log file shows no bar)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if getattr(sys.stderr, "isatty", lambda: False)() or hasattr(shell, "kernel"):
        from tqdm.auto import tqdm  # imported when needed: it is slow to import

        return tqdm(total=epochs, initial=done, desc="epochs")
    return _EpochLines(epochs, done)


class _EpochLines:
    """Progress as one plain line per epoch on stderr, e.g.
    `epoch 3/30: train loss 0.2412, validation loss 0.3120, 5.2 s, about 2 min 26 s left`."""

    def __init__(self, epochs: int, done: int):
        self.epochs, self.done, self.seconds = epochs, done, []

    def show(self, history: History) -> None:
        self.done += 1
        self.seconds.append(history.seconds[-1])
        left = (self.epochs - self.done) * sum(self.seconds) / len(self.seconds)
        val = f", validation loss {history.val_loss[-1]:.4f}" if history.val_loss else ""
        print(f"epoch {self.done}/{self.epochs}: train loss {history.train_loss[-1]:.4f}{val}, "
              f"{history.seconds[-1]:.1f} s, about {_duration(left)} left", file=sys.stderr,
              flush=True)

    def close(self) -> None: ...


def _duration(seconds: float) -> str:
    """'45 s', '2 min 26 s', '1 h 05 min'."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    return f"{s // 60} min {s % 60:02d} s" if s < 3600 else f"{s // 3600} h {s % 3600 // 60:02d} min"


def _close_progress(bar) -> None:
    if bar is not None:
        bar.close()


def _show_epoch(bar, history: History) -> None:
    if bar is None:
        return
    if isinstance(bar, _EpochLines):
        bar.show(history)
        return
    latest = {"train": f"{history.train_loss[-1]:.4f}"}
    if history.val_loss:
        latest["val"] = f"{history.val_loss[-1]:.4f}"
    bar.set_postfix(latest)
    bar.update()


# --- checkpoints: everything needed to continue --------------------------------------------------
def _copy_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rng_states(train_loader: DataLoader) -> dict[str, torch.Tensor]:
    states = {"torch": torch.get_rng_state()}
    if train_loader.generator is not None:
        states["loader"] = train_loader.generator.get_state()
    if torch.cuda.is_available():
        states.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return states


def _snapshot(state: TrainState, best_weights: dict, train_loader: DataLoader,
              callbacks: list[Callback], extra: dict | None) -> dict:
    """Everything `_restore` needs, as tensors and plain Python values (loadable with
    weights_only=True)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": state.epoch,
        "step": state.step,
        "model": state.model.state_dict(),
        "best_model": best_weights,
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
        "history": asdict(state.history),
        "best_value": state.best_value,
        "bad_epochs": state.bad_epochs,
        "stop_reason": state.stop_reason,
        "rng": _rng_states(train_loader),
        "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else None for cb in callbacks],
        "extra": extra or {},
    }


#: The entries of a `_snapshot`, all needed by `_restore`.
_SNAPSHOT_KEYS = ("epoch", "step", "model", "best_model", "optimizer", "scheduler", "history",
                  "best_value", "bad_epochs", "stop_reason", "rng", "callbacks")
#: Scheduler entries that say where a schedule is; the others say what it is (kept from the new one).
_SCHEDULE_POSITION = {"last_epoch", "_step_count", "_last_lr", "base_lrs", "verbose",
                      "_get_lr_called_within_step", "_is_initial"}


def _restore(ckpt: dict, state: TrainState, train_loader: DataLoader, callbacks: list[Callback]
             ) -> dict:
    """Load a `_snapshot` into the live objects; returns the best weights."""
    missing = [k for k in _SNAPSHOT_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"resume_from: expected a checkpoint written by fit, got one without "
                         f"{', '.join(missing)}")
    try:
        state.model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:  # other layers or shapes: torch's message runs over many lines
        first = " ".join(str(exc).split())[:300]
        raise ValueError(f"resume_from: the checkpoint holds a different model ({first}); expected "
                         f"the same model as the run that wrote it") from None
    state.optimizer.load_state_dict(ckpt["optimizer"])
    if (state.scheduler is None) != (ckpt["scheduler"] is None):
        raise ValueError("resume_from: the checkpoint was written "
                         f"{'without' if ckpt['scheduler'] is None else 'with'} a scheduler, this "
                         f"run has {'none' if state.scheduler is None else 'one'}; expected the "
                         f"same set-up")
    if state.scheduler is not None:
        _restore_scheduler(state.scheduler, state.optimizer, ckpt["scheduler"])
    state.history = History(**ckpt["history"])
    state.epoch, state.step = ckpt["epoch"], ckpt["step"]
    state.best_value, state.bad_epochs = ckpt["best_value"], ckpt["bad_epochs"]
    state.stop_reason = ckpt["stop_reason"]
    rng = ckpt["rng"]
    torch.set_rng_state(rng["torch"])
    if "loader" in rng and train_loader.generator is not None:
        train_loader.generator.set_state(rng["loader"])
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        if f"cuda{i}" in rng:
            torch.cuda.set_rng_state(rng[f"cuda{i}"], i)
    for cb, cb_state in zip(callbacks, ckpt["callbacks"], strict=False):
        if cb_state is not None and hasattr(cb, "load_state_dict"):
            cb.load_state_dict(cb_state)
    return ckpt["best_model"]


def _restore_scheduler(scheduler, optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Continue the saved schedule at its step; settings of the new scheduler that differ from the
    saved ones (T_max of a cosine over more epochs, ...) are kept, and the learning rate becomes the
    new schedule's value at that step."""
    own = scheduler.state_dict()
    changed = {k: v for k, v in own.items() if k not in _SCHEDULE_POSITION and k in saved
               and isinstance(v, (int, float, str)) and v != saved[k]}
    scheduler.load_state_dict({**saved, **changed})
    if changed and hasattr(scheduler, "_get_closed_form_lr"):
        lrs = scheduler._get_closed_form_lr()
        for group, lr in zip(optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        scheduler._last_lr = list(lrs)
