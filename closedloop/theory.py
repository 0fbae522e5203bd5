"""Closed forms of the paper: the characteristic cubic, stage-1 theory, the stage-2
perturbative theory and the alpha-model's losses L_0 and L_inf, and the LQR baseline.

Overlaps are arrays (..., 4) ordered (s_zm, s_zu, s_vm, s_vu), as in ``RankOneAgent.overlaps``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from . import _checks
from .agents import RankOneAgent
from .coupled import expected_loss


def cubic_coefficients(overlaps) -> np.ndarray:
    """Coefficients (1, c2, c1, c0) of the characteristic cubic of P_eff (paper s.4), (..., 4).

        lambda^3 - (s_vu + 2) lambda^2 + (2 s_vu - s_zm + 1) lambda
                 + (s_vu s_zm - s_vu - s_vm s_zu) = 0
    """
    c2, c1, c0 = _cubic_terms(as_overlaps(overlaps))
    return np.stack([np.ones_like(c2), c2, c1, c0], -1)


def cubic_roots(overlaps) -> np.ndarray:
    """The three roots of the cubic, (..., 3) complex, as eigenvalues of its companion matrix.

    Introduced in Chapter 2, section "The coupled system".
    """
    c = cubic_coefficients(overlaps)
    comp = np.zeros(c.shape[:-1] + (3, 3))
    comp[..., 0, :] = -c[..., 1:]
    comp[..., 1, 0] = comp[..., 2, 1] = 1.0
    return np.linalg.eigvals(comp)


def stage1_eigenvalues(s_zm) -> np.ndarray:
    """lambda_{1,2} ~ 1 +/- sqrt(s_zm) when u, v are negligible: (..., 2) complex."""
    r = np.sqrt(_real("s_zm", s_zm).astype(complex))
    return np.stack([1 + r, 1 - r], -1)


def stage1_loss(s_zm, T: int) -> np.ndarray:
    """The paper's stage-1 estimate L(s_zm) ~ 1/2 (1 - r^{T+1}) / (1 - r), r = |1 + sqrt(s_zm)|^2.

    A geometric sum over the dominant eigenvalue: it captures the exponential growth of the
    loss, not its polynomial prefactor. Beyond the float64 range it is inf.
    Introduced in Chapter 2, section "Stage 1".
    """
    T = _checks.integer("T", T, low=1)
    s = _real("s_zm", s_zm)
    r = np.abs(1 + np.sqrt(s.astype(complex))) ** 2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        geo = np.where(np.isclose(r, 1.0), T + 1.0, (1 - r ** (T + 1)) / (1 - r))
    return 0.5 * geo


def lqr_gain(A, B, Q=None, R: float = 1e-8) -> np.ndarray:
    """Discrete LQR gain K (m, n) for u = -K x, from scipy's Riccati solver.

    The paper's baseline uses Q = I and R -> 0 (1e-8): the optimal full-state feedback.
    A (n, n), B (n,) or (n, m), Q (n, n) (default I).
    """
    return riccati(A, B, Q, R)[0]


def riccati(A, B, Q=None, R: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """``lqr_gain``'s K (m, n) and the Riccati solution X (n, n) behind it: the optimal
    cost-to-go from x_0 is x_0^T X x_0 (for per-step cost x^T Q x + R |u|^2 over t >= 0)."""
    A = np.atleast_2d(_real("A", A))
    n = A.shape[0]
    if A.shape != (n, n):
        raise ValueError(f"A must be a square matrix (n, n), got shape {A.shape}")
    B = _real("B", B)
    if B.ndim not in (1, 2) or B.shape[0] != n:
        raise ValueError(f"B must have shape (n,) or (n, m) with n = {n} rows like A, got "
                         f"{B.shape}")
    B = B.reshape(n, -1)
    Q = np.eye(n) if Q is None else np.atleast_2d(_real("Q", Q))
    if Q.shape != (n, n):
        raise ValueError(f"Q must have A's shape ({n}, {n}), got {Q.shape}")
    R = np.atleast_2d(_checks.real("R", R, low=0.0, low_open=True))
    try:
        X = scipy.linalg.solve_discrete_are(A, B, Q, R)
    except (ValueError, np.linalg.LinAlgError) as e:
        raise ValueError(f"the Riccati equation of (A, B, Q, R={R.item()!r}) has no stabilizing "
                         f"solution that scipy can find ({e})") from None
    K = np.linalg.solve(R + B.T @ X @ B, B.T @ X @ A)
    # the LQR gain stabilizes by construction; in floating point an ill-conditioned problem
    # (R huge against Q, a marginal A) can return one that does not
    if not np.isfinite(K).all() or np.abs(np.linalg.eigvals(A - B @ K)).max() >= 1:
        raise ValueError(f"the Riccati equation of (A, B, Q, R={R.item()!r}) is too "
                         f"ill-conditioned: the computed gain does not stabilize A - B K")
    return K, X


def _real(name, value) -> np.ndarray:
    """``value`` as a finite float64 numpy array, or a TypeError/ValueError naming it."""
    return _checks.real_tensor(name, value, torch.float64).detach().cpu().numpy()


def as_overlaps(overlaps):
    """Overlaps (..., 4) as a checked real numpy array (the theory's functions and
    ``reduced`` read them through this)."""
    q = _real("overlaps", overlaps)
    if q.shape[-1:] != (4,):
        raise ValueError(f"overlaps must have shape (..., 4), got {q.shape}")
    return q


def stage1_simulated_loss(s_zm, env, T: int, N: int = 100, seed: int = 0,
                          uv_scale: float = 1e-3) -> np.ndarray:
    """Exact expected loss of rank-one networks with z.m = s_zm and negligible u, v.

    The simulation the stage-1 formula is compared against: one network per value of
    ``s_zm`` (1-d array), built as one ensemble. Returns (len(s_zm),).
    """
    s = _real("s_zm", s_zm)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"s_zm must be a non-empty 1-d array, got shape {s.shape}")
    agent = RankOneAgent(N=N, seed=seed, s_zm0=torch.tensor(s), batch_shape=s.shape,
                         uv_scale=uv_scale, z_perp_scale=uv_scale)
    with torch.no_grad():
        return expected_loss(agent, env, T).numpy()


# Stage 2: the perturbative theory (paper s.5) -----------------------------------------------
# These work on numpy arrays and on torch tensors alike (torch keeps the graph), so the same
# formulas draw the theory curves of Chapter 3 and define the loss of the alpha-model.

def perturbative_lambda3(overlaps):
    """The RNN's eigenvalue to first order in s_vm s_zu: (..., 4) -> (...).

        lambda_3 ~ s_vu + s_vm s_zu / (s_vu^2 - 2 s_vu - s_zm + 1)

    Exact when s_vm s_zu = 0 (then the cubic factors as (lambda - s_vu)(lambda^2 - 2 lambda
    + 1 - s_zm)). Introduced in Chapter 3, section "Stage 2 in closed form".
    """
    s_zm, s_zu, s_vm, s_vu = _unbind(overlaps)
    return s_vu + s_vm * s_zu / (s_vu ** 2 - 2 * s_vu - s_zm + 1)


def pair_modulus_sq(overlaps, lambda3=None):
    """|lambda_1|^2 = lambda_1 lambda_2 = c + b lambda_3 + lambda_3^2 (Vieta), (...).

    b = -(s_vu + 2), c = 2 s_vu - s_zm + 1. Exact for the exact real root ``lambda3``;
    by default the perturbative lambda_3 is used. For a complex pair this is the squared
    modulus of both; the loop grows along the pair when it exceeds 1.
    """
    b, c, _ = _cubic_terms(overlaps)
    lam3 = perturbative_lambda3(overlaps) if lambda3 is None else lambda3
    return c + b * lam3 + lam3 ** 2


def short_term_loss(overlaps):
    """L_0: the sum of squares of the position/velocity block of P_eff^3, (..., 4) -> (...).

        L_0 = (s_zm+1)^2 + (s_zm+3)^2 + (s_vm s_zu + 2 s_zm)^2 + (s_vm s_zu + 3 s_zm + 1)^2

    How far three steps of the loop carry a unit state: the myopic part of the alpha-model.
    """
    s_zm, s_zu, s_vm, _ = _unbind(overlaps)
    k = s_vm * s_zu
    return (s_zm + 1) ** 2 + (s_zm + 3) ** 2 + (k + 2 * s_zm) ** 2 + (k + 3 * s_zm + 1) ** 2


def exact_lambda3(overlaps):
    """The RNN's eigenvalue, exactly: the real root of the cubic (``labelled_roots``: the only
    one beside a complex pair, else the one nearest the perturbative value).

    (..., 4) -> (...), numpy for numpy input. For torch input the value is differentiable:
    one Newton step from the exact root adds zero to the value and carries the
    implicit-function gradient -(df/dq) / (df/dlambda).
    """
    exact = labelled_roots(overlaps)[..., 2].real
    if not torch.is_tensor(overlaps):
        return exact
    lam = torch.as_tensor(exact, dtype=overlaps.dtype)
    c2, c1, c0 = _cubic_terms(overlaps)
    f = lam ** 3 + c2 * lam ** 2 + c1 * lam + c0
    return lam - f / (3 * lam ** 2 + 2 * c2 * lam + c1)


def pair_growth(overlaps):
    """|lambda_1|^2, the squared modulus of the larger of the environment's pair, exactly.

    With the exact lambda_3, the pair has sum S = s_vu + 2 - lambda_3 and product
    p = c + b lambda_3 + lambda_3^2. A complex pair has |lambda_1|^2 = p (Vieta,
    ``pair_modulus_sq``); a real pair has |lambda_1| = (|S| + sqrt(S^2 - 4p)) / 2, which can
    exceed 1 while p < 1 (a product is not a growth rate). Differentiable for torch input.
    """
    s_vu = _unbind(overlaps)[3]
    lam3 = exact_lambda3(overlaps)
    S = s_vu + 2 - lam3
    p = pair_modulus_sq(overlaps, lam3)
    disc = S ** 2 - 4 * p
    lib = torch if torch.is_tensor(overlaps) else np
    root = lib.sqrt(lib.clip(disc, 1e-300, None))  # clipped so the unused branch stays finite
    return lib.where(disc < 0, p, ((abs(S) + root) / 2) ** 2)


def long_term_loss(overlaps, T_prime: int = 15):
    """L_inf = (|lambda_1|^2)^T': growth along the environment's pair over T' steps, (...)."""
    T_prime = _checks.integer("T_prime", T_prime, low=1)
    return pair_growth(overlaps) ** T_prime


def rescale_overlaps(overlaps, c):
    """(s_zm, c s_zu, s_vm / c, s_vu): a symmetry of the closed loop, (..., 4) -> (..., 4).

    P_eff with (s_zu, s_vm) -> (c s_zu, s_vm / c) is D P_eff D^-1 with D = diag(1, 1, 1, 1/c)
    (the hidden coordinate b scaled), and the episode starts at b = 0 and is scored on x
    alone: every loss, every eigenvalue and every rollout of x is the same. Gradient descent
    on the four overlaps can therefore end anywhere along this curve. Introduced in Chapter
    3, section "Stage 3".
    """
    c = _checks.real("c", c)
    if c == 0:
        raise ValueError("c must be nonzero")
    q = as_overlaps(overlaps).copy()
    q[..., 1] *= c
    q[..., 2] /= c
    return q


def _cubic_terms(overlaps):
    """(c2, c1, c0) of lambda^3 + c2 lambda^2 + c1 lambda + c0, keeping torch graphs."""
    s_zm, s_zu, s_vm, s_vu = _unbind(overlaps)
    return -(s_vu + 2), 2 * s_vu - s_zm + 1, s_vu * s_zm - s_vu - s_vm * s_zu


def labelled_roots(overlaps) -> np.ndarray:
    """The exact roots of the cubic as (lambda_1, lambda_2, lambda_3), (..., 3) complex.

    lambda_3, the RNN's eigenvalue, is a *real* root: the only one when the other two form a
    complex pair, else the real root nearest the perturbative one (``perturbative_lambda3``).
    The nearest root alone is not enough: late in stage 3 the perturbative value can lie
    nearer one of a complex pair than the real root. Of the other two (the environment's pair)
    lambda_1 is the one with Im >= 0 (for a real pair, the larger). Introduced in Chapter 2,
    section "The coupled system"; the labelling is tested in tests/test_reduced.py.
    """
    q = as_overlaps(overlaps)
    roots = cubic_roots(q)
    # a cubic with real coefficients has one or three real roots; LAPACK returns a real
    # eigenvalue of a real matrix with an imaginary part of exactly 0, and the least
    # imaginary root is real in either case
    imag = np.abs(roots.imag)
    real = imag <= imag.min(-1, keepdims=True)
    dist = np.where(real, np.abs(roots - perturbative_lambda3(q)[..., None]), np.inf)
    i3 = dist.argmin(-1)
    lam3 = np.take_along_axis(roots, i3[..., None], -1)[..., 0].real + 0j
    rest = roots[np.arange(3) != i3[..., None]].reshape(*roots.shape[:-1], 2)
    key = np.where(np.abs(rest.imag).max(-1, keepdims=True) > 0, rest.imag, rest.real)
    order = np.argsort(-key, axis=-1, kind="stable")
    pair = np.take_along_axis(rest, order, -1)
    return np.concatenate([pair, lam3[..., None]], -1)


def _unbind(overlaps):
    """The four overlaps of (..., 4) as separate arrays; torch tensors keep their graph."""
    if not torch.is_tensor(overlaps):
        overlaps = as_overlaps(overlaps)
    elif not torch.isfinite(overlaps.detach()).all():
        raise ValueError("overlaps contain NaN or inf")
    if overlaps.shape[-1:] != (4,):
        raise ValueError(f"overlaps must have shape (..., 4), got {tuple(overlaps.shape)}")
    return tuple(overlaps[..., k] for k in range(4))
