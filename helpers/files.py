"""Files that are never half-written: `write_atomic` for any bytes, and the checkpoints of a training run.

A file is first written to a temporary file beside its target (`.NAME.PID-RANDOM.tmp`, hidden, with
the writer's process id), flushed to disk (fsync), then renamed over the target (`os.replace`, atomic on
one file system). What is promised: an exception, an interrupt or a full disk leaves the previous file
(or none), never a truncated one, and removes the temporary file; a KILL (or a power cut) can leave the
temporary file behind, but never a half-written target, and the next write to the same target removes
it (`remove_stale_temporaries`: those whose writer process has ended, or over an hour old).
Checkpoints are read with `torch.load(weights_only=True)`: tensors and plain Python values only, so a file
from someone else cannot run code on your machine.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
from pathlib import Path

import torch

__all__ = ["write_atomic", "temporary_beside", "remove_stale_temporaries", "CHECKPOINT_FORMAT",
           "save_checkpoint", "load_checkpoint"]

#: The "format" entry of every checkpoint the workbook writes.
CHECKPOINT_FORMAT = "metro-stgcn-checkpoint-1"
#: A temporary file this old is stale even when its writer's process id is in use (a reused id, a
#: writer on another machine sharing the folder, or a name without an id from an older workbook).
STALE_AFTER_SECONDS = 3600.0


def _writer_running(pid: int) -> bool:
    """Whether process `pid` exists on this machine (True when that cannot be told, e.g. Windows)."""
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate it on Windows; rely on the age alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed writer left beside `path`; returns the removed paths.

    Only files named like the workbook's own (`.NAME.*.tmp`, NAME = path's name) are looked at, and
    of those only the stale ones: the process id in the name no longer runs on this machine, or the
    file has not changed for `STALE_AFTER_SECONDS`. A concurrent writer's file is left alone.
    """
    path = Path(path)
    own = re.compile(re.escape(f".{path.name}.") + r"(?:(\d+)-)?[a-z0-9_]+\.tmp")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:  # no folder (yet): nothing to clean
        return removed
    for entry in entries:
        match = own.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            old = time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_SECONDS
            if old or (match[1] is not None and not _writer_running(int(match[1]))):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # removed meanwhile by another writer, or not ours to remove
            continue
    return removed


def temporary_beside(path: str | os.PathLike) -> tuple[int, Path]:
    """A new, empty temporary file for `path`, in its folder: (open file descriptor, its path).

    Named `.NAME.PID-RANDOM.tmp`; stale temporaries of earlier, killed writers are removed first.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-",
                                    suffix=".tmp")
    return handle, Path(temp)


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename in it survives a power cut (not possible on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to a temporary file beside `path`, fsync it, then rename it over `path`; returns
    the path.

    On an exception (including KeyboardInterrupt) the temporary file is removed and `path` is
    untouched. After a kill the temporary file can remain; this function removes such leftovers of
    earlier writes to `path` before it writes (see the module docstring).
    """
    path = Path(path)
    handle, temp = temporary_beside(path)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())  # the bytes are on disk before the name points at them
        os.chmod(temp, 0o644)  # mkstemp makes it private; a data file is readable by all
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)
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
