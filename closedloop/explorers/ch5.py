"""Chapter 5: the runs of one cell of a sweep's grid."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..plotting import PALETTE, WIDTH, complex_plane
from ..widgets import Explorer, slider


def atlas_explorer(history, table, row: str = "T", col: str = "lr") -> Explorer:
    """Chapter 5: pick one cell of a sweep's (row, col) grid and see its runs: rho(P) of
    every seed against epoch (left, each run's stabilization epoch marked) and the final
    spectra in the complex plane (right). ``history`` comes from ``sweep.run`` with
    eigenvalue records, ``table`` from ``atlas.stage_table``. The static form steps through
    every cell, row by row. Introduced in Chapter 5, section "Explore the atlas".
    """
    from ..sweep import coords_of

    c = coords_of(history)
    rows, cols = [v.item() for v in np.unique(c[row])], [v.item() for v in np.unique(c[col])]
    rho = np.asarray(history.spectral_radius, float)
    ep = np.asarray(history.eig_epoch) + 1
    final = np.asarray(history.eig_P)[-1]
    n_max = max(int(((c[row] == r) & (c[col] == q)).sum()) for r in rows for q in cols)

    fig = Figure(figsize=(WIDTH, 3.2), layout="constrained")
    a1, a2 = fig.subplots(1, 2, width_ratios=[1.6, 1])
    lines = [a1.plot([], [], lw=1.0, color=PALETTE["blue"], alpha=0.7)[0] for _ in range(n_max)]
    marks, = a1.plot([], [], "o", color=PALETTE["red"], ms=4, label="stabilization")
    a1.axhline(1.0, color="0.4", lw=0.8, ls="--")
    finite = rho[np.isfinite(rho) & (rho > 0)]
    a1.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel=r"$\rho(P)$",
           ylim=(finite.min() / 1.2, finite.max() * 1.2), xlim=(1, ep[-1]))
    a1.legend(loc="upper right")
    complex_plane(a2, ((-1.1, 1.1), (-1.1, 1.1)))
    dots = a2.scatter([], [], s=12, color=PALETTE["orange"])
    a2.set_title("final eig(P)")

    def draw(**values):
        m = (c[row] == values[row]) & (c[col] == values[col])
        idx = np.flatnonzero(m)
        for line, k in zip(lines, list(idx) + [None] * (n_max - len(idx))):
            line.set_data((ep, rho[:, k]) if k is not None else ([], []))
        stab = np.asarray(table["stabilization"], float)[idx]
        ok = np.isfinite(stab)
        marks.set_data(stab[ok] + 1, rho[np.searchsorted(ep - 1, stab[ok]), idx[ok]])
        ev = final[idx].ravel()
        dots.set_offsets(np.c_[ev.real, ev.imag] if ev.size else np.empty((0, 2)))
        a1.set_title(f"{row} = {values[row]:g}, {col} = {values[col]:g}: "
                     f"{int(ok.sum())} of {len(idx)} runs stabilized")

    controls = {row: slider(row, rows[len(rows) // 2], options=rows),
                col: slider(col, cols[len(cols) // 2], options=cols)}
    frames = [{row: r, col: q} for r in rows for q in cols]
    ex = Explorer(fig, draw, controls, frames,
                  label=lambda v: f"{row} = {v[row]:g}, {col} = {v[col]:g}",
                  start=frames.index({row: rows[len(rows) // 2], col: cols[len(cols) // 2]}),
                  name=f"{row} and {col}", note=f"the slider steps through every {col} "
                                                 f"for each {row}")
    ex.artists = {"lines": lines, "marks": marks, "dots": dots}
    return ex
