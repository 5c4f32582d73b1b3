"""Forecasts of a trained model and their errors: `predict`, `evaluate` (masked MAE, RMSE and MAPE
per horizon step, in original units) and `forecast_metrics` (the same table for given forecasts);
`target_steps`: which steps of the series each window of a split forecasts."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from helpers.data import Splits
from helpers.metrics import horizon_metrics, masked_mae, masked_mape, masked_rmse
from helpers.train.loop import _check_loader


def predict(model: nn.Module, loader: DataLoader, *, device: torch.device | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `model` over `loader` in evaluation mode: (predictions, targets), each concatenated on
    the CPU, e.g. (samples, horizon, nodes)."""
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
    targets: torch.Tensor | None = None,
) -> dict:
    """Masked MAE, RMSE and MAPE of `model`'s forecasts per horizon step, in original units.

    loader yields (x, y) with y scaled like the model's output; `scaler` (e.g. `Splits.scaler`)
    turns both back into original units with `inverse_transform(., channel=target_channel)`, in
    float64; scaler=None means they already are. Missing targets (NaN, or `null_value`) are left
    out; MAPE also leaves out targets below `min_target` and is a fraction (0.12 = 12%).
    targets: the loader's targets in the data's own units, e.g. the second value of
    `helpers.models.baseline_forecast(name, ds, splits)`, used instead of the unscaled y. Give them
    when the data hold huge readings: y scaled to float32 by a huge std has lost the ordinary
    differences, and no unscaling brings them back.
    Returns `forecast_metrics` of the forecasts.
    """
    pred, target = predict(model, loader, device=device)
    if scaler is not None:
        pred = scaler.inverse_transform(pred.double(), channel=target_channel)
        target = scaler.inverse_transform(target.double(), channel=target_channel)
    if targets is not None:
        if not isinstance(targets, torch.Tensor) or targets.shape != target.shape:
            got = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
            raise ValueError(f"targets: expected a tensor shaped like the loader's targets, "
                             f"{tuple(target.shape)}, got {got}")
        target = targets
    return forecast_metrics(pred, target, null_value=null_value, min_target=min_target)


def forecast_metrics(pred: torch.Tensor, target: torch.Tensor, null_value: float = float("nan"),
                     min_target: float = 1e-6) -> dict:
    """Masked MAE, RMSE and MAPE per horizon step and over all steps. pred, target: (samples,
    horizon, nodes).

    Returns {"step": [1..H], "mae": [...], "rmse": [...], "mape": [...], "overall": {"mae", "rmse",
    "mape"}} (`helpers.metrics.horizon_metrics` plus "overall", which pools every step: the RMSE of
    all errors, not the mean of per-step RMSEs), computed in float64 on pred and target as given:
    pass them in the data's own units (see `evaluate`'s `targets`).
    """
    table = horizon_metrics(pred, target, null_value=null_value, min_target=min_target)
    table["overall"] = {
        "mae": masked_mae(pred, target, null_value).item(),
        "rmse": masked_rmse(pred, target, null_value).item(),
        "mape": masked_mape(pred, target, null_value, min_target=min_target).item(),
    }
    return table


def target_steps(splits: Splits, part: str = "test") -> torch.Tensor:
    """The steps of the whole series that the windows of one part of `make_splits` forecast:
    (samples, horizon) int64 (a window's targets are consecutive; windows skip gaps)."""
    windows = getattr(splits, part)
    start = splits.bounds[("train", "val", "test").index(part)][0]
    first = start + windows.starts + windows.input_len  # (samples,)
    return first[:, None] + torch.arange(windows.output_len)
