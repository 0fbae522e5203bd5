"""Build the book: execute the chapters (in parallel), then the report, then the HTML.

    python tools/book.py                       # paper scale: _build/executed -> _build/html
    python tools/book.py --params tests/notebook_params.json --executed _build/ci --no-html

1. Every chapter of book/ runs through papermill at its stored parameters (or those of
   ``--params``) into ``--executed``, each process on one torch thread (two torch processes
   with default threads on two cores run many times slower), ``--jobs`` processes at a time,
   in ``ORDER``. The chapters that can spread their own work over processes (Chapter 1's
   training pairs, Chapter 5's Dask cluster) take every slot when they start last, one
   slot beside another chapter otherwise (``schedule``). A failing chapter stops the
   build with its error.
2. The reproduction report (book/report.ipynb) runs last: it reads the chapters' glued
   values from ``--executed`` and re-runs nothing.
3. The HTML book is built from the executed notebooks with execution off (the same
   ``_config.yml`` and ``_toc.yml``, staged under ``<out>/src``), with ``-W -n``: any
   warning, a broken reference or a missing glue, fails it.

Python's standard library, PyYAML, papermill and jupyter-book only; ``make book`` calls it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REPORT = "report.ipynb"
# the order chapters start in, so that the slots finish together (paper scale, measured in
# the build on 2 cores, December 2026, each chapter on one slot: Chapter 1 163 s; Chapter 4
# 125 s; Chapter 5 65 s; Chapter 6 32 s; Chapter 3 30 s; Chapter 2 29 s): Chapter 1 on one
# slot, Chapter 4 on the other and then Chapter 5, then the short ones on whichever is free.
# Chapter 1 on both slots first (91 s) left one idle at its tail and the other for the
# short ones' 20 s imbalance: 243 s in all against 232 s
ORDER = ["ch1_open_closed.ipynb", "ch4_tracking.ipynb", "ch5_atlas.ipynb",
         "ch6_plants.ipynb", "ch2_stages.ipynb", "ch3_tradeoff.ipynb"]
# chapters that can spread their work over processes, and the parameter that says over how
# many (their numbers do not depend on it: tests/test_excursion.py, tests/test_sweep.py). A
# wide chapter takes every slot when it starts last (nothing waits for a slot), one slot
# otherwise: no slot sits idle while a chapter waits.
WIDE = {"ch1_open_closed.ipynb": "workers", "ch5_atlas.ipynb": "n_workers"}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def toc_pages() -> list[str]:
    """Every page of _toc.yml in order, as paths without suffix (book/intro, ...)."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                pages.append(e["file"])
            walk(e.get("sections")), walk(e.get("chapters"))
            for part in e.get("parts", []):
                walk(part.get("chapters"))

    walk(toc.get("chapters")), walk(toc.get("parts"))
    return pages


def chapters() -> list[str]:
    names = sorted(p.name for p in (ROOT / "book").glob("*.ipynb") if p.name != REPORT)
    return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))


def execute(name: str, out: Path, params: dict, env: dict) -> float:
    """papermill one notebook of book/ into ``out``; returns its wall time in seconds."""
    cmd = [str(BIN / "papermill"), str(ROOT / "book" / name), str(out / name), "--cwd",
           str(ROOT / "book"), "-k", "python3", "--no-progress-bar", "--log-level", "ERROR"]
    if params:
        path = out / f".{name}.params.json"
        path.write_text(json.dumps(params))
        cmd += ["-f", str(path)]
    t = time.perf_counter()
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"{name} failed:\n{run.stderr[-4000:]}")
    return time.perf_counter() - t


def schedule(names: list[str], jobs: int, params: dict):
    """(name, slots, parameters) in the order the chapters start, each on one of ``jobs``
    slots, but for a wide chapter (``WIDE``) that starts last: it has every slot to itself and
    spreads over them (started first, it would leave a slot idle at its own tail while the
    others wait). A wide parameter given in ``params`` is kept as given."""
    out = []
    for k, name in enumerate(names):
        own = dict(params.get(name, {}))
        slots = jobs if name in WIDE and k == len(names) - 1 else 1
        if name in WIDE:
            own.setdefault(WIDE[name], slots)
        out.append((name, slots, own))
    return out


def execute_all(out: Path, params: dict | None = None, jobs: int = 2) -> dict:
    """Every chapter (``schedule``), then the report; returns {notebook: seconds}."""
    out.mkdir(parents=True, exist_ok=True)
    params = params or {}
    env = dict(os.environ, **ONE_THREAD, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    times, free = {}, threading.Semaphore(jobs)

    def one(name, slots, own):
        try:
            times[name] = execute(name, out, own, env)
            print(f"  {name}: {times[name]:.0f} s", flush=True)
        finally:
            for _ in range(slots):
                free.release()

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = []
        for name, slots, own in schedule(chapters(), jobs, params):
            for _ in range(slots):  # a slot per process the chapter runs
                free.acquire()
            running.append(pool.submit(one, name, slots, own))
            failed = [f for f in running if f.done() and f.exception()]
            if failed:
                failed[0].result()  # the first failure stops the build with its error
        for f in running:
            f.result()
    report = {"executed": str(out), **params.get(REPORT, {})}
    one_report = dict(params, **{REPORT: report})
    times[REPORT] = execute(REPORT, out, one_report[REPORT], env)
    return times


def stage_and_build(executed: Path, out: Path) -> Path:
    """The HTML book from executed notebooks (execution off) into ``out``; returns the html
    folder. Raises with Sphinx's output when the build has a warning."""
    import yaml

    src = out / "src"
    shutil.rmtree(out, ignore_errors=True)
    src.mkdir(parents=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"  # executed above
    static = config["sphinx"]["config"].get("html_static_path", [])
    config["sphinx"]["config"]["html_static_path"] = [str(ROOT / p) for p in static]
    local = config["sphinx"].get("local_extensions") or {}
    config["sphinx"]["local_extensions"] = {k: str(ROOT / p) for k, p in local.items()}
    config["bibtex_bibfiles"] = [str(ROOT / p) for p in config.get("bibtex_bibfiles", [])]
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy(ROOT / "_toc.yml", src / "_toc.yml")
    shutil.copytree(ROOT / "book", src / "book", ignore=shutil.ignore_patterns("*.ipynb", ".*"))
    for p in (ROOT / "book").glob("*.ipynb"):
        done = executed / p.name
        if not done.exists():
            raise FileNotFoundError(f"no executed {p.name} in {executed}")
        nb = json.loads(done.read_text())
        if p.name == REPORT:  # its folder, injected by papermill, is not for the reader
            for cell in nb["cells"]:
                tags = cell.get("metadata", {}).get("tags", [])
                if "injected-parameters" in tags:
                    cell["metadata"]["tags"] = tags + ["remove-cell"]
        (src / "book" / p.name).write_text(json.dumps(nb))
    for p in static:
        if not (ROOT / p).is_dir():
            raise FileNotFoundError(f"{p}/ is missing: run `python tools/fetch_assets.py`")
    run = subprocess.run([str(BIN / "jupyter-book"), "build", "--all", "-W", "-n",
                          "--keep-going", "--path-output", str(out), str(src)],
                         capture_output=True, text=True, cwd=ROOT)
    if run.returncode:
        raise RuntimeError(f"the book did not build:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}")
    return out / "_build" / "html"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--executed", default="_build/executed", help="folder of executed notebooks")
    ap.add_argument("--out", default="_build", help="the book goes to OUT/html")
    ap.add_argument("--params", help="JSON {notebook: {parameter: value}} (default: stored)")
    ap.add_argument("--jobs", type=int, default=2, help="chapters executed at once")
    ap.add_argument("--no-html", action="store_true", help="execute only")
    args = ap.parse_args(argv)
    params = json.loads(Path(args.params).read_text()) if args.params else {}
    executed = (ROOT / args.executed).resolve()
    t = time.perf_counter()
    times = execute_all(executed, params, args.jobs)
    print(f"executed {len(times)} notebooks in {time.perf_counter() - t:.0f} s", flush=True)
    if args.no_html:
        return
    html = stage_and_build(executed, (ROOT / args.out / "book").resolve())
    final = ROOT / args.out / "html"
    shutil.rmtree(final, ignore_errors=True)
    shutil.copytree(html, final)
    print(f"built in {time.perf_counter() - t:.0f} s: {final / 'index.html'}")


if __name__ == "__main__":
    main()
