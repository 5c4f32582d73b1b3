"""Argument checks shared by every module: one line at the top of a function instead of five.

Each check raises `ValueError` with one line that names the argument, what was expected and what was
given, e.g. ``epochs must be an int >= 1, got 0``, and returns the value, so it can be used inline.
`bool` is refused where an int or a number is expected (True is an int to Python, never to a user).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["check_int", "check_number", "check_choice"]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value, minimum: int = 1, maximum: int | None = None, *, none_ok: bool = False):
    """`value` if it is an int in [minimum, maximum] (or None when `none_ok`), else ValueError."""
    if value is None and none_ok:
        return value
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        wanted = f"an int >= {minimum}" if maximum is None else f"an int in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {wanted}{' or None' if none_ok else ''}, got {value!r}")
    return value


def check_number(name: str, value, low: float = -math.inf, high: float = math.inf, *,
                 low_open: bool = False, high_open: bool = False):
    """`value` if it is a finite int or float inside the interval from `low` to `high`, else ValueError.

    low_open / high_open: the end itself is excluded, e.g. a learning rate: low=0, low_open=True.
    """
    is_number = (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
    above_low = is_number and (value > low if low_open else value >= low)
    if not (above_low and (value < high if high_open else value <= high)):
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        bounds = "" if (low, high) == (-math.inf, math.inf) else f" in {left}{low:g}, {high:g}{right}"
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r}")
    return value


def check_choice(name: str, value, choices: Iterable):
    """`value` if it is one of `choices`, else ValueError listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
