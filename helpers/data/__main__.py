"""Regenerate the shipped metro dataset: `python -m helpers.data make-metro data/metro [--check]`.

This is what `make data` runs. --check writes nothing and exits 1 unless the file on disk has the
bytes a fresh `make_metro` gives.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from helpers.data.metro import make_metro
from helpers.data.metro_file import METRO_DIR, METRO_FILE, save_metro

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.data",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-metro",
                               help="generate the synthetic metro dataset into a folder")
    make.add_argument("folder", nargs="?", default=str(METRO_DIR))
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--check", action="store_true",
                      help="do not write; exit 1 unless the existing file has the same bytes")
    args = parser.parse_args(argv)
    ds = make_metro(args.seed)
    folder = Path(args.folder)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = save_metro(ds, tmp).read_bytes()
        existing = folder / METRO_FILE
        same = existing.is_file() and existing.read_bytes() == fresh
        verdict = "identical to" if same else "DIFFERS from" if existing.is_file() else "missing; expected"
        print(f"{existing}: {verdict} a fresh make_metro(seed={args.seed}) "
              f"(sha256 {hashlib.sha256(fresh).hexdigest()})")
        return 0 if same else 1
    path = save_metro(ds, folder)
    data = path.read_bytes()
    print(f"wrote {path}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}; {ds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
