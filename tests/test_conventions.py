"""The authors' conventions (shared/paper.md section 9) against literal training loops written
here: the loss of each convention, the update schedule, the initial scales."""

import math

import numpy as np
import pytest
import torch

from closedloop import DoubleIntegrator, RankOneAgent, RNNAgent, UniformBox, conventions
from closedloop.agents import make_generator
from closedloop.training import train_closed_loop, train_open_loop


def literal_episode(agent, x0, T, state_weight, control_weight):
    """sum_{t=0}^{T-1} [state_weight * batch-mean ||x_t||^2 + control_weight * batch-sum
    u_t^2], stepping x_{t+1} = A x_t + B u_t, h_{t+1} = phi(W h_t + m y_{t+1}), u = z.h."""
    W, m, z = agent.recurrent_matrix(), agent.tensors["m"], agent.tensors["z"]
    x, h = x0, x0.new_zeros(x0.shape[0], agent.N)
    u, loss = x0.new_zeros(x0.shape[0]), 0.0
    for _ in range(T):
        loss = loss + state_weight * (x**2).sum(-1).mean() + control_weight * (u**2).sum()
        x = torch.stack([x[:, 0] + x[:, 1], x[:, 1] + u], -1)
        h = agent.phi(h @ W.T + x[:, :1] * m)
        u = h @ z
    return loss


def literal_sgd(agent, params, loss_of, epochs, lr, clip, update_at_epoch0):
    """Plain SGD with clipping of the whole gradient's 2-norm; returns the losses of the
    epochs 0..last (``loss_of(epoch)`` draws that epoch's batch)."""
    losses = []
    last = epochs if update_at_epoch0 else epochs + 1
    for e in range(last + 1):
        loss = loss_of(e)
        losses.append(loss.item())
        if e == last:
            break
        grads = torch.autograd.grad(loss, params)
        if e == 0 and not update_at_epoch0:
            continue
        norm = torch.sqrt(sum((g**2).sum() for g in grads))
        scale = min(1.0, clip / norm.item())
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr * scale * g
    return losses


def test_paper_tanh_training_is_the_authors_loop():
    """Sum over t = 0..T-1 of [1/2 batch-mean ||x_t||^2 + beta * batch-sum u_t^2], no update
    at epoch 0, clipping at 1: parameters and recorded losses equal the literal loop's."""
    env = DoubleIntegrator(UniformBox(1.0))
    T, B, beta, epochs, lr = 12, 7, 0.005, 4, 0.05
    ref = RNNAgent(N=9, g=0.5, seed=3)
    gen = make_generator(11)

    def loss_of(e):
        return literal_episode(ref, env.sample_x0(B, gen), T, 0.5, beta)

    want = literal_sgd(ref, ref.parameters(), loss_of, epochs, lr, 1.0, False)
    agent = RNNAgent(N=9, g=0.5, seed=3)
    h = train_closed_loop(agent, env, epochs=epochs, T=T, batch=B, lr=lr, beta=beta, seed=11,
                          eig_every=0, snapshot_every=1)
    assert h.config["convention"] == conventions.PAPER_TANH.name
    assert len(h.epoch) == epochs + 2  # epoch 0 records only; the last row is the final net
    np.testing.assert_allclose(h.loss, want, rtol=1e-12)
    for k in ref.names:
        torch.testing.assert_close(agent.tensors[k], ref.tensors[k], rtol=1e-12, atol=1e-14)
    W = h.arrays["params/W"]
    np.testing.assert_array_equal(W[0], W[1])  # epoch 0 made no update
    assert not np.array_equal(W[1], W[2])
    assert h.grad_norm.shape == (epochs + 1,)


@pytest.mark.parametrize("window,first", [("from_x0", 0), ("after_x0", 1)])
def test_rank_one_window_against_a_literal_loop(window, first):
    """The authors' rank-one loss: the mean of x^2 over both coordinates and t = 0..T-1 (x_0
    included), batch mean, plus beta sum_t u_t^2, an update at every epoch including 0; the
    book's window counts x_1..x_T instead."""
    env = DoubleIntegrator()
    T, B, beta, epochs, lr = 15, 9, 0.3, 3, 0.02
    ref = RankOneAgent(N=12, seed=4)
    gen = make_generator(2)

    def loss_of(e):
        x0 = env.sample_x0(B, gen)
        W, m, z = ref.recurrent_matrix(), ref.tensors["m"], ref.tensors["z"]
        x, h, u, loss = x0, x0.new_zeros(B, 12), x0.new_zeros(B), 0.0
        for t in range(T + 1):
            if first <= t <= first + T - 1:
                loss = loss + (x**2).mean(-1).mean() / T
            if t < T:
                loss = loss + beta * (u**2).mean()
            x = torch.stack([x[:, 0] + x[:, 1], x[:, 1] + u], -1)
            h = h @ W.T + x[:, :1] * m
            u = h @ z
        return loss

    want = literal_sgd(ref, ref.parameters(), loss_of, epochs, lr, 1.0, True)
    agent = RankOneAgent(N=12, seed=4)
    conv = conventions.PAPER_RANK_ONE.with_(window=window)
    h = train_closed_loop(agent, env, epochs=epochs, T=T, batch=B, lr=lr, beta=beta, seed=2,
                          convention=conv)
    assert len(h.epoch) == epochs + 1
    np.testing.assert_allclose(h.loss, want, rtol=1e-10)
    for k in ref.names:
        torch.testing.assert_close(agent.tensors[k], ref.tensors[k], rtol=1e-10, atol=1e-13)


def test_the_x0_term_of_the_authors_window():
    """Paper s.9: with T = 50 and x_0 ~ U([-2, 2]^2) the x_0 term alone adds
    E||x_0||^2 / (2T) = (8/3) / 100 to the expected loss: the two windows differ by that
    term minus the x_T term, both closed forms for a network that does not act (z = 0)."""
    env, T = DoubleIntegrator(), 50
    a = RankOneAgent(N=6, seed=1)
    a = RankOneAgent.from_tensors(a.u, a.v, torch.zeros_like(a.z), a.m)
    paper = train_closed_loop(a.detached(), env, epochs=0, T=T, mode="exact").expected_loss[0]
    book = train_closed_loop(a.detached(), env, epochs=0, T=T, mode="exact",
                             convention="book").expected_loss[0]
    # with u = 0 the state moves freely: x_t = (p + t v, v), E p^2 = E v^2 = 4/3
    e = lambda t: 4 / 3 * (1 + t**2) + 4 / 3
    assert paper - book == pytest.approx((e(0) - e(T)) / (2 * T), rel=1e-12)
    assert e(0) / (2 * T) == pytest.approx(8 / 3 / 100)


def test_open_loop_student_loss_is_summed_over_the_steps():
    """The authors' student: the batch-mean squared output difference summed over the T steps
    of i.i.d. N(0, 1) inputs, no update at epoch 0, clipping at 1."""
    env = DoubleIntegrator(UniformBox(1.0))
    T, B, epochs, lr = 10, 6, 3, 0.05
    teacher, ref = RNNAgent(N=8, seed=1), RNNAgent(N=8, seed=2)
    gen = make_generator(5)

    def drive(agent, y):
        W, m, z = agent.recurrent_matrix(), agent.tensors["m"], agent.tensors["z"]
        h, out = y.new_zeros(y.shape[1], 8), []
        for y_t in y:
            h = torch.tanh(h @ W.T + y_t[:, None] * m)
            out.append(h @ z)
        return torch.stack(out)

    def loss_of(e):
        y = torch.randn(T, B, generator=gen, dtype=torch.float64)
        return ((drive(ref, y) - drive(teacher, y).detach()) ** 2).mean(-1).sum()

    want = literal_sgd(ref, ref.parameters(), loss_of, epochs, lr, 1.0, False)
    student = RNNAgent(N=8, seed=2)
    h = train_open_loop(student, teacher, env, epochs=epochs, T=T, batch=B, lr=lr, seed=5,
                        eig_every=0)
    np.testing.assert_allclose(h.loss, want, rtol=1e-12)
    for k in ref.names:
        torch.testing.assert_close(student.tensors[k], ref.tensors[k], rtol=1e-12, atol=1e-14)


def test_rnn_initial_scales():
    """init='paper': m, z entries with standard deviation 1/N; 'gaussian': 1/sqrt(N); W keeps
    g^2/N in both. Sample moments over an ensemble of 400 networks of N = 50."""
    N, K = 50, 400
    for init, std in (("paper", 1 / N), ("gaussian", 1 / math.sqrt(N))):
        a = RNNAgent(N=N, g=0.1, seed=0, batch_shape=(K,), init=init)
        for name in ("m", "z"):
            t = a.tensors[name].detach()
            assert t.mean().abs() < 4 * std / math.sqrt(K * N)
            assert t.std().item() == pytest.approx(std, rel=0.02)
        assert a.W.detach().std().item() == pytest.approx(0.1 / math.sqrt(N), rel=0.02)


@pytest.mark.parametrize("kw,name", [(dict(window="x0"), "window"), (dict(time="avg"), "time"),
                                     (dict(control="sum"), "control"),
                                     (dict(update_at_epoch0=1), "update_at_epoch0")])
def test_a_bad_convention_names_its_field(kw, name):
    with pytest.raises((ValueError, TypeError), match=name):
        conventions.Convention(**kw)


def test_training_refuses_an_unknown_convention():
    with pytest.raises(ValueError, match="convention must be one of"):
        train_closed_loop(RankOneAgent(N=4), DoubleIntegrator(), epochs=1, convention="paper")
    with pytest.raises(TypeError, match="convention"):
        train_closed_loop(RankOneAgent(N=4), DoubleIntegrator(), epochs=1, convention=3)
    with pytest.raises(ValueError, match="init must be one of"):
        RNNAgent(N=4, init="uniform")
