"""Your own metro network as CSV: the long layout (several channels), gaps in time, holidays, and the
one-line errors of bad folders (nothing is written by a failed load)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.data import (
    GraphTimeSeries,
    add_day_type,
    channel_first,
    load_csv_folder,
    load_metro,
    read_holidays,
    save_csv_folder,
    select_nodes,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


LONG = """timestamp,node,inflow,outflow
2025-03-07T23:00,B,5,6
2025-03-07T23:00,A,1,2
2025-03-07T23:15,A,3,
2025-03-07T23:15,B,7,8
2025-03-08T05:30,A,9,10
2025-03-08T05:30,B,11,12
"""


def test_long_layout_loads_channels_gaps_and_holidays(tmp_path):
    write(tmp_path / "series.csv", LONG)
    write(tmp_path / "adjacency.csv", "B,A\n0,1\n1,0\n")  # header order differs from the series
    write(tmp_path / "holidays.csv", "date\n2025-03-07\n")
    ds = load_csv_folder(tmp_path)
    assert ds.node_names == ["B", "A"] and ds.channel_names == ["inflow", "outflow"]
    assert ds.interval_minutes == 15 and ds.segments == [(0, 2), (2, 3)]
    expected = torch.tensor([[[5, 6], [1, 2]], [[7, 8], [3, float("nan")]], [[11, 12], [9, 10]]])
    assert torch.equal(ds.values.nan_to_num(-1), expected.nan_to_num(-1))
    assert ds.meta["holidays"] == ["2025-03-07"]
    # Friday the 7th is a holiday, Saturday the 8th a weekend day: both off
    assert add_day_type(ds).values[:, 0, -1].tolist() == [1.0, 1.0, 1.0]
    assert load_csv_folder(tmp_path, holidays=write(tmp_path / "none.txt", "date\n")).meta["holidays"] == []


def test_a_missing_row_is_a_missing_reading_and_the_adjacency_is_reordered(tmp_path):
    write(tmp_path / "series.csv", "timestamp,node,flow\n2025-03-03T08:00,A,1\n2025-03-03T08:00,B,2\n"
                                   "2025-03-03T08:15,A,3\n")
    write(tmp_path / "adjacency.csv", "B,A\n0,0.5\n0.25,0\n")
    ds = load_csv_folder(tmp_path)
    assert torch.isnan(ds.values[1, 1, 0]) and ds.values[1, 0, 0] == 3
    assert ds.adjacency.tolist() == [[0.0, 0.25], [0.5, 0.0]]  # row A of the file is its second row


def test_shipped_metro_round_trips_through_the_long_layout(tmp_path):
    ds = select_nodes(load_metro(), [0, 1, 2, 3])
    ds.meta["holidays"] = ["2025-03-28"]
    save_csv_folder(ds, tmp_path, channel=None)
    back = load_csv_folder(tmp_path)
    assert back.channel_names == ["inflow", "outflow"] and back.node_names == ds.node_names
    assert torch.equal(back.values.nan_to_num(-1), ds.values.nan_to_num(-1))
    assert torch.equal(back.adjacency, ds.adjacency) and np.array_equal(back.timestamps, ds.timestamps)
    assert back.segments == ds.segments and back.meta["holidays"] == ["2025-03-28"]


def test_channel_first_puts_the_target_in_front():
    ds = select_nodes(load_metro(), [0, 1])
    out = channel_first(ds, "outflow")
    assert out.channel_names == ["outflow", "inflow"] and torch.equal(out.values[..., 0], ds.values[..., 1])
    assert channel_first(ds, None) is ds
    with pytest.raises(ValueError, match=r"target: expected one of the channels \['inflow', 'outflow'\], got 'exits'"):
        channel_first(ds, "exits")


@pytest.mark.parametrize(
    ("series", "adjacency", "message"),
    [
        ("timestamp,node,in\n2025-03-03T08:15,A,1\n2025-03-03T08:00,A,2\n", "A\n0\n",
         r"^series.csv: expected rows in time order, got 2025-03-03T08:00 in row 3 after 2025-03-03T08:15$"),
        ("timestamp,node,in\n2025-03-03T08:00,A,1\n2025-03-03T08:00,A,2\n", "A\n0\n",
         r"^series.csv: expected one row per timestamp and node, got a second row for 2025-03-03T08:00 "
         r"and 'A' in row 3$"),
        ("timestamp,node,in,out\n2025-03-03T08:00,A,1,\n2025-03-03T08:00,B,2,3\n2025-03-03T08:15,A,1,\n",
         "A,B\n0,1\n1,0\n",
         r"^series.csv: expected readings of channel 'out' at every node, got none at 1 node\(s\): \['A'\]$"),
        ("timestamp,node,in\n2025-03-03T08:00,A,1\n2025-03-03T08:10,A,2\n2025-03-03T08:25,A,2\n", "A\n0\n",
         r"^series.csv: timestamps: expected increasing times 10 minutes apart .*got a step of 15 minutes at step 2"),
        ("timestamp,node,in\n2025-03-03T08:00,A,1\n2025-03-03T08:15,A,2\n", "A,C\n0,1\n1,0\n",
         r"^adjacency.csv: expected nodes of series.csv, got \['C'\] that series.csv does not have$"),
        ("timestamp,node,in\n2025-03-03T08:00,A,1\n2025-03-03T08:00,B,2\n", "B\n0\n",
         r"^adjacency.csv: expected each node of series.csv once in the header, got 1 names, missing \['A'\]$"),
        ("timestamp,node,in\n2025-03-03T08:00,A,1\n2025-03-03T08:15,A,2\n", "0\n",
         r"^adjacency.csv: expected a first row of node names \(a long series.csv has no column order\), got numbers$"),
        ("timestamp,node,in,in\n2025-03-03T08:00,A,1,1\n", "A\n0\n",
         r"^series.csv: expected unique channel names after timestamp,node, got \['in', 'in'\]$"),
    ],
)
def test_bad_folders_get_one_line_errors(tmp_path, series, adjacency, message):
    write(tmp_path / "series.csv", series)
    write(tmp_path / "adjacency.csv", adjacency)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match=message) as info:
        load_csv_folder(tmp_path)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_holiday_files_name_a_bad_line(tmp_path):
    assert read_holidays(write(tmp_path / "h.csv", "2025-12-25\n2025-01-01\n")) == ["2025-01-01", "2025-12-25"]
    with pytest.raises(ValueError, match=r"^h.csv: expected an ISO date \(e.g. 2025-03-28\) in row 2, got 'Xmas'$"):
        read_holidays(write(tmp_path / "h.csv", "2025-12-24\nXmas\n"))
    with pytest.raises(FileNotFoundError, match="holidays: expected a file of ISO dates"):
        read_holidays(tmp_path / "nowhere.csv")


def test_wide_layout_with_named_adjacency_and_gaps(tmp_path):
    write(tmp_path / "series.csv", "timestamp,a,b\n2025-03-03T23:00,1,2\n2025-03-03T23:15,3,4\n"
                                   "2025-03-04T05:30,5,6\n")
    write(tmp_path / "adjacency.csv", "b,a\n0,2\n1,0\n")
    ds = load_csv_folder(tmp_path)
    assert ds.segments == [(0, 2), (2, 3)] and ds.adjacency.tolist() == [[0.0, 1.0], [2.0, 0.0]]
    assert isinstance(ds, GraphTimeSeries) and ds.channel_names == ["value"]
