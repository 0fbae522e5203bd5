"""The stages of closed-loop learning on any linear plant, read off a training run and set
beside what P_eff predicts (issue 28; Chapter 6). What a plant *allows* (static feedback, the
reach of a first-order controller, the LQR benchmark) is ``stage_theory``; this module reads
runs against it.

A rank-one linear RNN on the plant G = b / a (``plants.LinearPlant.transfer_polynomials``) is
the first-order controller K(lambda) = s_zm + k / (lambda - s_vu), k = s_vm s_zu; the closed
loop's nonzero eigenvalues are the n + 1 roots of q(lambda) = a(lambda) (lambda - s_vu) -
b(lambda) [s_zm (lambda - s_vu) + k] (``plant_theory``).

- **Plant-general stage boundaries** (``plant_stages``): stage 1 ends when s_zm settles on
  the sign that small static feedback prefers (``preferred_sign``: the sign of +/- h whose
  exact stage-1 loss is lower; negative for the double integrator, where this is
  ``stages.detect_stages``'s boundary); the stabilization epoch is ``detect_stages``'s (rho(P)
  < 1 from there on, any plant); and rho(A + s_zm B C) there: how far the static part alone
  was from stable when the loop stabilized.
- **Stage-1 roots against the loop** (``stage1_gap``): the distance from eig(A + s_zm B C)
  to the nearest eigenvalue of P, epoch by epoch.
- **The clip-speed prediction** of the stabilization epoch where static feedback suffices
  (``clip_speed_epoch``): clipped SGD moves z by at most lr an epoch, so s_zm = z . m by at
  most lr |m|, and s_zm needs distance / (lr |m|) epochs to enter the stabilizing interval.
- **A certificate** that no rank-one network stabilizes a plant (``structural_zeros``): with
  lambda = 1 + mu the unit disk lies in Re mu < 0, where a monic polynomial with every root
  there has every coefficient positive; a coefficient of q(1 + mu) that is zero for *every*
  controller rules a stable loop out (chains of k >= 3 integrators: mu^2 .. mu^(k-1)).
- The network's **effective gains** (u_t regressed on x_t, paper s.6) and the exact episode
  loss of any full-state feedback (``feedback_loss``), to set beside ``stage_theory.lqr``.

Losses are the chapters' (``PAPER_RANK_ONE``: 1/(n T) sum_{t=0}^{T-1} ||x_t||^2, x_0 ~ the
plant's box). Overlaps are (..., 4) ordered (s_zm, s_zu, s_vm, s_vu). Introduced in
Chapter 6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import _checks
from . import plant_theory as pt
from .history import record_index
from .linsys import lyapunov_sum
from .plants import LinearPlant
from .stages import detect_stages, settles


# stage 1: the sign of the feedback -------------------------------------------------------
def preferred_sign(plant: LinearPlant, T: int, h: float = 1e-3) -> int:
    """-1 or +1: the sign of a small static feedback s_zm = +/- h (u = v = 0) whose exact
    expected loss over T steps is lower: where stage 1 drives s_zm."""
    from .agents import OverlapAgent

    T = _checks.integer("T", T, low=1)
    h = _checks.real("h", h, low=0.0, low_open=True)
    q = torch.tensor([[-h, 0.0, 0.0, 0.0], [h, 0.0, 0.0, 0.0]], dtype=plant.dtype)
    with torch.no_grad():
        minus, plus = pt.expected_loss(OverlapAgent(q, dtype=plant.dtype), plant, T).tolist()
    return -1 if minus < plus else 1


# a certificate that no first-order controller stabilizes -------------------------------------
def structural_zeros(plant: LinearPlant, tol: float = 1e-12) -> list[int]:
    """The powers j of mu whose coefficient in q(1 + mu) is zero for every first-order
    controller (module docstring), lowest first. q = a lambda - s_vu a - s_zm b lambda +
    (s_zm s_vu - k) b, so coefficient j vanishes for all controllers exactly when it vanishes
    in each of a lambda, a, b lambda and b shifted to lambda = 1 + mu. Non-empty (with j < n
    + 1, the leading one is 1): no first-order controller makes the loop stable."""
    basis = [_shift_to_one(p) for p in pt.q_basis(plant)]
    scale = max(np.abs(p).max() for p in basis)
    deg = len(basis[0]) - 1
    return [j for j in range(deg) if all(abs(p[deg - j]) <= tol * scale for p in basis)]


def _shift_to_one(c):
    """Coefficients (highest first) of c(1 + mu) in mu: the Taylor coefficients of c at 1."""
    p = np.poly1d(np.asarray(c, float))
    deg = len(c) - 1
    return np.array([p.deriv(j)(1.0) / math.factorial(j) if j else p(1.0)
                     for j in range(deg, -1, -1)])


# the plant-general stages of one run ----------------------------------------------------------
@dataclass(frozen=True)
class PlantStages:
    """Stage boundaries of one run on one plant (module docstring): ``sign`` (-1/+1, the
    feedback sign stage 1 settles on), ``stage1_end`` and ``stabilization`` (epochs, None:
    never), ``static_rho_at_stabilization`` (rho(A + s_zm B C) of the network there; NaN if
    it never stabilized) and ``last_epoch``."""

    sign: int
    stage1_end: int | None
    stabilization: int | None
    static_rho_at_stabilization: float
    last_epoch: int

    @property
    def stage2_epochs(self) -> int | None:
        """Epochs from the end of stage 1 to stabilization (0 if stabilization came first,
        None if either never came)."""
        if self.stage1_end is None or self.stabilization is None:
            return None
        return max(self.stabilization - self.stage1_end, 0)


def plant_stages(history, plant: LinearPlant, T: int) -> PlantStages:
    """``PlantStages`` of a single rank-one run on ``plant`` (trained with horizon ``T``)."""
    base = detect_stages(history)  # checks the history; its stabilization is plant-general
    sign = preferred_sign(plant, T)
    s_zm = np.asarray(history.overlaps)[..., 0]
    end1 = settles(history.epoch, np.sign(s_zm) == sign)
    stab = base.stabilization
    from .stage_theory import static_radius

    rho = (float(static_radius(plant, s_zm[record_index(history.epoch, stab)])) if stab is not None
           else float("nan"))
    return PlantStages(sign, end1, stab, rho, base.last_epoch)


def _plain(value):
    """A sweep coordinate as the point held it (numpy scalars as Python, NaN as None)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def stage1_gap(history, plant: LinearPlant) -> np.ndarray:
    """Per recorded eigenvalue epoch (R,): the largest distance from a stage-1 eigenvalue
    eig(A + s_zm B C) of that epoch's network to the nearest eigenvalue of P (how far the
    static-feedback prediction is from the loop's actual spectrum)."""

    rows = [record_index(history.epoch, e) for e in history.eig_epoch]
    mu = pt.stage1_eigenvalues(np.asarray(history.overlaps)[rows, 0], plant)  # (R, n)
    eig = np.asarray(history.eig_P)  # (R, d)
    return np.abs(mu[:, :, None] - eig[:, None, :]).min(-1).max(-1)


def clip_speed_epoch(s_zm0, m_norm, lr, interval) -> np.ndarray:
    """The first epoch at which clipped SGD (step at most lr in norm, so |ds_zm| <= lr |m|)
    can bring s_zm from ``s_zm0`` into ``interval`` = (lo, hi): ceil(distance / (lr |m|));
    0 inside it; inf for interval None. Broadcasts over s_zm0, m_norm, lr."""
    s0, m, lr = (np.asarray(x, dtype=float) for x in (s_zm0, m_norm, lr))
    if interval is None:
        return np.full(np.broadcast_shapes(s0.shape, m.shape, lr.shape), np.inf)
    lo, hi = interval
    d = np.maximum(np.maximum(lo - s0, s0 - hi), 0.0)
    return np.ceil(d / (lr * m) - 1e-12)


# references: LQR and effective gains ---------------------------------------------------------
def feedback_loss(plant: LinearPlant, K, T: int) -> float:
    """Exact expected episode loss 1/(n T) sum_{t=0}^{T-1} E||x_t||^2 of u = -K x from the
    plant's x_0 box (the chapters' units, beta = 0)."""
    A, B, _ = plant.numpy()
    M = torch.as_tensor(A - np.outer(B, np.asarray(K, float)))
    T = _checks.integer("T", T, low=1)
    # E||x_t||^2 = tr((M^t)^T M^t E[x_0 x_0^T]), summed over t by doubling
    total = lyapunov_sum(M, torch.eye(plant.n_state, dtype=M.dtype), T)
    return float(torch.trace(total @ plant.x0.second_moment()) / (plant.n_state * T))


def effective_gains(overlaps, plant: LinearPlant, T: int) -> np.ndarray:
    """k (n,): the least-squares fit u_t ~ k . x_t over t = 1..T-1 of the noise-free loop
    of a rank-one network with these overlaps (4,), from x_0 = each corner direction of the
    box's factor rows (paper s.6's effective gains, for n states; u = k x, so compare with
    -K of ``lqr``)."""
    q = torch.as_tensor(np.asarray(overlaps, float), dtype=torch.float64)
    P = pt.effective_matrix(q, plant).numpy()
    n = plant.n_state
    starts = np.concatenate([plant.x0_factor().numpy(), np.zeros((n, 2))], 1)
    X, U, s = [], [], starts.T
    for t in range(1, _checks.integer("T", T, low=2)):
        s = P @ s
        X.append(s[:n].T)
        U.append(q[0].item() * s[n] + q[1].item() * s[n + 1])
    # lstsq, not ``gains.effective_gains``' normal equations: on an unstable loop the states
    # line up with its growing mode, and squaring their condition number loses the fit
    return np.linalg.lstsq(np.concatenate(X), np.concatenate(U), rcond=None)[0]


# the chapter's runs ---------------------------------------------------------------------------
@dataclass
class PlantRun:
    """One rank-one network trained on one plant: ``plant``, the trained ``agent`` (its final
    network), its ``history`` (one member), ``stages`` (``plant_stages``), ``m_norm`` = |m|
    (m is not trained) and the ``T`` and ``lr`` it trained with."""

    plant: LinearPlant
    agent: object
    history: object
    stages: PlantStages
    m_norm: float
    T: int
    lr: float


def chapter_plants(omega: float = 1.0, zeta: float = 0.02, dt: float = 0.5, a: float = 1.5,
                   x0_half_width: float = 2.0) -> dict:
    """Chapter 6's four plants, {name: LinearPlant}, each with x_0 ~ U([-w, w]^n): the
    double integrator (the paper's), the triple integrator (``integrator(3)``), the damped
    oscillator (``damped_oscillator(omega, zeta, dt)``) and the unstable first-order plant
    (``unstable(a)``)."""
    kw = dict(x0=x0_half_width)
    return {"double integrator": LinearPlant.double_integrator(**kw),
            "triple integrator": LinearPlant.integrator(3, **kw),
            "damped oscillator": LinearPlant.damped_oscillator(omega, zeta, dt, **kw),
            "unstable plant": LinearPlant.unstable(a, **kw)}


def train_plants(plants: dict, *, seed: int = 3, stream: str = "authors", N: int = 100,
                 epochs: int = 1000, T: int = 50, lr: float = 1e-2, batch: int = 100,
                 clip: float | None = 1.0) -> dict:
    """{name: PlantRun}: the same initial network, ``RankOneAgent(N, seed=Stream(seed,
    stream))`` (the authors' draw at ``stream='authors'``), trained closed loop on each plant
    of ``plants`` ({name: LinearPlant}) with the paper's rank-one setup. The batches (and any
    process noise) come from the package's stream at ``seed`` for every plant: the authors'
    stream draws only their double integrator's batches."""
    from .agents import RankOneAgent
    from .streams import Stream
    from .training import train_closed_loop

    if not isinstance(plants, dict) or not plants:
        raise ValueError("plants must be a non-empty dict {name: LinearPlant}")
    seed = _checks.integer("seed", seed, low=0)
    out = {}
    for name, plant in plants.items():
        _checks.instance(f"plants[{name!r}]", plant, LinearPlant)
        agent = RankOneAgent(N=N, seed=Stream(seed, stream), dtype=plant.dtype)
        m_norm = float(agent.tensors["m"].norm())
        h = train_closed_loop(agent, plant, epochs=epochs, T=T, lr=lr, batch=batch, clip=clip,
                              seed=seed, eig_W=False)
        if h.message:
            raise ValueError(f"the run on {name} did not finish: {h.message}")
        out[name] = PlantRun(plant, agent, h, plant_stages(h, plant, T), m_norm, T, lr)
    return out


def atlas_sweep(family: str, values, seeds, *, N: int = 100, epochs: int = 300, T: int = 50,
                lr: float = 1e-2, batch: int = 100, clip: float | None = 1.0,
                engine: str = "inprocess", n_workers: int | None = None, **fixed):
    """``sweep.run`` over one plant family's parameter: ``family`` 'unstable' (parameter a),
    'damped_oscillator' (zeta; give omega and dt in ``fixed``) or 'integrator' (order), one
    chunk of ``seeds`` a value (the members of a chunk share a plant)."""
    from . import sweep

    param = {"unstable": "a", "damped_oscillator": "zeta", "integrator": "order"}.get(family)
    if param is None:
        raise ValueError(f"family must be 'unstable', 'damped_oscillator' or 'integrator', got "
                         f"{family!r}")
    seeds = list(_checks.seeds("seeds", seeds))
    grid = {"plant": [family], param: list(values), "seed": seeds, "N": [N],
            "epochs": [epochs], "T": [T], "lr": [lr], "batch": [batch], "clip": [clip],
            **{k: [v] for k, v in fixed.items()}}
    return sweep.run(grid, chunk_size=len(seeds), engine=engine, n_workers=n_workers,
                     progress=False)


def atlas_table(history, family: str = "unstable") -> dict:
    """Per member of an ``atlas_sweep`` (arrays (P,)): ``value`` (the family's parameter),
    ``seed``, ``s_zm0``, ``m_norm`` (the network redrawn from its seed), ``stabilization``
    (epoch, NaN: never), ``static_at_stab`` (rho(A + s_zm B C) there, NaN: never),
    ``predicted`` (``clip_speed_epoch`` into the static interval nearest 0, inf: no such
    interval) and ``epochs`` (the number trained)."""
    from .agents import RankOneAgent
    from .plant_settings import env_of
    from .stage_theory import stage1, static_radius
    from .stages import member_stages
    from .sweep import coords_of

    c = coords_of(history)
    param = {"unstable": "a", "damped_oscillator": "zeta", "integrator": "order"}[family]
    q = np.asarray(history.overlaps)
    out = {k: [] for k in ("value", "seed", "s_zm0", "m_norm", "stabilization",
                           "static_at_stab", "predicted")}
    intervals = {}
    for k, st in enumerate(member_stages(history)):
        point = {name: _plain(c[name][k]) for name in c}
        plant = env_of(point)
        v = point[param]
        if v not in intervals:
            ivs = stage1(plant).intervals
            intervals[v] = min(ivs, key=lambda iv: 0 if iv[0] <= 0 <= iv[1]
                               else min(abs(iv[0]), abs(iv[1]))) if ivs else None
        m = float(RankOneAgent(N=point["N"], seed=point["seed"], init=point["init"],
                               dtype=plant.dtype).tensors["m"].norm())
        stab = st.stabilization
        row = record_index(history.epoch, stab) if stab is not None else None
        for key, val in (("value", v), ("seed", point["seed"]), ("s_zm0", q[0, k, 0]),
                         ("m_norm", m),
                         ("stabilization", np.nan if stab is None else stab),
                         ("static_at_stab", np.nan if row is None
                          else float(static_radius(plant, q[row, k, 0]))),
                         ("predicted", float(clip_speed_epoch(q[0, k, 0], m, point["lr"],
                                                              intervals[v])))):
            out[key].append(val)
    table = {k: np.asarray(v, dtype=float) for k, v in out.items()}
    table["epochs"] = int(history.epoch[-1])
    return table
