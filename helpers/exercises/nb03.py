"""Exercises of notebook 03 (data). Each checker calls the learner's function on small inputs and
compares with an answer computed here by other means (the DataLoader itself, sliding_windows,
explicit loops)."""

import math

import torch
from torch.utils.data import DataLoader

from helpers.data import sliding_windows
from helpers.exercises import exercise
from helpers.exercises.hints import int_hint, numbered, shape_hint

#: (num_steps, input_len, output_len, stride): exact fits, one step short, far too short, strides.
_COUNT_CASES = [(100, 12, 3, 1), (100, 12, 3, 4), (15, 12, 3, 1), (14, 12, 3, 1), (5, 12, 3, 1),
                (4032, 24, 4, 7), (10, 3, 1, 3)]


@exercise("03.1", "how many windows?")
def check_count_windows(answer):
    for num_steps, input_len, output_len, stride in _COUNT_CASES:
        expected = len(range(0, num_steps - input_len - output_len + 1, stride))
        result = answer(num_steps, input_len, output_len, stride)
        if hint := int_hint(result):
            return hint
        if result != expected:
            case = (f"num_steps={num_steps}, input_len={input_len}, output_len={output_len}, "
                    f"stride={stride}")
            if expected == 0:
                return f"for {case} no window fits: return 0, not {result}"
            if result == expected - 1 and stride == 1:
                return (f"for {case} expected {expected}, got {result}: the last window ends on "
                        "the last step (+1)")
            return f"for {case} expected {expected}, got {result}: (num_steps - span) // stride + 1"
    return None


@exercise("03.2", "windows with unfold")
def check_unfold_windows(answer):
    series = torch.arange(20.0)
    result = answer(series, 4, 2)
    if not (isinstance(result, tuple) and len(result) == 2):
        return "return a tuple (inputs, targets)"
    expected = dict(zip(("inputs", "targets"), sliding_windows(series, 4, 2), strict=True))
    for (name, want), got in zip(expected.items(), result, strict=True):
        if hint := shape_hint(got, want.shape, name):
            return hint
        if not torch.equal(got, want):
            return (f"{name}: right shape, wrong numbers; window i covers steps i .. i + 5, "
                    "inputs first")
    for name, got in zip(expected, result, strict=True):
        if got.untyped_storage().data_ptr() != series.untyped_storage().data_ptr():
            return (f"{name} are a copy: slice the result of series.unfold(...) instead of "
                    "building new tensors")
    return None


@exercise("03.3", "iterations per epoch")
def check_iterations_per_epoch(answer):
    for num_samples in (1, 63, 64, 65, 2808):
        for batch_size in (1, 32, 64, 100):
            for drop_last in (False, True):
                loader = DataLoader(range(num_samples), batch_size=batch_size, drop_last=drop_last)
                result = answer(num_samples, batch_size, drop_last)
                if result != len(loader):
                    case = f"{num_samples} samples, batch_size={batch_size}, drop_last={drop_last}"
                    return (f"{case}: the loader yields {len(loader)} batches, you said {result}; "
                            "think ceil vs floor")
                if hint := int_hint(result):
                    return hint
    return None


@exercise("03.4", "scale with training statistics")
def check_scale_like_training(answer):
    g = torch.Generator().manual_seed(4)
    train = torch.rand(30, 3, generator=g) * torch.tensor([10.0, 100.0, 1000.0])
    other = torch.rand(8, 3, generator=g) * torch.tensor([10.0, 100.0, 1000.0]) + 5.0
    train[[2, 7], [0, 2]] = float("nan")
    result = answer(train, other)
    if hint := shape_hint(result, other.shape):
        return hint + " (the shape of `other`)"
    expected = torch.empty_like(other)
    for s in range(3):
        seen = [v for v in train[:, s].tolist() if not math.isnan(v)]
        mean = sum(seen) / len(seen)
        std = math.sqrt(sum((v - mean) ** 2 for v in seen) / len(seen))
        expected[:, s] = (other[:, s] - mean) / std
    if torch.isnan(result).any():
        return "NaN in the result: the training part has missing values; use nanmean"
    if torch.allclose(result, expected, atol=1e-4):
        return None
    own = (other - other.mean(dim=0)) / other.std(dim=0, correction=0)
    if torch.allclose(result, own, atol=1e-4):
        return "you used the statistics of `other`: the mean and std must come from `train`"
    return ("per station (dim=0): subtract train's NaN-aware mean, divide by sqrt(nanmean of "
            "squared deviations)")


@exercise("03.5", "the persistence forecast for a batch")
def check_persistence_forecast(answer):
    x = numbered(2, 5, 3, 2)  # (batch, time, nodes, features)
    result = answer(x, 4)
    if hint := shape_hint(result, (2, 4, 3)):
        return hint + ": (batch, output_len, nodes)"
    expected = torch.tensor([[[x[b, -1, n, 0].item() for n in range(3)] for _ in range(4)]
                             for b in range(2)])
    if torch.equal(result, expected):
        return None
    if torch.equal(result[:, 0], x[:, 0, :, 0]):
        return "you repeated the FIRST input step; persistence repeats the last one (index -1)"
    return "take x[:, -1, :, 0] (batch, nodes), add a time axis and repeat it output_len times"
