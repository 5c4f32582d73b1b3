"""The notebook rules must catch what they are for: each is broken here once on a small notebook."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from notebook_rules import MAX_BYTES, execution_problems, notebook_definitions

from helpers.exercises.editions import STUB, strip_solutions


def write(tmp_path, cells, name="nb.ipynb"):
    path = tmp_path / name
    nbformat.write(new_notebook(cells=cells), path)
    return path


def executed(source, count, outputs=()):
    return new_code_cell(source, execution_count=count, outputs=list(outputs))


def test_clean_notebook_passes(tmp_path):
    assert execution_problems(write(tmp_path, [executed("1", 1), executed("2", 2)])) == []


def test_unexecuted_cell_is_caught(tmp_path):
    problems = execution_problems(write(tmp_path, [executed("1", 1), new_code_cell("2")]))
    assert "never executed" in problems[0]


def test_out_of_order_counts_are_caught(tmp_path):
    problems = execution_problems(write(tmp_path, [executed("1", 2), executed("2", 1)]))
    assert "expected 1..2 in order" in problems[0]


def test_stored_error_is_caught_unless_tagged(tmp_path):
    error = new_output("error", ename="ValueError", evalue="bad", traceback=[])
    assert "stores an error" in execution_problems(write(tmp_path, [executed("f()", 1, [error])]))[0]
    tagged = executed("f()", 1, [error])
    tagged.metadata["tags"] = ["raises-exception"]
    assert execution_problems(write(tmp_path, [tagged])) == []


def test_oversize_notebook_is_caught(tmp_path):
    big = new_output("stream", name="stdout", text="x" * (MAX_BYTES + 1))
    assert "over the" in execution_problems(write(tmp_path, [executed("print()", 1, [big])]))[0]


def test_top_level_definitions_are_found_through_magics(tmp_path):
    source = "%matplotlib inline\ndef seed_everything(s):\n    pass\nclass A:\n    def b(self): ..."
    path = write(tmp_path, [executed(source, 1)])
    assert notebook_definitions(path) == ["seed_everything", "A"]


def test_strip_solutions_keeps_indentation_and_the_rest():
    source = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n\nprint(f)"
    assert strip_solutions(source) == f"def f(x):\n    y = 1\n    {STUB}\n\nprint(f)"


def test_unbalanced_markers_are_an_error():
    with pytest.raises(ValueError, match="unbalanced solution markers"):
        strip_solutions("def f():\n    ### BEGIN SOLUTION\n    return 1\n")
