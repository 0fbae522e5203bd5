"""The loop stepped with the clamp and as a linear system (``tracking.engine``)."""


import numpy as np
import pytest
import torch

from closedloop import tracking as tr
from closedloop.agents import make_generator

from .helpers import BOOK, PAPER, net


def test_rollout_follows_the_model_equations(refs):
    """The stepped closed loop against a literal transcription of the plant and RNN updates."""
    plant, a = tr.PointMass(bound=10.0), net(out_scale=2.0, seed=3)  # reaches the clamp
    r = refs.signal(refs.sample_phases(2, make_generator(7)))
    out = tr.rollout(a, plant, r, convention=BOOK)  # h_0 = 0: the first read is at t = 1
    W, W_in, W_out = a.W.detach(), a.W_in, a.W_out.detach()
    q, h, u = torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 12, dtype=torch.float64), \
        torch.zeros(2, 2, dtype=torch.float64)
    hit = False
    for t in range(1, refs.T + 1):
        q = plant.step(q, u)
        hit |= bool((q.abs() == 10.0).any())
        inp = torch.cat([q[:, [0, 2]], r[t]], -1)
        h = h + 0.1 * (-h + h @ W.T + inp @ W_in.T)
        u = h @ W_out.T
        torch.testing.assert_close(out["q"][t].detach(), q, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(out["u"][t].detach(), u, rtol=1e-9, atol=1e-9)
    assert hit  # the clamp was exercised


@pytest.mark.parametrize("conv", [PAPER, BOOK], ids=["paper", "book"])
@pytest.mark.parametrize("out_scale,bound", [(1.0, 10.0), (3.0, 10.0), (3.0, None)])
def test_stepped_rollout_without_gradient_equals_the_autograd_loop(out_scale, bound, conv):
    """The in-place loop used under no_grad against the differentiable one, on a tame loop,
    a runaway loop held by the clamp, and a runaway loop without it (no ramp: the reference
    read at t = 0 is not zero)."""
    refs = tr.Sinusoids(ramp=0.0)
    plant, a = tr.PointMass(bound=bound), net(seed=3, out_scale=out_scale)
    r = refs.signal(refs.sample_phases(5, make_generator(2)))
    slow = tr.rollout(a, plant, r, conv)
    with torch.no_grad():
        fast = tr.rollout(a, plant, r, conv)
    for k in ("q", "u", "inputs"):
        scale = slow[k].detach().abs().max()
        torch.testing.assert_close(fast[k], slow[k].detach(), rtol=0, atol=1e-12 * scale)


def test_silent_network_rates_and_transient_share(refs):
    a = net(out_scale=0.0)  # no control: the plant's modes stay at rate 0
    rates = tr.closed_loop_rates(a, tr.PointMass())
    mu = torch.linalg.eigvals(torch.eye(12, dtype=torch.float64) + a.alpha * (a.W.detach()
                                                                            - torch.eye(12)))
    want = np.concatenate([np.zeros(4), np.log(mu.numpy()) / 0.1])
    np.testing.assert_allclose(np.sort_complex(rates), np.sort_complex(want), atol=1e-6)
    share = tr.linear_response(a, tr.PointMass(), refs).transient_share(10.0)
    power = refs.rho[:, :-1].abs() ** 2  # the error of row t is the reference at t - 1
    torch.testing.assert_close(share, power[:, :100].sum(-1) / power.sum(-1))
