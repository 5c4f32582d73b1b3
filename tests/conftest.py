import os
from pathlib import Path

import pytest
import torch

# Kernels started by nbval inherit this: set iteration order is then the same in every run.
os.environ.setdefault("PYTHONHASHSEED", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The `shared/` folder beside the clone (a copy of the Los-loop data lives there)."""
    if not SHARED.is_dir():
        pytest.fail(f"expected the shared folder beside the repository at {SHARED}; it is missing")
    return SHARED


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a test module on one torch thread, as the notebooks that call setup_notebook(threads=1) do.

    Tiny tensors are fastest on one thread, and one thread is immune to other processes competing for the
    cores. Use it with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
