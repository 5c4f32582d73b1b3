"""Gaps in time as data, and the windows rule: no window crosses a gap (a metro's night) by default.

Each check is made against an independent count: every start position of the series is tried and a
window is kept when its timestamps run evenly, step by step, from the first to the last.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.data import (
    GraphTimeSeries,
    TimeSeriesWindows,
    count_windows,
    infer_interval_minutes,
    load_metro,
    make_splits,
    window_starts,
)
from helpers.models import baseline_forecast


def service_days(days: int, first: str = "05:30", last: str = "23:15", interval: int = 15,
                 start: str = "2025-03-03") -> np.ndarray:
    """Timestamps of `days` service days, first..last every `interval` minutes, nights left out."""
    day0 = np.datetime64(start, "m")
    h0, m0 = map(int, first.split(":"))
    h1, m1 = map(int, last.split(":"))
    offsets = np.arange(h0 * 60 + m0, h1 * 60 + m1 + 1, interval)
    return np.concatenate([day0 + np.timedelta64(1440 * d, "m") + offsets.astype("timedelta64[m]")
                           for d in range(days)])


def gapped_series(days: int = 3, nodes: int = 2, interval: int | None = 15) -> GraphTimeSeries:
    stamps = service_days(days)
    values = torch.arange(len(stamps) * nodes, dtype=torch.float32).reshape(-1, nodes, 1)
    return GraphTimeSeries(values, torch.zeros(nodes, nodes), interval, [f"n{k}" for k in range(nodes)],
                           timestamps=stamps)


def windows_within_segments(stamps: np.ndarray, interval: int, length: int, stride: int = 1) -> list[int]:
    """Brute force: the starts s (multiples of stride within a run) whose `length` steps are evenly spaced."""
    minutes = stamps.astype("datetime64[m]").astype(np.int64)
    even = [s for s in range(len(stamps) - length + 1)
            if (np.diff(minutes[s:s + length]) == interval).all()]
    # within each run of even starts, keep every stride-th one counted from the run's first start
    kept, run_first = [], None
    for k, s in enumerate(even):
        if k == 0 or s != even[k - 1] + 1 or (minutes[s] - minutes[s - 1]) != interval:
            run_first = s
        if (s - run_first) % stride == 0:
            kept.append(s)
    return kept


def test_segments_follow_the_gaps_and_the_interval_is_inferred():
    ds = gapped_series(days=3, interval=None)
    assert ds.interval_minutes == 15
    assert ds.segments == [(0, 72), (72, 144), (144, 216)]
    assert "in 3 segments" in repr(ds)
    no_times = GraphTimeSeries(torch.zeros(5, 1), torch.zeros(1, 1), 15, ["a"])
    assert no_times.segments == [(0, 5)]
    assert infer_interval_minutes(np.array(["2025-01-01T00:00", "2025-01-01T00:10", "2025-01-01T05:00"],
                                           dtype="datetime64[m]")) == 10


@pytest.mark.parametrize(
    ("minutes", "message"),
    [
        ([0, 15, 35, 50], r"a step of 20 minutes at step 2 \(2025-03-03T00:15 -> 2025-03-03T00:35\)"),
        ([0, 15, 15, 30], r"a repeated time at step 2 \(2025-03-03T00:15 -> 2025-03-03T00:15\)"),
        ([0, 30, 15, 45], r"a step back at step 2 \(2025-03-03T00:30 -> 2025-03-03T00:15\)"),
    ],
)
def test_irregular_duplicated_or_unsorted_timestamps_name_the_first_bad_step(minutes, message):
    stamps = np.datetime64("2025-03-03T00:00", "m") + np.array(minutes).astype("timedelta64[m]")
    with pytest.raises(ValueError, match=r"expected increasing times 15 minutes apart .*got " + message):
        GraphTimeSeries(torch.zeros(4, 1), torch.zeros(1, 1), 15, ["a"], timestamps=stamps)


def test_interval_none_without_timestamps_is_refused():
    with pytest.raises(ValueError, match="interval_minutes: expected minutes per step .* got None"):
        GraphTimeSeries(torch.zeros(4, 1), torch.zeros(1, 1), None, ["a"])


@pytest.mark.parametrize("stride", [1, 2, 5])
@pytest.mark.parametrize(("input_len", "output_len"), [(12, 3), (4, 1), (70, 2)])
def test_windows_keep_exactly_the_evenly_spaced_ones(input_len, output_len, stride):
    ds = gapped_series(days=3)
    windows = TimeSeriesWindows(ds, input_len, output_len, stride=stride)
    expected = windows_within_segments(ds.timestamps, 15, input_len + output_len, stride)
    assert windows.starts.tolist() == expected
    everything = (ds.num_steps - input_len - output_len) // stride + 1
    assert windows.removed == everything - len(expected)
    for i in range(len(windows)):  # each item is the slice of the series that starts there
        x, y = windows[i]
        s = expected[i]
        assert torch.equal(x, ds.values[s:s + input_len])
        assert torch.equal(y, ds.values[s + input_len:s + input_len + output_len, :, 0])
    crossing = TimeSeriesWindows(ds, input_len, output_len, stride=stride, cross_gaps=True)
    assert len(crossing) == everything and crossing.removed == 0


def test_window_items_are_views_of_the_series():
    ds = gapped_series(days=2)
    windows = TimeSeriesWindows(ds, 12, 3)
    x, y = windows[60]
    storage = ds.values.untyped_storage().data_ptr()
    assert x.untyped_storage().data_ptr() == storage and y.untyped_storage().data_ptr() == storage
    assert windows.inputs.shape == (len(windows), 12, 2, 1) and windows.targets.shape == (len(windows), 3, 2)


def test_a_plain_tensor_is_one_segment_as_before():
    values = torch.arange(40.0).reshape(20, 2)
    windows = TimeSeriesWindows(values, 4, 2, stride=3)
    assert windows.starts.tolist() == [0, 3, 6, 9, 12] and windows.removed == 0
    assert windows.inputs.untyped_storage().data_ptr() == values.untyped_storage().data_ptr()
    assert window_starts([(0, 5), (5, 12)], 3, 1).tolist() == [0, 1, 5, 6, 7, 8]


def test_make_splits_windows_stay_inside_segments_and_count_what_they_drop():
    ds = gapped_series(days=10)
    splits = make_splits(ds, 12, 3)
    crossing = make_splits(ds, 12, 3, cross_gaps=True)
    assert splits.bounds == crossing.bounds
    for name, (start, stop) in zip(("train", "val", "test"), splits.bounds, strict=True):
        part = getattr(splits, name)
        local = windows_within_segments(ds.timestamps[start:stop], 15, 15)
        assert part.starts.tolist() == local
        assert part.removed == len(getattr(crossing, name)) - len(local)
    assert splits.removed == sum(len(getattr(crossing, n)) - len(getattr(splits, n)) for n in ("train", "val", "test"))
    assert splits.removed > 0 and crossing.removed == 0


def test_make_splits_refuses_parts_without_a_whole_window():
    ds = gapped_series(days=20)
    with pytest.raises(ValueError, match="train part: expected at least one window of 80 steps inside a segment"):
        make_splits(ds, 70, 10)
    assert len(make_splits(ds, 70, 10, cross_gaps=True).val) == 144 - 79


def test_baselines_forecast_the_same_windows_as_the_model_sees():
    ds = gapped_series(days=10)
    splits = make_splits(ds, 12, 3)
    for part in ("val", "test"):
        windows = getattr(splits, part)
        pred, target = baseline_forecast("persistence", ds, splits, part)
        start = splits.bounds[("train", "val", "test").index(part)][0]
        unscaled = splits.scaler.inverse_transform(windows.targets, channel=0)
        assert target.shape == unscaled.shape and torch.allclose(target, unscaled.double().float(), atol=1e-3)
        first_input = start + windows.starts
        assert torch.equal(pred[:, 0], ds.values[first_input + 11, :, 0])


def test_shipped_metro_windows_never_cross_the_night():
    ds = load_metro()
    count = count_windows(ds, 12, 3)
    # 56 service days of 72 steps (05:30-23:15): 58 windows a day fit, 14 a night would cross
    assert len(ds.segments) == 56 and count == (4018, 56 * 58, 4018 - 56 * 58)
    splits = make_splits(ds, 12, 3)
    minutes = ds.timestamps.astype(np.int64)
    for (start, _), part in zip(splits.bounds, (splits.train, splits.val, splits.test), strict=True):
        first, last = minutes[start + part.starts], minutes[start + part.starts + 14]
        assert (last - first == 14 * 15).all()  # no window spans the overnight closure
    assert splits.removed == 770
