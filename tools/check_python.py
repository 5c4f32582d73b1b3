"""Exit with a one-line explanation unless this Python can run the workbook (3.10 to 3.12)."""

import sys

if not (3, 10) <= sys.version_info[:2] <= (3, 12):
    found = ".".join(map(str, sys.version_info[:3]))
    sys.exit(f"error: the workbook needs Python 3.10, 3.11 or 3.12, but {sys.executable} is {found}; "
             "run make with PYTHON=python3.11 (or another supported version)")
