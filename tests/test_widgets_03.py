"""helpers.widgets, notebook 03 section: the window counts and the window explorer's figure."""

import pytest
import torch
from matplotlib.patches import Rectangle

from helpers.data import load_metro, make_splits, sliding_windows, split_bounds
from helpers.widgets import window_counts, window_figure


@pytest.fixture(scope="module")
def metro():
    return load_metro()


@pytest.mark.parametrize("input_len, output_len, stride", [(12, 3, 1), (24, 12, 6), (3, 1, 24), (48, 24, 24)])
def test_window_counts_match_the_datasets_of_make_splits(metro, input_len, output_len, stride):
    splits = make_splits(metro, input_len, output_len, stride=stride)
    counts = window_counts(metro.num_steps, input_len, output_len, stride)
    assert counts == {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}


def test_window_counts_follow_the_formula_and_sliding_windows():
    # 100 steps, parts of 70, 10, 20: (L - 5) // 2 + 1 windows each
    assert window_counts(100, 4, 1, 2) == {"train": 33, "val": 3, "test": 8}
    for (start, stop), count in zip(split_bounds(100), window_counts(100, 4, 1, 2).values(), strict=True):
        assert len(sliding_windows(torch.zeros(stop - start), 4, 1, 2)[0]) == count


def test_a_part_shorter_than_a_window_holds_none():
    assert window_counts(100, 8, 4) == {"train": 59, "val": 0, "test": 9}
    assert window_counts(10, 2, 1, fractions=(0.5, 0.5)) == {"part 0": 3, "part 1": 3}


@pytest.mark.parametrize("bad", [{"input_len": 0}, {"output_len": 1.5}, {"stride": True}, {"num_steps": -3}])
def test_window_counts_rejects_bad_settings(bad):
    kwargs = {"num_steps": 100, "input_len": 4, "output_len": 1, "stride": 1} | bad
    name, value = next(iter(bad.items()))
    with pytest.raises(ValueError, match=rf"{name} must be an int >= 1, got {value!r}"):
        window_counts(**kwargs)


def test_window_figure_draws_parts_counts_and_the_first_windows(metro):
    series = metro.values[:, 9, 0]
    fig = window_figure(series, 12, 4, stride=2, max_windows=5, ylabel="entries")
    ax_all, ax_zoom, ax_windows = fig.axes
    assert ax_all.get_title() == "input 12, output 4, stride 2: train 1,404, val 195, test 396 windows"
    assert [t.get_text() for t in ax_all.texts] == ["train\n1,404 windows", "val\n195 windows", "test\n396 windows"]
    bars = [p for p in ax_windows.patches if isinstance(p, Rectangle)]
    assert len(bars) == 10  # 5 windows, an input bar and a target bar each
    inputs, targets = bars[0::2], bars[1::2]
    assert [b.get_x() + 0.5 for b in inputs] == [0, 2, 4, 6, 8] and {b.get_width() for b in inputs} == {12}
    assert [b.get_x() + 0.5 for b in targets] == [12, 14, 16, 18, 20] and {b.get_width() for b in targets} == {4}
    assert ax_zoom.get_xlim() == ax_windows.get_xlim() == (-0.5, 71.5)


def test_window_figure_widens_the_zoom_to_show_every_drawn_window(metro):
    fig = window_figure(metro.values[:, 9, 0], 48, 24, stride=24, max_windows=8)
    assert fig.axes[1].get_xlim() == (-0.5, 7 * 24 + 72 - 0.5)
    assert len(fig.axes[2].patches) == 16


def test_window_figure_keeps_missing_readings_as_gaps():
    series = torch.arange(200.0)
    series[50:60] = float("nan")
    line = window_figure(series, 4, 1).axes[0].get_lines()[0]
    assert torch.isnan(torch.as_tensor(line.get_ydata()[50:60])).all()


def test_window_figure_rejects_a_series_that_is_not_1d(metro):
    with pytest.raises(ValueError, match=r"series: expected a 1-d \(time,\) tensor, got \(4032, 51\)"):
        window_figure(metro.values[..., 0], 12, 3)
