"""Exercises of notebook 03 (data). Each checker calls the learner's function on small inputs and
compares with an answer computed here by other means (the DataLoader itself, an enumeration of
window starts, explicit loops), and names the plausible mistake it recognises."""

import math

import torch
from torch.utils.data import DataLoader

from helpers.exercises import exercise
from helpers.exercises.hints import int_hint, numbered, shape_hint

#: (segment lengths, input_len, output_len, stride): days of 72 steps, a short day, a day shorter
#: than a window, a stride that does not divide the day.
_SEGMENT_CASES = [([72, 72, 72], 12, 3, 1), ([72, 40, 10], 12, 3, 1), ([72, 72], 12, 3, 5),
                  ([30], 4, 2, 7), ([14, 15, 16], 12, 3, 1)]


def _starts(lengths: list[int], span: int, stride: int) -> list[int]:
    """Every window start inside a segment, by enumeration: the segments lie end to end."""
    starts, offset = [], 0
    for length in lengths:
        starts += [offset + s for s in range(0, length, stride) if s + span <= length]
        offset += length
    return starts


@exercise("03.1", "windows that stay inside a day")
def check_windows_in_segments(answer):
    for lengths, input_len, output_len, stride in _SEGMENT_CASES:
        span = input_len + output_len
        expected = len(_starts(lengths, span, stride))
        result = answer(list(lengths), input_len, output_len, stride)
        if hint := int_hint(result):
            return hint
        if result == expected:
            continue
        case = f"segments {lengths}, input_len={input_len}, output_len={output_len}, stride={stride}"
        if result == max((sum(lengths) - span) // stride + 1, 0):
            return (f"for {case} you counted the windows of the series as one piece ({result}); "
                    f"windows may not cross from one segment into the next: {expected}")
        if result == sum((n - span) // stride + 1 for n in lengths):
            return (f"for {case} you got {result}: a segment shorter than a window holds 0 "
                    f"windows, not a negative number (expected {expected})")
        if result == sum(max((n - span) // stride, 0) for n in lengths):
            return (f"for {case} you got {result}, one short per segment: a segment of L steps "
                    f"holds (L - span) // stride + 1 windows")
        return f"for {case} expected {expected}, got {result}"
    return None


def _night_case() -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """A (time, nodes) series of 3 'days' (8, 5 and 9 steps) whose entries say where they came from."""
    return numbered(22, 2), [(0, 8), (8, 13), (13, 22)]


@exercise("03.2", "a dataset whose windows never cross the night")
def check_night_safe_windows(answer):
    values, segments = _night_case()
    dataset = answer(values, segments, 3, 2)
    starts = _starts([b - a for a, b in segments], 5, 1)  # [0..3, 8, 13..17]
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        return "the dataset needs __len__ and __getitem__"
    if len(dataset) == len(values) - 5 + 1:
        return (f"len(dataset) is {len(dataset)}, every window of the series: drop the windows "
                f"that run from one segment into the next ({len(starts)} remain)")
    if len(dataset) != len(starts):
        return f"expected {len(starts)} windows (starts {starts}), got len(dataset) = {len(dataset)}"
    for i, start in enumerate(starts):
        x, y = dataset[i]
        if hint := shape_hint(x, (3, 2), f"item {i}'s input") or shape_hint(y, (2, 2),
                                                                            f"item {i}'s target"):
            return hint
        if not (torch.equal(x, values[start:start + 3]) and
                torch.equal(y, values[start + 3:start + 5])):
            return (f"item {i} should be the window starting at step {start}: input steps "
                    f"{start}..{start + 2}, target steps {start + 3}..{start + 4}; windows in "
                    "order, day by day")
        if x.untyped_storage().data_ptr() != values.untyped_storage().data_ptr():
            return f"item {i} is a copy: slice the series (a view) instead of building a tensor"
    return None


def _split_case() -> tuple[torch.Tensor, int]:
    """12 steps at 3 stations of very different sizes; the last 4 steps are the test part."""
    g = torch.Generator().manual_seed(3)
    return torch.rand(12, 3, generator=g) * torch.tensor([10.0, 100.0, 1000.0]) + 5.0, 8


def _expected_split(series: torch.Tensor, cut: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-station z-score with the mean and population std of steps [0, cut), by loops."""
    scaled = torch.empty_like(series)
    for s in range(series.shape[1]):
        train = series[:cut, s].tolist()
        mean = sum(train) / len(train)
        std = math.sqrt(sum((v - mean) ** 2 for v in train) / len(train))
        scaled[:, s] = (series[:, s] - mean) / std
    return scaled[:cut], scaled[cut:]


@exercise("03.3", "a normalisation that leaked the future")
def check_split_and_scale(answer):
    series, cut = _split_case()
    result = answer(series.clone(), cut)
    if not (isinstance(result, tuple) and len(result) == 2):
        return "return a tuple (train, test)"
    train, test = result
    for name, got, rows in (("train", train, cut), ("test", test, len(series) - cut)):
        if hint := shape_hint(got, (rows, 3), name):
            return hint
    surged = series.clone()
    surged[cut:] *= 3.0  # only the future changes
    train_again, _ = answer(surged, cut)
    if not torch.allclose(train_again, train, atol=1e-5):
        return ("your training part changes when only the test part changes: the mean and std "
                "still see the future; compute them on series[:cut] alone")
    want_train, want_test = _expected_split(series, cut)
    if torch.allclose(train, want_train, atol=1e-4) and torch.allclose(test, want_test, atol=1e-4):
        return None
    n = cut
    if torch.allclose(train, want_train * math.sqrt((n - 1) / n), atol=1e-4):
        return "use the population std (correction=0, divide by n), as StandardScaler does"
    if torch.allclose(train.mean(dim=1), torch.zeros(cut), atol=1e-4):
        return "you scaled each time step across stations; scale each station over time (dim=0)"
    if torch.allclose(test, (series[cut:] - series[cut:].mean(dim=0)) /
                      series[cut:].std(dim=0, correction=0), atol=1e-4):
        return "the test part must be scaled with the TRAINING statistics, not its own"
    return "per station: (x - train mean) / train std for both parts, statistics of series[:cut]"


@exercise("03.4", "iterations per epoch")
def check_iterations_per_epoch(answer):
    for num_samples in (1, 63, 64, 65, 2262):
        for batch_size in (1, 32, 64, 100):
            for drop_last in (False, True):
                loader = DataLoader(range(num_samples), batch_size=batch_size, drop_last=drop_last)
                result = answer(num_samples, batch_size, drop_last)
                if hint := int_hint(result):
                    return hint
                if result != len(loader):
                    case = f"{num_samples} samples, batch_size={batch_size}, drop_last={drop_last}"
                    return (f"{case}: the loader yields {len(loader)} batches, you said {result}; "
                            "think ceil vs floor")
    return None


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
    if torch.equal(result[:, 0], x[:, -1, :, 1]):
        return "that is feature 1 (the outflow); the inflow is feature 0"
    return "take x[:, -1, :, 0] (batch, nodes), add a time axis and repeat it output_len times"
