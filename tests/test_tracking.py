"""The motor tracking task: plant, references, linear responses vs stepping, exact vs sampled
loss, open-loop twin, acquisition detection, training, bad input."""

import itertools
import math

import numpy as np
import pytest
import torch

from closedloop import conventions
from closedloop import tracking as tr
from closedloop.agents import make_generator

PAPER, BOOK = conventions.PAPER_TRACKING, conventions.BOOK_TRACKING
GRID = [0, 0.5 * math.pi, math.pi, 1.5 * math.pi]  # over GRID^K every cross term cancels


@pytest.fixture
def refs():
    return tr.Sinusoids()


def net(N=12, seed=0, g=0.2, out_scale=1.0):
    a = tr.TrackingRNN(N=N, g=g, seed=seed)
    return tr.TrackingRNN.from_tensors(a.W, a.W_in, out_scale * a.W_out)


def authors_loop(a, r, dt=0.1, bound=None):
    """The authors' episode as section 9 of the spec states it, written out step by step:
    for i = 0..T-1 the network reads (x_i, y_i, r_x(t_i), r_y(t_i)), h <- h + (dt/tau)(-h + W h
    + W_in in), u = W_out h moves the plant to q_{i+1}; the error is x_{i+1} - r(t_i), and the
    loss is sum_i dt (batch-mean x err^2 + batch-mean y err^2) / T, here per reference.
    Returns (positions x_1..x_T (B, T, 2), controls u_0..u_{T-1} (B, T, 2), losses (B,))."""
    W, W_in, W_out = (t.detach() for t in (a.W, a.W_in, a.W_out))
    B, T = r.shape[0], r.shape[1] - 1
    x, v = torch.zeros(B, 2, dtype=r.dtype), torch.zeros(B, 2, dtype=r.dtype)
    h = torch.zeros(B, a.N, dtype=r.dtype)
    pos, us, loss = [], [], torch.zeros(B, dtype=r.dtype)
    for i in range(T):
        inp = torch.cat([x, r[:, i]], -1)
        h = h + (dt / a.tau) * (-h + h @ W.T + inp @ W_in.T)
        u = h @ W_out.T
        x, v = x + dt * v, v + dt * u                     # explicit Euler, both axes
        if bound is not None:
            x, v = x.clamp(-bound, bound), v.clamp(-bound, bound)
        err = x - r[:, i]
        loss = loss + dt * (err[:, 0] ** 2 + err[:, 1] ** 2)
        pos.append(x), us.append(u)
    return torch.stack(pos, 1), torch.stack(us, 1), loss / T


def book_loss(q, r):
    """The book's earlier scoring, written out: (1/T) sum_{t=1..T} ||p_t - r_t||^2."""
    return ((q[:, 1:, [0, 2]] - r[:, 1:]) ** 2).sum(-1).mean(-1)


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
        inp = torch.cat([q[:, [0, 2]], r[:, t]], -1)
        h = h + 0.1 * (-h + h @ W.T + inp @ W_in.T)
        u = h @ W_out.T
        torch.testing.assert_close(out["q"][:, t].detach(), q, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(out["u"][:, t].detach(), u, rtol=1e-9, atol=1e-9)
    assert hit  # the clamp was exercised


def test_reference_spectrum_has_its_four_peaks(refs):
    r = refs.signal(refs.sample_phases(3, make_generator(1)))[:, 1:]  # 300 samples = 30 s
    spec = np.abs(np.fft.rfft(r.numpy(), axis=1))                       # bins of 1/30 Hz
    f = np.fft.rfftfreq(refs.T, refs.dt)
    for axis, want in ((0, [0.1, 0.3]), (1, [0.2, 0.4])):
        for b in range(3):
            top = np.sort(f[np.argsort(spec[b, :, axis])[-2:]])
            np.testing.assert_allclose(top, want, atol=1e-12)
            # everything else is leakage of the 1 s ramp, far below the peaks
            others = np.delete(spec[b, :, axis], np.argsort(spec[b, :, axis])[-2:])
            assert others.max() < 0.1 * spec[b, :, axis].max()


def test_reference_amplitudes_and_ramp():
    refs = tr.Sinusoids(ramp=0.0, T=1000)  # 100 s: whole periods of every frequency
    r = refs.signal(torch.zeros(1, 4))[0, :-1]
    spec = np.abs(np.fft.rfft(r.numpy(), axis=0)) * 2 / refs.T
    f = np.fft.rfftfreq(refs.T, refs.dt)
    for fk, axis in zip(refs.freqs, refs.axes):
        assert spec[np.argmin(abs(f - fk)), axis] == pytest.approx(2.31, rel=1e-9)
    ramped = tr.Sinusoids().signal(torch.zeros(1, 4))[0]
    assert ramped[0].abs().max() == 0
    torch.testing.assert_close(ramped[5], 0.5 * r[5])  # half way up the 1 s ramp


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
    torch.testing.assert_close(out["q"][:, 1:, [0, 2]], pos, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out["u"][:, :-1], u, rtol=1e-9, atol=1e-9)
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
            torch.testing.assert_close(out["u"][:, :-1], u_teacher, rtol=1e-9, atol=1e-12)
            u = tr.open_loop_controls(student, out["inputs"])[:, :-1]
            return ((u - u_teacher) ** 2).mean(-1).mean(-1)
        out = tr.rollout(teacher, plant, r, convention=BOOK)
        u = tr.open_loop_controls(student, out["inputs"], convention=BOOK)
        return ((u[:, 1:] - out["u"][:, 1:]) ** 2).sum(-1).mean(-1)

    teach = tr._Teacher(teacher, plant, refs, refs.scoring(conv))
    phases = refs.sample_phases(3, make_generator(6))
    expected, got, clamped = teach.losses(student, phases)
    assert not clamped
    torch.testing.assert_close(got, stepped(phases), rtol=1e-9, atol=1e-12)
    grid = torch.tensor(list(itertools.product(*[GRID] * refs.K)), dtype=torch.float64)
    assert expected.item() == pytest.approx(stepped(grid).mean().item(), rel=1e-9)
    same, none, _ = teach.losses(teacher)
    assert same.item() < 1e-20 and none is None  # a student equal to its teacher: no loss


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


def test_acquisition_on_a_synthetic_curve():
    rng = np.random.default_rng(0)
    E, e0 = np.arange(2000), 1234
    loss = np.where(E < e0, 2.0, 0.3) * np.exp(0.1 * rng.standard_normal(E.size))
    loss[:5] = 1e6                 # an untrained loop that runs away
    loss[600:610] = 0.2            # a lucky dip long before acquisition
    loss[1500:1512] = 3.0          # a noisy spike after it
    assert tr.acquisition_epoch(E, loss, threshold=1.0, window=51) == e0
    # a relative-to-start threshold would fire at once
    assert tr.acquisition_epoch(E, loss, threshold=0.1 * loss[0], window=51) <= 5
    assert tr.acquisition_epoch(E, np.full(E.size, 2.0), threshold=1.0) is None
    assert tr.acquisition_epoch(E, np.full(E.size, 0.5), threshold=1.0) == 0


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


def authors_loop_grad(a, r, dt=0.1):
    """``authors_loop``'s losses, differentiable in a.W and a.W_out."""
    B, T = r.shape[0], r.shape[1] - 1
    x, v = torch.zeros(B, 2, dtype=r.dtype), torch.zeros(B, 2, dtype=r.dtype)
    h, loss = torch.zeros(B, a.N, dtype=r.dtype), 0.0
    for i in range(T):
        h = h + (dt / a.tau) * (-h + h @ a.W.T + torch.cat([x, r[:, i]], -1) @ a.W_in.T)
        x, v = x + dt * v, v + dt * (h @ a.W_out.T)
        loss = loss + dt * ((x - r[:, i]) ** 2).sum(-1)
    return loss / T


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


@pytest.mark.parametrize("make,param", [
    (lambda: tr.Sinusoids(freqs=(0.1, 6.0), axes=(0, 1)), "freqs"),
    (lambda: tr.Sinusoids(freqs=(0.1, 0.2), axes=(0, 2)), "axes"),
    (lambda: tr.Sinusoids(dt=0.0), "dt"),
    (lambda: tr.Sinusoids(amplitude=-1.0), "amplitude"),
    (lambda: tr.Sinusoids(T=0), "T"),
    (lambda: tr.PointMass(dt=-0.1), "dt"),
    (lambda: tr.PointMass(bound=0.0), "bound"),
    (lambda: tr.TrackingRNN(N=0), "N"),
    (lambda: tr.TrackingRNN(tau=0.0), "tau"),
    (lambda: tr.TrackingRNN(dt=0.5, tau=0.2), "alpha"),
    (lambda: tr.TrackingRNN(g=-1.0), "g"),
    (lambda: tr.train_tracking(net(N=4), epochs=1, lr=0.0), "lr"),
    (lambda: tr.train_tracking(net(N=4), epochs=1, batch=0), "batch"),
    (lambda: tr.train_tracking(net(N=4), epochs=1, mode="bogus"), "mode"),
    (lambda: tr.train_tracking(net(N=4), tr.PointMass(dt=0.05), epochs=1), "dt"),
    (lambda: tr.acquisition_epoch([0, 1], [1.0, 1.0], threshold=0.0), "threshold"),
    (lambda: tr.running_median([1.0, 2.0], 4), "window"),
    (lambda: tr.train_tracking(net(N=4), epochs=1, convention="bogus"), "convention"),
    (lambda: tr.tracking_loss(torch.zeros(1, 3, 4, dtype=torch.float64),
                              torch.zeros(1, 3, 2, dtype=torch.float64), dt=0.0), "dt"),
])
def test_bad_arguments_name_the_parameter(make, param):
    with pytest.raises((ValueError, TypeError), match=param):
        make()


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


def test_readers_of_acquisition_and_excursion():
    assert tr.in_order([3, 5, 5, 9]) and tr.in_order([3, 9, None, None])
    assert not tr.in_order([3, 9, 4, 10]) and not tr.in_order([3, None, 9, None])
    assert tr.normalized([250, None, 5000], 5000) == [0.05, None, 1.0]
    with pytest.raises(ValueError, match="length"):
        tr.normalized([1], 0)
    with pytest.raises(TypeError, match="epochs"):
        tr.in_order(np.array([1, 2]))
    refs = tr.Sinusoids(T=30)
    h = tr.train_tracking(net(N=5), refs=refs, epochs=3, batch=2, n_test=2, test_every=1)
    h.arrays["test_loss"] = np.array([2.0, 5.0, 9.0, 3.0, 1.0])  # rise, then fall
    assert tr.excursion(h) == dict(start=2.0, peak=9.0, peak_epoch=2, final=1.0, recovered=True)
    h.arrays["test_loss"] = np.array([2.0, 5.0, 9.0, 6.0, 4.5])  # not below half the peak
    assert tr.excursion(h)["recovered"] is False


def test_thresholds_are_in_the_history_units():
    """The acquisition threshold is fraction x the reference power in the history's units:
    a dt-weighted history's probe losses and threshold both carry dt, so the acquisition
    epochs of a run do not depend on the weight (same network, same batches: the two runs
    differ only in the loss scale, which Adam all but ignores)."""
    refs = tr.Sinusoids(T=60)
    kw = dict(refs=refs, epochs=40, lr=2e-2, batch=4, n_test=2, mode="exact")
    a = tr.train_tracking(net(N=8), **kw, convention=PAPER)
    b = tr.train_tracking(net(N=8), **kw, convention=PAPER.with_(dt_weight=False))
    np.testing.assert_allclose(a.probe_loss, 0.1 * b.probe_loss, rtol=1e-4)  # Adam's eps
    torch.testing.assert_close(tr.history_scoring(a, refs).power, 0.1 * refs.reference_power())
    acquired = tr.acquisition_epochs(a, refs, 0.7, 3)
    assert acquired == tr.acquisition_epochs(b, refs, 0.7, 3)
    assert any(e not in (None, 0) for e in acquired) and None in acquired  # not trivial
    old = tr.train_tracking(net(N=8), **kw, convention=BOOK)
    for key in ("pairing", "dt_weight", "twin_axes", "update_at_epoch0", "twin_trains_W_in"):
        del old.config[key]  # a history saved before conventions were recorded
    assert tr.history_scoring(old, refs).convention == BOOK
