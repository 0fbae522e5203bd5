"""Figures of Chapter 5, the atlas: phase diagrams and small multiples over sweeps."""

from __future__ import annotations

import numpy as np

from .. import atlas
from ..plotting import PALETTE, figure
from ..sweep import coords_of


def _tick(v) -> str:
    return str(v) if isinstance(v, (str, np.str_)) else f"{v:g}"


def _heatmap(ax, rows, cols, table, fmt, cmap, row_label, col_label, title, vmin=None,
             vmax=None):
    im = ax.imshow(table, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(cols)), [_tick(c) for c in cols])
    ax.set_yticks(range(len(rows)), [_tick(r) for r in rows])
    ax.set(xlabel=col_label, ylabel=row_label, title=title)
    ax.grid(False)
    lo, hi = np.nanmin(table), np.nanmax(table)
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = table[i, j]
            text = "never" if not np.isfinite(v) else format(v, fmt)
            dark = np.isfinite(v) and hi > lo and (v - lo) / (hi - lo) < 0.5
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    return im


def phase_diagrams(history, table, row, col, row_label, col_label):
    """Median stabilization epoch, median final rho(P) and the fraction of seeds that
    stabilized, over two swept settings (one panel each)."""
    fig, axes = figure(ncols=3, height=3.0)
    panels = [("stabilization", ".0f", "viridis", "median stabilization epoch", np.nanmedian),
              ("final_rho", ".2f", "magma", r"median final $\rho(P)$", np.nanmedian),
              ("stabilized", ".2f", "Greens", "fraction stabilized", np.mean)]
    for ax, (key, fmt, cmap, title, reduce) in zip(axes[0], panels):
        rows, cols, tab = atlas.pivot(history, np.asarray(table[key], float), row, col, reduce)
        kw = dict(vmin=0, vmax=1) if key == "stabilized" else {}
        _heatmap(ax, rows, cols, tab, fmt, cmap, row_label, col_label, title, **kw)
    for ax in axes[0][1:]:
        ax.set_ylabel("")
    return fig


def stage_lengths(history, table, x="T", by="lr"):
    """Stage-2 length (stabilization - end of stage 1) against ``x``, one panel per value of
    ``by``: every seed as a dot, the median as a line; networks that never stabilized are
    drawn at the top as crosses."""
    c = coords_of(history)
    groups = np.unique(c[by])
    fig, axes = figure(ncols=len(groups), height=2.8, sharey=True)
    y = np.asarray(table["stage2_length"], float)
    top = np.nanmax(y) * 1.1 if np.isfinite(y).any() else 1.0
    for ax, g in zip(axes[0], groups):
        m = c[by] == g
        xs = np.unique(c[x][m])
        ax.scatter(c[x][m], np.where(np.isfinite(y[m]), y[m], np.nan), s=10,
                   color=PALETTE["blue"], alpha=0.6, lw=0)
        never = m & ~np.isfinite(y)
        if never.any():
            ax.scatter(c[x][never], np.full(never.sum(), top), marker="x", color=PALETTE["red"],
                       s=16, label="never stabilized")
            ax.legend(loc="upper left")
        med = [np.nanmedian(y[m & (c[x] == v)]) if np.isfinite(y[m & (c[x] == v)]).any()
               else np.nan for v in xs]
        ax.plot(xs, med, color=PALETTE["black"], marker="o", ms=3)
        ax.set(xlabel=x, title=f"{by} = {g:g}")
    axes[0][0].set_ylabel("stage-2 length (epochs)")
    return fig


def excursion_map(history, peaks, row, col, row_label, col_label):
    """The open-loop student's peak / final closed-loop test loss over two settings (log
    colour scale, median over seeds), beside each cell's median peak epoch."""
    fig, axes = figure(ncols=2, height=3.0)
    rows, cols, ratio = atlas.pivot(history, np.log10(peaks["ratio"]), row, col)
    _heatmap(axes[0][0], rows, cols, ratio, ".1f", "inferno", row_label, col_label,
             r"$\log_{10}$ (peak / final test loss)")
    rows, cols, ep = atlas.pivot(history, np.asarray(peaks["epoch"], float), row, col)
    _heatmap(axes[0][1], rows, cols, ep, ".0f", "viridis", row_label, col_label,
             "epoch of the peak")
    axes[0][1].set_ylabel("")
    return fig
