"""The coupled system against independent math: literal matrices, plain loops, closed forms."""

import numpy as np
import pytest
import torch

from benchmarks.cases import plain_closed_loop_loss
from closedloop import RankOneAgent, RNNAgent, _loop, coupled
from conftest import central_difference, match, paper_P_eff


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_effective_matrix_is_the_papers(env, seed):
    q = torch.randn(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert np.allclose(coupled.effective_matrix(q, env).numpy(), paper_P_eff(*q.tolist()))


def test_coupled_matrix_blocks(env):
    a = RNNAgent(N=5, g=0.5, activation="identity", seed=3)
    W, m, z = (a.tensors[k].detach().numpy() for k in "Wmz")
    A, B, C = np.array([[1, 1], [0, 1.0]]), np.array([[0], [1.0]]), np.array([[1, 0.0]])
    P = np.block([[A, B @ z[None]], [m[:, None] @ C @ A, W + m[:, None] @ C @ B @ z[None]]])
    assert np.allclose(coupled.coupled_matrix(a, env).detach().numpy(), P)


@pytest.mark.parametrize("seed,uv", [(0, 1.0), (1, 3.0), (2, 0.3)])
def test_eig_P_eff_equals_nonzero_eig_P(env, seed, uv):
    a = RankOneAgent(N=30, seed=seed, uv_scale=uv)
    full = torch.linalg.eigvals(coupled.coupled_matrix(a, env).detach()).numpy()
    eff = coupled.spectrum(a, env).numpy()
    top = full[np.argsort(-np.abs(full))]
    # P_eff carries the 3 nonzero eigenvalues of P and one structural zero
    assert match(top[:4], eff) < 1e-6
    assert np.abs(top[4:]).max() < 1e-6








@pytest.mark.parametrize("uv", [0.3, 1.5])
def test_rank_one_loss_and_gradients_equal_full_rollout(env, uv):
    """The 4-dim P_eff route against the N-dim step loop through h (an independent path)."""
    a = RankOneAgent(N=40, seed=2, uv_scale=uv)
    x0 = env.sample_x0(16, torch.Generator().manual_seed(0))
    fast = coupled.closed_loop_loss(a, env, x0, 30, beta=0.3)
    g_fast = torch.autograd.grad(fast, a.parameters())
    traj = coupled.rollout(a, env, x0, 30)
    slow = coupled.episode_cost(traj["x"], traj["u"], 0.3).mean()
    g_slow = torch.autograd.grad(slow, a.parameters())
    assert torch.allclose(fast, slow, rtol=1e-10)
    for gf, gs in zip(g_fast, g_slow):
        assert torch.allclose(gf, gs, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("window,first", [("from_x0", 0), ("after_x0", 1)])
def test_expected_loss_is_the_covariance_trace(env, window, first):
    """E||x_t||^2 = tr(E_x P^t S0 P^t^T E_x^T), with S0 = diag(Sigma0, 0), in plain numpy,
    over the states t = first..first+T-1 of each window."""
    a = RNNAgent(N=8, g=0.3, activation="identity", seed=5)
    P = coupled.coupled_matrix(a, env).detach().numpy()
    z = a.z.detach().numpy()
    S = np.zeros_like(P)
    S[:2, :2] = np.eye(2) * 4 / 3  # Var of U(-2, 2)
    T, beta, state, ctrl = 20, 0.7, 0.0, 0.0
    Pt = np.eye(len(P))
    for t in range(T + 1):
        cov = Pt @ S @ Pt.T
        if first <= t <= first + T - 1:
            state += np.trace(cov[:2, :2]) / (2 * T)
        if t <= T - 1:
            ctrl += z @ cov[2:, 2:] @ z
        Pt = P @ Pt
    got = coupled.expected_loss(a, env, T, beta, window=window).item()
    assert got == pytest.approx(state + beta * ctrl, rel=1e-10)


@pytest.mark.parametrize("seed", [0, 3])
def test_expected_loss_is_the_sampled_mean(env, seed):
    a = RankOneAgent(N=50, seed=seed)
    x0 = env.sample_x0(40000, torch.Generator().manual_seed(seed))
    T = 15
    with torch.no_grad():
        P, u_row = coupled.linear_system(a, env)
        s = coupled.linear_states(P, torch.cat([x0, torch.zeros(40000, 2, dtype=x0.dtype)], 1), T)
        costs = coupled.episode_cost(s[..., :2], (s * u_row).sum(-1), 0.1)
        exact = coupled.expected_loss(a, env, T, 0.1).item()
    sem = costs.std().item() / np.sqrt(len(costs))
    assert abs(costs.mean().item() - exact) < 4 * sem


def test_gradient_matches_finite_differences(env):
    a = RankOneAgent(N=20, seed=4)
    T, beta, h = 25, 0.2, 1e-6
    loss = coupled.expected_loss(a, env, T, beta)
    grads = torch.autograd.grad(loss, a.parameters())
    rng = np.random.default_rng(0)
    for name, g in zip(a.trainable, grads):
        for i in rng.choice(a.N, 4, replace=False):
            fd = central_difference(a, lambda b: coupled.expected_loss(b, env, T, beta), name, i,
                                    h)
            assert g[i].item() == pytest.approx(fd, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("window", ["from_x0", "after_x0"])
def test_tanh_rollout_matches_hand_loop(env, window):
    """The paper's window counts x_0..x_11 (the state before each step), the other x_1..x_12."""
    a = RNNAgent(N=10, g=0.8, activation="tanh", seed=1, init="gaussian")
    W, m, z = (a.tensors[k].detach().numpy() for k in "Wmz")
    x0 = np.array([[0.5, -0.3]])
    x, h, u, cost = x0[0].copy(), np.zeros(10), 0.0, 0.0
    for _ in range(12):
        if window == "from_x0":
            cost += (x ** 2).sum() / 2 / 12
        x = np.array([x[0] + x[1], x[1] + u])
        h = np.tanh(W @ h + m * x[0])
        u = z @ h
        if window == "after_x0":
            cost += (x ** 2).sum() / 2 / 12
    got = coupled.closed_loop_loss(a, env, torch.tensor(x0), 12, window=window).item()
    assert got == pytest.approx(cost, rel=1e-12)






@pytest.mark.parametrize("window", ["from_x0", "after_x0"])
@pytest.mark.parametrize("activation,g", [("tanh", 0.1), ("tanh", 2.5), ("identity", 1.3)])
def test_fast_rollout_equals_plain_loop_with_gradients(env, activation, g, window):
    """Stable and runaway networks, an ensemble of 3: losses and gradients agree."""
    a = RNNAgent(N=30, g=g, activation=activation, seed=4, batch_shape=(3,), init="gaussian")
    x0 = env.sample_x0(8, torch.Generator().manual_seed(1))
    traj = coupled.rollout(a, env, x0, 25)
    fast = coupled.episode_cost(traj["x"], traj["u"], 0.2, window=window).mean(-1)
    slow = plain_closed_loop_loss(a, env, x0, 25, 0.2, window)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=0)
    for gf, gs in zip(torch.autograd.grad(fast.sum(), a.parameters()),
                      torch.autograd.grad(slow.sum(), a.parameters())):
        torch.testing.assert_close(gf, gs, rtol=1e-8, atol=1e-12)


def test_closed_loop_backward_passes_gradcheck():
    """The hand-written BPTT against finite differences, in every argument (state matrix,
    start, readout, inputs), with and without an ensemble axis and tanh."""
    g = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()
    for K in ((), (2,)):
        PT, s0, z, inp = 0.6 * r(*K, 5, 5), r(*K, 3, 5), r(*K, 3), 0.3 * r(6, *K, 3, 5)
        for tanh in (True, False):
            def f(PT, s0, z, inp):
                x, h, u = _loop.closed_loop(PT, s0, z, 6, tanh, 2, inp)
                return x, h, u
            assert torch.autograd.gradcheck(f, (PT, s0, z, inp))
            # the outputs a loss uses alone (h unused: no gradient reaches it)
            assert torch.autograd.gradcheck(
                lambda *a: [v for i, v in enumerate(f(*a)) if i != 1], (PT, s0, z, inp))


@pytest.mark.parametrize("activation,K,y_members", [
    ("tanh", (), False), ("tanh", (3,), False), ("tanh", (3,), True), ("identity", (2,), True)])
def test_drive_equals_the_step_loop_with_gradients(activation, K, y_members):
    """Open loop through the fused loop against agent.step + readout one step at a time."""
    a = RNNAgent(N=12, g=1.5, activation=activation, seed=6, batch_shape=K)
    g = torch.Generator().manual_seed(2)
    y = torch.randn(9, *(K if y_members else ()), 5, generator=g, dtype=torch.float64)
    fast = a.drive(y)
    h, slow = y.new_zeros(*K, 5, a.N), []
    for y_t in y:
        h = a.step(h, y_t.expand(*K, 5))
        slow.append(a.readout(h))
    slow = torch.stack(slow)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-14)
    w = torch.randn(slow.shape, generator=g, dtype=torch.float64)
    for gf, gs in zip(torch.autograd.grad((fast * w).sum(), a.parameters()),
                      torch.autograd.grad((slow * w).sum(), a.parameters())):
        torch.testing.assert_close(gf, gs, rtol=1e-10, atol=1e-12)




@pytest.mark.parametrize("make", [
    lambda: RankOneAgent(N=20, seed=1, uv_scale=0.3),                     # stable
    lambda: RankOneAgent(N=20, seed=1, s_zm0=0.3),                        # runaway
    lambda: RNNAgent(N=8, g=0.5, activation="identity", seed=2),          # full linear P
    lambda: RNNAgent(N=8, g=1.5, activation="identity", seed=2, batch_shape=(3,)),
])
@pytest.mark.parametrize("window", ["from_x0", "after_x0"])
def test_batch_loss_from_the_cost_matrix_equals_stepping_every_start(env, make, window):
    """closed_loop_loss (a trace with the cost matrix, never a state) against the mean of the
    per-start costs of a plain step loop, in value and gradient, with a control cost, for
    the authors' window (x_0..x_{T-1}) and the other (x_1..x_T)."""
    agent, T, beta = make(), 40, 0.2
    x0 = env.sample_x0(64, torch.Generator().manual_seed(0))
    fast = coupled.closed_loop_loss(agent, env, x0, T, beta, window=window)
    W, m, z = agent.recurrent_matrix(), agent.tensors["m"], agent.tensors["z"]
    x, h = x0.expand(*agent.batch_shape, 64, 2), x0.new_zeros(*agent.batch_shape, 64, agent.N)
    cost = 0.0
    for _ in range(T):
        u = (h * z.unsqueeze(-2)).sum(-1)
        cost = cost + beta * u**2
        if window == "from_x0":
            cost = cost + (x**2).sum(-1) / (2 * T)
        x = x @ env.A.T + u[..., None] * env.B
        h = h @ W.transpose(-1, -2) + (x @ env.C)[..., None] * m.unsqueeze(-2)
        if window == "after_x0":
            cost = cost + (x**2).sum(-1) / (2 * T)
    slow = cost.mean(-1)
    assert torch.allclose(fast, slow, rtol=1e-10)
    for gf, gs in zip(torch.autograd.grad(fast.sum(), agent.parameters()),
                      torch.autograd.grad(slow.sum(), agent.parameters())):
        assert torch.allclose(gf, gs, rtol=1e-8, atol=1e-10 * gs.abs().max())




def test_the_spectrum_of_a_tanh_network_is_that_of_its_linearization(env):
    """tanh'(0) = 1: the Jacobian of the tanh closed loop at (x, h) = 0, by autograd through
    one step, has the eigenvalues that spectrum() reports and linearized() carries."""
    agent = RNNAgent(N=6, g=0.8, seed=4)
    lin = coupled.linearized(agent)
    assert lin.activation == "identity" and agent.activation == "tanh"

    def step(s):
        x, h = s[:2], s[2:]
        u = h @ agent.tensors["z"]
        x1 = env.A @ x + env.B * u
        h1 = torch.tanh(agent.recurrent_matrix() @ h + agent.tensors["m"] * (env.C @ x1))
        return torch.cat([x1, h1])

    J = torch.autograd.functional.jacobian(step, torch.zeros(8, dtype=torch.float64))
    assert match(torch.linalg.eigvals(J).numpy(), coupled.spectrum(agent, env).numpy()) < 1e-10
    assert torch.allclose(coupled.coupled_matrix(lin, env), J.detach())




def test_per_member_horizons_take_the_cost_matrix_path_and_match_the_states(env):
    """A linear ensemble with one T per member: the batch loss by per-member cost matrices
    equals the mean of per-start costs stepped through the states."""
    agent = RankOneAgent.stack([RankOneAgent(N=8, seed=s) for s in range(3)])
    x0 = env.sample_x0(16, torch.Generator().manual_seed(0))
    T = [5, 30, 12]
    fast = coupled.closed_loop_loss(agent, env, x0, T, 0.1)
    slow = coupled.start_costs(agent, env, x0, T, 0.1).mean(-1)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=0)
