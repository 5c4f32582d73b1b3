"""The training loop of the workbook, one pass at a time.

Notebook 05 writes this loop by hand first and explains each line; these functions are that loop,
reusable. The order inside one step is: `zero_grad`, forward, loss, `backward`, `step` (and the
scheduler's step). Losses are accumulated with `loss.item()` (a float), never the tensor `loss`,
which would keep every batch's graph alive.

Loss functions are called as `loss_fn(prediction, target)` and must return the MEAN over the batch
(PyTorch's default); epoch losses are means over samples, weighted by batch size.

- `train_epoch`, `evaluate_loss`: one pass over a loader, training or measuring.
- `make_optimizer`: a torch optimizer by name; `masked_loss`: a loss that ignores missing targets.
- `History`: the per-epoch record of a run (`fit` fills it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from helpers.checks import check_choice, check_int, check_number

#: Names accepted by `make_optimizer`.
OPTIMIZER_NAMES = ("SGD", "Momentum", "AdaGrad", "RMSProp", "Adam", "AdamW")
#: Names accepted by `masked_loss`.
LOSS_NAMES = ("mse", "mae", "huber")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class History:
    """Per-epoch record of a run: mean losses (train, and validation when a validation loader was
    given), the learning rate at the end of the epoch and the epoch's wall-clock seconds (training
    + validation). `best_epoch` (1-based) is the epoch whose weights `fit` kept; `stop_reason` says
    why it stopped early."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stop_reason: str | None = None


def make_optimizer(name: str, params: Iterable, lr: float, **kwargs) -> torch.optim.Optimizer:
    """A torch.optim optimizer by name: SGD, Momentum (SGD with momentum 0.9), AdaGrad, RMSProp,
    Adam, AdamW.

    kwargs go to the optimizer (e.g. weight_decay=1e-4, betas=(0.9, 0.99)).
    """
    check_choice("optimizer name", name, OPTIMIZER_NAMES)
    check_number("lr", lr, 0, low_open=True)
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


def masked_loss(kind: str = "mse") -> LossFn:
    """A training loss that leaves out missing targets (NaN): the mean over the observed entries
    only.

    kind: "mse", "mae" (L1) or "huber" (delta 1: quadratic for small errors, linear for large ones).
    Returns loss_fn(prediction, target) -> scalar; with no observed target the loss is 0 (no
    gradient), so a batch of missing readings cannot turn the weights into NaN. prediction and
    target must have the same shape (ValueError otherwise: broadcasting (B, 1) against (B,) would
    silently compare every prediction with every target).
    """
    check_choice("loss kind", kind, LOSS_NAMES)
    elementwise = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}[kind]

    def loss_fn(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.shape != target.shape:
            raise ValueError(f"masked_{kind}: expected prediction and target of the same shape, "
                             f"got {tuple(prediction.shape)} and {tuple(target.shape)}")
        observed = ~torch.isnan(target)
        filled = torch.where(observed, target, prediction.detach())  # no error where missing
        errors = elementwise(prediction, filled, reduction="none")
        return errors.sum() / observed.sum().clamp(min=1)

    loss_fn.__name__ = f"masked_{kind}"
    return loss_fn


def _check_loader(loader: object, name: str) -> None:
    if not isinstance(loader, DataLoader):
        raise ValueError(f"{name} must be a torch DataLoader of (input, target) batches, "
                         f"got {type(loader).__name__}")


def train_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    accumulation_steps: int = 1,
    *,
    device: torch.device | None = None,
    on_step: Callable[[float], bool | None] | None = None,
) -> float:
    """One pass over `loader` in training mode; returns the mean training loss per sample.

    loader yields (x, y) batches; model(x) is compared with y by loss_fn. With accumulation_steps=k
    the gradients of k consecutive batches are added up (each loss divided by k) before one
    optimizer step, which matches one step on a k times larger batch; a last incomplete group of
    r < k batches divides by r instead, so it steps with the mean gradient of its own batches (not
    r/k of it). The scheduler, if any, steps once per optimizer step.
    device: move each batch there first. on_step(batch_loss) is called after every batch (`fit`
    hands its callbacks the batch this way); returning True ends the epoch there.
    """
    _check_loader(loader, "loader")
    check_int("accumulation_steps", accumulation_steps)
    model.train()
    total, count = 0.0, 0
    optimizer.zero_grad()
    batches = len(loader)
    for i, (x, y) in enumerate(loader, start=1):
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = loss_fn(model(x), y)
        group_start = i - (i - 1) % accumulation_steps  # first batch of this accumulation group
        group_size = min(accumulation_steps, batches - group_start + 1)
        (loss / group_size).backward()
        total += loss.item() * len(x)  # a float: the graph of this batch can be freed
        count += len(x)
        if i % accumulation_steps == 0 or i == batches:
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
    loss_fn: LossFn,
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
