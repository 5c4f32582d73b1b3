"""What the exercise checks share: their hints, which say what was expected and what the answer
gave, and a few test inputs and comparisons.

A check returns None for a right answer, else one hint. `int_hint`, `shape_hint` and `close_hint`
return None when the answer passes their test; `mismatch` words a wrong value for one test case
(described by `case_text`); `shape_or_type` says what came back. `numbered` builds a tensor whose
entries tell where they came from (for layout exercises); `parameter_gap` compares the parameters
of two models after the same training steps.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["shape_or_type", "int_hint", "shape_hint", "close_hint", "case_text", "mismatch",
           "numbered", "parameter_gap"]


def shape_or_type(value) -> str:
    """A tensor's shape, e.g. "(3, 4)", or the name of the type of anything else."""
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


def int_hint(result, what: str = "") -> str | None:
    """None for a Python int (not a bool), else "return a Python int<what>, not <type>"."""
    if isinstance(result, int) and not isinstance(result, bool):
        return None
    return f"return a Python int{what}, not {type(result).__name__}"


def shape_hint(result, shape, what: str = "") -> str | None:
    """None for a tensor of `shape`, else "return a tensor, not <type>" or "expected shape <shape>,
    got <shape>", after "<what>: " when `what` is given."""
    prefix = f"{what}: " if what else ""
    if not isinstance(result, torch.Tensor):
        return f"{prefix}return a tensor, not {type(result).__name__}"
    if tuple(result.shape) != tuple(shape):
        return f"{prefix}expected shape {tuple(shape)}, got {tuple(result.shape)}"
    return None


def close_hint(result, truth: torch.Tensor, what: str, atol: float = 1e-5,
               reference: str = "the truth") -> str | None:
    """`shape_hint`, then None when `result` is close to `truth` (torch.allclose with `atol`), else
    "<what>: values differ from <reference> by up to <largest difference>"."""
    hint = shape_hint(result, truth.shape, what)
    if hint is None and not torch.allclose(result, truth, atol=atol):
        gap = (result - truth).abs().max().item()
        hint = f"{what}: values differ from {reference} by up to {gap:.4g}"
    return hint


def case_text(**values) -> str:
    """A test case as its arguments: case_text(n=3, gate="glu") is "n=3, gate='glu'"."""
    return ", ".join(f"{name}={value!r}" for name, value in values.items())


def mismatch(case: str, expected, got, why: str = "") -> str:
    """The hint for a wrong value: "for <case>: expected <expected>, got <got><why>"."""
    return f"for {case}: expected {expected}, got {got!r}{why}"


def numbered(*shape: int) -> torch.Tensor:
    """A float32 tensor of `shape` holding 0, 1, 2, ... in order: after a permute or a reshape,
    each entry still says where it came from."""
    return torch.arange(torch.Size(shape).numel(), dtype=torch.float32).reshape(shape)


def parameter_gap(ours: nn.Module, theirs: nn.Module) -> float:
    """The largest |difference| between the parameters of two models of the same architecture."""
    pairs = zip(ours.parameters(), theirs.parameters(), strict=True)
    return max((a - b).abs().max().item() for a, b in pairs)
