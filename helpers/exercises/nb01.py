"""Exercises of notebook 01 (tensors). Each checker calls the learner's function on small inputs
shaped like the metro data and compares with an answer computed here by other means."""

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


@exercise("01.2", "the peak quarter-hour of each station")
def check_peak_steps(answer):
    flow = _counts(30, 5, seed=2)
    result = answer(flow)
    if hint := shape_hint(result, (5,)):
        return hint + " (one index per station: reduce over time, dim=0)"
    if result.dtype != torch.int64:
        return f"return the positions (int64 indices), not the values: got dtype {result.dtype}"
    expected = [max(range(30), key=lambda t, s=s: flow[t, s].item()) for s in range(5)]
    if result.tolist() != expected:
        return (f"expected the time index of each station's maximum, {expected}; "
                f"got {result.tolist()}")
    return None


@exercise("01.3", "the average day")
def check_average_day(answer):
    days, steps, stations = 3, 4, 2
    flow = _counts(days * steps, stations, seed=3)
    result = answer(flow, steps)
    if hint := shape_hint(result, (steps, stations)):
        return hint + f" for {days} days of {steps} steps at {stations} stations"
    expected = torch.tensor([[sum(flow[d * steps + k, s].item() for d in range(days)) / days
                              for s in range(stations)] for k in range(steps)])
    if not torch.allclose(result.float(), expected):
        return ("the shape is right but not the values: view as (days, steps_per_day, stations), "
                "then mean over days")
    return None


@exercise("01.4", "z-score per station")
def check_zscore_per_station(answer):
    flow = _counts(10, 3, seed=4) * torch.tensor([1.0, 10.0, 100.0])
    result = answer(flow)
    if hint := shape_hint(result, (10, 3)):
        return hint + "; broadcasting keeps the input's shape"
    n = flow.shape[0]
    mean = flow.sum(dim=0) / n
    std = (((flow - mean) ** 2).sum(dim=0) / (n - 1)).sqrt()
    expected = (flow - mean) / std
    if torch.allclose(result, expected, atol=1e-5):
        return None
    if torch.allclose(result, expected * (n / (n - 1)) ** 0.5, atol=1e-5):
        return "use the default std (correction=1, divide by n - 1), as the exercise asks"
    if torch.allclose(result.mean(dim=1), torch.zeros(10), atol=1e-4):
        return ("you normalised each time step across stations; take mean and std over time "
                "(dim=0) instead")
    return "subtract each station's mean over time and divide by its std: mean(dim=0, keepdim=True)"


@exercise("01.5", "neighbours' flow for a whole batch")
def check_neighbour_sum(answer):
    g = torch.Generator().manual_seed(5)
    adjacency = torch.rand(4, 4, generator=g) * (torch.rand(4, 4, generator=g) > 0.4)
    x = torch.randn(2, 3, 4, 2, generator=g)
    result = answer(adjacency, x)
    if hint := shape_hint(result, (2, 3, 4, 2)):
        return hint + " (the same shape as x)"
    expected = torch.einsum("ij,btjf->btif", adjacency, x)
    if torch.allclose(result, expected, atol=1e-5):
        return None
    if torch.allclose(result, torch.einsum("ji,btjf->btif", adjacency, x), atol=1e-5):
        return "you used the transposed adjacency: entry i sums adjacency[i, j] * x[..., j, :]"
    return ("matmul treats leading axes as batch axes: adjacency @ x multiplies the "
            "(nodes, features) matrices")


@exercise("01.6", "from the data layout to the convolution layout")
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
