"""Los-loop, a real benchmark: traffic speeds of 207 loop detectors on Los Angeles highways.

`load_los_loop` reads los_speed.csv and los_adj.csv from `LOS_LOOP_DIR` (data/los-loop/), first
downloading a missing file from `LOS_LOOP_URLS`; every file must match its `LOS_LOOP_SHA256`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from helpers.data.csv_folder import _adjacency_from_file, read_csv_numbers
from helpers.data.series import DATA_DIR, GraphTimeSeries
from helpers.files import temporary_beside

#: Where load_los_loop downloads from: the T-GCN authors' public repository, then its older layout.
LOS_LOOP_URLS = (
    "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/T-GCN/T-GCN-PyTorch/data/{name}",
    "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/data/{name}",
)
LOS_LOOP_SHA256 = {
    "los_speed.csv": "7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4",
    "los_adj.csv": "7a6eb41e10677992b5af50f5ab187c6c05c5c3a92cb973950cfddbf857361e76",
}
LOS_LOOP_DIR = DATA_DIR / "los-loop"
_LOS_LOOP_START = "2012-03-01T00:00"  # "Mar. 1 to Mar. 7, 2012" (T-GCN paper, Zhao et al. 2020)


def load_los_loop(
    root: str | os.PathLike | None = None,
    download: bool = True,
    timeout: float = 30,
    urls: Sequence[str] = LOS_LOOP_URLS,
) -> GraphTimeSeries:
    """Load Los-loop: real traffic speeds (mph) of 207 loop detectors on Los Angeles highways.

    2,016 five-minute steps (one week, March 2012) and a 207 x 207 adjacency whose weights lie in
    (0, 1] (the file stores ones on the diagonal; they are set to zero here, as for every dataset).
    root: the folder holding los_speed.csv and los_adj.csv (default data/los-loop/). Missing files
    are downloaded (unless download=False) from `urls` with a `timeout` in seconds, checked against
    their SHA-256 and written atomically; every file, found or downloaded, must match its checksum.
    A `root` that does not exist is created for the download and removed again (with any parent
    folders it needed) if the download fails, so a mistyped path leaves nothing behind.
    Returns values (2016, 207, 1), channel "speed"; the speeds have no gaps.
    """
    root = Path(root) if root is not None else LOS_LOOP_DIR
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(
            f"root (--data-root): expected a folder holding los_speed.csv and los_adj.csv, "
            f"got the file {root}"
        )
    created = [p for p in (root, *root.parents) if not p.exists()]  # deepest first
    try:
        for name, sha256 in LOS_LOOP_SHA256.items():
            _fetch_and_verify(root, name, sha256, download, urls, timeout)
    except BaseException as exc:
        for folder in created:  # a mistyped root leaves no empty folders behind
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
        if created and isinstance(exc, (OSError, ValueError)) and exc.args:
            note = f" ({root} did not exist before: is the path mistyped?)"
            raise type(exc)(str(exc) + note) from None
        raise
    names, speed = read_csv_numbers(root / "los_speed.csv", header=True)
    _, adjacency = read_csv_numbers(root / "los_adj.csv", header=False)
    steps = speed.shape[0]
    return GraphTimeSeries(
        values=torch.from_numpy(speed.astype(np.float32)),
        adjacency=_adjacency_from_file(adjacency, "los_adj.csv"),
        interval_minutes=5,
        node_names=names,
        timestamps=np.datetime64(_LOS_LOOP_START) + np.arange(steps) * np.timedelta64(5, "m"),
        channel_names=["speed"],
        meta={
            "name": "Los-loop (real)",
            "synthetic": False,
            "unit": "mph",
            "source": "T-GCN (Zhao et al., IEEE T-ITS 2020), github.com/lehaifeng/T-GCN",
            "self_loops_removed": True,
        },
    )


def _fetch_and_verify(root: Path, name: str, sha256: str, download: bool, urls: Sequence[str],
                      timeout: float) -> None:
    """Make sure `root / name` exists (downloading it if allowed) and has the expected SHA-256."""
    path = root / name
    if not path.is_file():
        if not download:
            problem = f"{name} is missing and download=False"
            raise FileNotFoundError(_los_loop_help(root, problem))
        _download(name, path, sha256, urls, timeout)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        problem = f"{name}: expected SHA-256 {sha256}, got {digest}"
        raise ValueError(_los_loop_help(root, problem))


def _los_loop_help(root: Path, problem: str) -> str:
    return (
        f"{problem}. Put los_speed.csv and los_adj.csv by hand in {root} (from the data/ folder of "
        f"the T-GCN repository, https://github.com/lehaifeng/T-GCN) or pass root= to the folder "
        f"holding them."
    )


def _download(name: str, path: Path, sha256: str, urls: Sequence[str], timeout: float) -> None:
    """Fetch `name` from the first of `urls` that serves the right bytes; os.replace it into `path`.

    Each attempt writes to a temporary file beside `path` (`helpers.files.temporary_beside`), fsyncs
    it and renames it into place only when its checksum is right, so `path` is never a partial file.
    A failed or interrupted (exception, Ctrl-C) attempt deletes its temporary file; a killed one can
    leave it, and the next download of `name` removes it. A wrong checksum raises ValueError, an
    unreachable source ConnectionError, once every URL has been tried.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mismatches, errors = [], []
    for template in urls:
        url = template.format(name=name)
        handle, temp = temporary_beside(path)
        try:
            digest = hashlib.sha256()
            with (os.fdopen(handle, "wb") as out,
                  urllib.request.urlopen(url, timeout=timeout) as response):
                while chunk := response.read(1 << 16):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() == sha256:
                os.chmod(temp, 0o644)
                os.replace(temp, path)
                return
            mismatches.append(f"{url}: expected SHA-256 {sha256}, got {digest.hexdigest()}")
        except OSError as exc:  # URLError, HTTPError and timeouts are all OSErrors
            errors.append(f"{url}: {exc}")
        finally:
            temp.unlink(missing_ok=True)  # gone already after a successful os.replace
    if mismatches:
        raise ValueError(_los_loop_help(path.parent, "; ".join(mismatches)))
    problem = f"could not download {name} ({'; '.join(errors)})"
    raise ConnectionError(_los_loop_help(path.parent, problem))
