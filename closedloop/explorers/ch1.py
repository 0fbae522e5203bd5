"""Chapter 1: both trainings through gain space, with their rollouts."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import torch
from matplotlib.figure import Figure

from .. import coupled, gains
from ..history import record_index
from ..plotting import LOOP_COLORS, PALETTE, REGION_COLORS, WIDTH
from ..widgets import MAX_FRAMES, Explorer, epoch_explorer


def gain_space_explorer(h_closed, h_open, like, env, *, T: int = 50, x0=(1.0, 1.0),
                        lim=(-1.8, 0.6), n_grid: int = 201, n_frames: int = MAX_FRAMES,
                        include=()) -> Explorer:
    """Chapter 1: an epoch slider that moves both networks through gain space together with
    their rollouts from ``x0``.

    Left: the stability regions of the linear feedback u = k.x, both training paths (faint),
    each path up to the chosen epoch (solid) and where each network is then. Right: position
    and control of both networks from ``x0``, rebuilt from the parameter snapshots (``like``:
    any agent of the trained type). The slider runs over the snapshot epochs the two histories
    share; the static form shows ``n_frames`` of them (and ``include``, e.g. the peak epoch).
    Introduced in Chapter 1, section "Explore the two roads".
    """
    if "snapshot_epoch" not in h_closed.arrays or "snapshot_epoch" not in h_open.arrays:
        raise ValueError("both histories need parameter snapshots (train with snapshot_every)")
    epochs = np.intersect1d(h_closed.snapshot_epoch, h_open.snapshot_epoch).tolist()
    if not epochs:
        raise ValueError("the two histories share no snapshot epoch")
    runs = {"closed": h_closed, "open": h_open}
    start = torch.tensor([x0], dtype=env.dtype)
    traj = {name: {} for name in runs}
    for name, h in runs.items():  # every rollout up front: a few ms each, and fixed y-limits
        for e in epochs:
            with torch.no_grad():
                out = coupled.rollout(h.agent_at(e, like), env, start, T)
            traj[name][e] = (out["x"][:, 0, 0].numpy(), out["u"][:, 0].numpy())
    top = max(max(np.abs(np.concatenate(v)).max() for v in t.values()) for t in traj.values())
    top = float(np.clip(top, 1.5, 1e6)) * 1.5

    fig = Figure(figsize=(WIDTH, 4.2), layout="constrained")
    ax = fig.subplot_mosaic([["gain", "pos"], ["gain", "u"]], width_ratios=[1.05, 1])
    g = ax["gain"]
    _, _, grid = gains.gain_grid(lim, n_grid)
    g.imshow(gains.stability_region(grid, env), origin="lower", extent=(*lim, *lim),
             cmap=mpl.colors.ListedColormap(REGION_COLORS), vmin=-0.5, vmax=2.5,
             interpolation="nearest", aspect="equal")
    g.plot(*gains.lqr_feedback(env), "*", color=PALETTE["yellow"], mec="k", mew=0.5, ms=10,
           label="LQR")
    art = {}
    t = np.arange(T + 1)
    for name, h in runs.items():
        c = LOOP_COLORS[name]
        g.plot(h.gains[:, 0], h.gains[:, 1], color=c, lw=0.6, alpha=0.35)
        art[f"trail_{name}"], = g.plot([], [], color=c, lw=1.2)
        art[f"dot_{name}"], = g.plot([], [], "o", color=c, mec="k", mew=0.5, ms=7,
                                     label=f"trained {name} loop")
        art[f"pos_{name}"], = ax["pos"].plot(t, np.zeros_like(t, float), color=c)
        art[f"u_{name}"], = ax["u"].plot(t, np.zeros_like(t, float), color=c)
    g.set(xlim=lim, ylim=lim, xlabel="$k_1$ (position gain)", ylabel="$k_2$ (velocity gain)")
    g.grid(False)
    g.legend(loc="lower left", fontsize=7, framealpha=0.8, frameon=True)
    for key, lab in (("pos", "position $x_1$"), ("u", "control $u$")):
        ax[key].set_yscale("symlog", linthresh=1.0)
        ax[key].set(ylim=(-top, top), ylabel=lab, xlim=(0, T))
    ax["pos"].tick_params(labelbottom=False)
    ax["pos"].set_title(f"from $x_0$ = ({x0[0]:g}, {x0[1]:g})")
    ax["u"].set_xlabel("time step t")

    def draw(epoch):
        g.set_title(f"gain space, epoch {epoch}")
        for name, h in runs.items():
            i = record_index(h.monitor_epoch, epoch)
            art[f"trail_{name}"].set_data(h.gains[:i + 1, 0], h.gains[:i + 1, 1])
            art[f"dot_{name}"].set_data([h.gains[i, 0]], [h.gains[i, 1]])
            x1, u = traj[name][epoch]
            art[f"pos_{name}"].set_ydata(x1)
            art[f"u_{name}"].set_ydata(u)

    return epoch_explorer(fig, draw, art, epochs, n_frames, include, "epoch of both trainings")
