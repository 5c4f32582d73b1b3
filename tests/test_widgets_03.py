"""helpers.widgets, notebook 03 section: the window explorer (chronological vs shuffled split)."""

import time

import pytest
import torch

from helpers.data import load_metro, window_starts
from helpers.models import nearest_neighbour_forecast
from helpers.widgets import SPLITS, WindowExplorer, leakage_errors, leakage_figure, leakage_readout, leakage_split


@pytest.fixture(scope="module")
def metro():
    return load_metro()


def test_the_chronological_split_tests_on_the_future_and_leaves_a_gap():
    starts = torch.arange(100)
    train, test = leakage_split(starts, span=5, shuffled=False, test_fraction=0.2)
    assert test.tolist() == list(range(80, 100))
    assert int(starts[train].max()) + 5 <= int(starts[test].min())  # no test step was a training step
    assert train.tolist() == list(range(76))


def test_the_shuffled_split_has_as_many_training_windows_drawn_from_everywhere():
    starts = torch.arange(100)
    chrono_train, _ = leakage_split(starts, 5, shuffled=False)
    train, test = leakage_split(starts, 5, shuffled=True, seed=1)
    assert len(train) == len(chrono_train) and sorted(torch.cat([train, test]).tolist()) == list(range(100))
    assert int(test.min()) < 40 and int(train.max()) > 80
    assert torch.equal(train, leakage_split(starts, 5, shuffled=True, seed=1)[0])  # seeded


def test_leakage_errors_agree_with_a_direct_computation(metro):
    series, node = metro.values[:, 9, 0], 9
    result = leakage_errors(series, metro.segments, 6, 2, k=3, station="x", shuffles=2)
    starts = window_starts(metro.segments, 6, 2)
    train, test = leakage_split(starts, 8, shuffled=False)
    flow = metro.values[:, node, 0].nan_to_num(0.0)
    x = torch.stack([flow[s : s + 6] for s in starts[train].tolist()])
    y = torch.stack([flow[s + 6 : s + 8] for s in starts[train].tolist()])
    qx = torch.stack([flow[s : s + 6] for s in starts[test].tolist()])
    qy = torch.stack([flow[s + 6 : s + 8] for s in starts[test].tolist()])
    expected = (nearest_neighbour_forecast(x, y, qx, k=3) - qy).abs().mean(dim=0)
    torch.testing.assert_close(result.mae["chronological"][0], expected)
    assert result.mae["shuffled"].shape == (2, 2) and result.final_mae.shape == (2,)


def test_no_window_crosses_the_night(metro):
    result = leakage_errors(metro.values[:, 0, 0], metro.segments, 12, 3)
    stops = torch.tensor([b for _, b in metro.segments])
    for split in SPLITS:
        for starts in (result.train_starts[split], result.test_starts[split]):
            segment = torch.searchsorted(stops, starts, right=True)  # the segment each window starts in
            assert (starts + 15 <= stops[segment]).all()


def test_leakage_errors_rejects_bad_input(metro):
    with pytest.raises(ValueError, match=r"series: expected a \(time,\) or \(time, nodes\) tensor, got \(4032, 51, 2"):
        leakage_errors(metro.values, metro.segments, 12, 3)
    with pytest.raises(ValueError, match=r"k must be an int >= 1, got 0"):
        leakage_errors(metro.values[:, 0, 0], metro.segments, 12, 3, k=0)
    with pytest.raises(ValueError, match=r"windows: expected at least"):
        leakage_errors(metro.values[:, 0, 0], [(0, 40)], 12, 3)


def test_the_network_shows_the_leak_that_one_station_does_not(metro):
    """Notebook 03's measurement, at the explorer's scale: with every station in a window, each shuffle's
    MAE lies below the chronological one (the forecaster recognises the test windows' neighbours)."""
    result = leakage_errors(metro.values[..., 0], metro.segments, 12, 3, station="network")
    assert (result.overall("shuffled") < result.overall("chronological")).all()
    assert (result.final_mae < result.overall("chronological")).all()


def test_figure_and_readout_follow_the_chosen_split(metro):
    result = leakage_errors(metro.values[:, 9, 0], metro.segments, 12, 3, station="Central")
    for split in SPLITS:
        fig = leakage_figure(result, split)
        ax_days, ax_mae = fig.axes
        assert ax_days.get_title().startswith(f"{split} split")
        assert [t.get_text().split()[0] for t in ax_mae.get_legend().get_texts()] == list(SPLITS)
        assert leakage_readout(result, split).startswith(f"<b>{split} split</b>")
    chrono_days = [p.get_height() for p in leakage_figure(result, "chronological").axes[0].patches]
    assert chrono_days[-1] > 0 and 0 in chrono_days  # test days at the end, a gap before them
    with pytest.raises(ValueError, match="split"):
        leakage_readout(result, "random")


def test_every_control_changes_the_image_or_the_readout_and_redraws_fast(metro):
    explorer = WindowExplorer(metro, station="Central", input_len=4, output_len=2)
    changes = [(explorer.split, "shuffled"), (explorer.station, "Westgate"), (explorer.input_len, 6),
               (explorer.output_len, 3), (explorer.k, 2)]
    seconds = []
    for control, value in changes:
        before = (explorer.plot.value, explorer.readout.value)
        start = time.perf_counter()
        control.value = value
        seconds.append(time.perf_counter() - start)
        assert explorer.plot.value != before[0] and explorer.readout.value != before[1], control.description
    assert "Westgate, 6 steps in, 3 out, k = 2" in explorer.readout.value
    assert min(seconds) < 5.0  # a loose bound: the machine is shared; the notebook reports the measured time
