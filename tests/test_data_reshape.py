"""helpers.data.select_nodes and add_time_of_day: a sub-network and clock channels."""

import math

import numpy as np
import pytest
import torch

from helpers.data import GraphTimeSeries, add_time_of_day, select_nodes
from helpers.models import historical_average


def tiny() -> GraphTimeSeries:
    times = np.datetime64("2025-03-03T23:30") + np.arange(4) * np.timedelta64(15, "m")
    adj = torch.tensor([[0.0, 0.5, 0.0], [0.5, 0.0, 0.2], [0.0, 0.2, 0.0]])
    values = torch.arange(24, dtype=torch.float32).reshape(4, 3, 2)
    return GraphTimeSeries(values, adj, 15, ["a", "b", "c"], coords=torch.rand(3, 2), timestamps=times,
                           channel_names=["in", "out"], meta={"holidays": ["2025-03-04"], "lines": {"x": [0, 1, 2]}})


def test_select_nodes_by_name_and_index_keeps_values_adjacency_and_order():
    ds = tiny()
    sub = select_nodes(ds, ["c", 1])
    assert sub.node_names == ["c", "b"]
    assert torch.equal(sub.values, ds.values[:, [2, 1]])
    assert torch.equal(sub.adjacency, torch.tensor([[0.0, 0.2], [0.2, 0.0]]))
    assert torch.equal(sub.coords, ds.coords[[2, 1]])
    assert sub.meta == {"name": "network: c, b", "holidays": ["2025-03-04"]}  # node-index entries dropped
    assert (sub.timestamps == ds.timestamps).all() and sub.channel_names == ["in", "out"]
    # the historical average of a selected node is that node's column of the whole network's
    assert torch.equal(historical_average(sub, 4)[:, 0], historical_average(ds, 4)[:, 2])


def test_select_nodes_refuses_unknown_repeated_or_no_nodes():
    ds = tiny()
    with pytest.raises(ValueError, match="unknown name 'z'"):
        select_nodes(ds, ["z"])
    with pytest.raises(ValueError, match=r"indices in \[0, 3\) or names, got 3"):
        select_nodes(ds, [3])
    with pytest.raises(ValueError, match="each node once"):
        select_nodes(ds, [1, "b"])
    with pytest.raises(ValueError, match="at least one node"):
        select_nodes(ds, [])


def test_add_time_of_day_puts_the_clock_on_a_circle():
    ds = add_time_of_day(tiny())
    assert ds.channel_names == ["in", "out", "time_sin", "time_cos"]
    assert ds.values.shape == (4, 3, 4)
    minutes = [23 * 60 + 30, 23 * 60 + 45, 0, 15]  # 23:30, 23:45, 00:00, 00:15
    for t, m in enumerate(minutes):
        expected = torch.tensor([math.sin(2 * math.pi * m / 1440), math.cos(2 * math.pi * m / 1440)])
        assert torch.allclose(ds.values[t, :, 2:], expected.expand(3, 2), atol=1e-6)
    assert torch.equal(ds.values[..., :2], tiny().values)
    with pytest.raises(ValueError, match="expected a dataset with timestamps"):
        add_time_of_day(GraphTimeSeries(torch.ones(3, 2), torch.zeros(2, 2), 15, ["a", "b"]))
