"""Property-based tests (Hypothesis) of the CSV reader and writer: what is written is what is read.

Generated tables mix numbers of every width and spelling (small integers, long decimals, exponents,
padding), empty and "NA"/"nan"/"null" cells, header or not, LF or CRLF, with or without a byte-order
mark; `read_csv_numbers` must return exactly the float32 values written, NaN where a cell was
missing, and a bad cell must be reported at its row (file line) and column.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.data import GraphTimeSeries, load_csv_folder, read_csv_numbers, save_csv_folder

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MISSING = ["", " ", "NA", "na", "nan", "NaN", "NULL", "null"]

float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)
small_ints = st.integers(0, 9).map(float)  # one-character cells: the width that once truncated "nan"
numbers = st.one_of(small_ints, st.integers(-10**6, 10**6).map(float), float32s)


@st.composite
def cells(draw) -> tuple[str, float]:
    """(the text of a cell, the float32 value it must read as; NaN for a missing cell)."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(MISSING)), math.nan
    value = float(np.float32(draw(numbers)))
    spelling = draw(st.sampled_from(["shortest", "g9", "e", "repr", "padded", "plus"]))
    text = {
        "shortest": str(np.float32(value)),
        "g9": format(value, ".9g"),           # 9 significant digits identify a float32
        "e": format(value, ".8e"),
        "repr": repr(value),                  # the float64 of the float32 value, exactly
        "padded": f"  {np.float32(value)} ",  # spaces around a number are allowed
        "plus": f"+{np.float32(value)}" if math.copysign(1, value) > 0 else str(np.float32(value)),
    }[spelling]
    return text, value


@st.composite
def tables(draw, max_rows: int = 6, max_columns: int = 5):
    """(rows of cell texts, expected float64 array) with 1..max_rows rows and 1..max_columns columns."""
    rows, columns = draw(st.integers(1, max_rows)), draw(st.integers(1, max_columns))
    drawn = [[draw(cells()) for _ in range(columns)] for _ in range(rows)]
    texts = [[text for text, _ in row] for row in drawn]
    expected = np.array([[value for _, value in row] for row in drawn], dtype=np.float64)
    return texts, expected


def csv_text(rows: list[list[str]], header: list[str] | None, lineterminator: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=lineterminator)
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shapes and float32 values (the workbook's dtype), NaN in the same places."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


@SETTINGS
@given(table=tables(), header=st.booleans(), lineterminator=st.sampled_from(["\n", "\r\n"]),
       bom=st.booleans())
def test_read_csv_numbers_reads_what_was_written(table, header, lineterminator, bom):
    rows, expected = table
    names = [f"n{c}" for c in range(expected.shape[1])] if header else None
    text = csv_text(rows, names, lineterminator)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
        got_names, got = read_csv_numbers(path, header=header)
    assert got_names == names
    assert got.dtype == np.float64
    assert same(got, expected), (text, got, expected)


@SETTINGS
@given(table=tables(), data=st.data())
def test_a_bad_cell_is_reported_at_its_row_and_column(table, data):
    rows, _ = table
    r, c = data.draw(st.integers(0, len(rows) - 1)), data.draw(st.integers(0, len(rows[0]) - 1))
    bad, wanted = data.draw(st.sampled_from([
        ("x", "a number"), ("1,5", "a number"), ("1_000", "a number"), ("--1", "a number"),
        ("inf", "a finite number"), ("-Infinity", "a finite number"), ("1e39", "a finite number"),
        ("-3.5e38", "a finite number"), ("3.4028236e38", "a finite number"), ("1e300", "a finite number"),
    ]))
    rows[r][c] = bad
    text = csv_text(rows, [f"n{k}" for k in range(len(rows[0]))], "\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_text(text)
        try:
            read_csv_numbers(path, header=True)
        except ValueError as exc:
            message = str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
    assert message.startswith(f"t.csv: expected {wanted}")
    assert f"in row {r + 2}, column {c + 1}, got {bad!r}" in message and "\n" not in message


@SETTINGS
@given(table=tables(max_rows=5, max_columns=4), data=st.data())
def test_a_row_of_another_width_is_reported_at_its_line(table, data):
    rows, _ = table
    columns = len(rows[0])
    r = data.draw(st.integers(0, len(rows) - 1))
    width = data.draw(st.integers(1, columns + 2).filter(lambda w: w != columns))
    rows[r] = (rows[r] * 3)[:width]
    blank_lines = data.draw(st.integers(0, 2))  # skipped, but counted: rows are the file's lines
    header = ",".join(f"n{k}" for k in range(columns)) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_text(header + "\n" * blank_lines + csv_text(rows, None, "\n"))
        try:
            read_csv_numbers(path, header=True)
        except ValueError as exc:
            message = str(exc)
        else:
            raise AssertionError("a ragged table was accepted")
    assert message == f"t.csv: expected {columns} cells in every row, got {width} in row {r + 2 + blank_lines}"


node_names = st.lists(
    st.text(st.sampled_from("abcXYZ09 ,\"'é-_"), min_size=1, max_size=6).map(str.strip).filter(
        lambda n: n and n.lower() != "timestamp"),
    min_size=1, max_size=4, unique=True,
)


@st.composite
def datasets(draw) -> GraphTimeSeries:
    names = draw(node_names)
    nodes, steps = len(names), draw(st.integers(2, 6))
    values = [[draw(st.one_of(st.just(math.nan), numbers)) for _ in range(nodes)] for _ in range(steps)]
    weights = st.floats(0, 1e6, width=32, allow_nan=False)
    adjacency = torch.tensor([[0.0 if i == j else draw(weights) for j in range(nodes)] for i in range(nodes)])
    timestamps = None
    if draw(st.booleans()):
        step = draw(st.integers(1, 240))
        timestamps = np.datetime64("2024-05-01T00:00") + np.arange(steps) * np.timedelta64(step, "m")
    return GraphTimeSeries(torch.tensor(values, dtype=torch.float32), adjacency,
                           draw(st.integers(1, 240)) if timestamps is None else step, names,
                           timestamps=timestamps)


@SETTINGS
@given(ds=datasets())
def test_save_csv_folder_then_load_csv_folder_gives_the_same_dataset(ds):
    with tempfile.TemporaryDirectory() as tmp:
        save_csv_folder(ds, tmp)
        back = load_csv_folder(tmp, None if ds.timestamps is not None else ds.interval_minutes)
    assert back.node_names == ds.node_names and back.interval_minutes == ds.interval_minutes
    assert torch.equal(back.values.nan_to_num(-7.0), ds.values.nan_to_num(-7.0))  # exact, NaN kept
    assert torch.equal(torch.isnan(back.values), torch.isnan(ds.values))
    assert torch.equal(back.adjacency, ds.adjacency)
    assert (back.timestamps is None) == (ds.timestamps is None)
    if ds.timestamps is not None:
        assert np.array_equal(back.timestamps, ds.timestamps)
