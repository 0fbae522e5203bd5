"""Figures of Chapter 6's stage theory (``stage_theory``): what static feedback and a rank-one
network can do to each plant's closed loop. Spectral radii are per step (dimensionless)."""

from __future__ import annotations

import numpy as np

from .. import stage_theory as st
from ..plotting import FREQ_COLORS, PALETTE, figure


def stage1_radius(plants: dict, s_zm=None):
    """rho(A + s_zm B C) against s_zm, one line per plant ({name: LinearPlant}): the loop under
    stage 1's static feedback. Below the dashed line at 1 the loop is stable without memory;
    the double integrator touches 1 at s_zm = 0 and rises on both sides (sqrt(1 - s_zm))."""
    if not isinstance(plants, dict) or not plants:
        raise ValueError("plants must be a non-empty dict {name: LinearPlant}")
    s_zm = np.linspace(-2.5, 1.5, 801) if s_zm is None else np.asarray(s_zm, float)
    if s_zm.ndim != 1 or s_zm.size < 2:
        raise ValueError(f"s_zm must be a 1-d grid of at least 2 values, got shape {s_zm.shape}")
    fig, ((ax,),) = figure(height=3.2)
    ax.axhspan(0, 1, color="#CDE8D8", lw=0, zorder=0)
    for i, (name, p) in enumerate(plants.items()):
        ax.plot(s_zm, st.static_radius(p, s_zm), color=FREQ_COLORS[i % len(FREQ_COLORS)],
                ls=("-", "--", ":")[i // len(FREQ_COLORS) % 3], label=name)
    ax.axhline(1, color="0.3", ls="--", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.6)
    ax.set(xlabel="$s_{zm}$", ylabel=r"$\rho(A + s_{zm} B C)$", xlim=(s_zm[0], s_zm[-1]),
           ylim=(0, 2.5), title="stage 1: static feedback (shaded: a stable loop)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    return fig


def reach(verdicts):
    """Per plant (``stage_theory.survey``'s verdicts): the smallest spectral radius of the
    closed loop under the best static feedback (stage 1), the best rank-one network
    (``first_order_reach``: stage 3 is reachable iff it is below 1) and, for reference, the
    LQR loop (full state, ``lqr``)."""
    verdicts = list(verdicts)
    if not verdicts:
        raise ValueError("verdicts must be a non-empty list of AllowedStages")
    names = [v.name for v in verdicts]
    y = np.arange(len(verdicts))[::-1]
    fig, ((ax,),) = figure(height=0.35 * len(verdicts) + 1.2)
    h = 0.38
    static = [v.static.best_rho for v in verdicts]
    first = [v.reach.rho for v in verdicts]
    ax.barh(y + h / 2, static, h, color=PALETTE["red"], label="static feedback (stage 1)")
    ax.barh(y - h / 2, first, h, color=PALETTE["blue"], label="rank-one network (first order)")
    ax.plot([v.lqr.rho for v in verdicts], y, "*", color=PALETTE["yellow"], mec="k", mew=0.5,
            ms=9, label="LQR (full state)")
    for yi, v in zip(y, verdicts):
        if v.reach.deadbeat:
            ax.text(0.01, yi - h / 2, "0 (deadbeat)", va="center", fontsize=7,
                    color=PALETTE["blue"])
    ax.axvline(1, color="0.3", ls="--", lw=0.8)
    ax.set_yticks(y, names)
    ax.set(xlabel=r"smallest $\rho$ of the closed loop", xlim=(0, max(1.2, max(static) * 1.05)))
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, fontsize=7)
    return fig
