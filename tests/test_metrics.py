"""Masked metrics against NumPy references written independently of helpers.metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.metrics import horizon_metrics, masked_mae, masked_mape, masked_rmse


def numpy_reference(pred: np.ndarray, target: np.ndarray, null_value=np.nan, min_target=1e-6, axis=None):
    """MAE, RMSE, MAPE over entries whose target is observed, with NumPy's nan-aware means."""
    observed = ~np.isnan(target) if np.isnan(null_value) else ~np.isnan(target) & (target != null_value)
    error = np.where(observed, pred - target, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(observed & (np.abs(target) >= min_target), np.abs(error) / np.abs(target), np.nan)
    if axis is not None:  # per horizon step: reduce every axis but 1
        axis = tuple(a for a in range(target.ndim) if a != 1)
    return (
        np.nanmean(np.abs(error), axis=axis),
        np.sqrt(np.nanmean(error**2, axis=axis)),
        np.nanmean(relative, axis=axis),
    )


def sample(shape, missing=0.1, zeros=0.05, seed=0):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.5, 200.0, shape)
    target[rng.random(shape) < zeros] = 0.0
    target[rng.random(shape) < missing] = np.nan
    pred = target + rng.normal(0.0, 10.0, shape)
    pred[np.isnan(pred)] = 5.0
    return pred, target


@pytest.mark.parametrize("shape", [(8, 4, 6), (8, 4, 6, 2)])
@pytest.mark.parametrize("per_horizon", [False, True])
@pytest.mark.parametrize("null_value", [float("nan"), 0.0])
def test_masked_metrics_match_numpy(shape, per_horizon, null_value):
    pred, target = sample(shape)
    mae, rmse, mape = numpy_reference(pred, target, null_value, axis=1 if per_horizon else None)
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    got = [f(p, t, null_value, per_horizon=per_horizon) for f in (masked_mae, masked_rmse, masked_mape)]
    for value, expected in zip(got, (mae, rmse, mape), strict=True):
        assert value.shape == ((shape[1],) if per_horizon else ())
        np.testing.assert_allclose(value.numpy(), expected, rtol=1e-10)


def test_missing_targets_change_nothing_but_zero_targets_count_unless_null():
    target = torch.tensor([[[10.0, float("nan")], [0.0, 4.0]]])  # (batch 1, horizon 2, nodes 2)
    pred = torch.tensor([[[12.0, 1000.0], [3.0, 5.0]]])
    assert masked_mae(pred, target).item() == pytest.approx((2 + 3 + 1) / 3)
    assert masked_mae(pred, target, null_value=0.0).item() == pytest.approx((2 + 1) / 2)
    assert masked_mae(pred, target, per_horizon=True).tolist() == pytest.approx([2.0, 2.0])
    assert masked_rmse(pred, target).item() == pytest.approx(((4 + 9 + 1) / 3) ** 0.5)
    # MAPE skips the zero target (a percentage of zero is undefined) and is a fraction, not a percent.
    assert masked_mape(pred, target).item() == pytest.approx((0.2 + 0.25) / 2)
    assert masked_mape(pred, target, min_target=5.0).item() == pytest.approx(0.2)


def test_overall_rmse_is_not_the_mean_of_step_rmses():
    pred, target = sample((4, 3, 5), seed=3)
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    overall, steps = masked_rmse(p, t), masked_rmse(p, t, per_horizon=True)
    assert overall.item() != pytest.approx(steps.mean().item(), rel=1e-9)
    assert overall.item() == pytest.approx(numpy_reference(pred, target)[1])


def test_nan_predictions_propagate_and_all_missing_gives_nan():
    target = torch.ones(2, 3, 4)
    pred = torch.ones(2, 3, 4)
    pred[0, 1, 2] = float("nan")
    assert torch.isnan(masked_mae(pred, target))
    assert torch.isnan(masked_mae(torch.ones(2, 3, 4), torch.full((2, 3, 4), float("nan"))))
    pred[0, 1, 2] = float("inf")
    target[0, 1, 2] = float("nan")  # a masked entry cannot poison the mean, even with an inf prediction
    assert masked_mae(pred, target).item() == 0.0


def test_horizon_metrics_table():
    pred, target = sample((6, 3, 4), seed=5)
    table = horizon_metrics(torch.from_numpy(pred), torch.from_numpy(target), min_target=1.0)
    mae, rmse, mape = numpy_reference(pred, target, min_target=1.0, axis=1)
    assert table["step"] == [1, 2, 3]
    np.testing.assert_allclose(table["mae"], mae)
    np.testing.assert_allclose(table["rmse"], rmse)
    np.testing.assert_allclose(table["mape"], mape)
    assert all(isinstance(v, float) for v in table["mae"])


@pytest.mark.parametrize(
    "pred, target, message",
    [
        (torch.zeros(2, 3, 4), torch.zeros(2, 3, 5), r"expected the same shape, got \(2, 3, 4\) and \(2, 3, 5\)"),
        (torch.zeros(3, 4), torch.zeros(3, 4), r"target: expected \(batch, horizon, nodes\) .* got \(3, 4\)"),
        (np.zeros((2, 3, 4)), torch.zeros(2, 3, 4), r"pred, target: expected tensors, got ndarray and Tensor"),
    ],
)
def test_metrics_reject_bad_shapes(pred, target, message):
    for metric in (masked_mae, masked_rmse, masked_mape):
        with pytest.raises(ValueError, match=message):
            metric(pred, target)
