"""Chapter 4's claims (closedloop.claims.ch4), on hand-built histories, networks and
responses whose numbers are known by construction."""

import math
import time

import numpy as np
import pytest
import torch

from closedloop import conventions
from closedloop import tracking as tr
from closedloop.claims import Words
from closedloop.claims import ch4 as claims
from closedloop.history import History

PAPER, BOOK = conventions.PAPER_TRACKING, conventions.BOOK_TRACKING
TRAINS, FIXED = "trains $W_\\text{in}$", "keeps $W_\\text{in}$ fixed"


def closed_loop_history(seconds=1.5):
    """Six recorded epochs of a closed-loop run of 5 updates, batch 7: the clamp acted at
    epochs 0 and 3, the loop's spectral radius fell from 1.2 to 0.9."""
    return History({"epochs": 5, "batch": 7}, {
        "epoch": np.arange(6),
        "test_epoch": np.arange(6),
        "test_loss": np.array([3.0, 2.5, 2.0, 1.0, 0.5, 0.25]),
        "clamped": np.array([True, False, False, True, False, False]),
        "spectral_radius": np.array([1.2, 1.1, 1.0, 0.95, 0.92, 0.9]),
        "worst_state": np.array([10.0, 9.0, 8.0, 7.0, 6.0, 5.5]),
        "expected_loss": np.array([3.0, 2.0, 1.0, 0.5, 0.4, 0.3]),
    }, "", seconds)


def twin_history(test_loss, rho, loss=0.01, seconds=2.0):
    """A twin's history: its closed-loop test loss at epochs 0, 10, 20, ... and its loop's
    spectral radius at the recorded epochs."""
    n = len(test_loss)
    return History({}, {"epoch": np.arange(n), "test_epoch": 10 * np.arange(n),
                        "test_loss": np.asarray(test_loss, float),
                        "loss": np.full(n, loss), "spectral_radius": np.asarray(rho, float)},
                    "", seconds)


def net_with_W_in(W_in):
    N = W_in.shape[0]
    return tr.TrackingRNN.from_tensors(torch.zeros(N, N), W_in, torch.zeros(2, N))


def test_task_is_the_loss_of_doing_nothing():
    numbers = claims.task(tr.Sinusoids().scoring("paper_tracking"))
    assert numbers["ref_power"] == pytest.approx(0.1 * 2.31**2 / 2)   # dt A^2 / 2
    # the mass at the origin against the ramped reference r(t_i), i = 0..T-1, for 4 sinusoids:
    # ramp^2 summed over i = 0..9 is 0.01 (0 + 1 + ... + 81) = 2.85, then 290 full steps
    assert numbers["silent_loss"] == pytest.approx(4 * 0.266805 * (2.85 + 290) / 300)
    assert isinstance(numbers["convention_name"], Words)
    assert numbers["convention_name"].startswith("`paper (tracking): error p_{t+1}")
    assert numbers["convention_name"].endswith("no update at epoch 0`")
    assert type(numbers["ref_power"]) is float and type(numbers["silent_loss"]) is float


def test_schedule_words_follow_the_update_at_epoch_0():
    assert claims.schedule_words(PAPER, 30, 31) == (
        "As in the authors' code, epoch 0 only records: the 30 updates are those of epochs "
        "1 to 30, and the final network is recorded at epoch 31.")
    assert claims.schedule_words(BOOK, 30, 30) == (
        "Every epoch from 0 updates; the final network is recorded at epoch 30.")


def test_clamp_words_say_when_the_clamp_acted():
    assert claims.clamp_words([]) == ""
    assert claims.clamp_words([0, 3]) == ("The first was at epoch 0 and the last at epoch 3, "
                                          "all within the first 100 epochs, from the runaway "
                                          "start.")
    assert claims.clamp_words([0, 99]).endswith("from the runaway start.")
    late = claims.clamp_words([0, 100])
    assert late.startswith("The first was at epoch 0 and the last at epoch 100: besides")
    assert "= 8.7$" in late and isinstance(late, Words)


def test_stability_words_read_the_least_stable_mode():
    stable = claims.stability_words(-0.058 + 0.1j, 0.99419)
    # period 2 pi / 0.1 = 62.8 s
    assert stable == ("The trained loop is stable: its least stable mode decays at rate 0.058 "
                      "per second ($\\rho(M) =$ 0.9942) and oscillates with a period of 63 s.")
    assert claims.stability_words(-0.05 + 0j, 0.995).endswith("($\\rho(M) =$ 0.9950).")
    unstable = claims.stability_words(0.024 + 0.146j, 1.00239)  # 2 pi / 0.146 = 43.0 s
    assert unstable.startswith("The trained loop is not strictly stable. Its least stable "
                               "mode has growth rate 0.024 per second ($\\rho(M) =$ 1.0024) "
                               "and oscillates with a period of 43 s.")
    assert unstable.endswith("the horizon effect of {ref}`Chapter 2 <ch2>`.")


def test_training_reads_the_closed_loop_run():
    h = closed_loop_history()
    numbers = claims.training(h, PAPER, [2, 4, None, None], [1, 4, None, None], -0.5 + 0j)
    assert numbers["epochs_used"] == 5 and numbers["batch_used"] == 7
    assert numbers["train_seconds"] == 1.5
    assert (numbers["initial_test_loss"], numbers["final_test_loss_closed"]) == (3.0, 0.25)
    assert numbers["clamped_epochs"] == 2
    assert numbers["clamp_words"].startswith("The first was at epoch 0 and the last at epoch 3,")
    assert (numbers["initial_rho"], numbers["final_rho"]) == (1.2, 0.9)
    assert numbers["final_worst_state"] == 5.5
    assert numbers["acquisition_epochs"] == [2, 4, None, None]
    assert numbers["learned_epochs"] == [1, 4, None, None]
    assert "the 5 updates are those of epochs 1 to 5" in numbers["schedule_words"]
    assert "recorded at epoch 5." in numbers["schedule_words"]   # the last row's epoch
    assert numbers["stability_words"] == ("The trained loop is stable: its least stable mode "
                                          "decays at rate 0.500 per second ($\\rho(M) =$ "
                                          "0.9000).")
    for name in ("initial_test_loss", "final_rho", "final_worst_state"):
        assert type(numbers[name]) is float
    assert type(numbers["clamped_epochs"]) is int and type(numbers["epochs_used"]) is int


def test_twin_reads_both_twins_and_the_input_weights():
    history = closed_loop_history()                              # final test loss 0.25
    h_twin = twin_history([2.0, 5.0, 9.0, 3.0, 1.0], [1.2, 0.9, 1.1, 0.95], seconds=2.0)
    h_other = twin_history([2.0, 5.0, 10.0, 6.0, 5.5], [1.2, 1.3, 1.1, 1.05], seconds=3.0)
    W_in = torch.ones(5, 4, dtype=torch.float64)
    moved = W_in.clone()
    moved[:, :2] *= 3.0                       # the position columns move by twice their norm
    moved[0, 2] += 0.5 * math.sqrt(10)        # the reference columns (norm sqrt 10) by half
    numbers = claims.twin(history, h_twin, h_other, net_with_W_in(W_in), net_with_W_in(moved),
                          PAPER, PAPER.with_(twin_trains_W_in=False))
    assert numbers["twin_seconds"] == 5.0
    assert numbers["open_start_test_loss"] == 2.0
    assert (numbers["open_peak_test_loss"], numbers["open_peak_epoch"]) == (9.0, 20)
    assert numbers["final_test_loss_open"] == 1.0
    assert numbers["open_final_over_peak"] == pytest.approx(1 / 9)
    assert numbers["open_final_over_closed"] == pytest.approx(4.0)
    assert numbers["twin_final_imitation"] == 0.01
    assert numbers["twin_final_rho"] == 0.95
    assert numbers["twin_unstable_share"] == 0.5 and numbers["other_unstable_share"] == 1.0
    assert (numbers["other_peak_test_loss"], numbers["other_final_test_loss"]) == (10.0, 5.5)
    assert numbers["other_final_rho"] == 1.05
    assert numbers["W_in_moved_pos"] == pytest.approx(2.0)
    assert numbers["W_in_moved_ref"] == pytest.approx(0.5)
    # the twin that trains W_in recovers (1 < 9 / 2), the other does not (5.5 > 10 / 2)
    assert numbers["twin_course_words"] == "then falls back: it ends below half its peak"
    assert numbers["other_course_words"] == "does not recover"
    assert numbers["mechanism_words"] == (
        f"The comparison above measures what this choice does: the twin that {TRAINS} comes "
        f"back, the twin that {FIXED} does not within the run.")
    assert numbers["other_twin_words"] == f"it {FIXED}"
    assert numbers["twin_trains_words"] == f"the twin that {TRAINS}"
    assert numbers["other_trains_words"] == f"The twin that {FIXED}"
    assert all(isinstance(numbers[n], Words) for n in numbers if n.endswith("_words"))


def test_twin_words_when_the_twins_end_alike_or_the_other_comes_back():
    alike = claims.twin_words(PAPER, BOOK, True, True)
    assert alike["mechanism_words"].startswith("In this run the two twins end alike")
    assert alike["other_course_words"] == "recovers too"
    back = claims.twin_words(BOOK, PAPER, False, True)   # the fixed one stuck, trained back
    assert back["mechanism_words"] == (
        f"The comparison above measures what this choice does: the twin that {TRAINS} comes "
        f"back, the twin that {FIXED} does not within the run.")
    assert back["twin_course_words"] == ("and does *not* fall back to below half its peak "
                                         "within the run")
    assert claims.w_in_choice(BOOK) == FIXED and claims.w_in_choice(PAPER) == TRAINS


def test_order_words():
    assert claims.order_words([1, 2, 2, 4]) == "in order of frequency"
    assert claims.order_words([1, 2, None, None]) == (
        "in order of frequency (as far as they were learned within the run)")
    assert claims.order_words([None] * 4).endswith("(as far as they were learned within the run)")
    assert claims.order_words([2, 1, 3, 4]) == "*not* in order of frequency"
    assert claims.order_words([1, None, 3, None]) == "*not* in order of frequency"
    assert isinstance(claims.order_words([1]), Words)


class Shares:
    """A response's early shares of the probe losses, as ``Response.transient_share``."""

    def transient_share(self, seconds):
        assert seconds == 10.0
        return torch.tensor([0.9, 0.35, 0.6, 0.8])


def test_acquisition_reads_the_order_and_the_final_probe_loss():
    scoring = tr.Sinusoids().scoring(PAPER)           # power 0.266805 per sinusoid
    h = History({}, {"probe_loss": np.array([[1.0, 1.0, 1.0, 1.0], [0.0533610, 0.1, 0.1, 0.1]])})
    numbers = claims.acquisition(h, scoring, Shares(), [3, 5, None, None], [3, 5, None, None],
                                 0.5, 51)
    assert (numbers["acq_fraction_used"], numbers["acq_window_used"]) == (0.5, 51)
    assert numbers["acquired_in_order"] == numbers["learned_in_order"] == (
        "in order of frequency (as far as they were learned within the run)")
    assert numbers["lists_compare"] == "the same"
    assert numbers["transient_share_min"] == pytest.approx(0.35)
    assert numbers["low_final"] == pytest.approx(0.2)      # 0.053361 / 0.266805
    other = claims.acquisition(h, scoring, Shares(), [3, 9, 5, 8], [3, 4, 5, 8], 0.5, 51)
    assert other["lists_compare"] == "different"
    assert other["acquired_in_order"] == "*not* in order of frequency"
    assert other["learned_in_order"] == "in order of frequency"
    assert type(numbers["low_final"]) is float


def test_eigenvalues_match_the_targets():
    # W - I block-diagonal with pairs -0.1 +/- i b: the rate eigenvalues are known (tau = 1)
    b = [0.6, 1.3, 1.9, 2.5]
    W = torch.eye(8, dtype=torch.float64)
    for k, bk in enumerate(b):
        W[2 * k:2 * k + 2, 2 * k:2 * k + 2] += torch.tensor([[-0.1, -bk], [bk, -0.1]],
                                                          dtype=torch.float64)
    agent = tr.TrackingRNN.from_tensors(W, torch.zeros(8, 4), torch.zeros(2, 8))
    refs = tr.Sinusoids()
    eig_W = np.array([[0.1j, -0.1j], [1.234j, 0.5j], [2.3456j, 0.1j]])
    h = History({}, {"eig_epoch": np.array([0, 10, 20]), "eig_W": eig_W})
    numbers = claims.eigenvalues(agent, h, refs, [5, None, 20, 30])
    distances = [abs(2 * math.pi * f - bk) for f, bk in zip((0.1, 0.2, 0.3, 0.4), b)]
    assert numbers["eig_freq_match_each"] == [round(d, 3) for d in distances]
    assert numbers["eig_freq_match"] == pytest.approx(max(distances))
    # epoch 5 reads the record at 10, 20 its own, 30 (beyond the last) the last
    assert numbers["top_im_at_learned"] == [1.23, None, 2.35, 2.35]
    assert numbers["top_im_at_authors"] == [None] * 4  # every authors' epoch is past 20
    # records at 0, 250, 1300: the authors' 230 reads 250, 1200 reads 1300, 2600 and 4500 none
    later = History({}, {"eig_epoch": np.array([0, 250, 1300]), "eig_W": eig_W})
    got = claims.eigenvalues(agent, later, refs, [5, None, 20, 30])["top_im_at_authors"]
    assert got == [1.23, 2.35, None, None]


def test_seeds_count_the_runs_in_order():
    learned = [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, None, None]]    # all three in order
    acquired = [[1, 2, 3, 4], [5, 2, 3, 4], [1, None, None, None]]  # the last shows no order
    numbers = claims.seeds([0, 1, 2], learned, acquired)
    assert numbers == {"n_seeds_used": 2, "seeds_used": [0, 1, 2], "n_runs": 3,
                       "n_first_ordered": 3, "n_first_comparable": 3, "n_acq_ordered": 1,
                       "n_acq_comparable": 2,
                       "other_acquisition_epochs": [[5, 2, 3, 4], [1, None, None, None]]}
    assert type(numbers["n_first_ordered"]) is int
    with pytest.raises(ValueError, match="one entry per run"):
        claims.seeds([0, 1], learned, acquired)
    with pytest.raises(ValueError, match="distinct"):
        claims.seeds([0, 1, 1], learned, acquired)


def test_sampled_vs_exact_counts_standard_errors():
    # mean 2.5, population std sqrt(1.25), n = 4: 0.5 / (sqrt(1.25) / 2) standard errors
    numbers = claims.sampled_vs_exact(np.array([1.0, 2.0, 3.0, 4.0]), 2.0)
    assert numbers["n_batches_used"] == 4
    assert numbers["modes_gap_sigma"] == pytest.approx(1 / math.sqrt(1.25))
    below = claims.sampled_vs_exact(np.array([1.0, 2.0, 3.0, 4.0]), 3.0)
    assert below["modes_gap_sigma"] == pytest.approx(1 / math.sqrt(1.25))   # unsigned
    assert type(numbers["modes_gap_sigma"]) is float


def test_exact_mode_compares_with_the_sampled_run():
    h_runs = History({}, {"loss": np.ones((4, 3))}, "", 12.5)
    h_exact = History({}, {"expected_loss": np.array([3.0, 0.34])})
    history = closed_loop_history()                                 # expected loss 0.3
    numbers = claims.exact_mode(h_runs, h_exact, history, [5, 10, None, None],
                                [3, 10, 20, None])
    assert (numbers["ensemble_seconds"], numbers["ensemble_runs"]) == (12.5, 3)
    assert numbers["exact_learned_epochs"] == [5, 10, None, None]
    assert numbers["exact_learned_in_order"] == (
        "in order of frequency (as far as they were learned within the run)")
    assert (numbers["exact_final_loss"], numbers["sampled_final_loss"]) == (0.34, 0.3)
    assert numbers["exact_speed_words"].startswith("Here the exact run was also slower")
    faster = claims.exact_mode(h_runs, h_exact, history, [5, 8, None, None], [3, 10, 20, None])
    assert faster["exact_speed_words"] == "Here the exact run was not slower at every frequency."


def test_run_time():
    numbers = claims.run_time(0.6, 100, time.perf_counter() - 5.0)
    assert numbers["stepped_minutes"] == pytest.approx(1.0)
    assert 5.0 <= numbers["chapter_seconds"] < 60.0
