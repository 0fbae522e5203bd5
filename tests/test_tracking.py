"""The motor tracking task: plant, references, linear responses vs stepping, exact vs sampled
loss, open-loop twin, acquisition detection, training, bad input."""

import itertools
import math

import numpy as np
import pytest
import torch

from closedloop import tracking as tr
from closedloop.agents import make_generator


@pytest.fixture
def refs():
    return tr.Sinusoids()


def net(N=12, seed=0, g=0.2, out_scale=1.0):
    a = tr.TrackingRNN(N=N, g=g, seed=seed)
    return tr.TrackingRNN.from_tensors(a.W, a.W_in, out_scale * a.W_out)


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
    out = tr.rollout(a, plant, r)
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


def test_linear_response_matches_stepping(refs):
    """Four complex trajectories reproduce the step-by-step loop for any phases."""
    plant, a = tr.PointMass(bound=None), net()
    phases = refs.sample_phases(6, make_generator(2))
    r = refs.signal(phases)
    stepped = tr.rollout(a, plant, r)
    resp = tr.linear_response(a, plant, refs)
    outputs = torch.cat([stepped["q"], stepped["u"]], -1)[:, 1:]
    torch.testing.assert_close(resp.combine(phases, part="all"), outputs, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(resp.sampled_losses(phases), tr.tracking_loss(stepped["q"], r),
                               rtol=1e-9, atol=0)


def test_exact_loss_is_the_phase_average(refs):
    """Over the phase grid {0, pi/2, pi, 3pi/2}^K every cross term and every e^{2i phi} term
    cancels: the mean of the stepped losses must equal the exact loss to rounding."""
    plant, a = tr.PointMass(bound=None), net()
    grid = torch.tensor(list(itertools.product(*[[0, 0.5 * math.pi, math.pi, 1.5 * math.pi]]
                                               * refs.K)), dtype=torch.float64)
    r = refs.signal(grid)
    stepped = tr.tracking_loss(tr.rollout(a, plant, r)["q"], r)
    resp = tr.linear_response(a, plant, refs)
    assert stepped.mean().item() == pytest.approx(resp.expected_loss().item(), rel=1e-9)
    for k in range(refs.K):  # one sinusoid at a time: phases 0 and pi/2 suffice
        two = torch.tensor([[0.0] * refs.K, [0.5 * math.pi] * refs.K], dtype=torch.float64)
        rk = refs.signal(two, which=[k])
        lk = tr.tracking_loss(tr.rollout(a, plant, rk)["q"], rk).mean()
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
    ramp_loss = (refs.rho[:, 1:].abs() ** 2).mean(-1) * refs.reference_power()
    torch.testing.assert_close(probe, ramp_loss)
    assert torch.all((probe < refs.reference_power()) & (probe > 0.97 * refs.reference_power()))


def test_clamped_losses_step_only_where_the_clamp_acts(refs):
    plant = tr.PointMass(bound=10.0)
    a = net(out_scale=3.0, seed=1)  # a runaway loop
    resp = tr.linear_response(a, plant, refs)
    assert resp.worst_state() > 10
    phases = refs.sample_phases(4, make_generator(4))
    r = refs.signal(phases)
    want = tr.tracking_loss(tr.rollout(a, plant, r)["q"], r)
    torch.testing.assert_close(tr.sampled_losses(a, plant, refs, phases), want, rtol=1e-9, atol=0)


def test_open_loop_imitation_matches_stepping(refs):
    plant = tr.PointMass(bound=None)
    teacher, student = net(seed=0, out_scale=0.3), net(seed=5)
    phases = refs.sample_phases(3, make_generator(6))
    out = tr.rollout(teacher, plant, refs.signal(phases))
    u = tr.open_loop_controls(student, out["inputs"])
    want = ((u[:, 1:] - out["u"][:, 1:]) ** 2).sum(-1).mean(-1)
    _, got, clamped = tr._Teacher(teacher, plant, refs).losses(student, phases)
    assert not clamped
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    same, none, _ = tr._Teacher(teacher, plant, refs).losses(teacher)
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
    assert h.completed and h.epoch.tolist() == list(range(7))
    assert h.probe_loss.shape == (7, 4) and h.eig_W.shape == (3, 8)
    assert h.eig_epoch.tolist() == h.snapshot_epoch.tolist() == [0, 4, 6]
    for key in h.arrays:
        np.testing.assert_array_equal(h.arrays[key], runs[1].arrays[key])
    assert not np.array_equal(h.loss, runs[2].loss)
    e, a = tr.agent_at(h, 5, net(N=8))
    assert e == 6 and torch.equal(a.W, torch.tensor(h.arrays["params/W"][2]))


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
    power = refs.rho[:, 1:].abs() ** 2  # the error is the reference itself
    torch.testing.assert_close(share, power[:, :100].sum(-1) / power.sum(-1))


@pytest.mark.parametrize("out_scale,bound", [(1.0, 10.0), (3.0, 10.0), (3.0, None)])
def test_stepped_rollout_without_gradient_equals_the_autograd_loop(refs, out_scale, bound):
    """The in-place loop used under no_grad against the differentiable one, on a tame loop,
    a runaway loop held by the clamp, and a runaway loop without it."""
    plant, a = tr.PointMass(bound=bound), net(seed=3, out_scale=out_scale)
    r = refs.signal(refs.sample_phases(5, make_generator(2)))
    slow = tr.rollout(a, plant, r)
    with torch.no_grad():
        fast = tr.rollout(a, plant, r)
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
