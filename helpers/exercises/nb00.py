"""Exercises of notebook 00 (start here)."""

import torch

from helpers.exercises import exercise


@exercise("00.1", "hourly totals from 15-minute counts")
def check_hourly_totals(answer):
    counts = torch.arange(1.0, 13.0)  # three hours of 15-minute counts
    result = answer(counts)
    if not isinstance(result, torch.Tensor):
        return f"return a tensor, not {type(result).__name__}"
    if result.shape != (3,):
        return f"12 quarter-hours make 3 hours: expected shape (3,), got {tuple(result.shape)}; try reshape(-1, 4)"
    if not torch.equal(result, torch.tensor([10.0, 26.0, 42.0])):
        return "the shape is right but the sums are not: add up each group of 4 consecutive counts"
    return None
