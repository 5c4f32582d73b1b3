import matplotlib

matplotlib.use("Agg")

import dataclasses  # noqa: E402
import io  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers.data import GraphTimeSeries  # noqa: E402
from helpers.plots import cost_bars, figure_png, plot_network  # noqa: E402


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


def test_cost_bars_are_relative_to_the_baseline_and_coloured_by_direction():
    costs = {"base": {"seconds": 2.0, "peak_bytes": 100.0}, "cheaper": {"seconds": 1.0, "peak_bytes": 99.0},
             "dearer": {"seconds": 3.0, "peak_bytes": 150.0}}
    time_ax, memory_ax = cost_bars(costs, "base", title="t").axes
    assert [t.get_text() for t in time_ax.get_yticklabels()] == ["base", "cheaper", "dearer"]
    assert [p.get_width() for p in time_ax.patches] == [1.0, 0.5, 1.5]
    assert [to_hex(p.get_facecolor()) for p in memory_ax.patches] == [  # 0.99 is within 2%: light grey
        to_hex("0.6"), to_hex("0.8"), to_hex("tab:red")]
    assert [to_hex(p.get_facecolor()) for p in time_ax.patches][1] == to_hex("tab:green")
    with pytest.raises(ValueError, match="baseline must be one of the labels"):
        cost_bars(costs, "plain")


def test_figure_png_quantizes_to_a_palette_unless_asked_not_to():
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1, 0])
    assert PIL.Image.open(io.BytesIO(figure_png(fig, colors=8))).mode == "P"
    assert PIL.Image.open(io.BytesIO(figure_png(fig, colors=None))).mode == "RGBA"
    with pytest.raises(ValueError, match=r"colors must be an int in \[2, 256\] or None, got 300"):
        figure_png(fig, colors=300)
