"""Reading a tracking history: acquisition, excursion, thresholds (``tracking.acquisition``)."""


import numpy as np
import pytest
import torch

from closedloop import tracking as tr

from .helpers import BOOK, PAPER, net


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


def test_readers_of_acquisition_and_excursion():
    assert tr.in_order([3, 5, 5, 9]) and tr.in_order([3, 9, None, None])
    assert not tr.in_order([3, 9, 4, 10]) and not tr.in_order([3, None, 9, None])
    assert tr.normalized([250, None, 5000], 5000) == [0.05, None, 1.0]
    assert tr.normalized([[250, None], [500, 1000]], 5000) == [[0.05, None], [0.1, 0.2]]
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


def test_order_over_runs_and_which_run_came_later():
    runs = [[1, 2, 3, 4], [2, 1, 3, 4], [1, 5, None, None], [None, 3, 4, 5],
            [7, None, None, None], [None] * 4]  # the last two show no order: not counted
    assert tr.n_in_order(runs) == 2 and tr.n_comparable(runs) == 4
    assert tr.n_in_order(runs, at_least=1) == 3 and tr.n_comparable(runs, at_least=1) == 5
    assert tr.n_in_order([]) == 0 == tr.n_comparable([])
    assert tr.no_earlier([5, 10, None, None], [3, 10, 20, None])     # None: never, latest
    assert not tr.no_earlier([5, 8, None, None], [3, 10, 20, None])  # 8 before 10
    assert not tr.no_earlier([5, 10, 30, None], [3, 10, None, None])  # 30 before never
    assert tr.acquisition_table([0, 7], [[1, None], [2, 3]], [[4, None], [2, 9]]) == (
        "seed 0: first learned [1, None], acquired [4, None]\n"
        "seed 7: first learned [2, 3], acquired [2, 9]")


def test_probe_losses_are_read_at_or_after_the_epoch():
    h = tr.History({}, {"epoch": np.arange(4), "probe_epoch": np.array([0, 5, 9, 12]),
                        "probe_loss": np.arange(8.0).reshape(4, 2)})
    np.testing.assert_array_equal(tr.probe_at(h, 6), [4.0, 5.0])      # the record of 9


def test_clamped_epochs_and_unstable_share_read_the_history():
    h = tr.History({}, {"epoch": np.array([0, 1, 2, 3, 4]),
                        "clamped": np.array([True, False, True, False, False]),
                        "spectral_radius": np.array([1.5, 1.0, 0.9, 1.01])})
    assert tr.clamped_epochs(h) == [0, 2] and all(type(e) is int for e in tr.clamped_epochs(h))
    assert tr.unstable_share(h) == 0.5                          # rho = 1 does not run away
    with pytest.raises(ValueError, match="clamped"):
        tr.clamped_epochs(tr.History({}, {"epoch": np.arange(3)}))


def test_member_acquisitions_read_each_member():
    refs = tr.Sinusoids(T=30)
    scoring = refs.scoring(PAPER)
    power = scoring.power.numpy()                                 # the thresholds' unit
    probe = np.ones((6, 2, refs.K)) * power                       # as bad as doing nothing
    probe[2:, 0, 0] = 0.1 * power[0]                              # member 0, 1st: from row 2
    probe[1, 1, 1] = 0.1 * power[1]                               # member 1, 2nd: row 1 only
    h = tr.History(scoring.config(), {"epoch": np.arange(6), "probe_epoch": 10 * np.arange(6),
                                      "loss": np.ones((6, 2)), "probe_loss": probe})
    assert tr.member_acquisitions(h, refs, 0.5, 1) == [[20, None, None, None], [None] * 4]
    assert tr.member_acquisitions(h, refs, 0.5, 1, first=True) == [[20, None, None, None],
                                                                   [None, 10, None, None]]
    assert tr.member_acquisitions(h, refs, 0.05, 1) == [[None] * 4] * 2   # a lower threshold
    with pytest.raises(ValueError, match="ensemble"):
        tr.member_acquisitions(h.member(0), refs)


@pytest.mark.parametrize("make,param", [
    (lambda: tr.acquisition_epoch([0, 1], [1.0, 1.0], threshold=0.0), "threshold"),
    (lambda: tr.running_median([1.0, 2.0], 4), "window"),
    (lambda: tr.n_in_order(np.array([[1, 2]])), "runs"),
    (lambda: tr.no_earlier([1, 2], [1]), "than"),
    (lambda: tr.acquisition_table([0], [[1]], []), "acquired"),
])
def test_bad_arguments_name_the_parameter(make, param):
    with pytest.raises((ValueError, TypeError), match=param):
        make()


def bump(E, base, at, height, width=10):
    """A probe loss at ``base`` with a triangular bump to ``base * (1 + height)`` at ``at``."""
    e = np.arange(E)
    return base * (1 + height * np.clip(1 - np.abs(e - at) / width, 0, None))


def probe_history(losses, probe_epoch=None):
    """One run's probe losses, given per sinusoid (K lists of E values), every epoch unless
    ``probe_epoch`` lists the recorded ones."""
    loss = np.stack(losses, -1)
    epochs = np.arange(len(loss)) if probe_epoch is None else np.asarray(probe_epoch)
    return tr.History({}, {"epoch": epochs, "probe_epoch": epochs, "probe_loss": loss})


def test_probe_rise_is_the_peak_over_the_start_of_the_window():
    h = probe_history([bump(300, 0.2, 150, 0.25), np.linspace(0.9, 0.1, 300)])
    got = tr.probe_rise(h, 0, 150, before=100, after=50)
    assert got == pytest.approx(dict(start=0.2, peak=0.25, peak_epoch=150, rise=0.25))
    assert type(got["peak_epoch"]) is int and type(got["rise"]) is float
    assert tr.probe_rise(h, 0, 250, 100, 50)["start"] == pytest.approx(0.25)  # [150, 300]:
    assert tr.probe_rise(h, 0, 250, 100, 50)["rise"] == 0.0                  # at the peak
    assert tr.probe_rise(h, 1, 150, 100, 50)["rise"] == 0.0                  # falling
    assert tr.probe_rise(h, 0, 170, 10, 10)["rise"] == 0.0                   # [160, 180]
    assert tr.probe_rise(h, 0, 20, 100, 0)["start"] == pytest.approx(0.2)    # clipped at 0


def test_probe_rise_reads_strided_records_and_refuses_sparse_ones():
    E = np.arange(0, 300, 10)
    h = probe_history([bump(300, 0.2, 150, 0.25)[E], np.ones(E.size)], probe_epoch=E)
    with pytest.raises(ValueError, match="too sparse.*max_gap=5"):
        tr.probe_rise(h, 0, 150)
    # [55, 200]: from the record of 60 (record_index) to that of 200
    got = tr.probe_rise(h, 0, 155, before=100, after=45, max_gap=10)
    assert got == pytest.approx(dict(start=0.2, peak=0.25, peak_epoch=150, rise=0.25))
    with pytest.raises(ValueError, match="one run"):
        tr.probe_rise(tr.History({}, {"epoch": E, "probe_loss": np.ones((30, 2, 4))}), 0, 10)
    with pytest.raises(ValueError, match="k"):
        tr.probe_rise(h, 2, 150, max_gap=10)


def test_acquisition_rises_pair_each_acquisition_with_the_lower_learned_frequencies():
    # 0.1 Hz learned at 10 bumps by 25% at 150; the 0.2 Hz probe by 40% at 185
    h = probe_history([bump(300, 0.2, 150, 0.25), bump(300, 0.5, 185, 0.4), np.ones(300),
                       np.ones(300)])
    got = tr.acquisition_rises(h, [10, 150, None, 180])
    # 0.2 Hz at 150 disturbs 0.1 Hz; 0.4 Hz at 180 disturbs 0.1 Hz (window [80, 230]) but
    # not 0.2 Hz, learned only 30 epochs before (the two acquisitions overlap), nor 0.3 Hz
    assert [(ev["new"], ev["old"], ev["epoch"]) for ev in got] == [(1, 0, 150), (3, 0, 180)]
    assert [ev["rise"] for ev in got] == pytest.approx([0.25, 0.25])
    assert [ev["peak_epoch"] for ev in got] == [150, 150]
    wider = tr.acquisition_rises(h, [10, 150, None, 180], before=20, after=0)
    assert [(ev["new"], ev["old"]) for ev in wider] == [(1, 0), (3, 0), (3, 1)]
    assert wider[2]["rise"] == pytest.approx(0.4 * 5 / 10)        # [160, 180]: 185 - 5
    assert tr.acquisition_rises(h, [None] * 4) == []
    with pytest.raises(TypeError, match="learned"):
        tr.acquisition_rises(h, np.array([10, 150]))


def test_quiet_rises_skip_every_window_near_an_acquisition():
    # 0.1 Hz learned at 0, 0.2 Hz at 500; windows of 150 epochs tiled from 50 (0.1 Hz) and
    # 550 (0.2 Hz); those meeting [400, 550] are dropped: 0.1 Hz keeps 50, 200, 650, 800,
    # 0.2 Hz keeps 550, 700. Planted: +10% in 0.1 Hz's window at 200, +40% in 0.2 Hz's at
    # 700, and +30% at 0.2 Hz's acquisition, which no quiet window may see.
    p0 = bump(1000, 0.2, 260, 0.1) * bump(1000, 1.0, 510, 0.3)
    p1 = bump(1000, 0.5, 760, 0.4)
    h = probe_history([p0, p1, np.ones(1000), np.ones(1000)])
    got = tr.quiet_rises(h, [0, 500, None, None], before=100, after=50)
    np.testing.assert_allclose(got, [0, 0.1, 0, 0, 0, 0.4], atol=1e-12)
    assert tr.quiet_rises(h, [None] * 4).shape == (0,)
    assert tr.acquisition_rises(h, [0, 500, None, None])[0]["rise"] == pytest.approx(0.3)


def eig_history(records, epochs):
    """One run's eig_W records, each a list of upper-half eigenvalues (their conjugates and
    a real one are added, in a shuffled order)."""
    rng = np.random.default_rng(0)
    rows = [rng.permutation(np.concatenate([r, np.conj(r), [-1.0]])) for r in records]
    return tr.History({}, {"epoch": np.arange(epochs[-1] + 1), "eig_epoch": np.asarray(epochs),
                           "eig_W": np.array(rows)})


def test_pair_paths_follow_the_new_and_the_learned_pair():
    # the learned pair (-0.4 + 0.66i) wobbles by up to 0.04; the new one (-0.1 + ...) climbs
    # from 0.63 (nearer i 0.628 than the learned pair at the start) to 1.25; a damped
    # distractor sits at -1 + 0.1i
    old = [-0.4 + 0.66j, -0.4 + 0.66j, -0.4 + 0.70j, -0.4 + 0.68j, -0.4 + 0.67j]
    new = [-0.1 + 0.63j, -0.1 + 0.8j, -0.1 + 1.0j, -0.1 + 1.2j, -0.1 + 1.25j]
    h = eig_history([[o, n, -1 + 0.1j] for o, n in zip(old, new)], [0, 10, 20, 30, 40])
    got = tr.pair_paths(h, 0.628, 1.257, 0, 40)
    np.testing.assert_array_equal(got["epochs"], [0, 10, 20, 30, 40])
    np.testing.assert_allclose(got["old"], old)
    np.testing.assert_allclose(got["new"], new)
    assert got["shift"] == pytest.approx(0.04)
    part = tr.pair_paths(h, 0.628, 1.257, 5, 35)              # the records of 10, 20, 30
    np.testing.assert_allclose(part["old"], old[1:4])
    np.testing.assert_allclose(part["new"], new[1:4])
    with pytest.raises(ValueError, match="too sparse"):
        tr.pair_paths(h, 0.628, 1.257, 0, 40, max_gap=5)
    with pytest.raises(ValueError, match="end"):
        tr.pair_paths(h, 0.628, 1.257, 40, 0)
    with pytest.raises(ValueError, match="one run"):
        tr.pair_paths(tr.History({}, {"eig_epoch": np.arange(2),
                                      "eig_W": np.ones((2, 3, 4), complex)}), 1, 2, 0, 1)


def loss_history(loss):
    """One run's expected loss, one value per epoch."""
    loss = np.asarray(loss, dtype=float)
    return tr.History({}, {"epoch": np.arange(loss.size), "expected_loss": loss})


def test_loss_spikes_find_a_jump_and_not_a_smooth_fall():
    rng = np.random.default_rng(0)
    e = np.arange(2000)
    # a plateau, a fall by a factor 10, a slow drift up (0.04% an epoch), 0.2% wobble
    fall = (0.9 * np.exp(-np.clip(e - 300, 0, None) / 150) + 0.1) * np.where(
        e > 1500, 1 + 4e-4 * (e - 1500), 1) * (1 + 2e-3 * rng.standard_normal(e.size))
    assert tr.loss_spikes(loss_history(fall)) == []
    # an Adam spike: the whole loss doubles at 1200 and takes 10 epochs to come back, with a
    # second jump (1.3x) 8 epochs later in the same spike, and a lone 1.2x jump at 1700
    spiky = fall * bump(2000, 1.0, 1200, 1.0, width=10) * bump(2000, 1.0, 1208, 0.3, width=2)
    spiky[1700] *= 1.2
    got = tr.loss_spikes(loss_history(spiky))
    assert [(s["start"], s["peak"], s["end"]) for s in got] == [(1191, 1200, 1209),
                                                                  (1700, 1700, 1700)]
    assert got[0]["ratio"] == pytest.approx(2.0, rel=0.02)
    assert got[1]["ratio"] == pytest.approx(1.2, rel=0.02)
    assert all(type(s[k]) is int for s in got for k in ("start", "peak", "end"))
    # a stricter factor keeps the big one; a short gap splits nothing here
    assert [s["peak"] for s in tr.loss_spikes(loss_history(spiky), factor=1.5)] == [1200]
    assert tr.loss_spikes(loss_history(spiky), gap=1) == got
    # the train loss may be read instead, and the epochs are the history's
    h = tr.History({}, {"epoch": 10 + e, "loss": spiky})
    assert [s["peak"] for s in tr.loss_spikes(h, of="loss")] == [1210, 1710]


def test_near_spike_widens_each_spike_by_the_margin():
    spikes = [dict(start=100, peak=102, end=105, ratio=2.0)]
    assert tr.near_spike(spikes, 0, 49) is False        # 100 - 50
    assert tr.near_spike(spikes, 0, 50) is True
    assert tr.near_spike(spikes, 0, 60, margin=10) is False
    assert tr.near_spike(spikes, 155, 300) is True      # 105 + 50
    assert tr.near_spike(spikes, 156, 300) is False
    assert tr.near_spike([], 0, 1000) is False


def test_quiet_rises_avoid_the_windows_near_a_spike():
    # the same runs as above; a spike at 240 leaves out 0.1 Hz's window [200, 350] (+10%)
    p0 = bump(1000, 0.2, 260, 0.1) * bump(1000, 1.0, 510, 0.3)
    p1 = bump(1000, 0.5, 760, 0.4)
    h = probe_history([p0, p1, np.ones(1000), np.ones(1000)])
    spike = [dict(start=240, peak=240, end=242, ratio=1.5)]
    got = tr.quiet_rises(h, [0, 500, None, None], avoid=spike, margin=0)
    np.testing.assert_allclose(got, [0, 0, 0, 0, 0.4], atol=1e-12)
    # widened by 100 it meets [50, 200] too
    assert tr.quiet_rises(h, [0, 500, None, None], avoid=spike, margin=100).size == 4


@pytest.mark.parametrize("make,param", [
    (lambda: tr.loss_spikes(loss_history([1.0, 2.0]), factor=0.9), "factor"),
    (lambda: tr.loss_spikes(loss_history([1.0, 2.0]), window=0), "window"),
    (lambda: tr.loss_spikes(loss_history([1.0, 2.0]), of="grad_norm"), "grad_norm"),
    (lambda: tr.loss_spikes(tr.History({}, {"epoch": np.arange(3),
                                           "expected_loss": np.ones((3, 2))})), "one run"),
    (lambda: tr.near_spike([], 0, 1, margin=-1), "margin"),
])
def test_loss_spikes_bad_arguments_name_the_parameter(make, param):
    with pytest.raises((ValueError, TypeError), match=param):
        make()
