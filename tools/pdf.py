"""The whole book as one PDF: each page of the table of contents printed by headless Chromium
(offline, from the built HTML folder, after MathJax has typeset it), behind a title page, merged
in order with pypdf.

    python tools/pdf.py [--html _build/html] [--out _build/closedloop.pdf]

Explorers print as their static form at its first frame. ``make pdf`` calls it after
``make book``; the browser test checks the PDF of the small-scale book. Without Chromium or
its driver it stops before any work, with one line naming what is missing, and exits 1; the
PDF is written to a temporary file beside ``--out`` and renamed at the end, so a failure
leaves no half-written PDF.
"""

from __future__ import annotations

import argparse
import datetime
import html
import os
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from book import toc_pages as pages  # noqa: E402
from webdriver import WAIT_FOR_MATHJAX, Browser, missing  # noqa: E402

# print the page, not the site: no sidebars, header, footer or navigation buttons
PRINT_CSS = """
.bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .bd-footer, .bd-footer-article,
.prev-next-area, .header-article, .bd-header-article, #pst-back-to-top, .bd-search,
.sidebar-toggle { display: none !important; }
.bd-main .bd-content .bd-article-container { max-width: 100% !important; }
.bd-page-width { max-width: 100% !important; }
.cl-explorer input[type=range] { display: none !important; }
"""

INJECT = "var s = document.createElement('style'); s.textContent = arguments[0];" \
         "document.head.appendChild(s); return true;"


def title_page(path: Path, titles: list[str]) -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    items = "".join(f"<li>{html.escape(t)}</li>" for t in titles)
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><style>"
        "body{font-family:sans-serif;margin:20% 12%;} h1{font-size:28pt;margin-bottom:4pt;}"
        "p{color:#444;} li{margin:4pt 0;}</style></head><body>"
        f"<h1>{html.escape(config['title'])}</h1>"
        f"<p>{html.escape(config.get('author', ''))}</p>"
        "<p>An executable book on Ger &amp; Barak, <i>Learning Dynamics of RNNs in Closed-Loop "
        "Environments</i> (NeurIPS 2025). Every number and figure was computed when this "
        f"book was built, on {datetime.date.today().isoformat()}.</p>"
        f"<h2>Contents</h2><ol>{items}</ol></body></html>")


def make_pdf(html_dir: Path, out: Path) -> dict:
    """Print every page and merge them into ``out``; returns {page: number of PDF pages}.
    ``out`` appears complete or not at all (written beside it, then renamed)."""
    from pypdf import PdfReader, PdfWriter

    html_dir = Path(html_dir)
    missing = [p for p in pages() if not (html_dir / f"{p}.html").exists()]
    if missing:
        raise FileNotFoundError(f"pages not built in {html_dir}: {missing}")
    writer, counts = PdfWriter(), {}
    browser = Browser(offline=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            titles = []
            for p in pages():
                browser.get((html_dir / f"{p}.html").as_uri())
                titles.append(browser.js("var h = document.querySelector('main h1, h1');"
                                         "return h ? h.textContent.replace('#', '').trim() "
                                         ": document.title;"))
            title_page(tmp / "title.html", titles)
            sources = [("title", (tmp / "title.html").as_uri())] + [
                (p, (html_dir / f"{p}.html").as_uri()) for p in pages()]
            for name, url in sources:
                browser.get(url)
                math = browser.js_async(WAIT_FOR_MATHJAX)
                if math.get("unrendered"):
                    raise RuntimeError(f"{name}: equations left as TeX: {math['unrendered'][:3]}")
                browser.js(INJECT, PRINT_CSS)
                part = tmp / f"{len(counts):02d}.pdf"
                browser.print_pdf(part)
                reader = PdfReader(part)
                counts[name] = len(reader.pages)
                writer.append(reader, outline_item=titles[len(counts) - 2]
                              if name != "title" else "Title")
    finally:
        browser.close()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")  # same folder: the rename is atomic
    try:
        with open(partial, "wb") as f:
            writer.write(f)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--html", default=str(ROOT / "_build" / "html"))
    ap.add_argument("--out", default=str(ROOT / "_build" / "closedloop.pdf"))
    args = ap.parse_args(argv)
    reason = missing("make pdf (tools/pdf.py)")
    if reason:  # before any work: one line, no traceback, exit status 1
        sys.exit(reason)
    counts = make_pdf(Path(args.html), Path(args.out))
    print(f"wrote {args.out}: {sum(counts.values())} pages "
          f"({', '.join(f'{k} {v}' for k, v in counts.items())})")


if __name__ == "__main__":
    main()
