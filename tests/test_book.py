"""The reading edition (`make book`): built from the stored notebooks, then read in a real browser.

The site is built once (tools/book.py, Sphinx with warnings as errors) and served over HTTP; Debian's
chromium, driven by Playwright, opens every page and checks what a reader sees: the page loads, every
image loads, math is typeset (no raw TeX left), every internal link and anchor resolves, Chinese terms
render with real glyphs, widgets show their static picture and say they are live in JupyterLab, and
the learners' site holds no solution. Needs the book extra (`pip install -e ".[book]"`).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from html import escape as html_escape
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import nbformat
import pytest

from helpers.exercises.editions import BEGIN, STUB
from helpers.widgets.base import STATIC_NOTE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from book import LIVE_NOTE, WIDGET_VIEW  # noqa: E402  (tools/ is not a package)

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent / "shots"
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
PAGES = [*NOTEBOOKS, "glossary", "datasheet_metro"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Raw TeX that MathJax would have replaced: $$, a $...$ holding a backslash command, \( or \[.
RAW_TEX = re.compile(r"\$\$|\$[^$\n]{0,200}\\[A-Za-z]+|\\\(|\\\[")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the learners' site; yield (html folder, build output)."""
    out = tmp_path_factory.mktemp("book")
    done = subprocess.run([sys.executable, str(REPO / "tools" / "book.py"), "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "html", done.stdout + done.stderr


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(QuietHandler, directory=str(site[0]))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    SHOTS.mkdir(exist_ok=True)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1280, "height": 1000})
            context.set_default_timeout(60_000)
            yield context
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_the_build_prints_no_warning_and_links_every_glossary_term(site):
    """Sphinx ran with warnings as errors; the only notes allowed would name unlinked glossary terms,
    and there are none."""
    assert "WARNING" not in site[1] and "note:" not in site[1], site[1]


def _read(browser, url: str):
    """Open `url` in a new tab; return (tab, failed requests)."""
    tab = browser.new_page()
    failed = []
    tab.on("requestfailed", lambda request: failed.append(request.url))
    tab.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    response = tab.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{url}: {response and response.status}"
    return tab, failed


_PROSE_TEXT = """() => {
    const body = document.querySelector("main") || document.body;
    const copy = body.cloneNode(true);
    copy.querySelectorAll("pre, code, script, style, mjx-container, .output").forEach(e => e.remove());
    return copy.innerText;
}"""


@pytest.mark.parametrize("name", PAGES)
def test_every_page_loads_with_images_math_and_links(browser, server, site, name):
    tab, failed = _read(browser, urljoin(server, f"{name}.html"))
    try:
        if tab.locator(".math").count():
            tab.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
            tab.evaluate("() => MathJax.startup.promise")
            untypeset = tab.evaluate("() => [...document.querySelectorAll('.math')]"
                                     ".filter(e => !e.querySelector('mjx-container')).map(e => e.textContent)")
            assert untypeset == [], f"{name}: math left as TeX: {untypeset[:3]}"
        assert not failed, f"{name}: requests failed: {failed}"
        broken = tab.evaluate("() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                              ".map(i => i.src)")
        assert broken == [], f"{name}: images that did not load: {broken}"
        raw = RAW_TEX.findall(tab.evaluate(_PROSE_TEXT))
        assert raw == [], f"{name}: TeX left untypeset: {raw[:5]}"
        links = tab.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        for link in links:
            target, anchor = urldefrag(link)
            if not target.startswith(server):
                continue
            path = site[0] / urlparse(target).path.lstrip("/")
            assert path.exists(), f"{name}: link to a missing page {link}"
            if anchor and path.suffix == ".html":
                assert f'id="{anchor}"' in path.read_text(encoding="utf-8"), f"{name}: no anchor {link}"
    finally:
        tab.close()


def test_math_is_typeset(browser, server):
    """04_modules states the convolution's output length as a display formula: it is typeset."""
    tab, _ = _read(browser, urljoin(server, "04_modules.html"))
    try:
        tab.wait_for_function("() => document.querySelectorAll('mjx-container').length >= 4")
        formula = tab.locator("mjx-container").first
        formula.scroll_into_view_if_needed()
        assert formula.bounding_box()["width"] > 100
        tab.screenshot(path=str(SHOTS / "book_04_modules_math.png"), full_page=False)
    finally:
        tab.close()


_GLYPHS = """([a, b]) => {
    const font = getComputedStyle(document.querySelector("main") || document.body).font;
    const pixels = text => {
        const canvas = document.createElement("canvas");
        canvas.width = 200; canvas.height = 60;
        const ctx = canvas.getContext("2d");
        ctx.font = font.replace(/\\d+(\\.\\d+)?px/, "40px");
        ctx.fillText(text, 5, 45);
        return Array.from(ctx.getImageData(0, 0, 200, 60).data).join(",");
    };
    return [pixels(a) === pixels(b), pixels(a) === pixels("\\uE000"), font];
}"""


def test_chinese_terms_render_with_real_glyphs(browser, server):
    """With no CJK font every Chinese character is the same empty box: two different characters, drawn
    with the page's font, must differ from each other and from a character no font has."""
    tab, _ = _read(browser, urljoin(server, "glossary.html"))
    try:
        same, tofu, font = tab.evaluate(_GLYPHS, ["术", "语"])
        assert not same and not tofu, f"Chinese characters render as boxes with the page's font {font!r}"
        tab.screenshot(path=str(SHOTS / "book_glossary.png"), full_page=False)
    finally:
        tab.close()


def _widget_outputs(nb) -> int:
    return sum(WIDGET_VIEW in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_widgets_show_a_static_view_that_says_they_are_live_in_jupyterlab(site):
    """A widget of helpers shows its first picture and says it is live; a bare control says it is live."""
    for name in NOTEBOOKS:
        html = (site[0] / f"{name}.html").read_text(encoding="utf-8")
        widgets = _widget_outputs(nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4))
        notes = html.count(html_escape(STATIC_NOTE)) + html.count(LIVE_NOTE)
        assert notes == widgets, f"{name}: {widgets} widgets but {notes} static views"
        assert not re.search(r"\b[VH]Box\(", html), f"{name}: a widget shown as its Python repr"


def test_the_learners_site_has_no_solutions(site):
    """The staged pages hold stubs in place of solutions, and no stored check output."""
    for name in NOTEBOOKS:
        staged = nbformat.read(site[0].parent / "src" / f"{name}.ipynb", as_version=4)
        full = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
        answers = [i for i, c in enumerate(full.cells) if c.cell_type == "code" and BEGIN in c.source]
        for i in answers:
            assert BEGIN not in staged.cells[i].source and STUB in staged.cells[i].source, (name, i)
            assert staged.cells[i].outputs == [] and staged.cells[i + 1].outputs == [], (name, i)
