"""The training loop of the workbook, its checkpoints, and the command line `python -m helpers.train`.

Notebook 04 writes this loop by hand first and explains each line; these functions are that loop,
reusable. The order inside one step is: `zero_grad`, forward, loss, `backward`, `step` (and the
scheduler's step). Losses are accumulated with `loss.item()` (a float), never the tensor `loss`,
which would keep every batch's graph alive.

Loss functions are called as `loss_fn(prediction, target)` and must return the MEAN over the batch
(PyTorch's default); epoch losses are means over samples, weighted by batch size.

- One pass: `train_epoch`, `evaluate_loss`; `make_optimizer` by name; `masked_loss` ignores missing targets.
- `fit`: epochs with validation, early stopping, a learning-rate schedule (any torch scheduler, stepped
  once per optimiser step), `Callback` hooks, a tqdm progress bar, and a checkpoint written atomically
  after every epoch; `fit(..., resume_from=path)` continues a run exactly as if it had never stopped.
- `save_checkpoint` (torch.save to a temporary file, then os.replace) and `load_checkpoint`
  (`torch.load(weights_only=True)`: tensors and plain Python values only, never arbitrary code).
- `train_forecaster`: `fit` with one standard recipe (Adam, cosine decay, masked loss) on `make_splits` parts.
- `predict`, `evaluate` and `forecast_metrics`: forecasts and masked MAE/RMSE/MAPE per horizon step, in
  original units.
- `Runtime`: the device (and process rank) a run uses; the one place that decides who logs and writes.
- `main`: the command line; `python -m helpers.train --help`.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from helpers.data import write_atomic
from helpers.metrics import horizon_metrics, masked_mae, masked_mape, masked_rmse

__all__ = [
    "History",
    "OPTIMIZER_NAMES",
    "LOSS_NAMES",
    "make_optimizer",
    "masked_loss",
    "train_epoch",
    "evaluate_loss",
    "Callback",
    "TrainState",
    "Runtime",
    "setup_runtime",
    "fit",
    "save_checkpoint",
    "load_checkpoint",
    "predict",
    "evaluate",
    "forecast_metrics",
    "train_forecaster",
    "main",
    "StopOnNonFiniteLoss",
    "warmup_cosine_factor",
    "warmup_cosine",
]

#: Names accepted by `make_optimizer`.
OPTIMIZER_NAMES = ("SGD", "Momentum", "AdaGrad", "RMSProp", "Adam", "AdamW")
#: Names accepted by `masked_loss`.
LOSS_NAMES = ("mse", "mae", "huber")
CHECKPOINT_FORMAT = "metro-stgcn-checkpoint-1"


@dataclass
class History:
    """Per-epoch record of a run: mean losses (train, and validation when a validation loader was given),
    the learning rate at the end of the epoch and the epoch's wall-clock seconds (training + validation).
    `best_epoch` (1-based) is the epoch whose weights `fit` kept; `stop_reason` says why it stopped early."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stop_reason: str | None = None


def make_optimizer(name: str, params: Iterable, lr: float, **kwargs) -> torch.optim.Optimizer:
    """A torch.optim optimiser by name: SGD, Momentum (SGD with momentum 0.9), AdaGrad, RMSProp, Adam, AdamW.

    kwargs go to the optimiser (e.g. weight_decay=1e-4, betas=(0.9, 0.99)).
    """
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"optimiser name must be one of {OPTIMIZER_NAMES}, got {name!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if name == "Momentum":
        kwargs = {"momentum": 0.9, **kwargs}
    cls = {
        "SGD": torch.optim.SGD,
        "Momentum": torch.optim.SGD,
        "AdaGrad": torch.optim.Adagrad,
        "RMSProp": torch.optim.RMSprop,
        "Adam": torch.optim.Adam,
        "AdamW": torch.optim.AdamW,
    }[name]
    return cls(params, lr=lr, **kwargs)


def masked_loss(kind: str = "mse") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A training loss that leaves out missing targets (NaN): the mean over the observed entries only.

    kind: "mse", "mae" (L1) or "huber" (delta 1: quadratic for small errors, linear for large ones).
    Returns loss_fn(prediction, target) -> scalar; with no observed target the loss is 0 (no gradient),
    so a batch of missing readings cannot turn the weights into NaN.
    """
    if kind not in LOSS_NAMES:
        raise ValueError(f"loss kind must be one of {LOSS_NAMES}, got {kind!r}")
    elementwise = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}[kind]

    def loss_fn(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        observed = ~torch.isnan(target)
        errors = elementwise(prediction, torch.where(observed, target, prediction.detach()), reduction="none")
        return errors.sum() / observed.sum().clamp(min=1)

    loss_fn.__name__ = f"masked_{kind}"
    return loss_fn


def _check_loader(loader: object, name: str) -> None:
    if not isinstance(loader, DataLoader):
        raise ValueError(f"{name} must be a torch DataLoader of (input, target) batches, got {type(loader).__name__}")


def train_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    accumulation_steps: int = 1,
    *,
    device: torch.device | None = None,
    on_step: Callable[[float], bool | None] | None = None,
) -> float:
    """One pass over `loader` in training mode; returns the mean training loss per sample.

    loader yields (x, y) batches; model(x) is compared with y by loss_fn. With accumulation_steps=k
    the gradients of k consecutive batches are added up (each loss divided by k) before one optimiser
    step, which matches one step on a k times larger batch; a last incomplete group still steps.
    The scheduler, if any, steps once per optimiser step.
    device: move each batch there first. on_step(batch_loss) is called after every batch (`fit` hands its
    callbacks the batch this way); returning True ends the epoch there.
    """
    _check_loader(loader, "loader")
    if isinstance(accumulation_steps, bool) or not isinstance(accumulation_steps, int) or accumulation_steps < 1:
        raise ValueError(f"accumulation_steps must be an int >= 1, got {accumulation_steps!r}")
    model.train()
    total, count = 0.0, 0
    optimizer.zero_grad()
    for i, (x, y) in enumerate(loader, start=1):
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = loss_fn(model(x), y)
        (loss / accumulation_steps).backward()
        total += loss.item() * len(x)  # a float: the graph of this batch can be freed
        count += len(x)
        if i % accumulation_steps == 0 or i == len(loader):
            optimizer.step()
            optimizer.zero_grad()
            if scheduler is not None:
                scheduler.step()
        if on_step is not None and on_step(loss.item()):
            break
    if count == 0:
        raise ValueError("loader yielded no batches")
    return total / count


def evaluate_loss(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    device: torch.device | None = None,
) -> float:
    """Mean loss per sample over `loader`, in evaluation mode and without building graphs.

    The model is left in evaluation mode; `train_epoch` switches it back.
    """
    _check_loader(loader, "loader")
    model.eval()  # dropout off, BatchNorm uses its running statistics
    total, count = 0.0, 0
    with torch.no_grad():  # no graph: less memory, faster
        for x, y in loader:
            if device is not None:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            total += loss_fn(model(x), y).item() * len(x)
            count += len(x)
    if count == 0:
        raise ValueError("loader yielded no batches")
    return total / count


# --- fit: the whole run -------------------------------------------------------------------------------
class Callback:
    """Hooks into `fit`. Subclass and override what you need; each receives the live `TrainState`.

    on_fit_start / on_fit_end: once; on_epoch_start / on_epoch_end: every epoch (on_epoch_end runs after
    validation and after the checkpoint is written); on_batch_end: after every training batch, with
    `state.batch_loss` set. Set `state.stop_reason` to a sentence to stop training: after the current
    batch (from on_batch_end) or before the next epoch. A callback with `state_dict()` and
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
    """Stop training the first time a batch's loss is NaN or infinite, and say where and what to try.

    The message goes to `state.stop_reason` (so `History.stop_reason`) and, with verbose=True, is printed.
    Without it a diverged run keeps "training" on NaN weights until its last epoch.
    """

    def __init__(self, verbose: bool = True):
        self.verbose = verbose

    def on_batch_end(self, state: TrainState) -> None:
        if math.isfinite(state.batch_loss) or state.stop_reason is not None:
            return
        state.stop_reason = (f"stopped: the loss is {state.batch_loss} at epoch {state.epoch}, step {state.step} "
                             f"(learning rate {state.optimizer.param_groups[0]['lr']:.4g}); lower the learning "
                             f"rate, add warmup, or clip the gradients")
        if self.verbose:
            print(state.stop_reason)


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_factor: float = 0.0) -> float:
    """The learning-rate factor at optimiser step `step` (from 0): linear warmup, then cosine decay.

    (step + 1) / warmup_steps for the first `warmup_steps` steps, then from 1 down to `min_factor` along
    half a cosine, reaching it at `total_steps` and staying there.
    """
    for name, value in (("step", step), ("warmup_steps", warmup_steps), ("total_steps", total_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if total_steps <= warmup_steps:
        raise ValueError(f"total_steps must exceed warmup_steps = {warmup_steps}, got {total_steps}")
    if not 0.0 <= min_factor <= 1.0:
        raise ValueError(f"min_factor must be in [0, 1], got {min_factor!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_factor: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler for `fit` (stepped once per optimiser step): `warmup_cosine_factor` times each base lr."""
    from functools import partial

    warmup_cosine_factor(0, warmup_steps, total_steps, min_factor)  # check the arguments now
    return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_cosine_factor, warmup_steps=warmup_steps,
                                                                total_steps=total_steps, min_factor=min_factor))


@dataclass
class Runtime:
    """Where a run executes: its device, and its process's rank among `world_size` processes.

    One process (the default) is rank 0 of 1. Everything that must happen once per run rather than
    once per process (progress bars, printing, writing checkpoints and results) asks `is_main`; the
    loss of an epoch is averaged over processes by `mean_over_processes`, and the training loader is
    built by `train_loader`, so a multi-process (DistributedDataParallel) run changes these places only.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean_over_processes(self, value: float) -> float:
        """The mean of `value` over all processes (the value itself for a single process)."""
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.item() / self.world_size

    def train_loader(self, dataset: Dataset, batch_size: int, seed: int) -> DataLoader:
        """A shuffling loader with its own seeded generator (reproducible, and saved in checkpoints); with
        several processes, this process's share of each epoch (`helpers.distributed.distributed_loader`)."""
        if self.world_size > 1:
            from helpers.distributed import distributed_loader

            return distributed_loader(dataset, batch_size, self, seed)
        return DataLoader(dataset, batch_size=batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(seed))

    def value_from_main(self, compute: Callable[[], float]) -> float:
        """compute() run by the main process only (e.g. a validation pass); every process gets its value."""
        if self.world_size == 1:
            return compute()
        import torch.distributed as dist

        t = torch.tensor([compute() if self.is_main else 0.0], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return t.item()

    def wrap(self, model: nn.Module, seed: int | None = None) -> nn.Module:
        """The model to train: itself for one process, else DistributedDataParallel (`helpers.distributed`)."""
        if self.world_size == 1:
            return model
        from helpers.distributed import wrap_model

        return wrap_model(model, self, seed)


def setup_runtime(device: str | torch.device = "auto", backend: str = "auto") -> Runtime:
    """The `Runtime` of this process: device "auto" (CUDA when available, else CPU), "cpu" or "cuda".

    Started by torchrun with WORLD_SIZE > 1, the process joins the job (`helpers.distributed.init_distributed`:
    backend "auto", "gloo" or "nccl") and trains on its own device as one rank of the world.
    """
    from helpers.distributed import init_distributed, launch_info

    info = launch_info()
    if info is not None and info.world_size > 1:
        return init_distributed(str(device), backend)
    if backend not in ("auto", "gloo", "nccl"):
        raise ValueError(f"backend must be 'auto', 'gloo' or 'nccl', got {backend!r}")
    if isinstance(device, torch.device):
        return Runtime(device)
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU (use --device cpu or auto)")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Runtime(torch.device(device))


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
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
    """Train for up to `epochs` epochs; returns the History (mean train and validation loss per epoch, ...).

    Each epoch: `train_epoch`, then the validation loss (when `val_loader` is given), then early stopping,
    then the checkpoint, then `on_epoch_end(epoch, history)` (epoch counts from 1) and the callbacks.
    - Early stopping watches the validation loss (the training loss without a validation loader): the
      best epoch's weights are kept, and with `patience=k` training stops after k epochs without an
      improvement larger than `min_delta`. restore_best=True (the default) loads the best weights into
      `model` at the end; with restore_best=False the model keeps the last epoch's weights.
    - scheduler: any torch scheduler, stepped once per optimiser step (so a warmup or cosine schedule is
      smooth within an epoch); build it for `epochs * len(train_loader)` steps.
    - checkpoint: a file written atomically after every epoch with everything needed to continue: model,
      optimiser, scheduler, history, early-stopping state, callbacks' states, random-number generator
      states (torch's and the train loader's generator), plus the best weights and `extra` (plain values,
      e.g. a model config). resume_from: such a file; training continues after its last epoch and ends
      with the same weights and history as a run that was never interrupted.
    - runtime: the device (the model and every batch are moved there) and the process's rank; only the
      main process shows progress and writes the checkpoint. progress=True shows a tqdm bar over epochs.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    _check_loader(train_loader, "train_loader")
    if val_loader is not None:
        _check_loader(val_loader, "val_loader")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience must be an int >= 1 or None, got {patience!r}")
    runtime = runtime or Runtime(next(model.parameters()).device)  # by default, where the model is
    device = runtime.device
    model.to(device)
    state = TrainState(model, optimizer, scheduler, History(), epochs)
    best_weights = _copy_weights(model)
    callbacks = list(callbacks)
    if resume_from is not None:
        best_weights = _restore(load_checkpoint(resume_from, map_location=device), state, train_loader, callbacks)
    history = state.history

    def after_step(batch_loss: float) -> bool:
        state.step += 1
        state.batch_loss = batch_loss
        for cb in callbacks:
            cb.on_batch_end(state)
        return state.stop_reason is not None

    for cb in callbacks:
        cb.on_fit_start(state)
    bar = None
    if progress and runtime.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, initial=state.epoch, desc="epochs")
    while state.epoch < epochs and state.stop_reason is None:
        state.epoch += 1
        epoch = state.epoch
        for cb in callbacks:
            cb.on_epoch_start(state)
        if hasattr(train_loader.sampler, "set_epoch"):  # a DistributedSampler reshuffles per epoch
            train_loader.sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        train_loss = train_epoch(model, train_loader, loss_fn, optimizer, scheduler, accumulation_steps,
                                 device=device, on_step=after_step)
        history.train_loss.append(runtime.mean_over_processes(train_loss))
        if val_loader is not None:
            history.val_loss.append(runtime.value_from_main(  # on the main process, without DDP's wrapper
                lambda: evaluate_loss(getattr(model, "module", model) if runtime.world_size > 1 else model,
                                      val_loader, loss_fn, device=device)))
        history.seconds.append(time.perf_counter() - t0)
        history.lr.append(optimizer.param_groups[0]["lr"])

        watched = history.val_loss[-1] if val_loader is not None else history.train_loss[-1]
        if watched < state.best_value - min_delta:
            state.best_value, state.bad_epochs, history.best_epoch = watched, 0, epoch
            best_weights = _copy_weights(model)
        else:
            state.bad_epochs += 1
            if patience is not None and state.bad_epochs >= patience and state.stop_reason is None:
                state.stop_reason = (f"early stopping at epoch {epoch}: no improvement for {patience} epochs "
                                     f"(best {state.best_value:.4f} at epoch {history.best_epoch})")
        history.stop_reason = state.stop_reason
        if checkpoint is not None and runtime.is_main:
            save_checkpoint(_snapshot(state, best_weights, train_loader, callbacks, extra), checkpoint)
        if bar is not None:
            latest = {"train": f"{history.train_loss[-1]:.4f}"}
            if history.val_loss:
                latest["val"] = f"{history.val_loss[-1]:.4f}"
            bar.set_postfix(latest)
            bar.update()
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
        for cb in callbacks:
            cb.on_epoch_end(state)
    if bar is not None:
        bar.close()
    if restore_best and history.best_epoch is not None:
        model.load_state_dict(best_weights)
    for cb in callbacks:
        cb.on_fit_end(state)
    return history


def _copy_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rng_states(train_loader: DataLoader) -> dict[str, torch.Tensor]:
    states = {"torch": torch.get_rng_state()}
    if train_loader.generator is not None:
        states["loader"] = train_loader.generator.get_state()
    if torch.cuda.is_available():
        states.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return states


def _snapshot(state: TrainState, best_weights: dict, train_loader: DataLoader, callbacks: list, extra) -> dict:
    """Everything `_restore` needs, as tensors and plain Python values (loadable with weights_only=True)."""
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


def _restore(ckpt: dict, state: TrainState, train_loader: DataLoader, callbacks: list) -> dict:
    """Load a `_snapshot` into the live objects; returns the best weights."""
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    if (state.scheduler is None) != (ckpt["scheduler"] is None):
        raise ValueError("resume_from: the checkpoint was written "
                         f"{'without' if ckpt['scheduler'] is None else 'with'} a scheduler, this run has "
                         f"{'none' if state.scheduler is None else 'one'}; expected the same set-up")
    if state.scheduler is not None:
        state.scheduler.load_state_dict(ckpt["scheduler"])
    state.history = History(**ckpt["history"])
    state.epoch, state.step = ckpt["epoch"], ckpt["step"]
    state.best_value, state.bad_epochs, state.stop_reason = ckpt["best_value"], ckpt["bad_epochs"], ckpt["stop_reason"]
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


# --- checkpoints on disk ------------------------------------------------------------------------------
def save_checkpoint(obj: dict, path: str | os.PathLike) -> Path:
    """Write `obj` with torch.save atomically: to a temporary file beside `path`, then os.replace.

    A crash or a full disk mid-write leaves the previous file (or none) at `path`, never a truncated
    one, and no temporary file behind. The folder is created if needed. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(path, buffer.getvalue())
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by `fit` with torch.load(weights_only=True): tensors and plain values only,
    so a file from someone else cannot run code on your machine. Raises FileNotFoundError or ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: expected a file at {path}, found none")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(f"checkpoint {path}: could not be read with weights_only=True ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"checkpoint {path}: expected format {CHECKPOINT_FORMAT!r}, got {found!r}")
    return ckpt


# --- forecasts and their errors -----------------------------------------------------------------------
def predict(model: nn.Module, loader: DataLoader, *, device: torch.device | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `model` over `loader` in evaluation mode: (predictions, targets), each concatenated on the CPU,
    e.g. (samples, horizon, nodes)."""
    _check_loader(loader, "loader")
    model.eval()
    preds, targets = [], []
    with torch.no_grad():
        for x, y in loader:
            if device is not None:
                x = x.to(device, non_blocking=True)
            preds.append(model(x).cpu())
            targets.append(y.cpu())
    if not preds:
        raise ValueError("loader yielded no batches")
    return torch.cat(preds), torch.cat(targets)


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    scaler=None,
    *,
    target_channel: int | None = 0,
    null_value: float = float("nan"),
    min_target: float = 1e-6,
    device: torch.device | None = None,
) -> dict:
    """Masked MAE, RMSE and MAPE of `model`'s forecasts per horizon step, in original units.

    loader yields (x, y) with y scaled like the model's output; `scaler` (e.g. `Splits.scaler`) turns both
    back into original units with `inverse_transform(., channel=target_channel)`; scaler=None means they
    already are. Missing targets (NaN, or `null_value`) are left out; MAPE also leaves out targets below
    `min_target` and is a fraction (0.12 = 12%).
    Returns `forecast_metrics` of the forecasts.
    """
    pred, target = predict(model, loader, device=device)
    if scaler is not None:
        pred = scaler.inverse_transform(pred, channel=target_channel)
        target = scaler.inverse_transform(target, channel=target_channel)
    return forecast_metrics(pred, target, null_value=null_value, min_target=min_target)


def forecast_metrics(pred: torch.Tensor, target: torch.Tensor, null_value: float = float("nan"),
                     min_target: float = 1e-6) -> dict:
    """Masked MAE, RMSE and MAPE per horizon step and over all steps. pred, target: (samples, horizon, nodes).

    Returns {"step": [1..H], "mae": [...], "rmse": [...], "mape": [...], "overall": {"mae", "rmse", "mape"}}
    (`helpers.metrics.horizon_metrics` plus "overall", which pools every step: the RMSE of all errors, not
    the mean of per-step RMSEs).
    """
    table = horizon_metrics(pred, target, null_value=null_value, min_target=min_target)
    table["overall"] = {
        "mae": masked_mae(pred, target, null_value).item(),
        "rmse": masked_rmse(pred, target, null_value).item(),
        "mape": masked_mape(pred, target, null_value, min_target=min_target).item(),
    }
    return table


def train_forecaster(
    model: nn.Module,
    splits,
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
    """Train a forecaster on the parts of `helpers.data.make_splits` with one standard recipe; returns the History.

    Adam with learning rate `lr`, decayed to zero along a cosine over all `epochs` (stepped every batch), the
    `masked_loss(loss)` (missing targets left out), a validation pass per epoch and the best epoch's weights
    kept (`fit`, which also takes patience, progress, callbacks, on_epoch_end, checkpoint, resume_from, extra,
    runtime). The training windows are shuffled by a generator seeded with `seed`; torch's global generator
    (dropout) is seeded with it too.
    """
    runtime = runtime or Runtime(next(model.parameters()).device)
    torch.manual_seed(seed)
    trained = runtime.wrap(model, seed)  # DistributedDataParallel when several processes run
    train_loader = runtime.train_loader(splits.train, batch_size, seed)
    val_loader = DataLoader(splits.val, batch_size=256)
    optimizer = make_optimizer("Adam", model.parameters(), lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(train_loader))
    return fit(trained, train_loader, masked_loss(loss), optimizer, epochs, val_loader=val_loader, scheduler=scheduler,
               patience=patience, progress=progress, callbacks=callbacks, on_epoch_end=on_epoch_end,
               checkpoint=checkpoint, resume_from=resume_from, extra=extra, runtime=runtime)


# --- the command line -----------------------------------------------------------------------------------
MODEL_NAMES = ("stgcn", "lstm", "ha", "persistence")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage block) and exits with status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see python -m helpers.train --help)\n")


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}")
    return values


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) <= 0 or abs(sum(values) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"expected three positive fractions summing to 1 "
                                         f"(train,val,test), got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python -m helpers.train`."""
    p = _Parser(
        prog="python -m helpers.train",
        description="Train a forecaster on a network time series and report its errors per horizon step.",
        epilog="examples: python -m helpers.train --data metro --epochs 5 --out runs/metro | "
               "python -m helpers.train --data los-loop --data-root ~/data/los-loop --horizon 3 --out runs/los | "
               "python -m helpers.train --data my_network/ --interval-minutes 15 --model lstm --out runs/mine",
    )
    p.add_argument("--data", required=True,
                   help="'metro' (shipped), 'los-loop' (see --data-root), or a folder holding series.csv (time x "
                        "nodes, node names in the header) and adjacency.csv (nodes x nodes)")
    p.add_argument("--data-root", help="folder of los_speed.csv and los_adj.csv (downloaded there if missing)")
    p.add_argument("--interval-minutes", type=_positive(int),
                   help="minutes per step of your series.csv when it has no timestamp column")
    p.add_argument("--model", choices=MODEL_NAMES, default="stgcn")
    p.add_argument("--epochs", type=_positive(int), default=30)
    p.add_argument("--batch-size", type=_positive(int), default=32)
    p.add_argument("--input-len", type=_positive(int), default=12, help="steps the model sees")
    p.add_argument("--horizon", type=_positive(int), default=3, help="steps it predicts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None,
                   help="folder for checkpoint.pt, metrics.json and predictions.png (default: runs/DATA-MODEL)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto",
                   help="under torchrun: how processes exchange gradients (auto: nccl on GPUs, gloo on CPUs)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument("--split", type=_fractions, default=(0.7, 0.1, 0.2), help="train,val,test fractions")
    p.add_argument("--per-node", action="store_true", help="z-score each node with its own mean and std")
    p.add_argument("--lr", type=_positive(float), default=1e-3)
    p.add_argument("--patience", type=_positive(int), default=5, help="epochs without improvement before stopping")
    p.add_argument("--loss", choices=LOSS_NAMES, default="mse")
    p.add_argument("--time-of-day", action="store_true",
                   help="give the model the clock: sin and cos of the time of day as two more input channels")
    p.add_argument("--mape-min-target", type=float,
                   help="leave targets below this out of MAPE (default: 10 for metro counts, else 1e-6)")
    stgcn = p.add_argument_group("STGCN")
    stgcn.add_argument("--channels", type=_int_list, default=(64, 16, 64),
                       help="temporal,spatial,temporal channels of each ST-Conv block")
    stgcn.add_argument("--blocks", type=_positive(int), default=2)
    stgcn.add_argument("--kt", type=_positive(int), default=3, help="temporal kernel size")
    stgcn.add_argument("--ks", type=_positive(int), default=3, help="Chebyshev order")
    stgcn.add_argument("--graph-conv", choices=("cheb", "gcn"), default="cheb")
    stgcn.add_argument("--predict-change", action="store_true",
                       help="forecast the change from the last input step (persistence built in)")
    p.add_argument("--hidden", type=_positive(int), default=64, help="LSTM hidden size")
    p.add_argument("--threads", type=_positive(int), help="torch CPU threads (default: torch's choice)")
    return p


def load_data(data: str, data_root: str | None = None, interval_minutes: int | None = None):
    """The dataset named on the command line: "metro", "los-loop" or a folder of CSV files."""
    from helpers.data import load_csv_folder, load_los_loop, load_metro

    if data == "metro":
        return load_metro()
    if data == "los-loop":
        return load_los_loop(data_root)
    folder = Path(data)
    if not folder.is_dir():
        raise ValueError(f"--data: expected 'metro', 'los-loop' or a folder holding series.csv and adjacency.csv, "
                         f"got {data!r} (no such folder)")
    return load_csv_folder(folder, interval_minutes)


def build_model(args: argparse.Namespace, ds) -> nn.Module:
    """An STGCN or an LSTM forecaster sized for the dataset `ds` and the arguments."""
    if args.model == "lstm":
        from helpers.models import LSTMForecaster

        return LSTMForecaster(in_features=ds.num_channels, hidden_size=args.hidden, horizon=args.horizon)
    from helpers.stgcn import STGCN, STGCNConfig

    if len(args.channels) != 3:
        raise ValueError(f"--channels: expected three widths (temporal,spatial,temporal), got {args.channels}")
    config = STGCNConfig(num_nodes=ds.num_nodes, input_len=args.input_len, horizon=args.horizon,
                         in_channels=ds.num_channels, blocks=(args.channels,) * args.blocks, Kt=args.kt, Ks=args.ks,
                         graph_conv=args.graph_conv, predict_change=args.predict_change)
    return STGCN(config, ds.adjacency)


def baseline_forecast(name: str, ds, splits, part: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Forecasts of a baseline for every window of a part of `make_splits`, in original units.

    name: "persistence" (the last input step, repeated) or "ha" (historical average by time of day and
    day type, fitted on the training part). Returns (predictions, targets), each (samples, horizon, nodes).
    """
    from helpers.data import historical_average, sliding_windows

    windows = getattr(splits, part)
    start, stop = splits.bounds[("train", "val", "test").index(part)]
    target = splits.scaler.inverse_transform(windows.targets, channel=0)
    horizon = target.shape[1]
    if name == "persistence":
        last = windows.inputs[:, -1:, :, 0] if windows.inputs.ndim == 4 else windows.inputs[:, -1:]
        if windows.fill_value is not None:  # what a model sees where the last reading is missing
            last = last.nan_to_num(nan=windows.fill_value)
        pred = splits.scaler.inverse_transform(last, channel=0).expand(-1, horizon, -1)
    elif name == "ha":
        average = historical_average(ds, fit_stop=splits.bounds[0][1])  # (time, nodes)
        pred = sliding_windows(average[start:stop], windows.inputs.shape[1], horizon)[1]
    else:
        raise ValueError(f"baseline must be 'persistence' or 'ha', got {name!r}")
    return pred.contiguous(), target


def _report_table(metrics: dict, interval_minutes: int, unit: str) -> str:
    lines = [f"{'step':>4} {'minutes':>8} {'MAE':>10} {'RMSE':>10} {'MAPE %':>8}   ({unit})"]
    for k, step in enumerate(metrics["step"]):
        lines.append(f"{step:>4} {step * interval_minutes:>8} {metrics['mae'][k]:>10.4f} {metrics['rmse'][k]:>10.4f} "
                     f"{100 * metrics['mape'][k]:>8.2f}")
    o = metrics["overall"]
    lines.append(f"{'all':>4} {'':>8} {o['mae']:>10.4f} {o['rmse']:>10.4f} {100 * o['mape']:>8.2f}")
    return "\n".join(lines)


def _forecast_png(ds, splits, pred: torch.Tensor, target: torch.Tensor, title: str) -> bytes:
    """Truth and forecast (first and last horizon step) at the busiest node over the first days of the test part."""
    from matplotlib.figure import Figure

    from helpers.plots import plot_forecast

    node = int(torch.nan_to_num(target[:, 0]).mean(dim=0).argmax())
    first_target = splits.bounds[2][0] + splits.test.inputs.shape[1]
    samples = min(len(target), 3 * 1440 // ds.interval_minutes)
    times = ds.timestamps[first_target:first_target + samples] if ds.timestamps is not None else None
    horizon = target.shape[1]
    forecasts = {f"{ds.interval_minutes} min ahead": pred[:samples, 0, node]}
    if horizon > 1:  # the forecast made horizon steps earlier for the same time
        late = torch.full((samples,), float("nan"))
        late[horizon - 1:] = pred[: samples - horizon + 1, -1, node]
        forecasts[f"{horizon * ds.interval_minutes} min ahead"] = late
    fig = Figure(figsize=(8.0, 3.0), dpi=90, layout="constrained")
    plot_forecast(target[:samples, 0, node], forecasts, times, ax=fig.subplots(),
                  title=f"{title}: node {ds.node_names[node]}", ylabel=ds.meta.get("unit", ds.channel_names[0]))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def default_out(data: str, model: str) -> Path:
    """The output folder when --out is not given: runs/<data name>-<model>, e.g. runs/metro-stgcn."""
    return Path("runs") / f"{Path(data).name or 'data'}-{model}"


def run(args: argparse.Namespace, runtime: Runtime) -> dict:
    """Load, train (or fit a baseline), evaluate on the test part, write --out; returns the results dict."""
    from helpers.data import add_time_of_day, make_splits
    from helpers.notebook import seed_everything
    from helpers.stgcn import count_parameters

    out = Path(args.out) if args.out else default_out(args.data, args.model)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: expected a folder (or a new name), got the file {out}")
    if args.resume and not (out / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"--resume: expected {out / 'checkpoint.pt'} from an earlier run, found none")
    ds = load_data(args.data, args.data_root, args.interval_minutes)
    if args.time_of_day:
        ds = add_time_of_day(ds)
    splits = make_splits(ds, args.input_len, args.horizon, fractions=args.split, per_node=args.per_node)
    if args.model == "ha" and ds.timestamps is None:
        raise ValueError("--model ha needs timestamps: give series.csv a first column named 'timestamp'")
    seed_everything(args.seed)
    result = {"data": args.data, "model": args.model, "nodes": ds.num_nodes, "input_len": args.input_len,
              "horizon": args.horizon, "interval_minutes": ds.interval_minutes,
              "unit": ds.meta.get("unit", ds.channel_names[0]), "test_windows": len(splits.test)}
    if args.model in ("ha", "persistence"):
        pred, target = baseline_forecast(args.model, ds, splits)
        result |= {"parameters": 0, "epochs_run": 0}
        out.mkdir(parents=True, exist_ok=True)
    else:
        model = build_model(args, ds).to(runtime.device)
        out.mkdir(parents=True, exist_ok=True)
        extra = {"model": args.model, "args": {k: (list(v) if isinstance(v, tuple) else v)
                                                for k, v in vars(args).items()}}
        history = train_forecaster(model, splits, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                   loss=args.loss, seed=args.seed, patience=args.patience,
                                   progress=runtime.is_main and not args.json, checkpoint=out / "checkpoint.pt",
                                   resume_from=out / "checkpoint.pt" if args.resume else None, extra=extra,
                                   runtime=runtime)
        pred, target = predict(model, DataLoader(splits.test, batch_size=256), device=runtime.device)
        pred = splits.scaler.inverse_transform(pred, channel=0)
        target = splits.scaler.inverse_transform(target, channel=0)
        result |= {"parameters": count_parameters(model), "epochs_run": len(history.train_loss),
                   "best_epoch": history.best_epoch, "stop_reason": history.stop_reason,
                   "train_seconds": round(sum(history.seconds), 3)}
    min_target = args.mape_min_target if args.mape_min_target is not None else (10.0 if args.data == "metro" else 1e-6)
    result["metrics"] = forecast_metrics(pred, target, min_target=min_target)
    result["out"] = str(out)
    if runtime.is_main:
        write_atomic(out / "metrics.json", (json.dumps(result, indent=2) + "\n").encode())
        write_atomic(out / "predictions.png", _forecast_png(ds, splits, pred, target, f"{args.model} on {args.data}"))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m helpers.train ...`: returns the exit status (0 ok, 2 bad arguments or files)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # a bad argument exits here with status 2 and one line
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        runtime = setup_runtime(args.device, args.backend)
        result = run(args, runtime)
    except (ValueError, OSError) as exc:  # OSError: missing or unreadable files, failed downloads
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if runtime.is_main:
        print(f"{result['model']} on {result['data']}: {result['test_windows']} test windows, {result['nodes']} nodes, "
              f"{result['parameters']:,} parameters")
        print(_report_table(result["metrics"], result["interval_minutes"], result["unit"]))
        print(f"wrote {', '.join(sorted(p.name for p in Path(result['out']).iterdir() if not p.name.startswith('.')))} "
              f"to {result['out']}")
        if args.json:
            print(json.dumps(result))
    if runtime.world_size > 1:
        from helpers.distributed import shutdown

        shutdown()
    return 0


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record  # under torchrun: a rank's traceback

    sys.exit(record(main)())
