"""The calendar of a series: `time_of_day_index` (the step's slot within its day) and `day_type`
(working day, or weekend / holiday), as clock features and the historical average read them."""

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
