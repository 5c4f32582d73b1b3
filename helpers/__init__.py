"""Shared code of the Metro STGCN Workbook.

Each module holds one concern, so a reader can find a thing by guessing its file name:
`data` (datasets, windows, scalers), `metrics`, `graph` (graph convolutions), `models`,
`train` (training loop and command line), `plots`, `widgets`, `exercises`.
The notebooks build each idea by hand first, then import it from here and show its source
with `show_source`, so the text and the library cannot drift apart.
"""

from helpers.notebook import seed_everything, setup_notebook, show_source

__all__ = ["seed_everything", "setup_notebook", "show_source"]
__version__ = "0.1.0"
