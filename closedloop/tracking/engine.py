"""How the tracking loop is computed: stepped (any reference, with the plant's clamp), or as
the linear system it is away from the clamp.

One episode, from q_0 = 0, for t = 0..T-1 (the network reads t = 0 under the authors'
convention: h_0 = (dt/tau) W_in in_0; under the book's h_0 = 0 and the first read is t = 1):

    u_t = W_out h_t,   q_{t+1} = clamp(F q_t + B_p u_t, +/-bound)   explicit Euler: x += dt vx
    in_{t+1} = (x_{t+1}, y_{t+1}, r_x((t+1) dt), r_y((t+1) dt))
    h_{t+1} = h_t + (dt/tau) (-h_t + W h_t + W_in in_{t+1})

h_t is the state after reading in_t, so u_t is the control computed from what the network saw
at t. Away from the clamp the loop is linear and time-invariant, s_{t+1} = M s_t + G r_{t+1}
with s = (q, h) (``closed_loop_matrix``); its impulse responses (``linsys.impulse_response``)
give the exact losses of ``loss``. Shapes and units as in ``task``.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks
from .._threads import single_thread
from ..linsys import causal_conv, impulse_response
from .network import TrackingRNN, check_pair, check_single
from .task import POS, PointMass, read_convention


@single_thread()
def rollout(agent: TrackingRNN, plant: PointMass, r: torch.Tensor, convention=None) -> dict:
    """The closed loop stepped T times for references r (T+1, B, 2) at t = 0..T (time first,
    as ``coupled.rollout``), with the plant's clamp: q_0 = 0; h_0 = (dt/tau) W_in in_0 where
    the convention's network reads t = 0 (the authors', default), else h_0 = 0; then for
    t = 0..T-1 q_{t+1} = clamp(F q_t + B_p W_out h_t), h_{t+1} = A_h h_t + (dt/tau) W_in in_{t+1}.

    Returns {'q': (T+1, B, 4), 'u': (T+1, B, 2), 'inputs': (T+1, B, 4)} at t = 0..T: positions
    and velocities (x, vx, y, vy), controls u_t = W_out h_t (accelerations) and what the
    network reads (x, y, r_x, r_y). Differentiable; the per-step work is two products with
    N x N and 4 x N matrices. One network (an ensemble member: ``agent.member(k)``).
    """
    check_pair(agent, plant)
    check_single(agent)
    _checks.finite_tensor("r", r, agent.W.dtype)
    _checks.shape("r", r, (None, None, 2))
    if r.shape[0] < 2:
        raise ValueError(f"r must have shape (T+1, B, 2) with T >= 1, got {tuple(r.shape)}")
    _checks.fits_memory(f"r of shape {tuple(r.shape)} with N={agent.N}",
                        2 * r.shape[0] * r.shape[1] * (agent.N + 10))
    return step_loop(agent, plant, r, read_convention(convention, plant.dt)["reads_first"])


def step_loop(agent, plant, r, first: bool) -> dict:
    """``rollout`` for checked input (the sampled losses and the twin step the clamped loop
    with it); ``first``: the network reads in_0 (h_0 = a W_in in_0)."""
    T, B, a = r.shape[0] - 1, r.shape[1], agent.alpha
    A_hT = ((1 - a) * torch.eye(agent.N, dtype=r.dtype, device=r.device) + a * agent.W).T
    Pq = a * (agent.W_in[:, :2] @ plant.C).T          # (4, N): positions enter h
    grads = any(t.requires_grad for t in (agent.W, agent.W_out, agent.W_in))
    if not (torch.is_grad_enabled() and grads):
        q, u = _stepped(agent, plant, r, A_hT, Pq, first)
        return {"q": q, "u": u, "inputs": torch.cat([q[..., POS], r], -1)}
    BuT = (plant.B @ agent.W_out).T                   # (N, 4): u = W_out h moves v
    drive = r @ (a * agent.W_in[:, 2:]).T             # (T+1, B, N): the reference enters h
    q = r.new_zeros(B, 4)
    h = drive[0] if first else r.new_zeros(B, agent.N)      # q_0 = 0: only r_0 enters
    qs, hs = [q], [h]
    for t in range(1, T + 1):
        q = q @ plant.F.T + h @ BuT
        if plant.bound is not None:
            q = q.clamp(-plant.bound, plant.bound)
        h = h @ A_hT + q @ Pq + drive[t]
        qs.append(q), hs.append(h)
    q, h = torch.stack(qs), torch.stack(hs)
    return {"q": q, "u": agent.readout(h), "inputs": torch.cat([q[..., POS], r], -1)}


def _stepped(agent, plant, r, A_hT, Pq, first):
    """``rollout``'s loop when no gradient is wanted (test losses of a runaway network,
    figures): q and u for every t in small preallocated buffers, h in two rotating ones, and
    the reference entering through its own 2 x N product instead of a (T+1, B, N) drive.
    Allocating the T+1 hidden states afresh on every call costs as much as the loop (page
    faults). Seven calls per step, no temporaries. Returns q (T+1, B, 4) and u (T+1, B, 2)."""
    T1, B, N, a = r.shape[0], r.shape[1], agent.N, agent.alpha
    Q, U = r.new_zeros(T1, B, 4), r.new_zeros(T1, B, 2)
    h, h_next = r.new_zeros(B, N), r.new_empty(B, N)
    qs, us, rs = Q.unbind(0), U.unbind(0), r.contiguous().unbind(0)
    FT, BpT = plant.F.T.contiguous(), plant.B.T.contiguous()
    A_hT, Pq = A_hT.detach().contiguous(), Pq.detach().contiguous()
    WrT = (a * agent.W_in[:, 2:]).detach().T.contiguous()  # (2, N): the reference enters h
    WoT = agent.W_out.detach().T.contiguous()         # (N, 2): u = W_out h
    if first:                                         # h_0 = a W_in in_0 (q_0 = 0)
        torch.mm(rs[0], WrT, out=h)
        torch.mm(h, WoT, out=us[0])
    for t in range(1, T1):
        torch.mm(qs[t - 1], FT, out=qs[t])            # q_t = clamp(F q_{t-1} + B_p u_{t-1})
        qs[t].addmm_(us[t - 1], BpT)
        if plant.bound is not None:
            qs[t].clamp_(-plant.bound, plant.bound)
        torch.mm(h, A_hT, out=h_next)                 # h_t = A_h h_{t-1} + a W_in in_t
        h_next.addmm_(qs[t], Pq).addmm_(rs[t], WrT)
        torch.mm(h_next, WoT, out=us[t])
        h, h_next = h_next, h
    return Q, U


@single_thread()
def open_loop_controls(agent: TrackingRNN, inputs: torch.Tensor, convention=None
                       ) -> torch.Tensor:
    """The agent's controls (T+1, B, 2) at t = 0..T (accelerations) when fed ``inputs``
    (T+1, B, 4) = (x, y, r_x, r_y) at t = 0..T instead of its plant (it reads in_0 where the
    convention's network does: the authors', default)."""
    check_single(agent)
    return open_loop_steps(agent, inputs, read_convention(convention, agent.dt)["reads_first"])


def open_loop_steps(agent, inputs, first: bool) -> torch.Tensor:
    """``open_loop_controls`` for checked input; ``first``: the network reads in_0."""
    a = agent.alpha
    A_hT = ((1 - a) * torch.eye(agent.N, dtype=inputs.dtype, device=inputs.device)
            + a * agent.W).T
    drive = inputs @ (a * agent.W_in).T              # (T+1, B, N)
    h = drive[0] if first else inputs.new_zeros(inputs.shape[1], agent.N)
    hs = [h]
    for t in range(1, inputs.shape[0]):
        h = h @ A_hT + drive[t]
        hs.append(h)
    return agent.readout(torch.stack(hs))


def closed_loop_matrix(agent: TrackingRNN, plant: PointMass) -> torch.Tensor:
    """M (*batch_shape, 4+N, 4+N) with s_{t+1} = M s_t + G r_{t+1}, s = (q, h), away from the
    clamp (G: the reference's input weights (dt/tau) W_in[:, 2:] into h)."""
    check_pair(agent, plant)
    a, K = agent.alpha, agent.batch_shape
    Pq = a * agent.W_in[..., :2] @ plant.C                  # (*K, N, 4): positions enter h
    left = torch.cat([plant.F.expand(*K, 4, 4), Pq @ plant.F], -2)      # (*K, d, 4): q_t
    # (*K, d, N): h_t moves q through u = W_out h, and h through A_h and the position reached
    right = torch.cat([plant.B.expand(*K, 4, 2), Pq @ plant.B], -2) @ agent.W_out
    A_h = a * agent.W                                       # (1 - a) I + a W, a few passes
    A_h.diagonal(dim1=-2, dim2=-1).add_(1 - a)              # fewer than with an identity
    right[..., 4:, :] += A_h
    return torch.cat([left, right], -1)


def closed_loop_rates(agent: TrackingRNN, plant: PointMass) -> np.ndarray:
    """log(eig(M)) / dt (*batch_shape, 4+N) complex, in 1/s, least stable first: the
    continuous-time rates of the unclamped closed loop's modes (real part > 0: it grows)."""
    with torch.no_grad():
        ev = torch.linalg.eigvals(closed_loop_matrix(agent, plant)).cpu().numpy()
    rates = np.log(ev.astype(complex)) / plant.dt
    return np.take_along_axis(rates, np.argsort(-rates.real, axis=-1, kind="stable"), -1)


def student_response(student: TrackingRNN, inputs_fft: torch.Tensor, L: int) -> torch.Tensor:
    """Controls (K, L, 2) complex of ``student`` driven open-loop by complex inputs (K, L, 4)
    at t = 0..L-1 (input t enters h_t, h_{-1} = 0), given as their FFT over time with
    ``fft_length(L)`` points."""
    check_single(student)
    a, N = student.alpha, student.N
    A_h = (1 - a) * torch.eye(N, dtype=student.W.dtype, device=student.W.device) + a * student.W
    H = impulse_response(student.W_out, A_h, a * student.W_in, L)
    return causal_conv(H, inputs_fft)
