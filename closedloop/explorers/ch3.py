"""Chapter 3: the alpha-model, the horizon sweep and the stage-3 models."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .. import theory
from ..plotting import PALETTE, WIDTH, complex_plane
from ..widgets import Explorer, selector, slider


def tradeoff_explorer(paths, h_T, T_values, h_full, h_reduced, betas) -> Explorer:
    """Chapter 3: three controls over precomputed runs. ``alpha`` picks a path of the
    alpha-model (``paths``, a ``reduced.AlphaPaths``; left), ``T`` a network trained from the
    same stage-2 start with that episode length (``h_T``, one member per ``T_values``;
    middle), ``beta`` a stage-3 run of the full network and of the paper's model
    (``h_full``, ``h_reduced``, one member per ``betas``; right: their losses).

    The other paths stay on the planes in grey, so a slider shows where its path lies in the
    fan. The static form steps through every alpha, then every T, then every beta. Introduced
    in Chapter 3, section "Explore the trade-off".
    """
    alphas = [float(a) for a in paths.alpha]
    T_values, betas = [int(T) for T in T_values], [float(b) for b in betas]
    lam_T = theory.labelled_roots(h_T.overlaps)[..., 0]
    near = np.concatenate([paths.lambda1.ravel(), lam_T.ravel()])
    near = near[np.abs(near) > 0.9]
    lo, hi = near.real.min() - 0.02, near.real.max() + 0.02
    top = near.imag.max() + 0.02

    fig = Figure(figsize=(WIDTH, 3.3), layout="constrained")
    a1, a2, a3 = fig.subplots(1, 3)
    art = {}
    for ax, lam, title in ((a1, paths.lambda1, "alpha-model"), (a2, lam_T, "networks, by T")):
        complex_plane(ax, ((lo, hi), (-0.01, top)))
        ax.set_aspect("auto")
        for k in range(lam.shape[1]):
            ax.plot(lam[:, k].real, lam[:, k].imag, color="0.82", lw=0.8)
        ax.plot(lam[0, 0].real, lam[0, 0].imag, "k*", ms=8)
        art[title], = ax.plot([], [], color=PALETTE["blue"], lw=1.6)
        ax.set_title(title)
    x = h_full.epoch + 1
    art["full"], = a3.plot(x, h_full.expected_loss[:, 0], color=PALETTE["black"], label="full")
    art["reduced"], = a3.plot(x, h_reduced.expected_loss[:, 0], color=PALETTE["orange"],
                              ls="--", label="the paper's model")
    losses = np.concatenate([h_full.expected_loss.ravel(), h_reduced.expected_loss.ravel()])
    a3.set(xscale="log", yscale="log", ylim=(losses.min() / 1.5, losses.max() * 1.5),
           xlabel="stage-3 epoch + 1", ylabel="expected loss")
    a3.legend(loc="lower left")

    def draw(alpha, T, beta):
        k = alphas.index(alpha)
        art["alpha-model"].set_data(paths.lambda1[:, k].real, paths.lambda1[:, k].imag)
        a1.set_title(f"alpha-model, $\\alpha$ = {alpha:g}: $|\\lambda_1|$ "
                     f"{abs(paths.lambda1[-1, k]):.3f}")
        j = T_values.index(T)
        art["networks, by T"].set_data(lam_T[:, j].real, lam_T[:, j].imag)
        a2.set_title(f"network, T = {T}: max $|\\lambda_1|$ {np.abs(lam_T[:, j]).max():.3f}")
        b = betas.index(beta)
        art["full"].set_ydata(h_full.expected_loss[:, b])
        art["reduced"].set_ydata(h_reduced.expected_loss[:, b])
        a3.set_title(f"stage 3, $\\beta$ = {beta:g}")

    mid = dict(alpha=alphas[len(alphas) // 2], T=T_values[len(T_values) // 2], beta=betas[0])
    frames = []
    for f in ([{**mid, "alpha": a} for a in alphas] + [{**mid, "T": T} for T in T_values]
              + [{**mid, "beta": b} for b in betas]):
        if f not in frames:  # the middle values occur in each sweep
            frames.append(f)
    controls = {"alpha": slider("alpha", mid["alpha"], options=alphas),
                "T": slider("T", mid["T"], options=T_values),
                "beta": selector("beta", betas)}
    ex = Explorer(fig, draw, controls, frames,
                  label=lambda v: f"alpha = {v['alpha']:g}, T = {v['T']}, beta = {v['beta']:g}",
                  start=0, name="alpha, then T, then beta",
                  note="the slider steps through every alpha, then every T, then every beta")
    ex.artists = art
    return ex
