"""The metro file: `save_metro` writes it (the same bytes every time), `load_metro` reads it.

The file (`METRO_DIR / METRO_FILE`, i.e. data/metro/metro.npz) is a zip of .npy arrays plus
`meta.json`; `python -m helpers.data make-metro data/metro` regenerates it from `make_metro`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from helpers.data.series import DATA_DIR, GraphTimeSeries
from helpers.files import write_atomic

METRO_DIR = DATA_DIR / "metro"
METRO_FILE = "metro.npz"
#: SHA-256 of the shipped data/metro/metro.npz, as in its datasheet (data/metro/README.md).
_METRO_SHA256 = "eec51f2c1aa6c40f22437484a68e7a3c16cf627d98cdfca47efc2ba41a315f8b"
_FORMAT = "metro-npz-1"
_META_TENSORS = ("travel_minutes",)  # meta entries stored as arrays, not JSON


def save_metro(ds: GraphTimeSeries, folder: str | os.PathLike) -> Path:
    """Write `ds` to `folder/metro.npz` atomically and reproducibly; return the file's path.

    The file is a zip of .npy arrays plus `meta.json`: counts as uint16 (time, nodes, channels)
    with a boolean `missing` mask, the adjacency, coordinates, timestamps (minutes since 1970) and
    the meta entries. Every zip entry gets a fixed date, so the same dataset gives the same bytes.
    values must be whole numbers in [0, 65535] where not missing.
    """
    missing = torch.isnan(ds.values)
    _check_counts(ds.values[~missing])
    if ds.timestamps is None or ds.coords is None:
        raise ValueError("save_metro: expected a dataset with timestamps and coords, got None")
    header = {
        "format": _FORMAT,
        "interval_minutes": ds.interval_minutes,
        "node_names": ds.node_names,
        "channel_names": ds.channel_names,
        "meta": {k: v for k, v in ds.meta.items() if k not in _META_TENSORS},
    }
    arrays = {
        "counts": ds.values.nan_to_num(0.0).numpy().astype(np.uint16),
        "missing": missing.numpy(),
        "adjacency": ds.adjacency.numpy(),
        "coords": ds.coords.numpy(),
        "timestamps": ds.timestamps.astype("datetime64[m]").astype(np.int64),
    }
    for key in _META_TENSORS:
        if key in ds.meta:
            arrays[key] = np.asarray(ds.meta[key], dtype=np.float32)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            npy = io.BytesIO()
            array = np.ascontiguousarray(array)
            np.lib.format.write_array(npy, array, version=(1, 0), allow_pickle=False)
            _write_zip_entry(archive, f"{name}.npy", npy.getvalue())
        _write_zip_entry(archive, "meta.json", json.dumps(header, indent=1).encode() + b"\n")
    return write_atomic(folder / METRO_FILE, buffer.getvalue())


def _check_counts(observed: torch.Tensor) -> None:
    """ValueError unless the observed values are whole numbers that fit a uint16."""
    if not observed.numel():
        return
    fractions = (observed != observed.round()).any()
    if fractions or observed.min() < 0 or observed.max() > np.iinfo(np.uint16).max:
        raise ValueError(
            f"save_metro: expected whole counts in [0, 65535], got values from "
            f"{observed.min().item()} to {observed.max().item()}"
            f"{' with fractions' if fractions else ''}"
        )


def _write_zip_entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, whatever the platform, so the bytes do not depend on it
    info.external_attr = 0o644 << 16
    archive.writestr(info, data, compresslevel=9)


def _read_npy(data: bytes) -> np.ndarray:
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


def load_metro(path: str | os.PathLike | None = None) -> GraphTimeSeries:
    """Load the shipped synthetic metro dataset (or a file written by `save_metro`).

    path: the file or its folder; default `data/metro/` of this repository.
    Returns values (4032, 51, 2) = (time, stations, [inflow, outflow]), NaN where missing; see
    `make_metro` and data/metro/README.md.
    The file is checked before it is used: a truncated or damaged file (every zip entry carries a
    CRC-32) or a git-LFS pointer raises ValueError with one line saying how to regenerate it. The
    shipped file is also compared with `_METRO_SHA256`, the datasheet's checksum; if only that
    differs (e.g. regenerated with another NumPy or zlib) but the contents read back intact, a
    warning says so.
    """
    path = Path(path) if path is not None else METRO_DIR
    if path.is_dir():
        path = path / METRO_FILE
    shipped = path.resolve() == (METRO_DIR / METRO_FILE).resolve()
    remedy = ("run `make data` to regenerate it" if shipped else
              f"regenerate it with `python -m helpers.data make-metro {path.parent}`")
    if not path.is_file():
        raise FileNotFoundError(
            f"load_metro: expected the metro file at {path}; regenerate it with "
            f"`python -m helpers.data make-metro {path.parent}` or pass path="
        )
    data = path.read_bytes()
    if data.startswith(b"version https://git-lfs"):
        raise ValueError(f"load_metro: expected the metro data in {path}, got a git-LFS pointer "
                         f"file; fetch it with `git lfs pull` or {remedy}")
    digest = hashlib.sha256(data).hexdigest()
    checksum = f"expected SHA-256 {_METRO_SHA256}, got {digest}; " if shipped else ""
    try:
        ds = _parse_metro(data)
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, IndexError, TypeError, ValueError,
            NotImplementedError, RuntimeError, OverflowError, OSError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise ValueError(f"load_metro: {path} is damaged or truncated ({reason}); {checksum}"
                         f"{remedy}") from None
    if shipped and digest != _METRO_SHA256:
        warnings.warn(f"load_metro: {path}: {checksum}its contents read back intact (regenerated "
                      f"with another NumPy or zlib?); if in doubt, {remedy}", stacklevel=2)
    return ds


def _parse_metro(data: bytes) -> GraphTimeSeries:
    """The dataset in the bytes of a metro file; ValueError, KeyError, zipfile.BadZipFile, ...
    when they are not one (zipfile checks each entry's CRC-32 as it reads it)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        header = json.loads(archive.read("meta.json"))
        arrays = {
            name.removesuffix(".npy"): _read_npy(archive.read(name))
            for name in archive.namelist()
            if name.endswith(".npy")
        }
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        found = header.get("format") if isinstance(header, dict) else header
        raise ValueError(f"expected format {_FORMAT!r}, got {found!r}")
    values = arrays["counts"].astype(np.float32)
    values[arrays["missing"]] = np.nan
    meta = header["meta"]
    for key in _META_TENSORS:
        if key in arrays:
            meta[key] = torch.from_numpy(arrays[key])
    return GraphTimeSeries(
        values=torch.from_numpy(values),
        adjacency=torch.from_numpy(arrays["adjacency"]),
        interval_minutes=header["interval_minutes"],
        node_names=header["node_names"],
        coords=torch.from_numpy(arrays["coords"]),
        timestamps=arrays["timestamps"].astype("datetime64[m]"),
        channel_names=header["channel_names"],
        meta=meta,
    )
