"""Closed-loop training by BPTT through the environment (paper s.2), with a per-epoch history.

SGD with gradient clipping, done by hand so that an ensemble (agents with leading axes K)
trains as K independent runs in one computation: each member's gradient is clipped by its
own norm. The history is a set of numpy arrays indexed by epoch, never copies of models.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from . import _checks, coupled
from .agents import Agent, RankOneAgent, make_generator
from .envs import DoubleIntegrator

MODES = ("sampled", "exact")


@dataclass
class History:
    """What training recorded. ``arrays[name]`` has shape (n_records, *batch_shape, ...).

    Row e of the per-epoch arrays describes the network *before* update e; the last row is
    the final network (so there are epochs + 1 rows for a completed run). Keys:

    - ``epoch`` (E,); ``loss`` (E, *K): the loss the update was computed from;
      ``expected_loss`` (E, *K): its exact expectation over x_0 (linear agents);
      ``grad_norm`` (E, *K): before clipping;
    - ``overlaps`` (E, *K, 4): (s_zm, s_zu, s_vm, s_vu) (rank-one agents);
    - ``eig_epoch`` (R,); ``eig_P`` (R, *K, d) and ``eig_W`` (R, *K, N), complex, by decreasing
      modulus, every ``eig_every`` epochs (see ``coupled.spectrum``);
      ``spectral_radius`` (R, *K) = rho(P).
    - ``snapshot_epoch`` (S,), ``params/<name>`` (S, *K, ...): parameters every
      ``snapshot_every`` epochs, enough to rebuild the network.

    ``message`` is empty for a completed run and says why otherwise (divergence, interrupt).
    """

    config: dict
    arrays: dict = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0

    def __getattr__(self, name):
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    @property
    def completed(self) -> bool:
        return not self.message

    def member(self, k: int) -> "History":
        """Ensemble member k: every per-member array indexed at axis 1."""
        per_member = {n: a[:, k] for n, a in self.arrays.items() if not n.endswith("epoch")}
        epochs = {n: a for n, a in self.arrays.items() if n.endswith("epoch")}
        return History(dict(self.config, member=k), {**epochs, **per_member}, self.message,
                       self.seconds)


def train_closed_loop(agent: Agent, env: DoubleIntegrator | None = None, *, epochs: int = 1000,
                      T: int = 50, lr: float = 1e-2, batch: int = 100, clip: float | None = 1.0,
                      beta: float = 0.0, mode: str = "sampled", seed: int = 0,
                      eig_every: int = 1, snapshot_every: int = 0) -> History:
    """Train ``agent`` in place on the closed-loop control objective; return its History.

    ``mode='sampled'``: a fresh batch of ``batch`` initial states each epoch (the paper);
    ``mode='exact'``: the expected loss over x_0 in closed form (linear agents; deterministic
    gradient descent). ``clip``: max 2-norm of each member's gradient (None: no clipping).
    ``seed`` fixes the initial-state draws. A non-finite loss or gradient stops training with
    a warning; Ctrl-C stops it too; either way the history so far is returned.
    Introduced in Chapter 2, section "Training".
    """
    env = DoubleIntegrator() if env is None else env
    epochs = _checks.integer("epochs", epochs, low=0)
    T = _checks.integer("T", T, low=1)
    lr = _checks.real("lr", lr, low=0.0, low_open=True)
    batch = _checks.integer("batch", batch, low=1)
    if clip is not None:
        clip = _checks.real("clip", clip, low=0.0, low_open=True)
    beta = _checks.real("beta", beta, low=0.0)
    _checks.choice("mode", mode, MODES)
    eig_every = _checks.integer("eig_every", eig_every, low=0)
    snapshot_every = _checks.integer("snapshot_every", snapshot_every, low=0)
    linear = agent.activation == "identity"
    if mode == "exact" and not linear:
        raise ValueError("mode='exact' needs a linear agent (activation='identity'); "
                         "use mode='sampled' for tanh")
    config = dict(agent=repr(agent), env=repr(env), epochs=epochs, T=T, lr=lr, batch=batch,
                  clip=clip, beta=beta, mode=mode, seed=seed)
    gen = make_generator(seed)
    F = env.x0_factor()
    rec = _Recorder(agent)
    params = agent.parameters()
    message, start = "", time.perf_counter()
    try:
        for e in range(epochs + 1):
            if mode == "exact":
                loss = coupled.expected_loss(agent, env, T, beta)
                expected = loss.detach()
            else:
                x0 = env.sample_x0(batch, gen)
                if linear:  # the exact loss rides along: its starts F join the batch
                    costs = coupled.start_costs(agent, env, torch.cat([x0, F]), T, beta)
                    loss = costs[..., :batch].mean(-1)
                    expected = costs[..., batch:].detach().sum(-1)
                else:
                    loss = coupled.closed_loop_loss(agent, env, x0, T, beta)
            grads = torch.autograd.grad(loss.sum(), params) if e < epochs else None
            gnorm = _member_norm(grads, agent) if grads is not None else None
            if not (torch.isfinite(loss).all() and (gnorm is None or torch.isfinite(gnorm).all())):
                last = rec.arrays["loss"][-1] if rec.arrays.get("loss") else float("nan")
                message = (f"training stopped at epoch {e}: the loss or its gradient is not "
                           f"finite (last finite loss {np.max(last):.4g}); history up to epoch "
                           f"{e - 1} kept")
                break
            row = {"epoch": e, "loss": loss.detach()}
            if linear:
                row["expected_loss"] = expected
            if gnorm is not None:
                row["grad_norm"] = gnorm
            rec.epoch(row, agent, env, e, last=e == epochs, eig_every=eig_every,
                      snapshot_every=snapshot_every, linear=linear)
            if grads is None:
                break
            scale = 1.0 if clip is None else torch.clamp(clip / (gnorm + 1e-300), max=1.0)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p.sub_(lr * _expand(scale, g, agent) * g)
    except KeyboardInterrupt:
        message = f"training interrupted at epoch {e}; history up to there kept"
    if message:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return History(config, rec.finish(), message, time.perf_counter() - start)


class _Recorder:
    def __init__(self, agent):
        self.arrays: dict[str, list] = {}
        self.rank_one = isinstance(agent, RankOneAgent)

    def add(self, name, value):
        v = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
        self.arrays.setdefault(name, []).append(v)

    def epoch(self, row, agent, env, e, last, eig_every, snapshot_every, linear):
        for k, v in row.items():
            self.add(k, v)
        if self.rank_one:
            self.add("overlaps", agent.overlaps())
        if linear and eig_every and (e % eig_every == 0 or last):
            ev = coupled.spectrum(agent, env)
            self.add("eig_epoch", e)
            self.add("eig_P", ev)
            self.add("spectral_radius", ev.abs()[..., 0])
            self.add("eig_W", coupled.recurrent_spectrum(agent))
        if snapshot_every and (e % snapshot_every == 0 or last):
            self.add("snapshot_epoch", e)
            for k, v in agent.snapshot().items():
                self.add(f"params/{k}", v)

    def finish(self):
        return {k: np.stack(v) for k, v in self.arrays.items()}


def _member_norm(grads, agent):
    nb = len(agent.batch_shape)
    sq = sum((g ** 2).flatten(nb).sum(-1) if g.dim() > nb else g ** 2 for g in grads)
    return sq.sqrt()


def _expand(scale, g, agent):
    if not torch.is_tensor(scale):
        return scale
    return scale.reshape(scale.shape + (1,) * (g.dim() - scale.dim()))
