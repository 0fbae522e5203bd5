"""Chapter 1's tools: effective gains, gain-space maps, open-loop training."""


import numpy as np
import pytest
import torch

from closedloop import DoubleIntegrator, RNNAgent, UniformBox, coupled, gains
from closedloop.streams import Stream
from closedloop.training import open_loop_inputs, train_open_loop


def test_regression_recovers_a_known_linear_gain(env):
    """A pure state feedback u_t = k.x_t, simulated by hand: the gains come back exactly."""
    k = np.array([-0.4, -0.9])
    x0 = gains.fixed_starts(env, 7, seed=3).numpy()
    xs, us = [x0], [np.zeros(7)]
    for _ in range(20):
        x = xs[-1] @ env.A.numpy().T + us[-1][:, None] * env.B.numpy()
        xs.append(x), us.append(x @ k)
    got, r2 = gains.effective_gains(torch.tensor(np.stack(xs)), torch.tensor(np.stack(us)))
    np.testing.assert_allclose(got.numpy(), k, rtol=1e-10)
    assert r2.item() == pytest.approx(1.0, abs=1e-12)


def test_regression_is_least_squares_and_r2_drops_with_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(31, 3, 50, 2, generator=g, dtype=torch.float64)  # (T+1, K, B, 2)
    u = x @ torch.tensor([0.3, -1.2], dtype=torch.float64)
    u = u + 0.5 * torch.randn(u.shape, generator=g, dtype=torch.float64)
    k, r2 = gains.effective_gains(x, u)
    X = x[1:].permute(1, 0, 2, 3).reshape(3, -1, 2).numpy()
    U = u[1:].permute(1, 0, 2).reshape(3, -1).numpy()
    for j in range(3):
        ref = np.linalg.lstsq(X[j], U[j], rcond=None)[0]
        np.testing.assert_allclose(k[j].numpy(), ref, rtol=1e-10)
        resid = U[j] - X[j] @ ref
        assert r2[j].item() == pytest.approx(1 - resid @ resid / (U[j] @ U[j]), rel=1e-10)
    assert (r2 < 0.95).all() and (r2 > 0.5).all()


def test_stability_map_agrees_with_eigenvalue_moduli(env):
    k = np.random.default_rng(0).uniform(-3, 1.5, size=(4000, 2))
    region = gains.stability_region(k, env)
    ev = np.linalg.eigvals(gains.feedback_matrix(k, env).numpy())
    rho = np.abs(ev).max(-1)
    oscillatory = np.abs(ev.imag).max(-1) > 1e-12
    far = np.abs(rho - 1) > 1e-9  # leave points on the boundary out
    assert (region[far] == 0).tolist() == (rho[far] < 1).tolist()
    unstable = far & (rho > 1)
    assert (region[unstable] == 1).tolist() == oscillatory[unstable].tolist()
    assert set(np.unique(region)) == {0, 1, 2}


def test_feedback_loss_matches_a_step_loop(env):
    k = np.array([[-0.2, -0.5], [0.1, 0.05]])
    got = gains.feedback_loss(k, env, x0=(1.0, 1.0), T=30, beta=0.1)
    for j in range(2):
        x, cost = np.array([1.0, 1.0]), 0.0
        for _ in range(30):  # the states x_0..x_29 (the authors' window) and u_0..u_29
            u = k[j] @ x
            cost += (x**2).sum() / 2 / 30 + 0.1 * u**2
            x = np.array([x[0] + x[1], x[1] + u])
        assert got[j] == pytest.approx(cost, rel=1e-12)


def test_lqr_feedback_sits_in_the_stable_region(env):
    k = gains.lqr_feedback(env)
    assert gains.stability_region(k, env) == 0
    grid_k1, _, grid = gains.gain_grid(n=41)
    assert gains.feedback_loss(k, env).item() <= gains.feedback_loss(grid, env).min() + 1e-9


def test_open_loop_inputs_never_depend_on_the_student():
    """Two students with different weights, trained from the same seed, see exactly the same
    inputs at every epoch, while their own responses (and so their updates) differ."""
    env = DoubleIntegrator(UniformBox(1.0))
    teacher = RNNAgent(N=8, g=0.5, seed=1)
    seen, said = {}, {}

    class Spy(RNNAgent):
        def _drive(self, y):  # what training calls, after checking once
            seen.setdefault(self.tag, []).append(y.detach().clone())
            u = super()._drive(y)
            said.setdefault(self.tag, []).append(u.detach().clone())
            return u

    epochs = 4
    for tag, seed in (("a", 2), ("b", 3)):
        s = Spy.from_tensors(*(RNNAgent(N=8, g=0.5, seed=seed).tensors[k] for k in "Wmz"))
        s.tag = tag
        h = train_open_loop(s, teacher, env, epochs=epochs, T=6, batch=5, inputs="teacher",
                            seed=4, eig_every=0)
        assert h.completed
    assert len(seen["a"]) == len(seen["b"]) >= epochs + 1
    for a, b in zip(seen["a"], seen["b"]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(said["a"][-1], said["b"][-1])


def test_teacher_inputs_are_its_own_closed_loop_trajectories():
    env = DoubleIntegrator(UniformBox(1.0))
    teacher = RNNAgent(N=10, g=0.5, seed=3)
    y = open_loop_inputs("teacher", 6, 12, Stream(5), teacher, env)
    x0 = env.sample_x0(6, torch.Generator().manual_seed(5))
    traj = coupled.rollout(teacher, env, x0, 12)
    torch.testing.assert_close(y, traj["x"][1:, :, 0])
    with torch.no_grad():
        torch.testing.assert_close(teacher.drive(y), traj["u"][1:])


def test_open_loop_student_learns_the_teacher():
    env = DoubleIntegrator(UniformBox(1.0))
    teacher, student = RNNAgent(N=12, g=0.5, seed=3), RNNAgent(N=12, g=0.1, seed=4)
    probe = gains.probe(env, gains.fixed_starts(env, 10), 20)
    h = train_open_loop(student, teacher, env, epochs=150, T=20, batch=20, lr=0.1,
                        monitor=probe, monitor_every=50)
    assert h.completed and h.loss[-1] < 0.2 * h.loss[0]
    # the authors' convention: no update at epoch 0, the final network recorded after 150
    assert h.monitor_epoch.tolist() == [0, 50, 100, 150, 151]
    assert h.test_loss.shape == (5,) and h.gains.shape == (5, 2)


@pytest.mark.parametrize("kwargs,param", [
    (dict(inputs="pink"), "inputs"), (dict(T=0), "T"), (dict(batch=0), "batch"),
    (dict(lr=0.0), "lr"), (dict(monitor=3), "monitor"),
])
def test_bad_open_loop_arguments_name_the_parameter(kwargs, param):
    with pytest.raises((ValueError, TypeError), match=param):
        train_open_loop(RNNAgent(N=4), RNNAgent(N=4, seed=1), epochs=1, **kwargs)


def test_bad_gain_arguments_name_the_parameter(env):
    with pytest.raises(ValueError, match="k"):
        gains.feedback_matrix(np.zeros(3), env)
    with pytest.raises(ValueError, match="lim"):
        gains.gain_grid(lim=(1.0, -1.0))
    with pytest.raises(ValueError, match="x must"):
        gains.effective_gains(torch.zeros(5, 3, 2), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="x0"):
        gains.probe(env, torch.zeros(3, 3, dtype=torch.float64), 10)


def test_the_summed_test_loss_is_a_plain_sum_of_squares():
    """units='summed': sum_{t=0..T-1} ||x_t||^2 over a hand-stepped rollout, start-averaged."""
    env = DoubleIntegrator(UniformBox(1.0))
    agent = RNNAgent(N=6, g=0.8, seed=2, init="gaussian")
    x0 = gains.fixed_starts(env, 4)
    got = gains.probe(env, x0, 7, units="summed")(agent)["test_loss"].item()
    W, m, z = (agent.tensors[k].detach().numpy() for k in "Wmz")
    total = 0.0
    for x in x0.numpy():
        h, u = np.zeros(6), 0.0
        for _ in range(7):
            total += x @ x
            x = np.array([x[0] + x[1], x[1] + u])
            h = np.tanh(W @ h + m * x[0])
            u = z @ h
    assert got == pytest.approx(total / 4, rel=1e-12)
    with pytest.raises(ValueError, match="units"):
        gains.probe(env, x0, 7, units="halved")


def test_a_float32_probe_measures_in_float32_what_float64_measures():
    """Chapter 1's probe (dtype='float32', the authors' test loss) against the float64 one
    and a plain float64 step loop of the summed state cost, on a trained-looking tanh net."""
    env = DoubleIntegrator(UniformBox(1.0))
    x0 = gains.fixed_starts(env, 50)
    agent = RNNAgent(N=30, g=0.9, seed=3, dtype=torch.float32)
    with torch.no_grad():
        low = gains.probe(env, x0, 40, units="summed", dtype="float32")(agent)
        high = gains.probe(env, x0, 40, units="summed")(agent)
        a64 = agent.to(torch.float64)
        W, m, z = a64.recurrent_matrix(), a64.tensors["m"], a64.tensors["z"]
        x, h, u, cost = x0.clone(), torch.zeros(50, 30, dtype=torch.float64), 0.0, 0.0
        for _ in range(40):
            cost = cost + (x**2).sum(-1)
            x = x @ env.A.T + u[..., None] * env.B if torch.is_tensor(u) else x @ env.A.T
            h = torch.tanh(h @ W.T + x[:, :1] * m)
            u = h @ z
    assert low["test_loss"].dtype == torch.float32
    assert float(high["test_loss"]) == pytest.approx(float(cost.mean()), rel=1e-12)
    assert float(low["test_loss"]) == pytest.approx(float(cost.mean()), rel=1e-5)
    np.testing.assert_allclose(low["gains"].double(), high["gains"], rtol=1e-3)
