"""Linear responses against stepping, the exact loss against the sampled one, the clamp
(``tracking.loss``)."""

import itertools
import math

import numpy as np
import pytest
import torch

from closedloop import tracking as tr
from closedloop.agents import make_generator

from .helpers import BOOK, GRID, PAPER, authors_loop, book_loss, net


@pytest.mark.parametrize("conv", [PAPER, BOOK], ids=["paper", "book"])
@pytest.mark.parametrize("ramp", [1.0, 0.0])
def test_linear_response_matches_stepping(conv, ramp):
    """Four complex trajectories reproduce the step-by-step loop for any phases, also without
    the ramp, where the reference at t = 0 is not zero (the authors' network reads it)."""
    refs = tr.Sinusoids(ramp=ramp)
    plant, a = tr.PointMass(bound=None), net()
    phases = refs.sample_phases(6, make_generator(2))
    r = refs.signal(phases)
    stepped = tr.rollout(a, plant, r, convention=conv)
    resp = tr.linear_response(a, plant, refs, conv)
    outputs = torch.cat([stepped["q"], stepped["u"]], -1)
    torch.testing.assert_close(resp.combine(phases, part="all"), outputs, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(resp.sampled_losses(phases),
                               tr.tracking_loss(stepped["q"], r, conv), rtol=1e-9, atol=0)


@pytest.mark.parametrize("ramp,bound", [(1.0, None), (0.0, None), (1.0, 10.0)])
def test_the_authors_pairing_and_loss_against_their_step_loop(ramp, bound):
    """rollout, tracking_loss and the linear response (where the clamp does not act) against
    ``authors_loop``; the book's scoring of the same trajectories is another number."""
    refs = tr.Sinusoids(ramp=ramp)
    plant = tr.PointMass(bound=bound)
    a = net(seed=3, out_scale=2.0 if bound else 1.0)  # with the clamp: a loop that reaches it
    phases = refs.sample_phases(4, make_generator(5))
    r = refs.signal(phases)
    pos, u, want = authors_loop(a, r, bound=bound)
    out = tr.rollout(a, plant, r)
    torch.testing.assert_close(out["q"][1:, :, [0, 2]], pos, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out["u"][:-1], u, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(tr.tracking_loss(out["q"], r), want, rtol=1e-9, atol=0)
    torch.testing.assert_close(tr.sampled_losses(a, plant, refs, phases), want, rtol=1e-9,
                               atol=0)
    if bound is None:
        got = tr.linear_response(a, plant, refs).sampled_losses(phases)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=0)
    else:
        assert (out["q"].abs() == bound).any()  # the clamp was exercised
    q_book = tr.rollout(a, plant, r, convention=BOOK)["q"]
    book = book_loss(q_book, r)
    assert not torch.allclose(book, want, rtol=1e-3)
    torch.testing.assert_close(tr.tracking_loss(q_book, r, BOOK), book, rtol=1e-9, atol=0)


@pytest.mark.parametrize("conv", [PAPER, BOOK], ids=["paper", "book"])
def test_exact_loss_is_the_phase_average(conv):
    """Over the phase grid GRID^K every cross term and every e^{2i phi} term cancels: the mean
    of the stepped losses (written out in this file) must equal the exact loss to rounding;
    one sinusoid at a time, phases 0 and pi/2 give its probe loss. No ramp: the reference at
    t = 0 counts too."""
    refs = tr.Sinusoids(ramp=0.0)
    plant, a = tr.PointMass(bound=None), net()
    grid = torch.tensor(list(itertools.product(*[GRID] * refs.K)), dtype=torch.float64)
    brute = lambda r: (authors_loop(a, r)[2] if conv is PAPER
                       else book_loss(tr.rollout(a, plant, r, convention=BOOK)["q"], r))
    resp = tr.linear_response(a, plant, refs, conv)
    assert brute(refs.signal(grid)).mean().item() == pytest.approx(resp.expected_loss().item(),
                                                                  rel=1e-9)
    for k in range(refs.K):
        two = torch.tensor([[0.0] * refs.K, [0.5 * math.pi] * refs.K], dtype=torch.float64)
        lk = brute(refs.signal(two, which=[k])).mean()
        assert lk.item() == pytest.approx(resp.probe_losses()[k].item(), rel=1e-9)


def test_exact_loss_equals_sampled_mean_within_sampling_error(refs):
    plant, a = tr.PointMass(bound=None), net(out_scale=0.3)
    phases = refs.sample_phases(3000, make_generator(3))
    r = refs.signal(phases)
    with torch.no_grad():
        losses = tr.tracking_loss(tr.rollout(a, plant, r)["q"], r).numpy()
    exact = tr.linear_response(a, plant, refs).expected_loss().item()
    se = losses.std() / np.sqrt(len(losses))
    assert abs(losses.mean() - exact) < 4 * se
    assert se < 0.05 * exact  # the check has teeth: sampling noise is small


def test_untrained_loop_costs_its_reference_power_when_the_network_is_silent(refs):
    a = net(out_scale=0.0)  # no control: the mass stays at the origin
    probe = tr.linear_response(a, tr.PointMass(), refs).probe_losses()
    # the error is -r(t_i), i = 0..T-1: dt (A^2/2) mean_i ramp(t_i)^2
    ramp = torch.clamp(torch.arange(refs.T, dtype=torch.float64) * 0.1 / 1.0, max=1.0)
    power = 0.1 * 2.31 ** 2 / 2
    torch.testing.assert_close(probe, torch.full((4,), power * (ramp ** 2).mean().item(),
                                                 dtype=torch.float64))
    torch.testing.assert_close(refs.silent_losses(), probe)
    assert torch.all((probe < power) & (probe > 0.97 * power))
    book = tr.linear_response(a, tr.PointMass(), refs, BOOK).probe_losses()
    ramp_book = torch.clamp(torch.arange(1, refs.T + 1, dtype=torch.float64) * 0.1, max=1.0)
    torch.testing.assert_close(book, torch.full((4,), 2.31 ** 2 / 2 * (ramp_book ** 2).mean()
                                                .item(), dtype=torch.float64))


def test_clamped_losses_step_only_where_the_clamp_acts(refs):
    plant = tr.PointMass(bound=10.0)
    a = net(out_scale=3.0, seed=1)  # a runaway loop
    resp = tr.linear_response(a, plant, refs)
    assert resp.worst_state() > 10
    phases = refs.sample_phases(4, make_generator(4))
    r = refs.signal(phases)
    want = tr.tracking_loss(tr.rollout(a, plant, r)["q"], r)
    torch.testing.assert_close(tr.sampled_losses(a, plant, refs, phases), want, rtol=1e-9, atol=0)


@pytest.mark.parametrize("make,param", [
    (lambda: tr.tracking_loss(torch.zeros(3, 1, 4, dtype=torch.float64),
                              torch.zeros(3, 1, 2, dtype=torch.float64), dt=0.0), "dt"),
])
def test_bad_arguments_name_the_parameter(make, param):
    with pytest.raises((ValueError, TypeError), match=param):
        make()
