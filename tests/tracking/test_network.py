"""The tracking network (``tracking.network``)."""


import numpy as np
import pytest
import torch

from closedloop import tracking as tr



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


@pytest.mark.parametrize("make,param", [
    (lambda: tr.TrackingRNN(N=0), "N"),
    (lambda: tr.TrackingRNN(tau=0.0), "tau"),
    (lambda: tr.TrackingRNN(dt=0.5, tau=0.2), "alpha"),
    (lambda: tr.TrackingRNN(g=-1.0), "g"),
])
def test_bad_arguments_name_the_parameter(make, param):
    with pytest.raises((ValueError, TypeError), match=param):
        make()
