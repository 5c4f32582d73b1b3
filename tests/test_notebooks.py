"""Rules for the committed notebooks. nbval (`pytest --nbval notebooks`) compares their outputs;
these tests check what nbval cannot: that the stored outputs are complete and clean, that shared
code lives only in `helpers`, and that the exercises and their student editions work."""

import ast

import nbformat
import pytest
from nbclient import NotebookClient
from notebook_rules import (
    CHECK_CALL,
    check_calls,
    code_cells,
    execution_problems,
    helper_names,
    notebook_definitions,
    notebooks,
    python_source,
)

from helpers.exercises import all_exercises
from helpers.exercises.editions import BEGIN, strip_solutions, student_notebook

NOTEBOOKS = notebooks()
ids = [p.name for p in NOTEBOOKS]


def test_the_workbook_has_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_start_here.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_is_executed_in_order_without_errors_and_small(path):
    problems = execution_problems(path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_does_not_redefine_a_helper(path):
    clashes = sorted(set(notebook_definitions(path)) & helper_names())
    assert not clashes, f"{path.name} defines {clashes}, which also exist in helpers: import them instead"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_shown_helper_source_fits_100_columns(path):
    """The helper code a notebook shows with `show_source` reads without horizontal scrolling."""
    wide = []
    for cell in code_cells(nbformat.read(path, as_version=4)):
        if "show_source(" in cell.source:
            shown = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
            wide += [line for line in shown.splitlines() if len(line) > 100]
    assert not wide, f"{path.name} shows {len(wide)} lines over 100 columns, e.g. {wide[0]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_exercises_are_registered_and_pass(path):
    nb = nbformat.read(path, as_version=4)
    number = path.name[:2]
    used = [ex_id for ex_id, _ in check_calls(nb)]
    registered = [ex.id for ex in all_exercises() if ex.id.startswith(number + ".")]
    assert sorted(used) == sorted(registered), f"{path.name} checks {used}; nb{number}.py registers {registered}"
    for ex_id, cell in check_calls(nb):
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert f"Correct: exercise {ex_id}" in text, f"{path.name}: the stored check of {ex_id} is not 'Correct'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_student_edition_stubs_every_solution_inside_a_function(path):
    nb = nbformat.read(path, as_version=4)
    for cell in code_cells(nb):
        if BEGIN not in cell.source:
            continue
        tree = ast.parse(python_source(strip_solutions(cell.source)))
        stubs = [n for n in ast.walk(tree) if isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n)]
        inside = {id(r) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for r in ast.walk(f)}
        assert stubs and all(id(s) in inside for s in stubs), (
            f"{path.name}: a solution region must sit inside a function body, so that the student "
            f"edition raises only when the learner's function is called:\n{cell.source}"
        )


def test_student_edition_fails_only_with_not_implemented(tmp_path):
    """Run the student edition of 00: each exercise check stops with NotImplementedError and nothing else fails."""
    nb = student_notebook(nbformat.read(NOTEBOOKS[0], as_version=4))
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(NOTEBOOKS[0].parent)}}).execute()
    errors = {i: o for i, c in enumerate(nb.cells) if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"}
    assert errors, "the student edition raised nothing: were the solutions stripped?"
    assert {o.ename for o in errors.values()} == {"NotImplementedError"}, [o.evalue for o in errors.values()]
    check_cells = {i for i, c in enumerate(nb.cells) if c.cell_type == "code" and CHECK_CALL.search(c.source)}
    assert check_cells == set(errors), "every exercise check, and nothing else, must stop with NotImplementedError"
