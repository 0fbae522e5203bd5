"""The linear open-loop student (closedloop.open_student, claims.ch6) against independent
math: roots of the characteristic polynomial and eig of the full coupled matrix, step-by-step
Monte Carlo rollouts of the network, matrix powers z W^k m, white-noise Monte Carlo of the
imitation loss, and train_open_loop itself."""

import math

import numpy as np
import pytest
import torch

from closedloop import DoubleIntegrator, RankOneAgent, coupled, open_student, plant_theory
from closedloop.claims import ch6
from closedloop.plants import LinearPlant
from closedloop.streams import Stream
from closedloop.training import train_closed_loop, train_open_loop

ENV = DoubleIntegrator()
PLANT = LinearPlant.double_integrator()


@pytest.fixture(scope="module")
def run():
    # a short run: its teachers are partly trained, and both students end unstable
    return open_student.train_students((0, 2), epochs=60)


def test_rho_is_the_largest_root_of_the_characteristic_polynomial(run):
    h = run.student
    roots = plant_theory.roots(h.overlaps, PLANT)
    np.testing.assert_allclose(h.spectral_radius, np.abs(roots).max(-1), rtol=1e-9)


def test_compressed_student_trains_as_the_full_one_and_rho_is_eig_of_full_P():
    full = open_student.train_students((1,), epochs=25, compress=False)
    small = open_student.train_students((1,), epochs=25)
    assert full.student_agent.N == 100 and small.student_agent.N == 4
    np.testing.assert_allclose(small.student.overlaps, full.student.overlaps, rtol=1e-9,
                               atol=1e-12)
    P = coupled.coupled_matrix(full.student_agent, ENV).detach()
    rho = torch.linalg.eigvals(P).abs().max().item()
    assert rho == pytest.approx(full.student.spectral_radius[-1, 0], rel=1e-9)


def test_one_member_is_train_open_loop():
    got = open_student.train_students((3,), stream="package", epochs=15, N=20)
    teacher = RankOneAgent(N=20, seed=3)
    student = teacher.compressed()
    train_closed_loop(teacher, ENV, epochs=15, seed=3)
    h = train_open_loop(student, teacher.compressed(), ENV, epochs=15,
                        seed=Stream(3).student(50), eig_W=False)
    np.testing.assert_allclose(got.student.overlaps[:, 0], h.overlaps, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got.student.loss[:, 0], h.loss, rtol=1e-12)


def test_closed_loss_against_a_monte_carlo_rollout(run):
    # the final student is unstable: the test covers the loops of an excursion
    net = run.student_agent.member(0)
    assert run.student.unstable[-1, 0]
    g = torch.Generator().manual_seed(5)
    B, T = 20000, run.T
    x = (4 * torch.rand(B, 2, generator=g, dtype=torch.float64) - 2)
    W, m, z = net.recurrent_matrix(), net.tensors["m"], net.tensors["z"]
    h, cost = torch.zeros(B, net.N, dtype=torch.float64), torch.zeros(B, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(T):  # x_0..x_{T-1}; u_t = z.h_t, h_{t+1} = W h_t + m y_{t+1}
            cost += (x ** 2).mean(-1) / T
            x = torch.stack([x[:, 0] + x[:, 1], x[:, 1] + h @ z], -1)
            h = h @ W.T + x[:, :1] * m
    mean, se = cost.mean().item(), cost.std().item() / math.sqrt(B)
    assert abs(mean - run.student.closed_loss[-1, 0]) < 4 * se


def test_impulse_response_is_z_W_k_m():
    net = RankOneAgent(N=30, seed=4, uv_scale=3.0)
    W, m, z = (t.detach() for t in (net.recurrent_matrix(), net.tensors["m"],
                                    net.tensors["z"]))
    direct = torch.stack([z @ torch.linalg.matrix_power(W, k) @ m for k in range(8)])
    got = open_student.impulse_response(net.overlaps().detach(), 8)
    torch.testing.assert_close(got, direct, rtol=1e-10, atol=1e-14)


def test_open_loop_loss_against_white_noise_monte_carlo():
    student, teacher = RankOneAgent(N=30, seed=1, uv_scale=3.0), RankOneAgent(N=30, seed=2,
                                                                               uv_scale=3.0)
    T, B, std = 12, 40000, 0.7
    y = std * torch.randn(T, B, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        d2 = ((student.drive(y) - teacher.drive(y)) ** 2).sum(0)  # summed over the T steps
    exact = open_student.open_loop_loss(student.overlaps(), teacher.overlaps(), T,
                                        input_std=std).item()
    assert abs(d2.mean().item() - exact) < 4 * d2.std().item() / math.sqrt(B)
    mean = open_student.open_loop_loss(student.overlaps(), teacher.overlaps(), T, "book",
                                       input_std=std).item()
    assert mean == pytest.approx(exact / T, rel=1e-12)


def test_scaling_the_inputs_leaves_a_clipped_path_unchanged():
    # sigma^2 scales the loss, and with every step clipped only its direction counts (as the
    # full run's clip of 1 against gradients of 40-130 over its first 200 epochs)
    teacher = RankOneAgent.stack([RankOneAgent(N=10, seed=s, uv_scale=3.0) for s in (1, 2)])
    paths = []
    for std in (1.0, 5.0):
        student = RankOneAgent.stack([RankOneAgent(N=10, seed=s) for s in (3, 4)])
        h = open_student.imitate(student, teacher, ENV, [Stream(5), Stream(6)], epochs=30,
                                 input_std=std)
        assert (h.grad_norm[1:-1] > 1).all()
        paths.append(h.overlaps)
    np.testing.assert_allclose(paths[0], paths[1], rtol=1e-9, atol=1e-12)


def test_first_order_pair_modulus_error_is_second_order_in_p():
    errors = []
    for p in (0.04, 0.02, 0.01):
        q = np.array([-0.3, p / 0.5, 0.5, 0.2])
        exact = np.abs(plant_theory.roots(q, PLANT)).max() ** 2
        errors.append(abs(open_student.pair_modulus_sq(q) - exact))
    assert 3.5 < errors[0] / errors[1] < 4.5 and 3.5 < errors[1] / errors[2] < 4.5
    q = np.array([-0.3, 1.0, open_student.required_product([-0.3, 1, 0, 0.2]), 0.2])
    assert open_student.pair_modulus_sq(q) == pytest.approx(1.0, abs=1e-12)
    assert np.isnan(open_student.pair_modulus_sq([0.1, 1, 1, 0]))


def test_a_positive_static_gain_puts_a_real_root_above_one():
    rng = np.random.default_rng(0)
    q = rng.uniform(-1, 1, (500, 4))
    c = plant_theory.characteristic_polynomial(q, PLANT)
    np.testing.assert_allclose(c.sum(-1),  # q(1)
                               -(1 - q[:, 3]) * open_student.dc_gain(q), atol=1e-12)
    roots = plant_theory.roots(q, PLANT)
    real_above = ((np.abs(roots.imag) < 1e-9) & (roots.real > 1)).any(-1)
    assert real_above[open_student.dc_gain(q) > 0].all()


def test_spells_are_read_off_the_eigenvalues():
    lead = np.array([1.2, 1.1, 0.9, 1 + 0.5j, 1.05 + 0.1j, 0.5, 1.0])
    eig = np.stack([lead, 0.1 * np.ones(7)], -1)
    spells = open_student.unstable_spells(np.arange(7) + 10, eig)
    assert [(s.first, s.last, s.at, s.kind) for s in spells] == [
        (10, 11, 10, "real"), (13, 14, 13, "oscillatory"), (16, 16, 16, "real")]
    assert spells[1].max_rho == pytest.approx(abs(1 + 0.5j))
    with pytest.raises(ValueError, match="one run"):
        open_student.unstable_spells(np.arange(3), eig)


def test_half_way():
    assert open_student.half_way([0.0, -0.1, -0.3, -0.6, -1.0]) == 3
    assert open_student.half_way([2.0, 2.0]) == 1
    with pytest.raises(ValueError):
        open_student.half_way([1.0])


def test_claims_recount_the_recorded_rho(run):
    h = run.student
    for seed in run.seeds:
        k = run.index(seed)
        rho = h.spectral_radius[:, k]
        got = ch6.linear_student_instability(run, seed)
        hit = np.flatnonzero(rho >= 1)
        assert got["lin_unstable_epochs"] == hit.size
        assert (got["lin_first_unstable"], got["lin_last_unstable"]) == (hit[0], hit[-1])
        assert got["lin_max_rho"] == rho[1:].max()
        peak = ch6.linear_student_peak(run, seed)
        loss = h.closed_loss[:, k]
        i = peak["lin_peak_epoch"]
        assert peak["lin_peak_loss"] == loss[i] and loss[i] > loss[:i].min()
        assert peak["lin_peak_rise"] == pytest.approx(loss[i] / loss[:i].min())
        assert peak["lin_peak_ratio"] == pytest.approx(loss[i] / loss[-1])
    spread = ch6.linear_student_seeds(run)
    assert spread["lin_seeds_with_peak"] == 2
    assert spread["lin_unstable_max"] == max(
        (h.spectral_radius[:, k] >= 1).sum() for k in range(2))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="seeds"):
        open_student.train_students(())
    with pytest.raises(ValueError, match="stream"):
        open_student.train_students((0,), stream="mine")
    with pytest.raises(ValueError, match="input_std"):
        open_student.train_students((0,), input_std=0.0)
    with pytest.raises(ValueError, match="overlaps"):
        open_student.impulse_response(np.zeros(3), 5)
    one = RankOneAgent.stack([RankOneAgent(N=10)])
    with pytest.raises(ValueError, match="one per member"):
        open_student.imitate(one, one, ENV, [Stream(0), Stream(1)])
    with pytest.raises(ValueError, match="was not trained"):
        open_student.LinearStudents((0,), "authors", 50, ENV, None, None, None, None,
                                    True).index(7)
