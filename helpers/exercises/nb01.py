"""Exercises of notebook 01 (tensors). Each checker calls the learner's function on small inputs
shaped like the metro data and compares with an answer computed here by other means (loops, matrix
products with `torch.diag`, NumPy), and names the plausible mistake it recognises."""

import numpy as np
import torch

from helpers.exercises import exercise
from helpers.exercises.hints import int_hint, numbered, shape_hint


def _counts(*shape: int, seed: int) -> torch.Tensor:
    """Distinct positive float counts (no ties), reproducible."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(torch.Size(shape).numel(), generator=g).reshape(shape).float() + 1.0


@exercise("01.1", "the busiest station")
def check_busiest_station(answer):
    flow = _counts(24, 6, seed=1)
    flow[:, 3] += 50.0  # station 3 is the busiest
    flow[5, 4] = float("nan")  # a missing reading at another station: a plain sum there is NaN
    result = answer(flow)
    if isinstance(result, torch.Tensor) and result.numel() == 1:
        return "return a Python int: convert the index with int(...)"
    if hint := int_hint(result, " (the station index)"):
        return hint
    totals = torch.tensor([sum(v for v in column if v == v) for column in flow.T.tolist()])
    if result == 4:
        return "station 4 has a missing reading (NaN): sum it with nansum, which skips NaN"
    if result != int(totals.argmax()):
        return f"got station {result}; sum each station over time (dim=0), then take the argmax"
    return None


def _weekday_case() -> tuple[torch.Tensor, int]:
    """Two weeks of 3 steps a day at 2 stations; weekends 1000x busier; one missing reading."""
    steps, g = 3, torch.Generator().manual_seed(2)
    flow = torch.rand(2, 7, steps, 2, generator=g) * 10.0  # (weeks, days, steps, stations)
    flow[:, 5:] *= 1000.0  # Saturdays and Sundays: averaging them in is visible
    flow[1, 2, 0, 1] = float("nan")  # week 2, Wednesday, first step, station 1
    return flow.reshape(14 * steps, 2), steps


@exercise("01.2", "the average weekday")
def check_weekday_profile(answer):
    flow, steps = _weekday_case()
    result = answer(flow.clone(), steps)
    if hint := shape_hint(result, (steps, 2)):
        return hint + " (one value per step of the day and station)"
    days = [flow[d * steps:(d + 1) * steps] for d in range(14)]  # each (steps, stations)
    weekdays = torch.stack([days[d] for d in range(14) if d % 7 < 5])  # (10, steps, stations)
    expected = torch.tensor(np.nanmean(weekdays.numpy(), axis=0))
    if torch.allclose(result, expected, atol=1e-4):
        return None
    if result.isnan().any():
        return "NaN in the result: one reading is missing; average with nanmean"
    if (result > 1000.0).any():
        return ("your profile includes Saturdays and Sundays: keep days 0-4 of every week, e.g. "
                "view as (weeks, 7, steps_per_day, stations) and index [:, :5]")
    first_five = torch.tensor(np.nanmean(torch.stack(days[:5]).numpy(), axis=0))
    if torch.allclose(result, first_five, atol=1e-4):
        return "you averaged the first five days only: every week has its own Monday to Friday"
    return "average over the weekdays of every week, for each step of the day and each station"


def _path_graph() -> torch.Tensor:
    """A weighted graph of 5 stations: a line 0-1-2-3 and a branch 2-4; station 4 has degree 0.5."""
    adjacency = torch.zeros(5, 5)
    for i, j, w in [(0, 1, 1.0), (1, 2, 2.0), (2, 3, 1.0), (2, 4, 0.5)]:
        adjacency[i, j] = adjacency[j, i] = w
    return adjacency


@exercise("01.3", "the normalised adjacency with self-loops")
def check_gcn_normalise(answer):
    adjacency = _path_graph()
    result = answer(adjacency)
    if not torch.equal(adjacency, _path_graph()):
        return "your function changed its input: add the identity out of place (A + I, not A += I)"
    if hint := shape_hint(result, (5, 5)):
        return hint
    looped = adjacency + torch.eye(5)
    expected = torch.diag(looped.sum(dim=1) ** -0.5) @ looped @ torch.diag(looped.sum(dim=1) ** -0.5)
    if torch.allclose(result, expected, atol=1e-6):
        return None
    no_loops = torch.diag(adjacency.sum(dim=1) ** -0.5) @ adjacency @ torch.diag(
        adjacency.sum(dim=1) ** -0.5)
    if torch.allclose(result, no_loops, atol=1e-6):
        return "that is D^-1/2 A D^-1/2 without the self-loops: add the identity first"
    if torch.allclose(result.diagonal(), torch.zeros(5)):
        return "the diagonal is 0: the self-loops (A + I) are missing"
    d_of_a = adjacency.sum(dim=1) ** -0.5
    if torch.allclose(result, d_of_a[:, None] * looped * d_of_a[None, :], atol=1e-6):
        return "the degrees must count the self-loops: take them from A + I, not from A"
    if torch.allclose(result, looped / looped.sum(dim=1, keepdim=True), atol=1e-6):
        return "that is D^-1 (A + I) (rows sum to 1); scale rows and columns by D^-1/2 each"
    if not torch.allclose(result, result.T, atol=1e-6):
        return "the result should be symmetric: scale the rows AND the columns by 1 / sqrt(degree)"
    return "compute d = 1 / sqrt((A + I).sum(dim=1)), then d[:, None] * (A + I) * d[None, :]"


@exercise("01.4", "clip negative counts without touching the caller's array")
def check_clip_negative_counts(answer):
    for dtype in (np.float32, np.float64):
        counts = np.array([[3.0, -1.0], [-2.0, 5.0]], dtype=dtype)
        original = counts.copy()
        result = answer(counts)
        if not np.array_equal(counts, original):
            return (f"the caller's {np.dtype(dtype).name} array changed: for float32 data "
                    "torch.from_numpy(a).float() is the same memory as a (.float() returns its "
                    "input when it is float32 already), so an in-place clamp_ writes into a. Copy "
                    "first: torch.tensor(a, dtype=torch.float32)")
        if not isinstance(result, torch.Tensor):
            return f"return a torch tensor, not {type(result).__name__}"
        if result.dtype != torch.float32:
            return f"return float32 (what models use), got {result.dtype} for a {counts.dtype} array"
        if not torch.equal(result, torch.tensor([[3.0, 0.0], [0.0, 5.0]])):
            return f"negative counts must become 0 and the others stay: got {result.tolist()}"
    return None


@exercise("01.5", "from the data layout to the convolution layout")
def check_to_conv_layout(answer):
    x = numbered(2, 3, 4, 5)  # (batch, time, nodes, features)
    result = answer(x)
    if hint := shape_hint(result, (2, 5, 3, 4)):
        return hint + ": (batch, features, time, nodes)"
    if not all(result[b, f, t, n] == x[b, t, n, f]
               for b in range(2) for f in range(5) for t in range(3) for n in range(4)):
        return "the shape is right but the numbers moved: a reshape/view mixes them up; use permute"
    if not result.is_contiguous():
        return "right numbers, but not contiguous in memory: add .contiguous()"
    return None
