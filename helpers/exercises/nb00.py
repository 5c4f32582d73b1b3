"""Exercises of notebook 00 (start here)."""

import torch

from helpers.exercises import exercise
from helpers.exercises.hints import shape_hint


@exercise("00.1", "hourly totals from 15-minute counts")
def check_hourly_totals(answer):
    counts = torch.arange(1.0, 13.0)  # three hours of 15-minute counts
    result = answer(counts)
    if hint := shape_hint(result, (3,)):
        return hint + " (12 quarter-hours make 3 hours: try reshape(-1, 4))"
    if not torch.equal(result, torch.tensor([10.0, 26.0, 42.0])):
        return "the shape is right but the sums are not: add up each group of 4 consecutive counts"
    return None
