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


def spy_threads(monkeypatch, name):
    """Record torch.get_num_threads() at every call of torch.<name> made by the loop."""
    seen, real = [], getattr(torch, name)

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(_loop.torch, name, spy)
    return seen


@pytest.mark.parametrize("N,batch_shape,want", [(30, (), 1), (30, (3,), 1), (800, (), 2)])
def test_backward_runs_under_the_policy_of_its_forward(two_threads, monkeypatch, N,
                                                       batch_shape, want):
    """A small network's loop (products below PARALLEL_WORK) runs on one thread forward and
    backward; a large one keeps the default (two here)."""
    env = DoubleIntegrator(UniformBox(1.0))
    agent = RNNAgent(N=N, g=0.5, seed=0, batch_shape=batch_shape)
    x0 = env.sample_x0(8, torch.Generator().manual_seed(0))
    work = 8 * (N + 2) ** 2 * math.prod(batch_shape)
    assert (work < _threads.PARALLEL_WORK) == (want == 1)
    forward = spy_threads(monkeypatch, "mm" if not batch_shape else "bmm")
    backward = spy_threads(monkeypatch, "mul")  # the backward's first operation
    loss = coupled.closed_loop_loss(agent, env, x0, 6)
    assert forward and set(forward) == {want}
    torch.autograd.grad(loss.sum(), agent.parameters())
    assert backward and set(backward) == {want}
    assert torch.get_num_threads() == 2  # restored after each
