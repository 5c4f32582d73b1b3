"""The student edition `make lab` opens: solutions stubbed, kept in step, a learner's work never lost."""

from __future__ import annotations

import nbformat
import pytest

from helpers.exercises.editions import BEGIN, END, STUB, sync_student_editions


def _write(path, answer: str) -> None:
    cell = f"def f():\n    {BEGIN}\n    return {answer}\n    {END}"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)]), path)


def _source(path) -> str:
    return nbformat.read(path, as_version=4).cells[0].source


def test_sync_writes_stubs_then_keeps_the_learners_work(tmp_path):
    full, student = tmp_path / "notebooks", tmp_path / "student"
    full.mkdir()
    _write(full / "a.ipynb", "1")
    _write(full / "b.ipynb", "2")
    assert sync_student_editions(full, student) == [f"wrote {student / 'a.ipynb'}",
                                                    f"wrote {student / 'b.ipynb'}"]
    assert _source(student / "a.ipynb") == f"def f():\n    {STUB}"
    assert sync_student_editions(full, student) == []  # nothing changed, nothing written

    mine = nbformat.read(student / "a.ipynb", as_version=4)
    mine.cells[0].source = "def f():\n    return 1  # my answer"
    nbformat.write(mine, student / "a.ipynb")
    _write(full / "a.ipynb", "10")  # the workbook moves on: both notebooks change
    _write(full / "b.ipynb", "20")
    (student / "b.ipynb").touch()   # a touch alone is no change
    report = sync_student_editions(full, student)
    assert _source(student / "a.ipynb") == "def f():\n    return 1  # my answer"
    assert report[0].startswith(f"kept your {student / 'a.ipynb'}: the workbook's version changed")
    assert report[1] == f"updated {student / 'b.ipynb'} (you had not changed it)"
    (student / "a.ipynb").rename(student / "a-mine.ipynb")
    assert sync_student_editions(full, student) == [f"wrote {student / 'a.ipynb'}"]
    assert (student / "a-mine.ipynb").exists()


def test_sync_refuses_to_write_over_the_full_edition(tmp_path):
    with pytest.raises(ValueError, match="must differ"):
        sync_student_editions(tmp_path, tmp_path)
