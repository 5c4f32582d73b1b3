"""The workbook's shared conventions: seeding, show_source, exercises, and the set-up files."""

import random
import re
import subprocess
import sys
from importlib.metadata import requires

import numpy as np
import pytest
import torch
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import helpers
from helpers.exercises import NotYet, all_exercises, check, get_exercise


def draw():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_makes_python_numpy_and_torch_repeat():
    helpers.seed_everything(3)
    first = draw()
    gen = helpers.seed_everything(3)
    assert draw() == first
    assert isinstance(gen, torch.Generator) and gen.initial_seed() == 3
    helpers.seed_everything(4)
    assert draw() != first


@pytest.mark.parametrize("bad", [-1, 1.5, "0", None, True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        helpers.seed_everything(bad)


def test_show_source_gives_highlighted_html_and_plain_text():
    shown = helpers.show_source(helpers.seed_everything)
    assert repr(shown).startswith("def seed_everything(seed: int)")
    html = shown._repr_html_()
    assert "<span" in html and "seed_everything" in html


def test_show_source_rejects_builtins():
    with pytest.raises(ValueError, match="expects a function, class or module defined in Python"):
        helpers.show_source(len)


def test_setup_notebook_fixes_threads_and_print_options():
    helpers.setup_notebook(seed=0, threads=1)
    assert torch.get_num_threads() == 1
    assert str(torch.tensor([1 / 3])) == "tensor([0.3333])"


def test_every_exercise_can_say_wrong_and_lets_stubs_raise():
    """A checker that never says 'Not yet' cannot fail: feed each one a wrong answer and a stub.
    A wrong answer must raise (an autograder scores an exercise by whether its check cell raises)."""
    exercises = all_exercises()
    assert exercises, "no exercises are registered"

    def stub(*args, **kwargs):
        raise NotImplementedError

    for ex in exercises:
        with pytest.raises(NotYet, match=rf"^Not yet: exercise {re.escape(ex.id)} .*Hint: "):
            check(ex.id, lambda *args, **kwargs: None)
        assert issubclass(NotYet, AssertionError)
        with pytest.raises(NotImplementedError):
            check(ex.id, stub)


@pytest.mark.parametrize("bad", ["1", "01", "x.1", "99.1", "00.99"])
def test_unknown_exercise_ids_are_a_clear_error(bad):
    with pytest.raises(ValueError, match="exercise"):
        get_exercise(bad)


def test_environment_yml_describes_the_same_environment(repo):
    """conda/Binder users get the packages and ranges pyproject.toml declares, and the same torch `make` installs.
    The extras for instructors and publishers (course, book) are left out: learners do not need them."""
    optional = ('extra == "course"', 'extra == "book"')
    declared = {(r.name, r.specifier) for r in map(Requirement, requires("metro-stgcn-workbook"))
                if not any(m in str(r.marker) for m in optional)}
    env = (repo / "environment.yml").read_text()
    pip_lines = [line[len("      - "):] for line in env.splitlines() if line.startswith("      - ")]
    listed = {(r.name, r.specifier) for r in (Requirement(p) for p in pip_lines if not p.startswith("-"))}
    torch_range = next(spec for name, spec in declared if name == "torch")
    assert declared - {("torch", torch_range)} <= listed, declared - listed
    assert ("torch", SpecifierSet("==2.13.0")) in listed and "2.13.0" in torch_range


def test_ci_runs_the_readme_test_command(repo):
    readme = (repo / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert re.search(r"^make test$", (repo / ".ci/run").read_text(), re.M)


@pytest.mark.parametrize("version", [(3, 9, 18), (3, 13, 0)])
def test_wrong_python_gets_one_line(repo, version):
    code = f"import sys; sys.version_info = {version}; exec(open({str(repo / 'tools/check_python.py')!r}).read())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: the workbook needs Python 3.10")
