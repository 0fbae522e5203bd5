"""closedloop.atlas: the numbers Chapter 5 states, on synthetic sweep histories whose answers
are known, and against scipy where a statistic has a reference implementation."""

import numpy as np
import pytest

from closedloop import atlas, sweep
from closedloop.history import History


def synthetic(stab_epochs, end1_epochs, E=60):
    """A sweep history of P rank-one runs whose s_zm turns negative for good at ``end1`` and
    whose rho(P) drops below 1 for good at ``stab`` (None: never), with coordinates
    T = 10, 20, ... and lr alternating 0.01, 0.03."""
    P = len(stab_epochs)
    ep = np.arange(E)
    overlaps = np.zeros((E, P, 4))
    rho = np.full((E, P), 1.2)
    for k, (s, e1) in enumerate(zip(stab_epochs, end1_epochs)):
        overlaps[:, k, 0] = np.where(ep >= e1, -0.1, 0.1)
        overlaps[3, k, 0] = -0.1 if e1 > 4 else overlaps[3, k, 0]  # a dip that does not last
        if s is not None:
            rho[s:, k] = 0.7 + 0.001 * k
            rho[s // 2, k] = 0.9  # a stable moment before the end of stage 2
    arrays = {"epoch": ep, "eig_epoch": ep, "loss": np.ones((E, P)),
              "expected_loss": np.linspace(2, 1, E)[:, None] * np.ones(P), "overlaps": overlaps,
              "spectral_radius": rho, "coord/T": 10.0 * (1 + np.arange(P)),
              "coord/lr": np.where(np.arange(P) % 2, 0.03, 0.01),
              "coord/seed": np.zeros(P)}
    return History({"kind": "sweep"}, arrays)


def test_stage_table_reads_each_run_with_the_stage_rules():
    h = synthetic([30, None, 12, 40], [10, 5, 0, 20])
    t = atlas.stage_table(h)
    np.testing.assert_array_equal(t["stage1_end"], [10, 5, 0, 20])
    np.testing.assert_array_equal(t["stabilization"], [30, np.nan, 12, 40])
    np.testing.assert_array_equal(t["stage2_length"], [20, np.nan, 12, 20])
    np.testing.assert_array_equal(t["stabilized"], [True, False, True, True])
    np.testing.assert_allclose(t["final_rho"], [0.7, 1.2, 0.702, 0.703])


def test_pivot_reduces_each_cell_and_leaves_empty_cells_nan():
    h = synthetic([30, None, 12, 40, 50, 20], [0] * 6)
    values = np.array([1.0, 2.0, 3.0, np.nan, 5.0, 6.0])
    rows, cols, tab = atlas.pivot(h, values, "lr", "T", reduce=np.sum)
    assert list(rows) == [0.01, 0.03] and list(cols) == [10, 20, 30, 40, 50, 60]
    want = np.full((2, 6), np.nan)
    want[0, [0, 2, 4]] = [1.0, 3.0, 5.0]
    want[1, [1, 5]] = [2.0, 6.0]  # T = 40 holds only NaN
    np.testing.assert_array_equal(tab, want)
    _, _, frac = atlas.fraction(h, [True, False, True, True, False, True], "lr", "T")
    assert frac[0, 0] == 1.0 and frac[1, 1] == 0.0


def test_trend_is_spearman_with_the_medians_at_the_ends():
    rng = np.random.default_rng(0)
    x = np.repeat([10.0, 20.0, 50.0], 5)
    y = x * 0.1 + rng.normal(0, 1.5, x.size)
    y[3] = np.nan
    t = atlas.trend(x, y)
    ok = np.isfinite(y)
    # against the definition: Pearson's correlation of the tie-averaged ranks
    rank = lambda a: np.array([np.mean(np.flatnonzero(np.sort(a) == v)) for v in a])
    assert t["spearman"] == pytest.approx(np.corrcoef(rank(x[ok]), rank(y[ok]))[0, 1])
    assert t["low"] == pytest.approx(np.nanmedian(y[x == 10]))
    assert t["high"] == pytest.approx(np.median(y[x == 50]))
    assert np.isnan(atlas.trend([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["spearman"])


@pytest.mark.parametrize("rho,word", [(0.9, "grows"), (-0.5, "shrinks"), (0.1, "barely changes"),
                                      (np.nan, "is undetermined")])
def test_direction_words(rho, word):
    assert atlas.direction(rho) == word


def test_peak_ratios_follow_chapter_1s_rule_and_the_last_finite_value():
    v = np.array([[1.0, 5.0], [100.0, 4.0], [2.0, np.nan], [0.5, np.nan]])
    h = History({}, {"monitor_epoch": np.arange(4), "test_loss": v, "loss": np.ones((4, 2)),
                     "coord/lr": np.array([0.01, 0.03])})
    p = atlas.peak_ratios(h)  # the second only falls: no excursion
    np.testing.assert_allclose(p["ratio"], [200.0, np.nan])
    np.testing.assert_array_equal(p["epoch"], [1, np.nan])
    np.testing.assert_array_equal(p["shows"], [True, False])


def test_a_real_small_sweep_gives_a_consistent_atlas():
    h = sweep.run({"T": [10, 30], "seed": [0, 1], "N": [8], "epochs": [300], "batch": [16]},
                  progress=False)
    t = atlas.stage_table(h)
    for k in range(4):  # against the history of the member read directly
        rho = h.spectral_radius[:, k]
        if t["stabilized"][k]:
            s = int(t["stabilization"][k])
            assert (rho[s:] < 1).all() and (s == 0 or rho[s - 1] >= 1)
        else:
            assert rho[-1] >= 1
    s = atlas.horizon_summary(h, t, T_paper=30, lr_paper=0.01)
    assert s["paper_point_runs"] == 2 and s["n_runs"] == 4
    assert atlas.trainings(h) == 4


def test_the_atlas_explorer_shows_the_runs_of_the_chosen_cell():
    from closedloop.widgets import atlas_explorer

    h = sweep.run({"T": [10, 30], "lr": [0.01, 0.05], "seed": [0, 1], "N": [8],
                   "epochs": [40], "batch": [16]}, progress=False)
    t = atlas.stage_table(h)
    ex = atlas_explorer(h, t, row="T", col="lr")
    assert len(ex.frames) == 4 and {tuple(f.values()) for f in ex.frames} == {
        (10, 0.01), (10, 0.05), (30, 0.01), (30, 0.05)}
    ex.set(T=30, lr=0.05)
    c = sweep.coords_of(h)
    members = np.flatnonzero((c["T"] == 30) & (c["lr"] == 0.05))
    shown = [line.get_ydata() for line in ex.artists["lines"] if len(line.get_ydata())]
    assert len(shown) == len(members)
    for y, k in zip(shown, members):
        np.testing.assert_array_equal(y, h.spectral_radius[:, k])
    assert "<img" in ex.static_html()


SMALL = dict(N=[6], epochs=[15], batch=[8], T=[12])
GRIDS = [("rank_one", {**SMALL, "seed": [0, 1, 2], "lr": [0.01, 0.05]}, 4),
         ("rank_one", {**SMALL, "s_zm0": [-0.1, 0.1], "seed": [3]}, 1),
         ("open_loop", {"init": ["paper", "gaussian"], "lr": [0.01, 0.03], "N": [5],
                        "epochs": [6], "teacher_epochs": [6], "batch": [8], "T": [10],
                        "n_test": [4], "test_T": [10]}, 2)]


def assert_bitwise(a, b):
    assert set(a.arrays) == set(b.arrays)
    for name in a.arrays:
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name], err_msg=name)


@pytest.fixture(scope="module")
def alone():
    """Each grid as sweep.run trains it alone, in process."""
    return [sweep.run(grid, model, chunk_size=size, progress=False) for model, grid, size in GRIDS]


def test_run_grids_in_process_gives_each_grid_as_alone(alone):
    histories, seconds = atlas.run_grids(GRIDS)
    assert len(histories) == 3 and seconds > 0
    for h, ref in zip(histories, alone):
        assert_bitwise(h, ref)
    assert atlas.trainings(histories[2]) == 4 + 2  # one teacher per initial scale


def test_run_grids_on_one_local_cluster_gives_the_same_bits(alone):
    histories, _ = atlas.run_grids(GRIDS, engine="local", n_workers=2)
    for h, ref in zip(histories, alone):
        assert_bitwise(h, ref)


def test_run_grids_checks_every_grid_before_anything_trains(monkeypatch):
    monkeypatch.setattr(sweep, "run", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match="unknown setting"):
        atlas.run_grids([GRIDS[0], ("rank_one", {"colour": ["red"]}, 4)])
    with pytest.raises(ValueError, match="chunk_size"):
        atlas.run_grids([("rank_one", {"seed": [0]})])


def test_run_grids_refuses_an_unknown_engine_as_sweep_does():
    with pytest.raises(ValueError, match="engine must be"):
        atlas.run_grids([("rank_one", {**SMALL, "seed": [0]}, 1)], engine="nowhere")
