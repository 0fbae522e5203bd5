"""The unchecked cores of the coupled closed loop: they assume checked input.

``coupled`` checks every argument once at its public entry and calls these; training, the
training history and the probes call them every epoch on inputs they validated before the
first. Nothing here checks a shape, a dtype or a device, and a blow-up is a value (inf), not
an error: training's divergence stop decides what to do with it. Shapes as in ``coupled``:
P (*K, d, d), states as row vectors (..., B, d), trajectories time first (T+1, ...).

Any linear plant (``envs.DoubleIntegrator``, ``plants.LinearPlant``): n = ``state_size(env)``
states x, d = n + N for a network's stacked (x, h), n + 2 for the rank-one (x, a, b). Process
noise w_t (T, ..., B, n) enters s_{t+1} through G (``noise_matrix``); where a function takes
``w``, None means no noise (the caller has checked that the plant has none).
"""

from __future__ import annotations

import weakref

import torch

from . import _checks
from ._loop import closed_loop
from .agents import has_overlaps
from .linsys import lyapunov_doubling, states_by_doubling


def state_size(env) -> int:
    """n, the plant's number of states (2 for the double integrator)."""
    return env.A.shape[-1]


def noise_level(env) -> float:
    """sigma, the standard deviation of the plant's process noise (0 for a plant without)."""
    return float(getattr(env, "noise", 0.0))


def stacked_matrix(agent, env):
    """P for any activation: the linear map from (x_t, h_t) to (x_{t+1}, W h_t + m y_{t+1})."""
    W, m, z = agent.recurrent_matrix(), agent.tensors["m"], agent.tensors["z"]
    K, n = agent.batch_shape, state_size(env)
    top = torch.cat([env.A.expand(*K, n, n), env.B[:, None] * z[..., None, :]], -1)
    CA, CB = env.C @ env.A, env.C @ env.B
    bottom = torch.cat([m[..., :, None] * CA, W + CB * m[..., :, None] * z[..., None, :]], -1)
    return torch.cat([top, bottom], -2)


def effective_matrix(overlaps, env):
    """``effective_matrix`` unchecked: training calls it with overlaps that may have
    overflowed, which its divergence check, not an argument error, must catch."""
    base, basis = _effective_basis(env, overlaps.dtype, overlaps.device)
    return base + torch.einsum("...k,kij->...ij", overlaps, basis)


def _effective_basis(env, dtype, device):
    """(P_0, E) with P_eff = P_0 + sum_k q_k E_k; P_0 (n + 2, n + 2), E (4, n + 2, n + 2) for
    q = (s_zm, s_zu, s_vm, s_vu).

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
    n = state_size(env)
    a, b = n, n + 1  # the coordinates of h = a m + b u
    base = torch.zeros(n + 2, n + 2, dtype=dtype, device=device)
    base[:n, :n] = A
    base[a, :n] = C @ A  # a' = y' = C (A x + B u)
    basis = torch.zeros(4, n + 2, n + 2, dtype=dtype, device=device)
    ctrl_col = torch.cat([B, (C @ B)[None], B.new_zeros(1)])  # where u = s_zm a + s_zu b enters
    basis[0, :, a] = ctrl_col
    basis[1, :, b] = ctrl_col
    basis[2, b, a] = 1.0  # b' = s_vm a + s_vu b
    basis[3, b, b] = 1.0
    return base, basis


def linear_system(agent, env):
    """(P, u_row) with u_t = u_row . s_t: the (n + 2)-square P_eff of a rank-one agent's
    overlaps, the full (n + N)-square P otherwise."""
    n = state_size(env)
    if has_overlaps(agent):
        q = agent.overlaps()
        zeros = q.new_zeros(*q.shape[:-1], n)
        return effective_matrix(q, env), torch.cat([zeros, q[..., :2]], -1)
    z = agent.tensors["z"]
    zeros = z.new_zeros(*z.shape[:-1], n)
    return stacked_matrix(agent, env), torch.cat([zeros, z], -1)


def noise_matrix(agent, env, effective: bool):
    """G (*K, d, n) with s_{t+1} = P s_t + G w_t: w_t moves x directly and reaches the network
    through its next observation y_{t+1} = C x_{t+1}: the rows of h are m C (full P,
    ``effective=False``), those of (a, b) are C and 0 (P_eff of a rank-one agent)."""
    n = state_size(env)
    C = env.C
    if effective:
        K = agent.overlaps().shape[:-1]
        G = torch.cat([torch.eye(n, dtype=C.dtype, device=C.device), C[None], C.new_zeros(1, n)])
        return G.expand(*K, n + 2, n)
    m = agent.tensors["m"]
    eye = torch.eye(n, dtype=m.dtype, device=m.device).expand(*m.shape[:-1], n, n)
    return torch.cat([eye, m[..., :, None] * C], -2)


def noise_inputs(G, w):
    """The noise's term in each step's pre-activation: w (T, *K, B, n), or (T, B, n) for one
    draw that every member sees, -> w G^T (T, *K, B, d), with G (*K, d, n)."""
    K = G.shape[:-2]
    if w.dim() == 3 and K:
        w = w.reshape(w.shape[0], *(1,) * len(K), *w.shape[1:])
    return w @ G.transpose(-1, -2)


def rollout(agent, env, x0, T, w=None):
    """``rollout`` unchecked (training's loss: a blow-up there is its divergence stop).
    ``w`` (T, ..., B, n) or None: the process noise w_0..w_{T-1}."""
    K, n = agent.batch_shape, state_size(env)
    x = x0.expand(*K, *x0.shape[-2:]) if x0.dim() == 2 else x0
    _checks.fits_memory(f"T={T} steps of {x.shape[:-1].numel()} states of n={n} + N={agent.N} "
                        f"numbers", (T + 1) * x.shape[:-1].numel() * (agent.N + n) * 2)
    s0 = torch.cat([x, x.new_zeros(*x.shape[:-1], agent.N)], -1)
    PT = stacked_matrix(agent, env).transpose(-1, -2)
    inputs = None if w is None else noise_inputs(noise_matrix(agent, env, False), w)
    x, h, u = closed_loop(PT, s0, agent.tensors["z"], T, agent.activation == "tanh", lo=n,
                          inputs=inputs)
    return {"x": x, "u": u, "h": h}


def linear_rollout(agent, env, x0, T, w):
    """x (T+1, ..., B, n) and u (T+1, ..., B) of a linear agent driven by noise w (T, ..., B,
    n), through its ``linear_system`` (P_eff for rank one: n + 2 numbers a state, not n + N)
    with the step loop, which takes the noise as an input (doubling cannot)."""
    n = state_size(env)
    P, u_row = linear_system(agent, env)
    G = noise_matrix(agent, env, has_overlaps(agent))
    s0 = torch.cat([x0, x0.new_zeros(*x0.shape[:-1], P.shape[-1] - n)], -1)
    x, _, u = closed_loop(P.transpose(-1, -2), s0, u_row[..., n:], T, False, lo=n,
                          inputs=noise_inputs(G, w))
    return x, u


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


def start_costs(agent, env, x0, T, T_max, beta, first, w=None):
    """``start_costs`` unchecked, with T and beta as ``per_member`` returned them: training
    validates once and calls this every epoch. ``w``: noise (T_max, ..., B, n) or None."""
    horizon = None if isinstance(T, int) else T
    n = state_size(env)
    if agent.activation == "identity" and w is not None:
        x, u = linear_rollout(agent, env, x0, T_max, w)
    elif agent.activation == "identity":
        P, u_row = linear_system(agent, env)
        s0 = torch.cat([x0, x0.new_zeros(*x0.shape[:-1], P.shape[-1] - n)], -1)
        s = states_by_doubling(P, s0, T_max)
        x, u = s[..., :n], (s * u_row.unsqueeze(-2)).sum(-1)
    else:
        traj = rollout(agent, env, x0, T_max, w)
        x, u = traj["x"], traj["u"]
    cost = episode_cost(x, u, beta, horizon, first)
    return torch.where(torch.isnan(cost), torch.inf, cost)


def cost_matrix(agent, env, T, beta, first: int) -> torch.Tensor:
    """S_xx (*K, n, n) with episode cost x_0^T S_xx x_0, for a linear agent; T one horizon or
    one per member ((*K,) integer tensor).

    With s_t = P^t s_0 and u_t = r . s_t, the cost is s_0^T S s_0 where
    S = sum_{t=0}^{T-1} (P^t)^T M P^t and M (``step_cost``). Since s_0 = (x_0, 0), only the
    n x n block S_xx is used. One S serves a whole batch: O(d^3 log T) instead of the
    O(T B d^2) of stepping every start.
    """
    P, r = linear_system(agent, env)
    n = state_size(env)
    return lyapunov_doubling(P, step_cost(P, r, n, T, beta, first), T)[..., :n, :n]


def step_cost(P, r, n, T, beta, first):
    """M (*K, d, d) with the cost of step t = s_t^T M s_t (noise aside):
    M = (P^f)^T E^T E P^f / (n T) + beta r r^T, where E picks x out of s and f = ``first``
    (0 or 1) shifts the state window to x_f..x_{f+T-1}; the 1/n is the mean over the n state
    coordinates (``coupled``'s cost)."""
    Ex = P[..., :n, :] if first else torch.eye(P.shape[-1], dtype=P.dtype, device=P.device)[:n]
    if torch.is_tensor(beta):
        beta = align(beta.to(P), P.dim())
    nT = float(n) * (align(T.to(P), P.dim()) if torch.is_tensor(T) else T)
    return Ex.transpose(-1, -2) @ Ex / nT + beta * (r[..., :, None] * r[..., None, :])


def noise_cost(agent, env, T, T_max, beta, first):
    """The process noise's exact share of the expected episode cost of a linear agent, (*K,):

        sigma^2 [ sum_{t=1}^{T-1} tr(G^T S_t G) + f ],   S_t = sum_{j<t} (P^j)^T M P^j,

    since the noise adds sigma^2 sum_{j<t} P^j G G^T (P^j)^T to the covariance of s_t and is
    independent of x_0 (no cross term); f = ``first`` = 1 adds the noise w_t that enters the
    counted state x_{t+1} directly, T steps of sigma^2 n / (n T). ``T`` one horizon or one per
    member (each member sums its own S_t, t < T_k). T_max - 1 products of d x d matrices.
    """
    sigma = noise_level(env)
    P, r = linear_system(agent, env)
    n = state_size(env)
    G = noise_matrix(agent, env, has_overlaps(agent))
    M = step_cost(P, r, n, T, beta, first)
    S, acc = M, torch.zeros_like(M)
    Tk = align(T.to(P.device), P.dim()) if torch.is_tensor(T) else None
    for t in range(1, T_max):  # acc = S_1 + ... + S_{T-1}
        acc = acc + (S if Tk is None else torch.where(t < Tk, S, 0.0))
        S = M + P.transpose(-1, -2) @ S @ P
    total = (G * (acc @ G)).sum((-1, -2)) + float(first)
    cost = sigma ** 2 * total
    return torch.where(torch.isfinite(cost), cost, torch.inf)


def quadratic_loss(S: torch.Tensor, x0: torch.Tensor, weights=None) -> torch.Tensor:
    """sum_b w_b x0_b^T S x0_b = tr(S X^T diag(w) X): S (*K, n, n), x0 (..., B, n), weights
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
