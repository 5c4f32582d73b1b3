"""Student editions: the notebooks with every solution replaced by a stub and outputs cleared.

    python -m helpers.exercises.editions notebooks student     # what `make lab` and `make student` run

A solution region is the lines between `### BEGIN SOLUTION` and `### END SOLUTION` (markers
included); it becomes `raise NotImplementedError(...)` at the indentation of the first marker,
the same stub nbgrader writes for the course (`helpers/exercises/course.py` configures it so).
This module stays beside nbgrader because learners get their edition without installing
nbgrader (a database, a server extension and a JupyterLab extension they do not need).

Writing never loses a learner's work: it writes a notebook that is missing, and refreshes one
the learner has not changed since it was written (the hashes are kept in `.editions.json`); a
notebook the learner has changed is kept as it is, with a note when the workbook's version moved on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import nbformat

from helpers.files import write_atomic

__all__ = ["BEGIN", "END", "STUB", "MANIFEST", "strip_solutions", "student_notebook",
           "sync_student_editions", "main"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_REGION = re.compile(rf"^([ \t]*){re.escape(BEGIN)}[^\n]*\n.*?^[ \t]*{re.escape(END)}[^\n]*$",
                     re.S | re.M)
STUB = 'raise NotImplementedError("Exercise: replace this line with your solution")'


def strip_solutions(source: str) -> str:
    """Replace each solution region of a cell's source with an indented NotImplementedError stub."""
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced solution markers: {source.count(BEGIN)} '{BEGIN}' vs "
                         f"{source.count(END)} '{END}' in cell:\n{source}")
    return _REGION.sub(lambda m: m.group(1) + STUB, source)


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` with solutions stubbed and every output and execution count cleared."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source)
            cell.outputs, cell.execution_count = [], None
    return nb


MANIFEST = ".editions.json"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sync_student_editions(source_dir: Path, target_dir: Path) -> list[str]:
    """Bring `target_dir` in step with `source_dir` without touching a notebook the learner changed.

    Returns one line per notebook written or kept back, for the learner to read.
    """
    source_dir, target_dir = Path(source_dir), Path(target_dir)
    if source_dir.resolve() == target_dir.resolve():
        raise ValueError(f"the student folder must differ from the notebook folder, "
                         f"got {target_dir} twice")
    target_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = target_dir / MANIFEST
    written = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    report = []
    for path in sorted(source_dir.glob("*.ipynb")):
        out = target_dir / path.name
        fresh = nbformat.writes(student_notebook(nbformat.read(path, as_version=4))).encode()
        if not out.exists():
            report.append(f"wrote {out}")
        elif _digest(out.read_bytes()) == written.get(path.name):  # untouched since written
            if written[path.name] == _digest(fresh):
                continue
            report.append(f"updated {out} (you had not changed it)")
        else:
            if written.get(path.name) != _digest(fresh):
                report.append(f"kept your {out}: the workbook's version changed; rename yours and "
                              f"run this again to get the new one")
            continue
        write_atomic(out, fresh)
        written[path.name] = _digest(fresh)
    write_atomic(manifest_path, json.dumps(written, indent=1, sort_keys=True).encode())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder of full notebooks")
    parser.add_argument("target", type=Path, help="folder to write student editions into")
    args = parser.parse_args(argv)
    report = sync_student_editions(args.source, args.target)
    print("\n".join(report) if report else f"{args.target}: every notebook is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
