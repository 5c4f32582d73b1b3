import matplotlib

matplotlib.use("Agg")

import dataclasses  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers.data import GraphTimeSeries  # noqa: E402
from helpers.plots import plot_network  # noqa: E402


@pytest.fixture
def ring():
    adj = torch.roll(torch.eye(4), 1, dims=1) + torch.roll(torch.eye(4), -1, dims=1)
    coords = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    return GraphTimeSeries(torch.zeros(5, 4, 1), adj, 15, list("abcd"), coords=coords)


def test_plot_network_draws_every_edge_and_colours_nodes(ring):
    ax = plot_network(ring, values=[1.0, 2.0, np.nan, 4.0], label="flow", highlight=[0])
    assert len(ax.lines) == 8  # 4 undirected edges stored in both directions
    coloured, hollow, rings = ax.collections
    assert len(coloured.get_offsets()) == 3 and len(hollow.get_offsets()) == 1 and len(rings.get_offsets()) == 1
    np.testing.assert_allclose(coloured.get_array(), [1.0, 2.0, 4.0])
    plt.close("all")


def test_plot_network_draws_metro_lines(ring):
    metro = dataclasses.replace(ring, meta={"lines": {"A": [0, 1, 2]}, "line_colors": {"A": "red"}})
    ax = plot_network(metro)
    assert [line.get_label() for line in ax.lines] == ["A"]
    plt.close("all")


def test_plot_network_rejects_bad_input(ring):
    with pytest.raises(ValueError, match=r"expected one number per node, shape \(4,\), got \(3,\)"):
        plot_network(ring, values=[1, 2, 3])
    with pytest.raises(ValueError, match="needs node coordinates"):
        plot_network(dataclasses.replace(ring, coords=None))
    plt.close("all")
