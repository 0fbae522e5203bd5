"""Figures of Chapter 1: the same tanh network trained closed loop and open loop."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import coupled, gains
from ..history import record_index
from ..plotting import (ABLATION_COLORS, LOOP_COLORS, PALETTE, REGION_COLORS, WIDTH,
                        complex_plane, figure, shade_stages)



def closed_loop_losses(history, stages, plateau=None):
    """Closed-loop training: the batch loss it descends and its test loss, stages shaded;
    ``plateau`` (first, last epoch), if given, is bracketed on the test loss."""
    fig, ((ax,),) = figure(height=3.0)
    ax.plot(history.epoch + 1, history.loss, color=PALETTE["sky"], lw=0.8,
            label="train loss (batch, with control cost)")
    ax.plot(history.monitor_epoch + 1, history.test_loss, color=LOOP_COLORS["closed"],
            label="test loss (fixed starts)")
    if plateau is not None:
        e, loss = history.monitor_epoch, history.test_loss
        on = (e >= plateau[0]) & (e <= plateau[1])
        top = 3 * loss[on].max()
        ax.plot([plateau[0] + 1, plateau[0] + 1, plateau[1] + 1, plateau[1] + 1],
                [top / 1.5, top, top, top / 1.5], color="k", lw=0.8)
        ax.text(np.sqrt((plateau[0] + 1) * (plateau[1] + 1)), top * 1.2, "plateau",
                ha="center", va="bottom", fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel="loss")
    shade_stages(ax, stages, offset=1)
    ax.legend(loc="lower left")
    return fig


def open_loop_losses(history, peak_epoch):
    """Open-loop training: its imitation loss (left) and its closed-loop test loss (right)."""
    fig, ((a1, a2),) = figure(2, height=2.9)
    a1.plot(history.epoch + 1, history.loss, color=PALETTE["orange"])
    a1.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel="imitation MSE",
           title="train loss (open loop)")
    a2.plot(history.monitor_epoch + 1, history.test_loss, color=LOOP_COLORS["open"])
    i = record_index(history.monitor_epoch, peak_epoch)
    a2.plot(peak_epoch + 1, history.test_loss[i], "v", color="k", ms=6,
            label=f"peak (epoch {peak_epoch})")
    a2.axhline(history.test_loss[0], color="0.5", ls=":", lw=0.8, label="test loss at epoch 0")
    _shade_unstable(a2, history)
    a2.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel="summed state cost",
           title="test loss (closed loop)")
    a2.legend(loc="lower left")
    return fig


def _shade_unstable(ax, history):
    """Grey where the linearized coupled system is unstable, rho(P) > 1."""
    e, unstable = history.eig_epoch, history.spectral_radius > 1
    for start, stop in _runs(e, unstable):
        ax.axvspan(start + 1, stop + 1, color="0.85", lw=0, zorder=0)
    ax.text(0.99, 0.98, r"grey: $\rho(P) > 1$", transform=ax.transAxes, ha="right", va="top",
            fontsize=8, color="0.4")


def _runs(epochs, flag):
    """[(first, last + 1)] epochs of each run of True in ``flag``."""
    out, start = [], None
    for e, f in zip(epochs, flag):
        if f and start is None:
            start = e
        if not f and start is not None:
            out.append((start, e))
            start = None
    if start is not None:
        out.append((start, epochs[-1] + 1))
    return out


def test_losses(h_closed, h_open, peak_epoch):
    """Both networks' closed-loop test loss on one log-log plot."""
    fig, ((ax,),) = figure(height=3.0)
    for h, name in ((h_closed, "closed"), (h_open, "open")):
        ax.plot(h.monitor_epoch + 1, h.test_loss, color=LOOP_COLORS[name],
                label=f"trained {name} loop")
    ax.axvline(peak_epoch + 1, color=LOOP_COLORS["open"], ls=":", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel="test loss (summed state cost)")
    ax.legend()
    return fig


def gain_space(h_closed, h_open, env, peak_epoch, T=50, x0=(1.0, 1.0), lim=(-1.2, 0.6),
               zoom=0.15, n=301):
    """Both training paths in the (k1, k2) plane: over the log loss landscape of linear
    feedback from ``x0`` (left), over the stability regions (middle), and near the origin
    (right). The LQR gain is the star; the open-loop network at ``peak_epoch`` the triangle.
    The landscape is the summed state cost sum_{t<T} ||x_t||^2 (the test loss's units).
    """
    k1, k2, grid = gains.gain_grid(lim, n)
    log_loss = np.log10(2 * T * gains.feedback_loss(grid, env, x0, T))  # summed state cost
    lqr = gains.lqr_feedback(env)
    fig, ((a1, a2, a3),) = figure(3, height=2.9)
    im = a1.imshow(np.clip(log_loss, None, 8), origin="lower", extent=(*lim, *lim),
                   cmap="viridis", aspect="equal")
    fig.colorbar(im, ax=a1, shrink=0.8, pad=0.02, label="log$_{10}$ cost (clipped at 8)")
    for ax, lo, hi in ((a2, *lim), (a3, -zoom, zoom)):
        kz1, _, gz = gains.gain_grid((lo, hi), n)
        region = gains.stability_region(gz, env)
        ax.imshow(region, origin="lower", extent=(lo, hi, lo, hi), aspect="equal",
                  cmap=mpl.colors.ListedColormap(REGION_COLORS), vmin=-0.5, vmax=2.5,
                  interpolation="nearest")
    for ax in (a1, a2, a3):
        for h, name in ((h_closed, "closed"), (h_open, "open")):
            ax.plot(h.gains[:, 0], h.gains[:, 1], color=LOOP_COLORS[name], lw=1.0,
                    label=f"trained {name} loop")
            ax.plot(*h.gains[0], "o", color=LOOP_COLORS[name], ms=3)
            ax.plot(*h.gains[-1], "s", color=LOOP_COLORS[name], ms=4)
        i = record_index(h_open.monitor_epoch, peak_epoch)
        ax.plot(*h_open.gains[i], "v", color="k", ms=6)
        ax.plot(*lqr, "*", color=PALETTE["yellow"], mec="k", mew=0.5, ms=10)
        ax.set(xlabel="$k_1$ (position gain)", ylabel="$k_2$ (velocity gain)")
        ax.grid(False)
    a1.set(xlim=lim, ylim=lim, title="cost of $u = k \\cdot x$")
    a2.set(xlim=lim, ylim=lim, title="stability of $A + B k^\\top$")
    a3.set(xlim=(-zoom, zoom), ylim=(-zoom, zoom), title="near the origin")
    handles = [mpl.patches.Patch(color=c, label=lab)
               for c, lab in zip(REGION_COLORS, gains.REGIONS)]
    handles += [mpl.lines.Line2D([], [], color=c, label=f"{k} loop")
                for k, c in LOOP_COLORS.items()]
    handles += [mpl.lines.Line2D([], [], ls="", marker="*", color=PALETTE["yellow"], mec="k",
                                 label="LQR"),
                mpl.lines.Line2D([], [], ls="", marker="v", color="k",
                                 label="open-loop test-loss peak")]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8)
    return fig


def rollouts(h_closed, h_open, like, env, epochs_closed, epochs_open, x0=(1.0, 1.0), T=50):
    """Position, velocity and control from ``x0`` for each network at the given epochs,
    rebuilt from the histories' snapshots (the first at or after each epoch)."""
    fig, axes = figure(2, 3, height=6.0, sharex=True)
    start = torch.tensor([x0], dtype=env.dtype)
    for col, (h, eps, name) in enumerate(((h_closed, epochs_closed, "closed"),
                                          (h_open, epochs_open, "open"))):
        shades = mpl.colormaps["viridis"](np.linspace(0, 0.9, len(eps)))
        for e, c in zip(eps, shades):
            net = h.agent_at(e, like)
            with torch.no_grad():
                traj = coupled.rollout(net, env, start, T)
            lab = f"epoch {net.snapshot_epoch}"
            axes[0, col].plot(traj["x"][:, 0, 0], color=c, label=lab)
            axes[1, col].plot(traj["x"][:, 0, 1], color=c)
            axes[2, col].plot(traj["u"][:, 0], color=c)
        axes[0, col].set_title(f"trained {name} loop")
        axes[0, col].legend(fontsize=7, loc="upper left")
        for r, lab in enumerate(("position $x_1$", "velocity $x_2$", "control $u$")):
            axes[r, col].set_yscale("symlog", linthresh=1.0)
            axes[r, col].set_ylabel(lab)
        axes[2, col].set_xlabel("time step t")
    return fig


def final_spectra(h_closed, h_open, stages=None):
    """Top: eig(P) of both final networks' coupled systems, linearized at the target, and
    rho(P) over training. Bottom: the same for W alone (eig(W) of the final networks, rho(W)
    at every parameter snapshot); ``stages`` (the closed-loop network's) marks its
    stabilization epoch on both radii."""
    from ..excursion import recurrent_spectra

    fig, ((a1, a2), (a3, a4)) = figure(2, 2, height=6.0)
    for a in (a1, a3):
        complex_plane(a, ((-1.1, 1.1), (-1.1, 1.1)))
    for h, name, mk in ((h_closed, "closed", "o"), (h_open, "open", "x")):
        style = dict(s=14 if mk == "o" else 18, marker=mk, color=LOOP_COLORS[name],
                     facecolors="none" if mk == "o" else None, label=f"trained {name} loop")
        ev = h.eig_P[-1]
        a1.scatter(ev.real, ev.imag, **style)
        a2.plot(h.eig_epoch + 1, h.spectral_radius, color=LOOP_COLORS[name],
                label=f"trained {name} loop")
        epochs, eW = recurrent_spectra(h)
        a3.scatter(eW[-1].real, eW[-1].imag, **style)
        a4.plot(epochs + 1, np.abs(eW[:, 0]), color=LOOP_COLORS[name],
                label=f"trained {name} loop")
    a1.legend(loc="upper left", fontsize=7)
    a1.set_title("final eig(P)")
    a3.set_title("final eig(W)")
    for a, what in ((a2, r"$\rho(P)$"), (a4, r"$\rho(W)$")):
        a.axhline(1, color="0.4", ls="--", lw=0.8)
        if stages is not None and stages.stabilization is not None:
            a.axvline(stages.stabilization + 1, color="0.4", ls=":", lw=0.8)
        a.set(xscale="log", xlabel="epoch + 1", ylabel=what, title="spectral radius")
    a2.legend()
    return fig


def ablation(students, env, lim=(-1.1, 0.2), n=201):
    """The open-loop students of the ablation: ``students`` {setting label: History}, the first
    the reference. Top: each student's closed-loop test loss over training (its peak marked).
    Bottom left: its path in gain space over the stability regions of u = k.x (square: the
    end). Bottom right: how far it has learned the two first weights of its response, z.m
    (to the current position) and z.W m (to the position one step back), each as a share of
    its final value (the diagonal: both at the same pace). Introduced in Chapter 1, section
    "What causes the excursion".
    """
    from ..excursion import find_excursion, learned_shares

    fig = plt.figure(figsize=(WIDTH, 6.2), layout="constrained")
    ax = fig.subplot_mosaic([["loss", "loss"], ["gains", "parts"]], height_ratios=[1, 1.15])
    a1, a2, a3 = ax["loss"], ax["gains"], ax["parts"]
    _, _, grid = gains.gain_grid(lim, n)
    a2.imshow(gains.stability_region(grid, env), origin="lower", extent=(*lim, *lim),
              aspect="equal", cmap=mpl.colors.ListedColormap(REGION_COLORS), vmin=-0.5,
              vmax=2.5, interpolation="nearest")
    a3.plot([0, 1], [0, 1], color="0.6", ls="--", lw=0.8)
    for j, ((label, h), c) in enumerate(zip(students.items(), ABLATION_COLORS)):
        # the reference on top, the others dashed where they follow it closely
        style = dict(color=c, lw=1.6, zorder=3) if j == 0 else dict(color=c, lw=1.1, ls="--")
        a1.plot(h.monitor_epoch, h.test_loss, label=label, **style)
        ex = find_excursion(h.monitor_epoch, h.test_loss)
        if ex.peak_epoch is not None:
            a1.plot(ex.peak_epoch, ex.peak_loss, "v", color=c, mec="k", mew=0.4, ms=6, zorder=4)
        a2.plot(h.gains[:, 0], h.gains[:, 1], **style)
        a2.plot(*h.gains[-1], "s", color=c, ms=4, zorder=4)
        share0, share1 = learned_shares(h)
        a3.plot(share0, share1, **style)
        if ex.peak_epoch is not None:
            i = record_index(h.monitor_epoch, ex.peak_epoch)
            a3.plot(share0[i], share1[i], "v", color=c, mec="k", mew=0.4, ms=6, zorder=4)
    a1.set(yscale="log", xlabel="epoch", ylabel="test loss (summed state cost)",
           title="open-loop students: closed-loop test loss")
    a1.legend(fontsize=7, loc="upper right", ncols=2)
    a2.set(xlim=lim, ylim=lim, xlabel="$k_1$ (position gain)", ylabel="$k_2$ (velocity gain)",
           title="paths in gain space")
    a2.grid(False)
    a3.set(xlabel=r"$z \cdot m$, share of its final value",
           ylabel=r"$z \cdot W m$, share of its final value", title="which part comes first",
           xlim=(-0.1, 1.4), ylim=(-0.1, 1.4), aspect="equal")
    return fig
