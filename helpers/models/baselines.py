"""Forecasts without gradient descent: the yardsticks every trained model is compared with.

- `nearest_neighbour_forecast`: the k-nearest-neighbour forecaster. Notebook 03 uses it to measure
  how a shuffled split of overlapping windows inflates a test score: a forecaster that remembers its
  training windows profits directly from training windows that overlap the test windows in time.
- `historical_average`: every step forecast as the mean of its time-of-day slot (and day type) over
  the training part.
- `subtract_profile`: the series minus its historical average (what is left for a model to learn).
- `baseline_forecast`: persistence (the last reading, repeated) or the historical average for every
  window of a part of `helpers.data.make_splits`, in original units.
"""

from __future__ import annotations

import math

import torch

from helpers.checks import check_int
from helpers.data import GraphTimeSeries, day_type, sliding_windows, time_of_day_index


def nearest_neighbour_forecast(
    train_x: torch.Tensor, train_y: torch.Tensor, query_x: torch.Tensor, k: int = 1
) -> torch.Tensor:
    """Forecast each query window as the mean target of the k training windows closest to it.

    train_x: (n, *input_shape) training inputs, e.g. (n, d) or windows (n, time, nodes).
    train_y: (n, *target_shape) their targets, e.g. (n, horizon) or (n, horizon, nodes).
    query_x: (m, *input_shape) inputs to forecast.
    k: number of neighbours, 1 <= k <= n.
    Returns (m, *target_shape). Distance is Euclidean over the flattened input; no NaN allowed (fill
    missing readings first), computed in float64. Memory: one (m, n) distance matrix.
    """
    _check_windows(train_x, train_y, query_x)
    n = len(train_x)
    check_int("k", k, 1, n)
    # float64: distances of count data are then exact, so the neighbours do not depend on the
    # order of summation
    query, train = query_x.reshape(len(query_x), -1).double(), train_x.reshape(n, -1).double()
    distances = torch.cdist(query, train)  # (m, n)
    nearest = distances.topk(k, dim=1, largest=False).indices  # (m, k)
    return train_y[nearest].mean(dim=1)  # (m, k, *target_shape) -> (m, *target_shape)


def _check_windows(train_x: torch.Tensor, train_y: torch.Tensor, query_x: torch.Tensor) -> None:
    """Floating-point tensors with a sample axis first, one target per input, no NaN."""
    for name, t in (("train_x", train_x), ("train_y", train_y), ("query_x", query_x)):
        if not isinstance(t, torch.Tensor) or t.ndim < 1 or not t.is_floating_point():
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name}: expected a floating-point tensor with a sample axis first, "
                             f"got {got}")
    if train_y.shape[0] != train_x.shape[0]:
        raise ValueError(f"train_y: expected one target per training input ({train_x.shape[0]}), "
                         f"got {train_y.shape[0]}")
    if query_x.shape[1:] != train_x.shape[1:]:
        shape = ", ".join(map(str, train_x.shape[1:]))
        raise ValueError(f"query_x: expected inputs shaped like train_x, (m, {shape}), "
                         f"got {tuple(query_x.shape)}")
    if torch.isnan(train_x).any() or torch.isnan(query_x).any() or torch.isnan(train_y).any():
        raise ValueError("inputs and targets: expected no NaN (fill missing readings first), "
                         "got NaN")


def historical_average(ds: GraphTimeSeries, fit_stop: int, channel: int = 0) -> torch.Tensor:
    """The historical-average forecast of every step: (time, nodes).

    Step t gets the mean of channel `channel` over the steps before `fit_stop` (the training part)
    with the same time of day and day type (working day, or weekend/holiday from
    ds.meta["holidays"]), per node, ignoring missing readings. A slot never seen before fit_stop
    falls back to the node's mean over the fitting part.
    """
    if ds.timestamps is None:
        raise ValueError("historical_average: expected a dataset with timestamps, "
                         "got timestamps=None")
    if not 0 < fit_stop <= ds.num_steps:
        raise ValueError(f"fit_stop: expected a step in (0, {ds.num_steps}], got {fit_stop}")
    slots_per_day = math.ceil(1440 / ds.interval_minutes)
    weekend = day_type(ds.timestamps, ds.meta.get("holidays", ()))
    key = weekend * slots_per_day + time_of_day_index(ds.timestamps, ds.interval_minutes)
    y = ds.values[:fit_stop, :, channel].double()
    seen = ~torch.isnan(y)
    sums = torch.zeros(2 * slots_per_day, ds.num_nodes, dtype=torch.float64)
    sums.index_add_(0, key[:fit_stop], y.nan_to_num(0))
    counts = torch.zeros_like(sums).index_add_(0, key[:fit_stop], seen.double())
    node_mean = torch.nanmean(y, dim=0).expand_as(sums)
    average = torch.where(counts > 0, sums / counts.clamp(min=1), node_mean)
    return average[key].float()


def subtract_profile(ds: GraphTimeSeries, fit_stop: int) -> tuple[GraphTimeSeries, torch.Tensor]:
    """Channel 0 of `ds` minus its historical average (fitted on steps before `fit_stop`):
    (the dataset with channel 0 = deviation, renamed "<name>_deviation"; the profile (time, nodes)).

    A forecaster of the deviation adds the profile back: forecast = profile + predicted deviation.
    In metro data the daily profile explains most of a count; what is left is what a model learns.
    """
    profile = historical_average(ds, fit_stop)
    values = ds.values.clone()
    values[..., 0] -= profile
    channels = [f"{ds.channel_names[0]}_deviation", *ds.channel_names[1:]]
    return GraphTimeSeries(values, ds.adjacency, ds.interval_minutes, ds.node_names, ds.coords,
                           ds.timestamps, channels, dict(ds.meta)), profile


def baseline_forecast(name: str, ds: GraphTimeSeries, splits, part: str = "test"
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Forecasts of a baseline for every window of a part of `make_splits`, in original units.

    name: "persistence" (the last input step, repeated) or "ha" (historical average by time of day
    and day type, fitted on the training part). splits: `make_splits(ds, ...)`; the forecasts are
    for the same windows (`windows.starts`), so none crosses a gap unless the splits' windows do.
    Returns (predictions, targets), each (samples, horizon, nodes). Both come from `ds.values`
    (channel 0) in the data's own units, never from the scaled windows unscaled again: one huge
    reading makes the scaler's std huge, and float32 values scaled by it lose every ordinary
    difference. A missing last reading is forecast as what a model sees there: the window's
    fill value in original units.
    """
    windows = getattr(splits, part)
    start, stop = splits.bounds[("train", "val", "test").index(part)]
    input_len, horizon = windows.input_len, windows.output_len
    inputs, target = sliding_windows(ds.values[start:stop, :, 0], input_len, horizon)
    if not len(windows) or int(windows.starts.max()) >= target.shape[0]:
        raise ValueError(f"splits: expected the {part} windows of make_splits(ds, ...) on this "
                         f"dataset ({target.shape[0]} window starts), got windows starting up to "
                         f"{int(windows.starts.max()) if len(windows) else 'none'}")
    inputs, target = inputs[windows.starts], target[windows.starts]  # the same windows as a model
    if name == "persistence":
        last = inputs[:, -1:]
        if windows.fill_value is not None:  # what a model sees where the last reading is missing
            fill = torch.full((1, 1, ds.num_nodes), float(windows.fill_value))
            last = torch.where(torch.isnan(last), splits.scaler.inverse_transform(fill, channel=0),
                               last)
        pred = last.expand(-1, horizon, -1)
    elif name == "ha":
        average = historical_average(ds, fit_stop=splits.bounds[0][1])  # (time, nodes)
        pred = sliding_windows(average[start:stop], input_len, horizon)[1][windows.starts]
    else:
        raise ValueError(f"baseline must be 'persistence' or 'ha', got {name!r}")
    return pred.contiguous(), target.contiguous()
