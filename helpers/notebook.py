"""Conventions every notebook shares: seeding, print options, figure size, threads, show_source."""

from __future__ import annotations

import inspect
import random
import textwrap

import numpy as np
import torch

from helpers.checks import check_int

__all__ = ["NOTEBOOK_THREADS", "seed_everything", "setup_notebook", "show_source"]

#: Threads torch uses in the notebooks. Results depend on the thread count (the order of
#: floating-point sums changes), so it is fixed rather than taken from the machine.
NOTEBOOK_THREADS = 2


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's `random`, NumPy and torch (CPU and every GPU) with `seed`.

    Returns a `torch.Generator` seeded with `seed`, to hand to a `DataLoader(generator=...)`
    so that shuffling is reproducible too.
    """
    check_int("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def setup_notebook(seed: int = 0, threads: int = NOTEBOOK_THREADS) -> torch.Generator:
    """Make a notebook reproducible and readable; call it once, in the first code cell.

    Seeds everything, fixes torch's thread count, prints tensors with 4 decimals and no
    scientific notation, and sets small inline figures (at most 8 inches wide, 90 dpi).
    Returns the seeded generator of `seed_everything`.
    """
    import matplotlib.pyplot as plt

    torch.set_num_threads(threads)
    torch.set_printoptions(precision=4, sci_mode=False)
    np.set_printoptions(precision=4, suppress=True)
    plt.rcParams.update(
        {
            "figure.figsize": (7.0, 3.2),
            "figure.dpi": 90,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.constrained_layout.use": True,
        }
    )
    return seed_everything(seed)


def show_source(obj) -> object:
    """Display the source code of a helper (function, class or module) with syntax highlighting.

    In a notebook the result renders as highlighted code; elsewhere it prints as plain text.
    """
    try:
        source = textwrap.dedent(inspect.getsource(obj))  # a method without its class's indentation
    except (TypeError, OSError) as exc:
        raise ValueError(f"show_source expects a function, class or module defined in Python, "
                         f"got {obj!r}") from exc
    return _Source(source, getattr(obj, "__qualname__", getattr(obj, "__name__", "source")))


class _Source:
    """Source text that renders highlighted as HTML in Jupyter and as plain text elsewhere."""

    def __init__(self, text: str, name: str):
        self.text, self.name = text, name

    def __repr__(self) -> str:
        return self.text.rstrip("\n")

    def _repr_html_(self) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        formatter = HtmlFormatter(noclasses=True, style="default", nobackground=True)
        return highlight(self.text, PythonLexer(), formatter)
