"""Reduced models of rank-one closed-loop learning (paper s.5): the alpha-model of stage 2.

The trade-off of stage 2 in four numbers. A step of gradient descent on the episode loss
weighs what the loop does in the next few steps against how fast it grows over many. The
alpha-model makes both terms explicit on the overlaps q = (s_zm, s_zu, s_vm, s_vu):

    L_alpha(q) = alpha L_inf(q) + (1 - alpha) L_0(q),
    L_inf = (|lambda_1|^2)^T'   growth along the environment's pair (``theory.long_term_loss``;
                                 Vieta for a complex pair, the larger root for a real one)
    L_0   = |position/velocity block of P_eff^3|^2   (``theory.short_term_loss``)

and descends it for many alpha at once. (The stage-3 reduced model is an ordinary training
run of ``agents.OverlapAgent``: the same closed-loop loss, through P_eff, on the overlaps.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import _checks, theory
from .envs import DTYPE


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
