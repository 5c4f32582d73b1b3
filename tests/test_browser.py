"""Every widget of the notebooks in a real browser: Debian's chromium, driven by Playwright, against a real
JupyterLab started as `make lab` starts it (the workbook's settings from tools/jupyter: no news pop-up).

For each notebook with widgets (03, 05, 06, 07, 08, 09) the test opens a copy, runs it all, finds every
widget in the outputs and operates each control (`tests/browser_driver.py`): a redrawing widget must change
its picture or its text within REDRAW_S of every control; a training widget is set to its cheap settings,
trained once (a second click while busy must start nothing) and must redraw and report validation error.
Notebook 00 checks that JupyterLab shows no news pop-up and that its Chinese terms render with real glyphs.
Screenshots (before/after per widget) and the timings go to tests/shots/ (git-ignored).

Needs /usr/bin/chromium (`apt-get install -y chromium`) and fonts-noto-cjk; never `playwright install`.
Without chromium the tests are skipped with the reason, except under CI=true, where they fail.

    .venv/bin/pytest -m browser -s tests/test_browser.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from browser_driver import drive, roots

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent / "shots"
LAB_SETTINGS = REPO / "tools" / "jupyter"  # what `make lab` puts on JUPYTER_CONFIG_PATH
KERNEL_IDLE = "Python (Metro STGCN) | Idle"  # the status bar once the workbook's kernel is connected
TOKEN = "browser-test-token"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_ALL_TIMEOUT_MS = 420_000  # a whole notebook, on a busy 2-core machine
REDRAW_S = 30.0  # a redrawing widget's output must change within this after a control moves
TRAIN_S = 240.0  # a training widget's run at its cheap settings must end within this
WIDGET_NOTEBOOKS = ["03", "05", "06", "07", "08", "09"]
NEWS = "Would you like to get notified about official Jupyter news?"

pytestmark = pytest.mark.browser


def require_chromium() -> None:
    """Skip (locally) or fail (under CI=true) when Debian's chromium is not installed."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the browser test"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def notebook(number: str) -> Path:
    (path,) = sorted((REPO / "notebooks").glob(f"{number}_*.ipynb"))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab():
    """A JupyterLab serving copies of the notebooks (Lab autosaves outputs) with fresh user settings and the
    workbook's own settings on JUPYTER_CONFIG_PATH, as `make lab` has them. Yields (url, home)."""
    require_chromium()
    makefile = (REPO / "Makefile").read_text()
    assert "LAB_ENV := JUPYTER_CONFIG_PATH=$(CURDIR)/tools/jupyter" in makefile, "make lab lost the lab settings"
    home = Path(tempfile.mkdtemp(prefix="jlab-browser-test-"))
    (home / "w" / "notebooks").mkdir(parents=True)
    for number in ["00", *WIDGET_NOTEBOOKS]:
        shutil.copy(notebook(number), home / "w" / "notebooks")
    if (REPO.parent / "shared").is_dir():  # notebook 08 looks for ../../shared/data
        (home / "shared").symlink_to(REPO.parent / "shared")
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONHASHSEED="0", JUPYTER_PLATFORM_DIRS="1",
               JUPYTER_CONFIG_PATH=str(LAB_SETTINGS), OMP_WAIT_POLICY="PASSIVE")
    for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "mpl")]:
        env[var] = str(home / sub)
    port, root = free_port(), home / "w" / "notebooks"
    log = open(home / "lab.log", "w")
    proc = subprocess.Popen(
        [str(bin_dir / "jupyter"), "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "JupyterLab exited:\n" + (home / "lab.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                log_text = (home / "lab.log").read_text()
                assert time.monotonic() < deadline, "JupyterLab did not start in 120 s:\n" + log_text
                time.sleep(0.5)
        yield url, home
    finally:
        proc.terminate()  # SIGTERM: JupyterLab shuts its kernels down
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture()
def page():
    from playwright.sync_api import sync_playwright

    require_chromium()
    SHOTS.mkdir(exist_ok=True)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                                           headless=True, viewport={"width": 1280, "height": 1000})
            pg = context.pages[0]
            pg.set_default_timeout(60_000)
            yield pg
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def shut_down_kernels(url: str) -> None:
    """Stop every kernel the test started (the next notebook gets the CPU)."""
    with urllib.request.urlopen(f"{url}/api/sessions?token={TOKEN}", timeout=10) as response:
        sessions = json.load(response)
    for session in sessions:
        request = urllib.request.Request(f"{url}/api/sessions/{session['id']}?token={TOKEN}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


def open_notebook(page, url: str, name: str) -> float:
    from playwright.sync_api import expect

    t0 = time.perf_counter()
    workspace = re.sub(r"\W", "", name)  # a fresh workspace per notebook: no other notebook's tab or kernel
    page.goto(f"{url}/lab/workspaces/{workspace}/tree/{name}?reset&token={TOKEN}")
    # Not the toolbar's idle dot: it reads idle before the kernel is connected, and an early Run All is lost.
    expect(page.locator(".jp-StatusBar-Widget")).to_contain_text(KERNEL_IDLE, timeout=240_000)
    return time.perf_counter() - t0


ERROR_CELLS = """() => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell')];
  const outputs = document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
  const errors = [...outputs].filter(el => el.textContent.includes('Traceback (most recent call last)'));
  return errors.map(el => [cells.indexOf(el.closest('.jp-Cell')), el.textContent.slice(-1500)]);
}"""


def wait_run_all(page, name: str, t0: float) -> float:
    """Seconds until Run All is over: the kernel idle (twice, a second apart), no cell waiting, and the last cell
    run; fails with the error's text if a cell raised that is not tagged raises-exception (Run All stops there)."""
    import nbformat

    cells = nbformat.read(REPO / "notebooks" / name, as_version=4).cells
    expected = {i for i, cell in enumerate(cells) if "raises-exception" in cell.metadata.get("tags", [])}
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
    quiet = 0
    while True:
        time.sleep(1.0)
        texts = prompts.evaluate_all("els => els.map(e => e.textContent)")  # off-screen cells have no innerText
        idle = KERNEL_IDLE in page.locator(".jp-StatusBar-Widget").inner_text()
        unexpected = [(i, text) for i, text in page.evaluate(ERROR_CELLS) if i not in expected]
        quiet = quiet + 1 if idle and not any("*" in t for t in texts) else 0
        if quiet >= 2 and (re.search(r"\[\d+\]", texts[-1]) or unexpected):
            break
        if time.perf_counter() - t0 > RUN_ALL_TIMEOUT_MS / 1000:
            page.screenshot(path=str(SHOTS / f"{name}_run_all_timeout.png"))
            raise AssertionError(f"{name}: Run All did not finish in {RUN_ALL_TIMEOUT_MS / 1000:.0f} s")
    if unexpected:
        page.screenshot(path=str(SHOTS / f"{name}_error.png"))
        raise AssertionError(f"{name}: cell {unexpected[0][0]} raised: {unexpected[0][1]}")
    return time.perf_counter() - t0


def record(line: str) -> None:
    print("  " + line, flush=True)
    with open(SHOTS / "browser_report.txt", "a") as f:
        f.write(line + "\n")


def test_lab_shows_no_news_popup_and_chinese_terms_render_with_real_glyphs(lab, page):
    url, _ = lab
    try:
        check_start_page(page, url)
    finally:
        shut_down_kernels(url)


def check_start_page(page, url: str) -> None:
    from playwright.sync_api import expect

    name = notebook("00").name
    seconds = open_notebook(page, url, name)
    term = page.locator(".jp-RenderedMarkdown").get_by_text(re.compile("客流预测")).first
    expect(term).to_be_visible()
    page.wait_for_timeout(3000)  # the news question, when enabled, shows up about a second after the page
    assert page.get_by_text(NEWS).count() == 0, "JupyterLab asks about news: the workbook's lab settings are missing"
    # With no CJK font every character is drawn as the same empty box ("tofu"): draw two different characters
    # and a character no font has in the paragraph's own font and compare the pixels.
    pixels = term.evaluate("""(el) => {
      const font = getComputedStyle(el).font;
      const draw = (text) => { const c = document.createElement('canvas'); c.width = 64; c.height = 64;
        const g = c.getContext('2d'); g.font = font.replace(/\\d+(\\.\\d+)?px/, '40px'); g.fillText(text, 4, 48);
        return Array.from(g.getImageData(0, 0, 64, 64).data).join(','); };
      return {a: draw('客'), b: draw('流'), none: draw('\\u0378'), font};
    }""")
    assert pixels["a"] != pixels["b"], f"two Chinese characters render alike (empty boxes) in {pixels['font']}"
    assert pixels["a"] != pixels["none"], "a Chinese character renders as the missing-glyph box"
    term.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "00_chinese_terms.png"))
    record(f"00: page + kernel idle {seconds:.1f} s; no news pop-up; Chinese glyphs distinct ({pixels['font']})")


@pytest.mark.parametrize("number", WIDGET_NOTEBOOKS)
def test_every_widget_follows_its_controls(lab, page, number):

    url, _ = lab
    try:
        drive_notebook(page, url, number)
    finally:
        shut_down_kernels(url)  # the next notebook gets the CPU, and its own kernel only


def drive_notebook(page, url: str, number: str) -> None:
    name = notebook(number).name
    t_notebook = time.perf_counter()
    seconds = open_notebook(page, url, name)
    t0 = time.perf_counter()
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator('li[data-command="runmenu:run-all"]').click()
    run_all = wait_run_all(page, name, t0)
    assert page.get_by_text("Error displaying widget").count() == 0
    widgets = roots(page)
    assert widgets, f"{name}: no widget found in the outputs"
    record(f"{number}: page + kernel idle {seconds:.1f} s, Run All {run_all:.1f} s, {len(widgets)} widget(s), "
           f"load {os.getloadavg()[0]:.1f}")
    for i, root in enumerate(widgets):
        report = drive(page, root, f"{number}_widget{i}", SHOTS, REDRAW_S, TRAIN_S)
        record(report.line())
        if report.train_s is not None:  # a training widget reports validation error, never test error
            assert "validation" in report.text_after and not re.search(r"\btest\b", report.text_after), (
                f"{name}: {report.text_after!r}")
    assert page.get_by_text("Error displaying widget").count() == 0
    page.screenshot(path=str(SHOTS / f"{number}_lab.png"))
    record(f"{number}: whole test {time.perf_counter() - t_notebook:.1f} s")
