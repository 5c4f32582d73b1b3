"""Exercise checks, one convention for every notebook (modelled on nbgrader).

In a notebook an exercise is a function the learner completes. Its body holds the solution
between two marker lines::

    def busiest_station(flow):
        ### BEGIN SOLUTION
        return int(flow.sum(dim=0).argmax())
        ### END SOLUTION

and the next cell checks it::

    check("01.2", busiest_station)

`check` calls the function on test inputs and prints "Correct", or raises `NotYet` (an
AssertionError) whose message is a hint: the cell stops there, as an autograder needs. The
student edition (`make student`, `make lab`) replaces each solution region with
`raise NotImplementedError(...)`; calling such a stub makes the check cell stop with that
error, which tells the learner what is still to do.

Each notebook's exercises live in `helpers/exercises/nbNN.py` and are registered with the
`exercise` decorator under an id "NN.k" (notebook number, exercise number); the hints they share
are built by `helpers/exercises/hints.py`, `helpers/exercises/editions.py` writes the student
edition and `helpers/exercises/course.py` makes an nbgrader course. This module holds the registry:
`Exercise`, `exercise`, `get_exercise`, `all_exercises`, `check` and `NotYet`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

__all__ = ["Exercise", "exercise", "get_exercise", "all_exercises", "check", "NotYet"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: `test(answer)` returns None when the answer is right, else a hint."""

    id: str
    title: str
    test: Callable[[object], str | None]


_REGISTRY: dict[str, Exercise] = {}


def exercise(id: str, title: str):
    """Register `test` as the checker of exercise `id` ("NN.k"); used by the nbNN modules."""

    def register(test: Callable[[object], str | None]) -> Callable[[object], str | None]:
        if id in _REGISTRY:
            raise ValueError(f"exercise id {id!r} is registered twice")
        _REGISTRY[id] = Exercise(id, title, test)
        return test

    return register


def get_exercise(id: str) -> Exercise:
    """The registered exercise `id` ("NN.k"), importing `helpers.exercises.nbNN` on demand."""
    notebook, sep, number = str(id).partition(".")
    if not (sep and notebook.isdigit() and number.isdigit()):
        raise ValueError(f"exercise id must look like '01.2' (notebook.number), got {id!r}")
    try:
        importlib.import_module(f"helpers.exercises.nb{notebook}")
    except ModuleNotFoundError as exc:
        raise ValueError(f"no exercises are defined for notebook {notebook!r} "
                         f"(looked for {exc.name})") from exc
    if id not in _REGISTRY:
        known = ", ".join(sorted(k for k in _REGISTRY if k.startswith(notebook + ".")))
        raise ValueError(f"unknown exercise {id!r}; notebook {notebook} has: {known}")
    return _REGISTRY[id]


def all_exercises() -> list[Exercise]:
    """Every exercise of every notebook module, sorted by id."""
    for entry in resources.files(__name__).iterdir():
        if entry.name.startswith("nb") and entry.name.endswith(".py"):
            importlib.import_module(f"{__name__}.{entry.name[:-3]}")
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


class NotYet(AssertionError):
    """Raised by `check` for a wrong answer; its message is the hint."""


def check(id: str, answer: object) -> None:
    """Check the learner's `answer` to exercise `id`: print "Correct", or raise `NotYet` with a hint.

    Raising (an AssertionError) is what lets an autograder such as nbgrader score the exercise 0;
    the traceback is reduced to the cell's own line and the hint. A `NotImplementedError` (an
    unsolved stub) propagates unchanged, so the cell shows what is still to do. Any other error
    raised by the answer is turned into a hint naming it.
    """
    __tracebackhide__ = True  # IPython and pytest leave this frame out of the traceback
    ex = get_exercise(id)
    try:
        hint = ex.test(answer)
    except NotImplementedError:
        raise
    except Exception as exc:  # the learner's code failed: explain rather than crash
        hint = f"your code raised {type(exc).__name__}: {exc}"
    if hint is not None:
        raise NotYet(f"Not yet: exercise {id} ({ex.title}). Hint: {hint}")
    print(f"Correct: exercise {id} ({ex.title}).")
