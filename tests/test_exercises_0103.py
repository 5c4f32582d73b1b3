"""The exercise checks of notebooks 00, 01 and 03: the notebooks' own solutions pass, and each planted
mistake (a plausible wrong answer) gets the hint written for it."""

import ast
import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from torch.utils.data import Dataset
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import dense_to_sparse, to_dense_adj

from helpers.exercises import get_exercise

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def solutions(name: str) -> dict[str, object]:
    """The functions and classes a notebook's exercise cells define (those holding a solution)."""
    namespace = {"torch": torch, "np": np, "math": math, "Dataset": Dataset}
    for cell in nbformat.read(NOTEBOOKS / name, as_version=4).cells:
        if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source:
            tree = ast.parse(cell.source)
            tree.body = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
            exec(compile(tree, name, "exec"), namespace)
    return namespace


def hint(exercise_id: str, answer) -> str | None:
    return get_exercise(exercise_id).test(answer)


@pytest.mark.parametrize("notebook, ids", [
    ("00_start_here.ipynb", {"00.1": "hourly_totals"}),
    ("01_tensors.ipynb", {"01.1": "busiest_station", "01.2": "weekday_profile", "01.3": "gcn_normalise",
                          "01.4": "clip_negative_counts", "01.5": "to_conv_layout"}),
    ("03_data.ipynb", {"03.1": "windows_in_segments", "03.2": "NightSafeWindows", "03.3": "split_and_scale",
                       "03.4": "iterations_per_epoch", "03.5": "persistence_forecast"}),
])
def test_the_notebook_solutions_pass(notebook, ids):
    found = solutions(notebook)
    for exercise_id, name in ids.items():
        assert hint(exercise_id, found[name]) is None, exercise_id


def test_the_gcn_check_agrees_with_pytorch_geometric():
    """The reference nobody here wrote: PyG's gcn_norm on the checker's graph equals the solution."""
    gcn_normalise = solutions("01_tensors.ipynb")["gcn_normalise"]
    adjacency = torch.zeros(5, 5)
    for i, j, w in [(0, 1, 1.0), (1, 2, 2.0), (2, 3, 1.0), (2, 4, 0.5)]:
        adjacency[i, j] = adjacency[j, i] = w
    edge_index, weight = gcn_norm(*dense_to_sparse(adjacency), num_nodes=5)
    reference = to_dense_adj(edge_index, edge_attr=weight, max_num_nodes=5)[0]
    difference = (gcn_normalise(adjacency) - reference).abs().max().item()
    print(f"gcn_normalise vs PyG gcn_norm: max difference {difference:.2e}")
    assert difference < 1e-6


def _gcn(adjacency, *, loops=True, degree_of_loops=True, power=-0.5, columns=True):
    looped = adjacency + torch.eye(len(adjacency)) if loops else adjacency
    d = (looped if degree_of_loops else adjacency).sum(dim=1) ** power
    return d[:, None] * looped * (d[None, :] if columns else 1.0)


def _in_place_gcn(adjacency):
    adjacency += torch.eye(len(adjacency))
    d = adjacency.sum(dim=1).rsqrt()
    return d[:, None] * adjacency * d[None, :]


def _draft_clip(counts):
    x = torch.from_numpy(counts).float()
    return x.clamp_(min=0.0)


WRONG_01 = [
    ("01.1", lambda flow: flow.nansum(dim=0).argmax(), "convert the index with int"),
    ("01.1", lambda flow: int(flow.sum(dim=0).argmax()), "station 4 has a missing reading"),
    ("01.2", lambda flow, s: flow.reshape(-1, 7, s, flow.shape[1])[:, :5].mean(dim=(0, 1)), "average with nanmean"),
    ("01.2", lambda flow, s: flow.reshape(-1, s, flow.shape[1]).nanmean(dim=0), "Saturdays and Sundays"),
    ("01.2", lambda flow, s: flow.reshape(-1, s, flow.shape[1])[:5].nanmean(dim=0), "first five days only"),
    ("01.2", lambda flow, s: flow.reshape(-1, s, flow.shape[1])[:5].nanmean(dim=1), "expected shape"),
    ("01.3", lambda a: _gcn(a, loops=False), "without the self-loops"),
    ("01.3", lambda a: _gcn(a, degree_of_loops=False), "take them from A + I"),
    ("01.3", lambda a: _gcn(a, power=-1.0, columns=False), "rows sum to 1"),
    ("01.3", lambda a: _gcn(a, columns=False), "symmetric"),
    ("01.3", _in_place_gcn, "changed its input"),
    ("01.3", lambda a: _gcn(a) * (1 - torch.eye(len(a))), "diagonal is 0"),
    ("01.4", _draft_clip, "float32 array changed"),
    ("01.4", lambda c: torch.tensor(c).clamp(min=0.0), "return float32"),
    ("01.4", lambda c: np.clip(c, 0, None), "return a torch tensor"),
    ("01.4", lambda c: torch.tensor(c, dtype=torch.float32).abs(), "negative counts must become 0"),
    ("01.5", lambda x: x.permute(0, 3, 1, 2), "not contiguous"),
    ("01.5", lambda x: x.reshape(2, 5, 3, 4), "use permute"),
    ("01.5", lambda x: x.permute(0, 3, 2, 1).contiguous(), "expected shape (2, 5, 3, 4)"),
]


class _Crossing(Dataset):
    """Every window of the series, crossing the segments."""

    def __init__(self, values, segments, input_len, output_len):
        self.values, self.i, self.o = values, input_len, output_len

    def __len__(self):
        return len(self.values) - self.i - self.o + 1

    def __getitem__(self, k):
        return self.values[k:k + self.i], self.values[k + self.i:k + self.i + self.o]


class _Copies(_Crossing):
    """The right windows, but each item a copy."""

    def __init__(self, values, segments, input_len, output_len):
        super().__init__(values, segments, input_len, output_len)
        span = input_len + output_len
        self.starts = [s for a, b in segments for s in range(a, b - span + 1)]

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, k):
        s = self.starts[k]
        return self.values[s:s + self.i].clone(), self.values[s + self.i:s + self.i + self.o].clone()


class _Shifted(_Copies):
    """The right number of windows, but each item one step late."""

    def __getitem__(self, k):
        s = self.starts[k] + 1
        return self.values[s:s + self.i], self.values[s + self.i:s + self.i + self.o]


def _leaky_split(series, cut):
    scaled = (series - series.mean(dim=0)) / series.std(dim=0, correction=0)
    return scaled[:cut], scaled[cut:]


def _own_test_stats(series, cut):
    train, test = series[:cut], series[cut:]
    return ((train - train.mean(dim=0)) / train.std(dim=0, correction=0),
            (test - test.mean(dim=0)) / test.std(dim=0, correction=0))


def _sample_std(series, cut):
    train = series[:cut]
    mean, std = train.mean(dim=0), train.std(dim=0)
    return (train - mean) / std, (series[cut:] - mean) / std


def _per_step(series, cut):
    train = series[:cut]
    mean, std = train.mean(dim=1, keepdim=True), train.std(dim=1, correction=0, keepdim=True)
    return (train - mean) / std, series[cut:] - series[cut:].mean(dim=1, keepdim=True)


WRONG_03 = [
    ("03.1", lambda lengths, i, o, s: (sum(lengths) - i - o) // s + 1, "as one piece"),
    ("03.1", lambda lengths, i, o, s: sum((n - i - o) // s + 1 for n in lengths), "not a negative number"),
    ("03.1", lambda lengths, i, o, s: sum(max((n - i - o) // s, 0) for n in lengths), "one short per segment"),
    ("03.1", lambda lengths, i, o, s: float(sum(max((n - i - o) // s + 1, 0) for n in lengths)), "Python int"),
    ("03.2", _Crossing, "drop the windows that run from one segment into the next"),
    ("03.2", _Copies, "is a copy"),
    ("03.2", _Shifted, "should be the window starting at step 0"),
    ("03.3", _leaky_split, "still see the future"),
    ("03.3", _sample_std, "population std"),
    ("03.3", _own_test_stats, "TRAINING statistics"),
    ("03.3", _per_step, "each station over time"),
    ("03.3", lambda series, cut: series[:cut], "return a tuple"),
    ("03.4", lambda n, b, drop: n // b, "think ceil vs floor"),
    ("03.4", lambda n, b, drop: n / b if not drop else n // b, "Python int"),
    ("03.5", lambda x, k: x[:, :1, :, 0].expand(-1, k, -1), "FIRST input step"),
    ("03.5", lambda x, k: x[:, -1:, :, 1].expand(-1, k, -1), "feature 1"),
    ("03.5", lambda x, k: x[:, -1:, :, 0], "expected shape (2, 4, 3)"),
]


@pytest.mark.parametrize("exercise_id, answer, expected", WRONG_01 + WRONG_03,
                         ids=[f"{e}-{t[:28]}" for e, _, t in WRONG_01 + WRONG_03])
def test_a_planted_mistake_gets_its_hint(exercise_id, answer, expected):
    got = hint(exercise_id, answer)
    assert got is not None and expected in got, got


def test_hourly_totals_hints():
    assert "reshape(-1, 4)" in hint("00.1", lambda c: c.reshape(4, -1).sum(dim=1))
    assert "add up each group of 4" in hint("00.1", lambda c: c.reshape(3, 4).mean(dim=1))
