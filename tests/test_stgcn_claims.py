"""Claims notebook 08 makes about the STGCN, checked: the workbook column of its comparison table, the
Ks = 1 ablation, and the committed per-horizon results it quotes."""

import json
from pathlib import Path

import pytest
import torch

from helpers.models import STGCN, STGCNConfig, TemporalGatedConv

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "stgcn_horizons.json"


def small(ks=3, **kw):
    config = STGCNConfig(num_nodes=5, input_len=8, horizon=3, in_channels=2, blocks=((4, 2, 4),), Kt=2, Ks=ks, **kw)
    return config


def ring(n=5):
    adj = torch.zeros(n, n)
    idx = torch.arange(n)
    adj[idx, (idx + 1) % n] = 1.0
    return adj + adj.T


def test_ks_1_switches_the_graph_off():
    """Ks = 1 keeps only T0 = I: the forecast is the same for any graph (the ablation of 08.6)."""
    torch.manual_seed(0)
    model = STGCN(small(ks=1), ring())
    x = torch.randn(4, 8, 5, 2)
    other = torch.rand(5, 5)
    other = other + other.T
    assert torch.allclose(model(x), model(x, STGCN(small(ks=1), other).operator), atol=1e-6)
    torch.manual_seed(0)
    with_graph = STGCN(small(ks=3), ring())
    assert not torch.allclose(with_graph(x), with_graph(x, STGCN(small(ks=3), other).operator), atol=1e-4)


def test_workbook_column_of_the_table():
    """Layout (batch, time, nodes, channels); both temporal convolutions of a block gated ('glu'); the
    head predicts every horizon step at once, in one forward pass."""
    torch.manual_seed(0)
    model = STGCN(small(), ring())
    block = model.blocks[0]
    assert isinstance(block.temporal_in, TemporalGatedConv) and block.temporal_in.gate == "glu"
    assert isinstance(block.temporal_out, TemporalGatedConv) and block.temporal_out.gate == "glu"
    assert isinstance(block.norm, torch.nn.LayerNorm) and block.norm.normalized_shape == (5, 4)
    assert model(torch.randn(2, 8, 5, 2)).shape == (2, 3, 5)


def test_committed_horizon_results_have_seeds_metrics_and_conditions():
    result = json.loads(RESULTS.read_text())
    for key in ("machine", "threads", "load_before", "load_after", "date", "command", "windows"):
        assert key in result, key
    assert "torch" in result["machine"]
    for name, entry in result["models"].items():
        runs = entry["runs"]
        assert len(runs) == (1 if entry["seeds"] is None else len(entry["seeds"])), name
        if entry["seeds"] is not None:
            assert len(entry["seeds"]) >= 3, name
        for run in runs:
            for metric in ("mae", "rmse", "mape"):
                assert len(run[metric]) == result["settings"]["horizon"], (name, metric)
        summary = entry["summary"]["mae"]
        for step, s in enumerate(summary):
            values = [r["mae"][step] for r in runs]
            assert s["min"] == min(values) and s["max"] == max(values)
            assert s["mean"] == pytest.approx(sum(values) / len(values), abs=1e-4)
