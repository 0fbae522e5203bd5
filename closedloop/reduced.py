"""Reduced models of rank-one closed-loop learning (paper s.5): Chapter 3's reference run
(``reference_run``, a parameter snapshot every epoch, stages filled in by ``fill_stages``).

Stage 2 in four numbers: the alpha-model descends, on the overlaps q = (s_zm, s_zu, s_vm, s_vu),

    L_alpha(q) = alpha L_inf(q) + (1 - alpha) L_0(q),
    L_inf = (|lambda_1|^2)^T'   growth along the environment's pair (``theory.long_term_loss``)
    L_0   = |position/velocity block of P_eff^3|^2   (``theory.short_term_loss``)

for many alpha at once (``alpha_model``); ``alpha_bands`` finds the alphas whose path bends
back inside the unit circle, ``horizon_scan`` the episode lengths T whose network never does.

Stage 3 (``stage3_runs``): the network at the stabilization epoch, trained on, beside three
reduced models (same loss, lr, batch size, clipping): ``paper``, the paper's model (spec s.9:
the four overlaps by plain SGD, their 4-vector gradient clipped, on their own batches;
``OverlapAgent``, ``metric=None``); ``frozen_metric``, the overlaps stepped in the metric G
of the start, frozen (``OverlapAgent.of(start)``), on the paper's model's batches;
``compressed``, the network in a basis of span{m, u, v, z}, four neurons (the exact
reduction to ten numbers: ``RankOneAgent.compressed``), on its batches."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from . import _checks, theory
from .agents import OverlapAgent, RankOneAgent
from .envs import DTYPE
from .history import History
from .stages import Stages, detect_stages
from .streams import Stream
from .training import sweep, train_closed_loop


def fill_stages(stages: Stages, epochs: int) -> Stages:
    """``stages`` with a boundary that was not reached filled in, so that every stage has a
    start: stage 1 ends at epoch 0, the stabilization epoch is ``max(epochs // 2, stage1_end)``.
    Introduced in Chapter 3, section "The reference run" (a short run, as in CI)."""
    s1 = stages.stage1_end if stages.stage1_end is not None else 0
    stab = stages.stabilization if stages.stabilization is not None else max(epochs // 2, s1)
    return dataclasses.replace(stages, stage1_end=s1, stabilization=stab)


@dataclass
class ReferenceRun:
    """Chapter 3's reference run: ``agent`` (trained in place) and its ``history``, with a
    parameter snapshot at every one of its ``epochs`` epochs.

    ``detected``: the boundaries ``detect_stages`` read off the history (None: not reached);
    ``stages``: those the chapter starts from, a missing one filled in (``fill_stages``)."""

    agent: RankOneAgent
    history: History
    detected: Stages
    stages: Stages
    epochs: int

    def agent_at(self, epoch: int) -> RankOneAgent:
        """The network recorded at ``epoch`` (before that epoch's update)."""
        return self.history.agent_at(epoch, self.agent)

    def stage2_epoch(self, offset: int) -> int:
        """The epoch ``offset`` epochs into stage 2, at most the stabilization epoch."""
        return min(self.stages.stage1_end + offset, self.stages.stabilization)

    def lambda1_path(self, start: int) -> np.ndarray:
        """lambda_1 (complex, Im >= 0) of the network from epoch ``start`` to stabilization."""
        q = self.history.overlaps[start:self.stages.stabilization + 1]
        return theory.labelled_roots(q)[:, 0]

    @property
    def stage3_epochs(self) -> int:
        """The epochs left after the stabilization epoch (at least 1)."""
        return max(self.epochs - self.stages.stabilization, 1)


def reference_run(env, *, N: int = 100, seed: int = 0, epochs: int = 1000, T: int = 50,
                  lr: float = 1e-2, batch: int = 100, clip: float | None = 1.0,
                  stream: str = "authors") -> ReferenceRun:
    """Train a rank-one network (``RankOneAgent(N, Stream(seed, stream))``) closed loop on
    ``env`` for ``epochs`` epochs (batches from the same stream: the authors' code's run at
    ``seed`` by default), keeping its parameters at every epoch, and read off its stages. A
    run that does not stabilize (as in CI) prints the epoch taken as the start of stage 3.
    Introduced in Chapter 3, section "The reference run"."""
    st = Stream(seed, stream)
    agent = RankOneAgent(N=N, seed=st, dtype=env.dtype, device=env.device)
    history = train_closed_loop(agent, env, epochs=epochs, T=T, seed=st, snapshot_every=1,
                                lr=lr, batch=batch, clip=clip)
    detected = detect_stages(history)
    stages = fill_stages(detected, epochs)
    if detected.stabilization is None:
        print(f"no stabilization within {epochs} epochs: stage 3 starts at epoch "
              f"{stages.stabilization}")
    return ReferenceRun(agent, history, detected, stages, epochs)


def exact_rerun(env, stages: Stages, *, N: int = 100, seed: int = 0, epochs: int = 1000,
                T: int = 50, lr: float = 1e-2, clip: float | None = 1.0,
                stream: str = "authors") -> History:
    """The reference network (``RankOneAgent(N, Stream(seed, stream))``) trained afresh on
    the exact expected loss (deterministic gradient descent, ``mode='exact'``), long enough
    to pass the reference run's stabilization: ``min(epochs, 2 * stabilization + 50)`` epochs.
    Introduced in Chapter 3, section "The zig-zag"."""
    agent = RankOneAgent(N=N, seed=Stream(seed, stream), dtype=env.dtype, device=env.device)
    return train_closed_loop(agent, env, epochs=min(epochs, 2 * stages.stabilization + 50),
                             T=T, mode="exact", lr=lr, clip=clip)


@dataclass
class AlphaPaths:
    """Gradient-descent paths of the alpha-model, one per alpha: ``alpha`` (K,); ``overlaps``
    (S+1, K, 4) for steps 0..S; ``loss`` (S+1, K) = L_alpha; ``lambda1`` (S+1, K) complex: the
    environment's eigenvalue with Im >= 0 (exact root of the cubic at each step,
    ``theory.labelled_roots``); ``T_prime`` (K,): each member's horizon."""

    alpha: np.ndarray
    overlaps: np.ndarray
    loss: np.ndarray
    lambda1: np.ndarray
    T_prime: np.ndarray | None = None

    def select(self, T_prime: int, alphas) -> AlphaPaths:
        """The members with horizon ``T_prime`` and the given ``alphas`` (to 1e-9), in order."""
        hit = (self.T_prime == T_prime) & (np.abs(self.alpha - np.c_[alphas]) < 1e-9)  # (A, K)
        if not hit.any(1).all():
            raise ValueError(f"T_prime={T_prime!r} with alphas {list(alphas)!r}: not all among "
                             f"these paths' members (T_primes {sorted(set(self.T_prime))})")
        k = hit.argmax(1)
        return AlphaPaths(self.alpha[k], self.overlaps[:, k], self.loss[:, k],
                          self.lambda1[:, k], self.T_prime[k])


def alpha_loss(overlaps: torch.Tensor, alpha: torch.Tensor, T_prime=15) -> torch.Tensor:
    """L_alpha = alpha (|lambda_1|^2)^T' + (1 - alpha) L_0: overlaps (..., 4), alpha (...),
    T_prime an integer or an integer tensor (...) (``theory.long_term_loss`` per member)."""
    return (alpha * theory.pair_growth(overlaps) ** T_prime
            + (1 - alpha) * theory.short_term_loss(overlaps))


def alpha_model(overlaps0, alphas, *, T_prime=15, lr: float = 1e-3, steps: int = 300,
                clip: float | None = 1.0) -> AlphaPaths:
    """Descend L_alpha from ``overlaps0`` (4,) for every alpha in ``alphas`` (K,) at once.

    One batched optimization: the K members share nothing but the start, and since the total
    is a sum of per-member losses, each member's gradient is its own. Plain gradient descent
    with step ``lr`` for ``steps`` steps; ``clip`` bounds each member's step norm (None: no
    clipping). ``T_prime``: one horizon, or one per member (K,). Introduced in Chapter 3,
    section "The alpha-model"."""
    if np.ndim(T_prime) and np.shape(T_prime) != np.shape(alphas):
        raise ValueError(f"T_prime must be one integer or one per alpha, got {T_prime!r}")
    T_prime = (torch.as_tensor([_checks.integer("T_prime", t, low=1) for t in T_prime])
               if np.ndim(T_prime) else _checks.integer("T_prime", T_prime, low=1))
    lr = _checks.real("lr", lr, low=0.0, low_open=True)
    steps = _checks.integer("steps", steps, low=0)
    if clip is not None:
        clip = _checks.real("clip", clip, low=0.0, low_open=True)
    q0 = torch.as_tensor(np.asarray(overlaps0, dtype=float), dtype=DTYPE)
    if q0.shape != (4,):
        raise ValueError(f"overlaps0 must have shape (4,), got {tuple(q0.shape)}")
    _checks.finite_tensor("overlaps0", q0)
    a = np.asarray(alphas, dtype=float)
    if a.ndim != 1 or a.size == 0 or not np.all((a >= 0) & (a <= 1)):
        raise ValueError(f"alphas must be a non-empty 1-d sequence of values in [0, 1], "
                         f"got {alphas!r}")
    alpha = torch.as_tensor(a, dtype=DTYPE)
    q = q0.expand(len(a), 4).clone().requires_grad_(True)
    path, losses = [], []
    for step in range(steps + 1):
        loss = alpha_loss(q, alpha, T_prime)
        if not torch.isfinite(loss).all():
            raise ValueError(f"the alpha-model diverged at step {step} (L_alpha is not finite): "
                             f"lower lr (now {lr:g}) or T_prime (now {T_prime})")
        path.append(q.detach().clone())
        losses.append(loss.detach().clone())
        if len(path) > steps:
            break
        (g,) = torch.autograd.grad(loss.sum(), q)
        if clip is not None:
            g = g * torch.clamp(clip / (g.norm(dim=-1, keepdim=True) + 1e-300), max=1.0)
        with torch.no_grad():
            q -= lr * g
    overlaps = torch.stack(path).numpy()
    return AlphaPaths(a, overlaps, torch.stack(losses).numpy(),
                      theory.labelled_roots(overlaps)[..., 0],
                      np.broadcast_to(np.asarray(T_prime), a.shape).copy())


def returns_inside(modulus) -> np.ndarray:
    """Whether each path of |lambda_1| (S+1, ...) -> (...) bends back through the unit circle:
    it crosses inward (from >= 1 to < 1) exactly once and is inside at the last step. A pair
    chattering about lambda = 1 on the real axis crosses back and forth and does not count,
    whatever the parity of its last step. Introduced in Chapter 3, section "The band"."""
    m = np.asarray(modulus, dtype=float)
    if m.ndim < 1 or len(m) < 2:
        raise ValueError(f"modulus must hold at least two steps (axis 0), got shape {m.shape}")
    return (((m[1:] < 1) & (m[:-1] >= 1)).sum(0) == 1) & (m[-1] < 1)


def bisect_edges(predicate, brackets, low, *, tol: float, points: int = 9) -> np.ndarray:
    """Bisection on B brackets at once: ``brackets`` (B, 2) intervals [a, b] over which a
    boolean ``predicate(x (n,), bracket (n,)) -> (n,)`` changes, ``low`` (B,) its value at a.
    Each round cuts every bracket wider than ``tol`` at up to ``points`` inner points (1: plain
    bisection; more: fewer rounds, each one call) and keeps the piece holding the first change
    (False at a) or the last (True at a): a band's outer edges. Returns the brackets (B, 2),
    each at most ``tol`` wide."""
    br, low = np.array(brackets, dtype=float).reshape(-1, 2), np.asarray(low, dtype=bool)
    tol = _checks.real("tol", tol, low=0.0, low_open=True)
    points = _checks.integer("points", points, low=1)
    while len(wide := np.flatnonzero(br[:, 1] - br[:, 0] > tol * (1 + 1e-9))):
        w = br[wide, 1] - br[wide, 0]
        n = max(min(points, int(np.ceil(w.max() / tol - 1e-9)) - 1), 1)
        x = br[wide, :1] + w[:, None] * (np.arange(1, n + 1) / (n + 1))  # (W, n)
        value = np.asarray(predicate(x.ravel(), np.repeat(wide, n)), dtype=bool).reshape(x.shape)
        for row, b in enumerate(wide):
            ends, flags = np.r_[br[b, 0], x[row], br[b, 1]], np.r_[low[b], value[row], ~low[b]]
            change = np.flatnonzero(flags[1:] != flags[:-1])
            br[b] = ends[change[-1] if low[b] else change[0]:][:2]
    return br


def balance_alpha(overlaps, T_prime: int) -> float:
    """alpha* = g_0 / (g_0 - g_inf), g = dL/ds_zm of L_0 and of L_inf at ``overlaps`` (4,): the
    alpha whose first step of L_alpha leaves s_zm where it is. Below it (1 - alpha) L_0 pushes
    s_zm down (the pair outward), above it alpha L_inf pulls it up (inward). NaN where the two
    do not pull against each other. Introduced in Chapter 3, section "The band"."""
    q = torch.tensor(theory.as_overlaps(overlaps), dtype=DTYPE, requires_grad=True)
    if q.shape != (4,):
        raise ValueError(f"overlaps must have shape (4,), got {tuple(q.shape)}")
    g0, gi = (torch.autograd.grad(f, q)[0][0].item() for f in
              (theory.short_term_loss(q), theory.long_term_loss(q, T_prime)))
    return g0 / (g0 - gi) if g0 * gi < 0 else float("nan")


@dataclass
class AlphaBands:
    """The band of alpha whose lambda_1 bends back inside the unit circle (``returns_inside``
    after ``steps`` steps of the alpha-model), for each horizon in ``T_prime`` (n,). ``lo``,
    ``hi`` (n,): its edges, middles of brackets at most ``tol`` wide (NaN: no band; 0 or 1
    where it reaches an end of [0, 1]); ``grid``: the first round, ``AlphaPaths`` of every T'
    at every alpha of a uniform grid (and extra alphas); ``runs`` (n,): the separate runs of
    returning alphas on it (1: one band, as bisection assumes); ``balance``: ``balance_alpha``."""

    T_prime: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    tol: float
    steps: int
    grid: AlphaPaths
    runs: np.ndarray
    balance: np.ndarray

    def index(self, T_prime: int) -> int:
        """The position of ``T_prime`` in ``self.T_prime`` (ValueError if it is not there)."""
        Tp = self.T_prime.tolist()
        return Tp.index(_checks.choice("T_prime", T_prime, Tp))

    def grid_edges(self, T_prime: int, steps: int) -> tuple:
        """(lo, hi) after ``steps`` <= ``self.steps`` steps, read off the grid (to its spacing):
        the lowest and highest grid alpha that returns; NaN if none does."""
        steps = _checks.integer("steps", steps, low=1, high=self.steps)
        k = self.grid.T_prime == self.T_prime[self.index(T_prime)]
        a = self.grid.alpha[k][returns_inside(np.abs(self.grid.lambda1[:steps + 1, k]))]
        return (float(a.min()), float(a.max())) if len(a) else (float("nan"),) * 2


def alpha_bands(overlaps0, T_primes, *, lr: float = 1e-3, steps: int = 400, tol: float = 1e-3,
                spacing: float = 0.01, alphas=(), clip: float | None = 1.0) -> AlphaBands:
    """``AlphaBands`` from ``overlaps0`` (4,) for every horizon in ``T_primes``. Round one
    descends L_alpha at every alpha of a grid of ``spacing`` on [0, 1] (and ``alphas``) for all
    T' at once; the outermost changes of ``returns_inside`` are then bisected to ``tol``
    (``bisect_edges``), one batched descent a round. ``lr``, ``steps``, ``clip``: as in
    ``alpha_model``. Introduced in Chapter 3, section "The band"."""
    Tp = np.array(sorted({_checks.integer("T_primes", t, low=1) for t in T_primes}))
    n = int(np.ceil(1 / _checks.real("spacing", spacing, low=0.0, high=0.5, low_open=True)
                    - 1e-9))
    a = np.unique(np.round(np.r_[np.linspace(0, 1, n + 1), np.asarray(alphas, float)], 12))
    grid = alpha_model(overlaps0, np.tile(a, len(Tp)), T_prime=np.repeat(Tp, len(a)), lr=lr,
                       steps=_checks.integer("steps", steps, low=1), clip=clip)
    ok = returns_inside(np.abs(grid.lambda1)).reshape(len(Tp), len(a))
    edges, brackets, owner = np.full((len(Tp), 2), np.nan), [], []  # owner: (T', lower/upper)
    for k in np.flatnonzero(ok.any(1)):
        i, j = np.flatnonzero(ok[k])[[0, -1]]
        edges[k] = a[i], a[j]
        for e, x0, x1 in ((0, i - 1, i), (1, j, j + 1)):  # the changes inside [0, 1]
            if 0 <= x0 and x1 < len(a):
                brackets.append((a[x0], a[x1])), owner.append((k, e))

    def judge(x, b):
        T = Tp[[owner[i][0] for i in b]]
        return returns_inside(np.abs(alpha_model(overlaps0, x, T_prime=T, lr=lr, steps=steps,
                                                 clip=clip).lambda1))

    final = bisect_edges(judge, np.reshape(brackets, (-1, 2)), [e for _, e in owner], tol=tol)
    for (k, e), br in zip(owner, final):
        edges[k, e] = br.mean()
    return AlphaBands(Tp, edges[:, 0], edges[:, 1], tol, steps, grid,
                      (np.diff(ok.astype(int), prepend=0, axis=1) == 1).sum(1),
                      np.array([balance_alpha(overlaps0, T) for T in Tp]))


@dataclass
class HorizonScan:
    """Copies of one network (recorded at ``start_epoch``) trained with every episode length
    ``T`` (n,) = 1..T_max; ``modulus`` (E+1, n): |lambda_1| of each at epochs 0..E."""

    T: np.ndarray
    modulus: np.ndarray
    start_epoch: int

    def myopic(self, epochs: int = -1) -> int | None:
        """The longest T whose |lambda_1| stays >= 1 at every epoch 0..``epochs`` (-1: all)."""
        e = _checks.integer("epochs", epochs, low=-1, high=len(self.modulus) - 1)
        out = (self.modulus[:e % len(self.modulus) + 1] >= 1).all(0)
        return int(self.T[out].max()) if out.any() else None

    def fan(self, T_values) -> list:
        """``T_values`` with the myopic horizon added, sorted."""
        return sorted({int(T) for T in T_values} | ({self.myopic()} - {None}))


def horizon_scan(agent: RankOneAgent, env, *, T_max: int, epochs: int, seed: int = 0,
                 **train) -> HorizonScan:
    """Copies of ``agent`` trained with every episode length T = 1..``T_max`` for ``epochs``
    epochs, as one ensemble (``training.sweep``: the batches of a T sweep with ``seed``), and
    |lambda_1| of each. Introduced in Chapter 3, section "Episode length plays alpha"."""
    T = np.arange(1, _checks.integer("T_max", T_max, low=1) + 1)
    h = sweep("T", T.tolist(), agent, env, epochs=epochs, seed=seed, **train)
    return HorizonScan(T, np.abs(theory.labelled_roots(h.overlaps)[..., 0]),
                       int(getattr(agent, "snapshot_epoch", -1)))


def relative_loss_gap(full, reduced) -> np.ndarray:
    """|L_reduced - L_full| / L_full per recorded epoch: arrays (E, ...) -> (E, ...)."""
    full, reduced = np.asarray(full, dtype=float), np.asarray(reduced, dtype=float)
    if full.shape != reduced.shape:
        raise ValueError(f"loss curves must have equal shapes, got {full.shape} and "
                         f"{reduced.shape}")
    return np.abs(reduced - full) / full


def matched_eig_gap(eig_a, eig_b, tol: float = 1e-9) -> float:
    """Largest distance between the nonzero eigenvalues of two spectra, optimally paired:
    ``eig_a``, ``eig_b`` (d,) complex; eigenvalues with modulus below ``tol`` are dropped
    (P's N - 2 structural zeros, P_eff's one), then paired to minimize the total distance."""
    from scipy.optimize import linear_sum_assignment

    a, b = (np.asarray(e)[np.abs(e) > tol] for e in (eig_a, eig_b))
    if len(a) != len(b):
        raise ValueError(f"the spectra have {len(a)} and {len(b)} nonzero eigenvalues")
    cost = np.abs(a[:, None] - b[None, :])
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].max())


STAGE3_MODELS = ("paper", "frozen_metric", "compressed")


@dataclass
class Stage3Runs:
    """Stage 3 of one network: the full network trained on from ``start_epoch`` and its
    reduced models (module docstring), each a training History of ``epochs`` updates.

    ``full`` and ``paper``: one member per ``betas`` (control cost); ``frozen_metric`` and
    ``compressed`` ran at ``betas[0]``. ``full.metric`` (E, K, 4, 4): the network's overlap
    metric G. ``seed`` drew the batches of the full and the compressed network,
    ``reduced_seed`` those of the paper's and the frozen-metric models."""

    start_epoch: int
    betas: np.ndarray
    seed: int
    reduced_seed: int
    full: History
    paper: History
    frozen_metric: History
    compressed: History

    def model(self, name: str) -> History:
        """The History of one reduced model (``STAGE3_MODELS``)."""
        return getattr(self, _checks.choice("model", name, STAGE3_MODELS))

    def loss_gap(self, name: str, member: int = 0) -> np.ndarray:
        """|L_model - L_full| / L_full of the expected losses at every epoch of stage 3."""
        member = self._member(name, member)
        h = self.model(name)
        reduced = h.expected_loss[:, member] if h.expected_loss.ndim > 1 else h.expected_loss
        return relative_loss_gap(self.full.expected_loss[:, member], reduced)

    def median_gap_pct(self, name: str, member: int = 0) -> float:
        """The median of ``loss_gap`` over stage 3, in percent."""
        return 100 * float(np.median(self.loss_gap(name, member)))

    def final_eig_gap(self, name: str, member: int = 0) -> float:
        """``matched_eig_gap`` of the final spectra of the full network and a model."""
        member = self._member(name, member)
        h = self.model(name)
        eig = h.eig_P[-1, member] if h.eig_P.ndim > 2 else h.eig_P[-1]
        return matched_eig_gap(self.full.eig_P[-1, member], eig)

    def _member(self, name, member):
        high = len(self.betas) - 1 if name == "paper" else 0
        return _checks.integer("member", member, low=0, high=high)


def stage3_runs(start: RankOneAgent, env, *, epochs: int, T: int = 50, lr: float = 1e-2,
                batch: int = 100, clip: float | None = 1.0, betas=(0.0,), seed: int = 0,
                reduced_seed: int | None = None, convention=None) -> Stage3Runs:
    """Train the network ``start`` (at the stabilization epoch) on for ``epochs`` updates, for
    every control cost in ``betas``, beside its three reduced models (module docstring), which
    start from its overlaps. The full and the compressed network draw their batches with
    ``seed``; the other two with ``reduced_seed`` (default ``seed + 1``: their own batches, as
    in the authors' code). ``convention`` as in ``train_closed_loop`` (default: the authors').
    Introduced in Chapter 3, section "Stage 3: four numbers are enough?"."""
    if not isinstance(start, RankOneAgent) or start.batch_shape:
        raise TypeError(f"start must be one RankOneAgent (no ensemble axes), got "
                        f"{_checks.short(start)}")
    b = [_checks.real(f"betas[{i}]", v, low=0.0) for i, v in enumerate(betas)]
    if not b:
        raise ValueError("betas must name at least one control cost")
    seed = _checks.integer("seed", seed, low=0)
    reduced_seed = seed + 1 if reduced_seed is None else _checks.integer(
        "reduced_seed", reduced_seed, low=0)
    common = dict(epochs=epochs, T=T, lr=lr, batch=batch, clip=clip, convention=convention,
                  eig_W=False)
    metric = lambda agent: {"metric": agent.overlap_metric()}
    full = sweep("beta", b, start.detached(), env, seed=seed, monitor=metric, **common)
    paper = sweep("beta", b, OverlapAgent.of(start, metric=False), env, seed=reduced_seed,
                  **common)
    frozen = train_closed_loop(OverlapAgent.of(start), env, beta=b[0], seed=reduced_seed,
                               **common)
    small = train_closed_loop(start.compressed(), env, beta=b[0], seed=seed, **common)
    return Stage3Runs(int(getattr(start, "snapshot_epoch", -1)), np.array(b), seed,
                      reduced_seed, full, paper, frozen, small)


def balance(overlaps):
    """s_zu^2 - s_vm^2, (..., 4) -> (...): what plain gradient descent on the overlaps keeps.

    The loss sees s_zu and s_vm only through their product (``theory.rescale_overlaps``), so
    its gradient is (s_vm, s_zu) dL/d(s_zu s_vm) in those two coordinates, and a step of
    gradient flow changes s_zu^2 - s_vm^2 by 2 (s_zu s_vm - s_vm s_zu) dL = 0 (SGD: by
    O(lr^2) per step). The full network steps in its metric G and does not keep it.
    Introduced in Chapter 3, section "Stage 3"."""
    q = theory.as_overlaps(overlaps)
    return q[..., 1] ** 2 - q[..., 2] ** 2


def symmetry_partner(overlaps, target_balance):
    """The point on the loss's symmetry orbit of ``overlaps`` (4,) whose ``balance`` is
    ``target_balance``: (s_zm, c s_zu, s_vm / c, s_vu) with c > 0 solving
    c^2 s_zu^2 - s_vm^2 / c^2 = target_balance. Returns (q (4,), c)."""
    q = theory.as_overlaps(overlaps)
    if q.shape != (4,):
        raise ValueError(f"overlaps must have shape (4,), got {q.shape}")
    a, b = q[1] ** 2, q[2] ** 2
    if a == 0 or b == 0:
        raise ValueError("overlaps with s_zu = 0 or s_vm = 0 have a one-point orbit")
    t = _checks.real("target_balance", target_balance)
    c = float(np.sqrt((t + np.sqrt(t * t + 4 * a * b)) / (2 * a)))  # c^2 > 0 solves it
    return theory.rescale_overlaps(q, c), c


def stage3_spread(seeds, env, *, N: int = 100, epochs: int = 1000, T: int = 50,
                  lr: float = 1e-2, batch: int = 100, clip: float | None = 1.0,
                  reduced_seed_offset: int = 1, convention=None,
                  stream: str = "authors") -> dict:
    """The paper's model against the full network over stage 3, for independent runs: per seed
    s a rank-one network drawn and trained on batches from ``Stream(s, stream)`` for ``epochs``
    updates; from its stabilization epoch e_s the paper's model (``OverlapAgent``, no metric)
    starts at the overlaps recorded at e_s and trains ``epochs - e_s`` updates on its own
    batches (seed s + ``reduced_seed_offset``), against the run's epochs e_s.. Returns arrays
    (len(seeds),): ``seed``, ``stabilization`` (NaN: never, and NaN gaps), ``median_gap_pct``,
    ``max_gap_pct`` (relative gap of expected losses over stage 3), ``behind`` (1.0 where the
    median of L_paper - L_full is positive). Chapter 3, section "Stage 3"."""
    seeds = _checks.seeds("seeds", seeds)
    offset = _checks.integer("reduced_seed_offset", reduced_seed_offset, low=1)
    common = dict(T=T, lr=lr, batch=batch, clip=clip, convention=convention, eig_W=False)
    out = {k: [] for k in ("seed", "stabilization", "median_gap_pct", "max_gap_pct", "behind")}
    runs = [Stream(s, stream) for s in seeds]  # one ensemble: each member its run to rounding
    nets = RankOneAgent.stack([RankOneAgent(N=N, seed=st, dtype=env.dtype, device=env.device)
                               for st in runs])
    full_runs = train_closed_loop(nets, env, epochs=epochs, seed=runs, eig_every=1, **common)
    for k, s in enumerate(seeds):
        h = full_runs.member(k)
        e = detect_stages(h).stabilization
        row = dict(seed=s, stabilization=np.nan, median_gap_pct=np.nan, max_gap_pct=np.nan,
                   behind=np.nan)
        if e is not None and e < epochs:
            start = OverlapAgent(torch.as_tensor(h.overlaps[e]), dtype=env.dtype)
            paper = train_closed_loop(start, env, epochs=epochs - e, seed=s + offset, **common)
            full = h.expected_loss[e:]
            gap = relative_loss_gap(full, paper.expected_loss)
            row.update(stabilization=e, median_gap_pct=100 * float(np.median(gap)),
                       max_gap_pct=100 * float(gap.max()),
                       behind=float(np.median(paper.expected_loss - full) > 0))
        for k, v in row.items():
            out[k].append(v)
    return {k: np.array(v, dtype=int if k == "seed" else float) for k, v in out.items()}
