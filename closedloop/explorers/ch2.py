"""Chapter 2: stage 1 under the reader's s_zm(0) and T, and a network retrained from it."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from .. import coupled, theory
from ..agents import RankOneAgent
from ..plotting import PALETTE, WIDTH, complex_plane, shade_stages
from ..widgets import Explorer, Trainer, epoch_progress, slider, sparse_log_ticks


def _stage1_network(s_zm: float, N: int, seed: int) -> RankOneAgent:
    """A rank-one network with z.m = s_zm and negligible u, v (the stage-1 regime)."""
    return RankOneAgent(N=N, seed=seed, s_zm0=torch.tensor(float(s_zm)), uv_scale=1e-3,
                        z_perp_scale=1e-3)


def stage1_explorer(env, T: int = 50, history=None, stages=None, *, N: int = 100,
                    seed: int = 0, s_zm: float | None = None, lr: float = 1e-2,
                    batch: int = 100, clip: float = 1.0, train_epochs: int = 200,
                    s_range=(-0.5, 0.3), n_frames: int = 17, horizon: int = 2,
                    background: bool = True) -> Explorer:
    """Chapter 2: the stage-1 explorer. Sliders for the feedback overlap s_zm and the horizon T
    move four panels at once:

    - eig(P) of a network with that s_zm and negligible u, v (dots) on the unit circle, with
      the stage-1 prediction 1 +/- sqrt(s_zm) (rings);
    - its rollout ||x_t|| from x_0 = (1, 1) over ``horizon`` x T steps (shaded: the horizon);
    - the exact expected loss against s_zm and the geometric-sum estimate, at this T;
    - a training run's loss with its stages shaded: ``history`` (the chapter's run) until the
      "train" button reruns a short training (``train_epochs``, learning rate, seed set
      beside it) from a network with s_zm(0) = the slider's value at the slider's T.

    The static form scrubs s_zm over ``s_range`` (``n_frames`` values, plus the chapter's
    s_zm(0)) at the chapter's T, with the chapter's run in the last panel.
    Introduced in Chapter 2, section "Explore stage 1".
    """
    from ..stages import detect_stages
    from ..training import train_closed_loop

    lo, hi = s_range
    if s_zm is None:
        s_zm = float(history.overlaps[0, 0]) if history is not None else 0.1
    grid = np.linspace(lo, hi, 61)
    x0 = torch.tensor([[1.0, 1.0]], dtype=env.dtype)
    cache = {}

    def curves(T):  # the loss curves and rollout limits depend on T only
        if T not in cache:
            sim = theory.stage1_simulated_loss(grid, env, T, N=N, seed=seed)
            est = theory.stage1_loss(grid, T)
            ends = torch.tensor([[s, 0.0, 0.0, 0.0] for s in (lo, 0.0, hi)], dtype=env.dtype)
            norm = coupled.effective_rollout(ends, env, x0, horizon * T)["x"].norm(dim=-1)
            cache[T] = (sim, est, (max(float(norm.min()), 1e-3) / 3, float(norm.max()) * 10))
        return cache[T]

    fig = Figure(figsize=(WIDTH, 5.6), layout="constrained")
    (a_eig, a_roll), (a_loss, a_train) = fig.subplots(2, 2)
    complex_plane(a_eig, ((-0.3, 1.9), (-0.9, 0.9)))
    art = {"eig": a_eig.scatter([], [], s=22, color=PALETTE["blue"], zorder=3,
                                label="eig($P$), simulated"),
           "theory_eig": a_eig.scatter([], [], s=70, facecolors="none", zorder=4,
                                       edgecolors=PALETTE["red"],
                                       label=r"$1 \pm \sqrt{s_{zm}}$ (stage-1 theory)")}
    a_eig.legend(loc="upper left", fontsize=7)
    art["rollout"], = a_roll.plot([], [], color=PALETTE["black"])
    a_roll.set(yscale="log", xlabel="time step t", ylabel=r"$\|x_t\|$ from $x_0 = (1, 1)$")
    art["sim"], = a_loss.plot([], [], color=PALETTE["black"], label="exact expected loss")
    art["est"], = a_loss.plot([], [], color=PALETTE["red"], ls="--",
                              label=r"$\frac{1}{2}\frac{1-r^{T+1}}{1-r}$")
    art["at"], = a_loss.plot([], [], "o", color=PALETTE["blue"], ms=5, zorder=4)
    art["vline"] = a_loss.axvline(s_zm, color=PALETTE["blue"], lw=0.8)
    a_loss.axvline(0, color="0.5", lw=0.6)
    a_loss.set(yscale="log", xlabel="$s_{zm}$", ylabel="loss", xlim=(lo, hi))
    a_loss.legend(loc="upper left", fontsize=7)
    sparse_log_ticks(a_roll, a_loss)
    span = [None]
    run = {"history": history, "stages": stages, "title": "the chapter's run"}

    def draw_training():
        a_train.clear()
        h = run["history"]
        if h is None:
            a_train.text(0.5, 0.5, "press train", ha="center", va="center",
                         transform=a_train.transAxes, color="0.4")
            a_train.set(xlabel="epoch + 1", ylabel="loss")
            return
        x = h.epoch + 1
        a_train.plot(x, h.loss, color=PALETTE["sky"], lw=0.8, label="batch loss")
        a_train.plot(x, h.expected_loss, color=PALETTE["black"], label="expected loss")
        a_train.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel="loss",
                    title=run["title"])
        shade_stages(a_train, run["stages"] or detect_stages(h), offset=1)
        sparse_log_ticks(a_train)
        a_train.legend(loc="lower left", fontsize=7)

    def draw(s_zm, T):
        sim, est, ylim = curves(T)
        net = _stage1_network(s_zm, N, seed)
        ev = coupled.spectrum(net, env).numpy()
        art["eig"].set_offsets(np.c_[ev.real, ev.imag])
        th = theory.stage1_eigenvalues(s_zm)
        art["theory_eig"].set_offsets(np.c_[th.real, th.imag])
        a_eig.set_title(f"s_zm = {s_zm:+.3f}:  \u03c1(P) = {np.abs(ev).max():.3f}")
        dist = coupled.effective_rollout(net.overlaps()[None], env, x0,
                                         horizon * T)["x"][:, 0, 0].norm(dim=-1).numpy()
        art["rollout"].set_data(np.arange(horizon * T + 1), np.maximum(dist, 1e-300))
        if span[0] is not None:
            span[0].remove()
        span[0] = a_roll.axvspan(0, T, color="0.9", lw=0, zorder=0)
        a_roll.set(xlim=(0, horizon * T), ylim=ylim, title=f"rollout (shaded: horizon T = {T})")
        art["sim"].set_data(grid, sim)
        art["est"].set_data(grid, est)
        with torch.no_grad():
            here = coupled.expected_loss(net, env, T).item()
        art["at"].set_data([s_zm], [here])
        art["vline"].set_xdata([s_zm, s_zm])
        a_loss.set_ylim(min(sim.min(), est.min()) / 3, max(sim.max(), est.max()) * 3)
        a_loss.set_title(f"stage-1 loss at T = {T}")

    draw_training()
    s_control = slider("$s_{zm}$", float(np.clip(s_zm, lo, hi)), min=lo, max=hi, step=0.005)
    T_control = slider("T", int(T), min=5, max=max(100, int(T)), step=5)
    lr_control = slider("lr", lr, min=1e-4, max=1e-1, log=True, step=0.25)
    seed_control = widgets.BoundedIntText(value=seed, min=0, max=10**6, description="seed",
                                          layout=widgets.Layout(width="10em"))
    epochs_control = slider("epochs", int(train_epochs), min=10, max=2000, step=10)

    def train(report):
        n = epochs_control.value
        agent = RankOneAgent(N=N, seed=seed_control.value,
                             s_zm0=torch.tensor(float(s_control.value)))
        h = train_closed_loop(agent, env, epochs=n, T=T_control.value, lr=lr_control.value,
                              batch=batch, clip=clip, seed=seed_control.value,
                              monitor=epoch_progress(n, report))
        return h

    def trained(h):
        with ex._lock:
            run.update(history=h, stages=detect_stages(h),
                       title=f"your run: $s_{{zm}}(0)$ = {s_control.value:+.3f}, "
                             f"T = {T_control.value}, lr = {lr_control.value:.2g}")
            draw_training()
        ex.refresh()

    trainer = Trainer(train, trained, description="train",
                      params=(lr_control, seed_control, epochs_control), background=background)
    values = sorted(set(np.round(np.linspace(lo, hi, n_frames), 4)) | {round(float(s_zm), 4)})
    frames = [{"s_zm": float(s), "T": int(T)} for s in values]
    ex = Explorer(fig, draw, {"s_zm": s_control, "T": T_control}, frames,
                  label=lambda v: f"s_zm = {v['s_zm']:+.3f}",
                  start=values.index(round(float(s_zm), 4)), actions=[trainer.widget],
                  name="feedback overlap s_zm",
                  note=f"T = {T}; run the notebook to change T and to retrain")
    ex.artists, ex.trainer = art, trainer
    return ex
