"""Masked metrics against NumPy references written independently of helpers.metrics; metrics of
huge readings in float64 and the data's own units; the training loss's shape check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from helpers.data import GraphTimeSeries, make_splits
from helpers.metrics import horizon_metrics, masked_mae, masked_mape, masked_rmse
from helpers.models import baseline_forecast
from helpers.train import evaluate, forecast_metrics, masked_loss


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


# --- one huge reading (issue 18, item 4) -----------------------------------------------------------
def small_series(big: float, row: int):
    """A 3-node series of readings 0..10 with one huge reading at (row, node 1)."""
    values = np.random.default_rng(0).uniform(0, 10, (200, 3)).round(1)
    values[row, 1] = big
    ds = GraphTimeSeries(values=values, adjacency=np.ones((3, 3)) - np.eye(3), interval_minutes=5,
                         node_names=["a", "b", "c"])
    return ds, values.astype(np.float32).astype(np.float64)


def persistence_reference(values, bounds, input_len=4, horizon=2):
    """Persistence MAE and RMSE of the test part in float64, by loops over the raw readings."""
    start, stop = bounds[2]
    errors = [values[start + i + input_len + h] - values[start + i + input_len - 1]
              for i in range(stop - start - input_len - horizon + 1) for h in range(horizon)]
    errors = np.array(errors)
    return np.abs(errors).mean(), np.sqrt((errors**2).mean())


@pytest.mark.parametrize("big, row", [(1e12, 5), (1e30, 5), (1e30, 190)])
def test_one_huge_reading_does_not_spoil_the_metrics(big, row):
    ds, values = small_series(big, row)  # row 5: training part; row 190: test part
    splits = make_splits(ds, 4, 2)
    overall = forecast_metrics(*baseline_forecast("persistence", ds, splits))["overall"]
    mae, rmse = persistence_reference(values, splits.bounds)
    assert overall["mae"] == pytest.approx(mae, rel=1e-9)  # was 0.0 (1e12 in training)
    assert overall["rmse"] == pytest.approx(rmse, rel=1e-9)  # was inf (1e30 in the test part)


def test_evaluate_unscales_in_float64_and_takes_targets_in_the_data_units():
    class Last(torch.nn.Module):  # persistence as a model: the last scaled input, repeated
        def forward(self, x):
            return x[:, -1:, :, 0].expand(-1, 2, -1)

    ds, values = small_series(5.0, 5)
    splits = make_splits(ds, 4, 2)
    loader = DataLoader(splits.test, batch_size=64)
    mae, rmse = persistence_reference(values, splits.bounds)
    overall = evaluate(Last(), loader, splits.scaler)["overall"]
    assert overall["mae"] == pytest.approx(mae, rel=1e-6) and overall["rmse"] == pytest.approx(rmse, rel=1e-6)
    ds, values = small_series(1e12, 5)
    splits = make_splits(ds, 4, 2)
    targets = baseline_forecast("persistence", ds, splits)[1]
    given = evaluate(Last(), DataLoader(splits.test, batch_size=64), splits.scaler, targets=targets)
    assert given["overall"]["mae"] > 1.0  # the scaled model's real error, not 0.0
    with pytest.raises(ValueError, match=r"targets: expected a tensor shaped like the loader's targets, "
                                         r"\(35, 2, 3\), got \(35, 2\)"):
        evaluate(Last(), loader, splits.scaler, targets=targets[..., 0])


def test_metrics_are_float64_even_for_float32_inputs():
    target = torch.zeros(1, 2, 2)
    pred = torch.tensor([[[1e30, 0.0], [0.0, 0.0]]])  # float32: its square overflows
    rmse = masked_rmse(pred, target)
    assert rmse.dtype == torch.float64 and rmse.item() == pytest.approx(1e30 / 2, rel=1e-6)
    pred = torch.tensor([[[1e12, 1.0], [1.0, 1.0]]])
    assert masked_mae(pred, target, per_horizon=True).tolist() == pytest.approx([(1e12 + 1) / 2, 1.0])


def test_masked_loss_refuses_mismatched_shapes_like_the_metrics():
    for kind in ("mse", "mae", "huber"):
        with pytest.raises(ValueError, match=rf"masked_{kind}: expected prediction and target of the same "
                                             r"shape, got \(4, 1\) and \(4,\)"):
            masked_loss(kind)(torch.zeros(4, 1), torch.ones(4))
    assert masked_loss("mse")(torch.zeros(4), torch.ones(4)).item() == 1.0
