"""The unchecked cores of the coupled closed loop: they assume checked input.

``coupled`` checks every argument once at its public entry and calls these; training, the
training history and the probes call them every epoch on inputs they validated before the
first. Nothing here checks a shape, a dtype or a device, and a blow-up is a value (inf), not
an error: training's divergence stop decides what to do with it. Shapes as in ``coupled``:
P (*K, d, d), states as row vectors (..., B, d), trajectories time first (T+1, ...).
"""

from __future__ import annotations

import weakref

import torch

from . import _checks
from ._loop import closed_loop
from .agents import has_overlaps
from .linsys import lyapunov_doubling, states_by_doubling


def stacked_matrix(agent, env):
    """P for any activation: the linear map from (x_t, h_t) to (x_{t+1}, W h_t + m y_{t+1})."""
    W, m, z = agent.recurrent_matrix(), agent.tensors["m"], agent.tensors["z"]
    K = agent.batch_shape
    top = torch.cat([env.A.expand(*K, 2, 2), env.B[:, None] * z[..., None, :]], -1)
    CA, CB = env.C @ env.A, env.C @ env.B
    bottom = torch.cat([m[..., :, None] * CA, W + CB * m[..., :, None] * z[..., None, :]], -1)
    return torch.cat([top, bottom], -2)


def effective_matrix(overlaps, env):
    """``effective_matrix`` unchecked: training calls it with overlaps that may have
    overflowed, which its divergence check, not an argument error, must catch."""
    base, basis = _effective_basis(env, overlaps.dtype, overlaps.device)
    return base + torch.einsum("...k,kij->...ij", overlaps, basis)


def _effective_basis(env, dtype, device):
    """(P_0, E) with P_eff = P_0 + sum_k q_k E_k; E (4, 4, 4) for q = (s_zm, s_zu, s_vm, s_vu).

    Built once per environment, dtype and device (training asks for it every epoch); the key
    holds the version counters of A, B, C, so an in-place change to them rebuilds it."""
    key = (dtype, str(device), *(t._version for t in (env.A, env.B, env.C)))
    try:
        cache = _BASES.setdefault(env, {})
    except TypeError:  # an environment object that takes no weak reference: no cache
        return _build_effective_basis(env, dtype, device)
    if key not in cache:
        cache.clear()
        cache[key] = _build_effective_basis(env, dtype, device)
    return cache[key]


_BASES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _build_effective_basis(env, dtype, device):
    A, B, C = (t.to(dtype=dtype, device=device) for t in (env.A, env.B, env.C))
    base = torch.zeros(4, 4, dtype=dtype, device=device)
    base[:2, :2] = A
    base[2, :2] = C @ A  # a' = y' = C (A x + B u)
    basis = torch.zeros(4, 4, 4, dtype=dtype, device=device)
    ctrl_col = torch.cat([B, (C @ B)[None], B.new_zeros(1)])  # where u = s_zm a + s_zu b enters
    basis[0, :, 2] = ctrl_col
    basis[1, :, 3] = ctrl_col
    basis[2, 3, 2] = 1.0  # b' = s_vm a + s_vu b
    basis[3, 3, 3] = 1.0
    return base, basis


def linear_system(agent, env):
    if has_overlaps(agent):
        q = agent.overlaps()
        zeros = q.new_zeros(*q.shape[:-1], 2)
        return effective_matrix(q, env), torch.cat([zeros, q[..., :2]], -1)
    z = agent.tensors["z"]
    zeros = z.new_zeros(*z.shape[:-1], 2)
    return stacked_matrix(agent, env), torch.cat([zeros, z], -1)


def rollout(agent, env, x0, T):
    """``rollout`` unchecked (training's loss: a blow-up there is its divergence stop)."""
    K = agent.batch_shape
    x = x0.expand(*K, *x0.shape[-2:]) if x0.dim() == 2 else x0
    _checks.fits_memory(f"T={T} steps of {x.shape[:-1].numel()} states of 2 + N={agent.N} "
                        f"numbers", (T + 1) * x.shape[:-1].numel() * (agent.N + 2) * 2)
    s0 = torch.cat([x, x.new_zeros(*x.shape[:-1], agent.N)], -1)
    PT = stacked_matrix(agent, env).transpose(-1, -2)
    x, h, u = closed_loop(PT, s0, agent.tensors["z"], T, agent.activation == "tanh", lo=2)
    return {"x": x, "u": u, "h": h}


def episode_cost(x, u, beta, T, first):
    """``episode_cost`` with the window as its first step ``first`` (0 or 1)."""
    if torch.is_tensor(beta):
        beta = align(beta.to(x), u.dim() - 1)
    xs = x[first:x.shape[0] - 1 + first]  # T states from x_first
    if T is None:
        return (xs ** 2).mean((0, -1)) + beta * (u[:-1] ** 2).sum(0)
    t = torch.arange(0, x.shape[0] - 1, dtype=x.dtype, device=x.device)  # steps counted
    Tk = align(torch.as_tensor(T, dtype=x.dtype, device=x.device), u.dim() - 1)
    t = t.reshape(-1, *([1] * (u.dim() - 1)))
    state = ((xs ** 2).mean(-1) * (t < Tk)).sum(0) / Tk  # mean over each own horizon
    control = ((u[:-1] ** 2) * (t < Tk)).sum(0)
    return state + beta * control


def align(v: torch.Tensor, dims: int) -> torch.Tensor:
    """A per-member value (*K,) viewed against a tensor with ``dims`` axes that start with K."""
    return v.reshape(*v.shape, *([1] * (dims - v.dim())))


def start_costs(agent, env, x0, T, T_max, beta, first):
    """``start_costs`` unchecked, with T and beta as ``per_member`` returned them: training
    validates once and calls this every epoch."""
    horizon = None if isinstance(T, int) else T
    if agent.activation == "identity":
        P, u_row = linear_system(agent, env)
        s0 = torch.cat([x0, x0.new_zeros(*x0.shape[:-1], P.shape[-1] - 2)], -1)
        s = states_by_doubling(P, s0, T_max)
        x, u = s[..., :2], (s * u_row.unsqueeze(-2)).sum(-1)
    else:
        traj = rollout(agent, env, x0, T_max)
        x, u = traj["x"], traj["u"]
    cost = episode_cost(x, u, beta, horizon, first)
    return torch.where(torch.isnan(cost), torch.inf, cost)


def cost_matrix(agent, env, T, beta, first: int) -> torch.Tensor:
    """S_xx (*K, 2, 2) with episode cost x_0^T S_xx x_0, for a linear agent; T one horizon or
    one per member ((*K,) integer tensor).

    With s_t = P^t s_0 and u_t = r . s_t, the cost is s_0^T S s_0 where
    S = sum_{t=0}^{T-1} (P^t)^T M P^t and M = (P^f)^T E P^f / (2T) + beta r r^T: E picks x out
    of s, and f = ``first`` (0 or 1) shifts the state window to x_f..x_{f+T-1}. Since
    s_0 = (x_0, 0), only the 2 x 2 block S_xx is used. One S serves a whole batch:
    O(d^3 log T) instead of the O(T B d^2) of stepping every start.
    """
    P, r = linear_system(agent, env)
    Ex = P[..., :2, :] if first else torch.eye(P.shape[-1], dtype=P.dtype, device=P.device)[:2]
    if torch.is_tensor(beta):
        beta = align(beta.to(P), P.dim())
    twoT = 2.0 * (align(T.to(P), P.dim()) if torch.is_tensor(T) else T)
    M = Ex.transpose(-1, -2) @ Ex / twoT + beta * (r[..., :, None] * r[..., None, :])
    return lyapunov_doubling(P, M, T)[..., :2, :2]


def quadratic_loss(S: torch.Tensor, x0: torch.Tensor, weights=None) -> torch.Tensor:
    """sum_b w_b x0_b^T S x0_b = tr(S X^T diag(w) X): S (*K, 2, 2), x0 (..., B, 2), weights
    (B,) or None (the batch mean). Returns (*broadcast(K, ...)).

    Only the loss of a batch is formed this way, never one start's cost: the trace is
    accurate relative to the batch's loss, but a single start that avoids an unstable mode
    costs orders of magnitude less than S's scale and would be lost to rounding (those go
    through the states, ``start_costs``). A non-finite value (overflow) is +inf.
    """
    w = x0 / x0.shape[-2] if weights is None else x0 * weights[:, None]
    loss = (S * (w.transpose(-1, -2) @ x0)).sum((-1, -2))
    return torch.where(torch.isfinite(loss), loss, torch.inf)


def spectrum(agent, env):
    """``spectrum`` unchecked (training's recorder, every epoch). The stacked P of any agent
    is that of its linearization at the target, so no linearized copy is built."""
    with torch.no_grad():
        P, _ = linear_system(agent, env)
        return by_modulus(torch.linalg.eigvals(P))


def by_modulus(ev):
    idx = torch.argsort(ev.abs(), dim=-1, descending=True, stable=True)
    return torch.gather(ev, -1, idx)
