"""Chapter 3's claims (closedloop.claims.ch3) on hand-built histories and runs whose numbers are
known by construction: roots from numpy's polynomial solver, moduli |lambda_1|^2 = 1 - s_zm
when s_zu = s_vm = 0, losses and spectra written down by hand."""

import math

import numpy as np
import pytest

from closedloop.claims import ch3 as claims
from closedloop.history import History
from closedloop.reduced import AlphaBands, AlphaPaths, HorizonScan, Stage3Runs
from closedloop.stages import Stages


def history(**arrays):
    return History(config={}, arrays={k: np.asarray(v) for k, v in arrays.items()})


def cubic_roots(q):
    """(lambda_1, lambda_3) of the cubic of P_eff for a complex pair, by numpy's roots."""
    s_zm, s_zu, s_vm, s_vu = q
    r = np.roots([1, -(s_vu + 2), 2 * s_vu - s_zm + 1, s_vu * s_zm - s_vu - s_vm * s_zu])
    return r[np.argmax(r.imag)], r[np.argmin(np.abs(r.imag))].real


def oscillating(moduli, s_vu=0.5):
    """Overlaps with s_zu = s_vm = 0: the pair is 1 +- i sqrt(-s_zm), |lambda_1|^2 = 1 - s_zm."""
    m = np.asarray(moduli, dtype=float)
    q = np.zeros(m.shape + (4,))
    q[..., 0], q[..., 3] = 1 - m ** 2, s_vu
    return q


def test_stage_boundaries_are_the_filled_stages_and_their_difference():
    out = claims.stage_boundaries(Stages(18, 119, 200), 50)
    assert out == {"stage1_end": 18, "stabilization": 119, "stage2_length": 101, "T_used": 50}
    assert all(type(v) is int for v in out.values())


def test_stage2_theory_is_the_first_order_theory_against_exact_roots_over_stage_2_only():
    inside = np.array([[-0.05, 0.04, 0.03, 0.3], [-0.10, 0.06, 0.05, 0.25],
                       [-0.20, 0.05, 0.08, 0.2], [-0.15, 0.02, 0.02, 0.35]])
    wild = [-0.6, 0.7, 0.6, 0.1]  # outside stage 2: a large s_zu s_vm, a poor first order
    q = np.array([wild, wild, *inside, wild, wild])
    out = claims.stage2_theory(history(epoch=np.arange(8), overlaps=q), Stages(2, 5, 7))
    lam3_err, pair_err, mod = [], [], []
    for s_zm, s_zu, s_vm, s_vu in inside:
        lam1, lam3 = cubic_roots((s_zm, s_zu, s_vm, s_vu))
        lam3_1 = s_vu + s_vm * s_zu / (s_vu ** 2 - 2 * s_vu - s_zm + 1)
        b, c = -(s_vu + 2), 2 * s_vu - s_zm + 1
        lam3_err.append(abs(lam3_1 - lam3))
        pair_err.append(abs((c + b * lam3_1 + lam3_1 ** 2) / abs(lam1) ** 2 - 1))
        mod.append(abs(lam1))
    assert out["lambda3_max_error"] == pytest.approx(max(lam3_err), rel=1e-9)
    assert out["pair_max_rel_error"] == pytest.approx(max(pair_err), rel=1e-9)
    assert out["lambda1_max_modulus"] == pytest.approx(max(mod), rel=1e-12)
    assert out["lambda1_growth_pct"] == pytest.approx(100 * (max(mod) - 1), rel=1e-9)
    assert 0 < out["lambda3_max_error"] < 1e-2  # small, and not the wild epochs' error
    assert all(type(v) is float for v in out.values())


@pytest.mark.parametrize("values, fraction", [([0, 1, 0, 1, 0], 1.0), ([0, 1, 2, 3], 0.0),
                                              ([0, 1, 2, 1], 0.5), ([3, 2, 3, 3.5, 2], 2 / 3)])
def test_reversal_fraction_counts_steps_that_turn_back(values, fraction):
    assert claims.reversal_fraction(values) == pytest.approx(fraction)


def test_reversal_fraction_needs_two_steps():
    assert math.isnan(claims.reversal_fraction([1.0, 2.0]))


def exact_run(moduli, radius):
    n = len(moduli)
    return history(epoch=np.arange(n), eig_epoch=np.arange(n), overlaps=oscillating(moduli),
                   spectral_radius=np.asarray(radius, dtype=float))


def test_zigzag_counts_reversals_of_the_modulus_in_stage_2_and_the_exact_stabilization():
    # stage 2 is epochs 1..6: steps + - + + -, three of four consecutive pairs turn back
    moduli = [2.0, 1.01, 1.02, 1.01, 1.03, 1.04, 1.02, 0.9, 0.8]
    radius = [1.2, 1.1, 1.1, 1.05, 1.05, 1.02, 1.01, 0.95, 0.9]
    out = claims.zigzag(exact_run(moduli, radius), Stages(1, 6, 8))
    assert out["zigzag_alternating_fraction"] == pytest.approx(75.0)
    assert out["exact_stabilization"] == 7


def test_zigzag_says_never_for_an_exact_run_that_does_not_stabilize():
    out = claims.zigzag(exact_run([1.01, 1.02, 1.03], [1.1, 1.0, 1.05]), Stages(0, 1, 2))
    assert out["exact_stabilization"] == "never"
    assert math.isnan(out["zigzag_alternating_fraction"])  # a single step


def test_alpha_fan_reads_the_start_the_ends_and_the_deepest_alpha():
    lam = np.full((5, 3), 1.0 + 0.1j)
    lam[-1] = [1.1 + 0.2j, 0.95j, 0.99]
    paths = AlphaPaths(np.array([0.0, 0.5, 1.0]), np.zeros((5, 3, 4)), np.zeros((5, 3)), lam)
    out = claims.alpha_fan(paths, T_prime=15, stage2_offset=5, start_epoch=23)
    assert out == {"alpha_values": [0.0, 0.5, 1.0], "T_prime_used": 15,
                   "stage2_offset_used": 5, "alpha_start_epoch": 23,
                   "alpha_start_modulus": pytest.approx(math.hypot(1, 0.1)),
                   "alpha0_final_modulus": pytest.approx(math.hypot(1.1, 0.2)),
                   "alpha1_final_modulus": pytest.approx(0.99),
                   "alpha_min_final_modulus": pytest.approx(0.95), "alpha_argmin": 0.5,
                   "alpha_steps_used": 4}
    assert type(out["alpha_steps_used"]) is int and type(out["alpha_argmin"]) is float


def test_horizon_fan_reads_the_peak_modulus_of_the_shortest_and_longest_horizon():
    moduli = np.array([[1.01, 1.01, 1.01], [1.08, 1.02, 1.03], [1.05, 1.011, 1.0]])
    h_T = history(epoch=np.arange(3), overlaps=oscillating(moduli))
    out = claims.horizon_fan(h_T, np.array([10, 20, 50]), 30, T_values=[50, 20])
    assert out["T_fan"] == [10, 20, 50] and all(type(T) is int for T in out["T_fan"])
    assert out["T_values"] == [50, 20]
    assert claims.horizon_fan(h_T, [10, 20, 50], 30)["T_values"] == [10, 20, 50]
    assert (out["T_short"], out["T_long"], out["T_sweep_epochs_used"]) == (10, 50, 30)
    assert out["T_short_peak_modulus"] == pytest.approx(1.08, rel=1e-12)
    assert out["T_long_peak_modulus"] == pytest.approx(1.03, rel=1e-12)
    assert out["T_short_final_modulus"] == pytest.approx(1.05, rel=1e-12)
    assert out["T_short_return_epoch"] == "never"  # 1.01, 1.08, 1.05: never inside
    q = oscillating(moduli)
    q[1, 0] = INSIDE  # the shortest horizon's pair is inside at epoch 1 (numpy's roots)
    assert abs(cubic_roots(INSIDE)[0]) < 1
    back = claims.horizon_fan(history(epoch=np.arange(3), overlaps=q), [10, 20, 50], 30)
    assert back["T_short_return_epoch"] == 1 and type(back["T_short_return_epoch"]) is int
    assert back["T_short_peak_modulus"] == pytest.approx(1.05, rel=1e-12)


INSIDE = [-0.05, 0.2, 0.2, 0.0]  # a complex pair at |lambda_1| = 0.984


def hand_bands(runs=(1, 0)):
    """AlphaBands at T' = 10 and 20 over the grid alpha = 0, .25, .5, .75, 1 (4 steps), whose
    |lambda_1| paths say by construction which alphas return (``returns_inside``)."""
    paths10 = [[1.01, 1.05, 1.10, 1.15, 1.20],   # 0: out for good
               [1.01, 1.02, 0.99, 0.98, 0.97],   # .25: back at step 2
               [1.01, 0.99, 0.98, 0.97, 0.96],   # .5: back at step 1
               [1.01, 0.99, 1.01, 0.99, 1.01],   # .75: chatters, ends outside
               [1.01, 0.99, 1.01, 1.01, 0.99]]   # 1: crosses in twice, ends inside
    lam = np.array(paths10 + [[1.1] * 5] * 5).T * np.exp(0.3j)  # (5 steps, 10 members)
    a = np.tile([0.0, 0.25, 0.5, 0.75, 1.0], 2)
    grid = AlphaPaths(a, np.zeros((5, 10, 4)), np.zeros((5, 10)), lam, np.repeat([10, 20], 5))
    return AlphaBands(np.array([10, 20]), np.array([0.2, np.nan]), np.array([0.6, np.nan]),
                      1e-3, 4, grid, np.array(runs), np.array([0.55, 0.4]))


def test_alpha_band_reads_the_bisected_edges_the_steps_and_the_authors_alphas():
    out = claims.alpha_band(hand_bands(), T_prime=10, alphas=[0.0, 0.5, 1.0])
    nan_free = {k: v for k, v in out.items() if k not in ("band_los", "band_his")}
    # after 1 step .5, .75, 1 are inside once; after 2 and 4 steps .25 and .5 alone
    assert nan_free == {"band_T_prime": 10, "band_tol": 1e-3, "band_lo": 0.2, "band_hi": 0.6,
                        "band_edges": [0.2, 0.6], "band_width": pytest.approx(0.4),
                        "band_steps_list": [1, 2, 4], "band_lo_by_steps": [0.5, 0.25, 0.25],
                        "band_hi_by_steps": [1.0, 0.5, 0.5], "fig4d_alphas": [0.0, 0.5, 1.0],
                        "fig4d_final_moduli": [1.2, 0.96, 0.99], "fig4d_in_band": [0.5],
                        "band_T_primes": [10, 20], "band_balances": [0.55, 0.4],
                        "band_single": "yes", "band_naive_changes": 3}
    assert out["band_los"][0] == 0.2 and math.isnan(out["band_los"][1])
    assert out["band_his"][0] == 0.6 and math.isnan(out["band_his"][1])
    assert claims.alpha_band(hand_bands(runs=(2, 0)), T_prime=10, alphas=[0.5])[
        "band_single"] == "no"
    with pytest.raises(ValueError, match="T_prime"):
        claims.alpha_band(hand_bands(), T_prime=15, alphas=[0.5])


def hand_scan(*columns):
    return HorizonScan(np.arange(1, len(columns) + 1), np.array(columns).T, 11)


STAY = [1.01, 1.01, 1.01, 1.01, 1.01]


def test_myopic_horizon_is_the_longest_T_that_never_returns():
    scan = hand_scan(STAY,
                     [1.01, 1.05, 1.10, 1.20, 1.30],
                     [1.01, 1.02, 1.00, 1.00, 1.00],   # touches 1, never below: stays out
                     [1.01, 1.00, 1.00, 0.95, 0.90],   # back at epoch 3
                     [1.01, 0.98, 0.97, 0.96, 0.95])   # back at epoch 1
    out = claims.myopic_horizon(scan, authors_epochs=2)
    assert out == {"T_scan_max": 5, "T_scan_epochs": 4, "T_myopic": 3, "T_scan_monotone": "yes",
                   "T_returns": 4, "T_returns_epoch": 3, "T_scan_return_epochs": [3, 1],
                   "authors_T_epochs": 2, "T_myopic_authors": 4,  # T = 4 is out until epoch 3
                   "T_myopic_start_modulus": 1.01, "T_myopic_peak_modulus": 1.02,
                   "T_myopic_final_modulus": 1.0, "T_myopic_modulus_at_authors": 1.0}
    assert type(out["T_myopic"]) is int and type(out["T_returns_epoch"]) is int


def test_myopic_horizon_says_when_the_scan_is_not_monotone_or_finds_none():
    odd = claims.myopic_horizon(hand_scan(STAY, [1.01, 0.99, 0.98, 0.97, 0.96], STAY),
                                authors_epochs=10)  # T = 2 returns, T = 3 does not
    assert (odd["T_myopic"], odd["T_scan_monotone"], odd["T_returns"]) == (3, "no", "none")
    assert odd["authors_T_epochs"] == 4 and odd["T_scan_return_epochs"] == []
    back = [1.01, 0.99, 0.98, 0.97, 0.96]
    none = claims.myopic_horizon(hand_scan(back, back), authors_epochs=2)
    assert (none["T_myopic"], none["T_myopic_authors"], none["T_scan_monotone"]) == (
        "none", "none", "yes")
    assert none["T_scan_return_epochs"] == [1, 1] and math.isnan(none["T_myopic_peak_modulus"])


PAIR = [0.5 + 0.3j, 0.5 - 0.3j]


def spectra(final):
    """eig_P records (2, *K, d): a first row of zeros, then the final spectra (*K, d) given."""
    final = np.array(final, dtype=complex)
    return np.stack([np.zeros_like(final), final])


def test_stage3_gaps_of_the_three_models_against_the_network():
    full = history(expected_loss=np.array([[1.0, 0.8, 0.5, 0.4, 0.4]]).T,
                   eig_P=spectra([[*PAIR, 0.2, 0, 0]]))
    paper = history(expected_loss=np.array([[1.0, 0.5, 0.55, 0.36, 0.38]]).T,
                    eig_P=spectra([[0.5 + 0.2j, 0.5 - 0.2j, 0.25, 0]]))
    frozen = history(expected_loss=np.array([1.0, 0.84, 0.55, 0.42, 0.5]),
                     eig_P=spectra([*PAIR, 0.23, 0]))
    small = history(expected_loss=np.array([1.0, 0.8, 0.5, 0.4, 0.41]),
                    eig_P=spectra([*PAIR, 0.2, 0]))
    runs = Stage3Runs(119, np.array([0.0]), 3, 4, full, paper, frozen, small)
    out = claims.stage3_gaps(runs, 4)
    # paper: gaps 0, .375, .1, .1, .05; lower than the network's at epochs 1, 3, 4
    # frozen: gaps 0, .05, .1, .05, .25; higher at epochs 1..4; compressed: .025 at the end
    assert out == {"stage3_epochs_used": 4, "reduced_seed": 4,
                   "paper_model_gap_pct": pytest.approx(10.0),
                   "paper_model_max_gap_pct": pytest.approx(37.5),
                   "paper_model_max_gap_epoch": 1, "paper_model_ahead_pct": pytest.approx(60.0),
                   "frozen_metric_gap_pct": pytest.approx(5.0),
                   "frozen_metric_behind_pct": pytest.approx(80.0),
                   "compressed_max_rel_error": pytest.approx(0.025),
                   "stage3_final_eig_gap": pytest.approx(0.1),
                   "frozen_metric_final_eig_gap": pytest.approx(0.03),
                   "compressed_final_eig_gap": 0.0,
                   "full_final_loss": 0.4, "paper_final_loss": 0.38}
    assert type(out["paper_model_max_gap_epoch"]) is int


def test_stage3_why_reads_the_metric_and_finds_the_symmetry_partner():
    G = np.zeros((3, 1, 4, 4))
    G[0, 0] = np.diag([0.3, 1.3, 0.3, 1.8])
    G[1, 0] = G[2, 0] = np.diag([0.3, 2.0, 0.3, 2.4])
    q_paper = np.array([-0.3, 0.25, 0.2, 0.4])
    q_full = np.array([-0.3, 0.5, 0.1, 0.4])  # q_paper moved along the symmetry by c = 2
    q_start = np.array([-0.2, 0.3, 0.2, 0.5])
    full = history(metric=G, overlaps=np.array([[q_start], [q_start], [q_full]]))
    paper = history(overlaps=np.array([[q_start], [q_start], [q_paper]]))
    runs = Stage3Runs(0, np.array([0.0]), 0, 1, full, paper, None, None)
    out = claims.stage3_why(runs)
    expect = {"m_sq": 0.3, "zu_metric_start": 1.3, "zu_metric_end": 2.0,
              "vu_metric_start": 1.8, "vu_metric_end": 2.4,
              "balance_start": 0.09 - 0.04, "balance_paper_end": 0.0625 - 0.04,
              "balance_full_end": 0.25 - 0.01, "ratio_full_end": 5.0, "ratio_paper_end": 1.25,
              "product_full_end": 0.05, "product_paper_end": 0.05, "symmetry_c": 0.5,
              "direct_distance": 0.25}
    assert {k: v for k, v in out.items() if k != "orbit_distance"} == pytest.approx(expect)
    assert out["orbit_distance"] == pytest.approx(0.0, abs=1e-12)
    assert all(type(v) is float for v in out.values())


def test_seed_spread_keeps_the_runs_that_stabilized_and_rounds_as_the_prose_reads():
    nan = float("nan")
    spread = {"seed": np.array([0, 1, 2]), "stabilization": np.array([120.0, nan, 90.0]),
              "median_gap_pct": np.array([21.44, nan, 3.06]),
              "max_gap_pct": np.array([55.6, nan, 9.4]), "behind": np.array([1.0, nan, 0.0])}
    out = claims.seed_spread(spread, 200)
    assert out == {"n_seeds_used": 3, "last_seed": 2, "epochs_used": 200, "n_stabilized": 2,
                   "seed_gaps_pct": [21.4, 3.1], "seed_max_gaps_pct": [56, 9],
                   "seed_gap_median_pct": pytest.approx(12.25), "n_paper_behind": 1}
    assert all(type(g) is int for g in out["seed_max_gaps_pct"])
    assert type(out["last_seed"]) is int and type(out["n_paper_behind"]) is int


def test_seed_spread_with_no_run_stabilized():
    nan = np.array([float("nan")])
    out = claims.seed_spread({"seed": np.array([0]), "stabilization": nan,
                              "median_gap_pct": nan, "max_gap_pct": nan, "behind": nan}, 50)
    assert (out["n_stabilized"], out["seed_gaps_pct"], out["seed_max_gaps_pct"],
            out["n_paper_behind"]) == (0, [], [], 0)
    assert math.isnan(out["seed_gap_median_pct"])


def test_control_cost_lists_one_rounded_number_per_beta():
    full_loss = np.array([[1.0, 0.8, 0.5, 0.5], [2.0, 1.0, 0.95, 0.9]]).T
    paper_loss = np.array([[1.0, 0.6, 0.45, 0.56], [2.0, 1.05, 1.0, 0.91234]]).T
    G = np.zeros((4, 2, 4, 4))
    G[-1, :, 1, 1] = [2.0234, 1.7567]
    full = history(expected_loss=full_loss, metric=G,
                   eig_P=spectra([[*PAIR, 0.2], [*PAIR, 0.1]]))
    paper = history(expected_loss=paper_loss,
                    eig_P=spectra([[*PAIR, 0.21234], [0.5 + 0.25j, 0.5 - 0.25j, 0.1]]))
    runs = Stage3Runs(0, np.array([0.0, 2.0]), 0, 1, full, paper, None, None)
    out = claims.control_cost(runs)
    # beta = 0: gaps 0, .25, .1, .12; beta = 2: gaps 0, .05, .0526.., .01371..
    assert out == {"beta_values": [0.0, 2.0], "beta_gaps_pct": [11.0, 3.19],
                   "beta_eig_gaps": [0.012, 0.05], "beta_final_gaps_pct": [12.0, 1.37],
                   "beta_zu_metric_end": [2.02, 1.76]}
