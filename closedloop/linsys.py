"""Linear systems by matrix doubling, shared by the chapters (``coupled`` for Chapters 1-3,
``tracking`` for Chapter 4): the states s_t = P^t s_0, the Lyapunov sums
sum_t (P^t)^T M P^t that give a quadratic cost over a horizon, and the impulse response
C M^s G with its FFT convolution. Each takes O(log T) sequential products of d x d matrices
instead of T steps.

Shapes: P, M (*K, d, d) with K ensemble axes (one system per member, broadcast); states are
row vectors (..., B, d); T steps. ``linear_states`` and ``lyapunov_sum`` check their input;
the other functions assume checked input (they run inside every training epoch).
"""

from __future__ import annotations

import numpy as np
import torch

from . import _checks
from ._impulse import ImpulseResponse, SinusoidConv


def linear_states(P: torch.Tensor, s0: torch.Tensor, T: int) -> torch.Tensor:
    """s_t = P^t s_0 for t = 0..T by doubling: O(log T) sequential matrix products.

    P (*K, d, d); s0 (..., B, d) with leading axes that broadcast against K.
    Returns (T+1, *broadcast(K, ...), B, d). States beyond the dtype's range are an error.
    """
    T = _checks.integer("T", T, low=0)
    _checks.finite_tensor("P", P)
    if P.dim() < 2 or P.shape[-1] < 1 or P.shape[-1] != P.shape[-2]:
        raise ValueError(f"P must have shape (*K, d, d) with d >= 1, got {tuple(P.shape)}")
    d = P.shape[-1]
    _checks.finite_tensor("s0", s0)
    if s0.dtype != P.dtype or s0.dim() < 2 or s0.shape[-1] != d:
        raise ValueError(f"s0 must have P's dtype {P.dtype} and shape (..., B, d = {d}), got "
                         f"{s0.dtype} {tuple(s0.shape)}")
    check_broadcast("P", P.shape[:-2], "s0", s0.shape[:-2])
    return no_overflow(states_by_doubling(P, s0, T), f"P^t s0 for T={T} steps")


def no_overflow(states, what):
    """``states``, or a ValueError if they left their dtype's range (an unstable system run
    for too many steps): never NaN or inf passed on as a trajectory."""
    if not torch.isfinite(states).all():
        dtype = str(states.dtype).removeprefix("torch.")
        raise ValueError(f"{what} overflow {dtype} (the system grows too fast for that many "
                         f"steps): shorten T")
    return states


def states_by_doubling(P, s0, T):
    """``linear_states`` unchecked (for callers whose P may legitimately have overflowed),
    except for the memory its T + 1 states need."""
    s0 = s0.expand(*_checks.broadcast_shapes(P.shape[:-2], s0.shape[:-2]), *s0.shape[-2:])
    _checks.fits_memory(f"T={T} steps of {s0.numel()} numbers", (T + 1) * s0.numel())
    states, PkT, n = s0[None], P.transpose(-1, -2), 1
    while n < T + 1:
        need = min(n, T + 1 - n)
        states = torch.cat([states, states[:need] @ PkT], 0)  # t in [n, n+need) from [0, need)
        n += need
        if n < T + 1:
            PkT = PkT @ PkT
    return states


def lyapunov_sum(P: torch.Tensor, M: torch.Tensor, T: int) -> torch.Tensor:
    """sum_{t=0}^{T-1} (P^t)^T M P^t for P, M (*K, d, d): O(log T) products of d x d matrices.

    Binary doubling on S_n = sum_{t<n} (P^t)^T M P^t: S_{a+b} = S_a + (P^a)^T S_b P^a, one
    term per set bit of T (steps, >= 1). ``T`` may also give one horizon per member: a
    sequence or integer tensor of the broadcast shape K. Returns (*broadcast(K), d, d);
    beyond the float range, inf or NaN entries (an unstable P over many steps).
    """
    if isinstance(T, (list, tuple)) or torch.is_tensor(T) or isinstance(T, np.ndarray):
        items = np.asarray(T.tolist() if torch.is_tensor(T) else T, dtype=object).ravel()
        [_checks.integer(f"T[{i}]", t, low=1) for i, t in enumerate(items)]
        T = torch.as_tensor(np.asarray(T.tolist() if torch.is_tensor(T) else T,
                                       dtype=np.int64))
    else:
        T = _checks.integer("T", T, low=1)
    for name, X in (("P", P), ("M", M)):
        _checks.finite_tensor(name, X)
        if X.dim() < 2 or X.shape[-1] != X.shape[-2]:
            raise ValueError(f"{name} must have shape (*K, d, d), got {tuple(X.shape)}")
    if P.shape[-1] != M.shape[-1] or P.dtype != M.dtype:
        raise ValueError(f"P and M must share d and dtype, got {tuple(P.shape)} {P.dtype} and "
                         f"{tuple(M.shape)} {M.dtype}")
    check_broadcast("P", P.shape[:-2], "M", M.shape[:-2])
    if torch.is_tensor(T):
        K = _checks.broadcast_shapes(P.shape[:-2], M.shape[:-2])
        if tuple(T.shape) != tuple(K):
            raise ValueError(f"T with one horizon per member must have shape {tuple(K)}, got "
                             f"{tuple(T.shape)}")
    return lyapunov_doubling(P, M, T)


def lyapunov_doubling(P, M, T):
    """``lyapunov_sum`` unchecked (the cost matrix of every training epoch). ``T`` may be a
    (*K,) integer tensor, one horizon per member: ``lyapunov_sums``."""
    if torch.is_tensor(T):
        return lyapunov_sums(P, M, T)
    S = Pacc = None
    Pk, Sk, bits = P, M, T  # Pk = P^n, Sk = S_n for n = 2^k
    while True:
        if bits & 1:
            if S is None:
                S, Pacc = Sk, Pk
            else:
                S = S + Pacc.transpose(-1, -2) @ Sk @ Pacc
                if bits > 1:
                    Pacc = Pk @ Pacc
        bits >>= 1
        if not bits:
            return S
        Sk = Sk + Pk.transpose(-1, -2) @ Sk @ Pk
        Pk = Pk @ Pk


def lyapunov_sums(P, M, T):
    """sum_{t<T_k} (P_k^t)^T M_k P_k^t for one horizon T_k per member, T (*K,): the doubling
    of ``lyapunov_doubling`` for all members at once, each member taking the blocks of its own
    set bits (O(log max T) products, as for one T)."""
    P, M = torch.broadcast_tensors(P, M)
    bits = T.to(torch.int64).to(P.device).expand(P.shape[:-2])
    S = torch.zeros_like(M)
    Pacc = torch.eye(P.shape[-1], dtype=P.dtype, device=P.device).expand_as(P)
    Pk, Sk = P, M
    levels = int(bits.max()).bit_length()  # one read of the horizons, not one per level
    for level in range(levels):
        take = (bits & 1).bool()[..., None, None]
        S = torch.where(take, S + Pacc.transpose(-1, -2) @ Sk @ Pacc, S)
        Pacc = torch.where(take, Pk @ Pacc, Pacc)
        bits = bits >> 1
        if level + 1 < levels:
            Sk = Sk + Pk.transpose(-1, -2) @ Sk @ Pk
            Pk = Pk @ Pk
    return S


def impulse_response(C: torch.Tensor, M: torch.Tensor, G: torch.Tensor, T: int,
                      baby: int = 16) -> torch.Tensor:
    """H_s = C M^s G for s = 0..T-1: C (*K, o, d), M (*K, d, d), G (*K, d, c) -> (T, *K, o, c)
    (K: ensemble axes, shared by the three or broadcast).

    Baby steps M^i G (i < baby, a power of two) by doubling, then giant steps C M^{j baby}:
    log2(baby) products of d x d matrices and T/baby small ones, instead of T sequential steps
    or log2(T) products of a T-long stack with d x d matrices. The gradient is written out
    (``_impulse``): the adjoint of the same steps, with the giant chain's gradient of
    M^baby formed as one product of stacked factors.
    """
    if C.dim() == 2 and M.dim() == 2 and G.dim() == 2:
        return ImpulseResponse.apply(C, M, G, T, baby)
    K = _checks.broadcast_shapes(C.shape[:-2], M.shape[:-2], G.shape[:-2])
    # one flattened ensemble axis: the products become batched (b)mm on contiguous blocks
    flat = [X.expand(*K, *X.shape[-2:]).reshape(-1, *X.shape[-2:]) for X in (C, M, G)]
    H = ImpulseResponse.apply(*flat, T, baby)                          # (T, Kf, o, c)
    return H.reshape(T, *K, *H.shape[-2:])


def fft_length(L: int) -> int:
    """The smallest 5-smooth n >= 2L - 1: a linear convolution of two length-L sequences
    fits in n points, and FFTs of 5-smooth lengths are fast (2 x 301 = 2 x 7 x 43 is not)."""
    n = 2 * L - 1
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def causal_conv(H: torch.Tensor, seq_fft: torch.Tensor) -> torch.Tensor:
    """y[t] = sum_{s <= t} H_s seq[t - s] for t < L (the response at t to inputs seq[j]
    entering at t = j): H (L, *E, o, c) real (E: ensemble axes), ``seq_fft`` the FFT over time,
    with ``fft_length(L)`` points, of seq (K, L, c) complex -> y (*E, K, L, o) complex."""
    L = H.shape[0]
    Hf = torch.fft.fft(H, n=seq_fft.shape[1], dim=0)
    y = torch.fft.ifft(torch.einsum("l...oc,klc->...klo", Hf, seq_fft), dim=-2)
    return y[..., :L, :]


def ramp_taps(w: torch.Tensor, most: int = 64):
    """(taps, tail) for ``sinusoid_conv``: an input weight w (L,) (real) that ends in a constant
    ``tail`` after R steps, as the (lag j, w(j) - tail) of its first R steps that are not zero;
    None where R > ``most`` (a long ramp: the FFT's ``causal_conv`` is then cheaper)."""
    w = w.tolist()
    tail = w[-1]
    R = max((j + 1 for j, v in enumerate(w) if v != tail), default=0)
    if R > most:
        return None
    return tuple((j, w[j] - tail) for j in range(R) if w[j] != tail), tail


def sinusoid_conv(H: torch.Tensor, cols: torch.Tensor, rot: torch.Tensor, taps, tail
                  ) -> torch.Tensor:
    """``causal_conv`` for inputs that are weighted sinusoids, one per row of ``rot``: input k
    is w(t) e^{i omega_k t} on input column cols[k] (rot (K, L) = e^{-i omega_k t}, w given by
    ``ramp_taps``), by a cumulative sum instead of an FFT (``_impulse.SinusoidConv``; the
    same numbers up to rounding). H (L, *E, o, c) real -> y (*E, K, L, o) complex."""
    return SinusoidConv.apply(H, cols, rot, tail, taps)


def sinusoid_conv_gram(H: torch.Tensor, cols: torch.Tensor, rot: torch.Tensor, taps, tail,
                       rows: slice, targets: torch.Tensor):
    """``sinusoid_conv``'s y (*E, K, L, o) and the Gram matrix (*E, 2K, 2K) of the errors
    y[..., 1:, rows] - targets (K, L - 1, r) complex: V V^T / (L - 1) with V = (Re; -Im) of
    the errors flattened over (L - 1, r). Differentiable in H through both; the Gram
    matrix's gradient is formed inside (``_impulse.SinusoidConv``). ``rows``: a slice (the
    gradient is added into a view of those rows)."""
    if not isinstance(rows, slice):
        raise TypeError(f"rows must be a slice of the outputs, got {type(rows).__name__}")
    return SinusoidConv.apply(H, cols, rot, tail, taps, rows, targets)


def abs2(z: torch.Tensor) -> torch.Tensor:
    """|z|^2 elementwise, real (no square root: the losses are sums of squares)."""
    return z.real ** 2 + z.imag ** 2


def check_broadcast(name_a, a, name_b, b) -> None:
    """ValueError naming ``name_b`` unless leading axes ``b`` broadcast against ``a``."""
    try:
        _checks.broadcast_shapes(a, b)
    except ValueError:
        raise ValueError(f"{name_b} has leading axes {tuple(b)} that do not broadcast "
                         f"against {name_a} {tuple(a)}") from None
