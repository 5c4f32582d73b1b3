"""The training loop of the workbook: one epoch of training, an evaluation pass, and `fit` around them.

Notebook 04 writes this loop by hand first and explains each line; these functions are that loop,
reusable. The order inside one step is: `zero_grad`, forward, loss, `backward`, `step` (and the
scheduler's step). Losses are accumulated with `loss.item()` (a float), never the tensor `loss`,
which would keep every batch's graph alive.

Loss functions are called as `loss_fn(prediction, target)` and must return the MEAN over the batch
(PyTorch's default); epoch losses are means over samples, weighted by batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader

__all__ = ["History", "OPTIMIZER_NAMES", "make_optimizer", "train_epoch", "evaluate", "fit"]

#: Names accepted by `make_optimizer`.
OPTIMIZER_NAMES = ("SGD", "Momentum", "AdaGrad", "RMSProp", "Adam", "AdamW")


@dataclass
class History:
    """Per-epoch mean losses (train, and validation when a validation loader was given)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


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
) -> float:
    """One pass over `loader` in training mode; returns the mean training loss per sample.

    loader yields (x, y) batches; model(x) is compared with y by loss_fn. With accumulation_steps=k
    the gradients of k consecutive batches are added up (each loss divided by k) before one optimiser
    step, which matches one step on a k times larger batch; a last incomplete group still steps.
    The scheduler, if any, steps once per optimiser step.
    """
    _check_loader(loader, "loader")
    if isinstance(accumulation_steps, bool) or not isinstance(accumulation_steps, int) or accumulation_steps < 1:
        raise ValueError(f"accumulation_steps must be an int >= 1, got {accumulation_steps!r}")
    model.train()
    total, count = 0.0, 0
    optimizer.zero_grad()
    for i, (x, y) in enumerate(loader, start=1):
        loss = loss_fn(model(x), y)
        (loss / accumulation_steps).backward()
        total += loss.item() * len(x)  # a float: the graph of this batch can be freed
        count += len(x)
        if i % accumulation_steps == 0 or i == len(loader):
            optimizer.step()
            optimizer.zero_grad()
            if scheduler is not None:
                scheduler.step()
    if count == 0:
        raise ValueError("loader yielded no batches")
    return total / count


def evaluate(
    model: nn.Module, loader: DataLoader, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> float:
    """Mean loss per sample over `loader`, in evaluation mode and without building graphs.

    The model is left in evaluation mode; `train_epoch` switches it back.
    """
    _check_loader(loader, "loader")
    model.eval()  # dropout off, BatchNorm uses its running statistics
    total, count = 0.0, 0
    with torch.no_grad():  # no graph: less memory, faster
        for x, y in loader:
            total += loss_fn(model(x), y).item() * len(x)
            count += len(x)
    if count == 0:
        raise ValueError("loader yielded no batches")
    return total / count


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
) -> History:
    """Train for `epochs` epochs; returns the History of mean train (and validation) losses per epoch.

    on_epoch_end(epoch, history) is called after each epoch (epoch counts from 1), e.g. to redraw a
    live loss curve. progress=True shows a tqdm bar over epochs with the latest losses.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    _check_loader(train_loader, "train_loader")
    if val_loader is not None:
        _check_loader(val_loader, "val_loader")
    history = History()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="epochs")
    for epoch in range(1, epochs + 1):
        history.train_loss.append(train_epoch(model, train_loader, loss_fn, optimizer, scheduler, accumulation_steps))
        if val_loader is not None:
            history.val_loss.append(evaluate(model, val_loader, loss_fn))
        if bar is not None:
            latest = {"train": f"{history.train_loss[-1]:.4f}"}
            if history.val_loss:
                latest["val"] = f"{history.val_loss[-1]:.4f}"
            bar.set_postfix(latest)
            bar.update()
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
    if bar is not None:
        bar.close()
    return history
