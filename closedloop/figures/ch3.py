"""Figures of Chapter 3: short-term improvement against long-term stability, and stage 3."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np

from .. import theory
from ..plotting import PALETTE, complex_plane, figure, shade_stages
from ..reduced import returns_inside


def stage2_theory(history, stages, margin=20):
    """|lambda_1..3| of the full model over stage 2 against the perturbative theory (left) and
    |lambda_1|^2 against c + b lambda_3 + lambda_3^2 (right)."""
    lo = max(stages.stage1_end - margin, 0)
    hi = min(stages.stabilization + margin, len(history.epoch) - 1)
    sel = slice(lo, hi + 1)
    ep, q = history.epoch[sel], history.overlaps[sel]
    roots = theory.labelled_roots(q)
    lam3 = theory.perturbative_lambda3(q)
    pair = theory.pair_modulus_sq(q)
    fig, ((a1, a2),) = figure(2, height=3.2)
    a1.plot(ep, np.abs(roots[:, 0]), color=PALETTE["blue"], label=r"$|\lambda_{1,2}|$ exact")
    a1.plot(ep, np.sqrt(np.abs(pair)), color=PALETTE["sky"], ls="--", label="theory")
    a1.plot(ep, np.abs(roots[:, 2]), color=PALETTE["red"], label=r"$|\lambda_3|$ exact")
    a1.plot(ep, np.abs(lam3), color=PALETTE["orange"], ls="--", label="theory")
    a1.axhline(1, color="0.4", lw=0.8, ls=":")
    a1.set(xlabel="epoch", ylabel="modulus", yscale="log")
    a1.legend(loc="center right", ncols=2)
    a2.plot(ep, np.abs(roots[:, 0]) ** 2, color=PALETTE["blue"], label=r"$|\lambda_1|^2$ exact")
    a2.plot(ep, pair, color=PALETTE["red"], ls="--",
            label=r"$c + b\lambda_3 + \lambda_3^2$, perturbative $\lambda_3$")
    a2.axhline(1, color="0.4", lw=0.8, ls=":")
    a2.set(xlabel="epoch", ylabel=r"$|\lambda_1|^2$")
    a2.legend(loc="lower left")
    for ax in (a1, a2):
        ax.set_xlim(ep[0], ep[-1])
        shade_stages(ax, stages, labels=ax is a2)
    return fig


def zigzag(histories, labels, stages):
    """lambda_1 over stage 2 on the zoomed complex plane, one panel per history (e.g. sampled
    and exact training from the same network), coloured by epoch."""
    fig, axes = figure(len(histories), height=3.4)
    span = slice(stages.stage1_end, stages.stabilization + 1)
    paths = [theory.labelled_roots(h.overlaps[span])[:, 0] for h in histories]
    box = _square_box(np.concatenate(paths))
    norm = mpl.colors.Normalize(stages.stage1_end, stages.stabilization)
    for ax, lam, lab in zip(axes[0], paths, labels):
        complex_plane(ax, box)
        ax.plot(lam.real, lam.imag, color="0.75", lw=0.6, zorder=1)
        sc = ax.scatter(lam.real, lam.imag, c=np.arange(len(lam)) + stages.stage1_end,
                        norm=norm, s=6, zorder=2)
        ax.set_title(lab)
    cb = fig.colorbar(sc, ax=list(axes[0]), shrink=0.85, pad=0.02)
    cb.set_label("epoch")
    return fig


def alpha_paths(paths, network_path=None):
    """The alpha-model: lambda_1 paths on the complex plane, one per alpha (left; grey: the
    network's own path over stage 2), and |lambda_1| against the step (right)."""
    fig, ((a1, a2),) = figure(2, height=3.6)
    cmap, norm = mpl.colormaps["viridis"], mpl.colors.Normalize(0, 1)
    pts = paths.lambda1 if network_path is None else np.concatenate(
        [paths.lambda1.ravel(), network_path])
    complex_plane(a1, _square_box(pts))
    if network_path is not None:
        a1.plot(network_path.real, network_path.imag, color="0.6", lw=1.5, label="the network")
    for k, a in enumerate(paths.alpha):
        lam, c = paths.lambda1[:, k], cmap(norm(a))
        a1.plot(lam.real, lam.imag, color=c, lw=1.5)
        a1.plot(lam.real[-1], lam.imag[-1], "o", color=c, ms=4)
        # thin lines, larger alpha drawn below: a path that chatters step by step fills a band
        a2.plot(np.abs(lam), color=c, lw=0.7, zorder=3 - a, label=f"{a:g}")
    a1.plot(paths.lambda1[0, 0].real, paths.lambda1[0, 0].imag, "k*", ms=9, label="start")
    a1.legend(loc="upper left")
    a2.axhline(1, color="0.4", lw=0.8, ls="--")
    a2.set(xlabel="gradient step", ylabel=r"$|\lambda_1|$")
    a2.legend(title=r"$\alpha$", loc="upper left", ncols=2)
    return fig


def alpha_band(bands, T_prime, alphas=()):
    """The band of alpha that returns inside the unit circle (a ``reduced.AlphaBands``).

    Left: |lambda_1| after the last step against alpha on the grid at horizon ``T_prime``
    (filled: the path returned, ``reduced.returns_inside``), the bisected band shaded, the
    ``alphas`` marked. Right: the band against the horizon T' after all, half and a quarter of
    the steps (bars, dark to light), and the balance alpha* of the first step (line)."""
    fig, ((a1, a2),) = figure(2, height=3.4)
    k = bands.index(T_prime)
    sel = bands.grid.T_prime == T_prime
    a, lam = bands.grid.alpha[sel], bands.grid.lambda1[:, sel]
    back = returns_inside(np.abs(lam))
    final = np.abs(lam[-1])
    a1.axvspan(np.nan_to_num(bands.lo[k]), np.nan_to_num(bands.hi[k]), color=PALETTE["green"],
               alpha=0.15, lw=0, label=f"band, {bands.lo[k]:.3f} to {bands.hi[k]:.3f}")
    a1.plot(a[back], final[back], "o", color=PALETTE["green"], ms=3.5, label="returns inside")
    a1.plot(a[~back], final[~back], "o", mfc="none", color="0.45", ms=3.5, mew=0.7,
            label="does not")
    for x in alphas:
        a1.axvline(x, color=PALETTE["orange"], lw=0.8, ls=":")
    a1.axhline(1, color="0.4", lw=0.8, ls="--")
    a1.set(xlabel=r"$\alpha$", ylabel=rf"$|\lambda_1|$ after {bands.steps} steps",
           title=f"$T'$ = {T_prime} (dotted: the authors' $\\alpha$)")
    a1.legend(loc="upper right")
    T = bands.T_prime
    for j, (frac, shade) in enumerate(((1, 1.0), (2, 0.55), (4, 0.3))):
        s = max(bands.steps // frac, 1)
        lo, hi = np.array([bands.grid_edges(t, s) for t in T]).T if frac > 1 else (bands.lo,
                                                                                    bands.hi)
        a2.vlines(T + 0.6 * (j - 1), lo, hi, color=PALETTE["green"], alpha=shade, lw=5,
                  label=f"band after {s} steps")
    a2.plot(T, bands.balance, "k--o", ms=4, lw=1, label=r"balance $\alpha^*$ of the first step")
    a2.set(xlabel="$T'$ (steps)", ylabel=r"$\alpha$", xticks=T, ylim=(0, 1))
    a2.legend(loc="upper right")
    return fig


def horizon_paths(history, T_values, start_epoch):
    """lambda_1 of networks trained from one stage-2 network with different episode lengths T
    (an ensemble history, one member per T): paths on the complex plane (left) and |lambda_1|
    against epoch (right)."""
    fig, ((a1, a2),) = figure(2, height=3.6)
    cmap = mpl.colormaps["viridis"]
    norm = mpl.colors.LogNorm(min(T_values), max(T_values))
    lam = theory.labelled_roots(history.overlaps)[..., 0]
    complex_plane(a1, _square_box(lam[np.abs(lam) > 0.9]))  # where the paths cross the circle
    x = history.epoch + start_epoch
    for k, T in enumerate(T_values):
        c = cmap(1 - norm(T))  # dark = long horizon, as large alpha
        a1.plot(lam[:, k].real, lam[:, k].imag, color=c, lw=1)
        a2.plot(x, np.abs(lam[:, k]), color=c, lw=1, label=f"{T}")
    a1.plot(lam[0, 0].real, lam[0, 0].imag, "k*", ms=9, label=f"start (epoch {start_epoch})")
    a1.legend(loc="upper left")
    a2.axhline(1, color="0.4", lw=0.8, ls="--")
    a2.set(xlabel="epoch", ylabel=r"$|\lambda_1|$")
    a2.legend(title="T (steps)", loc="lower left", ncols=2)
    return fig


def _square_box(z, pad=0.1):
    """Limits ((re0, re1), (im0, im1)) around complex points z with equal spans (for an
    equal-aspect plot), padded by ``pad`` of the span."""
    z = np.asarray(z).ravel()
    re, im = (z.real.min(), z.real.max()), (z.imag.min(), z.imag.max())
    half = max(re[1] - re[0], im[1] - im[0], 1e-3) * (1 + 2 * pad) / 2
    cx, cy = sum(re) / 2, sum(im) / 2
    return (cx - half, cx + half), (cy - half, cy + half)


MODEL_STYLE = {  # name: (label, colour, line style, final-eigenvalue marker)
    "full": ("full network", "black", "-", "o"),
    "compressed": ("exact reduction (4 neurons, 10 inner products)", "sky", (0, (1, 3)), "."),
    "frozen_metric": ("frozen-metric model", "blue", ":", "+"),
    "paper": ("the paper's model (4 overlaps, plain SGD)", "orange", "--", "x"),
}


def stage3(runs, label=None):
    """Stage 3 from the stabilization epoch (a ``reduced.Stage3Runs``, first member): expected
    loss of the full network and of its three reduced models (log-log, left), and their final
    nonzero eigenvalues (right)."""
    fig, ((a1, a2),) = figure(2, height=3.4)
    x = runs.full.epoch + 1
    complex_plane(a2, ((-0.2, 1.0), (-0.7, 0.7)))
    for name in ("full", "compressed", "frozen_metric", "paper"):
        text, colour, ls, marker = MODEL_STYLE[name]
        h = runs.full if name == "full" else runs.model(name)
        loss = h.expected_loss if h.expected_loss.ndim == 1 else h.expected_loss[:, 0]
        eig = h.eig_P[-1] if h.eig_P.ndim == 2 else h.eig_P[-1, 0]
        eig = eig[np.abs(eig) > 1e-9]
        c = PALETTE[colour]
        a1.plot(x, loss, color=c, ls=ls, lw=2.2 if name == "compressed" else 1.3, label=text)
        a2.plot(eig.real, eig.imag, marker, color=c, mfc="none", ms=9 if marker == "o" else 7,
                ls="none", label=text.split(" (")[0])
    a1.set(xscale="log", yscale="log", xlabel=f"epochs since epoch {runs.start_epoch}, + 1",
           ylabel="expected loss", title=label)
    a1.legend(loc="lower left", fontsize=7)
    a2.legend(loc="upper left", fontsize=7)
    a2.set_title("final nonzero eigenvalues")
    return fig


def stage3_metric_and_symmetry(runs):
    """Why the four overlaps alone drift (first member of a ``reduced.Stage3Runs``).

    Left: the diagonal of the full network's overlap metric G over stage 3 (the factor by
    which a gradient step moves each overlap) against the paper's model's G = I and the
    frozen metric of the start. Right: the paths in the (s_zu, s_vm) plane; grey: curves of
    constant s_zu s_vm, along which the loss does not change (``theory.rescale_overlaps``).
    """
    fig, ((a1, a2),) = figure(2, height=3.4)
    G = runs.full.metric[:, 0]
    x = runs.full.monitor_epoch + 1
    names = [r"$s_{zm}$: $|m|^2$", r"$s_{zu}$: $|u|^2 + |z|^2$", r"$s_{vm}$: $|m|^2$",
             r"$s_{vu}$: $|u|^2 + |v|^2$"]
    colours = [PALETTE[c] for c in ("green", "red", "purple", "blue")]
    for i in (1, 3, 0):  # s_vm's entry is s_zm's: |m|^2
        a1.plot(x, G[:, i, i], color=colours[i], label=names[i] + (", and $s_{vm}$" if i == 0
                                                                    else ""))
        a1.plot(x, np.full_like(x, G[0, i, i], dtype=float), color=colours[i], ls=":", lw=1)
    a1.axhline(1, color=PALETTE["orange"], ls="--", lw=1.2, label="the paper's model ($G = I$)")
    a1.set(xscale="log", yscale="log", xlabel=f"epochs since epoch {runs.start_epoch}, + 1",
           ylabel="diagonal of $G$", title="full network (dotted: frozen at the start)")
    a1.yaxis.set_major_formatter(mpl.ticker.FormatStrFormatter("%g"))
    a1.yaxis.set_minor_formatter(mpl.ticker.FormatStrFormatter("%g"))
    a1.legend(loc="upper left", fontsize=7)
    paths = {"full": runs.full.overlaps[:, 0], "frozen_metric": runs.frozen_metric.overlaps,
             "paper": runs.paper.overlaps[:, 0]}
    pts = np.concatenate([p[:, 1:3] for p in paths.values()])
    sx, sy = np.sign(np.median(pts[:, 0])), np.sign(np.median(pts[:, 1]))
    hi = np.abs(pts).max() * 1.15
    grid = np.linspace(1e-3, hi, 400)
    for k in np.linspace(0.2, 1.4, 7) * np.abs(pts[:, 0] * pts[:, 1]).max():
        a2.plot(sx * grid, sy * k / grid, color="0.85", lw=0.8, zorder=0)
    for name, q in paths.items():
        text, colour, ls, marker = MODEL_STYLE[name]
        a2.plot(q[:, 1], q[:, 2], color=PALETTE[colour], ls=ls, label=text.split(" (")[0])
        a2.plot(q[-1, 1], q[-1, 2], marker, color=PALETTE[colour], ms=8, mfc="none")
    a2.plot(paths["full"][0, 1], paths["full"][0, 2], "k*", ms=9, label="start")
    lims = sorted([0, sx * hi]), sorted([0, sy * hi])
    a2.set(xlim=lims[0], ylim=lims[1], xlabel="$s_{zu}$", ylabel="$s_{vm}$",
           title="grey: $s_{zu} s_{vm}$ = const")
    a2.legend(loc="upper right" if sx * sy > 0 else "lower right", fontsize=7)
    return fig


def stage3_beta(runs):
    """Stage 3 for several control costs beta (a ``reduced.Stage3Runs``, one member per beta):
    loss curves of the full network (solid) and of the paper's model (dashed), and their
    final spectra."""
    full, reduced, betas = runs.full, runs.paper, runs.betas
    fig, ((a1, a2),) = figure(2, height=3.4)
    x = full.epoch + 1
    colors = [PALETTE[c] for c in ("black", "blue", "green", "red", "purple", "orange")]
    for k, b in enumerate(betas):
        c = colors[k % len(colors)]
        a1.plot(x, full.expected_loss[:, k], color=c, label=f"$\\beta$ = {b:g}")
        a1.plot(x, reduced.expected_loss[:, k], color=c, ls="--")
    a1.set(xscale="log", yscale="log", xlabel=f"epochs since epoch {runs.start_epoch}, + 1",
           ylabel="expected loss (with cost)")
    a1.legend(loc="lower left", title="solid: full, dashed: the paper's model", ncols=2)
    _final_spectra(a2, full.eig_P[-1], reduced.eig_P[-1], [colors[k % len(colors)]
                                                            for k in range(len(betas))])
    return fig


def _final_spectra(ax, full_eigs, reduced_eigs, colors):
    complex_plane(ax, ((-0.2, 1.1), (-0.8, 0.8)))
    for ef, er, c in zip(full_eigs, reduced_eigs, colors):
        c = PALETTE.get(c, c)
        ef, er = np.asarray(ef), np.asarray(er)
        ef, er = ef[np.abs(ef) > 1e-9], er[np.abs(er) > 1e-9]
        ax.plot(ef.real, ef.imag, "o", mfc="none", mec=c, ms=8)
        ax.plot(er.real, er.imag, "x", color=c, ms=6)
    ax.plot([], [], "o", mfc="none", mec="0.3", label="full network")
    ax.plot([], [], "x", color="0.3", label="the paper's model")
    ax.legend(loc="upper left")
    ax.set_title("final nonzero eigenvalues")
