"""Closed forms of the theory (closedloop.theory): the cubic's roots against eig(P_eff), stage 1's
eigenvalues and loss, the LQR gain against the Riccati iteration."""

import numpy as np
import pytest
import torch

from closedloop import RankOneAgent, coupled, theory
from conftest import match, paper_P_eff


@pytest.mark.parametrize("seed", range(4))
def test_cubic_roots_are_eigenvalues_of_P_eff(env, seed):
    q = 0.5 * torch.randn(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ev = np.linalg.eigvals(paper_P_eff(*q.tolist()))
    zero = np.argmin(np.abs(ev))
    assert abs(ev[zero]) < 1e-10
    assert match(np.delete(ev, zero), theory.cubic_roots(q.numpy())) < 1e-9


@pytest.mark.parametrize("s_zm0", [-0.3, -0.05, 0.02, 0.2])
def test_stage1_eigenvalues(env, s_zm0):
    a = RankOneAgent(N=50, seed=1, s_zm0=s_zm0, uv_scale=1e-7, z_perp_scale=1e-7)
    ev = coupled.spectrum(a, env).numpy()[:2]
    assert match(ev, theory.stage1_eigenvalues(s_zm0)) < 1e-5


def test_stage1_loss_closed_form():
    T = 10
    for s in (-0.3, -0.01, 0.05, 0.2):
        r = abs(1 + np.sqrt(complex(s))) ** 2
        assert theory.stage1_loss(s, T) == pytest.approx(0.5 * sum(r**t for t in range(T + 1)))
    assert theory.stage1_loss(0.0, T) == pytest.approx((T + 1) / 2)


def test_lqr_gain_stabilizes_and_is_the_riccati_fixed_point(env):
    A, B = env.A.numpy(), env.B.numpy()[:, None]
    K = theory.lqr_gain(A, B)
    assert np.abs(np.linalg.eigvals(A - B @ K)).max() < 1
    # iterate the Riccati recursion from Q to convergence, independently of scipy's solver
    Q, R, X = np.eye(2), 1e-8, np.eye(2)
    for _ in range(500):
        X = Q + A.T @ X @ A - A.T @ X @ B @ np.linalg.solve(R + B.T @ X @ B, B.T @ X @ A)
    K_iter = np.linalg.solve(R + B.T @ X @ B, B.T @ X @ A)
    assert np.allclose(K, K_iter, rtol=1e-6)
