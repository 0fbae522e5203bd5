"""Chapter 1's claims: the student's test-loss peak, the closed-loop plateau, the ablation."""

import math

import numpy as np
import pytest

from closedloop import DoubleIntegrator, RNNAgent, UniformBox, excursion, gains
from closedloop.history import History
from closedloop.stages import Stages
from closedloop.streams import Stream
from closedloop.training import train_closed_loop, train_open_loop


def peak_by_loops(loss):
    """The largest value standing above the lowest value before it, by plain loops."""
    best = None
    for i in range(1, len(loss)):
        if loss[i] > min(loss[:i]) and (best is None or loss[i] > loss[best]):
            best = i
    return best


def plateau_by_loops(loss, flat, drop):
    """The longest (a, b) within a factor ``flat`` followed by a ``drop``-fold fall, by
    trying every pair (the earliest of equally long ones)."""
    best = None
    for a in range(len(loss)):
        for b in range(a, len(loss)):
            seg = loss[a:b + 1]
            if max(seg) > flat * min(seg):
                break
            after = loss[b + 1:]
            if len(after) and min(after) < min(seg) / drop:
                if best is None or b - a > best[1] - best[0]:
                    best = (a, b)
    return best


def test_a_hand_made_excursion():
    ex = excursion.find_excursion(np.arange(8), [10.0, 5, 3, 4, 50, 20, 2, 1])
    assert ex.peak_epoch == 4 and ex.peak_loss == 50
    assert ex.ratio == 50 and ex.over_start == 5 and ex.shows


def test_a_rise_below_the_start_is_not_the_excursion():
    ex = excursion.find_excursion([0, 10, 20, 30], [100.0, 5, 30, 1])
    assert ex.peak_epoch == 20 and ex.ratio == 30 and not ex.shows


def test_a_falling_curve_has_no_peak():
    ex = excursion.find_excursion([0, 1, 2], [3.0, 2.0, 2.0])  # flat is not a rise
    assert ex.peak_epoch is None and math.isnan(ex.ratio) and not ex.shows


def test_the_peak_agrees_with_plain_loops():
    rng = np.random.default_rng(0)
    for _ in range(200):
        loss = np.exp(rng.normal(size=rng.integers(2, 30)))
        ex = excursion.find_excursion(np.arange(len(loss)) * 3, loss)
        i = peak_by_loops(loss)
        assert ex.peak_epoch == (None if i is None else 3 * i)


def test_the_plateau_agrees_with_plain_loops():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(2, 25))
        loss = np.exp(np.cumsum(rng.normal(-0.3, 1.0, size=n)))
        flat, drop = rng.uniform(1.2, 4), rng.uniform(1.2, 20)
        want = plateau_by_loops(loss, flat, drop)
        got = excursion.find_plateau(np.arange(n) + 5, loss, flat, drop)
        assert got == (None if want is None else (want[0] + 5, want[1] + 5))


def test_a_staged_curve_has_its_plateau_and_the_final_convergence_is_not_one():
    e = np.arange(300)
    loss = np.where(e < 20, 1e4 * 0.7**e, 600 * 0.998**e)  # fast drop, slow plateau ...
    loss = np.where(e < 120, loss, 600 * 0.998**120 * 0.9**(e - 120))  # ... second drop
    loss = np.maximum(loss, 5.0)  # ... and a flat end longer than the plateau
    first, last = excursion.find_plateau(e, loss)
    assert loss[first] <= 2 * loss[last]  # within a factor 2
    assert 10 <= first <= 20 and 119 <= last <= 125


@pytest.mark.parametrize("kwargs,name", [
    (dict(epochs=[0, 1], loss=[1.0]), "loss"), (dict(epochs=[0, 1], loss=[1.0, -1.0]), "loss"),
    (dict(epochs=[0, 1], loss=[1.0, 0.5], flat=1.0), "flat"),
    (dict(epochs=[0, 1], loss=[1.0, 0.5], drop=0.5), "drop"),
])
def test_bad_curves_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        excursion.find_plateau(**kwargs)


SMALL = dict(N=8, g=0.3, epochs=12, T=8, batch=6, lr=0.05)


@pytest.fixture(scope="module", params=["authors", "package"])
def small_pairs(request):
    env = DoubleIntegrator(UniformBox(1.0))
    probe = gains.probe(env, gains.fixed_starts(env, 6), SMALL["T"], units="summed")
    pairs = excursion.train_pairs(excursion.ablation_settings(), seeds=(3, 4), env=env,
                                  monitor=probe, snapshot_every=4, stream=request.param,
                                  **SMALL)
    return env, probe, pairs, request.param


def test_the_reference_pair_is_the_single_runs(small_pairs):
    """The reference pair at the first seed, trained inside ensembles (and worker jobs), is
    what the two trainings give run alone: in the authors' stream, the network, batches and
    student inputs of one stream continued; in the package's, the initial network of that
    seed and fresh batches of that seed."""
    env, probe, pairs, kind = small_pairs
    kw = {k: v for k, v in SMALL.items() if k not in ("N", "g")}
    stream = Stream(3, kind)
    agent = RNNAgent(N=SMALL["N"], g=SMALL["g"], seed=stream)
    student = agent.detached()
    h_c = train_closed_loop(agent, env, beta=0.005, seed=stream, monitor=probe, **kw)
    h_o = train_open_loop(student, agent, env, seed=stream.student(SMALL["T"]), monitor=probe,
                          **kw)
    np.testing.assert_allclose(pairs.closed[("paper", 3)].test_loss, h_c.test_loss, rtol=1e-9)
    np.testing.assert_allclose(pairs.open[("paper", 3)].test_loss, h_o.test_loss, rtol=1e-9)
    assert "spectral_radius" in pairs.open[("paper", 3)].arrays  # the reference pair
    assert pairs.open[("paper", 3)].snapshot_epoch.tolist() == [0, 4, 8, 12, 13]
    assert "spectral_radius" not in pairs.open[("paper", 4)].arrays  # the others
    assert pairs.closed[("paper", 4)].monitor_epoch.tolist() == [0, 13]


def test_the_streams_draw_different_runs(small_pairs):
    """A stream switch that fell back to the package's generator would train the same
    networks under both names: the authors' seed 3 draws m ~ N(0, 1/N^2) from numpy."""
    *_, pairs, kind = small_pairs
    m0 = pairs.closed[("paper", 3)].arrays["params/m"][0]
    authors = np.random.RandomState(3).normal(0, 1 / SMALL["N"], size=SMALL["N"])
    assert np.allclose(m0, authors.astype(np.float32), rtol=0, atol=0) == (kind == "authors")


def test_each_student_starts_from_its_teachers_initial_weights(small_pairs):
    _, _, pairs, kind = small_pairs
    for (key, seed), h in pairs.open.items():
        init = "gaussian" if key == "init" else "paper"
        net = RNNAgent(N=SMALL["N"], g=SMALL["g"], seed=Stream(seed, kind), init=init).snapshot()
        zm = float(net["z"] @ net["m"])
        assert h.instant_gain[0] == pytest.approx(zm, rel=1e-12)
        assert pairs.closed[(key, seed)].instant_gain[0] == pytest.approx(zm, rel=1e-12)
    assert set(pairs.open) == {(s.key, 3) for s in pairs.settings} | {("paper", 4)}


def test_the_time_mean_student_loss_is_the_sum_over_T(small_pairs):
    """Same network, same teacher, same inputs at epoch 0: the summed loss is T times the mean;
    settings that keep the teacher share its training."""
    _, _, pairs, _ = small_pairs
    paper, mean = pairs.open[("paper", 3)], pairs.open[("mean", 3)]
    assert paper.loss[0] == pytest.approx(SMALL["T"] * mean.loss[0], rel=1e-12)
    assert pairs.closed[("mean", 3)] is pairs.closed[("paper", 3)]
    assert pairs.closed[("inputs", 3)] is pairs.closed[("paper", 3)]
    assert pairs.closed[("init", 3)] is not pairs.closed[("paper", 3)]


def test_the_table_reads_the_histories(small_pairs):
    env, _, pairs, _ = small_pairs
    rows = pairs.table()
    assert [r["key"] for r in rows] == [s.key for s in pairs.settings]
    for r in rows:
        h = pairs.open[(r["key"], 3)]
        grad = h.grad_norm[1:]
        assert r["clipped"] == pytest.approx(np.mean([g > 1.0 for g in grad]))
        assert r["final"] == h.test_loss[-1]
        region = gains.stability_region(h.gains, env)
        assert r["oscillatory_epochs"] == sum(int(c == 1) for c in region)
    assert pairs.markdown().count("\n") == len(rows) + 2
    assert 0 <= pairs.seeds_showing() <= 2


def test_workers_give_the_same_runs():
    """Two worker processes train the same networks on the same batches as one process."""
    env = DoubleIntegrator(UniformBox(1.0))
    probe = gains.probe(env, gains.fixed_starts(env, 5), 6, units="summed")
    kw = dict(N=6, g=0.3, epochs=4, T=6, batch=4, env=env, monitor=probe)
    settings = excursion.ablation_settings()[:2]
    one = excursion.train_pairs(settings, seeds=(0, 1), workers=1, **kw)
    two = excursion.train_pairs(settings, seeds=(0, 1), workers=2, **kw)
    assert set(one.open) == set(two.open)
    for k in one.open:
        np.testing.assert_array_equal(one.open[k].test_loss, two.open[k].test_loss)
        np.testing.assert_array_equal(one.closed[k].loss, two.closed[k].loss)


@pytest.mark.parametrize("kwargs,name", [
    (dict(settings=()), "settings"), (dict(seeds=()), "seeds"), (dict(seeds=(1, 1)), "seeds"),
    (dict(seeds=3), "seeds"), (dict(workers=0), "workers"), (dict(epochs=0), "epochs"),
])
def test_bad_pair_arguments_name_the_parameter(kwargs, name):
    args = dict(settings=excursion.ablation_settings(), seeds=(0,), N=4, epochs=1, T=3,
                batch=2)
    args.update(kwargs)
    with pytest.raises((TypeError, ValueError), match=name):
        excursion.train_pairs(**args)


def test_ablation_settings_switch_one_ingredient_each():
    ref, *others = excursion.ablation_settings("white_noise")
    for s in others:
        diffs = [f for f in ("init", "closed", "student", "inputs")
                 if getattr(s, f) != getattr(ref, f)]
        assert diffs in (["student"], ["init"], ["inputs"]), s
    assert others[-1].inputs == "teacher"
    assert excursion.ablation_settings("teacher")[-1].inputs == "white_noise"
    with pytest.raises(ValueError, match="inputs"):
        excursion.ablation_settings("pink")


@pytest.mark.parametrize("stages,peak,closed,open_", [
    (Stages(2, None, 31), 31, [0, 2, 15, 31], [0, 31]),  # never stable: halfway
    (Stages(None, 20, 31), 7, [0, 1, 20, 31], [0, 7, 31]),  # stage 1 never ends: epoch 1
    (Stages(0, 1, 2), 0, [0, 1, 2], [0, 2]),  # repeats once, in order
])
def test_replay_epochs_are_the_milestones_in_order(stages, peak, closed, open_):
    h = History(config={}, arrays={"epoch": np.arange(stages.last_epoch + 1)})
    assert excursion.replay_epochs(h, stages, peak) == (closed, open_)


def test_students_are_labelled_in_the_order_of_the_settings(small_pairs):
    _, _, pairs, _ = small_pairs
    students = pairs.students(3)
    assert list(students) == [s.label for s in pairs.settings]
    assert all(students[s.label] is pairs.open[(s.key, 3)] for s in pairs.settings)
