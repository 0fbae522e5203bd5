"""Gain space: a controller summarized as linear state feedback u = k1 x1 + k2 x2 (paper s.6).

A network that observes only the position still acts, over its rollouts, roughly like a
feedback u_t = k . x_t on the full state. Regressing u_t on x_t gives its *effective gains*
k = (k1, k2) (with R^2 saying how fair that summary is), which places every epoch of every
training in one plane. Over that plane sit two maps of the linear feedback itself: the
episode cost from a fixed start, and whether the closed loop x_{t+1} = (A + B k^T) x_t is
stable. Shapes: gains k (..., 2); rollouts as in ``coupled.rollout`` (time first). The
regression and the probe take any linear plant (gains k (..., n) for n states); the maps of
the feedback (``feedback_loss``, ``stability_region``) are the double integrator's plane.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _checks, coupled, kernels, linsys, theory
from .agents import make_generator

REGIONS = ("stable", "unstable oscillatory", "unstable real")  # codes 0, 1, 2


def effective_gains(x: torch.Tensor, u: torch.Tensor):
    """Least-squares gains k with u_t ~ k . x_t over t = 1..T and every start, and R^2.

    x (T+1, ..., B, n) and u (T+1, ..., B) for t = 0..T (``coupled.rollout``); t = 0 is left
    out because u_0 = 0 is imposed, not chosen. Axes ``...`` (ensemble members) are kept.
    R^2 = 1 - sum (u - k.x)^2 / sum u^2, uncentred because the feedback has no offset.
    Returns (k (..., n), r2 (...)). Introduced in Chapter 1, section "Gain space".

    Solved through the normal equations (n x n, cheap enough for every epoch's probe): on
    Chapter 1's runs in float32, within 6e-5 of a float64 lstsq of the same trajectories (3e-6
    at the student's excursion peak). A strongly unstable loop, whose states all line up with
    its growing mode, squares an already large condition number there and can lose the fit
    or raise; ``plant_stages.effective_gains`` fits such loops by lstsq.
    """
    _checks.finite_tensor("x", x)
    _checks.finite_tensor("u", u, x.dtype)
    if x.dim() < 3 or x.shape[-1] < 1 or x.shape[:-1] != u.shape or x.shape[0] < 2:
        raise ValueError(f"x must have shape (T+1, ..., B, n) with T >= 1 and u (T+1, ..., B), "
                         f"got {tuple(x.shape)} and {tuple(u.shape)}")
    return _effective_gains(x, u)


def _effective_gains(x, u):
    """``effective_gains`` unchecked (the probe, every epoch, on a rollout it has checked)."""
    X, U = x[1:].movedim(0, -2).flatten(-3, -2), u[1:].movedim(0, -1).flatten(-2)  # (..., TB, *)
    gram = X.transpose(-1, -2) @ X
    k, info = torch.linalg.solve_ex(gram, (X * U[..., None]).sum(-2))
    if (info != 0).any():
        raise ValueError("x: the states x_1..x_T span fewer than n directions (e.g. every "
                         "start at 0), so the gains are not identifiable")
    resid = U - (X * k[..., None, :]).sum(-1)
    r2 = 1 - (resid**2).sum(-1) / (U**2).sum(-1).clamp_min(1e-300)
    return k, r2


def fixed_starts(env, n: int = 100, seed: int = 12345) -> torch.Tensor:
    """A fixed set of ``n`` initial states drawn from ``env.x0`` with their own seed:
    (n, number of states).

    The same set serves every epoch of every training, so test losses are comparable.
    """
    n = _checks.integer("n", n, low=1)
    coupled.check_env(env)
    return env.sample_x0(n, make_generator(seed))


UNITS = ("cost", "summed")


def probe(env, x0: torch.Tensor, T: int, units: str = "cost", dtype=None):
    """A training monitor: agent -> {'test_loss', 'gains' (*K, 2), 'gain_r2', 'instant_gain',
    'lag_gain'}.

    test_loss (*K,) is the closed-loop state cost from the fixed starts ``x0`` (B, n),
    averaged over the starts: with ``units='cost'`` the per-start cost of ``coupled``
    (1/(n T) sum_{t=0..T-1} ||x_t||^2, beta = 0), with ``units='summed'`` the authors' test
    loss sum_{t=0..T-1} ||x_t||^2 (n T times the former). The rollouts are noise-free: a
    plant with process noise is an error naming ``noise`` (pass ``plant.with_noise(0.0)``
    to measure its noise-free test loss). The gains (k (*K, n)) and their R^2 are
    regressed on the same rollouts; instant_gain = z.m is du_t/dy_t at h = 0, the sign of the
    feedback (the overlap s_zm of a rank-one network); lag_gain = z.W m is du_t/dy_{t-1} at
    h = 0, the first weight that needs the recurrence (the linearized response to the
    position one step back). ``dtype``: the number format of the measurement (default
    ``env``'s); an agent of another format is measured in it, on a copy. The authors
    measured their float32 networks in float32, and so does Chapter 1: half the cost of a
    float64 rollout, and its largest test loss (~6e5) is far inside float32's range (a
    rollout that leaves it stops with an error naming the closed loop). Introduced in
    Chapter 1, section "Two trainings".
    """
    T = _checks.integer("T", T, low=1)
    coupled.check_env(env)
    n = kernels.state_size(env)
    factor = n * T if _checks.choice("units", units, UNITS) == "summed" else 1
    if coupled.noise_level(env) > 0:
        raise ValueError(f"env has process noise (noise={coupled.noise_level(env)}): the probe "
                         f"measures noise-free rollouts from fixed starts; pass "
                         f"env.with_noise(0.0) to measure those")
    _checks.finite_tensor("x0", x0, env.dtype)
    _checks.shape("x0", x0, (None, n))
    if torch.linalg.matrix_rank(x0) < n:  # then every x_t = A^t x_0 + ... is degenerate too
        raise ValueError(f"x0 must hold {n} linearly independent starts (the gains are "
                         f"regressed on the states), got {_checks.short(x0)}")
    if dtype is not None:
        dtype = _checks.float_dtype("dtype", dtype)
        env, x0 = env.to(dtype), x0.to(dtype)

    return Probe(env, x0, T, factor)


class Probe:
    """The monitor ``probe`` returns (a class, not a closure, so that it can be sent to the
    worker processes of ``excursion.train_pairs``). Build it with ``probe``, which checks."""

    def __init__(self, env, x0, T, factor):
        self.env, self.x0, self.T, self.factor = env, x0, T, factor

    def __call__(self, agent):
        # the unchecked rollout (a monitor runs every epoch); the states it uses must be finite
        env, x0, T = self.env, self.x0, self.T
        if agent.dtype != env.dtype:  # a float32 training measured in the probe's float64
            agent = agent.to(env.dtype)
        traj = kernels.rollout(agent, env, x0, T)
        for v in (traj["x"], traj["u"]):
            linsys.no_overflow(v, f"the closed loop of this agent from these x0 over T={T} "
                                    f"steps")
        k, r2 = _effective_gains(traj["x"], traj["u"])
        cost = self.factor * coupled.episode_cost(traj["x"], traj["u"], 0.0).mean(-1)
        z, m = agent.tensors["z"], agent.tensors["m"]
        zm = (z * m).sum(-1)
        zWm = (z * (agent.recurrent_matrix() @ m[..., None])[..., 0]).sum(-1)
        return {"test_loss": cost, "gains": k, "gain_r2": r2, "instant_gain": zm,
                "lag_gain": zWm}


def feedback_matrix(k, env) -> torch.Tensor:
    """A + B k^T, the closed loop of the feedback u = k . x: k (..., n) -> (..., n, n)."""
    coupled.check_env(env)
    n = kernels.state_size(env)
    k = _checks.real_tensor("k", k, env.dtype)
    if k.shape[-1:] != (n,):
        raise ValueError(f"k must have shape (..., {n}) (n = {n} states), got {tuple(k.shape)}")
    return env.A + env.B[:, None] * k[..., None, :]


def feedback_loss(k, env, x0=(1.0, 1.0), T: int = 50, beta: float = 0.0) -> np.ndarray:
    """Episode cost of the linear feedback u = k . x from one start ``x0``: k (..., 2) -> (...).

    The same cost as the networks' (``coupled.episode_cost``), computed for a whole grid of
    gains at once by matrix powers. A cost beyond the float64 range is inf.
    """
    T = _checks.integer("T", T, low=1)
    beta = _checks.real("beta", beta, low=0.0)
    M = feedback_matrix(k, env)
    k = _checks.real_tensor("k", k, env.dtype)
    start = _checks.real_tensor("x0", x0, env.dtype)
    _checks.shape("x0", start, (2,))
    _checks.fits_memory(f"T={T} steps for {k.numel() // 2} gains", (T + 1) * k.numel() * 3)
    x = linsys.states_by_doubling(M, start.reshape(1, 2), T)[..., 0, :]  # may overflow: inf
    u = (x * k).sum(-1)
    return coupled.episode_cost(x, u, beta).numpy()  # overflowed states cost inf, not NaN


def stability_region(k, env) -> np.ndarray:
    """Which region of ``REGIONS`` each gain lies in: k (..., 2) -> int codes (...).

    From the trace and determinant of the 2x2 closed loop: complex eigenvalues iff
    tr^2 < 4 det, with modulus sqrt(det); stable iff |det| < 1 and |tr| < 1 + det (Jury).
    """
    M = feedback_matrix(k, env).numpy()
    tr, det = M[..., 0, 0] + M[..., 1, 1], np.linalg.det(M)
    stable = (np.abs(det) < 1) & (np.abs(tr) < 1 + det)
    complex_pair = tr**2 < 4 * det
    return np.where(stable, 0, np.where(complex_pair, 1, 2))


def gain_grid(lim=(-1.2, 0.6), n: int = 201):
    """A square grid of gains over [lim]^2: (k1 (n,), k2 (n,), k (n, n, 2) indexed [k2, k1])."""
    n = _checks.integer("n", n, low=2)
    _checks.fits_memory(f"n={n} (an n x n grid)", 4 * n * n)
    if not isinstance(lim, (tuple, list)) or len(lim) != 2:
        raise ValueError(f"lim must be a pair (low, high), got {_checks.short(lim)}")
    lo, hi = (_checks.real("lim", v) for v in lim)
    if not lo < hi:
        raise ValueError(f"lim must be (low, high) with low < high, got {lim!r}")
    k1 = np.linspace(lo, hi, n)
    K1, K2 = np.meshgrid(k1, k1)
    return k1, k1.copy(), np.stack([K1, K2], -1)


def lqr_feedback(env, R: float = 1e-8) -> np.ndarray:
    """The LQR gains in this module's sign convention (u = k . x, so k = -K): (2,)."""
    coupled.check_env(env)
    return -theory.lqr_gain(env.A, env.B, R=R)[0]
