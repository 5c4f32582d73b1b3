"""Tests of the shipped synthetic metro dataset: the map, the flows, the gaps, the file, and the
spatial propagation that the graph models of later notebooks rely on."""

from __future__ import annotations

import hashlib
import re
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import helpers.data as data
from helpers.data import day_type, load_metro, make_metro, make_splits, metro_file, save_metro
from helpers.data.__main__ import main
from helpers.data.metro_file import _METRO_SHA256
from helpers.metrics import masked_mae
from helpers.models import historical_average

SHIPPED = Path(__file__).resolve().parents[1] / "data/metro/metro.npz"
DATASHEET = SHIPPED.parent / "README.md"
STEPS_PER_DAY = 72


@pytest.fixture(scope="module")
def metro():
    return load_metro()


def by_day(ds, channel=0) -> torch.Tensor:
    """(days, 72, stations) view of one channel."""
    return ds.values[..., channel].reshape(-1, STEPS_PER_DAY, ds.num_nodes)


def hour_slot(hhmm: str) -> int:
    hours, minutes = map(int, hhmm.split(":"))
    return (hours * 60 + minutes - 330) // 15


# ----------------------------------------------------------------------------------------------- file


def test_load_metro_returns_the_documented_dataset(metro):
    assert (metro.num_steps, metro.num_nodes, metro.num_channels) == (56 * STEPS_PER_DAY, 51, 2)
    assert metro.channel_names == ["inflow", "outflow"] and metro.interval_minutes == 15
    assert str(metro.timestamps[0]) == "2025-03-03T05:30" and str(metro.timestamps[-1]) == "2025-04-27T23:15"
    assert metro.coords.shape == (51, 2) and metro.meta["synthetic"] is True
    assert len(metro.node_names) == len(set(metro.node_names)) == 51
    assert metro.meta["travel_minutes"].shape == (51, 51)


def test_load_metro_works_from_another_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert load_metro().num_nodes == 51
    with pytest.raises(FileNotFoundError, match="python -m helpers.data make-metro"):
        load_metro(tmp_path)


def test_shipped_file_is_compressed_small_and_regenerates_byte_for_byte(tmp_path):
    size = SHIPPED.stat().st_size
    assert size < 2_000_000
    with zipfile.ZipFile(SHIPPED) as archive:
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
        raw = sum(info.file_size for info in archive.infolist())
    assert size < 0.8 * raw
    fresh = save_metro(make_metro(seed=0), tmp_path)
    assert fresh.read_bytes() == SHIPPED.read_bytes()
    assert save_metro(load_metro(), tmp_path / "again").read_bytes() == SHIPPED.read_bytes()


def test_command_line_writes_and_checks_the_file(tmp_path, capsys):
    assert main(["make-metro", str(tmp_path)]) == 0
    assert (tmp_path / "metro.npz").read_bytes() == SHIPPED.read_bytes()
    assert "sha256" in capsys.readouterr().out
    assert main(["make-metro", str(tmp_path), "--check"]) == 0
    (tmp_path / "metro.npz").write_bytes(b"stale")
    assert main(["make-metro", str(tmp_path), "--check"]) == 1
    assert "DIFFERS" in capsys.readouterr().out


def test_save_metro_rejects_non_counts(metro, tmp_path):
    halves = data.GraphTimeSeries(
        metro.values[:10] + 0.5, metro.adjacency, 15, metro.node_names, metro.coords, metro.timestamps[:10]
    )
    with pytest.raises(
        ValueError, match=r"save_metro: expected whole counts in \[0, 65535\], got values from .* with fractions"
    ):
        save_metro(halves, tmp_path)


def test_checksum_in_the_code_is_the_datasheets_and_the_shipped_files():
    quoted = re.findall(r"SHA-256\s+`([0-9a-f]{64})`", DATASHEET.read_text())
    assert quoted == [_METRO_SHA256]
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == _METRO_SHA256


def entry_offsets(path: Path, name: str) -> tuple[int, int]:
    """(offset of the local header, offset of the compressed data) of one zip entry."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    header = path.read_bytes()[info.header_offset:info.header_offset + 30]
    name_len, extra_len = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
    return info.header_offset, info.header_offset + 30 + name_len + extra_len


def corrupted_copies(folder: Path) -> dict[str, Path]:
    """Damaged copies of the shipped file, one per way it can arrive damaged."""
    original = SHIPPED.read_bytes()
    _, counts_data = entry_offsets(SHIPPED, "counts.npy")
    _, meta_data = entry_offsets(SHIPPED, "meta.json")
    damage = {
        "empty": b"",
        "truncated to a tenth": original[: len(original) // 10],
        "truncated by one byte": original[:-1],
        "a flipped byte in the counts": flip(original, counts_data + 1000),
        "a flipped byte in meta.json": flip(original, meta_data + 20),
        "a flipped byte in the central directory": flip(original, len(original) - 300),
        "a git-LFS pointer": b"version https://git-lfs.github.com/spec/v1\noid sha256:" + _METRO_SHA256.encode()
        + b"\nsize 523886\n",
        "an HTML error page": b"<!DOCTYPE html><html><body>404: Not Found</body></html>\n",
    }
    copies = {}
    for what, content in damage.items():
        path = folder / what.replace(" ", "-") / "metro.npz"
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        copies[what] = path
    return copies


def flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x5A]) + data[position + 1:]


def test_a_damaged_metro_file_gives_one_line_saying_how_to_regenerate_it(tmp_path):
    # once: BadZipFile, zlib.error, KeyError or JSONDecodeError tracebacks
    for what, path in corrupted_copies(tmp_path).items():
        with pytest.raises(ValueError) as info:
            load_metro(path)
        message = str(info.value)
        assert "\n" not in message, what
        assert message.startswith(f"load_metro: expected the metro data in {path}, got a git-LFS pointer"
                                  if "LFS" in what else f"load_metro: {path} is damaged or truncated ("), what
        assert message.endswith(f"`python -m helpers.data make-metro {path.parent}`"), what


def test_the_shipped_file_is_checked_against_the_datasheets_checksum(tmp_path, monkeypatch):
    shipped = tmp_path / "data" / "metro"
    monkeypatch.setattr(metro_file, "METRO_DIR", shipped)  # stands in for data/metro/
    shipped.mkdir(parents=True)
    for what, path in corrupted_copies(tmp_path / "copies").items():
        shutil.copy(path, shipped / "metro.npz")
        with pytest.raises(ValueError, match=r"run `make data` to regenerate it$") as info:
            load_metro()
        if "LFS" not in what:
            assert f"expected SHA-256 {_METRO_SHA256}, got " in str(info.value), what
    # a harmless difference (the date of a zip entry): the data reads back intact, and a warning says the
    # file is not the shipped one
    local_header, _ = entry_offsets(SHIPPED, "counts.npy")
    (shipped / "metro.npz").write_bytes(flip(SHIPPED.read_bytes(), local_header + 10))
    with pytest.warns(UserWarning, match=r"expected SHA-256 .* its contents read back intact .* `make data`"):
        ds = load_metro()
    assert torch.equal(ds.values.nan_to_num(-1), load_metro(SHIPPED).values.nan_to_num(-1))
    shutil.copy(SHIPPED, shipped / "metro.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_metro().num_nodes == 51  # the right bytes: no warning


def test_datasheet_says_it_is_synthetic_and_how_to_regenerate():
    text = DATASHEET.read_text()
    assert "synthetic" in text.lower() and "make data" in text
    assert "python -m helpers.data make-metro data/metro" in text


def test_make_metro_is_seeded():
    first, again, other = make_metro(seed=3), make_metro(seed=3), make_metro(seed=4)
    assert torch.equal(first.values.nan_to_num(-1), again.values.nan_to_num(-1))
    assert not torch.equal(first.values.nan_to_num(-1), other.values.nan_to_num(-1))
    assert torch.equal(first.adjacency, other.adjacency)  # the map is fixed; the seed draws the flows
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        make_metro(seed=-1)
    with pytest.raises(ValueError, match=r"spread must be a finite number in \[0, 1\], got 1.5"):
        make_metro(spread=1.5)


# ----------------------------------------------------------------------------------------------- map


def test_network_has_lines_transfers_and_travel_time_weights(metro):
    lines = metro.meta["lines"]
    assert len(lines) >= 3 and 40 <= metro.num_nodes <= 80
    membership = torch.zeros(metro.num_nodes, dtype=torch.long)
    consecutive = torch.zeros(metro.num_nodes, metro.num_nodes, dtype=torch.bool)
    for stops in lines.values():
        membership[sorted(set(stops))] += 1
        consecutive[stops[:-1], stops[1:]] = consecutive[stops[1:], stops[:-1]] = True
    assert (membership >= 1).all()
    transfers = torch.nonzero(membership >= 2)[:, 0].tolist()
    assert len(transfers) >= 3 and transfers == metro.meta["transfer_stations"]
    assert metro.meta["station_types"].count("business") >= 3 and metro.meta["station_types"].count("residential") >= 3

    adjacency, travel = metro.adjacency, metro.meta["travel_minutes"]
    assert torch.equal(adjacency > 0, consecutive) and torch.equal(adjacency, adjacency.T)
    torch.testing.assert_close(adjacency, torch.where(travel > 0, torch.exp(-((travel / 5.0) ** 2)), 0.0))
    assert 1.5 < travel[consecutive].min() and travel[consecutive].max() < 10  # minutes
    reach = torch.eye(metro.num_nodes) + (adjacency > 0).float()
    for _ in range(6):  # paths of up to 64 edges
        reach = (reach @ reach > 0).float()
    assert (reach > 0).all()  # one connected network


# ----------------------------------------------------------------------------------------------- flows


def test_weekday_and_weekend_peaks_differ_by_station_type(metro):
    inflow, outflow = by_day(metro, 0), by_day(metro, 1)
    weekend = day_type(metro.timestamps[::STEPS_PER_DAY], metro.meta["holidays"]).bool()
    kinds = np.array(metro.meta["station_types"])
    morning, evening = slice(hour_slot("07:30"), hour_slot("09:00")), slice(hour_slot("17:00"), hour_slot("18:30"))

    def mean(flow, days, window, kind):
        return torch.nanmean(flow[days][:, window][..., torch.from_numpy(kinds == kind)]).item()

    workday = ~weekend
    assert mean(inflow, workday, morning, "residential") > 2 * mean(inflow, workday, evening, "residential")
    assert mean(inflow, workday, evening, "business") > 2 * mean(inflow, workday, morning, "business")
    assert mean(outflow, workday, morning, "business") > 2 * mean(outflow, workday, evening, "business")
    assert torch.nanmean(inflow[workday]) > 1.25 * torch.nanmean(inflow[weekend])  # weekends are quieter
    busiest_peak = torch.nanmean(inflow[workday], dim=0).amax(dim=0)  # per station, average working day
    assert 300 < busiest_peak.max() < 2000 and (busiest_peak > 100).sum() > 20  # hundreds at busy stations
    total_in, total_out = inflow.nansum(), outflow.nansum()
    assert abs(total_in - total_out) / total_in < 0.01  # everyone who enters leaves


def test_the_holiday_and_the_stadium_events(metro):
    inflow = by_day(metro, 0)
    holiday = 25
    assert str(metro.timestamps[holiday * STEPS_PER_DAY])[:10] == metro.meta["holidays"][0]
    other_fridays = [d for d in range(4, 56, 7) if d != holiday]
    assert torch.nanmean(inflow[holiday]) < 0.8 * torch.nanmean(inflow[other_fridays])
    stadium = metro.node_names.index("Stadium")
    after = slice(hour_slot("21:45"), hour_slot("22:45"))
    typical = torch.nanmean(inflow[:, after, stadium], dim=1)
    for event in metro.meta["events"]:
        day = int((np.datetime64(event["date"]) - np.datetime64("2025-03-03")).astype(int))
        assert event["station"] == stadium and typical[day] > 5 * typical.median()


def test_missing_readings_are_sensor_outages_of_a_few_hours(metro):
    missing = torch.isnan(metro.values)
    assert torch.equal(missing[..., 0], missing[..., 1])  # a gate sensor down loses both counts
    fraction = missing.float().mean().item()
    assert 0.0005 < fraction < 0.01
    runs = 0
    for outage in metro.meta["outages"]:
        start = int(np.flatnonzero(metro.timestamps == np.datetime64(outage["start"]))[0])
        gap = missing[start : start + outage["steps"], outage["station"], 0]
        assert gap.all() and 8 <= outage["steps"] <= 24  # 2 to 6 hours
        runs += 1
    assert missing[..., 0].sum() <= runs * 24
    for start, stop in data.split_bounds(metro.num_steps):  # every default split part has gaps
        assert missing[start:stop].any()


# ----------------------------------------------------------------------------------------------- propagation


def linear_ar_mae(ds, lags: int = 4, neighbours: bool = False) -> float:
    """Validation MAE (passengers) of a linear autoregressive next-step inflow forecaster.

    One set of coefficients for every station, fitted by least squares on the training part:
    inflow(t) ~ its own last `lags` steps (+ the adjacency-weighted mean of its neighbours' last
    `lags` steps when neighbours=True) + a constant, on per-station z-scores.
    """
    splits = make_splits(ds, input_len=lags, output_len=1, per_node=True)
    weights = ds.adjacency / ds.adjacency.sum(dim=1, keepdim=True)  # row i: mean over i's neighbours

    def features(part):
        own = part.inputs[..., 0].nan_to_num(0.0).double()  # (samples, lags, stations)
        columns = [own]
        if neighbours:
            columns.append(torch.einsum("ij,slj->sli", weights.double(), own))
        x = torch.cat(columns + [torch.ones_like(own[:, :1])], dim=1)  # (samples, features, stations)
        return x.permute(0, 2, 1).reshape(-1, x.shape[1]), part.targets[:, 0].double().reshape(-1)

    x, y = features(splits.train)
    seen = ~torch.isnan(y)
    coefficients = torch.linalg.lstsq(x[seen], y[seen, None]).solution
    x_val, y_val = features(splits.val)
    shape = splits.val.targets.shape  # (samples, 1, stations)
    pred = splits.scaler.inverse_transform((x_val @ coefficients).reshape(shape).float(), channel=0)
    target = splits.scaler.inverse_transform(y_val.reshape(shape).float(), channel=0)
    return masked_mae(pred, target).item()


def test_neighbours_past_helps_a_linear_forecaster_by_at_least_ten_percent(metro):
    alone, with_neighbours = linear_ar_mae(metro), linear_ar_mae(metro, neighbours=True)
    gain = 1 - with_neighbours / alone
    print(f"validation MAE: own lags {alone:.4f}, + neighbours {with_neighbours:.4f}, gain {gain:.1%}")
    assert gain >= 0.10


def test_without_spreading_surges_neighbours_barely_help():
    local = make_metro(seed=0, spread=0.0)
    alone, with_neighbours = linear_ar_mae(local), linear_ar_mae(local, neighbours=True)
    gain = 1 - with_neighbours / alone
    print(f"spread=0: own lags {alone:.4f}, + neighbours {with_neighbours:.4f}, gain {gain:.1%}")
    assert gain < 0.05


def test_historical_average_beats_persistence_an_hour_ahead(metro):
    (_, train_stop), (val_start, val_stop) = data.split_bounds(metro.num_steps)[:2]
    inflow = metro.values[:, :, 0]
    average = historical_average(metro, train_stop)
    ahead = 4  # one hour
    target = inflow[val_start + ahead : val_stop][None, None]
    persistence = inflow[val_start : val_stop - ahead][None, None]
    mae_average = masked_mae(average[val_start + ahead : val_stop][None, None], target).item()
    observed = ~torch.isnan(persistence)
    mae_persistence = masked_mae(persistence[observed][None, None, None], target[observed][None, None, None]).item()
    print(f"1 h ahead, validation MAE: historical average {mae_average:.4f}, persistence {mae_persistence:.4f}")
    assert mae_average < mae_persistence
