"""The workbook as an nbgrader course: metadata in step, assignments released by nbgrader itself,
and autograding that scores untouched, solved and partly wrong submissions as an instructor expects.

The grading tests run nbgrader's own commands (generate_assignment, autograde, export) on two
notebooks; they need the course extra (`pip install -e ".[course]"`, which `make test` installs).
"""

from __future__ import annotations

import csv
import re

import nbformat
import pytest

from helpers.exercises.course import build_course, nbgrader, tag_notebook, tag_notebooks
from helpers.exercises.editions import BEGIN, END, student_notebook

ASSIGNMENTS = ["01_tensors", "02_autograd"]  # the two quickest notebooks with exercises
STUDENTS = ["untouched", "solved", "one_wrong"]
_REGION = re.compile(rf"^([ \t]*){re.escape(BEGIN)}.*?{re.escape(END)}[^\n]*$", re.S | re.M)


def test_the_notebooks_carry_nbgrader_metadata_in_step(repo):
    """`python -m helpers.exercises.course tag notebooks` has been run since the exercises last changed."""
    assert tag_notebooks(repo / "notebooks", write=False) == [], \
        "run: python -m helpers.exercises.course tag notebooks"


def _cells(*sources: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def test_tagging_pairs_each_answer_with_its_check():
    nb = tag_notebook(_cells(f"def f():\n    {BEGIN}\n    return 1\n    {END}", "x = 1",
                             'check("03.2", f)'))
    assert nb.cells[0].metadata.nbgrader["grade_id"] == "answer_03_2"
    assert nb.cells[0].metadata.nbgrader["solution"] and not nb.cells[0].metadata.nbgrader["grade"]
    assert "nbgrader" not in nb.cells[1].metadata
    assert nb.cells[2].metadata.nbgrader == {
        "grade": True, "grade_id": "check_03_2", "locked": True, "points": 1, "schema_version": 3,
        "solution": False, "task": False}


@pytest.mark.parametrize("sources, message", [
    ((f"def f():\n    {BEGIN}\n    return 1\n    {END}\ncheck('03.1', f)",), "holds both"),
    ((f"def f():\n    {BEGIN}\n    return 1\n    {END}",), "no check cell after it"),
    (("check('03.1', f)",), "no solution cell comes before it"),
])
def test_tagging_refuses_exercises_nbgrader_cannot_grade(sources, message):
    with pytest.raises(ValueError, match=message):
        tag_notebook(_cells(*sources), "x.ipynb")


def test_tagging_refuses_text_that_quotes_the_solution_marker():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"write it between `{BEGIN}` and `{END}`")])
    with pytest.raises(ValueError, match="quotes"):
        tag_notebook(nb, "x.ipynb")


@pytest.fixture(scope="module")
def course(tmp_path_factory, repo):
    """A course with two released assignments and three submissions each, autograded."""
    root = tmp_path_factory.mktemp("course")
    assert build_course(root, repo / "notebooks", ASSIGNMENTS) == ASSIGNMENTS
    for name in ASSIGNMENTS:
        source = nbformat.read(root / "source" / name / f"{name}.ipynb", as_version=4)
        released = nbformat.read(root / "release" / name / f"{name}.ipynb", as_version=4)
        answers = {c.metadata.nbgrader["grade_id"]: c.source for c in source.cells
                   if c.metadata.get("nbgrader", {}).get("solution")}
        first = next(iter(answers))
        wrong = {**answers, first: _REGION.sub(lambda m: m.group(1) + "return None", answers[first])}
        for student, filled in zip(STUDENTS, [{}, answers, wrong], strict=True):
            nb = nbformat.from_dict(released)
            for cell in nb.cells:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                if grade_id in filled:
                    cell.source = filled[grade_id]
            folder = root / "submitted" / student / name
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{name}.ipynb")
        nbgrader(root, "autograde", name)
    nbgrader(root, "export", "--to", "grades.csv")
    return root


def _check_cells(nb) -> list[str]:
    return [c.metadata.nbgrader["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")]


def _errors(nb) -> dict[str, str]:
    """grade_id (or cell index) -> exception name, for every cell that raised while autograding,
    leaving out the teaching cells that show an error on purpose (tagged raises-exception)."""
    found = {}
    for index, cell in enumerate(nb.cells):
        if "raises-exception" in cell.metadata.get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                found[cell.metadata.get("nbgrader", {}).get("grade_id", str(index))] = output.ename
    return found


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_autograding_scores_each_submission_as_expected(course, name):
    from nbgrader.api import Gradebook

    source = nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4)
    checks = _check_cells(source)
    first = checks[0]
    expected = {"untouched": dict.fromkeys(checks, 0.0),
                "solved": dict.fromkeys(checks, 1.0),
                "one_wrong": {**dict.fromkeys(checks, 1.0), first: 0.0}}
    unsolved = {"NotImplementedError", "NotYet"}  # a stub's own error, or a check that caught it
    raised = {"untouched": dict.fromkeys(checks, unsolved), "solved": {}, "one_wrong": {first: {"NotYet"}}}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in STUDENTS:
            scores = {g: gradebook.find_grade(g, name, name, student).score for g in checks}
            assert scores == expected[student], student
            graded = nbformat.read(course / "autograded" / student / name / f"{name}.ipynb", as_version=4)
            errors = _errors(graded)
            assert errors.keys() == raised[student].keys(), f"{student}: only failing checks may raise"
            assert all(errors[g] in raised[student][g] for g in errors), (student, errors)


def test_grades_export_to_csv(course):
    with open(course / "grades.csv", newline="") as handle:
        rows = {(r["assignment"], r["student_id"]): float(r["score"]) for r in csv.DictReader(handle)}
    points = {name: len(_check_cells(nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4)))
              for name in ASSIGNMENTS}
    assert rows == {(a, s): {"untouched": 0.0, "solved": points[a], "one_wrong": points[a] - 1}[s]
                    for a in ASSIGNMENTS for s in STUDENTS}


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_student_edition_matches_nbgraders_release(course, name):
    """`make student` (no nbgrader needed) and nbgrader's release strip the same solutions the same way."""
    released = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)
    ours = student_notebook(nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4))
    assert [c.source for c in released.cells] == [c.source for c in ours.cells]
