"""Your own network as CSV files: `load_csv_folder` reads them, `save_csv_folder` writes them.

A folder holds series.csv (the readings), adjacency.csv (the weights) and optionally holidays.csv.
series.csv comes in one of two layouts:
- wide, one channel: a header of node names, one row per step, an optional first column
  "timestamp";
- long, any number of channels: a header `timestamp,node,<channel>,<channel>...` and one row per
  step and node, e.g. `2025-03-03T05:30,Central,412,380`. This is the layout of an export from a
  fare-collection or counting database (a query grouped by time slot and station writes one row
  per slot and station, one column per measure), so such an export loads as it is; a channel more
  is a column more, and a slot a station did not report is a missing row (missing readings).
Timestamps may have gaps (a metro closes at night; a day may be missing): every step must be a
whole multiple of the interval (given, or inferred as the smallest step), and windows never cross
a gap (`GraphTimeSeries.segments`). adjacency.csv is nodes x nodes, optionally with a first row of
node names (then its order may differ from series.csv; the long layout needs it). holidays.csv lists
non-working days, one ISO date per line (an optional header "date"). `read_csv_numbers` reads any
CSV table of numbers with errors that name the row and column, as a spreadsheet shows them.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np
import torch

from helpers.checks import check_int
from helpers.data.series import GraphTimeSeries, check_adjacency
from helpers.files import write_atomic

_MISSING_TEXT = {"", "nan", "na", "null"}
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # the workbook stores readings as float32


def read_csv_numbers(path: str | os.PathLike, *,
                     header: bool) -> tuple[list[str] | None, np.ndarray]:
    """Read a CSV table of numbers; return (header cells or None, float64 array (rows, columns)).

    The file must be UTF-8 text (a byte-order mark is allowed). An empty cell or nan/NA/null (any
    case) is a missing value (NaN). A row with a different number of cells than the first row, a
    cell that is not a number, or a number that is infinite or beyond float32's range (about
    3.4e38; the workbook keeps readings as float32) raises ValueError naming the file, the row
    (the line of the file, counted from 1, as a spreadsheet shows it), the column and what was found.
    """
    names, rows, lines = _csv_rows(Path(path), header)
    return names, _csv_numbers(rows, Path(path).name, lines)


def _csv_rows(path: Path, header: bool) -> tuple[list[str] | None, list[list[str]], list[int]]:
    """The rows of a CSV file (blank lines skipped), all as wide as the first; header split off.

    Also returns the file line of each returned row, for error messages.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path.name}: expected UTF-8 text, got byte {raw[exc.start]:#04x} on line {line} "
            f"(save the file as UTF-8)"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, lines = [], []
    for row in reader:
        if row:
            rows.append(row)
            lines.append(reader.line_num)
    if header and not rows:
        raise ValueError(f"{path.name}: expected a header row, got an empty file")
    if len(rows) <= header:
        raise ValueError(f"{path.name}: expected at least one row of numbers, got none")
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(rows[0]):
            raise ValueError(
                f"{path.name}: expected {len(rows[0])} cells in every row, "
                f"got {len(row)} in row {line}"
            )
    names = [cell.strip() for cell in rows[0]] if header else None
    return names, rows[header:], lines[header:]


def _csv_numbers(rows: list[list[str]], source: str, lines: list[int],
                 first_column: int = 1) -> np.ndarray:
    """Convert CSV cells to float64 (rows, columns); name the first cell that is not a number or
    not finite within float32's range."""
    try:
        table = np.array([[_cell_number(cell) for cell in row] for row in rows], dtype=np.float64)
        if not _fits_float32(table).all():
            raise ValueError("out of range")
        return table
    except ValueError:
        pass  # find the cell, for the message
    for row, line in zip(rows, lines, strict=True):
        for c, cell in enumerate(row):
            try:
                number = _cell_number(cell)
            except ValueError:
                wanted = "a number"
            else:
                if _fits_float32(np.array(number)):
                    continue
                wanted = f"a finite number within float32's range (+/-{_FLOAT32_MAX:.3g})"
            raise ValueError(
                f"{source}: expected {wanted} in row {line}, column {c + first_column}, "
                f"got {cell.strip()!r}"
            )
    raise AssertionError("unreachable: a bad cell was not found")  # pragma: no cover


def _fits_float32(x: np.ndarray) -> np.ndarray:
    """True where x is NaN or a number that stays finite as float32 (3.4028235e38 does: it rounds to
    float32's largest value)."""
    with np.errstate(over="ignore"):
        return np.isnan(x) | np.isfinite(x.astype(np.float32))


def _cell_number(cell: str) -> float:
    """One CSV cell as a float: NaN for a missing reading; ValueError if it is not a number
    (Python's own spellings such as 1_000 are refused: a spreadsheet does not write them)."""
    text = cell.strip()
    if text.lower() in _MISSING_TEXT:
        return math.nan
    if "_" in text:
        raise ValueError(text)
    return float(text)


def _adjacency_from_file(matrix: np.ndarray, source: str) -> torch.Tensor:
    """Validate a stored adjacency (self-loops allowed) and return it with a zero diagonal."""
    try:
        a = check_adjacency(matrix, allow_self_loops=True).clone()
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    a.fill_diagonal_(0.0)
    return a


def load_csv_folder(folder: str | os.PathLike, interval_minutes: int | None = None,
                    channel_name: str = "value",
                    holidays: str | os.PathLike | None = None) -> GraphTimeSeries:
    """Load your own network from a folder of CSV files (layouts in the module docstring).

    series.csv, wide: one header row with the node names, then one row per time step (time x
        nodes); an optional first column named "timestamp" holds ISO times (e.g.
        2024-05-01T08:15). Long: header `timestamp,node,<channel>...`, one row per step and node,
        in time order. Empty or "nan" cells are missing readings.
    adjacency.csv: nodes x nodes weights, non-negative, larger = closer; without a header row in the
        order of the wide series' columns, or with a header row of node names. Its diagonal is set
        to zero (self-loops are the graph layers' business).
    interval_minutes: minutes per step; inferred from the timestamps when None (their smallest
        step; longer steps are gaps), needed when series.csv has no timestamp column.
    channel_name: the channel's name for a wide series.csv.
    holidays: a file of ISO dates (non-working days); default holidays.csv in the folder, if any.
        They go to meta["holidays"], which `day_type` and the historical average read.
    Returns a `GraphTimeSeries` with values (time, nodes, channels).
    """
    folder = Path(folder)
    series_path, adjacency_path = folder / "series.csv", folder / "adjacency.csv"
    for p in (series_path, adjacency_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"load_csv_folder: expected {p.name} in {folder}, found no such file"
            )
    names, rows, lines = _csv_rows(series_path, header=True)
    long = len(names) > 1 and names[0].lower() == "timestamp" and names[1].lower() == "node"
    if long:
        timestamps, names, values, channels = _long_table(names, rows, lines)
    else:
        timestamps, values, channels = None, None, [channel_name]
        first_column = 1
        if names[0].lower() == "timestamp":
            timestamps = _timestamp_column(rows, lines, interval_minutes)
            names, rows, first_column = names[1:], [row[1:] for row in rows], 2
        if not names:
            raise ValueError("series.csv: expected a column per node after the timestamp, got none")
        values = _csv_numbers(rows, "series.csv", lines, first_column=first_column)[..., None]
    if interval_minutes is None and timestamps is None:
        raise ValueError(
            "interval_minutes: expected a number of minutes per step (series.csv has no timestamp "
            "column), got None"
        )
    adjacency = _adjacency_csv(adjacency_path, names, needs_names=long)
    holiday_path = Path(holidays) if holidays is not None else folder / "holidays.csv"
    meta = {"name": folder.name}
    if holidays is not None or holiday_path.is_file():
        meta["holidays"] = read_holidays(holiday_path)
    try:
        return GraphTimeSeries(
            values=torch.from_numpy(values.astype(np.float32)),
            adjacency=adjacency,
            interval_minutes=interval_minutes,
            node_names=names,
            timestamps=timestamps,
            channel_names=channels,
            meta=meta,
        )
    except ValueError as exc:
        if str(exc).startswith("timestamps:"):
            raise ValueError(f"series.csv: {exc}") from None
        raise


def _timestamp_column(rows: list[list[str]], lines: list[int],
                      interval_minutes: int | None) -> np.ndarray:
    """The first column of series.csv as times (checked for order and steps by GraphTimeSeries)."""
    try:
        timestamps = np.array([row[0].strip() for row in rows], dtype="datetime64[m]")
    except ValueError as exc:
        raise ValueError(
            f"series.csv: expected ISO times in the timestamp column, got {exc}"
        ) from None
    if len(rows) == 1 and interval_minutes is None:
        raise ValueError(
            f"series.csv: expected at least two timestamped rows to read the step length from, "
            f"got one (row {lines[0]}); pass interval_minutes (--interval-minutes)"
        )
    return timestamps


def _long_table(header: list[str], rows: list[list[str]], lines: list[int]
                ) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """A long series.csv (timestamp, node, channels...) as (timestamps (time,), node names in the
    order of first appearance, values (time, nodes, channels) float64 with NaN where a row is
    missing, channel names)."""
    channels = header[2:]
    if not channels or any(not c for c in channels) or len(set(channels)) != len(channels):
        raise ValueError(f"series.csv: expected unique channel names after timestamp,node, "
                         f"got {channels}")
    stamps = _timestamp_column(rows, lines, interval_minutes=1)
    back = np.flatnonzero(np.diff(stamps) < np.timedelta64(0, "m"))
    if back.size:
        i = int(back[0]) + 1
        raise ValueError(f"series.csv: expected rows in time order, got {stamps[i]} in row "
                         f"{lines[i]} after {stamps[i - 1]}")
    times, t_index = np.unique(stamps, return_inverse=True)
    node_of = {}
    n_index = np.array([node_of.setdefault(row[1].strip(), len(node_of)) for row in rows])
    key = t_index * len(node_of) + n_index
    order = np.argsort(key, kind="stable")
    repeats = order[1:][key[order][1:] == key[order][:-1]]  # rows whose (time, node) came before
    if repeats.size:
        first = int(repeats.min())
        raise ValueError(f"series.csv: expected one row per timestamp and node, got a second row "
                         f"for {stamps[first]} and {rows[first][1].strip()!r} in row {lines[first]}")
    numbers = _csv_numbers([row[2:] for row in rows], "series.csv", lines, first_column=3)
    values = np.full((len(times), len(node_of), len(channels)), np.nan)
    values[t_index, n_index] = numbers
    names = list(node_of)
    silent = np.isnan(values).all(axis=0)  # (nodes, channels): a channel a node never reported
    if silent.any():
        node, channel = (int(i) for i in np.argwhere(silent)[0])
        nodes = [names[i] for i in np.flatnonzero(silent[:, channel])]
        raise ValueError(f"series.csv: expected readings of channel {channels[channel]!r} at every "
                         f"node, got none at {len(nodes)} node(s): {nodes[:5]}")
    return times, names, values, channels


def _adjacency_csv(path: Path, names: list[str], needs_names: bool) -> torch.Tensor:
    """adjacency.csv for the series' nodes `names` (in that order), with or without a header row of
    node names."""
    header, rows, lines = _csv_rows(path, header=False)
    first = rows[0][0].strip()
    try:
        _cell_number(first)
        named = False
    except ValueError:
        named = True
    if needs_names and not named:
        raise ValueError("adjacency.csv: expected a first row of node names (a long series.csv "
                         "has no column order), got numbers")
    order = None
    if named:
        given = [cell.strip() for cell in rows[0]]
        extra = [n for n in given if n not in names]
        if extra:
            raise ValueError(f"adjacency.csv: expected nodes of series.csv, got {extra[:5]} "
                             f"that series.csv does not have")
        missing = [n for n in names if n not in given]
        if missing or len(set(given)) != len(given):
            raise ValueError(f"adjacency.csv: expected each node of series.csv once in the header, "
                             f"got {len(given)} names, missing {missing[:5]}")
        order = [given.index(n) for n in names]
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise ValueError("adjacency.csv: expected rows of weights under the node names, got none")
    adjacency = _csv_numbers(rows, "adjacency.csv", lines)
    if adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError(
            f"adjacency.csv: expected a square nodes x nodes table, got {adjacency.shape}"
        )
    if adjacency.shape[0] != len(names):
        raise ValueError(
            f"adjacency.csv: expected {len(names)} x {len(names)} to match the {len(names)} "
            f"columns of series.csv, got {adjacency.shape[0]} x {adjacency.shape[1]}"
        )
    if order is not None:
        adjacency = adjacency[np.ix_(order, order)]
    return _adjacency_from_file(adjacency, "adjacency.csv")


def read_holidays(path: str | os.PathLike) -> list[str]:
    """The non-working days in a file, one ISO date (2025-03-28) per line, an optional header
    "date"; returns them as sorted ISO strings, as meta["holidays"] holds them."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"holidays: expected a file of ISO dates, found no file {path}")
    _, rows, lines = _csv_rows(path, header=False)
    if rows[0][0].strip().lower() == "date":
        rows, lines = rows[1:], lines[1:]
    days = []
    for row, line in zip(rows, lines, strict=True):
        try:
            days.append(np.datetime64(row[0].strip(), "D"))
        except ValueError:
            raise ValueError(f"{path.name}: expected an ISO date (e.g. 2025-03-28) in row {line}, "
                             f"got {row[0].strip()!r}") from None
    return sorted({str(d) for d in days})


def save_csv_folder(ds: GraphTimeSeries, folder: str | os.PathLike,
                    channel: int | None = 0) -> Path:
    """Write `ds` as series.csv and adjacency.csv (and holidays.csv if meta has holidays and
    channel is None); the inverse of `load_csv_folder`; missing readings become empty cells.

    channel: an index writes that channel in the wide layout (+ timestamp column if known, an
    adjacency without header); None writes every channel in the long layout (needs timestamps),
    with node names above the adjacency. Returns the folder.
    """
    long = channel is None
    if long and ds.timestamps is None:
        raise ValueError("save_csv_folder: expected timestamps for the long layout, got None")
    if not long:
        check_int("channel", channel, 0, ds.num_channels - 1)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series = io.StringIO()
    writer = csv.writer(series, lineterminator="\n")
    times = [str(t) for t in ds.timestamps] if ds.timestamps is not None else None
    if long:
        writer.writerow(["timestamp", "node", *ds.channel_names])
        for t, step in enumerate(ds.values.tolist()):
            for name, readings in zip(ds.node_names, step, strict=True):
                writer.writerow([times[t], name, *map(_number_text, readings)])
    else:
        writer.writerow((["timestamp"] if times else []) + ds.node_names)
        for t, row in enumerate(ds.values[..., channel].tolist()):
            cells = [_number_text(v) for v in row]
            writer.writerow(([times[t]] if times else []) + cells)
    write_atomic(folder / "series.csv", series.getvalue().encode())
    rows = ds.adjacency.tolist()
    header = [",".join(ds.node_names)] if long else []
    adjacency = "\n".join(header + [",".join(_number_text(v) for v in row) for row in rows]) + "\n"
    write_atomic(folder / "adjacency.csv", adjacency.encode())
    if long and ds.meta.get("holidays"):
        write_atomic(folder / "holidays.csv", ("date\n" + "\n".join(ds.meta["holidays"]) + "\n").encode())
    return folder


def _number_text(value: float) -> str:
    """A float32 value as the shortest text that reads back as the same float32 ("" for NaN)."""
    if math.isnan(value):
        return ""
    x = np.float32(value)
    if value == 0 or 1e-4 <= abs(value) < 1e16:
        return np.format_float_positional(x, unique=True, trim="-")  # 16777216, 0.1, 2.5
    return np.format_float_scientific(x, unique=True, trim="-")  # 3.4e+38, 1e-05
