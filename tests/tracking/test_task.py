"""The plant, the references and the conventions that score them (``tracking.task``)."""


import numpy as np
import pytest
import torch

from closedloop import conventions
from closedloop import tracking as tr
from closedloop.agents import make_generator

from .helpers import BOOK, PAPER, net


def test_plant_follows_its_difference_equation():
    plant = tr.PointMass(dt=0.1, bound=None)
    gen = make_generator(0)
    q = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    u = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    x, vx, y, vy = q.T
    want = torch.stack([x + 0.1 * vx, vx + 0.1 * u[:, 0], y + 0.1 * vy, vy + 0.1 * u[:, 1]], -1)
    torch.testing.assert_close(plant.step(q, u), want, rtol=0, atol=1e-15)


def test_plant_clamps_every_state_coordinate():
    plant = tr.PointMass(dt=0.1, bound=10.0)
    q = torch.tensor([[9.99, 50.0, -9.0, -200.0]], dtype=torch.float64)
    out = plant.step(q, torch.tensor([[100.0, -3.0]], dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([[10.0, 10.0, -10.0, -10.0]],
                                                 dtype=torch.float64))


def test_reference_spectrum_has_its_four_peaks(refs):
    r = refs.signal(refs.sample_phases(3, make_generator(1)))[1:]  # 300 samples = 30 s
    spec = np.abs(np.fft.rfft(r.numpy(), axis=0))                    # bins of 1/30 Hz
    f = np.fft.rfftfreq(refs.T, refs.dt)
    for axis, want in ((0, [0.1, 0.3]), (1, [0.2, 0.4])):
        for b in range(3):
            top = np.sort(f[np.argsort(spec[:, b, axis])[-2:]])
            np.testing.assert_allclose(top, want, atol=1e-12)
            # everything else is leakage of the 1 s ramp, far below the peaks
            others = np.delete(spec[:, b, axis], np.argsort(spec[:, b, axis])[-2:])
            assert others.max() < 0.1 * spec[:, b, axis].max()


def test_reference_amplitudes_and_ramp():
    refs = tr.Sinusoids(ramp=0.0, T=1000)  # 100 s: whole periods of every frequency
    r = refs.signal(torch.zeros(1, 4))[:-1, 0]
    spec = np.abs(np.fft.rfft(r.numpy(), axis=0)) * 2 / refs.T
    f = np.fft.rfftfreq(refs.T, refs.dt)
    for fk, axis in zip(refs.freqs, refs.axes):
        assert spec[np.argmin(abs(f - fk)), axis] == pytest.approx(2.31, rel=1e-9)
    ramped = tr.Sinusoids().signal(torch.zeros(1, 4))[:, 0]
    assert ramped[0].abs().max() == 0
    torch.testing.assert_close(ramped[5], 0.5 * r[5])  # half way up the 1 s ramp


def test_conventions_say_the_authors_setup():
    assert (PAPER.pairing, PAPER.dt_weight, PAPER.twin_axes, PAPER.update_at_epoch0,
            PAPER.twin_trains_W_in) == ("shown", True, "mean", False, True)
    assert conventions.resolve_tracking(None) is PAPER
    assert conventions.resolve_tracking("book_tracking") is BOOK
    assert PAPER.with_(dt_weight=False).name == "custom"
    with pytest.raises(ValueError, match="pairing"):
        conventions.TrackingConvention(pairing="later")
    with pytest.raises(TypeError, match="update_at_epoch0"):
        conventions.TrackingConvention(update_at_epoch0=0)
    with pytest.raises(ValueError, match="convention"):
        conventions.resolve_tracking("paper")
    with pytest.raises(TypeError, match="convention"):
        tr.train_tracking(net(N=4), refs=tr.Sinusoids(T=20), epochs=1, convention=3)


@pytest.mark.parametrize("make,param", [
    (lambda: tr.Sinusoids(freqs=(0.1, 6.0), axes=(0, 1)), "freqs"),
    (lambda: tr.Sinusoids(freqs=(0.1, 0.2), axes=(0, 2)), "axes"),
    (lambda: tr.Sinusoids(dt=0.0), "dt"),
    (lambda: tr.Sinusoids(amplitude=-1.0), "amplitude"),
    (lambda: tr.Sinusoids(T=0), "T"),
    (lambda: tr.PointMass(dt=-0.1), "dt"),
    (lambda: tr.PointMass(bound=0.0), "bound"),
    (lambda: tr.Sinusoids(T=20).signal(torch.zeros(2, 3, 4)), "phases"),  # one batch: (B, K)
])
def test_bad_arguments_name_the_parameter(make, param):
    with pytest.raises((ValueError, TypeError), match=param):
        make()


def test_a_seed_draws_the_same_references_in_either_format():
    """The phases of a seed in float32 are its float64 phases rounded (a test set of Chapter
    4 is the same references in both formats), and are uniform on (-pi, pi)."""
    p64 = tr.Sinusoids().sample_phases(2000, make_generator(12345))
    p32 = tr.Sinusoids(dtype=torch.float32).sample_phases(2000, make_generator(12345))
    assert p32.dtype == torch.float32 and p64.dtype == torch.float64
    np.testing.assert_array_equal(p32.numpy(), p64.numpy().astype(np.float32))
    assert p64.abs().max() < np.pi and abs(float(p64.mean())) < 0.1
    assert float((p64 > 0).double().mean()) == pytest.approx(0.5, abs=0.03)
