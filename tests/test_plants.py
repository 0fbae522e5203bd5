"""Linear plants and their closed-loop theory (closedloop.plants, closedloop.plant_theory),
against independent math: an ODE solver, path counts, plain step loops, eigenvalues of the
full network, finite-size expansions, Monte Carlo, and the double integrator's closed forms."""

import math

import numpy as np
import pytest
import scipy.integrate
import torch

from closedloop import DoubleIntegrator, RankOneAgent, RNNAgent, UniformBox, coupled, theory
from closedloop import plant_theory as pt
from closedloop.plants import Box, LinearPlant
from conftest import central_difference, match

PLANTS = {
    "integrator1": lambda **kw: LinearPlant.integrator(1, **kw),        # C B = 1
    "integrator3": lambda **kw: LinearPlant.integrator(3, **kw),
    "oscillator": lambda **kw: LinearPlant.damped_oscillator(1.3, 0.05, 0.4, **kw),  # C B != 0
    "unstable": lambda **kw: LinearPlant.unstable(-1.4, **kw),
    "double": lambda **kw: LinearPlant.double_integrator(**kw),
}


# the plants ---------------------------------------------------------------------------------
def test_double_integrator_is_the_papers():
    p, env = LinearPlant.double_integrator(), DoubleIntegrator()
    for name in "ABC":
        assert torch.equal(getattr(p, name), getattr(env, name))
    assert torch.equal(p.x0_factor(), env.x0_factor())


@pytest.mark.parametrize("k,dt", [(1, 1.0), (3, 1.0), (4, 0.5)])
def test_integrator_chain_impulse_response_counts_paths(k, dt):
    """C A^{j-1} B of the Euler chain: dt^k times the number of ways to climb k - 1 levels in
    j - 1 steps, binom(j - 1, k - 1)."""
    A, B, C = LinearPlant.integrator(k, dt=dt).numpy()
    for j in range(1, 12):
        got = C @ np.linalg.matrix_power(A, j - 1) @ B
        assert got == pytest.approx(dt ** k * math.comb(j - 1, k - 1), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("omega,zeta,dt", [(1.3, 0.05, 0.4), (2.0, 0.3, 0.1), (0.7, 0.0, 1.0)])
def test_damped_oscillator_is_the_ode_over_one_step(omega, zeta, dt):
    """One step of (A, B) = the ODE p'' = -omega^2 p - 2 zeta omega p' + u integrated over dt
    with u held, by scipy's RK45; eig(A) = exp(dt * the continuous roots)."""
    A, B, _ = LinearPlant.damped_oscillator(omega, zeta, dt).numpy()
    x0, u = np.array([0.3, -0.2]), 0.7
    sol = scipy.integrate.solve_ivp(
        lambda t, x: [x[1], -omega ** 2 * x[0] - 2 * zeta * omega * x[1] + u],
        (0, dt), x0, rtol=1e-12, atol=1e-14)
    assert np.allclose(A @ x0 + B * u, sol.y[:, -1], rtol=1e-9, atol=1e-11)
    cont = np.roots([1, 2 * zeta * omega, omega ** 2])
    assert match(np.linalg.eigvals(A), np.exp(dt * cont)) < 1e-12


def test_unstable_plant():
    p = LinearPlant.unstable(1.5)
    assert p.numpy()[0].tolist() == [[1.5]] and p.n_state == 1
    for a in (1.0, -0.5, 0.0):
        with pytest.raises(ValueError, match="a must satisfy"):
            LinearPlant.unstable(a)


@pytest.mark.parametrize("kwargs,err,msg", [
    (dict(A=[[1, 2, 3]], B=[1], C=[1]), ValueError, "A must be a square"),
    (dict(A=np.eye(2), B=[1, 0, 0], C=[1, 0]), ValueError, "B must have shape"),
    (dict(A=np.eye(2), B=[0, 1], C=[[1], [0]]), ValueError, "C must have shape"),
    (dict(A=[[1, np.nan], [0, 1]], B=[0, 1], C=[1, 0]), ValueError, "A must be finite"),
    (dict(A=[[1, 1], [0, 1]], B=[0, np.inf], C=[1, 0]), ValueError, "B must be finite"),
    (dict(A="eye", B=[0, 1], C=[1, 0]), TypeError, "A must be real"),
    (dict(A=[[1, 1], [0, 1]], B=[0, 1], C=[1, 0], noise=-0.1), ValueError, "noise must be"),
    (dict(A=[[1, 1], [0, 1]], B=[0, 1], C=[1, 0], x0=[1, 2, 3]), ValueError, "n = 2"),
    (dict(A=[[1, 1], [0, 1]], B=[0, 1], C=[1, 0], x0="wide"), TypeError, "x0 must be"),
    (dict(A=np.diag([0.5, 1.2]), B=[1, 0], C=[1, 1]), ValueError, r"\(A, B\) is not contr"),
    (dict(A=np.diag([0.5, 1.2]), B=[1, 1], C=[1, 0]), ValueError, r"\(A, C\) is not obs"),
])
def test_bad_plants_are_named(kwargs, err, msg):
    with pytest.raises(err, match=msg):
        LinearPlant(**kwargs)


def test_bad_constructor_arguments_are_named():
    with pytest.raises(ValueError, match="k must be"):
        LinearPlant.integrator(0)
    with pytest.raises(ValueError, match="zeta must be"):
        LinearPlant.damped_oscillator(1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="omega must be"):
        LinearPlant.damped_oscillator(0.0, 0.1, 0.1)
    # sampling at half the oscillation's period hides it: (A, B) loses controllability
    with pytest.raises(ValueError, match="not controllable"):
        LinearPlant.damped_oscillator(1.0, 0.0, np.pi)


@pytest.mark.parametrize("A,B,C,hidden", [
    (np.diag([0.5, 1.2]), [1, 0], [1, 1], 1.2),     # uncontrollable
    (np.diag([0.5, 1.2]), [1, 1], [1, 0], 1.2),     # unobservable
])
def test_a_hidden_mode_stays_in_every_closed_loop(A, B, C, hidden):
    """Why ``minimal`` is the default: the mode is an eigenvalue of P for any network."""
    p = LinearPlant(A, B, C, minimal=False)
    assert not (p.controllable and p.observable)
    for seed in range(3):
        a = RNNAgent(N=7, g=0.9, activation="identity", seed=seed, init="gaussian")
        ev = np.linalg.eigvals(pt.coupled_matrix(a, p).detach().numpy())
        assert np.abs(ev - hidden).min() < 1e-9


def test_box_moments_and_the_uniform_box():
    box = Box([0.5, 2.0, 3.0])
    x = box.sample(200000, torch.Generator().manual_seed(0)).numpy()
    assert np.all(np.abs(x).max(0) <= [0.5, 2.0, 3.0])
    S = box.second_moment().numpy()
    assert np.allclose(x.T @ x / len(x), S, atol=0.03)
    F = box.factor().numpy()
    assert np.allclose(F.T @ F, np.diag([0.25, 4.0, 9.0]) / 3, rtol=1e-14)
    p = LinearPlant.double_integrator(x0=UniformBox((1.0, 3.0)))
    assert p.x0.half_width == (1.0, 3.0)
    with pytest.raises(ValueError, match="n .*required"):
        Box(2.0)


def test_step_and_noise():
    p = LinearPlant.integrator(3, noise=0.5)
    g = torch.Generator().manual_seed(0)
    x, u = p.sample_x0(4, g), torch.tensor([0.1, 0.2, -0.3, 0.0], dtype=torch.float64)
    w = p.sample_noise(1000, 4, g)
    assert w.shape == (1000, 4, 3) and abs(w.std().item() - 0.5) < 0.02
    A, B, _ = p.numpy()
    assert np.allclose(p.step(x, u, w[0]).numpy(), x.numpy() @ A.T + u.numpy()[:, None] * B
                       + w[0].numpy(), rtol=1e-14)
    with pytest.raises(ValueError, match="x must have shape"):
        p.step(x[:, :2], u)


# the coupled matrix -------------------------------------------------------------------------
def step_loop(A, B, C, W, m, z, x, h, w=None):
    """One step of the closed loop written plainly: u = z.h, x' = A x + B u + w,
    h' = W h + m C x'."""
    x1 = A @ x + B * (z @ h) + (0 if w is None else w)
    return x1, W @ h + m * (C @ x1)


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_coupled_matrix_steps_the_loop(plant):
    """P s and G w against the step loop, from an arbitrary (x, h), noise included."""
    p = PLANTS[plant]()
    A, B, C = p.numpy()
    a = RNNAgent(N=9, g=0.8, activation="identity", seed=2, init="gaussian")
    W, m, z = (a.tensors[k].detach().numpy() for k in "Wmz")
    P = pt.coupled_matrix(a, p).detach().numpy()
    G = pt.noise_matrix(a, p).detach().numpy()
    rng = np.random.default_rng(0)
    x, h = rng.normal(size=p.n_state), rng.normal(size=9)
    for _ in range(6):
        w = rng.normal(size=p.n_state)
        x1, h1 = step_loop(A, B, C, W, m, z, x, h, w)
        s1 = P @ np.concatenate([x, h]) + G @ w
        assert np.allclose(s1, np.concatenate([x1, h1]), rtol=1e-12, atol=1e-13)
        x, h = x1, h1


@pytest.mark.parametrize("plant", sorted(PLANTS))
@pytest.mark.parametrize("seed,uv", [(0, 1.0), (1, 3.0), (2, 0.5)])
def test_eig_P_eff_equals_the_nonzero_eig_of_P(plant, seed, uv):
    """The full N = 30 network: the lift L (x, a, b) = (x, a m + b u) intertwines,
    P L = L P_eff and G = L G_eff; the n + 1 largest eigenvalues of P are the roots of q, and
    P_eff's n + 2 are those and one 0."""
    p = PLANTS[plant]()
    n = p.n_state
    a = RankOneAgent(N=30, seed=seed, uv_scale=uv)
    u, v, z, m = (a.tensors[k].detach().numpy() for k in "uvzm")
    q = a.overlaps().detach()
    P = pt.coupled_matrix(a, p).detach().numpy()
    Pe = pt.effective_matrix(q, p).numpy()
    L = np.zeros((n + 30, n + 2))
    L[:n, :n], L[n:, n], L[n:, n + 1] = np.eye(n), m, u
    scale = np.abs(P).max()
    assert np.abs(P @ L - L @ Pe).max() < 1e-13 * scale
    assert np.allclose(pt.noise_matrix(a, p).detach().numpy(),
                       L @ pt.effective_noise_matrix(p).numpy(), rtol=1e-14, atol=1e-15)
    full = np.linalg.eigvals(P)
    full = full[np.argsort(-np.abs(full))]
    rho = np.abs(full[0])
    assert np.abs(full[n + 1:]).max() < 1e-12 * rho
    eff = np.linalg.eigvals(Pe)
    eff = eff[np.argsort(-np.abs(eff))]
    assert abs(eff[-1]) < 1e-12 * rho
    assert match(full[:n + 1], eff[:n + 1]) < 1e-9 * rho
    assert match(pt.roots(q, p), full[:n + 1]) < 1e-9 * rho


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_characteristic_polynomial_is_det_of_P_eff(plant):
    """det(lambda I - P_eff) = lambda q(lambda) at several lambda, as a determinant (no
    eigenvalues), at random overlaps."""
    p = PLANTS[plant]()
    rng = np.random.default_rng(3)
    q = rng.normal(size=(5, 4))
    c = pt.characteristic_polynomial(q, p)
    assert c.shape == (5, p.n_state + 2) and np.all(c[:, 0] == 1)
    Pe = pt.effective_matrix(q, p).numpy()
    for lam in (0.3, -1.7, 2.2 + 0.5j):
        det = np.linalg.det(lam * np.eye(p.n_state + 2) - Pe)
        assert np.allclose(det, lam * np.polyval(c.T, lam), rtol=1e-11)


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_q_basis_combines_into_det_of_P_eff(plant):
    """q = row 0 - s_vu row 1 - s_zm row 2 + (s_zm s_vu - s_vm s_zu) row 3 of ``q_basis`` is
    det(lambda I - P_eff) / lambda, as a determinant, at random overlaps."""
    p = PLANTS[plant]()
    rows = pt.q_basis(p)
    assert rows.shape == (4, p.n_state + 2)
    for s_zm, s_zu, s_vm, s_vu in np.random.default_rng(4).normal(size=(3, 4)):
        c = rows[0] - s_vu * rows[1] - s_zm * rows[2] + (s_zm * s_vu - s_vm * s_zu) * rows[3]
        Pe = pt.effective_matrix([s_zm, s_zu, s_vm, s_vu], p).numpy()
        for lam in (0.3, -1.7, 2.2 + 0.5j):
            det = np.linalg.det(lam * np.eye(p.n_state + 2) - Pe)
            assert np.allclose(det, lam * np.polyval(c, lam), rtol=1e-11)


# the stages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("plant", sorted(PLANTS))
@pytest.mark.parametrize("s_zm", [-0.4, -0.05, 0.15])
def test_stage1_eigenvalues_of_a_network_with_negligible_u_v(plant, s_zm):
    p = PLANTS[plant]()
    a = RankOneAgent(N=20, seed=1, s_zm0=s_zm, uv_scale=1e-7, z_perp_scale=1e-7)
    ev = np.linalg.eigvals(pt.coupled_matrix(a, p).detach().numpy())
    want = np.concatenate([pt.stage1_eigenvalues(s_zm, p), np.zeros(20)])
    assert match(ev, want) < 1e-5


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_stage2_expansion_is_first_order_in_s_vm_s_zu(plant):
    """Exact roots (eigenvalues of P_eff) against the expansion as eps = s_vm s_zu -> 0: the
    error is O(eps^2), quartered when eps is halved, for the RNN's and the plant's
    eigenvalues."""
    p = PLANTS[plant]()
    base = np.array([-0.15, 0.8, 0.6, -0.3])  # s_vu away from the stage-1 eigenvalues
    errs = []
    for eps in (0.004, 0.002, 0.001):
        q = base * [1, eps, 1, 1]
        exact = np.linalg.eigvals(pt.effective_matrix(q, p).numpy())
        rnn = pt.perturbative_rnn_eigenvalue(q, p)
        i = np.argmin(np.abs(exact - rnn))
        plant_ev = pt.perturbative_plant_eigenvalues(q, p)
        rest = np.delete(exact, i)
        rest = rest[np.argsort(np.abs(rest))][1:]  # drop the structural 0
        errs.append([abs(exact[i] - rnn), match(rest, plant_ev)])
        assert abs(exact[i] - base[3]) > 30 * errs[-1][0]  # the correction is resolved
    errs = np.array(errs)
    ratios = errs[:-1] / errs[1:]
    assert np.all((ratios > 3.6) & (ratios < 4.4)), ratios


def test_double_integrator_agrees_with_the_papers_closed_forms():
    p, env = LinearPlant.double_integrator(), DoubleIntegrator()
    q = np.random.default_rng(4).normal(size=(20, 4))
    assert np.allclose(pt.characteristic_polynomial(q, p), theory.cubic_coefficients(q),
                       rtol=1e-12, atol=1e-15)
    assert np.allclose(pt.perturbative_rnn_eigenvalue(q, p), theory.perturbative_lambda3(q),
                       rtol=1e-12)
    assert match(pt.roots(q[0], p), theory.cubic_roots(q[0])) < 1e-12
    for s in (-0.3, 0.02, 0.2):
        assert match(pt.stage1_eigenvalues(s, p), theory.stage1_eigenvalues(s)) < 1e-12
    qt = torch.tensor(q)
    assert torch.equal(pt.effective_matrix(qt, p), coupled.effective_matrix(qt, env))
    a = RNNAgent(N=6, g=0.7, activation="identity", seed=0)
    assert torch.equal(pt.coupled_matrix(a, p), coupled.coupled_matrix(a, env))


# the expected loss --------------------------------------------------------------------------
def plain_cost(A, B, C, W, m, z, x0, ws, T, beta, first):
    """The episode cost 1/(nT) sum_{t in window} |x_t|^2 + beta sum_{t<T} u_t^2 by stepping,
    x0 (n,), ws (T, n)."""
    n, x, h, cost = len(x0), x0.copy(), np.zeros(len(m)), 0.0
    for t in range(T):
        u = z @ h
        cost += beta * u ** 2 + (0 if first else x @ x / (n * T))
        x, h = step_loop(A, B, C, W, m, z, x, h, ws[t])
        cost += x @ x / (n * T) if first else 0
    return cost


@pytest.mark.parametrize("plant", ["integrator1", "oscillator", "integrator3"])
@pytest.mark.parametrize("window,first", [("from_x0", 0), ("after_x0", 1)])
@pytest.mark.parametrize("rank_one", [False, True])
def test_expected_loss_is_the_sum_over_impulses(plant, window, first, rank_one):
    """The cost is a quadratic form in (x_0, w_0..w_{T-1}), independent and zero-mean, so its
    mean is the costs from the rows of F (F^T F = E x_0 x_0^T) plus sigma^2 times the costs of
    each unit kick e_i at each step j alone, stepped plainly."""
    p = PLANTS[plant](noise=0.3)
    n, T, beta = p.n_state, 12, 0.4
    a = (RankOneAgent(N=10, seed=3, uv_scale=0.8) if rank_one
         else RNNAgent(N=10, g=0.6, activation="identity", seed=3, init="gaussian"))
    A, B, C = p.numpy()
    W, m, z = (t.detach().numpy() for t in (a.recurrent_matrix(), a.m, a.z))
    F = p.x0_factor().numpy()
    zero_w, want = np.zeros((T, n)), 0.0
    for row in F:
        want += plain_cost(A, B, C, W, m, z, row, zero_w, T, beta, first)
    for j in range(T):
        for i in range(n):
            ws = zero_w.copy()
            ws[j, i] = 1.0
            want += 0.09 * plain_cost(A, B, C, W, m, z, np.zeros(n), ws, T, beta, first)
    got = pt.expected_loss(a, p, T, beta, window).item()
    assert got == pytest.approx(want, rel=1e-10)
    quiet = pt.expected_loss(a, PLANTS[plant](), T, beta, window).item()
    assert pt.noise_loss(a, p, T, beta, window).item() == pytest.approx(got - quiet, rel=1e-9)


@pytest.mark.parametrize("plant", ["unstable", "oscillator"])
def test_expected_loss_is_the_mean_over_sampled_starts_and_noise(plant):
    p = PLANTS[plant](noise=0.5)
    n, T, beta, B_ = p.n_state, 15, 0.2, 40000
    a = RNNAgent(N=8, g=0.5, activation="identity", seed=1, init="gaussian")
    g = torch.Generator().manual_seed(7)
    x, w = p.sample_x0(B_, g), p.sample_noise(T, B_, g)
    h = x.new_zeros(B_, 8)
    cost = torch.zeros(B_, dtype=torch.float64)
    with torch.no_grad():
        for t in range(T):
            u = a.readout(h)
            cost += beta * u ** 2 + (x ** 2).sum(-1) / (n * T)
            x = p.step(x, u, w[t])
            h = a.step(h, p.observe(x))
    exact = pt.expected_loss(a, p, T, beta).item()
    sem = cost.std().item() / np.sqrt(B_)
    assert abs(cost.mean().item() - exact) < 4 * sem
    assert pt.noise_loss(a, p, T, beta).item() > 20 * sem  # the noise term is resolved


@pytest.mark.parametrize("window", ["from_x0", "after_x0"])
def test_expected_loss_on_the_double_integrator_is_coupleds(window):
    p, env = LinearPlant.double_integrator(), DoubleIntegrator()
    for a in (RankOneAgent(N=30, seed=2, uv_scale=0.7),
              RNNAgent(N=12, g=0.5, activation="identity", seed=1),
              RankOneAgent.stack([RankOneAgent(N=8, seed=s) for s in range(3)])):
        got = pt.expected_loss(a, p, 50, 0.3, window)
        want = coupled.expected_loss(a, env, 50, 0.3, window)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_expected_loss_gradient_matches_finite_differences():
    p = LinearPlant.damped_oscillator(1.3, 0.05, 0.4, noise=0.2)
    a = RankOneAgent(N=10, seed=4)
    T, beta, h = 20, 0.2, 1e-6
    grads = torch.autograd.grad(pt.expected_loss(a, p, T, beta), a.parameters())
    for name, gr in zip(a.trainable, grads):
        for i in (0, 3, 7):
            fd = central_difference(a, lambda b: pt.expected_loss(b, p, T, beta), name, i, h)
            assert gr[i].item() == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_bad_theory_arguments_are_named():
    p = LinearPlant.integrator(3)
    with pytest.raises(ValueError, match="overlaps must have shape"):
        pt.effective_matrix(np.zeros(3), p)
    with pytest.raises(TypeError, match="plant must be"):
        pt.roots(np.zeros(4), DoubleIntegrator())
    with pytest.raises(ValueError, match="linear"):
        pt.coupled_matrix(RNNAgent(N=4, seed=0), p)
    with pytest.raises(ValueError, match="T must be"):
        pt.expected_loss(RankOneAgent(N=4, seed=0), p, 0)
    with pytest.raises(ValueError, match="window must be"):
        pt.noise_loss(RankOneAgent(N=4, seed=0), p, 5, window="all")


@pytest.mark.parametrize("make", [
    lambda dt: DoubleIntegrator(UniformBox(1.5), dtype=dt),
    lambda dt: LinearPlant.damped_oscillator(0.3, 0.1, 0.5, noise=0.2, x0=Box((1.0, 0.5)),
                                             dtype=dt)], ids=["double_integrator", "plant"])
def test_to_another_number_format_keeps_the_plant(make):
    """``env.to(dtype)``: the same matrices (rounded), noise and initial states in the other
    format, the plant itself when it is in that format already, as built there directly."""
    p64 = make(torch.float64)
    p32 = p64.to(torch.float32)
    direct = make(torch.float32)
    assert type(p32) is type(p64) and p32.dtype == torch.float32 and p64.to("float64") is p64
    for name in ("A", "B", "C"):
        assert torch.equal(getattr(p32, name), getattr(direct, name))
    assert p32.x0 == p64.x0 and getattr(p32, "noise", 0) == getattr(p64, "noise", 0)
    assert torch.equal(p32.to(torch.float64).A, p64.A.to(torch.float32).double())
    with pytest.raises((TypeError, ValueError), match="dtype"):
        p64.to(torch.int64)
