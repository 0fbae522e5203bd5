"""Linear systems (closedloop.linsys): doubling and Lyapunov sums against explicit step-by-step
sums, one horizon per member, bad arguments named."""

import pytest
import torch

from closedloop import linsys


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
