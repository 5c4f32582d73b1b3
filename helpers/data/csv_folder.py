"""Your own network as two CSV files: `load_csv_folder` reads them, `save_csv_folder` writes them.

series.csv holds the readings (a header of node names, one row per step, an optional timestamp
column) and adjacency.csv the weights (nodes x nodes, no header). `read_csv_numbers` reads any CSV
table of numbers with errors that name the row and column, as a spreadsheet shows them.
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
                    channel_name: str = "value") -> GraphTimeSeries:
    """Load your own network from a folder with two CSV files.

    series.csv: one header row with the node names, then one row per time step (time x nodes);
        empty or "nan" cells are missing readings. An optional first column named "timestamp"
        holds ISO times (e.g. 2024-05-01T08:15); the step length is then read from it.
    adjacency.csv: nodes x nodes weights, no header, in the order of the series' columns;
        non-negative, larger = closer. Its diagonal is set to zero (self-loops are the graph
        layers' business).
    interval_minutes: minutes per step; needed when series.csv has no timestamp column.
    Returns a `GraphTimeSeries` with values (time, nodes, 1).
    """
    folder = Path(folder)
    series_path, adjacency_path = folder / "series.csv", folder / "adjacency.csv"
    for p in (series_path, adjacency_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"load_csv_folder: expected {p.name} in {folder}, found no such file"
            )
    names, rows, lines = _csv_rows(series_path, header=True)
    timestamps, first_column = None, 1
    if names[0].lower() == "timestamp":
        timestamps, interval_minutes = _timestamp_column(rows, lines, interval_minutes)
        names, rows, first_column = names[1:], [row[1:] for row in rows], 2
    if not names:
        raise ValueError("series.csv: expected a column per node after the timestamp, got none")
    table = _csv_numbers(rows, "series.csv", lines, first_column=first_column)
    if interval_minutes is None:
        raise ValueError(
            "interval_minutes: expected a number of minutes per step (series.csv has no timestamp "
            "column), got None"
        )
    _, adjacency = read_csv_numbers(adjacency_path, header=False)
    if adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError(
            f"adjacency.csv: expected a square nodes x nodes table, got {adjacency.shape}"
        )
    if adjacency.shape[0] != len(names):
        raise ValueError(
            f"adjacency.csv: expected {len(names)} x {len(names)} to match the {len(names)} "
            f"columns of series.csv, got {adjacency.shape[0]} x {adjacency.shape[1]}"
        )
    return GraphTimeSeries(
        values=torch.from_numpy(table.astype(np.float32)),
        adjacency=_adjacency_from_file(adjacency, "adjacency.csv"),
        interval_minutes=interval_minutes,
        node_names=names,
        timestamps=timestamps,
        channel_names=[channel_name],
    )


def _timestamp_column(rows: list[list[str]], lines: list[int],
                      interval_minutes: int | None) -> tuple[np.ndarray, int | None]:
    """The first column of series.csv as times, and the step length they imply (or the one given,
    for a single row)."""
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
    steps = np.unique(np.diff(timestamps).astype(np.int64))
    if len(steps) > 1 or (len(steps) == 1 and steps[0] <= 0):
        raise ValueError(
            f"series.csv: expected evenly spaced increasing timestamps, got steps of "
            f"{steps[:5].tolist()} minutes"
        )
    if len(steps) and interval_minutes not in (None, int(steps[0])):
        raise ValueError(
            f"interval_minutes: expected {int(steps[0])} (the timestamps' step), "
            f"got {interval_minutes}"
        )
    return timestamps, (int(steps[0]) if len(steps) else interval_minutes)


def save_csv_folder(ds: GraphTimeSeries, folder: str | os.PathLike, channel: int = 0) -> Path:
    """Write one channel of `ds` as series.csv (+ timestamp column if known) and adjacency.csv.

    The inverse of `load_csv_folder`; missing readings become empty cells. Returns the folder.
    """
    check_int("channel", channel, 0, ds.num_channels - 1)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series = io.StringIO()
    writer = csv.writer(series, lineterminator="\n")
    times = [str(t) for t in ds.timestamps] if ds.timestamps is not None else None
    writer.writerow((["timestamp"] if times else []) + ds.node_names)
    for t, row in enumerate(ds.values[..., channel].tolist()):
        cells = [_number_text(v) for v in row]
        writer.writerow(([times[t]] if times else []) + cells)
    write_atomic(folder / "series.csv", series.getvalue().encode())
    rows = ds.adjacency.tolist()
    adjacency = "\n".join(",".join(_number_text(v) for v in row) for row in rows) + "\n"
    write_atomic(folder / "adjacency.csv", adjacency.encode())
    return folder


def _number_text(value: float) -> str:
    """A float32 value as the shortest text that reads back as the same float32 ("" for NaN)."""
    if math.isnan(value):
        return ""
    x = np.float32(value)
    if value == 0 or 1e-4 <= abs(value) < 1e16:
        return np.format_float_positional(x, unique=True, trim="-")  # 16777216, 0.1, 2.5
    return np.format_float_scientific(x, unique=True, trim="-")  # 3.4e+38, 1e-05
