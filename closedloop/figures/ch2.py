"""Figures of Chapter 2, the stages of closed-loop learning (rank-one linear agent)."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import torch

from .. import coupled
from ..history import record_index
from ..plotting import PALETTE, complex_plane, eig_scatter, epoch_colorbar, figure, shade_stages
from ..plotting import sampled_vs_exact  # noqa: F401  (the chapter calls it from here)


def loss_with_stages(history, stages):
    """Expected (test) loss and the sampled batch loss against epoch, stages shaded."""
    fig, ((ax,),) = figure(height=3.0)
    x = history.epoch + 1
    ax.plot(x, history.loss, color=PALETTE["sky"], lw=0.8, alpha=0.8,
            label="batch loss (trained on)")
    ax.plot(x, history.expected_loss, color=PALETTE["black"], label="expected loss (test)")
    ax.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel="loss")
    shade_stages(ax, stages, offset=1)
    ax.legend(loc="center left")
    return fig


def runaway(history, stages, env, T, epochs, horizon=8, x0=(1.0, 1.0)):
    """Distance from the target, ||x_t||, from x0 over ``horizon`` x T steps, for the networks
    of the given epochs (replayed from their recorded overlaps).

    Training only ever sees t <= T (shaded); beyond it a network whose coupled system has
    rho(P) > 1 keeps growing even when its first T steps look controlled.
    """
    q = history.overlaps[list(epochs)]
    out = coupled.effective_rollout(q, env, torch.tensor([x0], dtype=env.dtype), horizon * T)
    dist = out["x"][..., 0, :].norm(dim=-1).numpy()  # (t, epochs)
    rho = history.spectral_radius[[record_index(history.eig_epoch, e) for e in epochs]]
    fig, ((ax,),) = figure(height=3.0)
    ax.axvspan(0, T, color="0.9", lw=0)
    ax.text(T / 2, 0.98, "training\nhorizon T", transform=ax.get_xaxis_transform(),
            ha="center", va="top", fontsize=8)
    colors = [PALETTE[c] for c in ("red", "orange", "blue", "green", "purple")]
    for i, (e, r) in enumerate(zip(epochs, rho)):
        ax.plot(np.maximum(dist[:, i], 1e-300), color=colors[i % 5],
                label=f"epoch {e}: $\\rho(P)$ = {r:.3f}")
    ax.set_yscale("log")
    ax.set(xlabel="time step t", ylabel="$\\|x_t\\|$", xlim=(0, horizon * T),
           ylim=(1e-3, 30 * max(1e2, dist[:, rho < 1.1].max(initial=0))))
    # a fast runaway leaves through the top: the scale is set by the slow ones
    ax.legend(loc="upper right", ncols=2)
    return fig


def stage1_spectra(history, stages, extra=5):
    """eig(P) and eig(W) over stage 1 (plus a few epochs), coloured by epoch."""
    stop = (stages.stage1_end or 0) + extra
    sel = history.eig_epoch <= stop
    fig, ((a1, a2),) = figure(2, height=3.4)
    lim = ((-0.3, 1.7), (-0.6, 0.6))
    norm = mpl.colors.Normalize(0, max(stop, 1))
    for ax, key, title in ((a1, "eig_P", "coupled system: eig($P$)"),
                           (a2, "eig_W", "RNN alone: eig($W$)")):
        complex_plane(ax, lim)
        sc = eig_scatter(ax, history.arrays[key][sel], history.eig_epoch[sel], norm=norm, s=14)
        ax.set_title(title)
    epoch_colorbar(fig, sc, [a1, a2])
    return fig


def stage1_theory(s_zm, simulated, theory, T):
    """The stage-1 loss estimate against the exact loss of networks with negligible u, v."""
    fig, ((ax, ax2),) = figure(2, height=3.0)
    ax.plot(s_zm, simulated, color=PALETTE["black"], label="simulation (exact expected loss)")
    ax.plot(s_zm, theory, color=PALETTE["red"], ls="--",
            label=r"$\frac{1}{2}\,\frac{1-r^{T+1}}{1-r}$")
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set(yscale="log", xlabel="$s_{zm}$", ylabel="loss", title=f"T = {T}")
    ax.legend(loc="upper center")
    ax2.plot(s_zm, simulated / theory, color=PALETTE["blue"])
    ax2.axvline(0, color="0.5", lw=0.8)
    ax2.set(yscale="log", xlabel="$s_{zm}$", ylabel="simulation / theory")
    return fig


def s_zm_sweep(history, s_zm0, epochs=None):
    """s_zm against epoch for an ensemble started at the prescribed overlaps ``s_zm0``."""
    fig, ((ax,),) = figure(height=3.0)
    s = history.overlaps[..., 0]
    stop = len(history.epoch) if epochs is None else epochs + 1
    cmap = mpl.colormaps["coolwarm"]
    norm = mpl.colors.Normalize(-np.abs(s_zm0).max(), np.abs(s_zm0).max())
    for k, s0 in enumerate(s_zm0):
        ax.plot(history.epoch[:stop], s[:stop, k], color=cmap(norm(s0)))
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set(xlabel="epoch", ylabel="$s_{zm} = z \\cdot m$")
    cb = fig.colorbar(mpl.cm.ScalarMappable(norm, cmap), ax=ax, shrink=0.85, pad=0.02)
    cb.set_label("$s_{zm}(0)$")
    return fig


def spectrum_path(history, stages):
    """All of training on the complex plane: eig(P) coloured by epoch, and rho(P)."""
    fig, ((a1, a2),) = figure(2, height=3.4)
    complex_plane(a1, ((-0.2, 1.4), (-0.8, 0.8)))
    norm = mpl.colors.LogNorm(1, history.eig_epoch[-1] + 1)
    sc = eig_scatter(a1, history.eig_P[:, :3], history.eig_epoch + 1, norm=norm, s=5)
    epoch_colorbar(fig, sc, a1, "epoch + 1")
    a2.plot(history.eig_epoch + 1, history.spectral_radius, color=PALETTE["black"])
    a2.axhline(1, color="0.4", ls="--", lw=0.8)
    a2.set(xscale="log", xlabel="epoch + 1", ylabel=r"$\rho(P)$")
    shade_stages(a2, stages, offset=1)
    return fig
