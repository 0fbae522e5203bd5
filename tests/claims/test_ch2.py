"""Chapter 2's claims (closedloop.claims.ch2) on hand-built histories and runs whose numbers
are known."""

import math

import numpy as np
import pytest

from closedloop import DoubleIntegrator, RankOneAgent, UniformBox, theory
from closedloop.claims import Words
from closedloop.claims import ch2 as claims
from closedloop.history import History
from closedloop.stages import Stages

NAN = float("nan")


def ensemble_history(s_zm, rho=None):
    """A hand-made ensemble history: s_zm (E, K) per epoch and member, rho(P) (E, K)."""
    s_zm = np.asarray(s_zm, dtype=float)
    E, K = s_zm.shape
    q = np.zeros((E, K, 4))
    q[..., 0] = s_zm
    rho = np.full((E, K), 1.1) if rho is None else np.asarray(rho, dtype=float)
    return History({}, {"epoch": np.arange(E), "eig_epoch": np.arange(E), "overlaps": q,
                        "spectral_radius": rho, "loss": np.ones((E, K))})


def single_history(s_zm, rho, expected_loss=None, seconds=0.0):
    E = len(s_zm)
    q = np.zeros((E, 4))
    q[:, 0] = s_zm
    arrays = {"epoch": np.arange(E), "eig_epoch": np.arange(E), "overlaps": q,
              "spectral_radius": np.asarray(rho, dtype=float)}
    if expected_loss is not None:
        arrays["expected_loss"] = np.asarray(expected_loss, dtype=float)
    return History({}, arrays, "", seconds)


def same(a, b):
    """Equal values and the same Python type (NaN equals NaN): what the book glues."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def test_x0_term_is_the_second_moment_over_2T():
    # U([-3, 3] x [-1.5, 1.5]): E|x_0|^2 = (9 + 2.25) / 3 = 3.75, over 2T = 20
    numbers = claims.setup(DoubleIntegrator(UniformBox((3.0, 1.5))), T=10)
    assert numbers == {"x0_term": pytest.approx(0.1875)}
    assert type(numbers["x0_term"]) is float


def test_coupled_identity_holds_and_a_wrong_cubic_fails(monkeypatch):
    agent, env = RankOneAgent(N=7, seed=1), DoubleIntegrator(UniformBox(2.0))
    assert claims.coupled_identity(agent, env) == {
        "nonzero eig(P) = nonzero eig(P_eff)": True, "cubic roots = nonzero eig(P_eff)": True}
    right = theory.cubic_roots
    monkeypatch.setattr(theory, "cubic_roots", lambda q: right(q) + 1e-3)
    checks = claims.coupled_identity(agent, env)
    assert list(checks.values()) == [True, False]


def test_as_lines_prints_the_checked_cell_output():
    assert claims.as_lines({"a = b": True, "c = d": False}) == "a = b: True\nc = d: False"
    text = claims.as_lines(claims.sampled_agrees({"modes_gap_sigma": 0.94}))
    assert text == "sampled mean agrees with the exact loss (within 4 standard errors): True"


def test_same_compares_sorted_values_and_counts():
    assert claims._same([1 + 1j, 2], [2, 1 + 1j])
    assert not claims._same([1, 2], [1, 2, 3])
    assert not claims._same([1, 2], [1, 2.1])
    assert list(claims._nonzero([0, 1e-9, 0.5, -2j])) == [0.5, -2j]


def test_one_run_reads_the_first_and_last_records():
    h = single_history([0.25, 0.1, -0.1, -0.2], [1.2, 1.1, 0.9, 0.8],
                       expected_loss=[9.0, 5.0, 1.0, 0.3], seconds=2.5)
    numbers = claims.one_run(h, Stages(2, None, 3), seed=7)
    expect = {"seed_used": 7, "s_zm_initial": 0.25, "stage1_end_epoch": 2,
              "stabilization_epoch": None, "final_loss": 0.3, "final_spectral_radius": 0.8,
              "train_seconds": 2.5}
    assert numbers.keys() == expect.keys()
    assert all(same(numbers[k], v) for k, v in expect.items()), numbers


def runs(seeds, stab, loss=None, rho=None, loss_paper=None):
    n = len(seeds)
    out = {"seed": np.array(seeds), "stabilization": np.array(stab, dtype=float),
           "final_loss": np.array(loss if loss is not None else [0.3] * n, dtype=float),
           "final_spectral_radius": np.array(rho if rho is not None else [0.7] * n, float)}
    out["final_loss_paper"] = np.array(loss_paper if loss_paper is not None
                                       else out["final_loss"], dtype=float)
    # the batch loss and rho(P) before the last update: distinct numbers per run
    out["last_update_loss"] = out["final_loss"] + 0.01
    out["last_update_rho"] = out["final_spectral_radius"] + 0.001
    return out


SPREAD = runs(range(5), [60, 100, 90, 50, 200])


def test_shared_batches_pairs_runs_of_the_same_seed():
    assert claims.shared_batches(runs([0, 1, 2], [60, 100, 80]), SPREAD) == {
        "shared_same": 2, "shared_max_diff": 10.0, "shared_compared": 3}
    # listed in another order: still seed against seed
    assert claims.shared_batches(runs([3, 0], [50, 61]), SPREAD) == {
        "shared_same": 1, "shared_max_diff": 1.0, "shared_compared": 2}
    assert claims.shared_batches(runs([0, 7], [60, 50]), SPREAD) == {  # seed 7: head only
        "shared_same": 1, "shared_max_diff": 0.0, "shared_compared": 1}
    never = claims.shared_batches(runs([0, 1], [60, NAN]), SPREAD)
    assert never["shared_same"] == 1 and math.isnan(never["shared_max_diff"])
    with pytest.raises(ValueError, match="no seed in common"):
        claims.shared_batches(runs([7], [60]), SPREAD)


def test_independent_seeds_ranges_and_runs_that_never_stabilized():
    head = runs([0, 1, 2], [60, NAN, 80], loss=[0.3, 0.28, 0.29], rho=[0.7, 0.69, 0.71])
    numbers = claims.independent_seeds(head)
    expect = {"n_seeds_used": 3, "last_seed": 2, "stab_values": [60, None, 80],
              "stab_median": 80.0, "stab_min": 60, "stab_max": 80, "loss_min": 0.28,
              "loss_max": 0.3, "rho_min": 0.69, "rho_max": 0.71, "rho_median": 0.7,
              "last_losses": [0.3 + 0.01, 0.28 + 0.01, 0.29 + 0.01],
              "last_rhos": [0.7 + 0.001, 0.69 + 0.001, 0.71 + 0.001],
              "stab_words": Words("**60**, never and **80**"),
              "last_losses_words": Words("**0.31000**, **0.29000** and **0.30000**"),
              "last_rhos_words": Words("**0.701000**, **0.691000** and **0.711000**")}
    assert numbers.keys() == expect.keys()
    assert all(same(numbers[k], v) for k, v in expect.items()), numbers
    assert all(type(e) is int for e in numbers["stab_values"] if e is not None)
    assert claims.independent_seeds(runs([0, 1, 2], [60, 70, 80]))["stab_median"] == 70.0
    none = claims.independent_seeds(runs([0, 1], [NAN, NAN]))
    assert none["stab_values"] == [None, None]
    for k in ("stab_min", "stab_max"):  # the plain str the prose has always received
        assert type(none[k]) is str and not isinstance(none[k], Words) and none[k] == "never"


def test_stabilization_spread_quartiles_and_the_median_of_five():
    numbers = claims.stabilization_spread(SPREAD)
    # sorted 50, 60, 90, 100, 200; by epoch 92: 3 of 5. The median of 5 draws is <= 50 with
    # P(Bin(5, 0.2) >= 3) = 0.058 >= 5 %, <= 100 with P(Bin(5, 0.8) >= 3) = 0.942 < 95 %.
    # by the authors' epochs 56, 79, 92, 121: 1, 2, 3, 4 of the 5 runs; by 129: 4 of 5
    expect = {"spread_n": 5, "spread_last_seed": 4, "spread_median": 90.0, "spread_q25": 60.0,
              "spread_q75": 100.0, "spread_max": 200.0, "median5_lo": 50.0,
              "median5_hi": 200.0, "authors_pcts": [20.0, 40.0, 60.0, 80.0],
              "authors_pcts_words": "**20**, **40**, **60** and **80**", "figure_pct": 80.0}
    assert numbers == expect
    assert type(numbers["spread_n"]) is int and type(numbers["figure_pct"]) is float
    # a run that never stabilized is the latest: the median is 300, the maximum is never
    slow = claims.stabilization_spread(runs([0, 1, 2], [100, NAN, 300]))
    assert slow["spread_median"] == 300.0 and math.isnan(slow["spread_max"])
    assert slow["authors_pcts"] == [0.0, 0.0, 0.0, pytest.approx(100 / 3)]  # 100 by 121
    assert slow["figure_pct"] == pytest.approx(100 / 3)


def test_authors_runs_compare_the_seeds_their_code_ran():
    # seeds 1 and 3 of the authors' (stabilized at 79 and 121), and seed 7 they never ran
    head = runs([3, 7, 1], [121, 60, 80], loss=[0.2831 * 1.02 - 0.01, 0.3, 0.2841 - 0.01],
                rho=[0.715307 - 0.001, 0.7, 0.694100 * 0.99 - 0.001])
    numbers = claims.authors_runs(head)
    assert numbers["authors_compared"] == 2 and numbers["authors_stab_same"] == 1
    assert numbers["authors_loss_gap"] == pytest.approx(0.02)
    assert numbers["authors_rho_gap"] == pytest.approx(0.01)
    none = claims.authors_runs(runs([7], [60]))
    assert none["authors_compared"] == 0 and math.isnan(none["authors_loss_gap"])


def test_seed_spread_is_the_four_parts_together():
    head = runs([0, 1], [60, 100])
    numbers = claims.seed_spread(head, SPREAD)
    assert numbers == {**claims.shared_batches(head, SPREAD), **claims.independent_seeds(head),
                       **claims.authors_runs(head), **claims.stabilization_spread(SPREAD)}
    assert len(numbers) == 3 + 16 + 4 + 11


def test_conventions_table_medians_and_the_window_shift():
    setups = {"paper": runs([0, 1, 2], [10, 30, 20], loss=[0.3, 0.1, 0.2], rho=[0.5, 0.7, 0.6]),
              "book_window": runs([0, 1, 2], [11, 31, 21], loss=[0.5, 1.0, 3.5],
                                  loss_paper=[1.0, 2.0, 4.0])}
    numbers = claims.conventions(setups)
    assert numbers == {
        "tab_paper_stab": 20.0, "tab_paper_loss_paper": 0.2, "tab_paper_loss_own": 0.2,
        "tab_paper_rho": 0.6, "tab_book_window_stab": 21.0, "tab_book_window_loss_paper": 2.0,
        "tab_book_window_loss_own": 1.0, "tab_book_window_rho": 0.7,
        "window_loss_shift": 0.5}  # differences 0.5, 1.0, 0.5: not the difference of medians
    assert all(type(v) is float for v in numbers.values())


def test_stage1_theory_ratio_only_away_from_zero():
    s = [-0.1, -0.02, 0.0, 0.04, 0.05, 0.2]
    simulated, estimate = [10.0, 1.0, 0.1, 5.0, 3.0, 1e9], [5.0, 1.0, 1.0, 1.0, 1.0, 1e8]
    numbers = claims.stage1_theory(s, simulated, estimate)  # ratios 2, 3 and 10 kept
    assert numbers == {"sim_decades": pytest.approx(10.0), "ratio_min": 2.0, "ratio_max": 10.0,
                       "ratio_spread": 5.0}
    assert claims.stage1_theory(s, simulated, estimate, away=0.15)["ratio_min"] == 10.0
    assert claims.stage1_theory(s, [1.0, 1, 1, 1, 30.0, 1], [1.0] * 6)["ratio_max"] == 30.0


def test_s_zm_sweep_epochs_per_tenth():
    # members start at -0.2, 0.05, 0.1, 0.2 and turn negative at epochs 0, 1, 3, 8
    turn = [0, 1, 3, 8]
    s_zm = [[0.1 if e < t else -0.1 for t in turn] for e in range(10)]
    numbers = claims.s_zm_sweep(ensemble_history(s_zm), [-0.2, 0.05, 0.1, 0.2])
    # 0.1 * 1 / 0.05 = 2, 0.1 * 3 / 0.1 = 3, 0.1 * 8 / 0.2 = 4
    assert numbers == {"n_sweep_used": 4, "sweep_negative_epoch": 8,
                       "stage1_epochs_per_tenth": pytest.approx(3.0)}
    assert type(numbers["sweep_negative_epoch"]) is int


def test_s_zm_sweep_with_a_run_that_never_settles():
    s_zm = [[-0.1, 0.1 if e < 1 else -0.1, 0.1 if e < 3 else -0.1, 0.1] for e in range(10)]
    numbers = claims.s_zm_sweep(ensemble_history(s_zm), [-0.2, 0.05, 0.1, 0.2])
    assert numbers["sweep_negative_epoch"] == "never"
    assert numbers["stage1_epochs_per_tenth"] == pytest.approx(2.5)  # median of 2 and 3
    negative_only = claims.s_zm_sweep(ensemble_history([[-0.1, -0.1]] * 3), [-0.2, -0.1])
    assert negative_only["sweep_negative_epoch"] == 0
    assert math.isnan(negative_only["stage1_epochs_per_tenth"])
    with pytest.raises(ValueError, match="members"):
        claims.s_zm_sweep(ensemble_history([[-0.1, -0.1]] * 3), [-0.2])


def test_sampled_vs_exact_gap_in_standard_errors():
    h_exact = single_history([-0.1] * 8, [1.1] * 5 + [0.9] * 3)
    # mean 2.5, population std sqrt(1.25), standard error sqrt(1.25) / 2
    numbers = claims.sampled_vs_exact(np.array([1.0, 2.0, 3.0, 4.0]), 3.0, h_exact)
    assert numbers == {"n_batches_used": 4, "modes_gap_sigma": pytest.approx(1 / math.sqrt(1.25)),
                       "exact_stabilization_epoch": 5}
    assert type(numbers["n_batches_used"]) is int
    assert list(claims.sampled_agrees({"modes_gap_sigma": 4.1}).values()) == [False]
    assert list(claims.sampled_agrees({"modes_gap_sigma": 3.9}).values()) == [True]
