"""Tests of helpers.data: the container, CSV files, Los-loop, windows, loaders, splits, scaling, calendar."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import helpers.data as data
from helpers.data import (
    GraphTimeSeries,
    StandardScaler,
    TimeSeriesWindows,
    day_type,
    load_csv_folder,
    load_los_loop,
    make_splits,
    read_csv_numbers,
    save_csv_folder,
    shuffled_loader,
    sliding_windows,
    split_bounds,
    time_of_day_index,
)
from helpers.models import historical_average

SHARED_LOS_LOOP = Path(__file__).resolve().parents[2] / "shared/data/los-loop"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never touch the network: only file:// URLs may be opened."""
    real_urlopen = urllib.request.urlopen

    def guarded(url, *args, **kwargs):
        if not str(url).startswith("file:"):
            raise AssertionError(f"a test tried to open {url}")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


@pytest.fixture(scope="module")
def los_root() -> Path:
    if not all((SHARED_LOS_LOOP / name).is_file() for name in data.LOS_LOOP_SHA256):
        pytest.fail(f"the shared Los-loop copy is missing: expected los_speed.csv and los_adj.csv in {SHARED_LOS_LOOP}")
    return SHARED_LOS_LOOP


def tiny_series(steps: int = 10, nodes: int = 3, channels: int = 2, **changes) -> GraphTimeSeries:
    values = torch.arange(steps * nodes * channels, dtype=torch.float32).reshape(steps, nodes, channels)
    adjacency = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.5], [0.0, 0.5, 0.0]])[:nodes, :nodes]
    fields = dict(values=values, adjacency=adjacency, interval_minutes=5, node_names=[f"n{i}" for i in range(nodes)])
    fields.update(changes)
    return GraphTimeSeries(**fields)


# ----------------------------------------------------------------------------------------------- container


def test_container_accepts_numpy_and_two_dim_values():
    ds = GraphTimeSeries(np.ones((7, 3)), np.zeros((3, 3)), 15, ["a", "b", "c"])
    assert (ds.num_steps, ds.num_nodes, ds.num_channels) == (7, 3, 1)
    assert ds.values.dtype == torch.float32 and ds.adjacency.dtype == torch.float32
    assert ds.channel_names == ["value"]
    assert "steps=7" in repr(ds) and "nodes=3" in repr(ds)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.interval_minutes = 5


def test_container_keeps_nan_as_missing_and_checks_timestamps():
    values = torch.ones(4, 3, 1)
    values[1, 2, 0] = float("nan")
    times = np.datetime64("2024-01-01T00:00") + np.arange(4) * np.timedelta64(5, "m")
    ds = tiny_series(4, channels=1, values=values, timestamps=times, coords=torch.zeros(3, 2))
    assert torch.isnan(ds.values).sum() == 1
    assert ds.timestamps.dtype == np.dtype("datetime64[m]")


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(values=torch.ones(5)), r"values: expected .*\(time, nodes, channels\).* got shape \(5,\)"),
        (dict(values=torch.full((4, 3, 1), float("inf"))), r"values: expected finite numbers or NaN.*got \+/-inf"),
        (dict(adjacency=torch.ones(3, 2)), r"adjacency: expected a square .* got shape \(3, 2\)"),
        (dict(adjacency=-torch.ones(3, 3) + torch.eye(3)), r"adjacency: expected non-negative weights, got -1.0"),
        (dict(adjacency=torch.full((3, 3), float("nan"))), r"adjacency: expected finite weights, got nan"),
        (dict(adjacency=torch.full((3, 3), float("inf"))), r"adjacency: expected finite weights, got inf"),
        (dict(adjacency=torch.zeros(4, 4)), r"adjacency: expected 3 x 3 .* 3 nodes, got 4 x 4"),
        (dict(adjacency=torch.eye(3)), r"adjacency: expected a zero diagonal .* got non-zero self-weights at nodes"),
        (dict(interval_minutes=0), r"interval_minutes must be an int >= 1, got 0"),
        (dict(interval_minutes=2.5), r"interval_minutes must be an int >= 1, got 2.5"),
        (dict(node_names=["a", "b"]), r"node_names: expected 3 strings .* got 2 items"),
        (dict(node_names=["a", "a", "b"]), r"node_names: expected unique names, got duplicates \['a'\]"),
        (dict(coords=torch.zeros(3, 3)), r"coords: expected finite \(nodes, 2\) = \(3, 2\) .* got shape \(3, 3\)"),
        (dict(timestamps=np.arange(3)), r"timestamps: expected a datetime64 array of shape \(4,\), got dtype int64"),
        (dict(channel_names=["a", "b"]), r"channel_names: expected 1 strings, got \['a', 'b'\]"),
    ],
)
def test_container_rejects_bad_input(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_series(4, channels=1, **changes)


# ----------------------------------------------------------------------------------------------- CSV files


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_csv_folder_round_trip_with_missing_values_and_timestamps(tmp_path):
    values = torch.tensor([[1.0, 2.5], [float("nan"), 4.0], [5.0, 6.0]]).unsqueeze(-1)
    times = np.datetime64("2024-05-01T08:00") + np.arange(3) * np.timedelta64(10, "m")
    ds = GraphTimeSeries(values, torch.tensor([[0.0, 0.3], [0.3, 0.0]]), 10, ["up", "down"], timestamps=times)
    save_csv_folder(ds, tmp_path)
    assert (tmp_path / "series.csv").read_text().splitlines()[:3] == [
        "timestamp,up,down",
        "2024-05-01T08:00,1,2.5",
        "2024-05-01T08:10,,4",
    ]
    back = load_csv_folder(tmp_path)
    assert back.interval_minutes == 10 and back.node_names == ["up", "down"]
    assert torch.equal(back.values.nan_to_num(-1), values.nan_to_num(-1))
    assert torch.equal(back.adjacency, ds.adjacency)
    assert np.array_equal(back.timestamps, times)
    with pytest.raises(ValueError, match=r"channel must be an int in \[0, 0\], got 1"):
        save_csv_folder(ds, tmp_path, channel=1)


def test_csv_folder_without_timestamps_needs_interval_and_drops_self_loops(tmp_path):
    write(tmp_path / "series.csv", "a,b,c\n1,2,3\n4,NaN,6\n")
    write(tmp_path / "adjacency.csv", "1,0.5,0\n0.5,1,0.2\n0,0.2,1\n")
    with pytest.raises(ValueError, match="interval_minutes: expected a number of minutes .* got None"):
        load_csv_folder(tmp_path)
    ds = load_csv_folder(tmp_path, interval_minutes=5)
    assert ds.values.shape == (2, 3, 1) and torch.isnan(ds.values[1, 1, 0])
    assert torch.equal(torch.diagonal(ds.adjacency), torch.zeros(3))
    assert ds.adjacency[1, 2] == pytest.approx(0.2)


@pytest.mark.parametrize(
    "series, adjacency, message",
    [
        ("a,b\n1,2\n3\n", "0,1\n1,0\n", r"series.csv: expected 2 cells in every row, got 1 in row 3"),
        ("a,b\n1,2\n3,4,5\n", "0,1\n1,0\n", r"series.csv: expected 2 cells in every row, got 3 in row 3"),
        ("a,b\n1,2\n3,abc\n", "0,1\n1,0\n", r"series.csv: expected a number in row 3, column 2, got 'abc'"),
        ("a,b\n1,2\n", "0,1\n1\n", r"adjacency.csv: expected 2 cells in every row, got 1 in row 2"),
        ("a,b\n1,2\n", "0,x\n1,0\n", r"adjacency.csv: expected a number in row 1, column 2, got 'x'"),
        ("a,b\n1,2\n", "0,1,1\n1,0,1\n", r"adjacency.csv: expected a square nodes x nodes table, got \(2, 3\)"),
        ("a,b\n1,2\n", "0,1,1\n1,0,1\n1,1,0\n", r"adjacency.csv: expected 2 x 2 .* columns of series.csv, got 3 x 3"),
        ("a,b\n1,2\n", "0,-1\n-1,0\n", r"adjacency.csv: adjacency: expected non-negative weights, got -1.0"),
        ("a,b\n1,2\n", "0,inf\ninf,0\n", r"adjacency.csv: expected a finite number .* in row 1, column 2, got 'inf'"),
        ("a,b\n1,2\n", "0,nan\nnan,0\n", r"adjacency.csv: adjacency: expected finite weights, got nan"),
    ],
)
def test_csv_folder_rejects_bad_files(tmp_path, series, adjacency, message):
    write(tmp_path / "series.csv", series)
    write(tmp_path / "adjacency.csv", adjacency)
    with pytest.raises(ValueError, match=message):
        load_csv_folder(tmp_path, interval_minutes=5)


def test_csv_folder_rejects_uneven_timestamps_and_missing_files(tmp_path):
    # a step of 10 minutes in a 5-minute series is a gap (kept as data); one of 7 minutes is an error
    write(tmp_path / "series.csv", "timestamp,a\n2024-01-01T00:00,1\n2024-01-01T00:05,2\n2024-01-01T00:15,3\n")
    write(tmp_path / "adjacency.csv", "0\n")
    assert load_csv_folder(tmp_path).segments == [(0, 2), (2, 3)]
    write(tmp_path / "series.csv", "timestamp,a\n2024-01-01T00:00,1\n2024-01-01T00:05,2\n2024-01-01T00:12,3\n")
    with pytest.raises(ValueError, match=r"^series.csv: timestamps: expected increasing times 5 minutes apart .* "
                                         r"got a step of 7 minutes at step 2 "
                                         r"\(2024-01-01T00:05 -> 2024-01-01T00:12\)$"):
        load_csv_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="expected series.csv"):
        load_csv_folder(tmp_path / "nowhere")


def test_csv_folder_counts_columns_as_the_file_shows_them(tmp_path):
    write(tmp_path / "series.csv", "timestamp,a,b\n2024-01-01T00:00,1,2\n2024-01-01T00:05,3,x\n")
    write(tmp_path / "adjacency.csv", "0,1\n1,0\n")
    with pytest.raises(ValueError, match=r"series.csv: expected a number in row 3, column 3, got 'x'"):
        load_csv_folder(tmp_path)
    write(tmp_path / "series.csv", "timestamp,a,b\nmonday,1,2\n")
    with pytest.raises(ValueError, match=r"series.csv: expected ISO times in the timestamp column, got"):
        load_csv_folder(tmp_path)
    write(tmp_path / "series.csv", "timestamp,a,b\n2024-01-01T00:00,1,2\n2024-01-01T00:05,3,4\n")
    with pytest.raises(ValueError, match=r"series.csv: timestamps: expected increasing times 15 minutes apart .* "
                                         r"got a step of 5 minutes at step 1"):
        load_csv_folder(tmp_path, interval_minutes=15)
    assert load_csv_folder(tmp_path).interval_minutes == 5


def test_read_csv_numbers_reports_empty_files(tmp_path):
    with pytest.raises(ValueError, match="expected a header row, got an empty file"):
        read_csv_numbers(write(tmp_path / "x.csv", ""), header=True)


def test_csv_of_small_integers_with_empty_and_na_cells_is_read(tmp_path):
    # once: "expected a number ..., got 'n'" (a one-character string array truncated "nan" to "n")
    write(tmp_path / "series.csv", "a,b\n1,2\n,3\nNA,4\n5,null\n")
    write(tmp_path / "adjacency.csv", "0,1\n1,0\n")
    ds = load_csv_folder(tmp_path, interval_minutes=5)
    expected = torch.tensor([[1.0, 2], [float("nan"), 3], [float("nan"), 4], [5, float("nan")]])
    assert torch.equal(ds.values[..., 0].nan_to_num(-1), expected.nan_to_num(-1))


@pytest.mark.parametrize("cell", ["1e39", "-1e39", "inf", "-Infinity", "1e400"])
def test_csv_rejects_non_finite_readings_with_file_row_and_column(tmp_path, cell):
    # once: "values: expected finite numbers or NaN (missing), got +/-inf" (no file, no row)
    write(tmp_path / "series.csv", f"timestamp,a,b\n2024-01-01T00:00,1,2\n\n2024-01-01T00:05,3,{cell}\n")
    write(tmp_path / "adjacency.csv", "0,1\n1,0\n")
    with pytest.raises(ValueError) as info:
        load_csv_folder(tmp_path)
    assert str(info.value) == (f"series.csv: expected a finite number within float32's range (+/-3.4e+38) "
                               f"in row 4, column 3, got {cell!r}")


def test_csv_in_another_encoding_names_the_file_and_line(tmp_path):
    # once: a bare UnicodeDecodeError naming no file
    (tmp_path / "series.csv").write_bytes(b"a,b\n1,2\n3,4\n")
    (tmp_path / "adjacency.csv").write_bytes("0,1\n1,0\n# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"^adjacency.csv: expected UTF-8 text, got byte 0xe9 on line 3 "
                                         r"\(save the file as UTF-8\)$"):
        load_csv_folder(tmp_path, interval_minutes=5)
    (tmp_path / "series.csv").write_bytes("caf\u00e9,b\n1,2\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"^series.csv: expected UTF-8 text, got byte 0xe9 on line 1"):
        load_csv_folder(tmp_path, interval_minutes=5)
    (tmp_path / "series.csv").write_bytes("\ufeffcaf\u00e9,b\n1,2\n".encode())  # UTF-8 with a BOM is fine
    (tmp_path / "adjacency.csv").write_text("0,1\n1,0\n")
    assert load_csv_folder(tmp_path, interval_minutes=5).node_names == ["caf\u00e9", "b"]


def test_csv_with_one_timestamped_row_asks_for_the_interval(tmp_path):
    # once: "interval_minutes: expected ... (series.csv has no timestamp column)", though it has one
    write(tmp_path / "series.csv", "timestamp,a,b\n2024-01-01T00:00,1,2\n")
    write(tmp_path / "adjacency.csv", "0,1\n1,0\n")
    with pytest.raises(ValueError, match=r"^series.csv: expected at least two timestamped rows to read the step "
                                         r"length from, got one \(row 2\); pass interval_minutes"):
        load_csv_folder(tmp_path)
    ds = load_csv_folder(tmp_path, interval_minutes=10)
    assert ds.interval_minutes == 10 and str(ds.timestamps[0]) == "2024-01-01T00:00"
    write(tmp_path / "series.csv", "timestamp\n2024-01-01T00:00\n2024-01-01T00:05\n")
    with pytest.raises(ValueError, match="series.csv: expected a column per node after the timestamp, got none"):
        load_csv_folder(tmp_path)


def test_save_csv_folder_writes_float32_values_that_read_back_exactly(tmp_path):
    # once: 7 significant digits, so 16777217-like counts and fine fractions came back changed
    values = torch.tensor([[0.1, 16777216.0, 1.0000001], [123456.79, 3.4e38, float("nan")]])
    ds = GraphTimeSeries(values, torch.tensor([[0.0, 0.1, 0.2], [0.1, 0.0, 1 / 3], [0.2, 1 / 3, 0.0]]), 5,
                         ["a", "b", "c"])
    back = load_csv_folder(save_csv_folder(ds, tmp_path), interval_minutes=5)
    assert torch.equal(back.values.nan_to_num(-1), ds.values.nan_to_num(-1))
    assert torch.equal(back.adjacency, ds.adjacency)
    assert (tmp_path / "series.csv").read_text().splitlines()[1] == "0.1,16777216,1.0000001"


# ----------------------------------------------------------------------------------------------- Los-loop


def test_load_los_loop_from_the_shared_copy(los_root):
    ds = load_los_loop(root=los_root, download=False)
    assert (ds.num_steps, ds.num_nodes, ds.num_channels) == (2016, 207, 1)
    assert ds.interval_minutes == 5 and ds.channel_names == ["speed"] and ds.node_names[0] == "773869"
    assert not torch.isnan(ds.values).any() and 0 < ds.values.min() and ds.values.max() <= 70
    raw = np.loadtxt(los_root / "los_adj.csv", delimiter=",")
    assert (np.diag(raw) == 1).all()  # the file stores self-loops ...
    assert torch.equal(torch.diagonal(ds.adjacency), torch.zeros(207))  # ... which the loader removes
    np.fill_diagonal(raw, 0)
    assert torch.allclose(ds.adjacency, torch.from_numpy(raw).float())
    assert torch.equal(ds.adjacency, ds.adjacency.T)
    weights = ds.adjacency[ds.adjacency > 0]
    assert weights.max() <= 1 and (weights < 1).float().mean() > 0.9  # weights in (0, 1], not 0/1
    assert str(ds.timestamps[0]) == "2012-03-01T00:00" and str(ds.timestamps[-1]) == "2012-03-07T23:55"


def file_urls(folder: Path) -> tuple[str, ...]:
    return (folder.resolve().as_uri() + "/{name}",)


def test_load_los_loop_downloads_verifies_and_writes_atomically(tmp_path, los_root):
    root = tmp_path / "los"
    ds = load_los_loop(root=root, urls=file_urls(los_root), timeout=5)
    assert ds.values.shape == (2016, 207, 1)
    assert sorted(p.name for p in root.iterdir()) == ["los_adj.csv", "los_speed.csv"]  # no temp file left
    for name, sha in data.LOS_LOOP_SHA256.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == sha


def test_load_los_loop_tries_the_next_url(tmp_path, los_root):
    root, bad_mirror = tmp_path / "los", tmp_path / "bad"
    write(bad_mirror / "los_speed.csv", "not the data\n")
    urls = ((tmp_path / "missing").resolve().as_uri() + "/{name}",) + file_urls(bad_mirror) + file_urls(los_root)
    assert load_los_loop(root=root, urls=urls).num_nodes == 207
    assert sorted(p.name for p in root.iterdir()) == ["los_adj.csv", "los_speed.csv"]


def test_load_los_loop_rejects_a_corrupted_download_and_leaves_nothing(tmp_path, los_root):
    mirror, root = tmp_path / "mirror", tmp_path / "los"
    shutil.copytree(los_root, mirror)
    speed = mirror / "los_speed.csv"
    original = speed.read_bytes()
    speed.write_bytes(original.replace(b"64.375", b"64.376", 1))
    assert speed.read_bytes() != original
    with pytest.raises(ValueError, match=r"expected SHA-256 7b732d86.*, got [0-9a-f]{64}\. Put los_speed.csv"):
        load_los_loop(root=root, urls=file_urls(mirror))
    assert not root.exists()  # no partial or temporary file, and not the folder made for them


def test_load_los_loop_rejects_a_modified_local_file(tmp_path, los_root):
    shutil.copytree(los_root, tmp_path, dirs_exist_ok=True)
    (tmp_path / "los_adj.csv").write_text("0,1\n1,0\n")
    with pytest.raises(ValueError, match=r"los_adj.csv: expected SHA-256 7a6eb41e.*, got [0-9a-f]{64}"):
        load_los_loop(root=tmp_path, download=False)


def test_load_los_loop_says_where_to_put_the_files(tmp_path):
    root = tmp_path / "los"
    with pytest.raises(FileNotFoundError, match=rf"Put los_speed.csv and los_adj.csv by hand in {root}"):
        load_los_loop(root=root, download=False)
    unreachable = ((tmp_path / "no-such-mirror").resolve().as_uri() + "/{name}",)
    with pytest.raises(ConnectionError, match=rf"could not download los_speed.csv .* by hand in {root}"):
        load_los_loop(root=root, urls=unreachable, timeout=1)
    assert not root.exists()  # a mistyped --data-root is not left behind as an empty folder


def test_load_los_loop_removes_the_folders_a_failed_download_created(tmp_path, los_root):
    root = tmp_path / "mistyped" / "deeper" / "los"
    unreachable = ((tmp_path / "no-such-mirror").resolve().as_uri() + "/{name}",)
    with pytest.raises(ConnectionError, match=rf"{root} did not exist before: is the path mistyped\?\)$"):
        load_los_loop(root=root, urls=unreachable, timeout=1)
    assert list(tmp_path.iterdir()) == []
    partly = tmp_path / "mirror"  # los_speed.csv downloads, los_adj.csv does not: nothing is kept
    partly.mkdir()
    shutil.copy(los_root / "los_speed.csv", partly)
    with pytest.raises(ConnectionError, match="could not download los_adj.csv"):
        load_los_loop(root=root, urls=file_urls(partly), timeout=5)
    assert (root / "los_speed.csv").is_file()  # a verified download is kept for the next try
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(ConnectionError):
        load_los_loop(root=existing, urls=unreachable, timeout=1)
    assert existing.is_dir()  # a folder that was there before stays


def test_load_los_loop_rejects_a_root_that_is_a_file(tmp_path):
    not_a_folder = write(tmp_path / "los.csv", "a,b\n")
    with pytest.raises(NotADirectoryError, match=rf"^root \(--data-root\): expected a folder holding los_speed.csv "
                                                  rf"and los_adj.csv, got the file {not_a_folder}$"):
        load_los_loop(root=not_a_folder)
    assert not_a_folder.read_text() == "a,b\n"


# ----------------------------------------------------------------------------------------------- windows


def loop_windows(x: torch.Tensor, input_len: int, output_len: int, stride: int = 1):
    """The per-sample loop of the study notes, as a reference."""
    inputs, targets = [], []
    for start in range(0, x.shape[0] - input_len - output_len + 1, stride):
        inputs.append(x[start : start + input_len])
        targets.append(x[start + input_len : start + input_len + output_len])
    return torch.stack(inputs), torch.stack(targets)


@pytest.mark.parametrize("shape", [(20,), (20, 3), (20, 3, 2)])
@pytest.mark.parametrize("stride", [1, 3])
def test_sliding_windows_match_the_loop_and_are_views(shape, stride):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    inputs, targets = sliding_windows(x, 4, 2, stride)
    expected_inputs, expected_targets = loop_windows(x, 4, 2, stride)
    assert inputs.shape == (len(range(0, 20 - 6 + 1, stride)), 4, *shape[1:])
    assert targets.shape == (inputs.shape[0], 2, *shape[1:])
    assert torch.equal(inputs, expected_inputs) and torch.equal(targets, expected_targets)
    for windows in (inputs, targets):
        assert windows._base is x
        assert windows.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    x[5] = 100.0  # a view sees every write to the series
    assert (inputs == 100).any() and torch.equal(inputs, loop_windows(x, 4, 2, stride)[0])


@pytest.mark.parametrize(
    "args, message",
    [
        ((10, 1), r"window: expected input_len \+ output_len <= series length, got 10 \+ 1 = 11 > 10 steps"),
        ((0, 1), r"input_len must be an int >= 1, got 0"),
        ((3, 0), r"output_len must be an int >= 1, got 0"),
        ((-2, 1), r"input_len must be an int >= 1, got -2"),
        ((2.0, 1), r"input_len must be an int >= 1, got 2.0"),
        ((2, 1, 0), r"stride must be an int >= 1, got 0"),
    ],
)
def test_sliding_windows_reject_bad_lengths(args, message):
    with pytest.raises(ValueError, match=message):
        sliding_windows(torch.zeros(10, 2), *args)
    with pytest.raises(ValueError, match=message):
        TimeSeriesWindows(torch.zeros(10, 2, 1), *args)


def test_window_dataset_items_for_each_rank():
    series = torch.arange(60.0).reshape(10, 3, 2)
    three = TimeSeriesWindows(series, 4, 2, target_channel=1)
    x, y = three[0]
    assert x.shape == (4, 3, 2) and y.shape == (2, 3) and torch.equal(y, series[4:6, :, 1])
    assert len(three) == 5 and three.targets.untyped_storage().data_ptr() == series.untyped_storage().data_ptr()
    assert TimeSeriesWindows(series, 4, 2, target_channel=None)[0][1].shape == (2, 3, 2)
    x2, y2 = TimeSeriesWindows(series[..., 0], 4, 2)[1]
    assert x2.shape == (4, 3) and y2.shape == (2, 3) and torch.equal(x2, series[1:5, :, 0])
    x1, y1 = TimeSeriesWindows(series[:, 0, 0], 4, 2)[2]
    assert x1.shape == (4,) and y1.shape == (2,)
    with pytest.raises(ValueError, match=r"target_channel must be an int in \[0, 1\], got 2"):
        TimeSeriesWindows(series, 4, 2, target_channel=2)


def test_window_dataset_fills_missing_inputs_but_not_targets():
    series = torch.ones(8, 2, 1)
    series[2, 0, 0] = series[5, 1, 0] = float("nan")
    windows = TimeSeriesWindows(series, 3, 3, fill_value=0.0)
    x, y = windows[0]
    assert x[2, 0, 0] == 0 and torch.isnan(y[2, 1])
    assert torch.isnan(series[2, 0, 0])  # filling copies the item, never the series
    batch_x, batch_y = next(iter(DataLoader(windows, batch_size=2)))
    assert batch_x.shape == (2, 3, 2, 1) and batch_y.shape == (2, 3, 2)


def test_sine_example_of_the_notes_without_their_off_by_one():
    x = torch.sin(torch.arange(1, 1000, 0.1))  # 9,990 steps, input 3, output 1, 80% for training
    (_, cut), _ = split_bounds(len(x), (0.8, 0.2))
    train, test = x[:cut], x[cut:]
    assert (len(train), len(test)) == (7992, 1998)
    # The notes' loops make 7,988 and 1,994 samples: range(stop - 3 - 1) misses the last window.
    assert (len(TimeSeriesWindows(train, 3, 1)), len(TimeSeriesWindows(test, 3, 1))) == (7989, 1995)


def test_shuffled_loader_order_depends_on_its_seed_alone():
    dataset = TensorDataset(torch.arange(10))

    def epochs(loader, count=2):
        return [[batch.tolist() for (batch,) in loader] for _ in range(count)]

    torch.manual_seed(0)
    first = epochs(shuffled_loader(dataset, 4, seed=3))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    assert epochs(shuffled_loader(dataset, 4, seed=3)) == first  # whatever the global seed
    assert torch.equal(torch.get_rng_state(), state)  # and it draws nothing from the global generator
    assert first[0] != first[1] and sorted(sum(first[0], [])) == list(range(10))  # a new order per epoch
    assert epochs(shuffled_loader(dataset, 4, seed=4)) != first
    assert epochs(shuffled_loader(dataset, 4, seed=3, shuffle=False), 1) == [[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]]
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        shuffled_loader(dataset, 0, seed=0)


# ----------------------------------------------------------------------------------------------- splits, scaling


def test_split_bounds():
    assert split_bounds(4032) == [(0, 2822), (2822, 3226), (3226, 4032)]
    assert split_bounds(10, (0.5, 0.5)) == [(0, 5), (5, 10)]
    for bad in [(0.7, 0.2), (0.7, 0.0, 0.3), (-0.1, 0.6, 0.5)]:
        with pytest.raises(ValueError, match=r"fractions: expected positive fractions summing to 1, got"):
            split_bounds(100, bad)
    with pytest.raises(ValueError, match=r"expected every part to get steps from 3, got bounds"):
        split_bounds(3, (0.7, 0.1, 0.2))


def test_make_splits_keeps_every_window_inside_its_part():
    steps = 200
    clock = torch.arange(steps, dtype=torch.float32).reshape(steps, 1, 1).expand(steps, 2, 1).contiguous()
    splits = make_splits(clock, input_len=6, output_len=3)
    assert splits.bounds == [(0, 140), (140, 160), (160, 200)]
    assert splits.scaler.mean.item() == pytest.approx(69.5)  # the training part's mean, not 99.5
    for part, (start, stop) in zip((splits.train, splits.val, splits.test), splits.bounds, strict=True):
        x = splits.scaler.inverse_transform(part.inputs)
        y = splits.scaler.inverse_transform(part.targets, channel=0)
        assert len(part) == stop - start - 6 - 3 + 1
        assert x.min() >= start - 1e-3 and y.max() <= stop - 1 + 1e-3
        assert x.round().unique().numel() + 3 == stop - start  # windows reach the end of the part


def test_make_splits_rejects_parts_too_short_for_a_window():
    with pytest.raises(ValueError, match=r"val part: expected at least input_len \+ output_len = 12 steps, got 10"):
        make_splits(torch.zeros(100, 2, 1), input_len=8, output_len=4)
    with pytest.raises(ValueError, match=r"fractions: expected three fractions \(train, val, test\), got 2"):
        make_splits(torch.zeros(100, 2, 1), input_len=8, output_len=4, fractions=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"output_len must be an int >= 1, got 0"):
        make_splits(torch.zeros(100, 2, 1), input_len=8, output_len=0)


def test_standard_scaler_matches_numpy_and_inverts():
    gen = torch.Generator().manual_seed(1)
    values = torch.randn(50, 4, 2, generator=gen) * torch.tensor([3.0, 10.0]) + torch.tensor([5.0, -2.0])
    values[3, 1, 0] = float("nan")
    reference = values.double().numpy()
    scaler = StandardScaler().fit(values)
    assert scaler.mean.shape == (2,) and scaler.std.shape == (2,)
    np.testing.assert_allclose(scaler.mean.numpy(), np.nanmean(reference, axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(scaler.std.numpy(), np.nanstd(reference, axis=(0, 1)), rtol=1e-6)
    scaled = scaler.transform(values)
    assert torch.isnan(scaled[3, 1, 0]) and abs(torch.nanmean(scaled[..., 1]).item()) < 1e-5
    torch.testing.assert_close(scaler.inverse_transform(scaled), values, equal_nan=True)
    torch.testing.assert_close(scaler.inverse_transform(scaled[..., 1], channel=1), values[..., 1])

    per_node = StandardScaler(per_node=True).fit(values)
    assert per_node.mean.shape == (4, 2)
    np.testing.assert_allclose(per_node.std.numpy(), np.nanstd(reference, axis=0), rtol=1e-6)
    torch.testing.assert_close(per_node.inverse_transform(per_node.transform(values)), values, equal_nan=True)

    two_dim = StandardScaler(per_node=True).fit(values[..., 0])
    assert two_dim.mean.shape == (4,)
    torch.testing.assert_close(
        two_dim.inverse_transform(two_dim.transform(values[..., 0])), values[..., 0], equal_nan=True
    )


def test_standard_scaler_rejects_misuse():
    with pytest.raises(ValueError, match="expected fit\\(\\) to be called first"):
        StandardScaler().transform(torch.zeros(3, 2, 1))
    scaler = StandardScaler(per_node=True).fit(torch.randn(10, 3, 2))
    with pytest.raises(ValueError, match=r"x: expected trailing dims \(3, 2\) .* got \(5, 4, 2\)"):
        scaler.transform(torch.zeros(5, 4, 2))
    with pytest.raises(ValueError, match=r"channel: expected an index of the \(3, 2\) statistics, got 2"):
        scaler.inverse_transform(torch.zeros(5, 3), channel=2)
    with pytest.raises(ValueError, match="expected at least one observed"):
        StandardScaler().fit(torch.full((4, 2, 1), float("nan")))
    constant = StandardScaler().fit(torch.ones(5, 2, 1))
    assert constant.std.item() == 1.0  # a constant series is shifted, not divided by zero


# ----------------------------------------------------------------------------------------------- calendar


def test_calendar_helpers():
    times = np.array(["2025-03-03T05:30", "2025-03-08T23:15", "2025-03-28T12:00"], dtype="datetime64[m]")
    assert time_of_day_index(times, 15).tolist() == [22, 93, 48]
    assert day_type(times).tolist() == [0, 1, 0]  # Monday, Saturday, Friday
    assert day_type(times, holidays=["2025-03-28"]).tolist() == [0, 1, 1]


def test_historical_average_matches_a_loop_over_slots():
    gen = torch.Generator().manual_seed(2)
    days, slots = 14, 4
    times = (np.datetime64("2025-03-03T06:00") + np.arange(days)[:, None] * np.timedelta64(1, "D")).repeat(slots, 1)
    times = (times + np.arange(slots) * np.timedelta64(60, "m")).reshape(-1)
    values = torch.rand(days * slots, 3, 1, generator=gen) * 100
    values[5, 0, 0] = float("nan")
    ds = GraphTimeSeries(
        values, torch.zeros(3, 3), 60, ["a", "b", "c"], timestamps=times, meta={"holidays": ["2025-03-05"]}
    )
    fit_stop = 10 * slots
    average = historical_average(ds, fit_stop)
    weekend = day_type(times, ["2025-03-05"]).numpy()
    slot = np.arange(days * slots) % slots
    y = values[..., 0].numpy()
    for t in range(days * slots):
        same = (weekend[:fit_stop] == weekend[t]) & (slot[:fit_stop] == slot[t])
        np.testing.assert_allclose(average[t].numpy(), np.nanmean(y[:fit_stop][same], axis=0), rtol=1e-5)
    with pytest.raises(ValueError, match=r"fit_stop: expected a step in \(0, 56\], got 0"):
        historical_average(ds, 0)
