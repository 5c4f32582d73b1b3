"""What every committed notebook must satisfy; used by tests/test_notebooks.py."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

from helpers.exercises.course import CHECK_CALL

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
MAX_BYTES = 1_000_000


def notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def python_source(source: str) -> str:
    """A cell's source with IPython magics and shell escapes turned into comments, so `ast` can parse it."""
    return "\n".join("# " + line if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def execution_problems(path: Path) -> list[str]:
    """Unexecuted cells, out-of-order counts, stored errors, oversize: each problem as a sentence."""
    problems = []
    size = path.stat().st_size
    if size > MAX_BYTES:
        problems.append(f"{path.name} is {size:,} bytes, over the {MAX_BYTES:,}-byte limit (make figures smaller)")
    nb = nbformat.read(path, as_version=4)
    counts = [c.execution_count for c in code_cells(nb)]
    if any(n is None for n in counts):
        problems.append(f"{path.name}: {counts.count(None)} code cells were never executed (run `make notebooks`)")
    elif counts != list(range(1, len(counts) + 1)):
        problems.append(f"{path.name}: execution counts are {counts}, expected 1..{len(counts)} in order")
    for i, cell in enumerate(code_cells(nb)):
        expected_error = "raises-exception" in cell.metadata.get("tags", [])
        for out in cell.outputs:
            if out.output_type == "error" and not expected_error:
                problems.append(f"{path.name}: code cell {i + 1} stores an error ({out.ename}: {out.evalue})")
    return problems


def helper_names() -> set[str]:
    """Names of the functions and classes defined at module level anywhere in `helpers`."""
    names = set()
    for path in (REPO / "helpers").rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
    return names


def notebook_definitions(path: Path) -> list[str]:
    """Names of the functions and classes a notebook defines at the top level of its cells."""
    names = []
    for cell in code_cells(nbformat.read(path, as_version=4)):
        for node in ast.parse(python_source(cell.source)).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(node.name)
    return names


def check_calls(nb) -> list[tuple[str, object]]:
    """(exercise id, cell) for every cell that calls `check("NN.k", ...)`."""
    return [(m, cell) for cell in code_cells(nb) for m in CHECK_CALL.findall(cell.source)]
