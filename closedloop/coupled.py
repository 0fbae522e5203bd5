"""The agent + environment as one system (paper s.3-4), and its closed-loop episode cost.

With phi = identity the stacked state s_t = (x_t, h_t) obeys s_{t+1} = P s_t, so a rollout is a
sequence of matrix powers; for the rank-one agent (h_t in span{m, u}) the same holds for the
(n + 2)-dimensional (x, a, b) under P_eff. Shapes: P (*K, d, d); states are row vectors
(..., B, d); K are ensemble axes, B initial states, T steps, n the plant's states (2 for the
double integrator, any n for a ``plants.LinearPlant``).

Episode cost of one start x_0 (paper s.1, target x* = 0), over T states and the T controls
u_0..u_{T-1}:

    cost = 1/(n T) sum_{t in window} ||x_t||^2  +  beta * sum_{t=0..T-1} u_t^2 ,

window t = 0..T-1 (``window='from_x0'``, the authors' code: x_0 included, x_T not; the
default) or t = 1..T (``window='after_x0'``, the states the controls produce). The 1/n is a
mean over the n state coordinates (torch's ``mse_loss`` convention, the authors' loss): for
the double integrator the 1/2 of the paper's stage-1 formula, and for any plant the cost of
``plant_theory.expected_loss``. (So a plant's cost depends on how many coordinates its state
has: a triple integrator's position weighs 1/3 of the state term, the double integrator's
1/2.) The window is read in one place, ``conventions.first_state``; how a batch's loss scales
with T and the batch (a sum over time, a batch-summed control cost) is the training's business
(``conventions.Convention``).

Process noise (a ``LinearPlant`` with ``noise`` sigma > 0: x_{t+1} = A x_t + B u_t + w_t,
w_t ~ N(0, sigma^2 I_n)): ``expected_loss`` is exact over x_0 *and* the noise; a rollout or a
sampled loss takes the draws ``w`` (T, ..., B, n) (e.g. ``plant.sample_noise``) and refuses a
noisy plant without them (a ValueError naming ``noise``): noise is never dropped silently.
"""

from __future__ import annotations

import math

import torch

from . import _checks, kernels
from ._loop import closed_loop
from .conventions import first_state
from .agents import Agent, has_overlaps
from .linsys import (check_broadcast, linear_states, lyapunov_doubling, lyapunov_sum,  # noqa: F401
                     no_overflow, states_by_doubling)

# the linear-systems core lives in ``linsys``; ``linear_states`` and ``lyapunov_sum`` stay
# importable from here (Chapters 1-3 and their tests read them as ``coupled.``)


def coupled_matrix(agent: Agent, env) -> torch.Tensor:
    """P = [[A, B z^T], [m C A, W + m (C B) z^T]]: shape (*K, n+N, n+N). Linear agents only."""
    check_pair(agent, env)
    _require_linear(agent)
    return kernels.stacked_matrix(agent, env)


def effective_matrix(overlaps: torch.Tensor, env) -> torch.Tensor:
    """P_eff acting on (x, a, b), from overlaps (..., 4) = (s_zm, s_zu, s_vm, s_vu).

    For the double integrator this is the matrix of paper s.4 (for any plant,
    ``plant_theory``'s); its eigenvalues are the nonzero eigenvalues of the full P. P_eff is
    affine in the overlaps, P_eff = P_0 + sum_k q_k E_k, which is how it is built (one
    contraction). Returns (..., n + 2, n + 2).
    """
    check_env(env)
    overlaps = _checks.real_tensor("overlaps", overlaps, env.dtype)
    if overlaps.shape[-1:] != (4,):
        raise ValueError(f"overlaps must have shape (..., 4), got {tuple(overlaps.shape)}")
    return kernels.effective_matrix(overlaps, env)


def linear_system(agent: Agent, env):
    """(P, u_row): the matrix the linear closed loop iterates and the row with u_t = u_row . s_t.

    For a RankOneAgent (or its reduced OverlapAgent) this is the (n + 2)-dim
    (P_eff, (0, ..., 0, s_zm, s_zu)); otherwise the full (P, (0, ..., 0, z)).
    """
    check_pair(agent, env)
    if not has_overlaps(agent):
        _require_linear(agent)
    return kernels.linear_system(agent, env)


def rollout(agent: Agent, env, x0: torch.Tensor, T: int, w=None) -> dict:
    """Step the closed loop T times (any activation), differentiably.

    x0 (B, n) or (*K, B, n). ``w``: the process noise w_0..w_{T-1}, (T, B, n) or
    (T, *K, B, n); required for a plant with noise > 0 (None: a noise-free plant). Returns
    {'x': (T+1, *K, B, n), 'u': (T+1, *K, B), 'h': (T+1, *K, B, N)} for t = 0..T. States
    beyond the dtype's range are an error.
    """
    T = _checks.integer("T", T, low=1)
    check_pair(agent, env)
    _check_x0(agent, env, x0)
    w = check_noise(env, w, T, x0, "rollout")
    out = kernels.rollout(agent, env, x0, T, w)
    for v in out.values():
        no_overflow(v, f"the closed loop of this agent from these x0 over T={T} steps")
    return out


def episode_cost(x: torch.Tensor, u: torch.Tensor, beta, T=None,
                 window: str = "from_x0") -> torch.Tensor:
    """Cost per start from x (T+1, ..., n) and u (T+1, ...) for t = 0..T: returns (...).

    ``T`` and ``beta`` are numbers or per-member tensors (*K,) that align with the leading
    axes of ``...`` (an ensemble whose members differ in horizon or control cost). A member
    with horizon T_k below the rollout's counts only its first T_k steps. ``window``:
    'from_x0' counts x_0..x_{T-1}, 'after_x0' x_1..x_T (``conventions.first_state``).

    A sum of squares: where the states overflowed their dtype (an unstable loop over many steps)
    it is inf, never NaN (which inf - inf in the states would otherwise carry into it).
    """
    cost = kernels.episode_cost(x, u, beta, T, first_state(window))
    return torch.where(torch.isnan(cost), torch.inf, cost)


def start_costs(agent: Agent, env, x0: torch.Tensor, T, beta=0.0,
                window: str = "from_x0", w=None) -> torch.Tensor:
    """Episode cost of every start: x0 (..., B, n) -> (*batch_shape, ..., B).

    Linear agents use matrix powers, the tanh agent the step loop; both give the same number
    for the same network. ``T`` (steps) and ``beta`` (control cost) are numbers, or sequences
    with one value per member of a 1-axis ensemble (``per_member``); ``window`` as in
    ``episode_cost``; ``w`` the process noise as in ``rollout``, over the longest T (a
    member with a shorter horizon uses its first steps).
    """
    T, T_max, beta, first, w = _checked(agent, env, x0, T, beta, window, w, "start_costs")
    return kernels.start_costs(agent, env, x0, T, T_max, beta, first, w)


def _checked(agent, env, x0, T, beta, window, w, caller):
    """The arguments of ``start_costs`` and ``closed_loop_loss`` checked: (T, T_max, beta,
    first, w), T and beta as ``per_member`` returns them and ``first`` the window's first
    state."""
    check_pair(agent, env)
    T, T_max = per_member("T", T, agent, integer=True, low=1)
    beta, _ = per_member("beta", beta, agent, low=0.0)
    first = first_state(window)
    _check_x0(agent, env, x0)
    return T, T_max, beta, first, check_noise(env, w, T_max, x0, caller)


def _check_x0(agent, env, x0):
    n = kernels.state_size(env)
    _checks.on_device("x0", x0, env.A.device)
    _checks.finite_tensor("x0", x0, env.dtype)
    if x0.dim() < 2 or x0.shape[-1] != n:
        raise ValueError(f"x0 must have shape (B, {n}) or (*K, B, {n}) (n = {n} states), got "
                         f"{tuple(x0.shape)}")
    check_broadcast("the agent's batch_shape", agent.batch_shape, "x0", x0.shape[:-2])


# sigma of a plant's process noise: the kernels' reading, under the name callers know
noise_level = kernels.noise_level


def check_noise(env, w, T: int, x0, what: str):
    """``w`` checked against a rollout of T steps from x0 (..., B, n): None for a noise-free
    plant without draws; else finite, on the plant's device, of shape (T, ..., B, n) with the
    leading axes of x0 (or none: one draw for every member). A noisy plant without ``w`` is a
    ValueError naming ``noise``: ``what`` cannot run it without the draws."""
    if w is None:
        if noise_level(env) > 0:
            raise ValueError(f"{what}: the plant has process noise (noise={noise_level(env)}); "
                             f"pass its draws w (T, B, n), e.g. plant.sample_noise(T, B, "
                             f"generator), or use a noise-free plant (plant.with_noise(0.0))")
        return None
    n = kernels.state_size(env)
    _checks.on_device("w", w, env.A.device)
    _checks.finite_tensor("w", w, env.dtype)
    if tuple(w.shape) not in ((T, *x0.shape), (T, *x0.shape[-2:])):
        raise ValueError(f"w must have shape (T, ..., B, n) = {(T, *x0.shape)} (T = {T} steps, "
                         f"as x0 with n = {n}), got {tuple(w.shape)}")
    return w


def per_member(name: str, value, agent: Agent, *, integer: bool = False, low=None):
    """A number, or one value per ensemble member: returns (value, largest value).

    A number comes back as a Python int/float; a list, array or tensor must have shape
    ``agent.batch_shape`` and comes back as a tensor on the agent's device, int64 or in the
    agent's dtype, ready for the math of any member. Introduced in Chapter 3, where networks
    that differ only in T or beta train as one ensemble.
    """
    kind = _checks.integer if integer else _checks.real
    items = _checks.members(name, value, agent.batch_shape, lambda n, v: kind(n, v, low=low))
    if not isinstance(items, list):
        return items, items
    dtype = torch.int64 if integer else agent.dtype
    return (torch.tensor(items, dtype=dtype, device=agent.device).reshape(agent.batch_shape),
            max(items))


def closed_loop_loss(agent: Agent, env, x0: torch.Tensor, T: int, beta: float = 0.0,
                     weights: torch.Tensor | None = None, window: str = "from_x0", w=None
                     ) -> torch.Tensor:
    """sum_b weights_b * cost(x0_b): the loss of each ensemble member, shape batch_shape.

    ``weights`` (B,) defaults to 1/B (the batch mean). For a linear agent and one horizon T
    this is tr(S_xx X^T diag(w) X) with the episode's cost matrix (``lyapunov_sum``), never
    stepping the starts; otherwise the mean of ``start_costs``. Both are the same number.
    ``window`` as in ``episode_cost``; ``w`` the process noise as in ``rollout`` (required
    for a noisy plant: the loss of these starts under these draws, through the step loop).
    """
    T, T_max, beta, first, w = _checked(agent, env, x0, T, beta, window, w,
                                        "closed_loop_loss")
    if weights is not None:
        _checks.finite_tensor("weights", weights, env.dtype)
        _checks.shape("weights", weights, (x0.shape[-2],))
    if agent.activation == "identity" and w is None:  # a batch loss, not its starts
        return kernels.quadratic_loss(kernels.cost_matrix(agent, env, T, beta, first), x0, weights)
    costs = kernels.start_costs(agent, env, x0, T, T_max, beta, first, w)
    return costs.mean(-1) if weights is None else (costs * weights).sum(-1)


def expected_loss(agent: Agent, env, T, beta=0.0, window: str = "from_x0") -> torch.Tensor:
    """E over x_0 and the process noise of the episode cost, in closed form: (*batch_shape,).
    Linear agents only; ``window`` as in ``episode_cost``; ``T``, ``beta`` as in
    ``start_costs``.

    The cost is quadratic in s_0 = (x_0, 0) and s_t = P^t s_0, so its expectation depends on
    x_0 only through E[x_0 x_0^T] = F^T F: it equals the cost summed over the rows of F. A
    noisy plant adds the noise's share, independent of x_0 (``kernels.noise_cost``; the same
    number as ``plant_theory.noise_loss``).
    """
    check_pair(agent, env)
    _require_linear(agent)
    T, T_max = per_member("T", T, agent, integer=True, low=1)
    beta, _ = per_member("beta", beta, agent, low=0.0)
    first = first_state(window)
    F = env.x0_factor()
    S = kernels.cost_matrix(agent, env, T, beta, first)
    loss = kernels.quadratic_loss(S, F, F.new_ones(F.shape[0]))
    if noise_level(env) > 0:
        loss = loss + kernels.noise_cost(agent, env, T, T_max, beta, first)
    return loss


def linearized(agent: Agent) -> Agent:
    """The agent linearized at its fixed point h = 0: same tensors, activation 'identity'.

    Since tanh(0) = 0 and tanh'(0) = 1, the coupled system of a tanh network linearized at
    (x, h) = (0, 0) is the P of this linear agent: it decides whether the target is locally
    stable. ``spectrum`` gives the eigenvalues of this P for any agent without building it.
    """
    _check_agent(agent)
    if agent.activation == "identity":
        return agent
    return type(agent)._from(agent.tensors, agent.trainable, "identity")


def spectrum(agent: Agent, env) -> torch.Tensor:
    """Eigenvalues of the coupled system, sorted by decreasing modulus.

    RankOneAgent: the n + 2 eigenvalues of P_eff (= the nonzero eigenvalues of P, plus one
    zero; P's other N-2 eigenvalues are exactly 0). Other linear agents: all n+N of P. Nonlinear
    agents: P of their linearization at the target (``linearized``).
    """
    check_pair(agent, env)
    return kernels.spectrum(agent, env)


def recurrent_spectrum(agent: Agent) -> torch.Tensor:
    """Eigenvalues of W, (*K, N), sorted by decreasing modulus (for rank one: v.u and zeros)."""
    _check_agent(agent)
    with torch.no_grad():
        if has_overlaps(agent):
            s_vu = agent.overlaps()[..., 3]
            ev = torch.zeros(*s_vu.shape, agent.N, dtype=torch.complex128,
                             device=s_vu.device)  # W = u v^T
            ev[..., 0] = s_vu
            return ev
        return kernels.by_modulus(torch.linalg.eigvals(agent.recurrent_matrix()))


def check_pair(agent: Agent, env, name: str = "agent") -> None:
    """TypeError unless ``agent`` (called ``name`` in messages) is an Agent and ``env`` an
    environment of the same dtype; ValueError if they are on different devices."""
    _check_agent(agent, name)
    check_env(env)
    if agent.dtype != env.dtype:
        raise TypeError(f"the dtype of {name}, {agent.dtype}, and env.dtype {env.dtype} must "
                        f"agree")
    if agent.device != env.A.device:
        raise ValueError(f"{name} is on {agent.device} and env on {env.A.device}: build "
                         f"both with the same device=")


def _check_agent(agent, name="agent"):
    if not isinstance(agent, Agent):
        raise TypeError(f"{name} must be an Agent (RNNAgent, RankOneAgent), got "
                        f"{_checks.short(agent)}")


def check_env(env) -> None:
    """TypeError unless ``env`` looks like an environment (DoubleIntegrator, LinearPlant);
    ValueError naming the matrix if A (n, n), B (n,), C (n,) have other shapes or non-finite
    entries, or if the noise is not a finite number >= 0. C must be a single row: every agent
    reads one number y_t = C x_t per step (its input weights m have shape (N,))."""
    if not all(hasattr(env, k) for k in ("A", "B", "C", "dtype", "sample_x0", "x0_factor")):
        raise TypeError(f"env must be an environment like DoubleIntegrator or "
                        f"plants.LinearPlant, got {_checks.short(env)}")
    A = env.A
    if not torch.is_tensor(A) or A.dim() != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"env.A must be a square matrix (n, n), got {_checks.short(A)}")
    n = A.shape[0]
    for name, M in (("A", A), ("B", env.B), ("C", env.C)):
        if not torch.is_tensor(M) or M.dtype != env.dtype:
            raise TypeError(f"env.{name} must be a tensor of env.dtype {env.dtype}, got "
                            f"{_checks.short(M)}")
        if name != "A" and tuple(M.shape) != (n,):
            more = (" (one observed output: the agent reads one number y = C x per step)"
                    if name == "C" else " (one control input)")
            raise ValueError(f"env.{name} must have shape ({n},){more}, got "
                             f"{tuple(M.shape)}")
        # a meta tensor has no values to check (its device mismatch is named by check_pair)
        if M.device.type != "meta" and not torch.isfinite(M).all():
            raise ValueError(f"env.{name} has non-finite entries")
    sigma = getattr(env, "noise", 0.0)
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"env.noise must be a finite number >= 0, got {_checks.short(sigma)}")


def _require_linear(agent):
    if agent.activation != "identity":
        raise ValueError(f"this needs a linear agent (activation='identity'), got "
                         f"activation={agent.activation!r}")


def effective_rollout(overlaps, env, x0: torch.Tensor, T: int, w=None) -> dict:
    """The rank-one closed loop from its overlaps alone: x (T+1, ..., B, n), u (T+1, ..., B).

    ``overlaps`` (..., 4) as recorded in a training history, so any epoch's behaviour can be
    replayed without keeping the network. ``w``: the process noise as in ``rollout``
    (required for a noisy plant). Introduced in Chapter 2, section "Stage 1".
    """
    T = _checks.integer("T", T, low=1)
    check_env(env)
    n = kernels.state_size(env)
    q = _checks.real_tensor("overlaps", overlaps, env.dtype)
    P = effective_matrix(q, env)
    _checks.finite_tensor("x0", x0, env.dtype)
    _checks.shape("x0", x0, tuple(x0.shape[:-2]) + (None, n))
    check_broadcast("overlaps", q.shape[:-1], "x0", x0.shape[:-2])
    w = check_noise(env, w, T, x0, "effective_rollout")
    s0 = torch.cat([x0, x0.new_zeros(*x0.shape[:-1], 2)], -1)
    with torch.no_grad():
        if w is None:
            s = states_by_doubling(P, s0, T)
        else:  # the step loop takes the noise as an input; G_eff = [[I_n], [C], [0]]
            G = torch.cat([torch.eye(n, dtype=P.dtype, device=P.device), env.C[None],
                           env.C.new_zeros(1, n)])
            K = _checks.broadcast_shapes(P.shape[:-2], s0.shape[:-2])
            x, h, _ = closed_loop(P.transpose(-1, -2), s0.expand(*K, *s0.shape[-2:]),
                                  q[..., :2], T, False, lo=n, inputs=w @ G.T)
            s = torch.cat([x, h], -1)
        u = s[..., n] * q[..., None, 0] + s[..., n + 1] * q[..., None, 1]
    what = f"the rollout of these overlaps from these x0 over T={T} steps"
    return {"x": no_overflow(s[..., :n], what), "u": no_overflow(u, what)}
