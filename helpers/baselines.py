"""Forecasters fitted without gradient descent: they remember the training windows and look them up.

- `nearest_neighbour_forecast`: the k-nearest-neighbour forecaster. Notebook 02 uses it to measure how a
  shuffled split of overlapping windows inflates a test score: a forecaster that remembers its training
  windows profits directly from training windows that overlap the test windows in time.
"""

from __future__ import annotations

import torch


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
    for name, t in (("train_x", train_x), ("train_y", train_y), ("query_x", query_x)):
        if not isinstance(t, torch.Tensor) or t.ndim < 1 or not t.is_floating_point():
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name}: expected a floating-point tensor with a sample axis first, got {got}")
    if train_y.shape[0] != train_x.shape[0]:
        raise ValueError(
            f"train_y: expected one target per training input ({train_x.shape[0]}), got {train_y.shape[0]}"
        )
    if query_x.shape[1:] != train_x.shape[1:]:
        raise ValueError(
            f"query_x: expected inputs shaped like train_x, (m, {', '.join(map(str, train_x.shape[1:]))}), "
            f"got {tuple(query_x.shape)}"
        )
    n = train_x.shape[0]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n:
        raise ValueError(f"k: expected an int in [1, {n}] (the number of training windows), got {k!r}")
    if torch.isnan(train_x).any() or torch.isnan(query_x).any() or torch.isnan(train_y).any():
        raise ValueError("inputs and targets: expected no NaN (fill missing readings first), got NaN")
    # float64: distances of count data are then exact, so the neighbours do not depend on summation order
    distances = torch.cdist(query_x.reshape(query_x.shape[0], -1).double(), train_x.reshape(n, -1).double())  # (m, n)
    nearest = distances.topk(k, dim=1, largest=False).indices  # (m, k)
    return train_y[nearest].mean(dim=1)  # (m, k, *target_shape) -> (m, *target_shape)
