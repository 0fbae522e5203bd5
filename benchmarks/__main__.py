"""Run every benchmark once and write ``_build/bench/results.md`` and ``scaling.png``.

    python -m benchmarks              # epochs, ensemble, scaling in T and N
    python -m benchmarks --chapters   # also each chapter's wall time at paper scale
    python -m benchmarks --compile    # also torch.compile of the plain tanh loop (minutes)

Times are medians over repeats after a warm-up; ratios are plain / fast from the same run.
``results.md`` is rewritten after every measurement, so a run that fails (or is stopped) keeps
the rows it measured, under a line that says where and why it stopped. With ``--chapters``
every chapter runs through papermill into the output folder, then the reproduction report,
which reads the chapters this run executed there (not the book's ``_build/executed``).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullLocator  # noqa: E402
import torch  # noqa: E402

from . import authors, cases  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "bench"
REPORT = "report.ipynb"  # reads the glued values of the chapters executed before it


class Timing(NamedTuple):
    """One comparison: median seconds of each side, each round's ratio, the load average
    (1 min) before and after."""

    plain: float
    fast: float
    ratios: list
    load: tuple


def compare(plain, fast, repeats=7, per=(1, 1)) -> Timing:
    """Median times of ``repeats`` calls of each, in alternating rounds (a load change on the
    machine hits both alike). Each timed call follows an untimed call of the same function,
    as in training, not one of the other: the plain loop's memory traffic slows whatever runs
    right after it (here the tracking epoch by about 60%). The ratio of each round's pair and
    the load average before and after are kept for the report. ``per``: what each call's time
    is divided by (the epochs of each side's call, for times per epoch)."""
    tp, tf = [], []
    load0 = os.getloadavg()[0]
    for _ in range(repeats):
        for f, acc, n in ((plain, tp, per[0]), (fast, tf, per[1])):
            f()
            t = time.perf_counter()
            f()
            acc.append((time.perf_counter() - t) / n)
    return Timing(statistics.median(tp), statistics.median(tf),
                  [p / f for p, f in zip(tp, tf)], (load0, os.getloadavg()[0]))


class Results:
    """What this run has measured so far: the comparison rows, the scaling points and the
    chapter times, written to ``out/results.md`` again after each of them (``save``)."""

    def __init__(self, out: Path = OUT, chapter_params: str | None = None):
        self.out = Path(out)
        self.rows, self.scaling, self.chapters = [], {}, []
        self.chapter_params = chapter_params  # the --params file, None: paper scale
        self.stopped = None

    def save(self):
        self.out.mkdir(parents=True, exist_ok=True)
        write_table(self.rows, self.scaling, self.chapters, out=self.out,
                    chapter_params=self.chapter_params, stopped=self.stopped)


def _row(results: Results, label, timing: Timing, target):
    """Add a result row (the label, the comparison that made it, the target ratio) and
    rewrite results.md."""
    results.rows.append((label, timing, target))
    results.save()
    print(label, f"{timing.plain / timing.fast:.2f}x", flush=True)


def chapter_names() -> list[str]:
    """Every notebook of book/ in name order, the report last (it reads the others)."""
    names = sorted(p.name for p in (ROOT / "book").glob("*.ipynb") if p.name != REPORT)
    return names + [REPORT] if (ROOT / "book" / REPORT).exists() else names


def chapter_time(name, out: Path = OUT, params: dict | None = None):
    """Wall time of papermill running one notebook of book/ into ``out``, at its paper-scale
    parameters or at ``params``, with this checkout's package first on the kernel's path (not
    whichever copy is installed). The report is told to read ``out``: the chapters this run
    executed. Raises RuntimeError with the end of papermill's error output on a failure."""
    out = Path(out).resolve()
    params = dict(params or {})
    if name == REPORT:
        params["executed"] = str(out)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    cmd = [sys.executable, "-m", "papermill", f"book/{name}", str(out / name), "--cwd", "book",
           "--no-progress-bar"]
    if params:
        cmd += ["-y", json.dumps(params)]  # JSON is YAML
    t = time.perf_counter()
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if run.returncode:  # the first line: the notebook and its error (papermill's last line)
        last = next((ln for ln in reversed(run.stderr.splitlines()) if ln.strip()), "")
        raise RuntimeError(f"{name} failed: {last.strip()}\n{run.stderr[-3000:]}")
    return time.perf_counter() - t


def time_chapters(results: Results, params: dict | None = None, names=None):
    """Each notebook of ``names`` (default: every chapter, then the report) timed by
    ``chapter_time`` into ``results.out``, a row of results.md as each one ends."""
    params = params or {}
    for nb in chapter_names() if names is None else names:
        results.chapters.append((nb, chapter_time(nb, results.out, params.get(nb))))
        results.save()
        print(results.chapters[-1], flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chapters", action="store_true", help="time every chapter at paper scale")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile of the plain tanh loop (compiling: minutes)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--book", action="store_true", help="also time the whole make book")
    ap.add_argument("--test", action="store_true", help="also time the whole make test")
    ap.add_argument("--params", help="with --chapters: JSON {notebook: {parameter: value}} to "
                    "run the chapters at (e.g. tests/notebook_params.json; default: paper "
                    "scale)")
    ap.add_argument("--out", default=str(OUT), help="folder of results.md, scaling.png and "
                    "the executed chapters")
    args = ap.parse_args(argv)
    params = json.loads(Path(args.params).read_text()) if args.params else None
    results = Results(Path(args.out), args.params)
    results.save()  # a results.md from an earlier run is not left to pass for this one
    try:
        run(args, results, params)
    except BaseException as exc:
        first = str(exc).strip().splitlines()
        results.stopped = type(exc).__name__ + (f": {first[0]}" if first else "")
        results.save()
        raise
    print(f"wrote {results.out / 'results.md'} and {results.out / 'scaling.png'}")


def run(args, results: Results, params: dict | None):
    """Every measurement that ``args`` asks for, each saved to results.md as it ends."""
    kernels(args, results)
    if args.chapters:
        time_chapters(results, params)
    for flag, label, cmd in ((args.book, "make book (paper scale, tools/book.py)",
                              [sys.executable, "tools/book.py"]),
                             (args.test, "make test", ["make", "test"])):
        if flag:
            load0, t = os.getloadavg()[0], time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
            results.chapters.append((label, time.perf_counter() - t, load0,
                                     os.getloadavg()[0]))
            results.save()
            print(results.chapters[-1], flush=True)


def against_authors(args, results: Results, package_epochs: int = 200):
    """Whole training epochs, per epoch: a replica of the authors' loop
    (``benchmarks.authors``, its default epochs a call) against the package's training of the
    same model over runs of ``package_epochs``, alternating in one run, one thread each. A
    package run's fixed cost (its checks and the records of epoch 0 and of the last network)
    is in its time, spread over those epochs (a chapter spreads it over 1000-5000), and the
    label gives it: a 1-epoch run's time less one epoch."""
    from closedloop._threads import single_thread

    for label, pair, target in (
            ("tanh closed-loop training, float32: the authors' loop vs the package",
             authors.tanh_closed_pair, 2.5),
            ("tanh open-loop student, float32: the authors' loop vs the package",
             authors.tanh_open_pair, None),
            ("rank-one training: the authors' loop (float32) vs the package (float64)",
             authors.rank_one_pair, None),
            ("tracking training, float32: the authors' loop vs the package",
             authors.tracking_pair, 40)):
        epochs = inspect.signature(pair).parameters["epochs"].default
        theirs, ours = pair(package_epochs=package_epochs)
        _, one = pair(package_epochs=1)
        with single_thread():
            t = compare(theirs, ours, repeats=max(3, args.repeats // 2),
                        per=(epochs, package_epochs))
            fixed = _median_time(one) - t.fast
        _row(results, f"{label}, per epoch (the authors' {epochs} epochs a call, the package's "
                      f"{package_epochs}; a package run's fixed cost: {1e3 * fixed:.0f} ms, "
                      f"{fixed / t.plain:.1f} of the authors' epochs)", t, target)


def _median_time(f, repeats: int = 3) -> float:
    """Median seconds of ``repeats`` calls of ``f`` after a warm-up call."""
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@contextlib.contextmanager
def busy_neighbour():
    """Another torch process on one thread multiplying matrices for the duration: the load a
    second chapter puts on a 2-core machine during ``make book``."""
    code = ("import torch\ntorch.set_num_threads(1)\na = torch.randn(300, 300)\n"
            "while True:\n    a @ a")
    proc = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(2)  # its start-up (importing torch) is not load yet
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def thread_policy(args, results: Results):
    """Each training path at the package's defaults (torch's default threads, each path's own
    policy, ``closedloop._threads``) against the same path forced onto one thread, on a quiet
    machine and beside a busy process; the authors' loop the same way, for comparison. A ratio
    >= 1 says the defaults are at least as fast as one thread."""
    from closedloop._threads import single_thread

    def on_one_thread(f):
        def one():
            with single_thread():
                f()
        return one

    for name, pair in (("tanh closed loop, float32", authors.tanh_closed_pair),
                       ("tanh open-loop student, float32", authors.tanh_open_pair),
                       ("rank-one", authors.rank_one_pair),
                       ("tracking", authors.tracking_pair)):
        theirs, ours = pair()
        for who, f in (("the package", ours), ("the authors' loop", theirs)):
            for where in ("quiet", "beside a busy process"):
                with busy_neighbour() if where != "quiet" else contextlib.nullcontext():
                    t = compare(on_one_thread(f), f, repeats=3)
                _row(results, f"threads, {name}, {who}, {where}: one thread vs defaults "
                              f"({torch.get_num_threads()} threads)", t,
                     1 if who == "the package" else None)


def kernels(args, results: Results):
    """The fast paths against plain loops, whole epochs against the authors' loops, then the
    scaling in T and N (and its plot)."""
    for kind, label, target in (("rank_one", "rank-one epoch (N=100, T=50, batch 100)", 10),
                                ("tanh", "tanh epoch (N=100, T=50, batch 100)", 2)):
        t = compare(*cases.epoch_pair(kind), repeats=args.repeats)
        _row(results, label, t, target)
    plain, _ = cases.epoch_pair("rank_one")
    paths = cases.rank_one_paths()
    for name in ("states by doubling", "fused step loop"):
        t = compare(plain, paths[name], repeats=args.repeats)
        _row(results, f"rank-one epoch, {name} instead of the cost matrix", t, None)
    plain, _ = cases.epoch_pair("tanh")
    if args.compile:
        epoch = cases.compiled_tanh()
        t = time.perf_counter()
        epoch()
        seconds = time.perf_counter() - t
        t = compare(plain, epoch, repeats=args.repeats)
        _row(results, f"tanh epoch, plain loop under torch.compile (first call, compiling: "
                      f"{seconds:.0f} s)", t, None)
    t = compare(*cases.tanh_threads(), repeats=args.repeats)
    _row(results, f"tanh epoch: torch on one thread vs the package's defaults "
                  f"({torch.get_num_threads()} threads; ratio >= 1: defaults as fast)", t, 1)
    t = compare(plain, cases.tanh_floor(), repeats=args.repeats)
    _row(results, "tanh epoch: its products and tanh alone, the most any implementation could "
                  "gain", t, None)
    t = compare(*cases.tracking_pair(), repeats=args.repeats)
    _row(results, "tracking epoch (N=100, T=300, batch 100)", t, 20)
    t = compare(*cases.ensemble_pair(), repeats=max(3, args.repeats // 2))
    _row(results, "10 rank-one trainings of 50 epochs: sequential vs one ensemble", t, 4)
    t = compare(*cases.tracking_ensemble_pair(), repeats=3)
    _row(results, "3 tracking trainings of 40 epochs: sequential vs one ensemble", t, None)
    inproc, cluster, startup, close = cases.sweep_engines()
    try:
        t = compare(inproc, cluster, repeats=3)
    finally:
        close()
    _row(results, f"sweep of 4 chunks (4 rank-one trainings of 100 epochs each): in-process vs "
                  f"a 2-process Dask LocalCluster (started once, {startup:.1f} s)", t, None)
    t = compare(*cases.epoch_pair("tanh", dtype=torch.float32), repeats=args.repeats)
    _row(results, "tanh epoch in float32 (Chapter 1 trains in float32)", t, None)
    against_authors(args, results)
    thread_policy(args, results)

    scaling = results.scaling
    for kind in ("rank_one", "tanh"):
        for axis, values in (("T", (25, 50, 100, 200, 400)), ("N", (50, 100, 200, 400))):
            pts = scaling[kind, axis] = []
            for v in values:
                t = compare(*cases.epoch_pair(kind, **{axis: v}), repeats=3)
                pts.append((v, t.plain, t.fast))
                results.save()
            print(kind, axis, pts, flush=True)
    plot_scaling(scaling, results.out)  # now, not at the end: a failing chapter keeps it


def write_table(rows, scaling, chapters, out: Path = OUT, chapter_params=None, stopped=None):
    """results.md from what was measured so far; ``stopped``: why the run ended early."""
    lines = ["# closedloop benchmarks", "",
             f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians after "
             "warm-up, in alternating rounds of plain and fast within one run.", "",
             "The spread is the range of the per-round ratios; the load average (1 min) is read "
             "before and after each comparison, and a row measured on a busy machine (load "
             "above the one process timed) says so instead of passing its ratio as clean.", "",
             "| case | plain loop | closedloop | ratio | spread | load | target |",
             "|---|---|---|---|---|---|---|"]
    for label, (tp, tf, ratios, (l0, l1)), target in rows:
        goal = "-" if target is None else (
            f">= {target}x ({'met' if tp / tf >= target else 'missed'})")
        busy = " (busy)" if max(l0, l1) > 1.5 else ""
        lines.append(f"| {label} | {1e3 * tp:.1f} ms | {1e3 * tf:.1f} ms | "
                     f"{tp / tf:.1f}x | {min(ratios):.1f}-{max(ratios):.1f}x | "
                     f"{l0:.1f} -> {l1:.1f}{busy} | {goal} |")
    lines += ["", "## Cost of one epoch against T and N (forward + backward)", "",
              "| network | axis | value | plain | closedloop | ratio |",
              "|---|---|---|---|---|---|"]
    for (kind, axis), pts in scaling.items():
        for v, tp, tf in pts:
            lines.append(f"| {kind} | {axis} | {v} | {1e3 * tp:.1f} ms | {1e3 * tf:.1f} ms | "
                         f"{tp / tf:.1f}x |")
    if chapters:
        scale = (f"at the parameters of {chapter_params}" if chapter_params
                 else "at paper scale")
        lines += ["", f"## Chapters {scale} (papermill)", "", "| chapter | wall time |",
                  "|---|---|"]
        lines += [f"| {c[0]} | {c[1]:.0f} s" + (f" (load {c[2]:.1f} -> {c[3]:.1f})"
                                                  if len(c) > 2 else "") + " |"
                  for c in chapters]
    if stopped:
        lines += ["", f"**The run stopped early** (after the last row above): {stopped}"]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def plot_scaling(scaling, out: Path = OUT):
    fig, axes = plt.subplots(1, 2, figsize=(7, 3), constrained_layout=True)
    for ax, axis in zip(axes, ("T", "N")):
        for kind, color in (("rank_one", "#0072B2"), ("tanh", "#D55E00")):
            v, tp, tf = zip(*scaling[kind, axis])
            ax.plot(v, [1e3 * t for t in tp], "--o", color=color, ms=3, label=f"{kind}, plain")
            ax.plot(v, [1e3 * t for t in tf], "-o", color=color, ms=3, label=f"{kind}, closedloop")
        ax.set(xscale="log", yscale="log", xlabel=axis + (" (steps)" if axis == "T" else
                                                          " (neurons)"), ylabel="ms per epoch")
        ax.set_xticks(v, [str(x) for x in v])  # the measured values, not 10^k with minor labels
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_title("N = 100, batch 100" if axis == "T" else "T = 50, batch 100", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.savefig(out / "scaling.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
