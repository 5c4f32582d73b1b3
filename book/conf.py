"""Sphinx configuration of the reading edition (`make book`; see tools/book.py, which stages the
pages and runs Sphinx with this folder as its configuration directory).

Sphinx with MyST-NB renders the notebooks as stored (no execution): their figures, math, code and
outputs. It was chosen over Jupyter Book 2 because it is pure Python (no Node toolchain), builds
offline, and its warnings can be made errors, so a broken link or image fails the build.
"""

from pathlib import Path

import sphinx_book_theme  # noqa: F401  (fail early with a clear message if the book extra is missing)

project = "The Metro STGCN Workbook"
author = "The Metro STGCN Workbook authors"
copyright = "the Metro STGCN Workbook authors, MIT licence"
root_doc = "00_start_here"
extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# The notebooks are shown exactly as stored: nothing is executed while the site is built.
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
# A widget needs a kernel: drop its live view so that its static fallback (its first picture and a
# line saying it is live in JupyterLab, written by helpers.widgets) is what the page shows.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_css_files = ["cjk.css"]
html_theme_options = {"show_toc_level": 2, "use_download_button": False, "use_fullscreen_button": False}
html_last_updated_fmt = None
html_copy_source = False  # the notebooks are in the repository; the site need not carry them twice

# MathJax 3 served from the site itself, so pages render math offline (a copy of MathJax's own
# distribution, from the sphinx-mathjax-offline package; only what TeX-to-HTML needs is copied).
mathjax_path = "mathjax/tex-chtml.js"


def _copy_mathjax(app, exception):
    if exception is not None:
        return
    from importlib.util import find_spec

    from sphinx.util.fileutil import copy_asset

    source = Path(find_spec("sphinx-mathjax-offline").origin).parent / "static" / "mathjax"
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in ["tex-chtml.js", "output/chtml", "ui", "a11y", "input/tex/extensions"]:
        if (source / part).is_dir():
            copy_asset(str(source / part), str(target / part))
        else:
            target.mkdir(parents=True, exist_ok=True)
            copy_asset(str(source / part), str(target))


def _index_page(app, exception):
    """index.html, which static hosts serve first, sends the reader to the landing page."""
    if exception is None:
        page = f"{root_doc}.html"
        (Path(app.outdir) / "index.html").write_text(
            f'<!DOCTYPE html><meta charset="utf-8"><title>{project}</title>'
            f'<meta http-equiv="refresh" content="0; url={page}"><a href="{page}">{project}</a>\n')


def setup(app):
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _index_page)
