"""From a series to supervised samples: windows, chronological splits, scaling and loaders.

- `sliding_windows` (zero-copy input/target windows) and `TimeSeriesWindows` (the `Dataset` around
  them). The windows rule: a window never crosses a gap in the timestamps (a metro's night), so a
  dataset keeps only the windows inside one segment (`window_starts`, index arithmetic on the same
  views) unless `cross_gaps=True`; `count_windows` says how many the rule removes.
- `split_bounds` / `make_splits` (chronological train/val/test parts with no window crossing a
  boundary, returned as `Splits`) and `StandardScaler` (z-score fitted on the training part only).
- `shuffled_loader`: a `DataLoader` whose order depends on its seed alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from helpers.checks import check_int
from helpers.data.series import GraphTimeSeries


def sliding_windows(
    x: torch.Tensor, input_len: int, output_len: int, stride: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a series into (input, target) windows without copying anything.

    x: (time,), (time, nodes) or (time, nodes, channels) - any (time, *rest).
    Returns inputs (samples, input_len, *rest) and targets (samples, output_len, *rest), both views
    of x's memory, with samples = (time - input_len - output_len) // stride + 1. Window s covers
    steps [s * stride, s * stride + input_len) as input and the next output_len steps as target.
    Views share memory: write to x and the windows change; `.clone()` one to keep it.
    """
    _check_windows(x, input_len, output_len, stride)
    windows = x.unfold(0, input_len + output_len, stride)  # (samples, *rest, window)
    windows = windows.movedim(-1, 1)  # (samples, window, *rest)
    return windows[:, :input_len], windows[:, input_len:]


def _check_windows(x: torch.Tensor, input_len, output_len, stride) -> None:
    """ValueError unless the lengths are ints >= 1 and one window fits into the series x."""
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise ValueError(f"x: expected a tensor with a time axis first, got {type(x).__name__}")
    for name, value in (("input_len", input_len), ("output_len", output_len), ("stride", stride)):
        check_int(name, value)
    if input_len + output_len > x.shape[0]:
        raise ValueError(
            f"window: expected input_len + output_len <= series length, got "
            f"{input_len} + {output_len} = {input_len + output_len} > {x.shape[0]} steps"
        )


_Segments = Sequence[tuple[int, int]]


def window_starts(segments: _Segments, input_len: int, output_len: int,
                  stride: int = 1) -> torch.Tensor:
    """The first step of every window that lies inside one segment: (samples,) int64, ascending.

    segments: [(start, stop), ...] regular stretches of a series (`GraphTimeSeries.segments`).
    In each segment the windows start at start, start + stride, ... while input_len + output_len
    steps still fit before stop; a segment shorter than that gives none.
    """
    for name, value in (("input_len", input_len), ("output_len", output_len), ("stride", stride)):
        check_int(name, value)
    length = input_len + output_len
    starts = [torch.arange(a, b - length + 1, stride) for a, b in segments if b - a >= length]
    return torch.cat(starts) if starts else torch.zeros(0, dtype=torch.int64)


def clip_segments(segments: _Segments, start: int, stop: int) -> list[tuple[int, int]]:
    """The segments' parts inside steps [start, stop), counted from `start` (for a split part)."""
    clipped = [(max(a, start) - start, min(b, stop) - start) for a, b in segments]
    return [(a, b) for a, b in clipped if b > a]


class WindowCount(NamedTuple):
    """What the windows rule does to a series: `total` windows if gaps were ignored, `kept`
    inside one segment, `removed` = total - kept (those that would cross a gap)."""

    total: int
    kept: int
    removed: int


def count_windows(ds: GraphTimeSeries, input_len: int, output_len: int,
                  stride: int = 1) -> WindowCount:
    """How many (input_len, output_len) windows of the whole series `ds` the windows rule keeps and
    how many it removes because they would cross a gap (e.g. run from 23:15 into the next morning).
    """
    total = max(0, (ds.num_steps - input_len - output_len) // stride + 1)
    kept = len(window_starts(ds.segments, input_len, output_len, stride))
    return WindowCount(total, kept, total - kept)


class TimeSeriesWindows(Dataset):
    """Map-style Dataset of sliding windows over a series (zero-copy: items are views).

    values: (time, nodes, channels), (time, nodes) or (time,) tensor, or a `GraphTimeSeries` (its
        values and its segments).
    Item i is (x, y):
      3-d values: x (input_len, nodes, channels), y (output_len, nodes) = channel `target_channel`
                  (target_channel=None keeps every channel: y (output_len, nodes, channels));
      2-d values: x (input_len, nodes), y (output_len, nodes);
      1-d values: x (input_len,), y (output_len,).
    fill_value: if not None, NaN (missing) in x is replaced by it (y keeps NaN for masked metrics).
    segments: [(start, stop), ...] regular stretches of the series; windows stay inside one (the
        windows rule). Default: a GraphTimeSeries' own `segments`, else the whole series.
    cross_gaps: True ignores the segments, so windows may run across a gap (the old behaviour).
    `starts` (samples,) holds the first step of each window; `removed` counts the windows the rule
    dropped. `inputs` and `targets` hold every window at once: (samples, input_len, ...),
    (samples, output_len, ...); views of the series when no window was dropped, else gathered.
    """

    def __init__(
        self,
        values: torch.Tensor | GraphTimeSeries,
        input_len: int,
        output_len: int,
        stride: int = 1,
        target_channel: int | None = 0,
        fill_value: float | None = None,
        segments: _Segments | None = None,
        cross_gaps: bool = False,
    ):
        if isinstance(values, GraphTimeSeries):
            segments = values.segments if segments is None else segments
            values = values.values
        self._all_inputs, targets = sliding_windows(values, input_len, output_len)
        if values.ndim == 3 and target_channel is not None:
            check_int("target_channel", target_channel, 0, values.shape[2] - 1)
            targets = targets[..., target_channel]
        self._all_targets = targets
        self.input_len, self.output_len, self.fill_value = input_len, output_len, fill_value
        whole = [(0, values.shape[0])]
        self.starts = window_starts(whole if cross_gaps or segments is None else segments,
                                    input_len, output_len, stride)
        every = window_starts(whole, input_len, output_len, stride)
        self.removed = len(every) - len(self.starts)
        self._strided = torch.equal(self.starts, every)  # all kept: a strided view suffices
        self._stride = stride
        self._index = self.starts.tolist()

    @property
    def inputs(self) -> torch.Tensor:
        if self._strided:
            return self._all_inputs[:: self._stride]
        return self._all_inputs[self.starts]

    @property
    def targets(self) -> torch.Tensor:
        if self._strided:
            return self._all_targets[:: self._stride]
        return self._all_targets[self.starts]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = self._index[index]
        x = self._all_inputs[start]
        if self.fill_value is not None:
            x = torch.nan_to_num(x, nan=self.fill_value)
        return x, self._all_targets[start]


def split_bounds(num_steps: int,
                 fractions: Sequence[float] = (0.7, 0.1, 0.2)) -> list[tuple[int, int]]:
    """Chronological parts of a series: [(start, stop), ...], stop - start ~ fraction * num_steps.

    fractions: positive and summing to 1, e.g. (train, val, test) = (0.7, 0.1, 0.2).
    """
    fractions = [float(f) for f in fractions]
    if not fractions or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions: expected positive fractions summing to 1, got {fractions}")
    edges = [0] + [round(num_steps * f) for f in np.cumsum(fractions)[:-1].tolist()] + [num_steps]
    parts = list(zip(edges[:-1], edges[1:], strict=True))
    if any(stop <= start for start, stop in parts):
        raise ValueError(
            f"fractions: expected every part to get steps from {num_steps}, got bounds {parts}"
        )
    return parts


class StandardScaler:
    """z-score scaling, NaN-aware, fitted on training data only.

    per_node=False (default): one mean and std per channel over all times and nodes, so that the
    scaled series keeps busy stations bigger than quiet ones and a loss on scaled values is
    proportional to the loss in passengers. per_node=True: one mean and std per node and channel.
    Fitted on values (time, nodes, channels): mean/std have shape (channels,) or (nodes, channels);
    on values (time, nodes): shape () or (nodes,). transform / inverse_transform take (..., nodes,
    channels) or (..., nodes) matching the fit; inverse_transform(x, channel=k) takes (..., nodes)
    holding channel k only (e.g. model outputs).
    """

    def __init__(self, per_node: bool = False, eps: float = 1e-8):
        self.per_node, self.eps = per_node, eps
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def fit(self, values: torch.Tensor) -> StandardScaler:
        if not isinstance(values, torch.Tensor) or values.ndim not in (2, 3):
            got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise ValueError(
                f"values: expected a (time, nodes, channels) or (time, nodes) tensor, got {got}"
            )
        x = values.double()
        dims = (0,) if self.per_node else (0, 1)  # reduce over time (and nodes)
        observed = (~torch.isnan(x)).sum(dim=dims)
        if (observed == 0).any():
            raise ValueError(
                "values: expected at least one observed (non-NaN) value per statistic, got none"
            )
        mean = torch.nanmean(x, dim=dims)
        std = torch.nanmean((x - mean) ** 2, dim=dims).sqrt()
        self.mean = mean.float()
        self.std = torch.where(std > self.eps, std, torch.ones_like(std)).float()
        self._channels = x.ndim == 3
        return self

    def _stats(self, x: torch.Tensor, channel: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None:
            raise ValueError(
                "StandardScaler: expected fit() to be called first, got an unfitted scaler"
            )
        mean, std = self.mean, self.std
        if channel is not None:
            if not self._channels or not 0 <= channel < mean.shape[-1]:
                raise ValueError(
                    f"channel: expected an index of the {tuple(mean.shape)} statistics, "
                    f"got {channel}"
                )
            mean, std = mean[..., channel], std[..., channel]
        expected = tuple(mean.shape)
        if mean.ndim and tuple(x.shape[-mean.ndim :]) != expected:
            raise ValueError(
                f"x: expected trailing dims {expected} to match the fitted statistics, "
                f"got {tuple(x.shape)}"
            )
        return mean.to(x.device), std.to(x.device)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x, None)
        return (x - mean) / std

    def inverse_transform(self, x: torch.Tensor, channel: int | None = None) -> torch.Tensor:
        mean, std = self._stats(x, channel)
        return x * std + mean

    def __repr__(self) -> str:
        if self.mean is None:
            return f"StandardScaler(per_node={self.per_node}, unfitted)"
        return f"StandardScaler(per_node={self.per_node}, mean shape {tuple(self.mean.shape)})"


@dataclass
class Splits:
    """What `make_splits` returns: three window datasets, the scaler, the (start, stop) bounds."""

    train: TimeSeriesWindows
    val: TimeSeriesWindows
    test: TimeSeriesWindows
    scaler: StandardScaler
    bounds: list[tuple[int, int]]

    @property
    def removed(self) -> int:
        """Windows the windows rule dropped in the three parts (they would cross a gap)."""
        return self.train.removed + self.val.removed + self.test.removed


def make_splits(
    ds: GraphTimeSeries | torch.Tensor,
    input_len: int,
    output_len: int,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    stride: int = 1,
    target_channel: int | None = 0,
    per_node: bool = False,
    fill_value: float | None = 0.0,
    cross_gaps: bool = False,
) -> Splits:
    """Chronological train/val/test window datasets, scaled with statistics of the training part.

    ds: a GraphTimeSeries or a values tensor (time, nodes, channels).
    Each part is windowed on its own, so no window crosses a boundary (each part loses
    input_len + output_len - 1 start positions at its end), and inside a part no window crosses a
    gap in ds's timestamps (`ds.segments`; `splits.removed` counts the windows this drops) unless
    cross_gaps=True. A values tensor has no timestamps: one segment. Inputs and targets are scaled;
    missing inputs become `fill_value` (0.0 = the training mean), missing targets stay NaN.
    Get passengers back with `splits.scaler.inverse_transform(y, channel=target_channel)`.
    """
    values = ds.values if isinstance(ds, GraphTimeSeries) else ds
    _check_windows(values, input_len, output_len, stride)
    bounds = split_bounds(values.shape[0], fractions)
    if len(bounds) != 3:
        raise ValueError(
            f"fractions: expected three fractions (train, val, test), got {len(bounds)}"
        )
    for (start, stop), name in zip(bounds, ("train", "val", "test"), strict=True):
        if stop - start < input_len + output_len:
            raise ValueError(
                f"{name} part: expected at least input_len + output_len = "
                f"{input_len + output_len} steps, got {stop - start}"
            )
    scaler = StandardScaler(per_node=per_node).fit(values[bounds[0][0] : bounds[0][1]])
    scaled = scaler.transform(values)
    segments = ds.segments if isinstance(ds, GraphTimeSeries) else [(0, values.shape[0])]
    windows = (input_len, output_len, stride, target_channel, fill_value)
    parts = [TimeSeriesWindows(scaled[start:stop], *windows, clip_segments(segments, start, stop),
                               cross_gaps) for start, stop in bounds]
    for part, name in zip(parts, ("train", "val", "test"), strict=True):
        if len(part) == 0:
            raise ValueError(
                f"{name} part: expected at least one window of {input_len + output_len} steps "
                f"inside a segment without gaps, got none (segments too short; shorten the "
                f"windows or pass cross_gaps=True)"
            )
    return Splits(*parts, scaler=scaler, bounds=bounds)


def shuffled_loader(dataset: Dataset, batch_size: int, seed: int,
                    shuffle: bool = True) -> DataLoader:
    """A DataLoader over `dataset` in batches of `batch_size`, reshuffled every epoch by its own
    `torch.Generator().manual_seed(seed)`: the order depends on `seed` alone, never on other random
    draws (model initialisation, dropout), and draws none of theirs. shuffle=False keeps the
    dataset's order (for validation and test).
    """
    check_int("batch_size", batch_size)
    generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
