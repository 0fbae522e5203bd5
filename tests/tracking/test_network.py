"""The tracking network (``tracking.network``)."""


import numpy as np
import pytest
import torch

from closedloop import tracking as tr
from closedloop.streams import Stream



def test_rate_eigenvalues_read_rotation_frequencies():
    w = 1.7
    W = torch.eye(4, dtype=torch.float64)
    # W - I: a rotation at w rad/s, and two modes that do not oscillate
    W[:2, :2] += torch.tensor([[0.0, -w], [w, 0.0]], dtype=torch.float64)
    a = tr.TrackingRNN.from_tensors(W, torch.zeros(4, 4), torch.zeros(2, 4), tau=1.0)
    ev = a.rate_eigenvalues()
    assert ev[0].imag == pytest.approx(w) and ev[-1].imag == pytest.approx(-w)
    np.testing.assert_allclose(tr.frequency_match(ev, [w, 0.0]), [0.0, 0.0], atol=1e-12)
    slow = tr.TrackingRNN.from_tensors(W, torch.zeros(4, 4), torch.zeros(2, 4), tau=2.0)
    assert slow.rate_eigenvalues()[0].imag == pytest.approx(w / 2)


@pytest.mark.parametrize("kind", ["authors", "package"])
def test_draw_networks_draws_one_per_seed(kind):
    nets, runs = tr.draw_networks([3, 1], N=6, g=0.5, dt=0.05, tau=0.5, stream=kind)
    refs = tr.Sinusoids()
    for a, run, s in zip(nets, runs, [3, 1]):
        stream = Stream(s, kind)
        alone = tr.TrackingRNN(N=6, g=0.5, dt=0.05, tau=0.5, seed=stream)
        assert all(torch.equal(getattr(a, k), getattr(alone, k)) for k in ("W", "W_in", "W_out"))
        assert (a.dt, a.tau) == (0.05, 0.5)
        # the stream handed back goes on where the network's draw stopped
        assert torch.equal(run.start().phases(refs, 3), stream.start().phases(refs, 3))
    assert not torch.equal(nets[0].W, nets[1].W)


def test_input_weight_change_is_relative_per_column_group():
    W_in = torch.ones(3, 4, dtype=torch.float64)
    moved = W_in.clone()
    moved[:, 1] = -1.0             # columns 0, 1 (norm sqrt 6): a change of norm 2 sqrt 3
    before, after = (tr.TrackingRNN.from_tensors(torch.zeros(3, 3), w, torch.zeros(2, 3))
                     for w in (W_in, moved))
    assert tr.input_weight_change(before, after, [0, 1]) == pytest.approx(2 * 3**0.5 / 6**0.5)
    assert tr.input_weight_change(before, after, [2, 3]) == 0.0
    assert tr.input_weight_change(after, before, [1]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="same size"):
        tr.input_weight_change(before, tr.TrackingRNN(N=4), [0])


@pytest.mark.parametrize("make,param", [
    (lambda: tr.draw_networks(3), "seeds"),
    (lambda: tr.input_weight_change(tr.TrackingRNN(N=3), "net", [0]), "after"),
    (lambda: tr.TrackingRNN(N=0), "N"),
    (lambda: tr.TrackingRNN(tau=0.0), "tau"),
    (lambda: tr.TrackingRNN(dt=0.5, tau=0.2), "alpha"),
    (lambda: tr.TrackingRNN(g=-1.0), "g"),
])
def test_bad_arguments_name_the_parameter(make, param):
    with pytest.raises((ValueError, TypeError), match=param):
        make()


def test_other_seeds_never_repeat_the_chapters_run():
    assert tr.other_seeds(0, 2) == [1, 2]
    assert tr.other_seeds(1, 2) == [0, 2] and tr.other_seeds(2, 3) == [0, 1, 3]
    assert tr.other_seeds(5, 0) == [] and tr.draw_networks([]) == ([], [])
    with pytest.raises(ValueError, match="n must be >= 0"):
        tr.other_seeds(0, -1)


def test_a_float32_network_copies_as_float32_and_a_mixed_pair_is_named():
    net = tr.TrackingRNN(N=8, seed=0, dtype=torch.float32)
    for other in (net.copy(), tr.TrackingRNN.stack([net, net]).member(1)):
        assert other.W.dtype == other.W_in.dtype == other.W_out.dtype == torch.float32
        assert torch.equal(other.W, net.W)
    with pytest.raises(ValueError, match="agent is torch.float32 and the plant torch.float64"):
        tr.train_tracking(net, tr.PointMass(), epochs=1)
    # float64 references beside a float32 network and plant trained silently in float64
    with pytest.raises(ValueError, match="refs are torch.float64 and the plant torch.float32"):
        tr.train_tracking(net, tr.PointMass(dtype=torch.float32), tr.Sinusoids(), epochs=1)
