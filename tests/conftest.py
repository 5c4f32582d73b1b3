import os
from pathlib import Path

import pytest

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
