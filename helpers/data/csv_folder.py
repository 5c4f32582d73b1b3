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


def read_csv_numbers(path: str | os.PathLike, *,
                     header: bool) -> tuple[list[str] | None, np.ndarray]:
    """Read a CSV table of numbers; return (header cells or None, float64 array (rows, columns)).

    An empty cell or nan/NA/null (any case) is a missing value (NaN). A row with a different number
    of cells than the first row, or a cell that is not a number, raises ValueError naming the row
    (counted from 1 at the top of the file, as a spreadsheet shows it), the column and what was
    found.
    """
    names, rows = _csv_rows(Path(path), header)
    return names, _csv_numbers(rows, Path(path).name, first_row=2 if header else 1)


def _csv_rows(path: Path, header: bool) -> tuple[list[str] | None, list[list[str]]]:
    """The rows of a CSV file (blank lines skipped), all as wide as the first; header split off."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [row for row in csv.reader(f) if row]
    if header and not rows:
        raise ValueError(f"{path.name}: expected a header row, got an empty file")
    if len(rows) <= header:
        raise ValueError(f"{path.name}: expected at least one row of numbers, got none")
    for r, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise ValueError(
                f"{path.name}: expected {len(rows[0])} cells in every row, "
                f"got {len(row)} in row {r + 1}"
            )
    return ([cell.strip() for cell in rows[0]] if header else None), rows[header:]


def _csv_numbers(rows: list[list[str]], source: str, first_row: int,
                 first_column: int = 1) -> np.ndarray:
    """Convert CSV cells to float64 (rows, columns); name the first cell that is not a number."""
    text = np.char.strip(np.array(rows, dtype=str))
    text[text == ""] = "nan"
    try:
        return text.astype(np.float64)  # the fast path: numbers, empty cells and nan
    except ValueError:
        text[np.isin(np.char.lower(text), list(_MISSING_TEXT))] = "nan"
    try:
        return text.astype(np.float64)
    except ValueError:
        for r, row in enumerate(text):
            for c, cell in enumerate(row):
                try:
                    float(cell)
                except ValueError:
                    raise ValueError(
                        f"{source}: expected a number in row {r + first_row}, "
                        f"column {c + first_column}, got {str(cell)!r}"
                    ) from None
        raise


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
    names, rows = _csv_rows(series_path, header=True)
    timestamps, first_column = None, 1
    if names[0].lower() == "timestamp":
        timestamps, interval_minutes = _timestamp_column(rows, interval_minutes)
        names, rows, first_column = names[1:], [row[1:] for row in rows], 2
    table = _csv_numbers(rows, "series.csv", first_row=2, first_column=first_column)
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


def _timestamp_column(rows: list[list[str]],
                      interval_minutes: int | None) -> tuple[np.ndarray, int | None]:
    """The first column of series.csv as times, and the step length they imply (or the one given,
    for a single row)."""
    try:
        timestamps = np.array([row[0].strip() for row in rows], dtype="datetime64[m]")
    except ValueError as exc:
        raise ValueError(
            f"series.csv: expected ISO times in the timestamp column, got {exc}"
        ) from None
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
        cells = ["" if math.isnan(v) else format(v, ".7g") for v in row]
        writer.writerow(([times[t]] if times else []) + cells)
    write_atomic(folder / "series.csv", series.getvalue().encode())
    rows = ds.adjacency.tolist()
    adjacency = "\n".join(",".join(format(v, ".7g") for v in row) for row in rows) + "\n"
    write_atomic(folder / "adjacency.csv", adjacency.encode())
    return folder
