"""Chapter 6's plant sections (closedloop.plant_stages and closedloop.claims.ch6) against
independent math: hand-built histories, numpy rollouts and polynomial algebra."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from closedloop import plant_stages as ps
from closedloop.claims import Words
from closedloop.claims import ch6 as claims
from closedloop.history import History
from closedloop.plants import LinearPlant

NAN = float("nan")


def q_shifted(plant, s_zm, k, s_vu):
    """q(1 + mu) by numpy's polynomial algebra, coefficients lowest power first."""
    P = np.polynomial.Polynomial
    A, B, C = plant.numpy()
    n = plant.n_state
    lam = P([1.0, 1.0])  # lambda = 1 + mu
    a = P([1.0])
    for r in np.linalg.eigvals(A):
        a = a * (lam - r)
    # b(lambda) = a(lambda) C (lambda I - A)^{-1} B, interpolated at n + 1 points (degree n)
    mus = 2.5 + np.arange(n + 1.0)  # lambda = 3.5, 4.5, ...: away from eig(A)
    vals = [np.real(a(m) * C @ np.linalg.solve((1 + m) * np.eye(n) - A, B)) for m in mus]
    b = P(np.polynomial.polynomial.polyfit(mus, vals, n))
    q = a * (lam - s_vu) - b * (s_zm * (lam - s_vu) + k)
    return np.real(q.coef)


@pytest.mark.parametrize("k, zeros", [(1, []), (2, []), (3, [2]), (4, [2, 3])])
def test_structural_zeros_of_integrator_chains(k, zeros):
    plant = LinearPlant.integrator(k)
    assert ps.structural_zeros(plant) == zeros
    rng = np.random.default_rng(k)
    for s_zm, kk, s_vu in rng.normal(size=(5, 3)):
        coef = q_shifted(plant, s_zm, kk, s_vu)
        for j in range(len(coef) - 1):
            if j in zeros:
                assert abs(coef[j]) < 1e-9
            else:  # a random controller leaves every other coefficient nonzero
                assert abs(coef[j]) > 1e-6


def test_no_structural_zero_for_the_unstable_plant_and_the_oscillator():
    assert ps.structural_zeros(LinearPlant.unstable(1.5)) == []
    assert ps.structural_zeros(LinearPlant.damped_oscillator(1.0, 0.02, 0.5)) == []


def rollout_loss(a, s, T, w=2.0):
    """Exact expected stage-1 loss of x' = (a + s) x from x_0 ~ U(-w, w): window 0..T-1."""
    r = (a + s) ** 2
    return (w ** 2 / 3) * sum(r ** t for t in range(T)) / T


@pytest.mark.parametrize("a, sign", [(1.5, -1), (-2.0, 1), (3.0, -1), (-1.1, 1)])
def test_preferred_sign_is_the_side_of_lower_stage1_loss(a, sign):
    plant = LinearPlant.unstable(a)
    assert ps.preferred_sign(plant, 20) == sign
    lower = -1 if rollout_loss(a, -1e-3, 20) < rollout_loss(a, 1e-3, 20) else 1
    assert lower == sign


def test_preferred_sign_of_the_double_integrator_is_negative():
    assert ps.preferred_sign(LinearPlant.double_integrator(), 50) == -1


def test_clip_speed_epoch_by_hand():
    # distance 0.5 at speed lr |m| = 0.005: 100 epochs
    assert ps.clip_speed_epoch(0.0, 0.5, 0.01, (-2.5, -0.5)) == 100
    assert ps.clip_speed_epoch(-1.0, 0.5, 0.01, (-2.5, -0.5)) == 0
    assert ps.clip_speed_epoch(-3.0, 0.5, 0.01, (-2.5, -0.5)) == 100
    assert ps.clip_speed_epoch(0.0, 0.5, 0.01, None) == math.inf
    out = ps.clip_speed_epoch(np.array([0.0, 0.1]), np.array([0.5, 0.25]), 0.01, (1.0, 3.0))
    assert out.tolist() == [200.0, 360.0]


def unstable_history(a, s_zm, rho, eig=None):
    """A single run on x' = a x + u: s_zm per epoch, rho(P) per epoch, eig_P (E, 3)."""
    s_zm = np.asarray(s_zm, float)
    E = len(s_zm)
    q = np.zeros((E, 4))
    q[:, 0] = s_zm
    eig = np.stack([a + s_zm, np.zeros(E), np.zeros(E)], 1) if eig is None else eig
    return History({}, {"epoch": np.arange(E), "eig_epoch": np.arange(E), "overlaps": q,
                        "spectral_radius": np.asarray(rho, float),
                        "eig_P": eig.astype(complex)})


def test_plant_stages_on_a_hand_built_run():
    plant = LinearPlant.unstable(1.5)
    s_zm = [0.05, -0.01, 0.02, -0.2, -0.45, -0.6, -0.7]
    h = unstable_history(1.5, s_zm, np.abs(1.5 + np.array(s_zm)))
    st = ps.plant_stages(h, plant, T=20)
    assert (st.sign, st.stage1_end, st.stabilization, st.last_epoch) == (-1, 3, 5, 6)
    assert st.static_rho_at_stabilization == pytest.approx(0.9)
    assert st.stage2_epochs == 2


def test_plant_stages_never_stabilized_and_wrong_sign():
    plant = LinearPlant.unstable(-2.0)  # prefers s_zm > 0
    s_zm = [-0.1, -0.2, -0.3]
    h = unstable_history(-2.0, s_zm, np.abs(-2.0 + np.array(s_zm)))
    st = ps.plant_stages(h, plant, T=20)
    assert (st.sign, st.stage1_end, st.stabilization) == (1, None, None)
    assert math.isnan(st.static_rho_at_stabilization) and st.stage2_epochs is None


def test_stage1_gap_is_the_distance_to_the_nearest_eigenvalue():
    plant = LinearPlant.unstable(1.5)
    s_zm = np.array([0.0, -0.1, -0.2])
    eig = np.stack([1.5 + s_zm + 0.01j * np.arange(3), np.zeros(3), 0.3 * np.ones(3)], 1)
    gap = ps.stage1_gap(unstable_history(1.5, s_zm, np.ones(3), eig), plant)
    assert gap == pytest.approx([0.0, 0.01, 0.02])


def test_feedback_loss_of_deadbeat_and_of_no_feedback():
    plant = LinearPlant.unstable(1.5, x0=2.0)
    # u = -1.5 x kills x after one step: only x_0 counts, E x_0^2 = 4/3, over T
    assert ps.feedback_loss(plant, [1.5], 10) == pytest.approx(4 / 3 / 10)
    assert ps.feedback_loss(plant, [0.0], 10) == pytest.approx(rollout_loss(1.5, 0.0, 10))
    di = LinearPlant.double_integrator(x0=1.0)
    x = np.eye(2) / np.sqrt(3)  # the factor's rows: E[x0 x0^T] = I/3
    total = sum(np.sum((np.linalg.matrix_power(di.numpy()[0], t) @ x) ** 2) for t in range(5))
    assert ps.feedback_loss(di, [0.0, 0.0], 5) == pytest.approx(total / (2 * 5))


def test_effective_gains_of_a_static_controller_is_s_zm_C():
    for plant in (LinearPlant.double_integrator(), LinearPlant.integrator(3),
                  LinearPlant.damped_oscillator(1.0, 0.02, 0.5)):
        k = ps.effective_gains([-0.3, 0.0, 0.0, 0.0], plant, 20)
        assert k == pytest.approx(-0.3 * plant.numpy()[2], abs=1e-9)


def test_effective_gains_of_an_unstable_loop():
    """A static s_zm = 0.5 on the double integrator with a tiny memory (rho 1.7 at T = 50):
    the states line up with the growing mode (a fit through normal equations raised here,
    'fewer than n directions'), and the gains are still s_zm C to the memory's size."""
    k = ps.effective_gains([0.5, 1e-3, 1e-3, 1e-3], LinearPlant.double_integrator(), 50)
    assert k == pytest.approx([0.5, 0.0], abs=1e-4)


def test_atlas_numbers_on_a_hand_table():
    table = {"value": np.array([1.5, 1.5, 2.0, 2.0]), "seed": np.arange(4.0),
             "stabilization": np.array([90.0, NAN, 150.0, NAN]),
             "predicted": np.array([100.0, 120.0, 150.0, np.inf]),
             "static_at_stab": np.array([1.01, NAN, 0.99, NAN]), "epochs": 100}
    out = claims.atlas(table)
    assert out["atlas_n"] == 4 and out["atlas_n_values"] == 2 and out["atlas_epochs"] == 100
    assert out["atlas_frac_stab"] == 0.5 and out["atlas_frac_pred"] == 0.25
    # agree: run 0 (stab, pred 100 <= 100), run 1 (never, 120 > 100), run 3 (never, inf)
    assert out["atlas_agree"] == 0.75
    assert out["atlas_early"] == 0.25 and out["atlas_late"] == 0.0  # run 2: 150 > 100 epochs
    assert out["atlas_ratio_median"] == pytest.approx(0.95)
    assert out["atlas_static_max"] == pytest.approx(1.01)
    assert not [k for k, v in out.items() if isinstance(v, np.generic)]
    # a = 1.5: 1/2 stabilized, 1/2 predicted; a = 2.0: 1/2 against 0
    assert (out["atlas_worst_value"], out["atlas_worst_stab"], out["atlas_worst_pred"]) == \
        (2.0, 0.5, 0.0)


def test_atlas_numbers_when_nothing_stabilized():
    table = {"value": np.array([2.0]), "seed": np.zeros(1), "stabilization": np.array([NAN]),
             "predicted": np.array([np.inf]), "static_at_stab": np.array([NAN]),
             "epochs": 10}
    out = claims.atlas(table)
    assert out["atlas_frac_stab"] == 0.0 and math.isnan(out["atlas_ratio_median"])
    assert math.isnan(out["atlas_static_max"]) and out["atlas_agree"] == 1.0


@pytest.fixture(scope="module")
def small_runs():
    plants = ps.chapter_plants(a=1.5, x0_half_width=2.0)
    return ps.train_plants(plants, seed=0, stream="package", N=6, epochs=8, T=10, batch=8)


def test_coupled_identity_holds_and_a_wrong_root_fails(small_runs, monkeypatch):
    out = claims.coupled_identity(small_runs)
    assert out["identity_max_error"] < 1e-9
    assert isinstance(out["identity_degrees"], Words) and "4 (triple integrator)" in \
        out["identity_degrees"]
    from closedloop import plant_theory as pt

    right = pt.roots
    monkeypatch.setattr(pt, "roots", lambda q, plant: right(q, plant) * 1.01)
    assert claims.coupled_identity(small_runs)["identity_max_error"] > 1e-4


def test_plant_run_numbers(small_runs):
    run = small_runs["unstable plant"]
    verdict = SimpleNamespace(static=SimpleNamespace(intervals=((-2.5, -0.5),)),
                              lqr=SimpleNamespace(gain=np.array([1.5])),
                              words=lambda: "the words")
    out = claims.plant_run(run, "u", verdict)
    assert all(k.startswith("u_") for k in out)
    h = run.history
    assert out["u_s_zm0"] == h.overlaps[0, 0] and out["u_s_zm_final"] == h.overlaps[-1, 0]
    assert out["u_rho_min"] == pytest.approx(np.min(h.spectral_radius))
    assert out["u_lqr_loss"] == pytest.approx(4 / 3 / 10)  # deadbeat (module test above)
    assert out["u_loss_over_lqr"] == pytest.approx(h.expected_loss[-1] / (4 / 3 / 10))
    pred = math.ceil((h.overlaps[0, 0] + 0.5) / (0.01 * run.m_norm))
    assert out["u_predicted"] == f"epoch **{pred}**"
    assert out["u_stab"] == "never" and out["u_stab_epoch"] is None  # 8 epochs: too few
    assert math.isnan(out["u_stab_over_predicted"]) and out["u_theory"] == "the words"
    assert out["u_unstable_epochs"] == int(np.sum(h.spectral_radius >= 1))
    # plain Python numbers: the book formats their text form (np.float64(...) fails there)
    assert not [k for k, v in out.items() if isinstance(v, np.generic)]
    assert type(out["u_lqr_loss"]) is float and type(out["u_loss_over_lqr"]) is float


def test_breaks_numbers(small_runs):
    verdicts = {name: SimpleNamespace(
        static=SimpleNamespace(intervals=((-2.5, -0.5),), best_rho=1.0),
        reach=SimpleNamespace(rho=1.0 if name == "triple integrator" else 0.0),
        open_rho=0.99) for name in small_runs}
    out = claims.breaks(small_runs, verdicts)
    h = small_runs["triple integrator"].history
    assert out["tri_zero_powers"] == "$\\mu^2$" and out["tri_n_zero_powers"] == 1
    late = np.asarray(h.expected_loss)[len(h.epoch) // 2:]
    assert (out["tri_late_loss_lo"], out["tri_late_loss_hi"]) == (late.min(), late.max())
    assert out["stage1_gap_max"] == max(
        ps.stage1_gap(r.history, r.plant)[:10].max() for r in small_runs.values())
    assert (out["unst_static_lo"], out["unst_static_hi"], out["unst_a"]) == (-2.5, -0.5, 1.5)
    assert not [k for k, v in out.items() if isinstance(v, np.generic)]


def test_on_the_double_integrator_stage1_is_chapter_2s_boundary(small_runs):
    from closedloop.stages import detect_stages

    for name in ("double integrator", "triple integrator", "unstable plant"):
        h = small_runs[name].history
        st, base = small_runs[name].stages, detect_stages(h)
        assert st.sign == -1 and st.stabilization == base.stabilization
        if name == "double integrator":
            assert st.stage1_end == base.stage1_end


def test_train_plants_draws_one_network_for_every_plant(small_runs):
    s0 = {run.history.overlaps[0, 0] for run in small_runs.values()}
    norms = {run.m_norm for run in small_runs.values()}
    assert len(s0) == 1 and len(norms) == 1
    with pytest.raises(ValueError, match="non-empty dict"):
        ps.train_plants({}, epochs=1)
    with pytest.raises(TypeError):
        ps.train_plants({"x": "not a plant"}, epochs=1)


def test_atlas_sweep_refuses_an_unknown_family():
    with pytest.raises(ValueError, match="family must be"):
        ps.atlas_sweep("double_integrator", [1.0], [0])


def test_atlas_table_predicts_from_each_runs_own_draw():
    h = ps.atlas_sweep("unstable", [1.5, -2.0], [0, 1], N=6, epochs=5, T=10, batch=8)
    t = ps.atlas_table(h)
    assert sorted(set(t["value"].tolist())) == [-2.0, 1.5] and t["epochs"] == 5
    for k in range(4):
        lo, hi = -1 - t["value"][k], 1 - t["value"][k]
        s0, m = t["s_zm0"][k], t["m_norm"][k]
        d = max(lo - s0, s0 - hi, 0.0)
        assert t["predicted"][k] == pytest.approx(math.ceil(d / (0.01 * m)))
    from closedloop.agents import RankOneAgent

    m0 = float(RankOneAgent(N=6, seed=int(t["seed"][0])).tensors["m"].norm())
    assert t["m_norm"][0] == pytest.approx(m0)
    assert torch.isfinite(torch.as_tensor(t["s_zm0"])).all()
