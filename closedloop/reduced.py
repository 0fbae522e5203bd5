"""Reduced models of rank-one closed-loop learning (paper s.5): the alpha-model of stage 2.

Chapter 3 starts every section from one reference run (``reference_run``): a rank-one network
trained closed loop with its parameters kept at every epoch, and its stage boundaries, a
boundary that a short run does not reach filled in (``fill_stages``).

The trade-off of stage 2 in four numbers. A step of gradient descent on the episode loss
weighs what the loop does in the next few steps against how fast it grows over many. The
alpha-model makes both terms explicit on the overlaps q = (s_zm, s_zu, s_vm, s_vu):

    L_alpha(q) = alpha L_inf(q) + (1 - alpha) L_0(q),
    L_inf = (|lambda_1|^2)^T'   growth along the environment's pair (``theory.long_term_loss``;
                                 Vieta for a complex pair, the larger root for a real one)
    L_0   = |position/velocity block of P_eff^3|^2   (``theory.short_term_loss``)

and descends it for many alpha at once.

Stage 3 (``stage3_runs``): the network at the stabilization epoch, trained on, beside three
reduced models of it, each an ordinary training run (the same closed-loop loss, lr, batch
size and clipping):

- ``paper``: the paper's model (section 9 of the spec): the four overlaps themselves trained
  by plain SGD, their own 4-vector gradient clipped, on their own batches
  (``agents.OverlapAgent`` with ``metric=None``);
- ``frozen_metric``: the overlaps stepped in the metric G of the network at the start, frozen
  there (``OverlapAgent.of(start)``), on the same batches as ``paper``;
- ``compressed``: the network written in a basis of span{m, u, v, z}, four neurons
  (``RankOneAgent.compressed``), on the full network's batches: the exact reduction to the
  ten inner products of m, u, v, z.
"""

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
    Introduced in Chapter 3, section "The reference run" (a short run, as in CI).
    """
    stage1_end = stages.stage1_end if stages.stage1_end is not None else 0
    stabilization = (stages.stabilization if stages.stabilization is not None
                     else max(epochs // 2, stage1_end))
    return dataclasses.replace(stages, stage1_end=stage1_end, stabilization=stabilization)


@dataclass
class ReferenceRun:
    """Chapter 3's reference run: ``agent`` (trained in place) and its ``history``, with a
    parameter snapshot at every one of its ``epochs`` epochs.

    ``detected``: the boundaries ``detect_stages`` read off the history (None: not reached);
    ``stages``: those the chapter starts from, a missing one filled in (``fill_stages``).
    """

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
    ``env`` for ``epochs`` epochs (batches from the same stream: the run the authors' code
    makes at ``seed`` by default), keeping its parameters at every epoch,
    and read off its stage boundaries. A run that does not stabilize (a short one, as in CI)
    says so, printing the epoch at which stage 3 is taken to start instead.
    Introduced in Chapter 3, section "The reference run".
    """
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
    Introduced in Chapter 3, section "The zig-zag".
    """
    agent = RankOneAgent(N=N, seed=Stream(seed, stream), dtype=env.dtype, device=env.device)
    return train_closed_loop(agent, env, epochs=min(epochs, 2 * stages.stabilization + 50),
                             T=T, mode="exact", lr=lr, clip=clip)


@dataclass
class AlphaPaths:
    """Gradient-descent paths of the alpha-model, one per alpha.

    ``alpha`` (K,); ``overlaps`` (S+1, K, 4) for steps 0..S; ``loss`` (S+1, K) = L_alpha;
    ``lambda1`` (S+1, K) complex: the environment's eigenvalue with Im >= 0 (exact root of the
    cubic at each step, ``theory.labelled_roots``).
    """

    alpha: np.ndarray
    overlaps: np.ndarray
    loss: np.ndarray
    lambda1: np.ndarray


def alpha_loss(overlaps: torch.Tensor, alpha: torch.Tensor, T_prime: int = 15) -> torch.Tensor:
    """L_alpha = alpha (|lambda_1|^2)^T' + (1 - alpha) L_0: overlaps (..., 4), alpha (...)."""
    return (alpha * theory.long_term_loss(overlaps, T_prime)
            + (1 - alpha) * theory.short_term_loss(overlaps))


def alpha_model(overlaps0, alphas, *, T_prime: int = 15, lr: float = 1e-3, steps: int = 300,
                clip: float | None = 1.0) -> AlphaPaths:
    """Descend L_alpha from ``overlaps0`` (4,) for every alpha in ``alphas`` (K,) at once.

    One batched optimization: the K members share nothing but the start, and since the total
    is a sum of per-member losses, each member's gradient is its own. Plain gradient descent
    with step ``lr`` for ``steps`` steps; ``clip`` bounds each member's step norm (None: no
    clipping). Introduced in Chapter 3, section "The alpha-model".
    """
    T_prime = _checks.integer("T_prime", T_prime, low=1)
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
                      theory.labelled_roots(overlaps)[..., 0])


def relative_loss_gap(full, reduced) -> np.ndarray:
    """|L_reduced - L_full| / L_full per recorded epoch: arrays (E, ...) -> (E, ...)."""
    full, reduced = np.asarray(full, dtype=float), np.asarray(reduced, dtype=float)
    if full.shape != reduced.shape:
        raise ValueError(f"loss curves must have equal shapes, got {full.shape} and "
                         f"{reduced.shape}")
    return np.abs(reduced - full) / full


def matched_eig_gap(eig_a, eig_b, tol: float = 1e-9) -> float:
    """Largest distance between the nonzero eigenvalues of two spectra, optimally paired.

    ``eig_a``, ``eig_b`` (d,) complex; eigenvalues with modulus below ``tol`` are dropped
    (P's N - 2 structural zeros, P_eff's one), then paired to minimize the total distance.
    """
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

    ``full`` and ``paper`` are ensembles with one member per ``betas`` (control cost);
    ``frozen_metric`` and ``compressed`` ran at ``betas[0]``. ``full`` records the overlap
    metric G of the network at every epoch (``full.metric``, (E, K, 4, 4)). ``seed`` drew the
    full network's batches (and the compressed network's), ``reduced_seed`` those of the
    paper's and the frozen-metric models.
    """

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
    every control cost in ``betas``, beside its three reduced models (module docstring).

    The reduced models start from ``start``'s overlaps. The full and the compressed network
    draw their batches with ``seed``; the paper's and the frozen-metric models with
    ``reduced_seed`` (default ``seed + 1``: their own, independent batches, as in the
    authors' code). ``convention`` as in ``train_closed_loop`` (default: the authors').
    Introduced in Chapter 3, section "Stage 3: four numbers are enough?".
    """
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
    Introduced in Chapter 3, section "Stage 3".
    """
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
    x = (t + np.sqrt(t * t + 4 * a * b)) / (2 * a)  # x = c^2 > 0
    c = float(np.sqrt(x))
    return theory.rescale_overlaps(q, c), c


def stage3_spread(seeds, env, *, N: int = 100, epochs: int = 1000, T: int = 50,
                  lr: float = 1e-2, batch: int = 100, clip: float | None = 1.0,
                  reduced_seed_offset: int = 1, convention=None,
                  stream: str = "authors") -> dict:
    """The paper's model against the full network over stage 3, for independent runs.

    For each seed s: a rank-one network drawn and trained on batches from ``Stream(s,
    stream)`` for ``epochs`` updates (the authors' setup and draws by default); from its
    stabilization epoch e_s the paper's model (``OverlapAgent``, ``metric=None``) starts at
    the overlaps recorded at e_s and trains ``epochs - e_s`` updates on its own batches (seed s +
    ``reduced_seed_offset``), and its expected loss is compared with the full run's own epochs
    e_s..``epochs``. Returns arrays (len(seeds),): ``seed``, ``stabilization`` (NaN: never, and NaN
    gaps), ``median_gap_pct`` and ``max_gap_pct`` (relative gap of expected losses over stage 3),
    ``behind`` (1.0 where the median of L_paper - L_full is positive: the paper's model is slower).
    Introduced in Chapter 3, section "Stage 3".
    """
    seeds = _checks.seeds("seeds", seeds)
    offset = _checks.integer("reduced_seed_offset", reduced_seed_offset, low=1)
    common = dict(T=T, lr=lr, batch=batch, clip=clip, convention=convention, eig_W=False)
    out = {k: [] for k in ("seed", "stabilization", "median_gap_pct", "max_gap_pct", "behind")}
    for s in seeds:
        st = Stream(s, stream)
        agent = RankOneAgent(N=N, seed=st, dtype=env.dtype, device=env.device)
        h = train_closed_loop(agent, env, epochs=epochs, seed=st, eig_every=1, **common)
        e = detect_stages(h).stabilization
        row = dict(seed=s, stabilization=np.nan, median_gap_pct=np.nan, max_gap_pct=np.nan,
                   behind=np.nan)
        if e is not None and e < epochs:
            paper = train_closed_loop(OverlapAgent(torch.as_tensor(h.overlaps[e]),
                                                   dtype=env.dtype), env,
                                      epochs=epochs - e, seed=s + offset, **common)
            full = h.expected_loss[e:]
            gap = relative_loss_gap(full, paper.expected_loss)
            row.update(stabilization=e, median_gap_pct=100 * float(np.median(gap)),
                       max_gap_pct=100 * float(gap.max()),
                       behind=float(np.median(paper.expected_loss - full) > 0))
        for k, v in row.items():
            out[k].append(v)
    return {k: np.array(v, dtype=int if k == "seed" else float) for k, v in out.items()}
