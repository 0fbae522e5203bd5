"""The atlas (Chapter 5): what a sweep's many trainings say, as tables of named numbers.

Every function takes the History of ``sweep.run`` (points on axis 1, ``coord/<setting>``
arrays) and returns plain numpy arrays or small dicts, so that the chapter's claims are
computed here, where the tests reach them.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.stats import spearmanr

from . import _checks, sweep
from . import stages as _stages
from .excursion import find_excursion
from .history import History
from .sweep import coords_of


def run_grids(grids, *, engine="inprocess", n_workers: int | None = None, out=None):
    """Train several grids on one engine: ``grids`` a sequence of ``(model, grid,
    chunk_size)``, each as ``sweep.run(grid, model, chunk_size=...)`` takes it. Returns
    (the histories, in the order given; the wall-clock seconds of all of them).

    Each history is what ``sweep.run`` gives for its grid alone, on any engine. In process
    the grids train one after another. On Dask (``"local"``, a scheduler address or a
    ``distributed.Client``) they share one client and their chunks are submitted together
    (one thread per grid), so a worker that is done with one grid's chunks takes another's
    instead of waiting for the slowest chunk of its grid; ``"local"`` starts one
    ``LocalCluster`` of ``n_workers`` single-threaded processes for all of them (default: the
    CPU count). Introduced in Chapter 5, section "How the atlas is run".
    """
    grids = [tuple(g) for g in grids]
    if not grids or any(len(g) != 3 for g in grids):
        raise ValueError(f"grids must be a non-empty sequence of (model, grid, chunk_size), "
                         f"got {_checks.short(grids)}")
    for model, grid, _ in grids:  # every point checked before anything trains
        sweep.points_of(grid, model)
    start = time.perf_counter()
    kw = dict(out=out, progress=False)
    with sweep.dask_client(engine, n_workers) as client:
        if client is None:
            histories = [sweep.run(grid, model, chunk_size=size, engine=engine,
                                   n_workers=n_workers, **kw) for model, grid, size in grids]
        else:
            with ThreadPoolExecutor(len(grids)) as pool:
                jobs = [pool.submit(sweep.run, grid, model, chunk_size=size, engine=client, **kw)
                        for model, grid, size in grids]
                histories = [job.result() for job in jobs]
    return histories, time.perf_counter() - start


def stage_table(history: History) -> dict:
    """Per point (arrays (P,)): ``stage1_end`` and ``stabilization`` (epochs; NaN when never
    reached, see ``stages.detect_stages``), ``stage2_length`` (stabilization - stage1_end, or
    - 0 when there is no stage 1), ``final_rho`` (rho(P) of the final network),
    ``final_loss`` (its expected loss) and ``stabilized`` (bool)."""
    n = history.loss.shape[1]
    end1, stab = np.full(n, np.nan), np.full(n, np.nan)
    for k in range(n):
        s = _stages.detect_stages(history.member(k))
        end1[k] = np.nan if s.stage1_end is None else s.stage1_end
        stab[k] = np.nan if s.stabilization is None else s.stabilization
    return {"stage1_end": end1, "stabilization": stab,
            "stage2_length": stab - np.nan_to_num(end1, nan=0.0),
            "final_rho": history.spectral_radius[-1].astype(float),
            "final_loss": history.expected_loss[-1].astype(float),
            "stabilized": np.isfinite(stab)}


def pivot(history: History, values, row: str, col: str, reduce=np.nanmedian):
    """A phase diagram: ``values`` (P,) reduced over the points that share a (row, col) pair
    of settings (seeds, ...). Returns (row values, col values, table (R, C)); a cell with no
    finite value is NaN."""
    c = coords_of(history)
    rows, cols = np.unique(c[row]), np.unique(c[col])
    values = np.asarray(values, float)
    table = np.full((len(rows), len(cols)), np.nan)
    for i, r in enumerate(rows):
        for j, q in enumerate(cols):
            v = values[(c[row] == r) & (c[col] == q)]
            v = v[np.isfinite(v)]
            if v.size:
                table[i, j] = reduce(v)
    return rows, cols, table


def fraction(history: History, flags, row: str, col: str):
    """The fraction of points with ``flags`` (P,) true per (row, col) cell:
    (rows, cols, table (R, C))."""
    return pivot(history, np.asarray(flags, float), row, col, reduce=np.mean)


def trend(x, y) -> dict:
    """How y moves with x across points: the medians of y at the smallest and largest x, and
    Spearman's rank correlation (NaN pairs dropped)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.unique(x).size < 2:
        return {"low": np.nan, "high": np.nan, "spearman": np.nan, "n": int(x.size)}
    rho = spearmanr(x, y).statistic if np.unique(y).size > 1 else np.nan  # tied ranks averaged
    return {"low": float(np.median(y[x == x.min()])), "high": float(np.median(y[x == x.max()])),
            "spearman": float(rho), "n": int(x.size)}


def peak_ratios(history: History, name: str = "test_loss") -> dict:
    """The open-loop excursion per point, by Chapter 1's rule (``excursion.find_excursion``:
    the highest test loss above a value reached before it): arrays (P,) of ``ratio`` (peak /
    final value of ``name``, the student's closed-loop test loss; NaN without a rise),
    ``epoch`` of the peak (NaN without), ``peak``, ``final`` and ``shows`` (the peak is above
    the untrained network's test loss, the paper's excursion)."""
    v = np.asarray(history.arrays[name], float)
    epochs = np.asarray(history.arrays["monitor_epoch"])
    found = []
    for k in range(v.shape[1]):
        ok = np.isfinite(v[:, k])  # a run padded with NaN where it stopped early
        found.append(find_excursion(epochs[ok], v[ok, k]))
    peak = np.array([f.peak_loss for f in found])
    final = np.array([f.final_loss for f in found])
    return {"ratio": peak / final, "peak": peak, "final": final,
            "epoch": np.array([np.nan if f.peak_epoch is None else f.peak_epoch
                               for f in found], float),
            "shows": np.array([f.shows for f in found])}


def direction(spearman: float, threshold: float = 0.3) -> str:
    """A word for a rank correlation: 'grows', 'shrinks' or 'barely changes' (|rho| below
    ``threshold``), and 'is undetermined' for NaN."""
    if not np.isfinite(spearman):
        return "is undetermined"
    if spearman >= threshold:
        return "grows"
    if spearman <= -threshold:
        return "shrinks"
    return "barely changes"


def horizon_summary(history: History, table: dict, T_paper: int = 50,
                    lr_paper: float = 1e-2) -> dict:
    """The named numbers of the (T, lr) atlas: at the paper's point (median and range of the
    stabilization epoch and final rho(P) over seeds), the share of runs that stabilized, and
    how the stabilization epoch, the stage-2 length and the final rho(P) move with T (at the
    paper's lr) and with lr (at the paper's T): medians at the ends and Spearman's rho."""
    c = coords_of(history)
    at = (c["T"] == T_paper) & np.isclose(c["lr"], lr_paper)
    out = {"n_runs": int(len(c["T"])), "stabilized_fraction": float(np.mean(table["stabilized"])),
           "paper_point_runs": int(at.sum())}
    for key in ("stabilization", "final_rho", "stage2_length"):
        v = np.asarray(table[key], float)[at]
        v = v[np.isfinite(v)]
        out[f"paper_{key}_median"] = float(np.median(v)) if v.size else np.nan
        out[f"paper_{key}_range"] = [float(v.min()), float(v.max())] if v.size else [np.nan] * 2
    for key in ("stabilization", "stage2_length", "final_rho"):
        along_T = np.isclose(c["lr"], lr_paper)
        t = trend(c["T"][along_T], np.asarray(table[key], float)[along_T])
        out[f"{key}_vs_T"] = t
        out[f"{key}_vs_T_word"] = direction(t["spearman"])
        along_lr = c["T"] == T_paper
        t = trend(c["lr"][along_lr], np.asarray(table[key], float)[along_lr])
        out[f"{key}_vs_lr"] = t
        out[f"{key}_vs_lr_word"] = direction(t["spearman"])
    return out


def feedback_summary(history: History, table: dict) -> dict:
    """The named numbers of the (N, s_zm(0)) atlas: the share of runs with a stage 1 among
    those started with s_zm(0) < 0 and > 0, how the end of stage 1 and the stabilization
    epoch move with s_zm(0) > 0 and with N, and the spread of the final rho(P) over the
    whole grid (max - min of the cell medians)."""
    c = coords_of(history)
    end1 = np.asarray(table["stage1_end"], float)
    neg, pos = c["s_zm0"] < 0, c["s_zm0"] > 0
    had = np.isfinite(end1) & (end1 > 0)
    out = {"n_runs": int(len(end1)),
           "stage1_share_negative": float(had[neg].mean()) if neg.any() else np.nan,
           "stage1_share_positive": float(had[pos].mean()) if pos.any() else np.nan}
    t = trend(c["s_zm0"][pos], end1[pos])
    out["stage1_end_vs_szm0"], out["stage1_end_vs_szm0_word"] = t, direction(t["spearman"])
    stab = np.asarray(table["stabilization"], float)
    t = trend(c["s_zm0"], stab)
    out["stabilization_vs_szm0"], out["stabilization_vs_szm0_word"] = t, direction(t["spearman"])
    t = trend(c["N"], stab)
    out["stabilization_vs_N"], out["stabilization_vs_N_word"] = t, direction(t["spearman"])
    _, _, cells = pivot(history, np.asarray(table["final_rho"], float), "N", "s_zm0")
    out["final_rho_cell_spread"] = float(np.nanmax(cells) - np.nanmin(cells))
    out["final_rho_median"] = float(np.nanmedian(table["final_rho"]))
    return out


def excursion_summary(history: History, peaks: dict, lr_paper: float = 1e-2,
                      init_paper: str = "paper") -> dict:
    """The named numbers of the excursion map: the peak ratio (median over seeds) at the
    paper's lr and initial scale, the smallest and largest cell medians, and the share of
    runs that show the excursion (``peak_ratios``' ``shows``), overall and per scale."""
    c = coords_of(history)
    ratio, epoch, shows = (np.asarray(peaks[k]) for k in ("ratio", "epoch", "shows"))
    at = np.isclose(c["lr"], lr_paper) & (c["init"] == init_paper)
    _, _, cells = pivot(history, ratio, "init", "lr")
    finite = lambda a: a[np.isfinite(a)]  # noqa: E731
    return {"n_runs": int(len(ratio)),
            "paper_ratio": float(np.median(finite(ratio[at]))) if finite(ratio[at]).size
            else np.nan,
            "paper_epoch": float(np.median(finite(epoch[at]))) if finite(epoch[at]).size
            else np.nan,
            "min_cell_ratio": float(np.nanmin(cells)) if np.isfinite(cells).any() else np.nan,
            "max_cell_ratio": float(np.nanmax(cells)) if np.isfinite(cells).any() else np.nan,
            "excursion_share": float(shows.mean()),
            "excursion_share_by_init": {str(i): float(shows[c["init"] == i].mean())
                                        for i in np.unique(c["init"])}}


def trainings(history: History) -> int:
    """How many trainings a sweep's history holds: one per point, plus one teacher per
    distinct network for the open-loop model (whose points share their teachers)."""
    c = coords_of(history)
    n = len(next(iter(c.values())))
    if history.config.get("model") == "open_loop":
        n += len(set(zip(c["seed"].tolist(), c["init"].tolist(), c["g"].tolist())))
    return n
