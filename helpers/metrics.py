"""Forecast errors that ignore missing targets: masked MAE, RMSE and MAPE, per horizon step or
overall, and `horizon_metrics`, the three per step as a table.

pred and target: (batch, horizon, nodes) or (batch, horizon, nodes, channels), in the same units
(invert any scaling first). A target is missing when it is NaN, or equal to `null_value` when that
is a number (some datasets write 0 for "no reading"). Missing targets are left out of every mean:
the result is the mean over the observed entries, not a mean of per-batch means. A NaN in `pred`
is NOT masked: it propagates, so a broken model shows up. With no observed entry the result is NaN.
Every metric is computed in float64 and returned as a float64 tensor, whatever the inputs' dtype:
in float32 one huge reading (1e12) swallows every ordinary error in the sums, and a squared error
of 1e30 overflows to inf. (On Apple's MPS, which has no float64, the work moves to the CPU.)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["masked_mae", "masked_rmse", "masked_mape", "horizon_metrics"]


def _float64(t: Tensor) -> Tensor:
    """`t` in float64 (moved to the CPU first on MPS, which has no float64); gradients still flow."""
    return (t.cpu() if t.device.type == "mps" else t).double()


def _observed(pred: Tensor, target: Tensor, null_value: float) -> tuple[Tensor, Tensor, Tensor]:
    """(pred, target) in float64 and the mask of observed targets, after checking the shapes."""
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise ValueError(f"pred, target: expected tensors, "
                         f"got {type(pred).__name__} and {type(target).__name__}")
    if pred.shape != target.shape:
        raise ValueError(f"pred, target: expected the same shape, "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    if target.ndim not in (3, 4):
        raise ValueError("target: expected (batch, horizon, nodes) or (batch, horizon, nodes, "
                         f"channels), got {tuple(target.shape)}")
    mask = ~torch.isnan(target)
    if not math.isnan(null_value):
        mask &= target != null_value  # in target's own dtype: null_value is a value of the data
    return _float64(pred), _float64(target), mask.cpu() if mask.device.type == "mps" else mask


def _masked_mean(error: Tensor, mask: Tensor, per_horizon: bool) -> Tensor:
    """Mean of `error` over the entries where mask is True: a scalar, or (horizon,) per step."""
    error = torch.where(mask, error, torch.zeros_like(error))  # drops inf/NaN at masked entries too
    dims = tuple(d for d in range(error.ndim) if not (per_horizon and d == 1))
    return error.sum(dim=dims) / mask.sum(dim=dims)


def masked_mae(pred: Tensor, target: Tensor, null_value: float = float("nan"),
               per_horizon: bool = False) -> Tensor:
    """Mean absolute error over observed targets: a scalar, or (horizon,) with per_horizon=True."""
    pred, target, mask = _observed(pred, target, null_value)
    return _masked_mean((pred - target).abs(), mask, per_horizon)


def masked_rmse(pred: Tensor, target: Tensor, null_value: float = float("nan"),
                per_horizon: bool = False) -> Tensor:
    """Root mean squared error over observed targets: sqrt of the masked mean squared error.

    Overall, the root of the mean over every observed entry (not the mean of per-step RMSEs).
    """
    pred, target, mask = _observed(pred, target, null_value)
    return _masked_mean((pred - target) ** 2, mask, per_horizon).sqrt()


def masked_mape(pred: Tensor, target: Tensor, null_value: float = float("nan"),
                per_horizon: bool = False, min_target: float = 1e-6) -> Tensor:
    """Mean absolute percentage error as a FRACTION (0.12 = 12%) over observed targets.

    Targets with |target| < min_target are left out as well as missing ones: a percentage of
    (almost) zero is meaningless. For passenger counts, min_target around 10 keeps the few riders
    of the first and last trains from dominating the mean.
    """
    pred, target, mask = _observed(pred, target, null_value)
    mask &= target.abs() >= min_target
    return _masked_mean((pred - target).abs() / target.abs(), mask, per_horizon)


def horizon_metrics(pred: Tensor, target: Tensor, null_value: float = float("nan"),
                    min_target: float = 1e-6) -> dict[str, list[float]]:
    """MAE, RMSE and MAPE (fraction) per horizon step, for tables and plots.

    Returns {"step": [1, ..., horizon], "mae": [...], "rmse": [...], "mape": [...]}, Python numbers
    (computed in float64).
    """
    pred, target = pred.detach(), target.detach()
    mape = masked_mape(pred, target, null_value, per_horizon=True, min_target=min_target)
    return {
        "step": list(range(1, target.shape[1] + 1)),
        "mae": masked_mae(pred, target, null_value, per_horizon=True).tolist(),
        "rmse": masked_rmse(pred, target, null_value, per_horizon=True).tolist(),
        "mape": mape.tolist(),
    }
