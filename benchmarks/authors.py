"""Replicas of the authors' training loops, timed against the package's training of the same
model (``shared/paper.md`` sections 9-10): their per-step Python loop of small autograd ops in
float32, ``torch.nn.Parameter`` weights, ``torch.optim`` and ``clip_grad_norm_``, one epoch =
draw a batch, roll the loop out step by step, backward, clip, step. What their code computes,
written the way it computes it; the package's side is its public training function on the same
model, batch and number format, so a ratio is a whole epoch against a whole epoch.

Each ``*_pair`` returns (authors, package) callables: the authors' loop trains ``epochs``
epochs, the package ``package_epochs`` (default ``epochs``). The benchmark compares them per
epoch with the package over a longer run: a package run has a fixed cost (checks, epoch 0's
and the last network's records) that a chapter's 1000-5000 epochs spread thin and a 5-epoch
call does not, and the authors' loop, timed without its setup, has none.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from closedloop import DoubleIntegrator, RankOneAgent, RNNAgent, UniformBox, tracking
from closedloop.streams import Stream
from closedloop.training import train_closed_loop, train_open_loop

F32 = torch.float32
A = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
B = torch.tensor([0.0, 1.0])


def _tanh_params(N, seed):
    """Their tanh controller's weights (section 10's draws), as trainable float32 Parameters:
    Wih (1, N), Whh (N, N), Who (N, 1)."""
    rs = np.random.RandomState(seed)
    wih = rs.normal(0, 1 / N, size=(1, N))
    whh = 0.1 * rs.normal(0, 1 / math.sqrt(N), size=(N, N))
    who = rs.normal(0, 1 / N, size=(N, 1))
    return [torch.nn.Parameter(torch.tensor(w, dtype=F32)) for w in (wih, whh, who)]


def _tanh_drive(params, y):
    """Their controller stepped by hand: h_t = tanh(y_t Wih + h_{t-1} Whh), u_t = h_t Who;
    y (T, B) -> u (T, B)."""
    wih, whh, who = params
    h, us = torch.zeros(y.shape[1], whh.shape[0]), []
    for t in range(y.shape[0]):
        h = torch.tanh(y[t, :, None] * wih + h @ whh)
        us.append((h @ who)[:, 0])
    return torch.stack(us)


def tanh_closed_pair(epochs: int = 20, N: int = 100, T: int = 50, batch: int = 100,
                     beta: float = 0.005, package_epochs: int | None = None):
    """(authors, package): the tanh network trained closed loop, ``epochs`` epochs each, float32.
    Theirs: x_0 ~ U([-1, 1]^2), per step the summed loss 1/2 <|x_t|^2> + beta sum_b u_t^2,
    the environment stepped (with its zero-noise draw), the network stepped; SGD with
    clip_grad_norm_(1)."""
    params = _tanh_params(N, 0)
    opt = torch.optim.SGD(params, lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    wih, whh, who = params

    def authors():
        for _ in range(epochs):
            x = torch.stack([torch.rand(batch, generator=gen) * 2 - 1,
                             torch.rand(batch, generator=gen) * 2 - 1], -1)
            h, u, loss = torch.zeros(batch, N), torch.zeros(batch), 0.0
            for _ in range(T):
                loss = loss + 0.5 * (x ** 2).sum(-1).mean() + beta * (u ** 2).sum()
                x = x @ A.T + u[:, None] * B + torch.normal(0.0, 0.0, size=(batch, 2),
                                                           generator=gen)
                h = torch.tanh(x[:, :1] * wih + h @ whh)
                u = (h @ who)[:, 0]
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()

    env = DoubleIntegrator(UniformBox(1.0), dtype=F32)
    agent = RNNAgent(N=N, seed=Stream(0, "authors"), dtype=F32)

    def package():
        train_closed_loop(agent, env, epochs=package_epochs or epochs, T=T, beta=beta, seed=1,
                          eig_every=0, eig_W=False)

    return authors, package


def tanh_open_pair(epochs: int = 20, N: int = 100, T: int = 50, batch: int = 100,
                   package_epochs: int | None = None):
    """(authors, package): the open-loop student, ``epochs`` epochs each, float32. Theirs: the
    teacher and the student driven by the same N(0, 1) inputs step by step, the squared
    output difference batch-averaged and summed over the steps; SGD with clip_grad_norm_(1)."""
    student, teacher = _tanh_params(N, 0), [p.detach() for p in _tanh_params(N, 1)]
    opt = torch.optim.SGD(student, lr=1e-2)
    gen = torch.Generator().manual_seed(0)

    def authors():
        for _ in range(epochs):
            y = torch.randn(T, batch, generator=gen)
            with torch.no_grad():
                target = _tanh_drive(teacher, y)
            loss = ((_tanh_drive(student, y) - target) ** 2).mean(-1).sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student, 1.0)
            opt.step()

    env = DoubleIntegrator(UniformBox(1.0), dtype=F32)
    s, t = RNNAgent(N=N, seed=0, dtype=F32), RNNAgent(N=N, seed=1, dtype=F32)

    def package():
        train_open_loop(s, t, env, epochs=package_epochs or epochs, T=T, seed=1, eig_every=0,
                        eig_W=False)

    return authors, package


def rank_one_pair(epochs: int = 20, N: int = 100, T: int = 50, batch: int = 100,
                  package_epochs: int | None = None):
    """(authors, package): the rank-one linear network, ``epochs`` epochs each. Theirs: float32,
    W = u v^T, x_0 ~ U([-2, 2]^2) from numpy, per step the mean of x^2 over t = 0..T-1, SGD
    with clip_grad_norm_(1) on (u, v, z). The package's default (float64, the cost matrix of
    P_eff)."""
    rs = np.random.RandomState(0)
    a = 1 / math.sqrt(N)
    m = torch.tensor(rs.uniform(-a, a, (N, 1)), dtype=F32)
    z, u, v = (torch.nn.Parameter(torch.tensor(w, dtype=F32)) for w in (
        rs.uniform(-a, a, (1, N)), rs.normal(0, a, (N, 1)), rs.normal(0, a, (N, 1))))
    opt = torch.optim.SGD([u, v, z], lr=1e-2)

    def authors():
        for _ in range(epochs):
            x = torch.tensor(np.concatenate([rs.uniform(-2, 2, (1, batch)),
                                             rs.uniform(-2, 2, (1, batch))]), dtype=F32)
            W = u @ v.T
            h, ctrl, loss = torch.zeros(N, batch), torch.zeros(1, batch), 0.0
            for _ in range(T):
                loss = loss + (x ** 2).mean()
                x = A @ x + B[:, None] * ctrl
                h = W @ h + m @ x[:1]
                ctrl = z @ h
            opt.zero_grad()
            (loss / T).backward()
            torch.nn.utils.clip_grad_norm_([u, v, z], 1.0)
            opt.step()

    env = DoubleIntegrator()
    agent = RankOneAgent(N=N, seed=Stream(0, "authors"))

    def package():
        train_closed_loop(agent, env, epochs=package_epochs or epochs, T=T, seed=1, eig_W=False)

    return authors, package


def tracking_pair(epochs: int = 5, N: int = 100, T: int = 300, batch: int = 100,
                  package_epochs: int | None = None):
    """(authors, package): the tracking network, ``epochs`` epochs each. Theirs: float32, the
    leaky linear RNN and the clamped point mass stepped 300 times per episode, the error of the
    position reached against the reference shown, Adam lr 1e-3. The package in float32 too,
    as Chapter 4 trains (the loop's linear response)."""
    dt, alpha, a = 0.1, 0.1, 1 / math.sqrt(N)
    rs = np.random.RandomState(0)
    rs.normal(0, 0.01, (4, N))
    w_in = torch.tensor(rs.uniform(-a, a, (4, N)), dtype=F32)
    W = torch.nn.Parameter(torch.tensor(0.2 * rs.normal(0, a, (N, N)), dtype=F32))
    rs.normal(0, 0.01, (N, 2))
    w_out = torch.nn.Parameter(torch.tensor(rs.uniform(-a, a, (N, 2)), dtype=F32))
    opt = torch.optim.Adam([W, w_out], lr=1e-3)
    t = torch.arange(T, dtype=F32) * dt
    ramp = (t / 1.0).clamp(max=1.0)
    omega = 2 * math.pi * torch.tensor([[0.1, 0.3], [0.2, 0.4]])

    def authors():
        for _ in range(epochs):
            ph = torch.tensor(np.stack([rs.uniform(-np.pi, np.pi, (batch, 2)),
                                        rs.uniform(-np.pi, np.pi, (batch, 2))], 1), dtype=F32)
            ref = 2.31 * ramp[:, None, None] * torch.cos(omega[None, None] * t[:, None, None, None]
                                                        + ph[None]).sum(-1)  # (T, B, 2)
            q, h, loss = torch.zeros(batch, 4), torch.zeros(batch, N), 0.0
            for i in range(T):
                inp = torch.cat([q[:, 0::2], ref[i]], -1)
                h = h + alpha * (-h + h @ W + inp @ w_in)
                u = h @ w_out
                vel = q[:, 1::2] + dt * u
                pos = q[:, 0::2] + dt * q[:, 1::2]
                q = torch.stack([pos[:, 0], vel[:, 0], pos[:, 1], vel[:, 1]], -1).clamp(-10, 10)
                loss = loss + dt * ((q[:, 0::2] - ref[i]) ** 2).sum(-1).mean()
            opt.zero_grad()
            (loss / T).backward()
            opt.step()

    agent = tracking.TrackingRNN(N=N, seed=Stream(0, "authors"), dtype=F32)
    plant, refs = tracking.PointMass(dtype=F32), tracking.Sinusoids(T=T, dtype=F32)

    def package():
        tracking.train_tracking(agent, plant, refs, epochs=package_epochs or epochs, batch=batch,
                                seed=1, record_every=10**6, test_every=10**6, n_test=1)

    return authors, package
