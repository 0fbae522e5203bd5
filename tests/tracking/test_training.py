"""Closed-loop training, the open-loop twin, ensembles, interruption and divergence
(``tracking.training``)."""

import itertools

import numpy as np
import pytest
import torch

from closedloop import tracking as tr
from closedloop.agents import make_generator
from closedloop.tracking.training import _Teacher

from .helpers import BOOK, GRID, PAPER, authors_loop, authors_loop_grad, book_loss, net


@pytest.mark.parametrize("conv", [PAPER, BOOK], ids=["paper", "book"])
def test_open_loop_imitation_matches_stepping(conv):
    """The twin's imitation loss of a batch, from the FFT engine, against the teacher driving
    its plant step by step and the student fed the same inputs (controls written out: the
    authors' u_0..u_{T-1} averaged over the two axes, the book's u_1..u_T summed), and the
    exact loss against its phase-grid average. No ramp: the inputs at t = 0 count."""
    refs = tr.Sinusoids(ramp=0.0, T=120)
    plant = tr.PointMass(bound=None)
    teacher, student = net(seed=0, out_scale=0.3), net(seed=5)

    def stepped(phases):
        r = refs.signal(phases)
        if conv is PAPER:
            _, u_teacher, _ = authors_loop(teacher, r)
            out = tr.rollout(teacher, plant, r)
            torch.testing.assert_close(out["u"][:-1], u_teacher, rtol=1e-9, atol=1e-12)
            u = tr.open_loop_controls(student, out["inputs"])[:-1]
            return ((u - u_teacher) ** 2).mean(-1).mean(0)
        out = tr.rollout(teacher, plant, r, convention=BOOK)
        u = tr.open_loop_controls(student, out["inputs"], convention=BOOK)
        return ((u[1:] - out["u"][1:]) ** 2).sum(-1).mean(0)

    teach = _Teacher(teacher, plant, refs, refs.scoring(conv))
    phases = refs.sample_phases(3, make_generator(6))
    expected, got, clamped = teach.losses(student, phases)
    assert not clamped
    torch.testing.assert_close(got, stepped(phases), rtol=1e-9, atol=1e-12)
    grid = torch.tensor(list(itertools.product(*[GRID] * refs.K)), dtype=torch.float64)
    assert expected.item() == pytest.approx(stepped(grid).mean().item(), rel=1e-9)
    same, none, _ = teach.losses(teacher)
    assert same.item() < 1e-20 and none is None  # a student equal to its teacher: no loss


def test_training_records_and_is_deterministic():
    refs = tr.Sinusoids(T=60)
    runs = [tr.train_tracking(net(N=8), refs=refs, epochs=6, batch=5, seed=s, n_test=4,
                              record_every=4) for s in (1, 1, 2)]
    h = runs[0]
    # the authors' schedule: epoch 0 only records, 6 updates, the final network in row 7
    assert h.completed and h.epoch.tolist() == list(range(8))
    assert h.probe_loss.shape == (8, 4) and h.eig_W.shape == (3, 8)
    assert h.eig_epoch.tolist() == h.snapshot_epoch.tolist() == [0, 4, 7]
    for key in h.arrays:
        np.testing.assert_array_equal(h.arrays[key], runs[1].arrays[key])
    assert not np.array_equal(h.loss, runs[2].loss)
    e, a = tr.agent_at(h, 5, net(N=8))
    assert e == 7 and torch.equal(a.W, torch.tensor(h.arrays["params/W"][2]))
    assert h.config["convention"] == PAPER.name and h.config["loss_scale"] == 0.1
    assert tr.history_scoring(h, refs).convention == PAPER
    book = tr.train_tracking(net(N=8), refs=refs, epochs=6, batch=5, n_test=4, record_every=4,
                             convention="book_tracking")
    assert book.epoch.tolist() == list(range(7)) and book.snapshot_epoch.tolist() == [0, 4, 6]
    assert tr.history_scoring(book, refs).convention == BOOK


@pytest.mark.parametrize("conv", [PAPER, BOOK], ids=["paper", "book"])
def test_epoch_0_updates_only_where_the_convention_says(conv):
    """One update on the exact loss, against Adam's first step written out: p - lr g/(|g| +
    eps) with g the gradient of the phase-grid average of the stepped losses (brute force).
    The authors' epoch 0 only records: two rows of the initial network, the update after."""
    refs = tr.Sinusoids(T=40, ramp=0.0)
    plant, a, lr = tr.PointMass(bound=None), net(N=6, seed=2), 1e-3
    W, W_out = a.W.detach().clone().requires_grad_(True), a.W_out.detach().clone()
    W_out.requires_grad_(True)
    grid = torch.tensor(list(itertools.product(*[GRID] * refs.K)), dtype=torch.float64)
    r = refs.signal(grid)
    probe = tr.TrackingRNN.from_tensors(W, a.W_in, W_out)
    probe.W, probe.W_out = W, W_out  # the same leaves: autograd reaches them
    loss = (authors_loop_grad(probe, r) if conv is PAPER
            else book_loss(tr.rollout(probe, plant, r, convention=BOOK)["q"], r)).mean()
    gW, gWo = torch.autograd.grad(loss, [W, W_out])
    h = tr.train_tracking(a, plant, refs, epochs=1, lr=lr, mode="exact", n_test=2,
                          record_every=1, convention=conv)
    snaps = h.arrays["params/W"]
    if conv is PAPER:
        assert h.epoch.tolist() == [0, 1, 2]
        np.testing.assert_array_equal(snaps[0], snaps[1])  # no update at epoch 0
    else:
        assert h.epoch.tolist() == [0, 1]
    adam = lambda g: lr * g / (g.abs() + 1e-8)  # bias-corrected first step
    torch.testing.assert_close(torch.tensor(snaps[-1]), W.detach() - adam(gW), rtol=0,
                               atol=1e-12)
    torch.testing.assert_close(torch.tensor(h.arrays["params/W_out"][-1]),
                               W_out.detach() - adam(gWo), rtol=0, atol=1e-12)


def test_the_twin_trains_W_in_and_the_closed_loop_network_does_not():
    refs, plant = tr.Sinusoids(T=60), tr.PointMass()
    teacher = net(N=8, seed=1)
    closed = tr.train_tracking(teacher, plant, refs, epochs=5, lr=1e-2, batch=4, n_test=2,
                               record_every=1)
    W_in = closed.arrays["params/W_in"]
    assert (W_in == W_in[0]).all() and not (closed.arrays["params/W"] == closed.arrays[
        "params/W"][0]).all()
    for conv, trains in ((PAPER, True), (BOOK, False)):
        twin = net(N=8, seed=2)
        h = tr.train_tracking(twin, plant, refs, epochs=5, lr=1e-2, batch=4, n_test=2,
                              record_every=1, teacher=teacher, convention=conv)
        W_in = h.arrays["params/W_in"]
        assert (W_in[-1] != W_in[0]).any() == trains
        np.testing.assert_array_equal(W_in[1], W_in[0])  # both: no change at epoch 0 ...
        # ... where it makes no update (the authors'); the book updates at epoch 0
        assert (h.arrays["params/W"][1] != h.arrays["params/W"][0]).any() == (conv is BOOK)
        _, rebuilt = tr.agent_at(h, int(h.epoch[-1]), net(N=8, seed=2))
        torch.testing.assert_close(rebuilt.W_in, twin.W_in.detach(), rtol=0, atol=0)
    # a twin's own closed loop is computed where it is tested: its probe losses are there
    slow = tr.train_tracking(net(N=8, seed=2), plant, refs, epochs=130, lr=1e-2, batch=4,
                             n_test=2, test_every=10, teacher=teacher)
    assert slow.probe_epoch.tolist() == slow.test_epoch.tolist() == list(range(100)) + [
        100, 110, 120, 130, 131]
    at_130 = tr.linear_response(tr.agent_at(slow, 130)[1], plant, refs).probe_losses()
    np.testing.assert_allclose(tr.probe_at(slow, 125), at_130.detach().numpy(), rtol=1e-12)
    assert len(tr.acquisition_epochs(slow, refs, 0.5, 3)) == 4


def test_exact_training_and_open_loop_twin_learn():
    refs = tr.Sinusoids(T=100)
    teacher = net(N=10)
    h = tr.train_tracking(teacher, refs=refs, epochs=80, lr=1e-2, mode="exact", n_test=8)
    np.testing.assert_allclose(h.loss, h.expected_loss, rtol=1e-12)
    assert h.loss[-1] < 0.7 * h.loss[0]
    ho = tr.train_tracking(net(N=10), refs=refs, epochs=40, lr=1e-2, teacher=teacher, batch=10,
                           n_test=8)
    assert ho.loss[-1] < 0.5 * ho.loss[0]


def test_interrupt_keeps_history(monkeypatch):
    refs = tr.Sinusoids(T=40)
    real, calls = refs.sample_phases, []

    def interrupted(*args, **kwargs):  # Ctrl-C while epoch 3 draws its batch
        calls.append(1)
        if len(calls) > 4:             # the first call draws the test set
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(refs, "sample_phases", interrupted)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        h = tr.train_tracking(net(N=6), refs=refs, epochs=20, batch=4, n_test=4)
    assert len(h.epoch) == 3 and not h.completed


def test_divergence_stops_with_message_and_keeps_history():
    refs = tr.Sinusoids(T=300)
    with pytest.warns(RuntimeWarning, match="not finite"):
        h = tr.train_tracking(net(N=6, out_scale=30.0), tr.PointMass(bound=None), refs,
                              epochs=50, lr=1e3, mode="exact", n_test=2)
    assert not h.completed and "epoch" in h.message and np.isfinite(h.loss).all()


def test_an_ensemble_trains_like_its_members_alone():
    """Three networks trained as one ensemble, each with its own seed and mode (one a runaway
    loop that reaches the clamp, one on the exact loss), against each trained alone: every
    record agrees to float tolerance."""
    refs, plant = tr.Sinusoids(), tr.PointMass()
    nets = [net(seed=0), net(seed=1, out_scale=3.0), net(seed=2, out_scale=3.0)]
    seeds, modes = [4, 7, 9], ["sampled", "sampled", "exact"]
    kw = dict(epochs=6, batch=5, n_test=4, test_every=2, record_every=3)
    ens = tr.TrackingRNN.stack(nets)
    h = tr.train_tracking(ens, plant, refs, seed=seeds, mode=modes, **kw)
    assert h.clamped[:, 1].any() and not h.clamped[:, 2].any()  # stepped: sampled runaway only
    for k, (a, s, m) in enumerate(zip(nets, seeds, modes)):
        alone = tr.train_tracking(a.copy(), plant, refs, seed=s, mode=m, **kw)
        member = h.member(k)
        assert member.arrays.keys() == alone.arrays.keys()
        for name, want in alone.arrays.items():
            np.testing.assert_allclose(member.arrays[name], want, rtol=1e-9, atol=1e-12,
                                       err_msg=name)


def test_ensemble_arguments_are_checked():
    ens = tr.TrackingRNN.stack([net(seed=0), net(seed=1)])
    refs = tr.Sinusoids(T=20)
    with pytest.raises(ValueError, match="seed"):
        tr.train_tracking(ens, tr.PointMass(), refs, epochs=1, seed=[1, 2, 3])
    with pytest.raises(ValueError, match="mode"):
        tr.train_tracking(ens, tr.PointMass(), refs, epochs=1, mode=["exact"])
    with pytest.raises(ValueError, match="mode"):
        tr.train_tracking(ens, tr.PointMass(), refs, epochs=1, mode=["exact", "fast"])
    with pytest.raises(ValueError, match="one network"):
        tr.train_tracking(ens, tr.PointMass(), refs, epochs=1, teacher=net(seed=2))
    with pytest.raises(ValueError, match="one network"):
        tr.rollout(ens, tr.PointMass(), refs.signal(refs.sample_phases(2, make_generator(0))))
    with pytest.raises(ValueError, match="N, dt and tau"):
        tr.TrackingRNN.stack([net(N=5), net(N=6)])


def test_stepped_batch_is_timed_on_a_copy():
    a = net(N=4)
    W = a.W.detach().clone()
    seconds = tr.stepped_batch_seconds(a, tr.PointMass(), tr.Sinusoids(T=20), 3, seed=2)
    assert type(seconds) is float and seconds > 0
    assert a.W.grad is None and a.W_out.grad is None and torch.equal(a.W.detach(), W)


@pytest.mark.parametrize("make,param", [
    (lambda: tr.stepped_batch_seconds(net(N=4), tr.PointMass(), tr.Sinusoids(T=20), 0),
     "batch"),
    (lambda: tr.stepped_batch_seconds(tr.TrackingRNN.stack([net(N=4), net(N=4)]),
                                      tr.PointMass(), tr.Sinusoids(T=20), 2), "ensemble"),
    (lambda: tr.train_tracking(net(N=4), epochs=1, lr=0.0), "lr"),
    (lambda: tr.train_tracking(net(N=4), epochs=1, batch=0), "batch"),
    (lambda: tr.train_tracking(net(N=4), epochs=1, mode="bogus"), "mode"),
    (lambda: tr.train_tracking(net(N=4), tr.PointMass(dt=0.05), epochs=1), "dt"),
    (lambda: tr.train_tracking(net(N=4), epochs=1, convention="bogus"), "convention"),
])
def test_bad_arguments_name_the_parameter(make, param):
    with pytest.raises((ValueError, TypeError), match=param):
        make()
