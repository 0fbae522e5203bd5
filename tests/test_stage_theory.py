"""Which stages a linear plant allows (closedloop.stage_theory), against independent math:
closed forms of stage 1, determinants of P_eff and of a full rank-one network, the
Schur-Cohn (Jury) stability test on q's coefficients, and a plain Riccati iteration."""

import numpy as np
import pytest
import torch

from closedloop import RankOneAgent, theory
from closedloop import plant_theory as pt
from closedloop import stage_theory as st
from closedloop.plants import LinearPlant

LAG = st.survey_plants()["double integrator with lag"]


@pytest.fixture(scope="module")
def verdicts():
    return {v.name: v for v in st.survey()}


# independent tools -------------------------------------------------------------------------
def schur_stable(c):
    """Every root of the real polynomials c (..., d + 1) (highest first) strictly inside the
    unit circle, by the Schur-Cohn recursion: with p* the reversed polynomial, p is stable iff
    |p(0)| < |lead| and (lead p - p(0) p*) / lambda is (Rouche on |lambda| = 1). No roots."""
    c = np.array(c, dtype=float)
    ok = np.ones(c.shape[:-1], bool)
    while c.shape[-1] > 1:
        lead, const = c[..., :1], c[..., -1:]
        ok &= np.abs(const[..., 0]) < np.abs(lead[..., 0])
        c = (lead * c - const * c[..., ::-1])[..., :-1]
        c = c / np.where(ok[..., None], np.abs(c[..., :1]), 1.0)  # rescale the live rows
    return ok


def network(overlaps, N=12, seed=0):
    """A RankOneAgent with exactly these (s_zm, s_zu, s_vm, s_vu): m, u along two orthonormal
    directions, z and v written in them plus parts orthogonal to both (which the loop never
    sees)."""
    s_zm, s_zu, s_vm, s_vu = overlaps
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(N, 4)))
    m, e = Q[:, 0], Q[:, 1]
    u = 0.7 * e
    z = s_zm * m + s_zu / 0.7 * e + 0.3 * Q[:, 2]
    v = s_vm * m + s_vu / 0.7 * e + 0.4 * Q[:, 3]
    agent = RankOneAgent.from_tensors(*(torch.tensor(x) for x in (u, v, z, m)))
    assert np.allclose(agent.overlaps().detach().numpy(), overlaps, rtol=1e-13, atol=1e-13)
    return agent


def dets(P, lams):
    return np.array([np.linalg.det(lam * np.eye(len(P)) - P) for lam in lams])


# stage 1 -----------------------------------------------------------------------------------
def test_double_integrator_stage1_is_the_papers():
    """rho(A + s_zm B C) = |1 +/- sqrt(s_zm)|: sqrt(1 - s_zm) below 0, 1 + sqrt(s_zm) above;
    never below 1, so static feedback cannot stabilize and memory is needed (paper s.5)."""
    p = LinearPlant.double_integrator()
    s = np.linspace(-3, 2, 101)
    want = np.where(s < 0, np.sqrt(np.abs(1 - s)), 1 + np.sqrt(np.abs(s)))
    assert np.allclose(st.static_radius(p, s), want, rtol=1e-7)  # 1e-7: the double root at 0
    r = st.stage1(p)
    assert r.intervals == () and not r.stabilizable
    assert r.best_s_zm == 0.0 and r.best_rho == 1.0
    grid = r.s_zm < 0
    assert np.allclose(r.rho[grid], np.sqrt(1 - r.s_zm[grid]), rtol=1e-12)


@pytest.mark.parametrize("a,b,c", [(1.5, 1.0, 1.0), (1.1, 1.0, 1.0), (-1.4, 1.0, 1.0),
                                   (2.0, 0.5, -0.8), (0.6, 2.0, 1.5)])
def test_first_order_plant_stage1_interval(a, b, c):
    """n = 1: rho = |a + s_zm c b|, stable on the interval between (-1 - a)/(cb) and
    (1 - a)/(cb), best at s_zm = -a/(cb) with rho = 0."""
    p = LinearPlant([[a]], [b], [c])
    r = st.stage1(p)
    want = tuple(sorted([(-1 - a) / (c * b), (1 - a) / (c * b)]))
    assert len(r.intervals) == 1 and np.allclose(r.intervals[0], want, atol=1e-10)
    assert r.best_s_zm == pytest.approx(-a / (c * b), abs=1e-7) and r.best_rho < 1e-7
    assert r.stabilizable


def test_stage1_default_range_holds_every_stabilizing_gain():
    """The coefficient bound: on a wide grid, rho < 1 only inside the default range."""
    p = LinearPlant.damped_oscillator(1.0, 0.3, 0.5)
    r = st.stage1(p)
    wide = np.linspace(-200, 200, 40001)
    inside = wide[st.static_radius(p, wide) < 1]
    assert inside.min() >= r.s_zm[0] and inside.max() <= r.s_zm[-1]
    (lo, hi), = r.intervals
    assert lo == pytest.approx(inside.min(), abs=0.011) and hi == pytest.approx(inside.max(),
                                                                                 abs=0.011)
    assert st.static_radius(p, lo) == pytest.approx(1, abs=1e-10)


# the reach of a rank-one network -----------------------------------------------------------
@pytest.mark.parametrize("name", ["double integrator with lag", "triple integrator",
                                  "double integrator", "oscillator (zeta = 0.5)",
                                  "unstable plant (a = 1.5)"])
def test_reach_is_the_spectrum_of_P_eff_and_of_a_network(verdicts, name):
    """At the minimizer the roots returned are the nonzero eigenvalues of the (n + 2) P_eff and
    of the full N-neuron P of a network with those overlaps, checked by determinants (no
    eigenvalue solver: the optimum is a multiple root): det(l - P_eff) = l prod(l - r_i),
    det(l - P) = l^(N - 1) prod(l - r_i). Deadbeat: P_eff^(n+2) = 0 and P^(n+3) = 0."""
    p, r = st.survey_plants()[name], verdicts[name].reach
    n, N = p.n_state, 12
    assert np.abs(r.roots).max() == pytest.approx(r.rho, abs=1e-7)
    Pe = pt.effective_matrix(r.overlaps, p).numpy()
    P = pt.coupled_matrix(network(r.overlaps, N), p).detach().numpy()
    lams = [1.3, -0.7 + 0.4j, 2.1, 0.2j]
    want = np.array([lam * np.prod(lam - r.roots) for lam in lams])
    assert np.allclose(dets(Pe, lams), want, rtol=1e-9)
    assert np.allclose(dets(P, lams), want * np.power(lams, N - 2), rtol=1e-9)
    if r.deadbeat:
        scale = np.abs(P).max() + 1
        assert np.abs(np.linalg.matrix_power(Pe, n + 2)).max() < 1e-12 * scale ** (n + 2)
        assert np.abs(np.linalg.matrix_power(P, n + 3)).max() < 1e-12 * scale ** (n + 3)
    else:  # the eigenvalue solver agrees to the conditioning of a triple root
        for M in (Pe, P):
            assert np.abs(np.linalg.eigvals(M)).max() == pytest.approx(r.rho, abs=1e-4)


def test_a_plant_of_order_two_or_less_can_be_deadbeat(verdicts):
    """n <= 2: the three numbers move every coefficient of q, so q = lambda^(n+1) is reachable;
    the double integrator's: s_vu = -2, s_zm = -3, s_vm s_zu = 8 (solve the paper's cubic
    lambda^3 - (s_vu + 2) lambda^2 + (2 s_vu - s_zm + 1) lambda + ... = lambda^3)."""
    for v in verdicts.values():
        assert v.reach.deadbeat == (v.reach.roots.size <= 3)
    r = verdicts["double integrator"].reach
    assert (r.s_zm, r.s_vu, r.k) == pytest.approx((-3, -2, 8), abs=1e-12)
    assert np.allclose(theory.cubic_coefficients(r.overlaps), [1, 0, 0, 0], atol=1e-12)


@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_triple_integrator_q_lacks_its_w2_term(dt):
    """The proof's step: in w = lambda - 1, q's coefficient of w^2 is 0 for every network."""
    p = LinearPlant.integrator(3, dt=dt)
    q = np.random.default_rng(0).normal(size=(50, 4)) * 3
    c = pt.characteristic_polynomial(q, p)
    shifted = np.array([np.polynomial.polynomial.Polynomial(row[::-1])(
        np.polynomial.polynomial.Polynomial([1, 1])).coef for row in c])  # q(w + 1), low first
    assert np.abs(shifted[:, 2]).max() < 1e-10 * np.abs(shifted).max()


def test_triple_integrator_is_never_stabilized_schur_cohn():
    """Jury/Schur-Cohn on q over a dense grid that holds every Schur-stable q of the family:
    with (c0, c1, c2) = (s_vu, s_zm, s_zm s_vu - k), q = l^4 - (3 + c0) l^3 + 3 (1 + c0) l^2 -
    (1 + 3 c0 + c1) l + (c0 + c2), and roots in the unit disk bound the coefficients by
    binom(4, j): c0 in [-3, 1], c1 + 3 c0 in [-5, 3], c2 + c0 in [-1, 1]. None is stable;
    the same test does find stable double-integrator loops."""
    p = LinearPlant.integrator(3)
    g = np.linspace(0, 1, 48)
    c0, t1, t2 = np.meshgrid(-3 + 4 * g, -5 + 8 * g, -1 + 2 * g, indexing="ij")
    s_vu, s_zm = c0, t1 - 3 * c0
    k = s_zm * s_vu - (t2 - c0)
    q = np.stack([s_zm, k, np.ones_like(k), s_vu], -1).reshape(-1, 4)
    coef = pt.characteristic_polynomial(q, p)
    assert not schur_stable(coef).any()
    assert np.abs(pt.roots(q, p)).max(-1).min() >= 1 - 1e-6
    di = pt.characteristic_polynomial(q, LinearPlant.double_integrator())
    assert 0.001 < schur_stable(di).mean() < 0.5


def test_schur_cohn_agrees_with_roots():
    c = np.random.default_rng(1).normal(size=(4000, 5)) * [1, 0.8, 0.6, 0.4, 0.3]
    rho = np.array([np.abs(np.roots(row)).max() for row in c])
    assert 0.1 < (rho < 1).mean() < 0.9
    assert np.array_equal(schur_stable(c), rho < 1)


def test_triple_integrator_reach_is_one_at_the_do_nothing_controller(verdicts):
    """rho <= 1 needs a triple root at 1 (a Hurwitz-in-w factor has positive coefficients), so
    the minimum, 1, is reached only with s_zm = 0 and s_vm s_zu = 0 (any |s_vu| <= 1)."""
    for name in ("triple integrator", "integrator (k = 4)"):
        v = verdicts[name]
        assert v.reach.rho == pytest.approx(1, abs=1e-7)
        assert abs(v.reach.s_zm) < 1e-8 and abs(v.reach.k) < 1e-8 and abs(v.reach.s_vu) <= 1
        assert not v.stage3_reachable and not v.needs_memory and v.stage1_unstable


def test_lag_plant_reach_is_a_triple_root_at_085(verdicts):
    """The double integrator behind a lag: q's l^2 coefficient is tied to its l^3 one,
    e2 = 2.5 e1 - 4.25 (in the roots' symmetric functions); roots (r, r, r, -r) meet it at
    r = 4.25 / 5 = 0.85, the search's optimum. No sampled network beats it."""
    r = verdicts["double integrator with lag"].reach
    assert r.rho == pytest.approx(0.85, abs=1e-7)  # a double root splits by sqrt(eps)
    q = pt.characteristic_polynomial(r.overlaps, LAG)
    assert np.allclose(q, np.poly([0.85, 0.85, 0.85, -0.85]), atol=1e-12)
    rng = np.random.default_rng(2)
    x = np.array([r.s_zm, r.s_vu, r.k]) + rng.normal(size=(20000, 3)) * [[0.3], [0.1],
                                                                          [0.03]][rng.integers(3)]
    assert st.first_order_radius(LAG, *x.T).min() > 0.85


# the LQR benchmark -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["double integrator", "triple integrator",
                                  "oscillator (zeta = 0.02)", "unstable plant (a = 1.5)"])
@pytest.mark.parametrize("beta,T", [(0.0, 50), (0.5, 10)])
def test_lqr_is_the_riccati_iteration(name, beta, T):
    """Value iteration X <- Q + A'XA - A'XB (R + B'XB)^-1 B'XA from X = Q, and the cost as the
    closed loop's sum from the rows of the box's factor."""
    p = st.survey_plants()[name]
    A, B, _ = p.numpy()
    n = p.n_state
    Q, R = np.eye(n) / n, max(beta * T, 1e-8)
    X = Q.copy()
    for _ in range(3000):
        X = Q + A.T @ X @ A - np.outer(A.T @ X @ B, B @ X @ A) / (R + B @ X @ B)
    K = (B @ X @ A) / (R + B @ X @ B)
    got = st.lqr(p, beta, T)
    assert np.allclose(got.gain, K, rtol=1e-7) and np.allclose(got.riccati, X, rtol=1e-7)
    cost, Acl = 0.0, A - np.outer(B, K)
    for x in p.x0_factor().numpy():
        for _ in range(400):
            cost += x @ Q @ x + R * (K @ x) ** 2
            x = Acl @ x
    assert got.cost == pytest.approx(cost, rel=1e-8) and got.rho < 1


def test_lqr_of_the_double_integrator_is_the_papers():
    """Q = I / 2 with R is the paper's Q = I with 2 R: the same gain."""
    p = LinearPlant.double_integrator()
    A, B, _ = p.numpy()
    assert np.allclose(st.lqr(p).gain, theory.lqr_gain(A, B, R=2e-8)[0], rtol=1e-9)


# the verdicts ------------------------------------------------------------------------------
def test_verdicts_and_words(verdicts):
    flags = {k: (v.starts_unstable, v.stage1_unstable, v.needs_memory, v.stage3_reachable)
             for k, v in verdicts.items()}
    assert flags["double integrator"] == (True, True, True, True)
    assert flags["triple integrator"] == (True, True, False, False)
    assert flags["unstable plant (a = 1.5)"] == (True, False, False, True)
    assert flags["oscillator (zeta = 0.02)"] == (False, False, False, True)
    assert flags["double integrator with lag"] == (True, True, True, True)
    assert "all three of the paper's stages" in verdicts["double integrator"].words()
    assert "out of reach" in verdicts["triple integrator"].words()
    assert "memory is not needed" in verdicts["unstable plant (a = 1.5)"].words()
    assert "need not occur" in verdicts["oscillator (zeta = 0.02)"].words()
    table = st.survey_markdown(verdicts.values()).splitlines()
    assert len(table) == 2 + len(verdicts) and "| triple integrator | 3 | 1.000 | no |" in \
        table[4]


def test_bad_arguments_are_named():
    p = LinearPlant.double_integrator()
    with pytest.raises(ValueError, match="s_zm_range must have lo < hi"):
        st.stage1(p, (1.0, -1.0))
    with pytest.raises(TypeError, match="s_zm_range must be a pair"):
        st.stage1(p, 3.0)
    with pytest.raises(ValueError, match="n_grid must be"):
        st.first_order_reach(p, n_grid=1)
    with pytest.raises(ValueError, match="beta must be"):
        st.lqr(p, beta=-1.0)
    with pytest.raises(TypeError, match="plant must be"):
        st.allowed_stages("double integrator")
    with pytest.raises(ValueError, match="plants must be a non-empty dict"):
        st.survey({})


# the explorer ------------------------------------------------------------------------------
def test_plant_explorer_builds_follows_its_sliders_and_has_frames():
    from test_widgets import check_static

    from closedloop.explorers.ch6 import plant_explorer

    ex = plant_explorer(horizon=20, frames={"integrator": (2, 3), "unstable": (1.5,)})
    labels = check_static(ex)
    assert labels == ["integrator, k = 2", "integrator, k = 3", "unstable, a = 1.5"]
    assert ex.static_html().count('class="cl-frame"') == 3
    values = dict(ex.values, family="integrator", order=2, s_vu=0.0, k=0.0)
    ex.draw(**dict(values, s_zm=-0.2))  # (draw alone: ex.set renders once per control moved)
    rings = ex.artists["stage1"].get_offsets()
    assert np.allclose(np.sort(rings[:, 1]), [-np.sqrt(0.2), np.sqrt(0.2)])  # 1 +/- sqrt(s_zm)
    ex.draw(**dict(values, s_zm=-3.0, s_vu=-2.0, k=8.0))  # the double integrator's deadbeat
    assert np.abs(ex.artists["roots"].get_offsets()).max() < 1e-4
    assert ex.artists["rollout"].get_ydata()[-1] < 1e-12
    assert "deadbeat" in ex.artists["reach"].get_text()
    png = ex.image.value
    ex.set(order=3)
    assert "stage 3 out of reach" in ex.artists["reach"].get_text() and ex.image.value != png
    with pytest.raises(ValueError, match="frames has family"):
        plant_explorer(frames={"pendulum": (1,)})


def test_figures(verdicts):
    import matplotlib.pyplot as plt

    from closedloop.figures import ch6_theory

    plants = st.survey_plants()
    fig = ch6_theory.stage1_radius(plants, np.linspace(-1, 1, 21))
    lines = [ln for ln in fig.axes[0].lines if ln.get_label() in plants]
    assert len(lines) == len(plants)
    assert np.allclose(lines[1].get_ydata(), st.static_radius(plants["double integrator"],
                                                              np.linspace(-1, 1, 21)))
    fig2 = ch6_theory.reach(verdicts.values())
    widths = [b.get_width() for b in fig2.axes[0].patches]
    assert len(widths) == 2 * len(verdicts) and max(widths) == pytest.approx(1, abs=1e-6)
    with pytest.raises(ValueError, match="plants must be"):
        ch6_theory.stage1_radius({})
    plt.close(fig), plt.close(fig2)
