"""claims.ch5: the atlas's named numbers on hand-built grids whose answers are known by
construction (medians, shares and rank correlations worked out here, not read back)."""

import math
import statistics

import numpy as np
import pytest

from closedloop.claims import ch5 as claims
from closedloop.history import History

# the names the chapter's prose reads (book/ch5_atlas.ipynb), section by section
TREND = ("word", "low", "high", "spearman")
HORIZON = ({f"T_{k}" for k in ("n_runs", "stabilized_fraction", "paper_point_runs",
                                "paper_stabilization_median", "paper_final_rho_median",
                                "paper_stage2_length_median", "paper_stabilization_lo",
                                "paper_stabilization_hi", "paper_final_rho_lo",
                                "paper_final_rho_hi")}
           | {f"{k}_vs_{a}_{p}" for k in ("stabilization", "stage2_length", "final_rho")
              for a in ("T", "lr") for p in TREND}
           | {"T_min", "T_max", "lr_min", "lr_max"})
FEEDBACK = ({f"N_{k}" for k in ("n_runs", "stage1_share_negative", "stage1_share_positive",
                                 "final_rho_cell_spread", "final_rho_median")}
            | {f"N_{k}_{p}" for k in ("stage1_end_vs_szm0", "stabilization_vs_szm0",
                                      "stabilization_vs_N") for p in TREND}
            | {"N_min", "N_max", "szm0_max", "szm0_min_pos"})
EXCURSION = {"X_n_runs", "X_paper_ratio", "X_paper_epoch", "X_min_cell_ratio",
             "X_max_cell_ratio", "X_excursion_share", "X_share_paper", "X_share_gaussian",
             "excursion_N"}


def grid(**axes):
    """A sweep-like history holding only the coordinates of every combination of ``axes``
    (in order, the last axis fastest), and those combinations as a list of dicts."""
    names = list(axes)
    combos = [dict(zip(names, c)) for c in np.array(np.meshgrid(
        *axes.values(), indexing="ij"), dtype=object).reshape(len(names), -1).T]
    arrays = {f"coord/{k}": np.array([c[k] for c in combos]) for k in names}
    return History({"kind": "sweep", "model": "rank_one"}, arrays), combos


def ranks(a):
    """Ranks 1..n with ties given their mean rank."""
    a = np.asarray(a, float)
    return np.array([np.mean(np.flatnonzero(np.sort(a) == v)) + 1 for v in a])


def spearman(x, y):
    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


@pytest.fixture
def horizon_grid():
    """T in (10, 50, 100) x lr in (0.003, 0.01, 0.03) x seeds (0, 1). Final rho(P) =
    0.3 + T/200 - 5 lr (rises with T, falls with lr, equal over seeds); stabilization epoch
    300, 100 + 10 seed, 30 at the three lr whatever T, except (T = 50, lr = 0.03, seed 1),
    which never stabilizes; stage 1 ends at epoch 10 in every run."""
    h, pts = grid(T=[10, 50, 100], lr=[0.003, 0.01, 0.03], seed=[0, 1])
    rho = np.array([0.3 + p["T"] / 200 - 5 * p["lr"] for p in pts])
    stab = np.array([{0.003: 300.0, 0.01: 100.0 + 10 * p["seed"], 0.03: 30.0}[p["lr"]]
                     for p in pts])
    stab[[i for i, p in enumerate(pts) if (p["T"], p["lr"], p["seed"]) == (50, 0.03, 1)]] = np.nan
    table = {"stage1_end": np.full(len(pts), 10.0), "stabilization": stab,
             "stage2_length": stab - 10.0, "final_rho": rho, "stabilized": np.isfinite(stab)}
    return h, table


def test_horizon_names_the_numbers_of_the_T_lr_grid(horizon_grid):
    h, table = horizon_grid
    n = claims.horizon(h, table, [10, 50, 100], [0.003, 0.01, 0.03])
    assert set(n) == HORIZON
    assert n["T_n_runs"] == 18 and n["T_stabilized_fraction"] == pytest.approx(17 / 18)
    # the paper's point (T = 50, lr = 0.01): stabilizations 100 and 110, rho 0.3+0.25-0.05
    assert n["T_paper_point_runs"] == 2
    assert n["T_paper_stabilization_median"] == 105.0
    assert (n["T_paper_stabilization_lo"], n["T_paper_stabilization_hi"]) == (100.0, 110.0)
    assert n["T_paper_stage2_length_median"] == 95.0
    assert n["T_paper_final_rho_median"] == pytest.approx(0.5)
    assert n["T_paper_final_rho_lo"] == pytest.approx(0.5)
    assert n["T_paper_final_rho_hi"] == pytest.approx(0.5)
    # along T at lr = 0.01: rho(P) rises with T alone (ranks tie exactly within a cell)
    assert n["final_rho_vs_T_spearman"] == pytest.approx(1.0)
    assert n["final_rho_vs_T_word"] == "grows"
    assert n["final_rho_vs_T_low"] == pytest.approx(0.3)
    assert n["final_rho_vs_T_high"] == pytest.approx(0.75)
    # ... while the stabilization epoch is 100 or 110 by seed at every T: no rank correlation
    assert n["stabilization_vs_T_spearman"] == pytest.approx(0.0, abs=1e-12)
    assert n["stabilization_vs_T_word"] == "barely changes"
    assert n["stabilization_vs_T_low"] == n["stabilization_vs_T_high"] == 105.0
    assert n["stage2_length_vs_T_low"] == 95.0 and n["stage2_length_vs_T_word"] == "barely changes"
    # along lr at T = 50: the never-stabilized run is left out of the trend
    x, y = [0.003, 0.003, 0.01, 0.01, 0.03], [300, 300, 100, 110, 30]
    assert n["stabilization_vs_lr_spearman"] == pytest.approx(spearman(x, y))
    assert n["stabilization_vs_lr_word"] == "shrinks"
    assert (n["stabilization_vs_lr_low"], n["stabilization_vs_lr_high"]) == (300.0, 30.0)
    assert (n["stage2_length_vs_lr_low"], n["stage2_length_vs_lr_high"]) == (290.0, 20.0)
    assert n["final_rho_vs_lr_spearman"] == pytest.approx(-1.0)
    assert n["final_rho_vs_lr_low"] == pytest.approx(0.535)
    assert n["final_rho_vs_lr_high"] == pytest.approx(0.4)
    # the grid's ends, as the parameters gave them (an int stays an int for the prose)
    assert (n["T_min"], n["T_max"], n["lr_min"], n["lr_max"]) == (10, 100, 0.003, 0.03)
    assert type(n["T_min"]) is int and type(n["T_n_runs"]) is int
    assert all(type(n[k]) is str for k in n if k.endswith("_word"))


def test_horizon_without_the_paper_point_says_undetermined(horizon_grid):
    h, table = horizon_grid
    h = History(h.config, {**h.arrays, "coord/lr": np.where(h.arrays["coord/lr"] == 0.01, 0.02,
                                                             h.arrays["coord/lr"])})
    n = claims.horizon(h, table, [10, 50, 100], [0.003, 0.02, 0.03])
    assert n["T_paper_point_runs"] == 0 and math.isnan(n["T_paper_stabilization_median"])
    assert math.isnan(n["T_paper_final_rho_lo"]) and n["final_rho_vs_T_word"] == "is undetermined"


@pytest.fixture
def feedback_grid():
    """N in (25, 100) x s_zm(0) in (-0.1, 0.05, 0.2) x seeds (0, 1). A stage 1 (ending at
    epoch 100 s_zm(0) + N/100) in every run started with s_zm(0) > 0 and in none started
    below (stage1_end 0); stabilization at epoch 50 + N + 100 s_zm(0) + seed; final rho(P)
    0.7 + 0.01 seed + N/10000."""
    h, pts = grid(N=[25, 100], s_zm0=[-0.1, 0.05, 0.2], seed=[0, 1])
    end1 = np.array([100 * p["s_zm0"] + p["N"] / 100 if p["s_zm0"] > 0 else 0.0 for p in pts])
    stab = np.array([50 + p["N"] + 100 * p["s_zm0"] + p["seed"] for p in pts])
    rho = np.array([0.7 + 0.01 * p["seed"] + p["N"] / 10000 for p in pts])
    table = {"stage1_end": end1, "stabilization": stab, "stage2_length": stab - end1,
             "final_rho": rho, "stabilized": np.ones(len(pts), bool)}
    return h, table, rho


def test_feedback_names_the_numbers_of_the_N_szm0_grid(feedback_grid):
    h, table, rho = feedback_grid
    n = claims.feedback(h, table, [25, 100], [-0.1, 0.05, 0.2])
    assert set(n) == FEEDBACK
    assert n["N_n_runs"] == 12
    assert n["N_stage1_share_positive"] == 1.0 and n["N_stage1_share_negative"] == 0.0
    # stage 1's end against s_zm(0) > 0: medians over N and seed at 0.05 and at 0.2
    assert n["N_stage1_end_vs_szm0_low"] == pytest.approx(statistics.median([5.25, 6.0]))
    assert n["N_stage1_end_vs_szm0_high"] == pytest.approx(statistics.median([20.25, 21.0]))
    assert n["N_stage1_end_vs_szm0_spearman"] == pytest.approx(
        spearman([0.05] * 4 + [0.2] * 4, [5.25, 5.25, 6, 6, 20.25, 20.25, 21, 21]))
    assert n["N_stage1_end_vs_szm0_word"] == "grows"
    # stabilization against N: 75..96 at N = 25, 150..171 at N = 100, every one above
    assert n["N_stabilization_vs_N_low"] == pytest.approx(statistics.median(
        [50 + 25 + s + d for s in (-10, 5, 20) for d in (0, 1)]))
    assert n["N_stabilization_vs_N_high"] == pytest.approx(statistics.median(
        [50 + 100 + s + d for s in (-10, 5, 20) for d in (0, 1)]))
    assert n["N_stabilization_vs_N_word"] == "grows"
    stab = np.asarray(table["stabilization"])
    assert n["N_stabilization_vs_szm0_spearman"] == pytest.approx(
        spearman(h.arrays["coord/s_zm0"], stab))
    # cell medians of rho over the seeds: 0.705 + N/10000, whatever s_zm(0)
    assert n["N_final_rho_cell_spread"] == pytest.approx(0.0075)
    assert n["N_final_rho_median"] == pytest.approx(statistics.median(rho))
    assert (n["N_min"], n["N_max"], n["szm0_max"], n["szm0_min_pos"]) == (25, 100, 0.2, 0.05)


def test_feedback_without_a_positive_start_has_no_smallest_positive_feedback(feedback_grid):
    h, table, _ = feedback_grid
    n = claims.feedback(h, table, [25, 100], [-0.2, -0.1])
    assert math.isnan(n["szm0_min_pos"])
    assert n["szm0_max"] == -0.1


def test_excursion_names_the_numbers_of_the_map():
    h, pts = grid(init=["gaussian", "paper"], lr=[0.003, 0.01], seed=[0, 1, 2])
    # peak / final: 10**(seed+1) at the authors' point, 2 elsewhere; NaN (no rise) for seed 2
    # at (gaussian, 0.003); the excursion shows for every paper-scale run but seed 0 at 0.003
    at = [(p["init"], p["lr"]) == ("paper", 0.01) for p in pts]
    ratio = np.array([10.0 ** (p["seed"] + 1) if a else 2.0 for p, a in zip(pts, at)])
    epoch = np.array([100.0 + p["seed"] for p in pts])
    nan = [(p["init"], p["lr"], p["seed"]) == ("gaussian", 0.003, 2) for p in pts]
    ratio[nan], epoch[nan] = np.nan, np.nan
    shows = np.array([p["init"] == "paper" and (p["lr"], p["seed"]) != (0.003, 0) for p in pts])
    n = claims.excursion(h, {"ratio": ratio, "epoch": epoch, "shows": shows}, 32)
    assert set(n) == EXCURSION
    assert n["X_n_runs"] == 12 and n["excursion_N"] == 32
    assert n["X_paper_ratio"] == pytest.approx(100.0)  # median of 10, 100, 1000
    assert n["X_paper_epoch"] == 101.0
    assert (n["X_min_cell_ratio"], n["X_max_cell_ratio"]) == (2.0, pytest.approx(100.0))
    assert n["X_share_paper"] == pytest.approx(5 / 6) and n["X_share_gaussian"] == 0.0
    assert n["X_excursion_share"] == pytest.approx(5 / 12)


def test_a_scale_the_grid_left_out_still_has_a_share_to_read():
    h, pts = grid(init=["paper"], lr=[0.01], seed=[0, 1])
    peaks = {"ratio": np.array([5.0, 7.0]), "epoch": np.array([100.0, 101.0]),
             "shows": np.array([True, False])}
    n = claims.excursion(h, peaks, 32)
    assert set(n) == EXCURSION  # the prose reads every name, X_share_gaussian included
    assert n["X_share_paper"] == 0.5 and math.isnan(n["X_share_gaussian"])


def test_sweeps_counts_every_training_teachers_included():
    h_T, _ = grid(T=[10, 50], seed=[0, 1, 2])
    h_N, _ = grid(N=[25], seed=[0, 1])
    arrays = {"coord/lr": np.array([0.003, 0.01, 0.003, 0.01]),
              "coord/init": np.array(["paper", "paper", "gaussian", "gaussian"]),
              "coord/seed": np.zeros(4), "coord/g": np.full(4, 0.1)}
    h_X = History({"kind": "sweep", "model": "open_loop"}, arrays)  # 4 students, 2 teachers
    n = claims.sweeps(h_T, h_N, h_X, 12.5, "local")
    assert n == {"n_trainings": 6 + 2 + 4 + 2, "n_rank_one": 8, "sweep_seconds": 12.5,
                 "engine": "local"}
    assert type(n["n_trainings"]) is int and type(n["engine"]) is str
