"""The workbook as an nbgrader course: cell metadata for every exercise, and a ready course folder.

    python -m helpers.exercises.course tag notebooks          # write nbgrader metadata into the notebooks
    python -m helpers.exercises.course tag notebooks --check  # exit 1 if any notebook is out of step
    python -m helpers.exercises.course build course           # what `make course` runs

An exercise is two code cells: the answer cell (its solution between `### BEGIN SOLUTION` and
`### END SOLUTION`) and, after it, the check cell that calls `check("NN.k", answer)`. `tag` gives
the answer cell nbgrader's "autograded answer" metadata and the check cell "autograder tests"
metadata worth `POINTS`; a failing check raises, so nbgrader scores it 0. Every other cell stays
an ordinary, editable cell: learners are meant to change the teaching cells and rerun them.

`build` lays out an nbgrader course directory (`nbgrader_config.py`, `source/<notebook>/`) and runs
nbgrader's own `generate_assignment` for each notebook that has exercises, so the released
notebooks in `release/` are nbgrader's. Its stub for a removed solution is the one the student
edition uses (`helpers.exercises.editions.STUB`). nbgrader itself is an optional dependency
(`pip install -e ".[course]"`); only `build` needs it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from helpers.exercises.editions import BEGIN, STUB
from helpers.files import write_atomic

POINTS = 1
SCHEMA_VERSION = 3
CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](\d\d\.\d+)["']""")  # group 1: the exercise id "NN.k"
COURSE_ID = "metro-stgcn-workbook"
_CONFIG = '''\
# nbgrader configuration written by `make course` (helpers/exercises/course.py); edit freely.
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
# The stub a removed solution becomes: the same line as in the workbook's student edition.
c.ClearSolutions.code_stub = {{"python": {stub!r}}}
# Teaching cells stay editable; nbgrader locks the check cells and restores them before grading.
c.LockCells.lock_grade_cells = True
c.Execute.timeout = 600
'''


def _answer_metadata(notebook: str, number: str) -> dict:
    return {"grade": False, "grade_id": f"answer_{notebook}_{number}", "locked": False,
            "schema_version": SCHEMA_VERSION, "solution": True, "task": False}


def _check_metadata(notebook: str, number: str) -> dict:
    return {"grade": True, "grade_id": f"check_{notebook}_{number}", "locked": True,
            "points": POINTS, "schema_version": SCHEMA_VERSION, "solution": False, "task": False}


def tag_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """A copy of `nb` whose exercise cells carry nbgrader metadata and whose other cells carry none.

    Each answer cell is paired with the next check cell. Raises ValueError, naming the cell, for
    an answer cell without a check after it, a check without an answer cell before it, a cell
    holding both (nbgrader grades answers and checks as separate cells), or a text cell quoting
    the solution marker (nbgrader would treat it as a solution).
    """
    nb = nbformat.from_dict(nb)
    pending = None  # index of an answer cell still waiting for its check
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("nbgrader", None)
        if cell.cell_type != "code":
            if BEGIN in cell.source:  # nbgrader would cut a "solution" out of the text
                raise ValueError(f"{name} cell {index} is text that quotes '{BEGIN}'; "
                                 f"describe the markers without writing them out")
            continue
        check = CHECK_CALL.search(cell.source)
        if BEGIN in cell.source:
            if check:
                raise ValueError(f"{name} cell {index} holds both a solution and its check; put "
                                 f"check(...) in the next cell so nbgrader can grade it")
            if pending is not None:
                raise ValueError(f"{name} cell {pending} has a solution but no check cell after it")
            pending = index
        elif check:
            if pending is None:
                raise ValueError(f"{name} cell {index} checks exercise {check[1]} but "
                                 f"no solution cell comes before it")
            notebook, number = check[1].split(".")
            nb.cells[pending].metadata["nbgrader"] = _answer_metadata(notebook, number)
            cell.metadata["nbgrader"] = _check_metadata(notebook, number)
            pending = None
    if pending is not None:
        raise ValueError(f"{name} cell {pending} has a solution but no check cell after it")
    return nb


def tag_notebooks(folder: Path, write: bool = True) -> list[Path]:
    """Tag every notebook in `folder`; return those whose metadata changed (written if `write`)."""
    changed = []
    for path in sorted(Path(folder).glob("*.ipynb")):
        before = nbformat.read(path, as_version=4)
        after = tag_notebook(before, path.name)
        if [c.metadata for c in after.cells] != [c.metadata for c in before.cells]:
            changed.append(path)
            if write:
                write_atomic(path, (nbformat.writes(after) + "\n").encode())
    return changed


def exercise_notebooks(folder: Path) -> list[Path]:
    """The notebooks of `folder` that hold at least one exercise, in order."""
    return [p for p in sorted(Path(folder).glob("*.ipynb")) if BEGIN in p.read_text(encoding="utf-8")]


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `nbgrader ARGS` inside the course folder; raise RuntimeError with its output if it fails."""
    bin_dir = str(Path(sys.executable).parent)  # nbgrader finds `alembic` there through PATH
    if shutil.which("nbgrader", path=bin_dir) is None:
        raise RuntimeError('nbgrader is not installed: run pip install -e ".[course]" (or make course)')
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    done = subprocess.run([str(Path(bin_dir) / "nbgrader"), *args], cwd=course, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(['nbgrader', *args])} failed (exit {done.returncode}):\n"
                           f"{done.stdout}{done.stderr}")
    return done


def build_course(course: Path, notebooks: Path, names: list[str] | None = None) -> list[str]:
    """Lay out an nbgrader course in `course` and release one assignment per exercise notebook.

    An assignment is named after its notebook's stem ("03_data"). `names` limits which are built.
    The configuration, gradebook, submissions and feedback of an existing course are left
    untouched; `source/` and `release/` of the built assignments are regenerated from the workbook.
    """
    course, notebooks = Path(course).resolve(), Path(notebooks).resolve()
    if course == notebooks or notebooks in course.parents:
        raise ValueError(f"the course folder must lie outside {notebooks}, got {course}")
    paths = exercise_notebooks(notebooks)
    if names is not None:
        unknown = sorted(set(names) - {p.stem for p in paths})
        if unknown:
            raise ValueError(f"expected notebook names among {[p.stem for p in paths]}, got {unknown}")
        paths = [p for p in paths if p.stem in names]
    course.mkdir(parents=True, exist_ok=True)
    if not (course / "nbgrader_config.py").exists():  # an instructor's edits are kept
        write_atomic(course / "nbgrader_config.py",
                     _CONFIG.format(course_id=COURSE_ID, stub=STUB).encode())
    for path in paths:
        folder = course / "source" / path.stem
        folder.mkdir(parents=True, exist_ok=True)
        nb = tag_notebook(nbformat.read(path, as_version=4), path.name)
        write_atomic(folder / path.name, (nbformat.writes(nb) + "\n").encode())
        nbgrader(course, "generate_assignment", path.stem, "--force")
    return [p.stem for p in paths]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    tag = commands.add_parser("tag", help="write nbgrader metadata into the notebooks of a folder")
    tag.add_argument("notebooks", type=Path)
    tag.add_argument("--check", action="store_true", help="only report; exit 1 if out of step")
    build = commands.add_parser("build", help="lay out an nbgrader course and release assignments")
    build.add_argument("course", type=Path)
    build.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    build.add_argument("--only", nargs="+", metavar="NAME", help="notebook names, e.g. 01_tensors")
    args = parser.parse_args(argv)
    try:
        if args.command == "tag":
            changed = tag_notebooks(args.notebooks, write=not args.check)
            for path in changed:
                print(f"{'out of step' if args.check else 'tagged'}: {path}")
            return 1 if (args.check and changed) else 0
        for name in build_course(args.course, args.notebooks, args.only):
            print(f"released {args.course / 'release' / name}")
        return 0
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
