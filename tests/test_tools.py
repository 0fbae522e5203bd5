"""The build tools' failure paths: `make pdf` without Chromium stops at once with one line and
writes no PDF, a PDF that fails while being written is not left half-written, and `make bench`
keeps every row it measured when a late step fails, its report reading the chapters that the
same run executed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import benchmarks.__main__ as bench

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import book as book_tool  # noqa: E402
import pdf as pdf_tool  # noqa: E402

PARAMS = ROOT / "tests" / "notebook_params.json"


def built_pages(html: Path) -> Path:
    """A folder holding an (empty) page for every entry of the table of contents, so that
    tools/pdf.py finds the book built and would go on to start the browser."""
    for page in book_tool.toc_pages():
        path = html / f"{page}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<!doctype html><html><head><title>t</title></head><body><h1>t</h1>"
                        "</body></html>")
    return html


# -- make pdf ---------------------------------------------------------------------------------
def test_pdf_without_chromium_stops_at_once_with_one_line(tmp_path):
    """tools/pdf.py with chromium and chromedriver hidden from PATH (webdriver.py looks them
    up with shutil.which): exit 1, one line on stderr naming both and the Debian packages,
    nothing on stdout, no PDF and no partial file."""
    html = built_pages(tmp_path / "html")
    empty = tmp_path / "bin"  # PATH holds nothing: no chromium, no chromedriver
    empty.mkdir()
    out = tmp_path / "pdf" / "closedloop.pdf"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "pdf.py"), "--html", str(html),
                          "--out", str(out)], env={"PATH": str(empty), "HOME": str(tmp_path)},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0] == (
        "make pdf (tools/pdf.py) needs headless Chromium and its driver: chromium not found, "
        "chromedriver not found (Debian: apt-get install chromium chromium-driver; .ci/run "
        "installs them)")
    assert not out.exists() and not out.parent.exists()


def blank_page() -> bytes:
    """A one-page PDF: a blank A4 page."""
    import io

    from pypdf import PdfWriter

    writer, buf = PdfWriter(), io.BytesIO()
    writer.add_blank_page(width=595, height=842)
    writer.write(buf)
    return buf.getvalue()


class FakeBrowser:
    """Stands in for webdriver.Browser: every page has a title, no math, and prints as one
    blank A4 page."""

    page = blank_page()

    def __init__(self, offline=True):
        self.closed = False

    def get(self, url):
        self.url = url

    def js(self, script, *args):
        return True if args else "A page"

    def js_async(self, script, *args):
        return {"math": 0, "unrendered": []}

    def print_pdf(self, path):
        path.write_bytes(self.page)

    def close(self):
        self.closed = True


def test_a_pdf_that_fails_while_written_leaves_no_file(tmp_path, monkeypatch):
    """The merged PDF is written beside ``out`` and renamed when complete: a write that fails
    half-way leaves neither ``out`` nor the partial file; one that succeeds leaves ``out``
    only."""
    from pypdf import PdfReader, PdfWriter

    html = built_pages(tmp_path / "html")
    out = tmp_path / "pdf" / "closedloop.pdf"
    out.parent.mkdir()
    monkeypatch.setattr(pdf_tool, "Browser", FakeBrowser)
    real_write, written = PdfWriter.write, []

    def half_write(self, stream):  # the merged book's write, once every page has printed
        written.append(Path(stream.name))
        stream.write(b"%PDF-1.7\n% the first bytes only")
        raise OSError("No space left on device")

    monkeypatch.setattr(PdfWriter, "write", half_write)
    with pytest.raises(OSError, match="No space left"):
        pdf_tool.make_pdf(html, out)
    assert len(written) == 1 and written[0].parent == out.parent
    assert list(out.parent.iterdir()) == []

    monkeypatch.setattr(PdfWriter, "write", real_write)
    counts = pdf_tool.make_pdf(html, out)
    assert list(out.parent.iterdir()) == [out]
    assert len(PdfReader(out).pages) == sum(counts.values()) == len(book_tool.toc_pages()) + 1


# -- make bench -------------------------------------------------------------------------------
def test_bench_runs_the_report_last():
    names = bench.chapter_names()
    assert names[-1] == bench.REPORT
    assert set(names) == {p.name for p in (ROOT / "book").glob("*.ipynb")}


def test_bench_keeps_the_rows_measured_before_a_failure(tmp_path, monkeypatch):
    """A planted failure at the third comparison: results.md already holds the first two rows
    when it starts (written as each ended, so a killed run keeps them too), and after it a
    line that says the run stopped and why; the error still ends the run."""
    out = tmp_path / "bench"
    calls, seen = [], []

    def compare(plain, fast, repeats=7):
        calls.append(repeats)
        seen.append((out / "results.md").read_text())
        if len(calls) == 3:
            raise RuntimeError("planted: the third comparison fails")
        return bench.Timing(0.002 * len(calls), 0.001, [2.0, 2.0], (0.1, 0.2))

    monkeypatch.setattr(bench, "compare", compare)
    (out).mkdir()
    (out / "results.md").write_text("| an earlier run's row |\n")
    with pytest.raises(RuntimeError, match="planted"):
        bench.main(["--out", str(out), "--repeats", "1"])
    assert ["x |" in s for s in seen] == [False, True, True]  # one row, then two
    assert "| tanh epoch (N=100, T=50, batch 100) | 4.0 ms" in seen[2]
    text = (out / "results.md").read_text()
    assert "an earlier run's row" not in text
    assert "| rank-one epoch (N=100, T=50, batch 100) | 2.0 ms | 1.0 ms | 2.0x |" in text
    assert "| tanh epoch (N=100, T=50, batch 100) | 4.0 ms | 1.0 ms | 4.0x |" in text
    assert "states by doubling" not in text
    assert text.rstrip().endswith("**The run stopped early** (after the last row above): "
                                  "RuntimeError: planted: the third comparison fails")


CHEAP = "ch3_tradeoff.ipynb"  # about 13 s at the small parameters on one thread


def test_bench_chapters_feed_their_report_and_keep_their_rows(tmp_path, monkeypatch):
    """`python -m benchmarks --chapters` into a fresh folder (as on a clean clone: no
    _build/executed), at the small parameters, with the comparisons left out and the chapter
    list cut to one chapter and the report. The report is given the bench's own folder: it
    finds the chapter that this run executed there, and stops on the chapters it did not run
    (not on a missing folder). results.md keeps the chapter's row and says where the run
    stopped."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.setattr(bench, "kernels", lambda args, results: None)
    monkeypatch.setattr(bench, "chapter_names", lambda: [CHEAP, bench.REPORT])
    out = tmp_path / "bench"
    real_time, seen = bench.chapter_time, {}

    def chapter_time(name, *args, **kwargs):  # results.md as each notebook starts
        seen[name] = (out / "results.md").read_text()
        return real_time(name, *args, **kwargs)

    monkeypatch.setattr(bench, "chapter_time", chapter_time)
    with pytest.raises(RuntimeError) as err:
        bench.main(["--chapters", "--params", str(PARAMS), "--out", str(out)])
    first = str(err.value).splitlines()[0]
    assert first.startswith("report.ipynb failed: ") and "MissingNumber" in first, first
    assert "the chapter's executed notebook is missing" in first, first
    assert "no folder of executed chapters" not in str(err.value)
    assert Path(CHEAP).stem not in first  # the chapter it ran was found

    # the report read this run's folder, by the parameter papermill injected
    cells = json.loads((out / bench.REPORT).read_text())["cells"]
    injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1
    assert f"executed = {json.dumps(str(out.resolve()))}" in "".join(injected[0]["source"])
    assert json.loads((out / CHEAP).read_text())["metadata"]["papermill"]["parameters"] == \
        json.loads(PARAMS.read_text())[CHEAP]

    assert f"| {CHEAP} | " not in seen[CHEAP] and f"| {CHEAP} | " in seen[bench.REPORT]
    text = (out / "results.md").read_text()
    assert f"## Chapters at the parameters of {PARAMS} (papermill)" in text
    rows = [line for line in text.splitlines() if ".ipynb |" in line]
    assert len(rows) == 1 and rows[0].startswith(f"| {CHEAP} | "), rows
    assert "**The run stopped early** (after the last row above): RuntimeError: report.ipynb " \
           "failed: " in text


def test_the_build_schedule_keeps_every_slot_busy():
    """One slot per chapter in ORDER; a wide chapter that starts last has every slot to itself
    and spreads over them, one that starts earlier (Chapter 1 first, Chapter 5 in the middle)
    runs beside another chapter on one process; a wide parameter given by the caller is
    kept."""
    names = book_tool.chapters()
    plan = book_tool.schedule(names, 2, {})
    assert [n for n, _, _ in plan] == names == book_tool.ORDER
    assert plan[0] == ("ch1_open_closed.ipynb", 1, {"workers": 1})
    assert dict((n, (slots, own)) for n, slots, own in plan)["ch5_atlas.ipynb"] == (
        1, {"n_workers": 1})
    assert all(slots == 1 for _, slots, _ in plan)
    given = book_tool.schedule(names, 2, {"ch1_open_closed.ipynb": {"workers": 3, "N": 8}})
    assert given[0] == ("ch1_open_closed.ipynb", 1, {"workers": 3, "N": 8})
    last = book_tool.schedule(names[1:] + names[:1], 3, {})[-1]
    assert last == ("ch1_open_closed.ipynb", 3, {"workers": 3})
