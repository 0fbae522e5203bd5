"""Chapter 1's claims on hand-built histories, whose peaks, plateaus and gaps are known by
construction; the stability regions are recomputed here from the eigenvalues of A + B k^T."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from closedloop import DoubleIntegrator, UniformBox, excursion
from closedloop.claims import Words
from closedloop.claims import ch1 as claims
from closedloop.history import History
from closedloop.stages import Stages

ENV = DoubleIntegrator(UniformBox(1.0))
PHI = (1 + math.sqrt(5)) / 2
REGIONS = ("stable", "unstable oscillatory", "unstable real")


def plain(words: str) -> str:
    """A phrase without its bold marks (every number in a phrase is bold, as glued numbers)."""
    assert words.count("**") % 2 == 0, words
    return words.replace("**", "")


def hist(**arrays):
    """A History holding ``arrays`` (monitor_epoch, eig_epoch and epoch default to 0..E-1)."""
    n = len(next(iter(arrays.values())))
    for key in ("monitor_epoch", "eig_epoch", "epoch"):
        arrays.setdefault(key, np.arange(n))
    return History(config={}, arrays={k: np.asarray(v) for k, v in arrays.items()})


def region(k):
    """0 stable, 1 unstable oscillatory, 2 unstable real: from eig([[1, 1], [k1, 1 + k2]])."""
    ev = np.linalg.eigvals(np.array([[1.0, 1.0], [k[0], 1.0 + k[1]]]))
    if np.abs(ev).max() < 1:
        return 0
    return 1 if abs(ev[0].imag) > 0 else 2


# -- setup and closed loop ---------------------------------------------------------------------
def test_setup_echoes_the_run_and_its_wall_time():
    pairs = excursion.Pairs(excursion.ablation_settings(), (3,), seconds=12.5)
    got = claims.setup(pairs, seed=3, beta=0.005, epochs=30, n_test=10, snapshot_every=5)
    assert got == {"beta_used": 0.005, "epochs_used": 30, "seed_used": 3, "n_test_used": 10,
                   "training_seconds": 12.5, "snapshot_stride": 5}


def test_the_plateau_is_read_between_its_epochs():
    # epochs 0, 10, ..., 50: the plateau (10, 40) holds 10, 8, 6, 9
    h = hist(test_loss=[100.0, 10, 8, 6, 9, 0.5], monitor_epoch=np.arange(6) * 10)
    got = claims.closed_loop(h, Stages(2, None, 50), (10, 40))
    assert got["closed_start_test_loss"] == 100.0 and got["closed_final_test_loss"] == 0.5
    assert got["closed_stage1_end"] == 2 and got["closed_stabilization"] is None
    assert got["closed_plateau_epochs"] == (10, 40)
    assert (got["closed_plateau_first"], got["closed_plateau_last"]) == (10, 40)
    assert (got["closed_plateau_high"], got["closed_plateau_low"]) == (10.0, 6.0)
    assert isinstance(got["closed_plateau_high"], float)
    assert plain(got["closed_plateau_words"]) == (
        "a plateau from epoch 10 to 40 on which the test loss stays between 6 and 10")
    assert isinstance(got["closed_plateau_words"], Words)


def test_without_a_plateau_only_the_words_say_so():
    got = claims.closed_loop(hist(test_loss=[3.0, 2.0, 1.0]), Stages(None, 1, 2), None)
    assert got["closed_plateau_epochs"] is None
    assert {"closed_plateau_first", "closed_plateau_last", "closed_plateau_high",
            "closed_plateau_low"}.isdisjoint(got)
    assert got["closed_plateau_words"].startswith("no plateau")


# -- open loop ---------------------------------------------------------------------------------
def pairs_of(students, spectral_radius=None, loss=None):
    """Reference pairs at seeds 0, 1, ...: one student test-loss curve per seed; the reference
    teacher always stable, the seed-0 student with the given rho(P) and imitation loss."""
    settings = excursion.ablation_settings()
    out = excursion.Pairs(settings, tuple(range(len(students))), ENV, 1.0)
    for seed, curve in enumerate(students):
        n = len(curve)
        out.open[("paper", seed)] = hist(test_loss=curve, loss=np.ones(n),
                                         spectral_radius=np.full(n, 0.5))
        out.closed[("paper", seed)] = hist(test_loss=np.ones(n), spectral_radius=np.full(n, .5))
    h = out.open[("paper", 0)]
    if spectral_radius is not None:
        h.arrays["spectral_radius"] = np.asarray(spectral_radius)
    if loss is not None:
        h.arrays["loss"] = np.asarray(loss)
    return out


def test_the_reference_student_peaks_where_its_curve_rises_highest():
    pairs = pairs_of([[10.0, 5, 3, 4, 50, 20, 2, 1]], loss=[2.0, 1, 1, 1, 1, 0.5, 0.5, 0.25])
    got = claims.open_loop(pairs, 0)
    assert got["open_peak_epoch"] == 4 and got["open_peak_test_loss"] == 50.0
    assert got["open_peak_ratio"] == 50.0 and got["open_peak_over_start"] == 5.0
    assert got["open_final_test_loss"] == 1.0 and got["open_peak_verdict"] == "rises above"
    assert (got["open_start_train_loss"], got["open_final_train_loss"]) == (2.0, 0.25)
    assert "**50**" in got["open_peak_words"]  # numbers bold, as the glued ones
    assert plain(got["open_peak_words"]) == (
        "then climbs: it peaks at epoch 4 at 50, 50 times its final value 1 and 5 times its "
        "value at epoch 0")


def test_a_student_that_never_rises_is_marked_at_its_last_epoch():
    got = claims.open_loop(pairs_of([[10.0, 8, 6, 4]]), 0)
    assert got["open_peak_epoch"] == 3 and isinstance(got["open_peak_epoch"], int)
    assert math.isnan(got["open_peak_ratio"]) and math.isnan(got["open_peak_test_loss"])
    assert got["open_peak_verdict"] == "does not rise above"
    assert got["seeds_peak_epochs"] == "none" and math.isnan(got["seeds_min_ratio"])
    # the prose reads phrases, never a NaN
    assert plain(got["open_peak_words"]) == "and does not climb again: it ends at 4"
    assert plain(got["seeds_peak_words"]) == "so no peak to report"


def test_unstable_epochs_and_where_the_student_stays_stable():
    rho = [0.9, 1.1, 1.2, 0.95, 1.3, 0.8, 0.7, 0.6]  # unstable at 1, 2, 4
    loss = [4.0, 3, 2, 1, 1, 0.5, 0.25, 0.1]
    got = claims.open_loop(pairs_of([[10.0, 5, 3, 4, 50, 20, 2, 1]], rho, loss), 0)
    assert got["open_unstable_epochs"] == 3 and got["open_last_unstable"] == 4
    assert got["closed_unstable_epochs"] == 0 and got["closed_last_unstable"] == -1
    assert got["open_stable_from"] == 5 and got["open_mse_at_stable"] == 0.5 / 4.0


def test_a_student_unstable_to_the_end_is_stable_from_its_last_epoch_at_most():
    got = claims.open_loop(pairs_of([[3.0, 2, 1]], spectral_radius=[2.0, 2, 2]), 0)
    assert got["open_last_unstable"] == 2 and got["open_stable_from"] == 2


def test_the_seeds_that_show_the_excursion_and_their_spread():
    # seed 0 rises to 50 (x50 its end), seed 1 only below its start, seed 2 to 40 (x10)
    pairs = pairs_of([[10.0, 5, 3, 4, 50, 20, 2, 1], [100.0, 5, 30, 1], [10.0, 2, 40, 4]])
    got = claims.open_loop(pairs, 0)
    assert got["seeds_with_excursion"] == 2 and got["n_seeds_used"] == 3
    assert (got["seeds_first"], got["seeds_last"]) == (0, 2)
    assert got["seeds_peak_epochs"] == "4, 2" and isinstance(got["seeds_peak_epochs"], Words)
    assert (got["seeds_min_ratio"], got["seeds_max_ratio"]) == (10.0, 50.0)
    assert plain(got["seeds_peak_words"]) == (
        "peaking at epochs 4, 2, between 10 and 50 times their final value")


# -- gain space and the final solutions --------------------------------------------------------
OPEN_GAINS = [(-0.3, -1.0), (-0.5, 0.0), (-0.2, 0.05), (0.5, 0.0), (-0.3504, -0.9896)]


def test_gains_are_rounded_and_placed_in_their_regions():
    closed = hist(gains=[(-0.3, -1.0), (-0.1, -0.5), (-0.36049, -1.00051)],
                  gain_r2=[0.99, 0.8, 0.97], monitor_epoch=[0, 10, 40])
    open_ = hist(gains=OPEN_GAINS, gain_r2=[0.99, 0.7, 0.9, 0.95, 0.98],
                 monitor_epoch=[0, 10, 20, 30, 40])
    got = claims.gain_space(closed, open_, ENV, peak_epoch=10)
    assert got["final_gain_closed"] == (-0.36, -1.001)
    assert got["final_gain_open"] == (-0.35, -0.99) and got["start_gain"] == (-0.3, -1.0)
    assert got["peak_gain_open"] == (-0.5, 0.0)
    assert got["lqr_gain"] == (round(-1 / PHI, 3), round(-PHI, 3))  # Q = I, R -> 0
    assert all(type(v) is float for v in got["final_gain_closed"])
    assert got["min_r2"] == 0.7 and (got["final_r2_closed"], got["final_r2_open"]) == (.97, .98)
    assert got["start_region"] == REGIONS[region((-0.3, -1.0))] == "stable"
    assert got["peak_region"] == REGIONS[region((-0.5, 0.0))] == "unstable oscillatory"
    assert got["open_oscillatory_epochs"] == sum(region(k) == 1 for k in OPEN_GAINS) == 2
    closed_gains = [(-0.3, -1.0), (-0.1, -0.5), (-0.36049, -1.00051)]
    assert got["closed_oscillatory_epochs"] == sum(region(k) == 1 for k in closed_gains) == 0
    assert got["closed_oscillatory_depth"] == 0.0
    deepest = max(np.abs(np.linalg.eigvals(np.array([[1.0, 1.0], [k[0], 1.0 + k[1]]]))).max()
                  for k in OPEN_GAINS if region(k) == 1)
    assert got["open_oscillatory_depth"] == pytest.approx(deepest - 1)


def test_the_final_solutions_gaps():
    closed = hist(test_loss=[9.0, 3, 100], gains=[(0, 0), (1, 0), (-0.36, -1)],
                  spectral_radius=[1.5, 1.1, 0.6], monitor_epoch=[0, 5, 10])
    open_ = hist(test_loss=[9.0, 50, 105], gains=[(0, 0), (1, 3), (-0.36, -1.04)],
                 spectral_radius=[1.5, 1.4, 0.65], monitor_epoch=[0, 5, 10])
    got = claims.final_solutions(closed, open_)
    assert got["final_loss_gap_percent"] == pytest.approx(5.0)
    assert got["final_gain_distance"] == pytest.approx(0.04)
    assert (got["final_rho_closed"], got["final_rho_open"]) == (0.6, 0.65)
    assert got["max_path_gap"] == 3.0 and got["max_path_gap_epoch"] == 5


# -- the ablation ------------------------------------------------------------------------------
def learner(test_loss, zm_half_at):
    """A student or teacher whose z.m reaches half its final value at index ``zm_half_at``,
    where its z.W m is at 0.15 of its final value; gains OPEN_GAINS and gradient norms
    5, 2, 0.5, 3, 0.1, repeated."""
    n = len(test_loss)
    zm, zwm = np.linspace(0.1, 0.4, n), np.linspace(0.01, 0.1, n)
    zm[zm_half_at:] = np.linspace(0.6, 1.0, n - zm_half_at)
    zwm[zm_half_at], zm[-1], zwm[-1] = 0.15, 1.0, 1.0
    grad = np.resize([5.0, 2, 0.5, 3, 0.1], n)
    return hist(test_loss=test_loss, instant_gain=zm, lag_gain=zwm, grad_norm=grad,
                gains=np.resize(np.array(OPEN_GAINS), (n, 2)))


@pytest.fixture
def ablation():
    settings = excursion.ablation_settings()
    pairs = excursion.Pairs(settings, (0,), ENV, 1.0)
    curves = {"paper": [10.0, 5, 3, 4, 50, 20, 2, 1],  # x50 its end, x5 its start
              "mean": [10.0, 8, 6, 4, 3],  # never rises
              "init": [100.0, 5, 30, 1, 1],  # rises below its start only
              "inputs": [10.0, 2, 40, 4, 4]}  # x10 its end, x4 its start
    for s in settings:
        pairs.open[(s.key, 0)] = learner(curves[s.key], 2)
        pairs.closed[(s.key, 0)] = learner([7.0, 6, 5, 4, 3, 2, 2, 2], 3)
    pairs.closed[("init", 0)] = learner([7.0, 6, 5, 4, 3, 2, 2, 1.5], 3)
    return pairs


def test_which_settings_keep_the_excursion(ablation):
    got = claims.cause(ablation, 0, plateau=(2, 5))
    assert got["ablation_keeps"] == "*teacher inputs*"
    assert got["ablation_removes"] == "*time mean (student)*, *m, z std 1/sqrt(N)*"
    ratios = got["ablation_peak_ratios"]
    assert list(ratios) == ["authors' setup", "time mean (student)", "m, z std 1/sqrt(N)",
                            "teacher inputs"]
    assert ratios["authors' setup"] == 50 and math.isnan(ratios["time mean (student)"])
    assert isinstance(got["ablation_table"], Words)
    assert got["ablation_table"].count("\n") == 2 + 4 and "| teacher inputs | 2 | 10 |" in (
        got["ablation_table"])


def test_each_settings_numbers(ablation):
    got = claims.cause(ablation, 0, plateau=(2, 5))
    assert (got["ablation_paper_ratio"], got["ablation_paper_over_start"]) == (50, 5)
    assert got["ablation_paper_peak_epoch"] == 4 and got["ablation_mean_peak_epoch"] is None
    assert math.isnan(got["ablation_mean_over_start"])
    assert (got["ablation_init_peak_epoch"], got["ablation_init_ratio"]) == (2, 30)
    assert got["ablation_inputs_over_start"] == 4
    assert got["ablation_paper_oscillatory"] == sum(region(k) == 1 for k in np.resize(
        np.array(OPEN_GAINS), (8, 2)))
    assert got["ablation_mean_clipped"] == 50.0  # updates 2, 0.5, 3, 0.1 at norm 1
    assert got["ablation_init_start"] == 100.0 and got["ablation_init_teacher_final"] == 1.5
    assert got["ablation_paper_teacher_final"] == 2.0
    assert got["ablation_inputs_lag_at_half"] == pytest.approx(15.0)


def test_the_order_of_the_two_weights_and_the_plateau_end(ablation):
    got = claims.cause(ablation, 0, plateau=(2, 5))
    assert got["closed_lag_at_half"] == pytest.approx(15.0)
    closed, open_ = ablation.closed[("paper", 0)], ablation.open[("paper", 0)]
    assert got["closed_zm_at_plateau_end"] == closed.instant_gain[5]
    assert got["open_zm_at_plateau_end"] == open_.instant_gain[5]
    assert got["final_zm_closed"] == 1.0
    words = plain(got["zm_at_plateau_end_words"])
    assert isinstance(got["zm_at_plateau_end_words"], Words) and "(epoch 5)" in words
    assert f"is {closed.instant_gain[5]:.2g}, the student's at that epoch " \
           f"{open_.instant_gain[5]:.2g}" in words
    without = claims.cause(ablation, 0, plateau=None)
    assert set(got) - set(without) == {"closed_zm_at_plateau_end", "open_zm_at_plateau_end"}
    assert "no plateau" in without["zm_at_plateau_end_words"]


def test_the_other_inputs_against_the_authors_setup(ablation):
    got = claims.cause(ablation, 0, plateau=None)
    assert got["ablation_inputs_peak_factor"] == 50 / 40  # the two peak test losses
    assert got["ablation_inputs_label"] == "teacher inputs"
    assert plain(got["ablation_inputs_peak_words"]) == "1.25 times lower"
    ablation.open[("inputs", 0)].arrays["test_loss"][2] = 80.0  # now the higher peak, 80 / 50
    got = claims.cause(ablation, 0, plateau=None)
    assert got["ablation_inputs_peak_factor"] == 80 / 50
    assert plain(got["ablation_inputs_peak_words"]) == "1.6 times higher"


# -- the prose reads nothing else --------------------------------------------------------------
def test_every_number_the_prose_reads_is_glued(ablation):
    nb = json.loads((Path(__file__).parents[2] / "book" / "ch1_open_closed.ipynb").read_text())
    prose = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    read = set(re.findall(r"\{glue:(?:text|md)\}`(\w+)", prose))
    read |= set(re.findall(r"\{glue:md\} (\w+)", prose))
    h = ablation.closed[("paper", 0)]
    h.arrays |= dict(spectral_radius=np.full(8, 0.5), eig_epoch=np.arange(8), loss=np.ones(8),
                     gain_r2=np.ones(8))
    ablation.open[("paper", 0)].arrays |= dict(spectral_radius=np.full(8, 0.5),
                                                eig_epoch=np.arange(8), loss=np.ones(8),
                                                gain_r2=np.ones(8))
    o = ablation.open[("paper", 0)]
    for run in (h, o):  # W snapshots, for eig(W)
        run.arrays |= {"params/W": rotations(np.linspace(0.1, 0.5, 8)),
                       "snapshot_epoch": np.arange(8)}
    for plateau in ((2, 5), None):  # a run without a plateau builds the book too
        glued = (claims.setup(ablation, seed=0, beta=0.005, epochs=7, n_test=5,
                              snapshot_every=1)
                 | claims.closed_loop(h, Stages(1, 3, 7), plateau)
                 | claims.open_loop(ablation, 0) | claims.gain_space(h, o, ENV, 4)
                 | claims.final_solutions(h, o) | claims.w_alone(h, o, Stages(1, 3, 7))
                 | claims.cause(ablation, 0, plateau))
        assert len(read) > 60 and read - set(glued) == set(), plateau


def test_no_factor_when_a_student_never_rises():
    rows = [{"key": "paper", "ratio": float("nan"), "final": 1.0, "setting": "paper"},
            {"key": "inputs", "ratio": 3.0, "final": 2.0, "setting": "teacher inputs"}]
    got = claims._other_inputs(rows)
    assert math.isnan(got["ablation_inputs_peak_factor"])
    assert got["ablation_inputs_peak_words"].startswith("not comparable")


# -- eig(W) alone ------------------------------------------------------------------------------
def rotations(radii):
    """W snapshots (S, 3, 3): a rotation by 0.5 rad scaled by r, plus -r/2 on the diagonal, so
    eig(W) = r e^{+-0.5i} and -r/2: spectral radius r."""
    c, s = math.cos(0.5), math.sin(0.5)
    return np.stack([np.array([[r * c, -r * s, 0], [r * s, r * c, 0], [0, 0, -r / 2]])
                     for r in radii])


def test_w_alone_reads_the_radius_of_W_at_the_stage_marks():
    # snapshots at epochs 0, 10, 20, 30; the closed loop stabilizes at epoch 15 (snapshot 20)
    closed = hist(**{"params/W": rotations([0.1, 0.3, 0.5, 0.6]),
                     "snapshot_epoch": [0, 10, 20, 30], "spectral_radius": [1.3, 1.1, 0.9, 0.8]})
    student = hist(**{"params/W": rotations([0.1, 0.7, 0.4, 0.45]),
                      "snapshot_epoch": [0, 10, 20, 30]})
    got = claims.w_alone(closed, student, Stages(2, 15, 30))
    assert got["rho_W_start"] == pytest.approx(0.1)
    assert got["rho_W_at_stabilization"] == pytest.approx(0.5)
    assert got["rho_W_final_closed"] == pytest.approx(0.6)
    assert got["rho_W_final_open"] == pytest.approx(0.45)
    assert got["rho_W_max"] == pytest.approx(0.7) and got["W_crosses_one"] is False
    assert plain(got["rho_W_words"]).startswith("stays below 1 throughout (at most 0.70")
    assert got["rho_P_start"] == 1.3
    never = claims.w_alone(closed, student, Stages(2, None, 30))
    assert math.isnan(never["rho_W_at_stabilization"])
    big = hist(**{"params/W": rotations([0.1, 1.2]), "snapshot_epoch": [0, 10]})
    crossed = claims.w_alone(closed, big, Stages(2, 15, 30))
    assert crossed["W_crosses_one"] is True and "1.20" in plain(crossed["rho_W_words"])


def test_recurrent_spectra_sorts_by_modulus_and_needs_snapshots():
    h = hist(**{"params/W": rotations([0.4]), "snapshot_epoch": [0]})
    epochs, ev = excursion.recurrent_spectra(h)
    assert epochs.tolist() == [0] and ev.shape == (1, 3)
    np.testing.assert_allclose(np.abs(ev[0]), [0.4, 0.4, 0.2])
    np.testing.assert_allclose(sorted(ev[0].imag), [-0.4 * math.sin(0.5), 0, 0.4 * math.sin(0.5)],
                               atol=1e-12)
    with pytest.raises(ValueError, match="snapshot"):
        excursion.recurrent_spectra(hist(loss=[1.0]))
