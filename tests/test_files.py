"""Atomic writes: no half-written file, and no temporary file left for good by a killed writer."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import helpers.files as files
from helpers.data.los_loop import _download
from helpers.files import remove_stale_temporaries, temporary_beside, write_atomic


def dead_pid() -> int:
    """The id of a process that has ended (reused only after the id space wraps round)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL")
def test_a_killed_writer_leaves_a_temporary_file_that_the_next_write_removes(tmp_path):
    target = tmp_path / "metrics.json"
    code = ("import os, signal, sys; from helpers.files import temporary_beside; "
            "fd, temp = temporary_beside(sys.argv[1]); os.write(fd, b'half'); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    killed = subprocess.run([sys.executable, "-c", code, str(target)], check=False)
    assert killed.returncode == -signal.SIGKILL
    assert len(hidden(tmp_path)) == 1 and not target.exists()  # the leftover: never the target
    write_atomic(target, b"{}\n")
    assert target.read_bytes() == b"{}\n" and hidden(tmp_path) == []


def test_only_stale_temporaries_of_the_same_target_are_removed(tmp_path):
    target = tmp_path / "checkpoint.pt"
    dead, alive = f".checkpoint.pt.{dead_pid()}-abc_12.tmp", f".checkpoint.pt.{os.getppid()}-x1.tmp"
    old_unnamed, new_unnamed = ".checkpoint.pt.k3j4h5g6.tmp", ".checkpoint.pt.a1b2c3d4.tmp"
    other_target, user_file = ".metrics.json.1-ab.tmp", ".checkpoint.pt.notes.txt"
    for name in (dead, alive, old_unnamed, new_unnamed, other_target, user_file):
        (tmp_path / name).write_bytes(b"x")
    hour_ago = time.time() - files.STALE_AFTER_SECONDS - 60
    os.utime(tmp_path / old_unnamed, (hour_ago, hour_ago))
    assert sorted(p.name for p in remove_stale_temporaries(target)) == sorted([dead, old_unnamed])
    write_atomic(target, b"weights")  # a concurrent writer's file (alive) survives the write too
    assert hidden(tmp_path) == sorted([alive, new_unnamed, other_target, user_file])
    assert target.read_bytes() == b"weights"


def test_the_bytes_are_synced_before_the_rename_and_nothing_remains_after_an_error(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    write_atomic(tmp_path / "a.bin", b"123")
    assert calls[:2] == ["fsync", "replace"]

    def fail(a, b):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(tmp_path / "a.bin", b"456")
    assert (tmp_path / "a.bin").read_bytes() == b"123" and hidden(tmp_path) == []


def test_temporary_names_carry_the_writer_pid(tmp_path):
    handle, temp = temporary_beside(tmp_path / "x.csv")
    os.close(handle)
    assert temp.parent == tmp_path and temp.name.startswith(f".x.csv.{os.getpid()}-")
    assert temp.name.endswith(".tmp") and remove_stale_temporaries(tmp_path / "x.csv") == []


def test_a_download_removes_the_leftover_of_a_killed_download(tmp_path):
    source = tmp_path / "served" / "los_adj.csv"
    source.parent.mkdir()
    source.write_bytes(b"0,1\n1,0\n")
    folder = tmp_path / "los-loop"
    folder.mkdir()
    leftover = folder / f".los_adj.csv.{dead_pid()}-q1w2e3r4.tmp"
    leftover.write_bytes(b"partial download")
    sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
    _download("los_adj.csv", folder / "los_adj.csv", sha256, [source.parent.as_uri() + "/{name}"], 5)
    assert (folder / "los_adj.csv").read_bytes() == source.read_bytes()
    assert hidden(folder) == []
