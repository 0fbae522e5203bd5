"""The step loop shared by every nonlinear (and open-loop) rollout, with its gradient written
out: s_{t+1} = phi(s_t P^T + input_{t+1}) on the stacked state of environment and network.

Shapes: states are row vectors (..., B, d), time first in trajectories (T+1, ..., B, d).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _checks
from ._threads import loop_threads, numpy_steps


def closed_loop(PT, s0, z, T, tanh, lo, inputs=None):
    """The states of s_{t+1} = (pre[:lo], phi(pre[lo:])), pre = s_t P^T (+ inputs[t]), and the
    readout u_t = z . s_t[lo:], for t = 0..T, differentiable in every tensor argument.

    PT (*K, d, d) = P^T; s0 (*K, B, d); z (*K, d - lo); inputs None or (T, *K, B, d), the
    term added to pre_{t+1}; the leading axes broadcast. ``lo`` leading coordinates are
    linear (the environment's), the others pass through tanh if ``tanh``. Returns
    (S[..., :lo], S[..., lo:], U) with S (T+1, *K, B, d) and U (T+1, *K, B).
    """
    K = _checks.broadcast_shapes(PT.shape[:-2], s0.shape[:-2], z.shape[:-1],
                               () if inputs is None else inputs.shape[1:-2])
    d, B = PT.shape[-1], s0.shape[-2]
    PT, s0, z = PT.expand(*K, d, d), s0.expand(*K, B, d), z.expand(*K, d - lo)
    if inputs is not None:
        inputs = inputs.expand(T, *K, B, d)
    if K and math.prod(K) > 1:  # one ensemble axis: products become batched on blocks
        flat = lambda t, lead: t.reshape(*t.shape[:lead], -1, *t.shape[lead + len(K):])
        PT, s0, z = flat(PT, 0), flat(s0, 0), flat(z, 0)
        inputs = None if inputs is None else flat(inputs, 1)
    elif K:  # a one-member ensemble runs as a single network (2-d products are cheaper)
        one = (0,) * len(K)
        PT, s0, z = PT[one], s0[one], z[one]
        inputs = None if inputs is None else inputs[(slice(None),) + one]
    X, H, U = _ClosedLoop.apply(PT, s0, z, inputs, T, tanh, lo)
    if K:
        X, H, U = (v.reshape(v.shape[0], *K, *v.shape[1:]) if math.prod(K) == 1
                   else v.unflatten(1, K) for v in (X, H, U))
    return X, H, U


class _ClosedLoop(torch.autograd.Function):
    """The loop of ``closed_loop``, with at most one ensemble axis Kf (flattened by it).

    One product with the stacked P per step gives both x_{t+1} and the network's input
    W h_t + m y_{t+1} (y_{t+1} depends on u_t = z.h_t). Backpropagation through time is
    written out: the adjoint runs backwards with one in-place product per step, and the
    gradient of P, sum_t s_t^T g_{t+1}, is a single product over all steps instead of T
    small ones. The readout's gradient enters the adjoint directly (no full-size gradient of
    the states is built when only x and u are used, as in a loss).
    PT (Kf?, d, d), s0 (Kf?, B, d), z (Kf?, N), inputs None or (T, Kf?, B, d)
    -> views X (T+1, Kf?, B, lo) and H (T+1, Kf?, B, N) of the states, U (T+1, Kf?, B).
    """

    @staticmethod
    def forward(ctx, PT, s0, z, inputs, T, tanh, lo):
        # the whole forward and the whole backward under one thread policy: the backward's
        # large elementwise passes ran on two threads while its steps ran on one (2-7 ms per
        # call where the cores were shared), and the autograd engine does not inherit a
        # setting made inside the forward
        with loop_threads(s0.numel() * PT.shape[-1]):
            return _ClosedLoop._forward(ctx, PT, s0, z, inputs, T, tanh, lo)

    @staticmethod
    def backward(ctx, dX, dH, dU):
        S = ctx.saved_tensors[1]
        with loop_threads(S[0].numel() * S.shape[-1]):
            return _ClosedLoop._backward(ctx, dX, dH, dU)

    @staticmethod
    def _forward(ctx, PT, s0, z, inputs, T, tanh, lo):
        ctx.set_materialize_grads(False)  # unused outputs (h in a loss) get no gradient
        S = s0.new_empty(T + 1, *s0.shape)
        S[0] = s0
        PT = PT.contiguous()  # a transposed operand sends matmul(out=) to a slow path
        # numpy views on the CPU (_threads.numpy_steps): numpy's matmul (OpenBLAS) takes 24 us
        # for a 100 x 102 by 102 x 102 float32 product where torch's takes 28 us, its tanh 8 us
        # where torch 2.13's takes 36-45 us (one thread); the backward takes the same kind
        ctx.numpy = numpy_steps(S)
        # the per-step views made in one call each (indexing S[t] inside the loop costs a few
        # microseconds per step, a tenth of a product)
        states = _steps(S, ctx.numpy)
        phi = _inplace_tanh(S[..., lo:], ctx.numpy) if tanh else None
        steps = (None,) * T if inputs is None else _steps(inputs.detach(), ctx.numpy)
        if ctx.numpy:
            P_ = PT.detach().numpy()
            mm = lambda a, out: np.matmul(a, P_, out=out)
            addmm = lambda c, a, out: np.add(np.matmul(a, P_, out=out), c, out=out)
        else:
            batched = PT.dim() == 3
            mm = lambda a, out: (torch.bmm if batched else torch.mm)(a, PT, out=out)
            addmm = lambda c, a, out: (torch.baddbmm if batched else torch.addmm)(c, a, PT,
                                                                                 out=out)
        # a diverging loop overflows to inf and nan, as torch's steps do (silently: the
        # training checks its loss and gradient every epoch and stops with a message)
        with np.errstate(over="ignore", invalid="ignore"):
            for t in range(T):
                if steps[t] is None:
                    mm(states[t], states[t + 1])
                else:
                    addmm(steps[t], states[t], states[t + 1])
                if phi is not None:
                    phi(t + 1)
        H = S[..., lo:]
        # an ensemble's readout as a product and a sum: a broadcast batched matmul over the
        # T + 1 steps takes several times longer
        U = (H * z.unsqueeze(-2)).sum(-1) if S.dim() == 4 else H @ z
        ctx.save_for_backward(PT, S, z)
        ctx.tanh, ctx.lo = tanh, lo
        return S[..., :lo], H, U

    @staticmethod
    def _backward(ctx, dX, dH, dU):
        PT, S, z = ctx.saved_tensors
        lo, T, N = ctx.lo, S.shape[0] - 1, z.shape[-1]
        P, batched = PT.transpose(-1, -2).contiguous(), PT.dim() == 3
        # G[t-1] = dL/dpre_t for t = 1..T: first what reaches s_t directly, from x_t, h_t and
        # u_t = z.h_t, then (below) what reaches it through later steps, and phi'
        G = S.new_empty(T, *S.shape[1:])
        G0 = G[0]  # dL/dpre_1 as a tensor (grads[0] may be a numpy view)
        Gx, Gh = G[..., :lo], G[..., lo:]
        if dU is not None:
            torch.mul(dU[1:, ..., None], z.unsqueeze(-2), out=Gh)
        else:
            Gh.zero_()
        if dH is not None:
            Gh.add_(dH[1:])
        if lo:
            Gx.copy_(dX[1:]) if dX is not None else Gx.zero_()
        grads, grads_h = _steps(G, ctx.numpy), _steps(Gh, ctx.numpy)
        slopes = _slopes(S[1:, ..., lo:], ctx.numpy) if ctx.tanh else None
        if ctx.numpy:  # grads[t - 2] += grads[t - 1] P, through a spare block
            P_, spare = P.numpy(), np.empty_like(grads[0])
            addmm = lambda c, a: np.add(c, np.matmul(a, P_, out=spare), out=c)
            scale = lambda g, s: np.multiply(g, s, out=g)
        else:
            addmm = lambda c, a: (c.baddbmm_ if batched else c.addmm_)(a, P)
            scale = lambda g, s: g.mul_(s)
        with np.errstate(over="ignore", invalid="ignore"):
            for t in range(T, 0, -1):
                if slopes is not None:
                    scale(grads_h[t - 1], slopes[t - 1])
                if t > 1:
                    addmm(grads[t - 2], grads[t - 1])
        dPT = sum_over_steps(S[:-1], G, batched)
        ds0 = dz = None
        if ctx.needs_input_grad[1]:
            ds0 = G0 @ P
            if dX is not None and lo:
                ds0[..., :lo] += dX[0]
            if dH is not None:
                ds0[..., lo:] += dH[0]
            if dU is not None:
                ds0[..., lo:] += dU[0, ..., None] * z.unsqueeze(-2)
        if ctx.needs_input_grad[2] and dU is not None:
            H = S[..., lo:]
            if batched:  # a product per member (einsum takes 6 times as long here)
                dz = torch.bmm(dU.transpose(0, 1).reshape(z.shape[0], 1, -1),
                               H.transpose(0, 1).reshape(z.shape[0], -1, N)).squeeze(1)
            else:
                dz = H.reshape(-1, N).transpose(0, 1) @ dU.reshape(-1)
        dinputs = G if ctx.needs_input_grad[3] else None
        return dPT, ds0, dz, dinputs, None, None, None


def sum_over_steps(prev, G, batched: bool) -> torch.Tensor:
    """The gradient of P^T, sum_t s_t^T g_{t+1}: prev (T, Kf?, B, d) the states s_0..s_{T-1},
    G (T, Kf?, B, d) the adjoints -> (Kf?, d, d). One product over all steps, in torch (MKL),
    per member for an ensemble (a batched product of transposed (Kf, d, T B) blocks takes half
    as long again). Its order of operations fixes float32's last bits, which after 1000
    chaotic epochs decide whether the authors' reference test passes
    (``benchmarks.float32_chaos``)."""
    d = G.shape[-1]
    sums = lambda a, b: a.reshape(-1, d).transpose(0, 1) @ b.reshape(-1, d)  # noqa: E731
    if batched:
        return torch.stack([sums(prev[:, k], G[:, k]) for k in range(G.shape[1])])
    return sums(prev, G)


def _slopes(H, numpy: bool) -> list:
    """phi' = 1 - h^2 of every step at once, two passes over H (T, ..., N), as per-step
    views (``_steps``)."""
    if numpy:
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.square(H.numpy())
        return list(np.subtract(1, out, out=out))
    return H.square().neg_().add_(1).unbind(0)


def _steps(X, numpy: bool) -> list:
    """The views X[0], X[1], ... along the first axis: numpy arrays sharing X's memory, or
    tensors. X is made inside the forward or backward, or detached, so it has no grad."""
    return list(X.numpy()) if numpy else X.unbind(0)


def _inplace_tanh(H, numpy: bool):
    """A function t -> None that applies tanh in place to H[t] (H: (T+1, ..., N), a view).

    numpy's vectorized tanh, on the CPU (``_threads.numpy_steps``): within 1.1e-7 and 2.3e-16
    relative of the exact value in float32 and float64 (torch's 5.8e-8 and 0). Its last bits
    depend on the CPU's vector extensions, as the products' do (book: How it works,
    "Reproducibility").
    """
    views = _steps(H, numpy)
    if not numpy:
        return lambda t: views[t].tanh_()
    return lambda t: np.tanh(views[t], out=views[t])
