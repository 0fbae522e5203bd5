"""Figures of Chapter 4, the motor tracking task and frequency-ordered learning."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import tracking
from ..plotting import FREQ_COLORS, PALETTE, WIDTH, figure, sampled_vs_exact

# one colour per sinusoid, low to high frequency


def _plain_log_y(ax):
    """Log y axis labelled 2, 5, 10, ... rather than 2 x 10^0 where it spans few decades."""
    ax.yaxis.set_major_formatter(mpl.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(mpl.ticker.NullFormatter())


def _freq_label(refs, k):
    return f"{refs.freqs[k]:g} Hz ({'xy'[refs.axes[k]]})"


def tracking_example(agent, plant, refs, phases):
    """The network tracking one reference: the path in the plane, and x, y against time."""
    r = refs.signal(phases[:1])
    with torch.no_grad():
        q = tracking.rollout(agent, plant, r)["q"][:, 0].numpy()   # (T+1, 4): time first
    r = r[:, 0].numpy()
    t = np.arange(refs.T + 1) * refs.dt
    fig = plt.figure(figsize=(WIDTH, 3.6))
    ax = fig.subplot_mosaic([["plane", "x"], ["plane", "y"]], width_ratios=[1, 1.7])
    ax["plane"].plot(r[:, 0], r[:, 1], color="0.2", ls="--", lw=1, label="reference $r$")
    ax["plane"].plot(q[:, 0], q[:, 2], color=PALETTE["blue"], lw=1.2, label="point mass $p$")
    ax["plane"].set(xlabel="x", ylabel="y", aspect="equal")
    ax["plane"].legend(loc="upper center", bbox_to_anchor=(0.5, 1.2), ncols=1)
    for name, i, j in (("x", 0, 0), ("y", 1, 2)):
        ax[name].plot(t, r[:, i], color="0.2", ls="--", lw=1)
        ax[name].plot(t, q[:, j], color=PALETTE["blue"], lw=1.2)
        ax[name].set(ylabel=name)
    ax["x"].tick_params(labelbottom=False)
    ax["y"].set(xlabel="time (s)")
    return fig


def loss_curves(h_closed, h_open, baseline, acquired=(), h_other=None, other_label=""):
    """Closed-loop test loss of the closed-loop network and of its open-loop twin (left), what
    each was trained on (middle), and the spectral radius of each one's closed loop (right).
    ``baseline``: the test loss of doing nothing; ``acquired``: epochs marked on the left;
    ``h_other``: a second twin (``other_label``), drawn in purple."""
    fig, ((a1, a2, a3),) = figure(3, height=3.1)
    runs = [(h_closed, "black", "closed-loop training"), (h_open, "red", "open-loop twin")]
    if h_other is not None:
        runs.append((h_other, "purple", other_label))
    for h, c, lab in runs:
        a1.plot(h.test_epoch + 1, h.test_loss, color=PALETTE[c], label=lab)
        a3.plot(h.eig_epoch + 1, h.spectral_radius, color=PALETTE[c])
    peak = tracking.excursion(h_open)
    a1.plot(peak["peak_epoch"] + 1, peak["peak"], "v", color=PALETTE["red"], ms=5)
    a1.axhline(baseline, color="0.5", ls=":", lw=1)
    a1.text(1.2, baseline * 0.95, "doing nothing", va="top", fontsize=8, color="0.4")
    for k, e in enumerate(acquired):
        if e is not None:
            a1.axvline(e + 1, color=FREQ_COLORS[k], lw=0.8, ls="--")
    a1.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel="closed-loop test loss")
    a1.legend(loc="lower left", fontsize=7)
    a2.plot(h_closed.epoch + 1, h_closed.loss, color=PALETTE["black"], lw=0.6,
            label="tracking loss")
    a2.plot(h_open.epoch + 1, h_open.loss, color=PALETTE["red"], lw=0.6,
            label="imitation loss")
    if h_other is not None:
        a2.plot(h_other.epoch + 1, h_other.loss, color=PALETTE["purple"], lw=0.6)
    a2.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel="train loss (batch)")
    a2.legend(loc="lower left")
    a3.axhline(1, color="0.4", ls="--", lw=0.8)
    a3.set(xscale="log", xlabel="epoch + 1", ylabel=r"$\rho(M)$")
    return fig


def probe_grid(history, agent, plant, refs, epochs):
    """Probe responses (one sinusoid at a time, phase 0) of the networks at ``epochs``: a row
    per epoch, a column per probe; the probed axis only. No epochs: the final network."""
    rows = [e for e in epochs if e is not None] or [int(history.epoch[-1])]
    fig, axes = figure(refs.K, nrows=len(rows), height=1.25 * len(rows) + 0.5,
                       sharex=True, sharey=True)
    t = np.arange(refs.T + 1) * refs.dt
    zero = torch.zeros(1, refs.K)
    sc = tracking.history_scoring(history, refs)
    pw = sc.power.numpy()
    for i, e in enumerate(rows):
        e_net, net = tracking.agent_at(history, e, agent)
        probe = tracking.probe_at(history, e_net) / pw
        for k in range(refs.K):
            r = refs.signal(zero, which=[k])
            with torch.no_grad():
                q = tracking.rollout(net, plant, r, sc.convention)["q"][:, 0].numpy()
            ax, a = axes[i, k], refs.axes[k]
            ax.plot(t, r[:, 0, a].numpy(), color="0.3", ls="--", lw=0.8)
            ax.plot(t, q[:, 2 * a], color=FREQ_COLORS[k], lw=1.1)
            ax.text(0.98, 0.04, f"{probe[k]:.2f}", transform=ax.transAxes, ha="right",
                    va="bottom", fontsize=7, color="0.3")
            if i == 0:
                ax.set_title(_freq_label(refs, k))
        axes[i, 0].set_ylabel(f"epoch {e_net}")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    axes[0, 0].set_ylim(-5, 5)
    return fig


def spectra(history, refs, epochs):
    """eig(W - I)/tau at ``epochs`` (top), and the positive imaginary parts of all of them
    against epoch (bottom); dashed: the target angular frequencies. No epochs: the final
    network."""
    rows = [e for e in epochs if e is not None] or [int(history.epoch[-1])]
    fig = plt.figure(figsize=(WIDTH, 5.2))
    top = fig.subfigures(2, 1, height_ratios=[1, 1.1])
    axs = top[0].subplots(1, len(rows), sharey=True, squeeze=False)[0]
    omega = refs.omega.numpy()
    for ax, e in zip(axs, rows):
        i = tracking.record_index(history.eig_epoch, e)
        ev = history.eig_W[i]
        for k, w in enumerate(omega):
            ax.axhline(w, color=FREQ_COLORS[k], ls="--", lw=0.8)
            ax.axhline(-w, color=FREQ_COLORS[k], ls="--", lw=0.8)
        ax.scatter(ev.real, ev.imag, s=6, color="0.15", linewidths=0)
        ax.set(title=f"epoch {history.eig_epoch[i]}", xlim=(-2.2, 0.6), ylim=(-3, 3),
               xlabel="Re (1/s)")
    axs[0].set_ylabel("Im (rad/s)")
    ax = top[1].subplots()
    ep = np.repeat(history.eig_epoch, history.eig_W.shape[1])
    im = history.eig_W.imag.ravel()
    keep = im > 0
    ax.scatter(ep[keep], im[keep], s=1, color="0.3", linewidths=0, rasterized=True)
    for k, w in enumerate(omega):
        ax.axhline(w, color=FREQ_COLORS[k], ls="--", lw=0.8, label=_freq_label(refs, k))
        if epochs[k] is not None:
            ax.axvline(epochs[k], color=FREQ_COLORS[k], lw=0.8)
    ax.set(xlabel="epoch", ylabel="Im eig$(W - I)/\\tau$ (rad/s)", ylim=(0, 3.2))
    ax.legend(loc="upper left", ncols=4)
    return fig


def acquisition_vs_frequency(freqs, human, acquired, learned, others=(), authors=None,
                             run_label="epoch / epochs run"):
    """Normalized acquisition time against frequency: humans, this chapter's run (acquired for
    good, and first learned), other seeds (thin) and, if given, the authors' hand-picked
    acquisition epochs (``authors``, already normalized). Never acquired: not drawn.
    ``run_label`` says how the network's epochs were normalized."""
    fig, ((ax,),) = figure(height=3.0)
    fig.set_size_inches(WIDTH * 0.62, 3.0)
    as_array = lambda v: np.array([np.nan if x is None else x for x in v], dtype=float)
    for i, o in enumerate(others):
        ax.plot(freqs, as_array(o), "-", color="0.7", lw=0.8,
                label="other seeds (acquired)" if i == 0 else None)
    ax.plot(freqs, human, "o-", color=PALETTE["orange"], label="humans (paper)")
    if authors is not None:
        ax.plot(freqs, as_array(authors), "D:", color=PALETTE["green"], ms=4,
                label="authors' figure (hand-picked)")
    ax.plot(freqs, as_array(acquired), "s-", color=PALETTE["blue"], label="network: acquired")
    ax.plot(freqs, as_array(learned), "s--", color=PALETTE["blue"], mfc="white",
            label="network: first learned")
    ax.set(xlabel="frequency (Hz)", ylabel=f"normalized acquisition time\n({run_label})",
           ylim=(0, 1.05), xticks=freqs)
    ax.legend(loc="upper left", fontsize=7)
    return fig


def probe_losses(history, refs, fraction, acquired, learned=None):
    """The probe losses of all sinusoids over training, relative to their reference power,
    with the acquisition threshold, the acquisition epochs (dashed) and, where a frequency
    was first learned earlier, that epoch (dotted)."""
    fig, ((ax,),) = figure(height=3.2)
    pw = tracking.history_scoring(history, refs).power.numpy()
    for k in range(refs.K):
        ax.plot(tracking.probe_epochs(history), history.probe_loss[:, k] / pw[k],
                color=FREQ_COLORS[k], lw=1, label=_freq_label(refs, k))
        if acquired[k] is not None:
            ax.axvline(acquired[k], color=FREQ_COLORS[k], ls="--", lw=0.8)
        if learned is not None and learned[k] is not None and learned[k] != acquired[k]:
            ax.axvline(learned[k], color=FREQ_COLORS[k], ls=":", lw=0.8)
    ax.axhline(fraction, color="0.2", ls=":", lw=1)
    ax.text(history.epoch[-1], fraction, "threshold", ha="right", va="bottom", fontsize=8)
    ratios = history.probe_loss / pw
    seen = ratios[np.isfinite(ratios) & (ratios > 0)]  # a loop that runs away stays in view
    ax.set(yscale="log", xlabel="epoch", ylabel="probe loss / $(A^2/2)$",
           ylim=(min(0.05, 0.7 * seen.min(initial=1.0)),
                 max(5.0, 1.5 * fraction, 1.5 * seen.max(initial=0.0))))
    _plain_log_y(ax)
    ax.legend(loc="upper right", ncols=2)
    return fig


def exact_vs_sampled(h_sampled, h_exact, batch_losses, exact_value, batch):
    """Training on sampled batches and on the exact loss; batch losses around the exact one."""
    fig = sampled_vs_exact(h_sampled, h_exact, batch_losses, exact_value, batch)
    _plain_log_y(fig.axes[0])
    return fig


def interference(history, refs, learned, before=100, after=50):
    """The two lowest probe losses around the second frequency's first-learned epoch
    (``learned[1]``), in the window [learned[1] - before, learned[1] + after]: the lowest,
    learned before (left; dot: the window's start, triangle: its peak), the second, being
    acquired (middle), both over their reference power, and the imaginary parts of
    eig(W - I)/tau at the same epochs (right), with the pair nearest the learned frequency
    and the new pair followed through the window (``tracking.pair_paths``). Where the case
    cannot be measured (0.2 Hz not learned, or too soon after 0.1 Hz), says so."""
    fig, ((a1, a2, a3),) = figure(3, height=2.9)
    events = [ev for ev in tracking.acquisition_rises(history, learned, before, after)
              if (ev["new"], ev["old"]) == (1, 0)]
    if not events:
        for ax in (a1, a2, a3):
            ax.set_axis_off()
        a2.text(0.5, 0.5, f"{refs.freqs[1]:g} Hz was not learned at least {before} epochs "
                f"after {refs.freqs[0]:g} Hz", ha="center", va="center", fontsize=8)
        return fig
    ev = events[0]
    e, start, end = ev["epoch"], max(ev["epoch"] - before, 0), ev["epoch"] + after
    pe = tracking.probe_epochs(history)
    keep = (pe >= start) & (pe <= end)
    pw = tracking.history_scoring(history, refs).power.numpy()
    for ax, k in ((a1, 0), (a2, 1)):
        ax.plot(pe[keep], history.probe_loss[keep, k] / pw[k], color=FREQ_COLORS[k], lw=1.1)
        ax.axvline(e, color=FREQ_COLORS[1], lw=0.8, ls="--")
        ax.set(xlabel="epoch", title=_freq_label(refs, k))
    a1.plot(pe[keep][0], ev["start"] / pw[0], "o", color=FREQ_COLORS[0], ms=4)
    a1.plot(ev["peak_epoch"], ev["peak"] / pw[0], "v", color=FREQ_COLORS[0], ms=5)
    a1.set_ylabel("probe loss / $(A^2/2)$")
    omega = refs.omega.numpy()
    paths = tracking.pair_paths(history, omega[0], omega[1], start, end)
    i0 = tracking.record_index(history.eig_epoch, paths["epochs"][0])
    ev_w = history.eig_W[i0:i0 + len(paths["epochs"])]
    ep = np.repeat(paths["epochs"], ev_w.shape[1])
    im = ev_w.imag.ravel()
    show = (im > 0.3) & (im < 1.2 * omega[1] + 0.3)
    a3.scatter(ep[show], im[show], s=3, color="0.6", linewidths=0)
    a3.plot(paths["epochs"], paths["old"].imag, ".-", color=FREQ_COLORS[0], lw=1, ms=3,
            label=f"pair nearest {refs.freqs[0]:g} Hz")
    a3.plot(paths["epochs"], paths["new"].imag, ".-", color=FREQ_COLORS[1], lw=1, ms=3,
            label="new pair")
    for k in (0, 1):
        a3.axhline(omega[k], color=FREQ_COLORS[k], ls=":", lw=0.8)
    a3.axvline(e, color=FREQ_COLORS[1], lw=0.8, ls="--")
    a3.set(xlabel="epoch", ylabel="Im eig$(W - I)/\\tau$ (rad/s)", title="eig$(W)$")
    a3.legend(loc="upper left", fontsize=7)
    return fig
