"""The impulse response H_s = C M^s G by baby and giant steps, with its gradient written out
(``linsys.impulse_response`` calls it; the house model is ``_loop._ClosedLoop``).

Baby steps B_i = M^i G, i < n (n a power of two), by doubling: B(2m) = [B(m), M^m B(m)],
M^{2m} = M^m M^m. Giant steps C_j = C M^{j n}, j < J, one small product each. Then
H_{j n + i} = C_j B_i: one product of the stacked giants with the stacked babies.

The adjoint runs the same steps backwards. What autograd would build one small product at a
time is formed here as one product of stacked factors: the gradient of M^n from the giant
chain, sum_j C_{j-1}^T A_j (A_j: the adjoint of C_j), and the gradients of the stacked
giants and babies from dH.

Shapes: C (Kf?, o, d), M (Kf?, d, d), G (Kf?, d, c) with at most one (flattened) ensemble
axis Kf; H (T, Kf?, o, c).
"""

from __future__ import annotations

import numpy as np
import torch

from . import _threads


class ImpulseResponse(torch.autograd.Function):
    """H = (C M^s G)_{s < T} for C, M, G of one network (2-D) or of an ensemble (3-D, the
    same leading axis on all three); ``baby`` (a power of two) caps the baby steps.

    On the CPU the steps run on numpy arrays that share the tensors' memory: OpenBLAS's
    products of these sizes cost a third (6 x 104 by 104 x 104: 4 against 11 us) to four
    fifths (104^3: 53 against 66 us) of MKL's through torch, measured on one thread of an
    AMD EPYC, float64; ``_threads.single_thread`` holds OpenBLAS to one thread as it does
    torch. Elsewhere, or where numpy's BLAS is not OpenBLAS, torch runs the same steps.
    """

    @staticmethod
    def forward(ctx, C, M, G, T, baby):
        # a loop that blew up overflows as torch's products do, without numpy's warnings;
        # one thread for torch and numpy's OpenBLAS, whoever calls
        with np.errstate(over="ignore", invalid="ignore"), _threads.single_thread():
            return ImpulseResponse._forward(ctx, C, M, G, T, baby)

    @staticmethod
    def backward(ctx, dH):
        # the autograd engine may call this outside the forward's thread setting (a caller's
        # own backward): hold the threads again, and keep the forward's kind of arrays
        with np.errstate(over="ignore", invalid="ignore"), _threads.single_thread():
            return ImpulseResponse._backward(ctx, dH)

    @staticmethod
    def _forward(ctx, C, M, G, T, baby):
        ops = _Ops(M)
        ctx.numpy = ops.numpy  # the backward works on the same kind of arrays
        C, M, G = (ops.array(X) for X in (C, M, G))
        d, babies, P, n, pairs = M.shape[-1], G, M, 1, []
        while n < min(baby, T):
            # M^m [M^m, B(m)] = [M^{2m}, M^m B(m)]: both in one product
            pairs.append(ops.cat([P, babies]))                         # (Kf?, d, d + m c)
            both = P @ pairs[-1]
            babies = ops.cat([babies, both[..., d:]])                 # (Kf?, d, 2 m c)
            P, n = both[..., :d], 2 * n
        J = -(-T // n)
        giants = ops.empty((J, *C.shape), C)                           # (J, Kf?, o, d)
        giants[0] = C
        P = ops.contiguous(P)  # a column slice sends matmul(out=) to a slow path
        for j in range(1, J):
            ops.matmul(giants[j - 1], P, out=giants[j])
        H = _stacked(giants) @ babies                                  # (Kf?, J o, n c)
        ctx.steps, ctx.n = (giants, babies, P, pairs), n
        return ops.tensor(_unstack(ops, H, J, C.shape[-2], n, G.shape[-1])[:T])

    @staticmethod
    def _backward(ctx, dH):
        ops = _Ops(dH, ctx.numpy)
        (giants, babies, Mn, pairs), n = ctx.steps, ctx.n
        J, c, d = giants.shape[0], babies.shape[-1] // n, Mn.shape[-1]
        dHs = _stack_grad(ops, ops.array(dH), J, n)                   # (Kf?, J o, n c)
        # A_j, the adjoint of C_j: what dH gives it directly, then what flows back from
        # C_{j+1} = C_j M^n
        A = _unstacked_like(ops, dHs @ babies.mT, giants)             # (J, Kf?, o, d)
        MnT = ops.contiguous(Mn.mT)
        for j in range(J - 1, 0, -1):
            A[j - 1] += A[j] @ MnT
        dP = None
        if J > 1:  # the gradient of M^n: sum_j C_{j-1}^T A_j, one product
            dP = _stacked(giants[:-1]).mT @ _stacked(A[1:])
        dB = _stacked(giants).mT @ dHs                                 # (Kf?, d, n c)
        for pair in reversed(pairs):  # undo [M^{2m}, B(2m) = [B(m), P B(m)]] = P [P, B(m)]
            mc = pair.shape[-1] - d
            # the gradient of P [P, B(m)] is [dP, dnew] [P, B(m)]^T + P^T [dP, dnew]
            dnew = dB[..., mc:2 * mc]
            X = dnew if dP is None else ops.cat([dP, dnew])
            PX = pair[..., :d].mT @ X
            right = pair[..., d:] if dP is None else pair
            dP = X @ right.mT
            if X is not dnew:
                dP += PX[..., :d]
            dB[..., :mc] += PX[..., -mc:]
        dM = dP if dP is not None else 0 * Mn  # T = 1: H_0 = C G
        return ops.tensor(A[0]), ops.tensor(dM), ops.tensor(dB[..., :c]), None, None


class _Ops:
    """The few array functions the steps need, on numpy arrays sharing the tensors' memory
    (CPU, OpenBLAS held to one thread) or on the tensors themselves."""

    def __init__(self, like: torch.Tensor, numpy: bool | None = None):
        self.numpy = _threads.numpy_steps(like) if numpy is None else numpy

    def array(self, X):
        return X.detach().numpy() if self.numpy else X

    def tensor(self, X):
        return torch.from_numpy(X) if self.numpy else X

    def cat(self, parts):
        return np.concatenate(parts, -1) if self.numpy else torch.cat(parts, -1)

    def empty(self, shape, like):
        return np.empty(shape, like.dtype) if self.numpy else like.new_empty(shape)

    def zeros(self, shape, like):
        return np.zeros(shape, like.dtype) if self.numpy else like.new_zeros(shape)

    def contiguous(self, X):
        return np.ascontiguousarray(X) if self.numpy else X.contiguous()

    def matmul(self, a, b, out):
        return np.matmul(a, b, out=out) if self.numpy else torch.matmul(a, b, out=out)

    def permute(self, X, axes):
        return X.transpose(axes) if self.numpy else X.permute(axes)


def _stacked(X):
    """(J, Kf?, o, d) -> (Kf?, J o, d): the giants as the rows of one matrix."""
    if X.ndim == 3:
        return X.reshape(-1, X.shape[-1])
    return X.swapaxes(0, 1).reshape(X.shape[1], -1, X.shape[-1])


def _unstacked_like(ops, X, like):
    """(Kf?, J o, d) -> (J, Kf?, o, d), contiguous: ``_stacked`` undone."""
    J, o, d = like.shape[0], like.shape[-2], like.shape[-1]
    if like.ndim == 3:
        return X.reshape(J, o, d)
    return ops.contiguous(X.reshape(X.shape[0], J, o, d).swapaxes(0, 1))


def _unstack(ops, H, J, o, n, c):
    """The product of stacked giants and babies (Kf?, J o, n c) -> H (J n, Kf?, o, c)."""
    lead = tuple(H.shape[:-2])
    H = H.reshape(*lead, J, o, n, c)
    H = ops.permute(H, (1, 3, 0, 2, 4) if lead else (0, 2, 1, 3))     # (J, n, Kf?, o, c)
    return H.reshape(J * n, *lead, o, c)


def _stack_grad(ops, dH, J, n):
    """dH (T, Kf?, o, c), zero-padded to J n steps -> (Kf?, J o, n c): ``_unstack`` undone."""
    T, (o, c), lead = dH.shape[0], tuple(dH.shape[-2:]), tuple(dH.shape[1:-2])
    full = ops.zeros((J * n, *dH.shape[1:]), dH)
    full[:T] = dH
    full = full.reshape(J, n, *lead, o, c)
    full = ops.permute(full, (2, 0, 3, 1, 4) if lead else (0, 2, 1, 3))
    return full.reshape(*lead, J * o, n * c)


class SinusoidConv(torch.autograd.Function):
    """Y_k(t) = sum_{s <= t} H_s[:, cols_k] w(t - s) e^{i omega_k (t - s)}, the response to a
    weighted sinusoid on input ``cols_k``, without an FFT: with rot_k(s) = e^{-i omega_k s}
    and w(m) = tail for m >= R,

        Y_k(t) = conj(rot_k(t)) [tail sum_{s <= t} X_k(s) + sum_{j < R} (w(j) - tail) X_k(t - j)],
        X_k(s) = rot_k(s) H_s[:, cols_k],

    a cumulative sum and R shifted adds (``taps``: the (j, w(j) - tail) that are not zero).
    The adjoint runs the same steps transposed: a reversed cumulative sum and the shifts the
    other way. H (L, *E, o, c) real, cols (K,) int64, rot (K, L) complex -> (*E, K, L, o).

    With ``targets`` (K, L - 1, r) complex, also the Gram matrix (*E, 2K, 2K) of the errors
    E = Y[..., 1:, rows] - targets (``tracking.loss.gram``): V V^T / (L - 1), V = (Re E;
    -Im E) flattened. Its gradient reaches only the r ``rows``, so its adjoint runs on r of
    the o outputs, and the loss's chain of small operations is one step here.
    """

    @staticmethod
    def forward(ctx, H, cols, rot, tail, taps, rows=None, targets=None):
        ctx.set_materialize_grads(False)  # Y unused in the loss: no adjoint of all o rows
        n, L = H.dim(), H.shape[0]
        X = H.index_select(-1, cols).permute(*range(1, n - 2), n - 1, 0, n - 2)
        X = X * rot[:, :, None]                                        # (*E, K, L, o)
        Y = torch.cumsum(X, -2)
        if tail != 1:
            Y.mul_(tail)
        for j, dw in taps:
            Y[..., j:, :].add_(X[..., :L - j, :], alpha=dw)
        Y.mul_(rot.conj()[:, :, None])
        ctx.save_for_backward(cols, rot)
        ctx.shape, ctx.tail, ctx.taps, ctx.rows = H.shape, tail, taps, rows
        if targets is None:
            return Y
        E = Y[..., 1:, rows] - targets
        ctx.r = E.shape[-1]
        V = torch.cat([E.real.flatten(-2), -E.imag.flatten(-2)], -2)   # (*E, 2K, (L-1) r)
        ctx.V = V
        return Y, V @ V.mT / (L - 1)

    @staticmethod
    def backward(ctx, dY, dgram=None):
        cols, rot = ctx.saved_tensors
        shape = ctx.shape
        dH = rot.real.new_zeros(shape)
        if dY is not None:
            _add_adjoint(ctx, dH, dY, slice(None))
        if dgram is not None:
            V, K = ctx.V, rot.shape[0]
            dV = (dgram + dgram.mT) @ V / (shape[0] - 1)                # (*E, 2K, (L-1) r)
            dE = torch.complex(dV[..., :K, :], -dV[..., K:, :]).unflatten(-1, (-1, ctx.r))
            dYr = dE.new_zeros(*dE.shape[:-2], shape[0], dE.shape[-1])  # (*E, K, L, r)
            dYr[..., 1:, :] = dE
            _add_adjoint(ctx, dH, dYr, ctx.rows)
        return dH, None, None, None, None, None, None


def _add_adjoint(ctx, dH, dY, rows):
    """dH[..., rows, :] += the adjoint of ``SinusoidConv``'s Y (its outputs ``rows``) applied
    to dY (*E, K, L, r)."""
    cols, rot = ctx.saved_tensors
    L, n = dH.shape[0], dH.dim()
    dY = dY * rot[:, :, None]
    dX = dY.flip(-2).cumsum(-2).flip(-2)
    if ctx.tail != 1:
        dX.mul_(ctx.tail)
    for j, dw in ctx.taps:
        dX[..., :L - j, :].add_(dY[..., j:, :], alpha=dw)
    dX = (dX * rot.conj()[:, :, None]).real                           # (*E, K, L, r)
    # (*E, K, L, r) -> (L, *E, r, K); sinusoids on the same input add up
    dH[..., rows, :].index_add_(n - 1, cols, dX.permute(n - 2, *range(n - 3), n - 1, n - 3))
