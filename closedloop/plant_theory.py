"""The closed-loop theory of paper s.3-5 for any ``plants.LinearPlant`` (issue 28).

A linear RNN controller, h_{t+1} = W h_t + m y_{t+1}, u_t = z . h_t, on the plant
x_{t+1} = A x_t + B u_t + w_t, y_t = C x_t (n states, N neurons). Since
y_{t+1} = C (A x_t + B u_t + w_t), the stacked state s_t = (x_t, h_t) obeys

    s_{t+1} = P s_t + G w_t,   P = [[A,       B z^T          ],    G = [[I_n],
                                    [m (C A), W + (C B) m z^T]],         [m C]],

the paper's P with C B = 0 dropped (nonzero for e.g. ``integrator(1)``, ``unstable``).
For W = u v^T, h_t stays in span{m, u} (h_0 = 0); with h = a m + b u, u_t = s_zm a + s_zu b,
b' = v . h = s_vm a + s_vu b and a' = y' = C x'. So (x, a, b) evolves under the (n + 2)-square

    P_eff = [[A,    s_zm B,    s_zu B   ],     G_eff = [[I_n],
             [C A,  s_zm C B,  s_zu C B ],              [C  ],
             [0,    s_vm,      s_vu     ]],             [0  ]],

which needs only the paper's four overlaps (s_zm, s_zu, s_vm, s_vu), for any C B and C A:
m enters only as the direction the observation writes to. Row a of P_eff is C times rows x
(a = y is observed, not free), so P_eff has a structural eigenvalue 0 and

    det(lambda I - P_eff) = lambda q(lambda),
    q(lambda) = a(lambda) (lambda - s_vu) - b(lambda) [s_zm (lambda - s_vu) + s_vm s_zu],

with a = det(lambda I - A) and b = C adj(lambda I - A) B (``LinearPlant.transfer_polynomials``):
the closed loop of the plant b/a with the controller s_zm + s_vm s_zu / (lambda - s_vu).
For the double integrator a = (lambda - 1)^2, b = 1: the paper's cubic.

Overlaps are arrays (..., 4) ordered (s_zm, s_zu, s_vm, s_vu), as ``RankOneAgent.overlaps``.
The episode cost is ``coupled``'s with the state term averaged over the n coordinates:
1/(n T) sum_{t in window} ||x_t||^2 + beta sum_{t<T} u_t^2.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _checks, kernels
from .agents import Agent, OverlapAgent, has_overlaps
from .conventions import first_state
from .linsys import lyapunov_doubling
from .plants import LinearPlant


# the matrices -------------------------------------------------------------------------------
def coupled_matrix(agent: Agent, plant: LinearPlant) -> torch.Tensor:
    """P (*K, n + N, n + N) of a linear agent with a recurrent matrix (not an OverlapAgent)."""
    _check_pair(agent, plant)
    if isinstance(agent, OverlapAgent):
        raise TypeError("agent must have a recurrent matrix W (RNNAgent, RankOneAgent); an "
                        "OverlapAgent has only P_eff (effective_matrix)")
    return _stacked(agent, plant)


def noise_matrix(agent: Agent, plant: LinearPlant) -> torch.Tensor:
    """G (*K, n + N, n): how w_t enters s_{t+1} (x directly, h through m C w_t)."""
    _check_pair(agent, plant)
    return _noise_full(agent.tensors["m"], plant)


def effective_matrix(overlaps, plant: LinearPlant) -> torch.Tensor:
    """P_eff (..., n + 2, n + 2) on (x, a, b) from overlaps (..., 4); affine in them, and
    differentiable for a torch input."""
    _checks.instance("plant", plant, LinearPlant)
    q = _checks.real_tensor("overlaps", overlaps, plant.dtype)
    if q.dim() < 1 or q.shape[-1] != 4:
        raise ValueError(f"overlaps must have shape (..., 4), got {tuple(q.shape)}")
    return _effective(q.to(plant.device), plant)


def effective_noise_matrix(plant: LinearPlant) -> torch.Tensor:
    """G_eff (n + 2, n) = [[I_n], [C], [0]]: w_t moves x and, through y, a."""
    _checks.instance("plant", plant, LinearPlant)
    n = plant.n_state
    eye = torch.eye(n, dtype=plant.dtype, device=plant.device)
    return torch.cat([eye, plant.C[None], plant.C.new_zeros(1, n)], 0)


def _stacked(agent, plant):
    n, K = plant.n_state, agent.batch_shape
    W, m, z = agent.recurrent_matrix(), agent.tensors["m"], agent.tensors["z"]
    A, B, C = plant.A, plant.B, plant.C
    top = torch.cat([A.expand(*K, n, n), B[:, None] * z[..., None, :]], -1)
    CA, CB = C @ A, C @ B
    bottom = torch.cat([m[..., :, None] * CA, W + CB * m[..., :, None] * z[..., None, :]], -1)
    return torch.cat([top, bottom], -2)


def _noise_full(m, plant):
    n = plant.n_state
    eye = torch.eye(n, dtype=plant.dtype, device=plant.device).expand(*m.shape[:-1], n, n)
    return torch.cat([eye, m[..., :, None] * plant.C], -2)


def _effective(q, plant):
    n = plant.n_state
    A, B, C = plant.A, plant.B, plant.C
    base = torch.zeros(n + 2, n + 2, dtype=A.dtype, device=A.device)
    base[:n, :n] = A
    base[n, :n] = C @ A  # a' = y' = C (A x + B u)
    basis = torch.zeros(4, n + 2, n + 2, dtype=A.dtype, device=A.device)
    ctrl_col = torch.cat([B, (C @ B)[None], B.new_zeros(1)])  # where u = s_zm a + s_zu b enters
    basis[0, :, n] = ctrl_col
    basis[1, :, n + 1] = ctrl_col
    basis[2, n + 1, n] = 1.0  # b' = s_vm a + s_vu b
    basis[3, n + 1, n + 1] = 1.0
    return base + torch.einsum("...k,kij->...ij", q, basis)


# the characteristic polynomial and the stages -----------------------------------------------
def characteristic_polynomial(overlaps, plant: LinearPlant) -> np.ndarray:
    """Coefficients of q(lambda), highest power first, (..., n + 2), monic, with
    det(lambda I - P_eff) = lambda q(lambda) (module docstring)."""
    a, b = _plant_polys(plant)
    s_zm, s_zu, s_vm, s_vu = _unbind(overlaps)
    k = (s_vm * s_zu)[..., None]
    a_l = _times_linear(a, s_vu)                                  # a (lambda - s_vu)
    b_l = _times_linear(b, s_vu)                                  # b (lambda - s_vu)
    b_pad = np.concatenate([np.zeros(1), b])                      # b, degree n + 1 slots
    return a_l - s_zm[..., None] * b_l - k * b_pad


def q_basis(plant: LinearPlant) -> np.ndarray:
    """(a lambda, a, b lambda, b) as coefficient rows (4, n + 2), highest power first, so that
    q = row 0 - s_vu row 1 - s_zm row 2 + (s_zm s_vu - s_vm s_zu) row 3: the four polynomials
    every q (every rank-one network, every first-order controller) combines."""
    a, b = _plant_polys(plant)
    lam = lambda c: np.concatenate([c, [0.0]])  # noqa: E731 - c(lambda) * lambda
    pad = lambda c: np.concatenate([[0.0], c])  # noqa: E731 - c(lambda), n + 2 slots
    return np.stack([lam(a), pad(a), lam(b), pad(b)])


def roots(overlaps, plant: LinearPlant) -> np.ndarray:
    """The n + 1 roots of q (the nonzero eigenvalues of P_eff and of the full P, unless one
    is exactly 0), (..., n + 1) complex, as eigenvalues of q's companion matrix."""
    return _companion_roots(characteristic_polynomial(overlaps, plant))


def stage1_eigenvalues(s_zm, plant: LinearPlant) -> np.ndarray:
    """The plant's n eigenvalues when u, v are negligible, (..., n) complex: W = 0 makes
    h_t = m y_t and u_t = s_zm C x_t, static output feedback, so they are eig(A + s_zm B C)
    (the roots of a - s_zm b; the RNN's root is s_vu = 0). For the double integrator
    1 +/- sqrt(s_zm), paper s.5."""
    _checks.instance("plant", plant, LinearPlant)
    s = _checks.real_tensor("s_zm", s_zm).numpy()
    A, B, C = plant.numpy()
    return np.linalg.eigvals(A + s[..., None, None] * np.outer(B, C))


def perturbative_rnn_eigenvalue(overlaps, plant: LinearPlant) -> np.ndarray:
    """The RNN's eigenvalue to first order in eps = s_vm s_zu, (..., 4) -> (...):

        lambda_RNN ~ s_vu + eps b(s_vu) / p(s_vu),    p = a - s_zm b,

    from q = (lambda - s_vu) p(lambda) - eps b(lambda): exact at eps = 0, then one implicit
    step with q'(s_vu) = p(s_vu). For the double integrator (b = 1) the paper's
    s_vu + s_vm s_zu / (s_vu^2 - 2 s_vu - s_zm + 1). Needs p(s_vu) != 0 (s_vu not a stage-1
    eigenvalue), else the expansion is not analytic in eps (infinite here).
    """
    a, b = _plant_polys(plant)
    s_zm, s_zu, s_vm, s_vu = _unbind(overlaps)
    bv = _polyval(b, s_vu)
    with np.errstate(divide="ignore", invalid="ignore"):
        return s_vu + s_vm * s_zu * bv / (_polyval(a, s_vu) - s_zm * bv)


def perturbative_plant_eigenvalues(overlaps, plant: LinearPlant) -> np.ndarray:
    """The plant's n closed-loop eigenvalues to first order in eps = s_vm s_zu, (..., n)
    complex: mu + eps b(mu) / ((mu - s_vu) p'(mu)) for each stage-1 eigenvalue mu (a simple
    root of p = a - s_zm b, ``stage1_eigenvalues``), in that order."""
    a, b = _plant_polys(plant)
    s_zm, s_zu, s_vm, s_vu = _unbind(overlaps)
    mu = stage1_eigenvalues(s_zm, plant)
    p = a - s_zm[..., None] * b
    n = plant.n_state
    dp = p[..., :-1] * np.arange(n, 0, -1)  # p' (p has n + 1 coefficients, degree n)
    eps = (s_vm * s_zu)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return mu + eps * _polyval(b, mu) / ((mu - s_vu[..., None]) * _polyval(dp, mu))


def _plant_polys(plant):
    _checks.instance("plant", plant, LinearPlant)
    return plant.transfer_polynomials()


def _times_linear(c, r):
    """Coefficients of c(lambda) (lambda - r): c (k,), r (...) -> (..., k + 1)."""
    r = np.asarray(r)[..., None]
    return np.concatenate([c, [0.0]]) - r * np.concatenate([[0.0], c])


def _polyval(c, x):
    """c (..., k) highest first at x (...) (broadcast), by Horner."""
    c = np.asarray(c)
    out = np.zeros(np.broadcast_shapes(c.shape[:-1], np.shape(x)), dtype=np.result_type(c, x))
    for k in range(c.shape[-1]):
        out = out * x + c[..., k]
    return out


def _companion_roots(c):
    d = c.shape[-1] - 1
    comp = np.zeros(c.shape[:-1] + (d, d))
    comp[..., 0, :] = -c[..., 1:] / c[..., :1]
    comp[..., np.arange(1, d), np.arange(d - 1)] = 1.0
    return np.linalg.eigvals(comp)


def _unbind(overlaps):
    q = _checks.real_tensor("overlaps", overlaps).detach().cpu().numpy()
    if q.ndim < 1 or q.shape[-1] != 4:
        raise ValueError(f"overlaps must have shape (..., 4), got {q.shape}")
    return tuple(q[..., k] for k in range(4))


# the expected episode loss ------------------------------------------------------------------
def linear_system(agent: Agent, plant: LinearPlant):
    """(P, u_row, G): the matrix the closed loop iterates, the row with u_t = u_row . s_t and
    the noise input matrix. Rank-one agents (RankOneAgent, OverlapAgent): the (n + 2)-square
    P_eff of their overlaps; other linear agents: the full P."""
    _check_pair(agent, plant)
    n = plant.n_state
    if has_overlaps(agent):
        q = agent.overlaps()
        zeros = q.new_zeros(*q.shape[:-1], n)
        G = effective_noise_matrix(plant).expand(*q.shape[:-1], n + 2, n)
        return _effective(q, plant), torch.cat([zeros, q[..., :2]], -1), G
    z = agent.tensors["z"]
    zeros = z.new_zeros(*z.shape[:-1], n)
    return _stacked(agent, plant), torch.cat([zeros, z], -1), _noise_full(agent.tensors["m"],
                                                                          plant)


def expected_loss(agent: Agent, plant: LinearPlant, T: int, beta: float = 0.0,
                  window: str = "from_x0") -> torch.Tensor:
    """E over x_0 ~ plant.x0 and the noise of the episode cost, exactly: (*batch_shape,).

    Cost of one episode: 1/(n T) sum_{t in window} ||x_t||^2 + beta sum_{t<T} u_t^2, window
    t = 0..T-1 ('from_x0') or 1..T ('after_x0'). With s_t = P^t s_0 + sum_{j<t} P^{t-1-j} G
    w_j, the x_0 part is tr(S_xx F^T F) with S = sum_{t<T} (P^t)^T M P^t (``coupled``'s cost
    matrix) and the noise part ``noise_loss``. Differentiable in the agent's tensors. The
    same number as ``coupled.expected_loss`` (what training records), computed here on its
    own from this module's P, P_eff and G.
    """
    T = _checks.integer("T", T, low=1)
    beta = _checks.real("beta", beta, low=0.0)
    first = first_state(window)
    P, r, _ = linear_system(agent, plant)
    F = plant.x0_factor()
    S = lyapunov_doubling(P, _step_cost(P, r, plant.n_state, T, beta, first), T)
    n = plant.n_state
    det = kernels.quadratic_loss(S[..., :n, :n], F, F.new_ones(F.shape[0]))
    return det + noise_loss(agent, plant, T, beta, window) if plant.noise else det


def noise_loss(agent: Agent, plant: LinearPlant, T: int, beta: float = 0.0,
               window: str = "from_x0") -> torch.Tensor:
    """The process noise's exact share of the expected episode loss, (*batch_shape,):

        sigma^2 [ sum_{t=1}^{T-1} tr(G^T S_t G) + f tr(G^T E_x^T E_x G) / n ],
        S_t = sum_{j<t} (P^j)^T M P^j  (S_{t+1} = M + P^T S_t P),

    the covariance sigma^2 sum_{j<t} P^j G G^T (P^j)^T that the noise adds to s_t, summed
    against the step cost M over the episode; f = 1 for 'after_x0' adds the noise of the last
    step into x_T (E_x G = I_n: exactly sigma^2). Zero for a noise-free plant.
    """
    T = _checks.integer("T", T, low=1)
    beta = _checks.real("beta", beta, low=0.0)
    first = first_state(window)
    P, r, G = linear_system(agent, plant)
    n = plant.n_state
    M = _step_cost(P, r, n, T, beta, first)
    S, acc = M, torch.zeros_like(M)
    for _ in range(T - 1):
        acc = acc + S
        S = M + P.transpose(-1, -2) @ S @ P
    total = (G * (acc @ G)).sum((-1, -2))
    if first:
        total = total + (G[..., :n, :] ** 2).sum((-1, -2)) / n
    return plant.noise ** 2 * total


def _step_cost(P, r, n, T, beta, first):
    """M (*K, d, d) with step cost s_t^T M s_t (state x_{t + first} and control u_t)."""
    Ex = P[..., :n, :] if first else torch.eye(P.shape[-1], dtype=P.dtype,
                                                    device=P.device)[:n]
    return Ex.transpose(-1, -2) @ Ex / (float(n) * T) + beta * (r[..., :, None] * r[..., None, :])


def _check_pair(agent, plant):
    _checks.instance("plant", plant, LinearPlant)
    _checks.instance("agent", agent, Agent)
    if agent.activation != "identity":
        raise ValueError(f"agent must be linear (activation='identity'), got "
                         f"activation={agent.activation!r}")
    if agent.dtype != plant.dtype:
        raise TypeError(f"the dtype of agent, {agent.dtype}, and plant.dtype {plant.dtype} "
                        f"must agree")
    if agent.device != plant.device:
        raise ValueError(f"agent is on {agent.device} and plant on {plant.device}: build both "
                         f"with the same device=")

