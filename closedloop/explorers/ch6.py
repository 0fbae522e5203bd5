"""Chapter 6: a rank-one network on other linear plants, as a first-order controller."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from .. import plant_theory as pt
from .. import stage_theory as st
from ..plants import LinearPlant
from ..plotting import PALETTE, WIDTH, complex_plane
from ..widgets import Explorer, selector, slider, sparse_log_ticks

# each family's parameter: (control, label, the static form's values)
FAMILIES = {"integrator": ("order", "k", (1, 2, 3, 4)),
            "oscillator": ("zeta", "\u03b6", (0.02, 0.2, 0.5)),
            "unstable": ("a", "a", (1.1, 1.5, 2.0))}


def family_plant(family: str, value) -> LinearPlant:
    """The plant of a family at its parameter: ``integrator(k)`` (dt = 1), the damped
    oscillator at ``stage_theory.OSCILLATOR`` with damping zeta, ``unstable(a)``."""
    if family == "integrator":
        return LinearPlant.integrator(int(value))
    if family == "oscillator":
        return LinearPlant.damped_oscillator(zeta=float(value), **st.OSCILLATOR)
    if family == "unstable":
        return LinearPlant.unstable(float(value))
    raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")


def plant_explorer(horizon: int = 40, frames: dict | None = None) -> Explorer:
    """Chapter 6: pick a plant family and its parameter (integrator order k, oscillator damping
    zeta, unstable pole a) and the network's three numbers (s_zm, s_vu, k = s_vm s_zu):

    - left: the n + 1 roots of q (dots) on the unit circle, and the stage-1 eigenvalues
      eig(A + s_zm B C) (rings: the same s_zm with no memory, s_vu = k = 0);
    - right: ||x_t|| of the rollout of P_eff from x_0 = (1, ..., 1), h_0 = 0, over
      ``horizon`` steps (dashed: static feedback s_zm alone);
    - below: what ``first_order_reach`` says for this plant (the best any rank-one network
      can do) and whether static feedback can stabilize it.

    The static form steps through ``frames`` ({family: parameter values}, default each
    family's three or four), each at that plant's best first-order controller.
    Introduced in Chapter 6.
    """
    frames = {f: v for f, (_, _, v) in FAMILIES.items()} if frames is None else frames
    for f in frames:
        if f not in FAMILIES:
            raise ValueError(f"frames has family {f!r}; allowed: {sorted(FAMILIES)}")
    cache = {}

    def verdict(family, value):  # the reach takes ~0.1-1 s for n = 3, 4: once per plant
        if (family, value) not in cache:
            p = family_plant(family, value)
            cache[family, value] = (p, st.stage1(p), st.first_order_reach(p))
        return cache[family, value]

    fig = Figure(figsize=(WIDTH, 3.6), layout="constrained")
    a_eig, a_roll = fig.subplots(1, 2)
    complex_plane(a_eig, ((-1.7, 2.1), (-1.4, 1.4)))
    art = {"roots": a_eig.scatter([], [], s=26, color=PALETTE["blue"], zorder=3,
                                  label="roots of q (the loop)"),
           "stage1": a_eig.scatter([], [], s=80, facecolors="none", zorder=4,
                                   edgecolors=PALETTE["red"],
                                   label="eig($A + s_{zm} B C$) (stage 1)")}
    a_eig.legend(loc="upper left", fontsize=7)
    art["rollout"], = a_roll.plot([], [], color=PALETTE["black"], label="this network")
    art["static"], = a_roll.plot([], [], color=PALETTE["red"], ls="--",
                                 label="static feedback $s_{zm}$ alone")
    a_roll.axhline(1.0, color="0.6", lw=0.6)
    a_roll.set(yscale="log", xlabel="time step t", ylabel=r"$\|x_t\|$", xlim=(0, horizon),
               ylim=(1e-8, 1e8))
    a_roll.legend(loc="upper left", fontsize=7)
    sparse_log_ticks(a_roll)
    art["reach"] = fig.supxlabel("\n", fontsize=8)  # two lines, laid out once, then rewritten

    def draw(family, order, zeta, a, s_zm, s_vu, k):
        value = {"order": order, "zeta": zeta, "a": a}[FAMILIES[family][0]]
        p, s1, reach = verdict(family, value)
        q = st.first_order_overlaps(s_zm, s_vu, k)
        roots, ev1 = pt.roots(q, p), pt.stage1_eigenvalues(s_zm, p)
        art["roots"].set_offsets(np.c_[roots.real, roots.imag])
        art["stage1"].set_offsets(np.c_[ev1.real, ev1.imag])
        a_eig.set_title(f"\u03c1 = {np.abs(roots).max():.3f} (stage 1: "
                        f"{np.abs(ev1).max():.3f})")
        x0 = torch.zeros(p.n_state + 2, dtype=p.dtype)
        x0[:p.n_state] = 1.0
        t = np.arange(horizon + 1)
        for key, over in (("rollout", q), ("static", [s_zm, 0.0, 0.0, 0.0])):
            P = pt.effective_matrix(over, p).numpy()
            s, dist = x0.numpy(), []
            for _ in t:
                dist.append(np.linalg.norm(s[:p.n_state]))
                s = P @ s
            art[key].set_data(t, np.maximum(dist, 1e-300))
        name = FAMILIES[family][1]
        a_roll.set_title(f"{family}, {name} = {value:g}: rollout of $P_{{eff}}$")
        static = (f"static feedback stabilizes for s_zm in ({s1.intervals[0][0]:.2f}, "
                  f"{s1.intervals[0][1]:.2f}): memory not needed" if s1.stabilizable else
                  f"no static feedback stabilizes (best \u03c1 = {s1.best_rho:.3f})")
        best = (f"best rank-one network (first_order_reach): \u03c1 = {reach.rho:.3f}"
                f"{' (deadbeat)' if reach.deadbeat else ''} at s_zm = {reach.s_zm + 0:.2f}, "
                f"s_vu = {reach.s_vu + 0:.2f}, k = {reach.k + 0:.2f}"
                f"{'' if reach.stable else ': stage 3 out of reach'}")
        art["reach"].set_text(f"{static}\n{best}")

    family0 = next(iter(frames))
    controls = {"family": selector("plant", list(FAMILIES), family0),
                "order": slider("k (integrator)", 2, min=1, max=4, step=1),
                "zeta": slider("\u03b6 (oscillator)", 0.02, min=0.0, max=0.95, step=0.01),
                "a": slider("a (unstable)", 1.5, min=1.05, max=2.5, step=0.05),
                "s_zm": slider("$s_{zm}$", -0.3, min=-10.0, max=3.0, step=0.01),
                "s_vu": slider("$s_{vu}$", 0.0, min=-2.0, max=2.0, step=0.01),
                "k": slider("$k = s_{vm} s_{zu}$", 0.0, min=-5.0, max=15.0, step=0.01)}
    defaults = {"order": 2, "zeta": 0.02, "a": 1.5}
    scrub = []
    for family, values in frames.items():
        control = FAMILIES[family][0]
        for v in values:
            r = verdict(family, v)[2]
            scrub.append({**defaults, "family": family, control: v, "s_zm": r.s_zm,
                          "s_vu": r.s_vu, "k": r.k})
    label = lambda v: f"{v['family']}, {FAMILIES[v['family']][1]} = " \
                      f"{v[FAMILIES[v['family']][0]]:g}"  # noqa: E731
    ex = Explorer(fig, draw, controls, scrub, label=label, name="plant and its parameter",
                  note="each frame at the plant's best first-order controller; run the "
                       "notebook to move s_zm, s_vu and k")
    ex.artists, ex.cache = art, cache
    return ex
