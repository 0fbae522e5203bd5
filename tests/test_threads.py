"""The step loop's thread policy holds in its backward as in its forward (issue 20): the
threads seen by the operations inside each are the ones ``loop_threads`` chose."""

import math

import pytest
import torch

from closedloop import DoubleIntegrator, RNNAgent, UniformBox, _loop, _threads, coupled


@pytest.fixture
def two_threads():
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n)


def spy_threads(monkeypatch, module, name):
    """Record the threads (torch's, numpy's OpenBLAS's) at every call of module.<name> made by
    the loop (torch.mul, or numpy.matmul: the CPU steps run in numpy, ``_loop``)."""
    seen, real = [], getattr(module, name)

    def spy(*args, **kwargs):
        seen.append((torch.get_num_threads(), _threads.numpy_blas_threads()))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return seen


@pytest.mark.parametrize("N,batch_shape,want", [(30, (), 1), (30, (3,), 1), (800, (), 2)])
def test_backward_runs_under_the_policy_of_its_forward(two_threads, monkeypatch, N,
                                                       batch_shape, want):
    """A small network's loop (products below PARALLEL_WORK) runs on one thread forward and
    backward, torch's and numpy's; a large one keeps the default (two here)."""
    from threadpoolctl import threadpool_limits

    env = DoubleIntegrator(UniformBox(1.0))
    agent = RNNAgent(N=N, g=0.5, seed=0, batch_shape=batch_shape)
    x0 = env.sample_x0(8, torch.Generator().manual_seed(0))
    work = 8 * (N + 2) ** 2 * math.prod(batch_shape)
    assert (work < _threads.PARALLEL_WORK) == (want == 1)
    with threadpool_limits(limits=2, user_api="blas"):
        steps = spy_threads(monkeypatch, _loop.np, "matmul")
        loss = coupled.closed_loop_loss(agent, env, x0, 6)
        forward = list(steps)
        backward = spy_threads(monkeypatch, _loop.torch, "mul")  # the backward's first op
        torch.autograd.grad(loss.sum(), agent.parameters())
        backward_steps = steps[len(forward):]
    assert forward and set(forward) == {(want, want)}
    assert backward and {b[0] for b in backward} == {want}
    assert backward_steps and set(backward_steps) == {(want, want)}
    assert torch.get_num_threads() == 2  # restored after each


@pytest.fixture
def two_threads_everywhere():
    """torch and numpy's OpenBLAS at two threads, whatever the environment set (make test
    runs each test process on one): what a reader's session has on two cores."""
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(2)
    with threadpool_limits(limits=2, user_api="blas"):
        yield
    torch.set_num_threads(n)


def _paths():
    """Every training path with a thread policy of its own, small: name -> () -> losses."""
    from closedloop import LinearPlant, RankOneAgent, tracking
    from closedloop.training import train_closed_loop, train_open_loop

    env = DoubleIntegrator(UniformBox(1.0))

    def tanh_closed():
        return train_closed_loop(RNNAgent(N=12, seed=0), env, epochs=3, T=8, batch=5).loss

    def tanh_open():
        return train_open_loop(RNNAgent(N=12, seed=0), RNNAgent(N=12, seed=1), env, epochs=3,
                               T=8, batch=5).loss

    def rank_one_ensemble():
        agent = RankOneAgent(N=12, seed=0, batch_shape=(3,))
        return train_closed_loop(agent, env, epochs=3, T=8, batch=5).loss

    def noisy_plant():
        plant = LinearPlant.damped_oscillator(0.5, 0.4, 1.0, noise=0.1)
        return train_closed_loop(RankOneAgent(N=12, seed=0), plant, epochs=3, T=8,
                                 batch=5).loss

    def tracking_closed():
        agent, refs = tracking.TrackingRNN(N=8, seed=0), tracking.Sinusoids(T=30)
        return tracking.train_tracking(agent, tracking.PointMass(), refs, epochs=3, batch=3,
                                       n_test=2).loss

    def tracking_twin():
        refs = tracking.Sinusoids(T=30)
        teacher, agent = tracking.TrackingRNN(N=8, seed=1), tracking.TrackingRNN(N=8, seed=0)
        return tracking.train_tracking(agent, tracking.PointMass(), refs, epochs=3, batch=3,
                                       n_test=2, teacher=teacher).loss

    return {f.__name__: f for f in (tanh_closed, tanh_open, rank_one_ensemble, noisy_plant,
                                    tracking_closed, tracking_twin)}


@pytest.mark.parametrize("path", sorted(_paths()))
def test_every_training_path_runs_at_two_threads_as_at_one(path, two_threads_everywhere):
    """Each path at two torch and two OpenBLAS threads gives the losses it gives at one (a
    path that mixed numpy and torch arrays under one thread count and not the other failed
    here, issue 27), and leaves both thread counts as it found them."""
    from threadpoolctl import threadpool_info, threadpool_limits

    run = _paths()[path]
    at_two = run()
    assert torch.get_num_threads() == 2
    assert all(i["num_threads"] == 2 for i in threadpool_info() if i["user_api"] == "blas")
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        at_one = run()
    torch.set_num_threads(2)
    assert at_two.shape == at_one.shape and at_two.size > 0
    assert abs(at_two - at_one).max() <= 1e-9 * abs(at_one).max()
