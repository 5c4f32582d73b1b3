"""The calendar of a series: `time_of_day_index` (the step's slot within its day) and `day_type`
(working day, or weekend / holiday), as clock features and the historical average read them;
`infer_interval_minutes` and `segment_bounds`, the step length and the regular stretches of
timestamps that have gaps (a metro's nights)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def time_of_day_index(timestamps: np.ndarray, interval_minutes: int) -> torch.Tensor:
    """Index of each step within its day: minutes since midnight // interval_minutes, (time,)."""
    ts = np.asarray(timestamps).astype("datetime64[m]")
    minutes = (ts - ts.astype("datetime64[D]")).astype(np.int64)
    return torch.from_numpy(minutes // interval_minutes)


def day_type(timestamps: np.ndarray, holidays: Sequence[str] = ()) -> torch.Tensor:
    """1 for Saturday, Sunday or a holiday (ISO date strings), else 0; shape (time,) int64."""
    days = np.asarray(timestamps).astype("datetime64[D]")
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    off = (weekday >= 5) | np.isin(days, np.array(list(holidays), dtype="datetime64[D]"))
    return torch.from_numpy(off.astype(np.int64))


def infer_interval_minutes(timestamps: np.ndarray) -> int:
    """The step length of timestamps (time,) that may have gaps: their smallest positive step, in
    whole minutes. `GraphTimeSeries` then checks that every step is a multiple of it."""
    ts = np.asarray(timestamps).astype("datetime64[m]")
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"timestamps: expected at least two times to infer the interval from, "
                         f"got shape {ts.shape}")
    steps = np.diff(ts).astype(np.int64)
    positive = steps[steps > 0]
    if not positive.size:
        raise ValueError(f"timestamps: expected increasing times, got {ts[0]} repeated")
    return int(positive.min())


def segment_bounds(timestamps: np.ndarray, interval_minutes: int) -> list[tuple[int, int]]:
    """The stretches of `timestamps` (time,) without a gap: [(start, stop), ...] step indices, where
    consecutive times inside a stretch are exactly `interval_minutes` apart."""
    ts = np.asarray(timestamps).astype("datetime64[m]")
    jumps = np.flatnonzero(np.diff(ts).astype(np.int64) != interval_minutes) + 1
    edges = [0, *jumps.tolist(), len(ts)]
    return list(zip(edges[:-1], edges[1:], strict=True))
