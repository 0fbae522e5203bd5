"""Chapter 4: the tracking network's path, probes and eig(W) over training."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from .. import tracking
from ..plotting import FREQ_COLORS, PALETTE, WIDTH
from ..widgets import MAX_FRAMES, Explorer, epoch_explorer


def tracking_explorer(history, like, plant, refs, phases, *, n_frames: int = MAX_FRAMES,
                      include=()) -> Explorer:
    """Chapter 4: an epoch slider over the recorded networks showing, at that epoch, the path
    of the point mass on the reference of ``phases`` (top left), eig(W - I)/tau against the
    target frequencies +/- omega_k (top right) and the four probe responses, one sinusoid at a
    time (bottom, with each probe's loss relative to its reference power).

    ``like``: the initial network (for W_in, dt, tau; the snapshots hold W and W_out). The
    static form shows ``n_frames`` recorded epochs and every epoch of ``include`` (e.g. the
    epochs at which each frequency was first learned). Introduced in Chapter 4, section
    "Explore the acquisitions".
    """
    epochs = [int(e) for e in history.snapshot_epoch]
    example = refs.signal(phases[:1])                 # (T+1, 1, 2): time first
    zero = torch.zeros(1, refs.K)
    probes = torch.cat([refs.signal(zero, which=[k]) for k in range(refs.K)], 1)  # (T+1, K, 2)
    sc = tracking.history_scoring(history, refs)
    pw = sc.power.numpy()
    omega = refs.omega.numpy()
    t = np.arange(refs.T + 1) * refs.dt
    cache = {}

    def state(epoch):
        if epoch not in cache:
            e_net, net = tracking.agent_at(history, epoch, like)
            with torch.no_grad():
                q = tracking.rollout(net, plant, example, sc.convention)["q"][:, 0].numpy()
                qp = tracking.rollout(net, plant, probes, sc.convention)["q"].numpy()
            cache[epoch] = (e_net, q, qp)
        return cache[epoch]

    fig = Figure(figsize=(WIDTH, 5.4), layout="constrained")
    keys = [f"p{k}" for k in range(refs.K)]
    half = refs.K // 2
    ax = fig.subplot_mosaic([["plane"] * half + ["eig"] * (refs.K - half), keys],
                            height_ratios=[1.5, 1])
    r = example[:, 0].numpy()
    art = {}
    ax["plane"].plot(r[:, 0], r[:, 1], color="0.2", ls="--", lw=0.9, label="reference")
    art["path"], = ax["plane"].plot([], [], color=PALETTE["blue"], lw=1.1, label="point mass")
    bound = plant.bound or 10.0
    ax["plane"].set(xlim=(-bound, bound), ylim=(-bound, bound), aspect="equal",
                    xlabel="x position", ylabel="y position")
    ax["plane"].legend(loc="upper left", fontsize=7)
    for k, w in enumerate(omega):
        for sign in (1, -1):
            ax["eig"].axhline(sign * w, color=FREQ_COLORS[k], ls="--", lw=0.8)
    art["eig"] = ax["eig"].scatter([], [], s=8, color="0.15", linewidths=0)
    ax["eig"].set(xlim=(-2.2, 0.6), ylim=(-3.0, 3.0), xlabel="Re (1/s)", ylabel="Im (rad/s)",
                  title="eig$(W - I)/\\tau$")
    for k in range(refs.K):
        a, axis = ax[keys[k]], refs.axes[k]
        a.plot(t, probes[:, k, axis].numpy(), color="0.3", ls="--", lw=0.7)
        art[f"probe{k}"], = a.plot(t, np.zeros_like(t), color=FREQ_COLORS[k], lw=1.0)
        art[f"probe_loss{k}"] = a.text(0.97, 0.04, "", transform=a.transAxes, ha="right",
                                       va="bottom", fontsize=7, color="0.3")
        a.set(ylim=(-5, 5), xlabel="time (s)", title=f"{refs.freqs[k]:g} Hz ({'xy'[axis]})")
        if k:
            a.tick_params(labelleft=False)
    ax[keys[0]].set_ylabel("probe position")

    def draw(epoch):
        e_net, q, qp = state(epoch)
        art["path"].set_data(q[:, 0], q[:, 2])
        ax["plane"].set_title(f"epoch {e_net}: tracking a test reference")
        i = tracking.record_index(history.eig_epoch, e_net)
        ev = history.eig_W[i]
        art["eig"].set_offsets(np.c_[ev.real, ev.imag])
        loss = tracking.probe_at(history, e_net) / pw
        for k in range(refs.K):
            art[f"probe{k}"].set_ydata(qp[:, k, 2 * refs.axes[k]])
            art[f"probe_loss{k}"].set_text(f"loss {loss[k]:.2f}")

    return epoch_explorer(fig, draw, art, epochs, n_frames, include, "training epoch")
