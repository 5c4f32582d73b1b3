"""Student editions: the notebooks with every solution replaced by a stub and outputs cleared.

    python -m helpers.exercises.editions notebooks student     # what `make student` runs

A solution region is the lines between `### BEGIN SOLUTION` and `### END SOLUTION` (markers
included); it becomes `raise NotImplementedError(...)` at the indentation of the first marker.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from helpers.files import write_atomic

__all__ = ["BEGIN", "END", "STUB", "strip_solutions", "student_notebook", "make_student_editions",
           "main"]

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


def make_student_editions(source_dir: Path, target_dir: Path) -> list[Path]:
    """Write the student edition of every `*.ipynb` in `source_dir` into `target_dir`."""
    source_dir, target_dir = Path(source_dir), Path(target_dir)
    if source_dir.resolve() == target_dir.resolve():
        raise ValueError(f"the student folder must differ from the notebook folder, "
                         f"got {target_dir} twice")
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source_dir.glob("*.ipynb")):
        out = target_dir / path.name
        student = student_notebook(nbformat.read(path, as_version=4))
        write_atomic(out, nbformat.writes(student).encode())
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder of full notebooks")
    parser.add_argument("target", type=Path, help="folder to write student editions into")
    args = parser.parse_args(argv)
    for path in make_student_editions(args.source, args.target):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
