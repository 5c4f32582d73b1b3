"""Files that are never half-written: `write_atomic` for any bytes, and the checkpoints of a training run.

A file is first written to a temporary file beside its target, then renamed over it (`os.replace`, atomic
on one file system): an interrupt or a full disk leaves the previous file (or none), never a truncated one.
Checkpoints are read with `torch.load(weights_only=True)`: tensors and plain Python values only, so a file
from someone else cannot run code on your machine.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import torch

__all__ = ["write_atomic", "CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint"]

#: The "format" entry of every checkpoint the workbook writes.
CHECKPOINT_FORMAT = "metro-stgcn-checkpoint-1"


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to a temporary file beside `path`, then rename it over `path`; returns the path.

    On an exception (including KeyboardInterrupt) the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temp, 0o644)  # mkstemp makes it private; a data file is readable by all
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(obj: dict, path: str | os.PathLike) -> Path:
    """Write `obj` with torch.save atomically (`write_atomic`), creating the folder if needed; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by `save_checkpoint` with torch.load(weights_only=True).

    Raises FileNotFoundError when there is no file, ValueError when it is not a workbook checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: expected a file at {path}, found none")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(f"checkpoint {path}: could not be read with weights_only=True ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"checkpoint {path}: expected format {CHECKPOINT_FORMAT!r}, got {found!r}")
    return ckpt
