"""Build the reading edition: the notebooks as a static website (what `make book` runs).

    python tools/book.py                  # the learners' site, into build/book/html
    python tools/book.py --solutions      # the instructors' site, with the exercises' solutions

The notebooks are rendered as stored (no kernel, no execution) by Sphinx with MyST-NB, configured
in book/conf.py. Before that, this script stages the pages in build/book/src:
- every notebook in order, 00_start_here as the landing page (a hidden table of contents is added
  to it); without --solutions each solution is replaced by the student edition's stub and the
  outputs of the answer and check cells are cleared (a stored "Correct" beside a stub misleads);
- a glossary page made from the glossary table of 00_start_here, each term linked to the place
  where its notebook first uses it (an anchor is added to that cell);
- the datasheet of the shipped metro data.
A widget has no kernel on a static page: it shows its static HTML view (see `_static_widgets`).
Sphinx runs with warnings as errors, so a missing image, a broken cross-reference or a page left
out of the table of contents fails the build.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from helpers.exercises.course import CHECK_CALL
from helpers.exercises.editions import BEGIN, strip_solutions

REPO = Path(__file__).resolve().parents[1]
GLOSSARY_HEADING = "## Glossary"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LIVE_NOTE = "This widget is live in JupyterLab (run the notebook to use it)."
_ROW = re.compile(r"^\|(.+)\|\s*$")


def _public(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`nb` without its solutions: stubbed answers, and no stored output on answer and check cells."""
    for cell in nb.cells:
        if cell.cell_type == "code" and (BEGIN in cell.source or CHECK_CALL.search(cell.source)):
            cell.source = strip_solutions(cell.source)
            cell.outputs, cell.execution_count = [], None
    return nb


def _static_widgets(nb: nbformat.NotebookNode) -> None:
    """Give every widget output a static view: the widget's own HTML fallback (helpers' widgets show
    their first picture and say they are live in JupyterLab) or, for a bare ipywidgets control,
    that one line."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and "text/html" not in data:
                data["text/html"] = f"<p><em>{LIVE_NOTE}</em></p>"
                data.pop("text/plain", None)


def glossary_rows(start: nbformat.NotebookNode) -> list[list[str]]:
    """The glossary table of 00_start_here as rows of cells: [English, 中文, first met in]."""
    cell = next((c for c in start.cells if c.cell_type == "markdown" and GLOSSARY_HEADING in c.source),
                None)
    if cell is None:
        raise ValueError(f"00_start_here has no '{GLOSSARY_HEADING}' section to build the glossary from")
    rows = [[part.strip() for part in m[1].split("|")] for m in map(_ROW.match, cell.source.splitlines()) if m]
    return [row for row in rows[2:] if len(row) == 3]  # skip the header and its --- line


def _first_use(nb: nbformat.NotebookNode, term: str) -> int | None:
    """Index of the first markdown cell of `nb` that uses the Chinese `term` (or, for an entry like
    "遗忘门 / 输入门", any of its parts)."""
    parts = [part.strip() for part in term.split("/") if part.strip()]
    return next((i for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and any(part in c.source for part in parts)), None)


def glossary_page(rows: list[list[str]], pages: dict[str, nbformat.NotebookNode]) -> tuple[str, list[str]]:
    """The glossary page (MyST markdown) and the terms whose first use could not be found.

    Adds an anchor `glossary-k` to the cell of `pages` where term k is first used.
    """
    by_number = {name[:2]: name for name in pages}
    lines = ["# Glossary (术语表)", "",
             "Every key term with its Chinese name, linked to where the workbook first uses it.", "",
             "| English | 中文 | first used in |", "| --- | --- | --- |"]
    missing = []
    for k, (english, chinese, number) in enumerate(rows):
        name = by_number.get(number)
        if name is None:
            missing.append(f"{english} ({number}: no such notebook)")
            lines.append(f"| {english} | {chinese} | {number} |")
            continue
        index = _first_use(pages[name], chinese)
        if index is None:
            missing.append(f"{english} ({chinese} not found in {name})")
            target = f"{name}.html"
        else:
            cell = pages[name].cells[index]
            cell.source = f'<span id="glossary-{k}"></span>\n\n' + cell.source
            target = f"{name}.html#glossary-{k}"
        lines.append(f'| {english} | {chinese} | <a href="{target}">{name}</a> |')
    return "\n".join(lines) + "\n", missing


def stage(source: Path, target: Path, solutions: bool) -> list[str]:
    """Write the pages of the site into `target`; return the glossary terms whose first use is unknown."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    pages = {}
    for path in sorted(source.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nb.metadata.pop("widgets", None)  # saved widget state would pull a widget manager from the web
        _static_widgets(nb)
        pages[path.stem] = nb if solutions else _public(nb)
    names = list(pages)
    glossary, missing = glossary_page(glossary_rows(pages[names[0]]), pages)
    (target / "glossary.md").write_text(glossary, encoding="utf-8")
    datasheet = (REPO / "data" / "metro" / "README.md").read_text(encoding="utf-8")
    # Links to the repository's files do not exist on the site: keep their text only.
    datasheet = re.sub(r"\[([^\]]+)\]\((?:\.\./)+[^)]+\)", r"\1", datasheet)
    (target / "datasheet_metro.md").write_text(datasheet, encoding="utf-8")
    toc = ["```{toctree}", ":hidden:", ":maxdepth: 1", "", *names[1:], "glossary", "datasheet_metro", "```"]
    pages[names[0]].cells.append(nbformat.v4.new_markdown_cell("\n".join(toc)))
    for name, nb in pages.items():
        nbformat.write(nb, target / f"{name}.ipynb")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solutions", action="store_true", help="keep the exercises' solutions (instructors)")
    parser.add_argument("--notebooks", type=Path, default=REPO / "notebooks")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "book")
    args = parser.parse_args(argv)
    missing = stage(args.notebooks, args.out / "src", args.solutions)
    if (args.out / "html").exists():  # generated: a page removed from the workbook must not linger
        shutil.rmtree(args.out / "html")
    for term in missing:
        print(f"note: glossary term without a first use to link to: {term}")
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-n",
               "-c", str(REPO / "book"), str(args.out / "src"), str(args.out / "html")]
    done = subprocess.run(command)
    if done.returncode == 0:
        print(f"wrote {args.out / 'html' / 'index.html'} (open it in a browser, or publish the html folder)")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
