"""The device argument: everything runs with device="cpu" given explicitly, a seed draws the
same network and batches wherever they go, and mixing devices fails with a message naming
both (the "meta" device stands in for a second one: no GPU is needed to test the checks)."""

import pytest
import torch

from closedloop import DoubleIntegrator, RankOneAgent, RNNAgent, coupled
from closedloop import tracking as tr
from closedloop.training import train_closed_loop, train_open_loop


@pytest.mark.parametrize("make", [lambda **kw: RNNAgent(N=6, seed=1, **kw),
                                  lambda **kw: RankOneAgent(N=6, seed=1, **kw)])
def test_explicit_cpu_device_trains_like_the_default(make):
    env = DoubleIntegrator(device="cpu")
    a, b = make(device="cpu"), make()
    assert a.device == torch.device("cpu")
    ha = train_closed_loop(a, env, epochs=3, T=5, batch=4, seed=2)
    hb = train_closed_loop(b, DoubleIntegrator(), epochs=3, T=5, batch=4, seed=2)
    torch.testing.assert_close(torch.as_tensor(ha.loss), torch.as_tensor(hb.loss), rtol=0, atol=0)


def test_open_loop_and_tracking_with_explicit_cpu_device():
    env = DoubleIntegrator(device="cpu")
    teacher = RNNAgent(N=6, seed=3, device="cpu")
    assert train_open_loop(RNNAgent(N=6, seed=4, device="cpu"), teacher, env, epochs=2, T=5,
                           batch=3).completed
    plant, refs = tr.PointMass(device="cpu"), tr.Sinusoids(T=20, device="cpu")
    net = tr.TrackingRNN(N=6, seed=0, device="cpu")
    torch.testing.assert_close(net.W, tr.TrackingRNN(N=6, seed=0).W, rtol=0, atol=0)
    assert tr.train_tracking(net, plant, refs, epochs=2, batch=3, n_test=2).completed


def test_mixed_devices_fail_with_a_clear_message():
    agent, elsewhere = RNNAgent(N=6, seed=0), DoubleIntegrator(device="meta")
    x0 = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="agent is on cpu and env on meta"):
        coupled.closed_loop_loss(agent, elsewhere, x0, 5)
    with pytest.raises(ValueError, match="agent is on cpu and env on meta"):
        train_closed_loop(agent, elsewhere, epochs=1)
    with pytest.raises(ValueError, match="x0 is on meta"):
        coupled.rollout(agent, DoubleIntegrator(), x0.to("meta"), 5)
    with pytest.raises(ValueError, match="y is on meta"):
        agent.drive(torch.zeros(4, 3, dtype=torch.float64, device="meta"))
    with pytest.raises(ValueError, match="agent is on cpu and the plant on meta"):
        tr.train_tracking(tr.TrackingRNN(N=6), tr.PointMass(device="meta"), epochs=1)
    with pytest.raises(ValueError, match="refs are on meta"):
        tr.train_tracking(tr.TrackingRNN(N=6), tr.PointMass(), tr.Sinusoids(device="meta"),
                          epochs=1)
