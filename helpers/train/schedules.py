"""Learning-rate schedules and the scaling of the learning rate with the batch size.

- `warmup_factor` (notebook 05): linear warmup, for `torch.optim.lr_scheduler.LambdaLR`.
- `warmup_cosine_factor` and its scheduler `warmup_cosine` (notebook 09): warmup, then cosine decay.
- `scaled_lr`: a learning rate tuned at one batch size, moved to another (linear or square-root
  rule).

Every schedule here is stepped once per optimizer step, as `fit` does.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from helpers.checks import check_choice, check_int, check_number


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warmup: the factor (step + 1) / warmup_steps for the first warmup_steps steps, then 1.

    Made for `torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_factor, warmup_steps=W))`:
    LambdaLR calls it with step = 0 before the first update, so update k (from 1) uses lr * k / W.
    warmup_steps = 0 means no warmup.
    """
    check_int("step", step, 0)
    check_int("warmup_steps", warmup_steps, 0)
    return 1.0 if step >= warmup_steps else (step + 1) / warmup_steps


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int,
                         min_factor: float = 0.0) -> float:
    """The learning-rate factor at optimizer step `step` (from 0): linear warmup, then cosine decay.

    (step + 1) / warmup_steps for the first `warmup_steps` steps, then from 1 down to `min_factor`
    along half a cosine, reaching it at `total_steps` and staying there.
    """
    _check_schedule(step, warmup_steps, total_steps, min_factor)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _check_schedule(step: int, warmup_steps: int, total_steps: int, min_factor: float) -> None:
    check_int("step", step, 0)
    check_int("warmup_steps", warmup_steps, 0)
    check_int("total_steps", total_steps, 0)
    if total_steps <= warmup_steps:
        raise ValueError(f"total_steps must exceed warmup_steps = {warmup_steps}, "
                         f"got {total_steps}")
    check_number("min_factor", min_factor, 0, 1)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_factor: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler for `fit` (stepped once per optimizer step): `warmup_cosine_factor` times each
    base lr."""
    _check_schedule(0, warmup_steps, total_steps, min_factor)  # now, not at the first step
    factor = partial(warmup_cosine_factor, warmup_steps=warmup_steps, total_steps=total_steps,
                     min_factor=min_factor)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def scaled_lr(base_lr: float, base_batch_size: int, batch_size: int, rule: str = "linear") -> float:
    """Scale a learning rate tuned at base_batch_size to batch_size.

    rule "linear": lr * (batch / base) (keeps the update per epoch of SGD the same; Goyal et al.
    2017); "sqrt": lr * sqrt(batch / base) (keeps the variance of the update the same; often used
    for Adam); "none": lr unchanged.
    """
    exponent = {"linear": 1.0, "sqrt": 0.5, "none": 0.0}
    check_choice("rule", rule, exponent)
    check_number("base_lr", base_lr, 0)
    check_int("base_batch_size", base_batch_size)
    check_int("batch_size", batch_size)
    return base_lr * (batch_size / base_batch_size) ** exponent[rule]
