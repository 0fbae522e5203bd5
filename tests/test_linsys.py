"""Linear systems (closedloop.linsys): doubling and Lyapunov sums against explicit step-by-step
sums, one horizon per member, bad arguments named."""

import pytest
import torch

from closedloop import _impulse, linsys


@pytest.mark.parametrize("T", [1, 2, 3, 7, 50, 64, 65])
def test_doubling_equals_step_by_step(T):
    g = torch.Generator().manual_seed(T)
    P = torch.randn(3, 5, 5, generator=g, dtype=torch.float64) / 2
    s0 = torch.randn(4, 5, generator=g, dtype=torch.float64)
    s, ref = linsys.linear_states(P, s0, T), [s0.expand(3, 4, 5)]
    for _ in range(T):
        ref.append(torch.einsum("kij,kbj->kbi", P, ref[-1]))
    assert torch.allclose(s, torch.stack(ref), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("T", [1, 2, 3, 7, 50, 64, 65])
@pytest.mark.parametrize("scale", [0.3, 0.6])  # spectral radius below and above 1
def test_lyapunov_sum_equals_the_explicit_sum(T, scale):
    g = torch.Generator().manual_seed(T)
    P = scale * torch.randn(3, 5, 5, generator=g, dtype=torch.float64)
    M = torch.randn(3, 5, 5, generator=g, dtype=torch.float64)
    ref, Pt = torch.zeros_like(M), torch.eye(5, dtype=torch.float64).expand(3, 5, 5)
    for _ in range(T):
        ref = ref + Pt.transpose(-1, -2) @ M @ Pt
        Pt = P @ Pt
    got = linsys.lyapunov_sum(P, M, T)
    assert torch.allclose(got, ref, rtol=1e-10, atol=1e-10 * ref.abs().max())


@pytest.mark.parametrize("kw,name", [(dict(T=0), "T"), (dict(T=-3), "T"), (dict(T=2.5), "T"),
                                     (dict(M=torch.ones(3, 3)), "M"),
                                     (dict(P=torch.full((2, 2), float("nan"))), "P"),
                                     (dict(M=torch.ones(2, 3, dtype=torch.float64)), "M")])
def test_lyapunov_sum_names_a_bad_argument(kw, name):
    args = dict(P=torch.eye(2, dtype=torch.float64), M=torch.eye(2, dtype=torch.float64), T=3)
    with pytest.raises((ValueError, TypeError), match=name):
        linsys.lyapunov_sum(**{**args, **kw})


@pytest.mark.parametrize("scale", [0.3, 0.6])
def test_lyapunov_sum_with_one_horizon_per_member(scale):
    """Members with horizons 1, 5, 50, 64 and 7 in one call, each against its explicit sum."""
    Ts = [1, 5, 50, 64, 7]
    g = torch.Generator().manual_seed(1)
    P = scale * torch.randn(5, 4, 4, generator=g, dtype=torch.float64)
    M = torch.randn(5, 4, 4, generator=g, dtype=torch.float64)
    got = linsys.lyapunov_sum(P, M, Ts)
    for k, T in enumerate(Ts):
        ref, Pt = torch.zeros(4, 4, dtype=torch.float64), torch.eye(4, dtype=torch.float64)
        for _ in range(T):
            ref = ref + Pt.T @ M[k] @ Pt
            Pt = P[k] @ Pt
        assert torch.allclose(got[k], ref, rtol=1e-10, atol=1e-10 * ref.abs().max())
    with pytest.raises(ValueError, match="T"):
        linsys.lyapunov_sum(P, M, [1, 2])
    with pytest.raises(ValueError, match=r"T\[1\]"):
        linsys.lyapunov_sum(P, M, [1, 0, 3, 4, 5])


def plain_impulse_response(C, M, G, T):
    """C M^s G for s < T, one step at a time, differentiated by autograd: the reference for
    the written-out gradient."""
    H, X = [], G
    for _ in range(T):
        H.append(C @ X)
        X = M @ X
    return torch.stack(H)


@pytest.mark.parametrize("path", ["numpy", "torch"])
@pytest.mark.parametrize("K", [(), (3,)], ids=["one", "ensemble"])
@pytest.mark.parametrize("T", [1, 5, 16, 17, 301])
def test_impulse_response_gradient_is_autograds(monkeypatch, path, K, T):
    """The written-out backward (``_impulse.ImpulseResponse``, on numpy arrays or on the
    tensors) against autograd through the plain steps, float64, to 1e-10 relative; for one
    system and an ensemble, and for a G that is not trained."""
    if path == "torch":  # as where numpy's BLAS is not OpenBLAS
        monkeypatch.setattr(_impulse._threads, "numpy_steps", lambda like: False)
    elif not _impulse._threads.numpy_steps(torch.zeros(1)):  # the torch case is all there is
        pytest.skip("numpy's BLAS is not an OpenBLAS: the numpy path is not taken here")
    g = torch.Generator().manual_seed(T)
    d, o, c = 7, 3, 2
    M = (torch.randn(*K, d, d, generator=g, dtype=torch.float64) / d ** 0.5).requires_grad_()
    C = torch.randn(*K, o, d, generator=g, dtype=torch.float64, requires_grad=True)
    for trained_G in (True, False):
        G = torch.randn(*K, d, c, generator=g, dtype=torch.float64, requires_grad=trained_G)
        weights = torch.randn(T, *K, o, c, generator=g, dtype=torch.float64)
        inputs = (C, M, G) if trained_G else (C, M)
        with _impulse._threads.single_thread():  # numpy's BLAS on one thread: its path
            got_H = linsys.impulse_response(C, M, G, T)
            got = torch.autograd.grad((got_H * weights).sum(), inputs, allow_unused=True)
        want_H = plain_impulse_response(C, M, G, T)
        want = torch.autograd.grad((want_H * weights).sum(), inputs, allow_unused=True)
        torch.testing.assert_close(got_H, want_H, rtol=1e-10, atol=1e-12)
        for a, b in zip(got, want):
            b = torch.zeros_like(a) if b is None else b  # T = 1: H does not depend on M
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12 * b.abs().max().item())


@pytest.mark.parametrize("reads_first", [True, False])
@pytest.mark.parametrize("ramp", [1.0, 0.0, 0.25])
@pytest.mark.parametrize("E", [(), (2,)], ids=["one", "ensemble"])
def test_sinusoid_conv_is_the_fft_convolution(reads_first, ramp, E):
    """The cumulative-sum convolution with ramped sinusoids (``sinusoid_conv``) against the
    FFT's ``causal_conv`` of the same inputs: values and gradients (autograd through the FFT)
    to 1e-10 relative."""
    from closedloop import tracking
    refs = tracking.Sinusoids(ramp=ramp, T=60)
    conv = tracking.conventions.PAPER_TRACKING if reads_first else \
        tracking.conventions.BOOK_TRACKING
    sc = refs.scoring(conv)
    assert sc.taps is not None
    g = torch.Generator().manual_seed(1)
    H = torch.randn(refs.T + 1, *E, 6, 2, generator=g, dtype=torch.float64,
                    requires_grad=True)
    got = linsys.sinusoid_conv(H, sc.cols, sc.rot, *sc.taps)
    want = linsys.causal_conv(H, sc.inputs_fft)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    w = torch.randn(got.shape, generator=g, dtype=torch.complex128)
    dgot, = torch.autograd.grad((got * w).real.sum(), H)
    dwant, = torch.autograd.grad((want * w).real.sum(), H)
    torch.testing.assert_close(dgot, dwant, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("use_y,rows", [(False, None), (True, None), (False, slice(1, 4))])
def test_sinusoid_conv_gram_is_the_errors_gram(use_y, rows):
    """The Gram matrix of the errors formed with the convolution (``sinusoid_conv_gram``)
    against ``tracking.loss.gram`` of the FFT convolution's errors: values and gradients of
    a loss that reads the Gram matrix alone or y as well, to 1e-10 relative; for the
    scoring's error rows and for three other rows (any r)."""
    from closedloop import tracking
    from closedloop.tracking.loss import ERR_ROWS, gram
    refs = tracking.Sinusoids(T=60)
    sc = refs.scoring()
    g = torch.Generator().manual_seed(2)
    H = torch.randn(refs.T + 1, 2, 6, 2, generator=g, dtype=torch.float64,
                    requires_grad=True)
    w = torch.randn(2, 2 * refs.K, 2 * refs.K, generator=g, dtype=torch.float64)
    wy = torch.randn(2, refs.K, refs.T + 1, 6, generator=g, dtype=torch.complex128)
    targets = sc.targets if rows is None else torch.randn(
        refs.K, refs.T, 3, generator=g, dtype=torch.complex128)
    rows = ERR_ROWS if rows is None else rows
    y, got = linsys.sinusoid_conv_gram(H, sc.cols, sc.rot, *sc.taps, rows, targets)
    y_fft = linsys.causal_conv(H, sc.inputs_fft)
    want = gram(y_fft[..., 1:, rows] - targets)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    losses = [(G * w).sum() + ((Y * wy).real.sum() if use_y else 0)
              for Y, G in ((y, got), (y_fft, want))]
    dgot, dwant = (torch.autograd.grad(loss, H)[0] for loss in losses)
    torch.testing.assert_close(dgot, dwant, rtol=1e-10, atol=1e-12 * dwant.abs().max().item())
