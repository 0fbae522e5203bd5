"""Training on any linear plant (issue 28): the exact loss against an explicit second-moment
recursion and a Monte-Carlo rollout written here in numpy from the step equations, the
process noise's share, the gradient against finite differences, sampled training's draws
(x_0, then the noise) against a numpy rollout of the same draws, eig(P) during training
against the roots of plant_theory's polynomial, the double integrator as a LinearPlant
against DoubleIntegrator bit for bit, sweeps over a plant family, and the errors."""

import warnings

import numpy as np
import pytest
import torch

from closedloop import DoubleIntegrator, RankOneAgent, RNNAgent, UniformBox, coupled, gains
from closedloop import plant_theory as pt
from closedloop import sweep
from closedloop.plants import LinearPlant
from closedloop.streams import Stream
from closedloop.training import train_closed_loop

TRIPLE = LinearPlant.integrator(3, x0=1.0)
OSC = LinearPlant.damped_oscillator(0.5, 0.1, 1.0, noise=0.1)
UNSTABLE = LinearPlant.unstable(1.1, x0=1.5, noise=0.05)


# independent references: the step equations, in numpy ---------------------------------------
def weights(agent):
    t = {k: v.detach().numpy() for k, v in agent.tensors.items()}
    W = np.outer(t["u"], t["v"]) if "u" in t else t["W"]
    return W, t["m"], t["z"]


def np_rollout(agent, plant, x0, w, tanh=False):
    """x_{t+1} = A x_t + B u_t + w_t, h_{t+1} = phi(W h_t + m C x_{t+1}), u_t = z.h_t, h_0 = 0:
    x (T+1, B, n), u (T+1, B)."""
    A, B, C = plant.numpy()
    W, m, z = weights(agent)
    x, h = x0.copy(), np.zeros((x0.shape[0], len(m)))
    xs, us = [x], [h @ z]
    for wt in w:
        x = x @ A.T + us[-1][:, None] * B + wt
        pre = h @ W.T + (x @ C)[:, None] * m
        h = np.tanh(pre) if tanh else pre
        xs.append(x)
        us.append(h @ z)
    return np.array(xs), np.array(us)


def np_costs(x, u, T, beta, first):
    """Per start: 1/(n T) sum_{t=first}^{first+T-1} ||x_t||^2 + beta sum_{t<T} u_t^2."""
    n = x.shape[-1]
    return (x[first:first + T] ** 2).sum((0, -1)) / (n * T) + beta * (u[:T] ** 2).sum(0)


def np_expected(agent, plant, T, beta, first):
    """E over x_0 ~ box and the noise, by the second moments Sigma_{t+1} = P Sigma_t P^T +
    sigma^2 G G^T of s = (x, h), with P and G read off the step equations."""
    A, B, C = plant.numpy()
    W, m, z = weights(agent)
    n, N = len(B), len(m)
    P = np.block([[A, np.outer(B, z)], [np.outer(m, C @ A), W + (C @ B) * np.outer(m, z)]])
    G = np.vstack([np.eye(n), np.outer(m, C)])
    Sig = np.zeros((n + N, n + N))
    Sig[:n, :n] = np.diag(np.array(plant.x0.half_width) ** 2 / 3)
    total = 0.0
    for t in range(T + first):
        if t >= first:
            total += np.trace(Sig[:n, :n]) / (n * T)
        if t < T:
            total += beta * z @ Sig[n:, n:] @ z
        Sig = P @ Sig @ P.T + plant.noise ** 2 * G @ G.T
    return total


def linear_agents():
    return [RankOneAgent(N=12, seed=3), RNNAgent(N=7, seed=2, g=0.4, activation="identity")]


# the exact loss -----------------------------------------------------------------------------
@pytest.mark.parametrize("plant", [TRIPLE, TRIPLE.with_noise(0.2), OSC, UNSTABLE],
                         ids=["triple", "triple_noisy", "oscillator_noisy", "unstable_noisy"])
@pytest.mark.parametrize("window,first", [("from_x0", 0), ("after_x0", 1)])
def test_exact_loss_is_the_second_moment_sum(plant, window, first):
    for agent in linear_agents():
        got = coupled.expected_loss(agent, plant, 17, 0.3, window).item()
        want = np_expected(agent, plant, 17, 0.3, first)
        assert got == pytest.approx(want, rel=1e-10)
        assert pt.expected_loss(agent, plant, 17, 0.3, window).item() == pytest.approx(
            got, rel=1e-12)


def test_exact_loss_is_the_mean_of_noisy_rollouts():
    agent, T, beta, B = RankOneAgent(N=10, seed=1), 15, 0.2, 20000
    rng = np.random.default_rng(0)
    w = np.array(OSC.x0.half_width)
    x0 = rng.uniform(-w, w, size=(B, 2))
    noise = OSC.noise * rng.standard_normal((T, B, 2))
    x, u = np_rollout(agent, OSC, x0, noise)
    c = np_costs(x, u, T, beta, 0)
    exact = coupled.expected_loss(agent, OSC, T, beta).item()
    assert abs(c.mean() - exact) < 4 * c.std() / np.sqrt(B)
    quiet = np_costs(*np_rollout(agent, OSC, x0, 0 * noise), T, beta, 0)  # the noise counts
    assert abs(quiet.mean() - exact) > 4 * c.std() / np.sqrt(B)


def test_the_package_rollout_is_the_step_equations():
    x0 = TRIPLE.sample_x0(5, torch.Generator().manual_seed(1))
    w = 0.3 * torch.randn(9, 5, 3, generator=torch.Generator().manual_seed(2), dtype=x0.dtype)
    for agent, tanh in [(RankOneAgent(N=8, seed=0), False), (RNNAgent(N=6, seed=1), True)]:
        got = coupled.rollout(agent, TRIPLE, x0, 9, w)
        x, u = np_rollout(agent, TRIPLE, x0.numpy(), w.numpy(), tanh)
        np.testing.assert_allclose(got["x"].detach().numpy(), x, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got["u"].detach().numpy(), u, rtol=1e-12, atol=1e-12)
    rank_one = RankOneAgent(N=8, seed=0)
    eff = coupled.effective_rollout(rank_one.overlaps().detach(), TRIPLE, x0, 9, w)
    x, u = np_rollout(rank_one, TRIPLE, x0.numpy(), w.numpy())  # P_eff with the noise's G_eff
    np.testing.assert_allclose(eff["x"].numpy(), x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(eff["u"].numpy(), u, rtol=1e-10, atol=1e-12)


def test_exact_loss_gradient_matches_finite_differences():
    agent = RankOneAgent(N=10, seed=4)
    loss = lambda a: coupled.expected_loss(a, OSC, 20, 0.1, "after_x0")
    grads = torch.autograd.grad(loss(agent), agent.parameters())
    gen = torch.Generator().manual_seed(0)
    dirs = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in agent.parameters()]
    eps, shifted = 1e-6, []
    for sign in (1, -1):
        a = agent.detached()
        with torch.no_grad():
            for p, d in zip(a.parameters(), dirs):
                p.add_(sign * eps * d)
        shifted.append(loss(a).item())
    fd = (shifted[0] - shifted[1]) / (2 * eps)
    analytic = sum((g * d).sum() for g, d in zip(grads, dirs)).item()
    assert analytic == pytest.approx(fd, rel=1e-6)


# training ------------------------------------------------------------------------------------
def assert_same_bits(a, b):
    assert set(a.arrays) == set(b.arrays)
    for k in a.arrays:
        assert torch.equal(torch.from_numpy(a.arrays[k]), torch.from_numpy(b.arrays[k])), k


@pytest.mark.parametrize("make,kw", [
    (lambda: RankOneAgent(N=15, seed=1), dict(mode="exact")),
    (lambda: RankOneAgent(N=15, seed=2, s_zm0=0.05), dict(batch=12, seed=3)),
    (lambda: RNNAgent(N=10, seed=4), dict(batch=9, seed=5, beta=0.005)),
], ids=["rank_one_exact", "rank_one_sampled", "tanh_sampled"])
def test_the_double_integrator_as_a_linear_plant_trains_to_the_same_bits(make, kw):
    half = 1.0 if "beta" in kw else 2.0
    runs = [train_closed_loop(make(), env, epochs=5, T=20, **kw)
            for env in (DoubleIntegrator(UniformBox(half)),
                        LinearPlant.double_integrator(x0=half))]
    assert_same_bits(*runs)


@pytest.mark.parametrize("make,tanh", [(lambda: RankOneAgent(N=9, seed=1), False),
                                       (lambda: RNNAgent(N=9, seed=1, g=0.3,
                                                         activation="identity"), False),
                                       (lambda: RNNAgent(N=9, seed=1), True)],
                         ids=["rank_one", "linear_full", "tanh"])
def test_sampled_training_draws_x0_then_the_noise(make, tanh):
    """The first loss is the batch's cost under the run's draws: x_0 from the box, then the
    noise, from one generator at the seed, as a numpy rollout computes it."""
    agent, T, B, beta = make(), 12, 7, 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h = train_closed_loop(agent.detached(), OSC, epochs=1, T=T, batch=B, beta=beta, seed=6)
    gen = torch.Generator().manual_seed(6)
    x0 = OSC.x0.sample(B, gen)
    w = OSC.noise * torch.randn(T, B, 2, generator=gen, dtype=x0.dtype)
    c = np_costs(*np_rollout(agent, OSC, x0.numpy(), w.numpy(), tanh), T,
                 beta * B / T if tanh else beta, 0)
    want = T * c.mean() if tanh else c.mean()  # the authors' tanh loss sums over time
    assert h.loss[0] == pytest.approx(want, rel=1e-11)
    if not tanh:  # the recorded expected loss includes the noise
        assert h.expected_loss[0] == pytest.approx(np_expected(agent, OSC, T, beta, 0),
                                                   rel=1e-10)


def test_exact_training_on_a_noisy_plant_descends_the_exact_loss():
    agent = RankOneAgent(N=10, seed=0)
    h = train_closed_loop(agent, OSC, epochs=8, T=20, mode="exact")
    np.testing.assert_array_equal(h.loss, h.expected_loss)
    assert h.expected_loss[-1] == pytest.approx(np_expected(agent, OSC, 20, 0.0, 0), rel=1e-10)
    assert h.expected_loss[-1] < h.expected_loss[0]


def test_members_with_their_own_horizon_and_noise_equal_their_runs_alone():
    agents = [RankOneAgent(N=8, seed=s) for s in range(3)]
    Ts, seeds = [10, 16, 13], [4, 5, 6]
    h = train_closed_loop(RankOneAgent.stack([a.detached() for a in agents]), OSC, epochs=4,
                          T=Ts, batch=6, seed=seeds)
    for k in range(3):
        alone = train_closed_loop(agents[k], OSC, epochs=4, T=Ts[k], batch=6, seed=seeds[k])
        np.testing.assert_allclose(h.loss[:, k], alone.loss, rtol=1e-10)
        np.testing.assert_allclose(h.expected_loss[:, k], alone.expected_loss, rtol=1e-10)


def test_eig_P_during_training_are_the_roots_of_the_plant_polynomial():
    like = RankOneAgent(N=20, seed=2)
    h = train_closed_loop(like.detached(), TRIPLE, epochs=12, T=25, batch=10, snapshot_every=4)
    for e in h.snapshot_epoch:
        agent = h.agent_at(int(e), like)
        P = coupled.coupled_matrix(agent, TRIPLE).detach().numpy()
        ev = np.linalg.eigvals(P)
        roots = pt.roots(h.overlaps[e], TRIPLE)
        assert roots.shape == (4,)
        for r in roots:  # each root an eigenvalue of the full P
            assert np.abs(ev - r).min() <= 1e-9 * max(1.0, abs(r))
        recorded = h.eig_P[e]  # P_eff's n + 2: the roots and one structural zero
        assert np.sort_complex(recorded[:4]) == pytest.approx(np.sort_complex(roots),
                                                              rel=1e-9)
        assert abs(recorded[4]) < 1e-9


def test_a_sweep_over_damping_trains_each_member_as_alone():
    grid = {"plant": ["damped_oscillator"], "omega": [0.5], "dt": [1.0], "zeta": [0.05, 0.4],
            "noise": [0.1], "seed": [0, 1], "N": [6], "epochs": [4], "batch": [5], "T": [12]}
    h = sweep.run(grid, chunk_size=4, progress=False)
    c = sweep.coords_of(h)
    assert list(c["zeta"]) == [0.05, 0.05, 0.4, 0.4] and h.eig_P.shape[-1] == 4
    k = 3
    plant = LinearPlant.damped_oscillator(0.5, 0.4, 1.0, noise=0.1)
    alone = train_closed_loop(RankOneAgent(N=6, seed=1), plant, epochs=4, batch=5, T=12,
                              seed=1)
    np.testing.assert_allclose(h.loss[:, k], alone.loss, rtol=1e-10)
    h2 = sweep.run({"plant": [TRIPLE], "x0_half_width": [1.0], "seed": [0], "N": [6],
                    "epochs": [2], "batch": [5], "T": [12]}, progress=False)
    again = train_closed_loop(RankOneAgent(N=6, seed=0), TRIPLE, epochs=2, batch=5, T=12)
    np.testing.assert_allclose(h2.loss[:, 0], again.loss, rtol=1e-10)


# bad input ------------------------------------------------------------------------------------
class Env:
    """A duck-typed plant with chosen matrices."""

    def __init__(self, A, B, C):
        self.A, self.B, self.C = (torch.tensor(v, dtype=torch.float64) for v in (A, B, C))
        self.dtype, self.noise = torch.float64, 0.0

    def sample_x0(self, batch, gen):
        return torch.rand(batch, self.A.shape[0], generator=gen, dtype=self.dtype)

    def x0_factor(self):
        return torch.eye(self.A.shape[0], dtype=self.dtype)


def test_bad_input_is_named():
    a = RankOneAgent(N=5, seed=0)
    x0 = torch.zeros(4, 3, dtype=torch.float64)
    cases = [
        (lambda: train_closed_loop(a, Env(np.eye(3), np.ones(3), np.ones((2, 3))), epochs=1),
         ValueError, r"env\.C must have shape \(3,\).*one number"),
        (lambda: coupled.expected_loss(a, Env(np.eye(3), np.ones(2), np.ones(3)), 5),
         ValueError, r"env\.B must have shape \(3,\)"),
        (lambda: coupled.expected_loss(a, Env([[1.0, np.nan], [0, 1]], [0, 1], [1, 0]), 5),
         ValueError, r"env\.A has non-finite"),
        (lambda: coupled.rollout(a, OSC, torch.zeros(4, 2, dtype=torch.float64), 5),
         ValueError, "noise"),
        (lambda: coupled.closed_loop_loss(a, OSC, torch.zeros(4, 2, dtype=torch.float64), 5),
         ValueError, "noise"),
        (lambda: coupled.start_costs(a, UNSTABLE, torch.zeros(4, 1, dtype=torch.float64), 5),
         ValueError, "noise"),
        (lambda: coupled.effective_rollout(a.overlaps(), OSC, torch.zeros(4, 2,
                                           dtype=torch.float64), 5), ValueError, "noise"),
        (lambda: coupled.rollout(a, TRIPLE, x0, 5, torch.zeros(4, 4, 3, dtype=torch.float64)),
         ValueError, "w must have shape"),
        (lambda: coupled.rollout(a, TRIPLE, x0, 5, torch.full((5, 4, 3), np.inf,
                                                               dtype=torch.float64)),
         ValueError, "w"),
        (lambda: coupled.rollout(a, TRIPLE, torch.zeros(4, 2, dtype=torch.float64), 5),
         ValueError, r"x0 must have shape \(B, 3\)"),
        (lambda: gains.probe(OSC, gains.fixed_starts(OSC, 5), 10), ValueError, "noise"),
        (lambda: train_closed_loop(RankOneAgent(N=100, seed=Stream(0, "authors")), TRIPLE,
                                   epochs=1, seed=Stream(0, "authors")), ValueError, "seed"),
        (lambda: train_closed_loop(RankOneAgent(N=100, seed=Stream(0, "authors")),
                                   LinearPlant.double_integrator(noise=0.1), epochs=1,
                                   seed=Stream(0, "authors")), ValueError, "noise"),
        (lambda: train_closed_loop(RankOneAgent(N=5, dtype=torch.float32), TRIPLE, epochs=1),
         TypeError, "dtype"),
        (lambda: sweep.points_of({"plant": ["unstable"]}), ValueError, r"needs \['a'\]"),
        (lambda: sweep.points_of({"zeta": [0.1]}), ValueError, "zeta"),
        (lambda: sweep.points_of({"plant": [OSC]}), ValueError, "noise"),
    ]
    for call, err, match in cases:
        with pytest.raises(err, match=match):
            call()
    # the noise-free copy of a noisy plant is explicit, and then measured
    assert gains.probe(OSC.with_noise(0.0), gains.fixed_starts(OSC, 5), 10) is not None


def test_open_loop_teacher_inputs_refuse_a_noisy_plant():
    from closedloop.training import open_loop_inputs, train_open_loop

    a, b = RNNAgent(N=5, seed=0), RNNAgent(N=5, seed=1)
    with pytest.raises(ValueError, match="noise"):
        open_loop_inputs("teacher", 4, 5, 0, b, OSC)
    with pytest.raises(ValueError, match="noise"):
        train_open_loop(a, b, OSC, epochs=1, T=5, batch=4, inputs="teacher")
    y = open_loop_inputs("teacher", 4, 5, 0, b, OSC.with_noise(0.0))
    assert y.shape == (5, 4)
