"""The agent + environment as one system (paper s.3-4), and its closed-loop episode cost.

With phi = identity the stacked state s_t = (x_t, h_t) obeys s_{t+1} = P s_t, so a rollout is a
sequence of matrix powers; for the rank-one agent (h_t in span{m, u}) the same holds for the
4-dimensional (x1, x2, a, b) under P_eff. Shapes: P (*K, d, d); states are row vectors
(..., B, d); K are ensemble axes, B initial states, T steps.

Episode cost of one start x_0 (paper s.1, target x* = 0), over T states and the T controls
u_0..u_{T-1}:

    cost = 1/(2T) sum_{t in window} ||x_t||^2  +  beta * sum_{t=0..T-1} u_t^2 ,

window t = 0..T-1 (``window='from_x0'``, the authors' code: x_0 included, x_T not; the
default) or t = 1..T (``window='after_x0'``, the states the controls produce). The 1/2 is a
mean over the two state coordinates (torch's ``mse_loss`` convention), the 1/2 of the paper's
stage-1 formula. The window is read in one place, ``conventions.first_state``; how a batch's
loss scales with T and the batch (a sum over time, a batch-summed control cost) is the
training's business (``conventions.Convention``).
"""

from __future__ import annotations


import torch

from . import _checks, kernels
from .conventions import first_state
from .agents import Agent, has_overlaps
from .linsys import (check_broadcast, linear_states, lyapunov_doubling, lyapunov_sum,  # noqa: F401
                     no_overflow, states_by_doubling)

# the linear-systems core lives in ``linsys``; ``linear_states`` and ``lyapunov_sum`` stay
# importable from here (Chapters 1-3 and their tests read them as ``coupled.``)


def coupled_matrix(agent: Agent, env) -> torch.Tensor:
    """P = [[A, B z^T], [m C A, W + m (C B) z^T]]: shape (*K, 2+N, 2+N). Linear agents only."""
    check_pair(agent, env)
    _require_linear(agent)
    return kernels.stacked_matrix(agent, env)


def effective_matrix(overlaps: torch.Tensor, env) -> torch.Tensor:
    """P_eff acting on (x1, x2, a, b), from overlaps (..., 4) = (s_zm, s_zu, s_vm, s_vu).

    For the double integrator this is the matrix of paper s.4; its eigenvalues are the nonzero
    eigenvalues of the full P. P_eff is affine in the overlaps, P_eff = P_0 + sum_k q_k E_k,
    which is how it is built (one contraction). Returns (..., 4, 4).
    """
    check_env(env)
    overlaps = _checks.real_tensor("overlaps", overlaps, env.dtype)
    if overlaps.shape[-1:] != (4,):
        raise ValueError(f"overlaps must have shape (..., 4), got {tuple(overlaps.shape)}")
    return kernels.effective_matrix(overlaps, env)


def linear_system(agent: Agent, env):
    """(P, u_row): the matrix the linear closed loop iterates and the row with u_t = u_row . s_t.

    For a RankOneAgent (or its reduced OverlapAgent) this is the 4-dim
    (P_eff, (0, 0, s_zm, s_zu)); otherwise the full (P, (0, 0, z)).
    """
    check_pair(agent, env)
    if not has_overlaps(agent):
        _require_linear(agent)
    return kernels.linear_system(agent, env)


def rollout(agent: Agent, env, x0: torch.Tensor, T: int) -> dict:
    """Step the closed loop T times (any activation), differentiably.

    x0 (B, 2) or (*K, B, 2). Returns {'x': (T+1, *K, B, 2), 'u': (T+1, *K, B),
    'h': (T+1, *K, B, N)} for t = 0..T. States beyond the dtype's range are an error.
    """
    T = _checks.integer("T", T, low=1)
    check_pair(agent, env)
    _check_x0(agent, env, x0)
    out = kernels.rollout(agent, env, x0, T)
    for v in out.values():
        no_overflow(v, f"the closed loop of this agent from these x0 over T={T} steps")
    return out


def episode_cost(x: torch.Tensor, u: torch.Tensor, beta, T=None,
                 window: str = "from_x0") -> torch.Tensor:
    """Cost per start from x (T+1, ..., 2) and u (T+1, ...) for t = 0..T: returns (...).

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
                window: str = "from_x0") -> torch.Tensor:
    """Episode cost of every start: x0 (..., B, 2) -> (*batch_shape, ..., B).

    Linear agents use matrix powers, the tanh agent the step loop; both give the same number
    for the same network. ``T`` (steps) and ``beta`` (control cost) are numbers, or sequences
    with one value per member of a 1-axis ensemble (``per_member``); ``window`` as in
    ``episode_cost``.
    """
    check_pair(agent, env)
    T, T_max = per_member("T", T, agent, integer=True, low=1)
    beta, _ = per_member("beta", beta, agent, low=0.0)
    first = first_state(window)
    _check_x0(agent, env, x0)
    return kernels.start_costs(agent, env, x0, T, T_max, beta, first)


def _check_x0(agent, env, x0):
    _checks.on_device("x0", x0, env.A.device)
    _checks.finite_tensor("x0", x0, env.dtype)
    if x0.dim() < 2 or x0.shape[-1] != 2:
        raise ValueError(f"x0 must have shape (B, 2) or (*K, B, 2), got {tuple(x0.shape)}")
    check_broadcast("the agent's batch_shape", agent.batch_shape, "x0", x0.shape[:-2])


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
                     weights: torch.Tensor | None = None, window: str = "from_x0"
                     ) -> torch.Tensor:
    """sum_b weights_b * cost(x0_b): the loss of each ensemble member, shape batch_shape.

    ``weights`` (B,) defaults to 1/B (the batch mean). For a linear agent and one horizon T
    this is tr(S_xx X^T diag(w) X) with the episode's cost matrix (``lyapunov_sum``), never
    stepping the starts; otherwise the mean of ``start_costs``. Both are the same number.
    ``window`` as in ``episode_cost``.
    """
    check_pair(agent, env)
    T, T_max = per_member("T", T, agent, integer=True, low=1)
    beta, _ = per_member("beta", beta, agent, low=0.0)
    first = first_state(window)
    _check_x0(agent, env, x0)
    if weights is not None:
        _checks.finite_tensor("weights", weights, env.dtype)
        _checks.shape("weights", weights, (x0.shape[-2],))
    if agent.activation == "identity":  # a batch loss, not its starts
        return kernels.quadratic_loss(kernels.cost_matrix(agent, env, T, beta, first), x0, weights)
    costs = kernels.start_costs(agent, env, x0, T, T_max, beta, first)
    return costs.mean(-1) if weights is None else (costs * weights).sum(-1)


def expected_loss(agent: Agent, env, T: int, beta: float = 0.0,
                  window: str = "from_x0") -> torch.Tensor:
    """E over x_0 of the episode cost, in closed form (linear agents only; ``window`` as in
    ``episode_cost``).

    The cost is quadratic in s_0 = (x_0, 0) and s_t = P^t s_0, so its expectation depends on
    x_0 only through E[x_0 x_0^T] = F^T F: it equals the cost summed over the rows of F.
    """
    check_pair(agent, env)
    _require_linear(agent)
    F = env.x0_factor()
    return closed_loop_loss(agent, env, F, T, beta, weights=F.new_ones(F.shape[0]),
                            window=window)


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

    RankOneAgent: the 4 eigenvalues of P_eff (= the nonzero eigenvalues of P, plus one zero;
    P's other N-2 eigenvalues are exactly 0). Other linear agents: all 2+N of P. Nonlinear
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
    """TypeError unless ``env`` looks like an environment (DoubleIntegrator)."""
    if not all(hasattr(env, k) for k in ("A", "B", "C", "dtype", "sample_x0", "x0_factor")):
        raise TypeError(f"env must be an environment like DoubleIntegrator, got "
                        f"{_checks.short(env)}")


def _require_linear(agent):
    if agent.activation != "identity":
        raise ValueError(f"this needs a linear agent (activation='identity'), got "
                         f"activation={agent.activation!r}")


def effective_rollout(overlaps, env, x0: torch.Tensor, T: int) -> dict:
    """The rank-one closed loop from its overlaps alone: x (T+1, ..., B, 2), u (T+1, ..., B).

    ``overlaps`` (..., 4) as recorded in a training history, so any epoch's behaviour can be
    replayed without keeping the network. Introduced in Chapter 2, section "Stage 1".
    """
    T = _checks.integer("T", T, low=1)
    check_env(env)
    q = _checks.real_tensor("overlaps", overlaps, env.dtype)
    P = effective_matrix(q, env)
    _checks.finite_tensor("x0", x0, env.dtype)
    _checks.shape("x0", x0, tuple(x0.shape[:-2]) + (None, 2))
    check_broadcast("overlaps", q.shape[:-1], "x0", x0.shape[:-2])
    s0 = torch.cat([x0, x0.new_zeros(*x0.shape[:-1], 2)], -1)
    with torch.no_grad():
        s = states_by_doubling(P, s0, T)
        u = s[..., 2] * q[..., None, 0] + s[..., 3] * q[..., None, 1]
    what = f"the rollout of these overlaps from these x0 over T={T} steps"
    return {"x": no_overflow(s[..., :2], what), "u": no_overflow(u, what)}
