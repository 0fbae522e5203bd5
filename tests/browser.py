"""The built book in headless Chromium: offline, from the local build folder, as a reader opens it.

Builds the book from the chapters that `make notebooks` executed at small scale (_build/ci/),
with execution off, into _build/browser/ (the same _config.yml and _toc.yml as `make book`;
only the notebooks and `execute_notebooks` differ). Then opens every page of the table of
contents as a file:// URL in headless Chromium in which no host name resolves (no network at
all), and checks on each page:

- no failed resource load and no request to the network (Chromium's network events);
- no error in the console (SEVERE log entries: JavaScript errors, failed loads);
- every <img> loaded (complete, naturalWidth > 0), figures and explorer frames alike;
- every equation rendered by MathJax (each `.math` element holds an `mjx-container`, no
  `mjx-merror`);
- on a chapter: at least one static explorer, and pressing an arrow key on its slider changes
  the frame shown (another image, one visible at a time) and its label.

And the live form in a real front end: a JupyterLab server on 127.0.0.1 runs a small notebook
with Chapter 2's explorer; moving its slider redraws the figure, and its train button is
disabled while it trains, shows a progress bar and ends with a status.

Screenshots go to _build/browser/screenshots/: the top of each page, each explorer, and the
live explorer in JupyterLab after training.
Kept out of the default test collection (the name does not start with test_); `make browser`
runs it after `make notebooks`. Skipped, saying why, where chromium or chromedriver is
missing (Debian packages chromium and chromium-driver; .ci/run installs them).

The browser is driven through chromedriver's W3C WebDriver HTTP interface with the standard
library (urllib), which is all this needs.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CI_NB = ROOT / "_build" / "ci"
OUT = ROOT / "_build" / "browser"
SRC = OUT / "src"
HTML = OUT / "_build" / "html"
SHOTS = OUT / "screenshots"
JB = Path(sys.executable).with_name("jupyter-book")
sys.path.insert(0, str(ROOT / "tools"))
import book as book_tool  # noqa: E402
import pdf  # noqa: E402,F401  (tools/pdf.py, for test_the_book_as_one_pdf)
from webdriver import CHROMEDRIVER, CHROMIUM, ELEMENT, WAIT_FOR_MATHJAX, Browser  # noqa: E402


pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="the browser test needs headless Chromium and its driver: chromium "
           f"{'found' if CHROMIUM else 'not found'}, chromedriver "
           f"{'found' if CHROMEDRIVER else 'not found'} (Debian: apt-get install chromium "
           "chromium-driver; .ci/run installs them)")


PAGES = book_tool.toc_pages()
CHAPTERS = [p for p in PAGES if Path(p).name.startswith("ch") and (ROOT / f"{p}.ipynb").exists()]


# -- the book ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def book() -> Path:
    """Build the book from the small-scale executed notebooks, once; returns the html folder."""
    missing = [p for p in CHAPTERS if not (CI_NB / f"{Path(p).name}.ipynb").exists()]
    if missing:
        pytest.fail(f"no executed notebook in {CI_NB} for {missing}: run `make notebooks` first")
    try:
        return book_tool.stage_and_build(CI_NB, OUT)
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


# -- the checks -------------------------------------------------------------------------------
BROKEN_IMAGES = """
return Array.from(document.images)
  .filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
  .map(function (i) { return (i.getAttribute('src') || '').slice(0, 80); });
"""

EXPLORER_STATE = """
var ex = document.querySelectorAll('.cl-explorer')[arguments[0]];
var frames = Array.from(ex.querySelectorAll('img.cl-frame'));
var shown = frames.filter(function (f) { return f.style.display !== 'none'; });
var s = ex.querySelector('input[type=range]');
return {frames: frames.length, declared: +ex.getAttribute('data-frames'),
        shown: shown.map(function (f) { return frames.indexOf(f); }),
        src: shown.length ? shown[0].src.length + ':' + shown[0].src.slice(-64) : '',
        label: ex.querySelector('.cl-explorer-label').textContent,
        value: +s.value, max: +s.max};
"""


def network_problems(entries) -> list[str]:
    """Failed loads and network requests among Chromium's performance-log events."""
    urls, problems = {}, []
    for entry in entries:
        msg = json.loads(entry["message"])["message"]
        method, params = msg["method"], msg.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if url.startswith(("http://", "https://")):
                problems.append(f"request to the network: {url}")
        elif method == "Network.loadingFailed":
            url = urls.get(params["requestId"], "?")
            problems.append(f"failed to load {url[:120]}: {params.get('errorText')}")
        elif method == "Network.responseReceived" and params["response"].get("status", 0) >= 400:
            problems.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
    return sorted(set(problems))


@pytest.mark.parametrize("page", PAGES)
def test_page_works_offline(book, browser, page):
    html = book / f"{page}.html"
    assert html.exists(), f"{html} was not built"
    browser.log("performance"), browser.log("browser")  # drop what earlier pages left
    browser.get(html.as_uri())
    math = browser.js_async(WAIT_FOR_MATHJAX)
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(SHOTS / f"{Path(page).name}.png")
    problems = network_problems(browser.log("performance"))
    console = [f"{e['level']}: {e['message'][:300]}" for e in browser.log("browser")
               if e["level"] == "SEVERE"]
    broken = browser.js(BROKEN_IMAGES)
    n_images = browser.js("return document.images.length;")

    assert not problems, "failed or network loads:\n" + "\n".join(problems)
    assert not console, "console errors:\n" + "\n".join(console)
    assert not broken, f"{len(broken)} of {n_images} images did not load: {broken}"
    assert math.get("mathjax") or not math["math"], "MathJax did not load"
    assert "failed" not in math, f"MathJax failed: {math['failed']}"
    assert not math["unrendered"], f"equations left as TeX: {math['unrendered'][:5]}"
    assert math["errors"] == 0, f"{math['errors']} equations have TeX errors (mjx-merror)"
    assert not math.get("stray"), f"TeX left as text in the prose: {math['stray'][:5]}"
    if page in CHAPTERS:
        assert n_images > 0, "a chapter without a single figure"
        assert math["math"] > 0, "a chapter without a single equation"


@pytest.mark.parametrize("page", CHAPTERS)
def test_static_explorer_scrubs(book, browser, page):
    browser.get((book / f"{page}.html").as_uri())
    deadline = time.time() + 20  # a page of inline frames can still be parsing
    while True:
        sliders = browser.find_all(".cl-explorer input[type=range]")
        explorers = browser.find_all(".cl-explorer")
        if (explorers and len(sliders) == len(explorers)) or time.time() > deadline:
            break
        time.sleep(0.2)
    assert explorers, "every chapter has an explorer in its static form (closedloop.widgets)"
    assert len(sliders) == len(explorers)
    for i, (ex, slider) in enumerate(zip(explorers, sliders)):
        before = browser.js(EXPLORER_STATE, i)
        assert before["frames"] == before["declared"] >= 2, before
        assert len(before["shown"]) == 1, f"one frame at a time, got {before['shown']}"
        browser.js("arguments[0].scrollIntoView({block: 'center'});", {ELEMENT: slider})
        key = "\ue012" if before["value"] == before["max"] else "\ue014"  # left or right arrow
        browser.keys(slider, key)
        after = browser.js(EXPLORER_STATE, i)
        assert after["value"] != before["value"], "the slider did not move"
        assert len(after["shown"]) == 1 and after["shown"] != before["shown"], (before, after)
        assert after["src"] != before["src"], "the frame shown did not change"
        assert after["label"] != before["label"], "the frame's label did not change"
        browser.screenshot(SHOTS / f"{Path(page).name}-explorer-{i}.png", element=ex)


# -- the live form, in JupyterLab -------------------------------------------------------------
LIVE_NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "from closedloop import DoubleIntegrator, RankOneAgent\n"
                   "from closedloop.plotting import use_style\n"
                   "from closedloop.training import train_closed_loop\n"
                   "from closedloop.explorers.ch2 import stage1_explorer\n"
                   "use_style()\n"
                   "env = DoubleIntegrator()\n"
                   "agent = RankOneAgent(N=20, seed=2)\n"
                   "history = train_closed_loop(agent, env, epochs=20, T=20)"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "stage1_explorer(env, 20, history, N=20, seed=2, n_frames=3, "
                   "train_epochs=400)"}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5}

STATUS = ("return Array.from(document.querySelectorAll('.jp-OutputArea .widget-label'))"
          ".map(function (e) { return e.innerText; }).join(' | ');")


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving one notebook; yields its URL."""
    lab = Path(sys.executable).with_name("jupyter-lab")
    if not lab.exists():
        pytest.skip("JupyterLab is not installed in this environment")
    root = tmp_path / "notebooks"
    root.mkdir()
    (root / "live.ipynb").write_text(json.dumps(LIVE_NOTEBOOK))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = base64.b16encode(os.urandom(8)).decode()
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path,  # a fresh Jupyter setup
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    server = subprocess.Popen(
        [str(lab), "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("JupyterLab did not start within 60 s")
            time.sleep(0.5)
    yield f"{base}/lab/tree/live.ipynb?token={token}"
    server.terminate()
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()


def _wait(browser, script, what, timeout=120, *args):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if browser.js(script, *args):
            return
        time.sleep(0.5)
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(SHOTS / "jupyterlab-timeout.png")
    pytest.fail(f"JupyterLab: timed out waiting for {what} (screenshot jupyterlab-timeout.png)")


def test_live_explorer_in_jupyterlab(jupyterlab):
    """The live form in a real front end: the figure is shown, a slider redraws it, and the
    train button trains once, disabled meanwhile, with a progress bar and a final status."""
    b = Browser(offline=False)  # the page talks to the local server
    try:
        b.get(jupyterlab)
        _wait(b, "return document.querySelectorAll('.jp-Notebook .jp-Cell .cm-content')"
                 ".length >= 2", "the notebook")
        time.sleep(3)  # the kernel starts
        for i in range(2):  # run both cells: Shift+Enter in each editor
            editor = b.find_all(".jp-Notebook .jp-Cell .cm-content")[i]
            b.cmd("POST", f"/element/{editor}/click", {})
            b.keys(editor, "\ue008\ue007")
            time.sleep(1)
        _wait(b, "return !!document.querySelector('.jp-OutputArea .widget-image')",
              "the explorer's figure")
        image = "return document.querySelector('.jp-OutputArea .widget-image').src;"
        first = b.js(image)
        handle = b.find_all(".jp-OutputArea .noUi-handle")[0]  # the s_zm slider
        b.js("arguments[0].scrollIntoView({block: 'center'});", {ELEMENT: handle})
        b.cmd("POST", f"/element/{handle}/click", {})
        b.keys(handle, "\ue014\ue014")
        _wait(b, f"return document.querySelector('.jp-OutputArea .widget-image').src "
                 f"!== {json.dumps(first)};", "the figure to follow the slider", 60)
        button = next(e for e in b.find_all(".jp-OutputArea button")
                      if b.cmd("GET", f"/element/{e}/text") == "train")
        b.js("arguments[0].scrollIntoView({block: 'center'});", {ELEMENT: button})
        b.cmd("POST", f"/element/{button}/click", {})
        _wait(b, "return arguments[0].disabled;", "the button to be disabled while training",
              30, {ELEMENT: button})
        assert "training..." in b.js(STATUS)
        _wait(b, "return !!document.querySelector('.jp-OutputArea .progress-bar');",
              "a progress bar", 30)
        _wait(b, STATUS.replace(".join(' | ');", ".join(' | ').indexOf('done in') >= 0;"),
              "the training to finish", 120)
        SHOTS.mkdir(parents=True, exist_ok=True)
        b.screenshot(SHOTS / "jupyterlab-live-explorer.png")
        assert not b.js("return arguments[0].disabled;", {ELEMENT: button})
        assert b.js(image) != first
    finally:
        b.close()


# -- what else readers do: search, dark mode, download, the PDF -------------------------------
SEARCH_RESULTS = """
var done = arguments[arguments.length - 1], t0 = Date.now();
(function wait() {
  var links = Array.from(document.querySelectorAll('#search-results ul.search li a'));
  var status = document.querySelector('#search-results .search-summary, #search-results p');
  if (links.length || (status && /did not match|found/i.test(status.textContent))
      || Date.now() - t0 > 30000) {
    done(links.map(function (a) { return a.getAttribute('href'); }));
  } else { setTimeout(wait, 200); }
})();
"""


def test_search_finds_a_word_of_one_chapter_and_lands_on_it(book, browser):
    """'diagrams' appears in Chapter 5 only: the offline search lists it and the link opens
    that chapter, with the word on the page."""
    pages_with_word = [p for p in PAGES if "diagrams" in (book / f"{p}.html").read_text()]
    assert [Path(p).name for p in pages_with_word] == ["ch5_atlas"], pages_with_word
    browser.get((book / "search.html").as_uri() + "?q=diagrams")
    links = browser.js_async(SEARCH_RESULTS)
    assert links and "ch5_atlas" in links[0], f"search results: {links}"
    browser.get((book / "search.html").as_uri().rsplit("/", 1)[0] + "/" + links[0])
    assert "ch5_atlas" in browser.js("return location.href;")
    assert "diagrams" in browser.js("return document.body.innerText;")


def _luminance(png: bytes, border: int = 3):
    """Mean relative luminance of an image's border pixels and the spread inside it."""
    import io

    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), float) / 255
    lum = a @ [0.2126, 0.7152, 0.0722]
    edge = np.concatenate([lum[:border].ravel(), lum[-border:].ravel(), lum[:, :border].ravel(),
                           lum[:, -border:].ravel()])
    return float(edge.mean()), float(np.percentile(lum, 99) - np.percentile(lum, 1))


@pytest.mark.parametrize("page", CHAPTERS)
def test_dark_mode_keeps_figures_readable(book, browser, page):
    """In dark mode the figures keep their light backgrounds (their ink stays dark on light,
    not dark on the dark page): each figure's border is light and its contrast high."""
    browser.get((book / f"{page}.html").as_uri())
    browser.js("document.documentElement.dataset.theme = 'dark';"
               "document.documentElement.dataset.mode = 'dark'; return true;")
    time.sleep(0.3)
    assert browser.js("return getComputedStyle(document.body).backgroundColor;") not in (
        "rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), "dark mode did not switch"
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(SHOTS / f"{Path(page).name}-dark.png")
    figures = browser.find_all("main figure img, main .cell_output img")[:3]
    assert figures, "no figure on the page"
    import base64

    for i, img in enumerate(figures):
        browser.js("arguments[0].scrollIntoView({block: 'center'});", {ELEMENT: img})
        png = base64.b64decode(browser.cmd("GET", f"/element/{img}/screenshot"))
        edge, contrast = _luminance(png)
        assert edge > 0.7, f"figure {i} has a dark or transparent background ({edge:.2f})"
        assert contrast > 0.5, f"figure {i} has too little contrast ({contrast:.2f})"
    browser.js("document.documentElement.dataset.theme = 'light';"
               "document.documentElement.dataset.mode = 'light'; return true;")


@pytest.mark.parametrize("page", CHAPTERS)
def test_the_download_button_gives_the_chapters_notebook(book, browser, page):
    browser.get((book / f"{page}.html").as_uri())
    for _ in range(100):  # on a loaded machine the page can still be settling: up to 10 s
        hrefs = browser.js("return document.readyState === 'complete' ? "
                           "Array.from(document.querySelectorAll('a'))"
                           ".map(function (a) { return a.href; })"
                           ".filter(function (h) { return /\\.ipynb$/.test(h); }) : [];")
        if hrefs:
            break
        time.sleep(0.1)
    name = f"{Path(page).name}.ipynb"
    mine = [h for h in hrefs if h.endswith("/" + name)]
    assert mine, f"no download link to {name}: {hrefs}"
    from urllib.parse import unquote, urlparse

    nb = json.loads(Path(unquote(urlparse(mine[0]).path)).read_text())
    assert nb["nbformat"] == 4 and any(c["cell_type"] == "code" for c in nb["cells"])
    assert any("parameters" in c["metadata"].get("tags", []) for c in nb["cells"])


def test_the_book_as_one_pdf(book, tmp_path):
    """tools/pdf.py on this build: a title page and every page of the table of contents,
    each chapter's title in the text, no equation left as TeX."""
    import pdf as pdf_tool
    from pypdf import PdfReader

    out = OUT / "closedloop.pdf"
    counts = pdf_tool.make_pdf(book, out)
    assert list(counts) == ["title", *PAGES]
    reader = PdfReader(out)
    assert len(reader.pages) == sum(counts.values()) >= len(PAGES) + 1
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    for p in CHAPTERS:
        title = json.loads((ROOT / f"{p}.ipynb").read_text())["cells"][0]["source"]
        heading = next(line for line in "".join(title).splitlines() if line.startswith("# "))
        assert heading[2:].split(":")[0].strip()[:20] in text, heading
    for tex in ("\\frac", "\\sum", "\\begin{", "\\lambda", "$$"):
        assert tex not in text, f"unrendered math in the PDF: {tex}"
