"""Chapter 3: the perturbative theory of stage 2, the alpha-model, the reduced stage-3 model,
per-member horizons and control costs, and sweeps. Checked against independent math: the
eigenvalues of P_eff, matrix powers, finite differences and separate runs."""

import numpy as np
import pytest
import torch

from closedloop import DoubleIntegrator, RankOneAgent, UniformBox, coupled, reduced, theory
from closedloop.agents import OverlapAgent
from closedloop.stages import Stages
from closedloop.streams import Stream
from closedloop.training import sweep, train_closed_loop


# the overlaps of Chapter 3's reference network at epoch 11, five epochs into stage 2 (seed 3,
# the authors' stream): the start of the alpha-model and of the horizon scan
STAGE2_START = np.array([-0.01938756223888583, 0.02292991236261326, 0.07662706218393416,
                         -0.21323154212324408])


def eig_eff(q, env):
    """Nonzero eigenvalues of P_eff (independent of the cubic): (..., 3)."""
    ev = torch.linalg.eigvals(coupled.effective_matrix(torch.as_tensor(q), env)).numpy()
    idx = np.argsort(np.abs(ev), -1)[..., 1:]  # drop the structural zero
    return np.take_along_axis(ev, idx, -1)


def test_perturbative_lambda3_converges_to_the_exact_root(env):
    base = np.array([-0.05, 0.3, 0.2, 0.15])  # (s_zm, s_zu, s_vm, s_vu)
    errors = []
    for eps in (0.1, 0.05, 0.025, 0.0125):
        q = base * np.array([1, eps, eps, 1])  # s_vm s_zu ~ eps^2
        exact = eig_eff(q, env)
        lam3 = exact[np.argmin(np.abs(exact - q[3]))].real
        errors.append(abs(theory.perturbative_lambda3(q) - lam3))
    errors = np.array(errors)
    assert np.all(np.diff(errors) < 0)
    # first order in p = s_vm s_zu ~ eps^2: the error is O(p^2) = O(eps^4)
    assert np.allclose(errors[:-1] / errors[1:], 16, rtol=0.15)
    q0 = base * np.array([1, 0, 0, 1])
    assert theory.perturbative_lambda3(q0) == pytest.approx(q0[3])


def test_vieta_gives_the_product_of_the_exact_complex_pair(env):
    rng = np.random.default_rng(0)
    q = rng.normal(0, 0.1, (200, 4)) + np.array([-0.3, 0, 0, 0])
    ev = eig_eff(q, env)
    complex_pair = np.abs(ev.imag).max(-1) > 1e-6
    assert complex_pair.sum() > 100
    for qi, e in zip(q[complex_pair], ev[complex_pair]):
        lam3 = e[np.argmin(np.abs(e.imag))].real
        pair = e[np.abs(e.imag) > 1e-9]
        assert theory.pair_modulus_sq(qi, lam3) == pytest.approx(np.prod(pair).real, abs=1e-10)
        assert theory.pair_growth(qi) == pytest.approx(np.abs(pair[0]) ** 2, abs=1e-10)


def test_pair_growth_is_the_larger_real_root_for_a_real_pair(env):
    q = np.array([0.05, 0.02, 0.01, 0.2])  # positive feedback: the pair is real, one above 1
    e = eig_eff(q, env)
    assert np.abs(e.imag).max() < 1e-12
    lam3 = theory.exact_lambda3(q)
    pair = np.sort(np.delete(e.real, np.argmin(np.abs(e.real - lam3))))
    assert pair[1] > 1 > pair[0] * pair[1]  # a product below 1 hides the growth
    assert theory.pair_growth(q) == pytest.approx(pair[1] ** 2, rel=1e-12)


def test_labelled_roots_order(env):
    q = np.array([[-0.2, 0.1, 0.1, 0.3], [0.1, 0.01, 0.02, -0.4]])
    r = theory.labelled_roots(q)
    for qi, ri in zip(q, r):
        assert np.allclose(np.sort_complex(ri), np.sort_complex(eig_eff(qi, env)))
        assert ri[0].imag >= 0
    assert abs(r[0, 2] - theory.perturbative_lambda3(q[0])) < 0.05


def test_short_term_loss_is_the_state_block_of_p_eff_cubed(env):
    q = torch.randn(50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    block = torch.linalg.matrix_power(coupled.effective_matrix(q, env), 3)[..., :2, :2]
    assert torch.allclose(theory.short_term_loss(q), (block ** 2).sum((-1, -2)), atol=1e-12)


@pytest.mark.parametrize("q", [[-0.05, -0.2, -0.1, 0.2], [-0.3, -0.5, -0.4, 0.3],
                               [0.04, -0.03, 0.01, 0.1]])
def test_long_term_loss_gradient_matches_finite_differences(q):
    q = torch.tensor(q, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: theory.long_term_loss(x, 7), (q,), eps=1e-7,
                                    atol=1e-5)


def test_batched_alpha_model_equals_one_alpha_at_a_time():
    q0 = [-0.02, -0.03, 0.004, 0.12]
    alphas = [0.0, 0.3, 0.7, 1.0]
    batched = reduced.alpha_model(q0, alphas, lr=1e-3, steps=60)
    for k, a in enumerate(alphas):
        single = reduced.alpha_model(q0, [a], lr=1e-3, steps=60)
        np.testing.assert_allclose(batched.overlaps[:, k], single.overlaps[:, 0], rtol=0,
                                   atol=1e-14)
        np.testing.assert_allclose(batched.lambda1[:, k], single.lambda1[:, 0], atol=1e-12)


def test_alpha_model_descends_its_loss_and_rejects_bad_alpha():
    paths = reduced.alpha_model([-0.1, -0.2, -0.1, 0.2], [0.0, 0.5], lr=1e-3, steps=20,
                                clip=None)
    assert np.all(np.diff(paths.loss, axis=0) < 0)
    for bad in ([1.5], [-0.1], [], [[0.5]]):
        with pytest.raises(ValueError, match="alphas"):
            reduced.alpha_model([0, 0, 0, 0], bad)


def test_reduced_and_full_model_have_the_same_loss_at_the_start(env):
    full = RankOneAgent(N=30, seed=3)  # g = 0: W = u v^T only; m is not trained
    assert "m" not in full.trainable
    for metric in (True, False):
        red = OverlapAgent.of(full, metric=metric)
        kw = dict(epochs=0, T=20, batch=16, seed=5)
        hf = train_closed_loop(full.detached(), env, **kw)
        hr = train_closed_loop(red, env, **kw)
        assert hr.loss[0] == pytest.approx(hf.loss[0], rel=1e-12)
        assert hr.expected_loss[0] == pytest.approx(hf.expected_loss[0], rel=1e-12)
        np.testing.assert_allclose(hr.eig_P[0], hf.eig_P[0], atol=1e-10)


def test_the_metric_reproduces_the_full_step_to_first_order(env):
    full = RankOneAgent(N=40, seed=4, s_zm0=-0.2)  # a moderate loss: small steps
    q0 = full.overlaps().detach().numpy()
    errors = []
    for lr in (1e-3, 5e-4):
        kw = dict(epochs=1, T=5, mode="exact", lr=lr, clip=None)
        hf = train_closed_loop(full.detached(), env, **kw)
        hr = train_closed_loop(OverlapAgent.of(full), env, **kw)
        hp = train_closed_loop(OverlapAgent.of(full, metric=False), env, **kw)
        dq_full, dq_red = hf.overlaps[1] - q0, hr.overlaps[1] - q0
        errors.append(np.abs(dq_red - dq_full).max())
        # without the metric the first step is wrong already at first order
        assert np.abs(hp.overlaps[1] - q0 - dq_full).max() > 10 * errors[-1]
        # the gradient norms agree exactly: |grad_params|^2 = g^T G g
        assert hr.grad_norm[0] == pytest.approx(hf.grad_norm[0], rel=1e-10)
    assert errors[0] / errors[1] == pytest.approx(4, rel=0.05)  # O(lr^2)


def test_overlap_agent_checks_its_metric():
    with pytest.raises(ValueError, match="positive definite"):
        OverlapAgent([0.1, 0, 0, 0], metric=-torch.eye(4))
    with pytest.raises(ValueError, match="overlaps"):
        OverlapAgent([0.1, 0, 0])


@pytest.mark.parametrize("setting, values", [("T", [7, 20, 13]), ("beta", [0.0, 0.3, 2.0])])
def test_per_member_settings_equal_separate_runs(env, setting, values):
    agent = RankOneAgent(N=12, seed=6)
    common = dict(epochs=4, lr=1e-2, batch=8, seed=1, T=11, beta=0.1)
    common.pop(setting)
    h = sweep(setting, values, agent, env, **common)
    assert h.config["sweep"] == {"setting": setting, "values": values}
    for k, v in enumerate(values):
        single = train_closed_loop(agent.detached(), env, **{setting: v}, **common)
        np.testing.assert_allclose(h.member(k).loss, single.loss, rtol=1e-12)
        np.testing.assert_allclose(h.member(k).expected_loss, single.expected_loss, rtol=1e-12)
        np.testing.assert_allclose(h.member(k).overlaps, single.overlaps, rtol=1e-10,
                                   atol=1e-14)


def test_sweep_over_networks_and_over_other_settings(env):
    make = lambda s: RankOneAgent(N=10, seed=s)
    h = sweep("seed", [0, 1], make, env, epochs=3, batch=4)
    single = train_closed_loop(make(1), env, epochs=3, batch=4)
    np.testing.assert_allclose(h.member(1).loss, single.loss, rtol=1e-12)
    h_lr = sweep("lr", [1e-3, 1e-2], make(0), env, epochs=3, batch=4, progress=False)
    single = train_closed_loop(make(0), env, epochs=3, batch=4, lr=1e-2)
    np.testing.assert_allclose(h_lr.member(1).loss, single.loss, rtol=1e-12)
    with pytest.raises(ValueError, match="setting"):
        sweep("colour", [1, 2], make(0), env, epochs=1)
    with pytest.raises(ValueError, match="T per member|ensemble's shape"):
        train_closed_loop(make(0), env, epochs=1, T=[5, 6])


def test_matched_eig_gap():
    a = np.array([0.5 + 0.2j, 0.5 - 0.2j, 0.3, 0.0])
    assert reduced.matched_eig_gap(a, a[::-1]) == 0
    b = a + np.array([0.01, 0, 0.03, 0])
    assert reduced.matched_eig_gap(a, b[[2, 0, 1, 3]]) == pytest.approx(0.03)


@pytest.mark.parametrize("call, match", [
    (lambda: theory.perturbative_lambda3([np.nan, 0, 0, 0]), "overlaps must be finite"),
    (lambda: theory.pair_growth(torch.tensor([0.1, np.inf, 0, 0])), "NaN or inf"),
    (lambda: theory.short_term_loss([0.1, 0.2, 0.3]), r"shape \(\.\.\., 4\)"),
    (lambda: theory.long_term_loss([0.1, 0, 0, 0], T_prime=0), "T_prime"),
    (lambda: reduced.alpha_model([0.1, 0, 0, np.nan], [0.5]), "overlaps0"),
    (lambda: reduced.alpha_model([-0.1, -0.2, -0.1, 0.2], [0.5], lr=0), "lr"),
    (lambda: reduced.alpha_model([-0.5, -0.2, -0.1, 0.2], [1.0], lr=1e3, steps=50, clip=None,
                                 T_prime=50), "diverged at step"),
    (lambda: OverlapAgent([0.1, np.nan, 0, 0]), "overlaps"),
    (lambda: OverlapAgent([0.1, 0, 0, 0], metric=torch.full((4, 4), np.nan)), "metric"),
    (lambda: OverlapAgent.of(OverlapAgent([0.1, 0, 0, 0])), "RankOneAgent"),
    (lambda: train_closed_loop(RankOneAgent(N=4).stack([RankOneAgent(N=4)] * 2),
                               epochs=1, T=[3, 0]), r"T\[1\]"),
    (lambda: train_closed_loop(RankOneAgent(N=4).stack([RankOneAgent(N=4)] * 2),
                               epochs=1, beta=[0.1, -1.0]), r"beta\[1\]"),
    (lambda: sweep("T", [], RankOneAgent(N=4), epochs=1), "values"),
    (lambda: sweep("T", [3], "not an agent", epochs=1), "agent"),
    (lambda: reduced.matched_eig_gap([1, 0.5], [1, 0.5, 0.2]), "nonzero"),
    (lambda: reduced.alpha_model([-0.1, 0, 0, 0.2], [0.5, 0.6], T_prime=[10]), "T_prime"),
    (lambda: reduced.alpha_model([-0.1, 0, 0, 0.2], [0.5, 0.6], T_prime=[10, 0]), "T_prime"),
    (lambda: reduced.returns_inside([1.1]), "modulus"),
    (lambda: reduced.bisect_edges(lambda x, b: x > 0.5, [[0, 1]], [False], tol=0), "tol"),
    (lambda: reduced.bisect_edges(lambda x, b: x > 0.5, [[0, 1]], [False], tol=0.1,
                                  points=0), "points"),
    (lambda: reduced.alpha_bands(STAGE2_START, [10], steps=0), "steps"),
    (lambda: reduced.alpha_bands(STAGE2_START, [10], spacing=0.7), "spacing"),
    (lambda: reduced.alpha_bands(STAGE2_START, [0]), "T_primes"),
    (lambda: reduced.balance_alpha([0.1, 0.2, 0.3], 10), "shape"),
    (lambda: reduced.horizon_scan(RankOneAgent(N=4), DoubleIntegrator(), T_max=0, epochs=1),
     "T_max"),
    (lambda: reduced.HorizonScan(np.arange(1, 3), np.ones((3, 2)), 0).myopic(5), "epochs"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_the_compressed_network_trains_exactly_like_the_full_one(env):
    full = RankOneAgent(N=40, seed=8, batch_shape=(2,))
    small = full.compressed()
    assert small.N == 4 and small.batch_shape == (2,)
    torch.testing.assert_close(small.overlaps(), full.overlaps(), rtol=0, atol=1e-14)
    kw = dict(epochs=30, T=20, batch=16, seed=3, beta=0.1)
    hf = train_closed_loop(full, env, **kw)
    hs = train_closed_loop(small, env, **kw)
    np.testing.assert_allclose(hs.loss, hf.loss, rtol=1e-10)
    np.testing.assert_allclose(hs.overlaps, hf.overlaps, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hs.grad_norm, hf.grad_norm, rtol=1e-10)
    # the four overlaps alone (identity metric) do not: their steps differ at first order
    hr = train_closed_loop(OverlapAgent(hf.overlaps[0]), env, **kw)
    assert np.abs(hr.overlaps[-1] - hf.overlaps[-1]).max() > 1e-4
    with pytest.raises(ValueError, match="m fixed"):
        RankOneAgent(N=8, train_m=True).compressed()


def complex_trap(q, env):
    """Overlaps (K, 4) whose cubic root nearest the perturbative lambda_3 is one of a complex
    pair, from the eigenvalues of P_eff (not from the cubic)."""
    ev = eig_eff(q, env)
    nearest = np.take_along_axis(
        ev, np.abs(ev - theory.perturbative_lambda3(q)[..., None]).argmin(-1)[..., None], -1)
    return np.abs(nearest[..., 0].imag) > 1e-9


def check_real_lambda3(q, env):
    ev = eig_eff(q, env)
    is_real = np.abs(ev.imag) < 1e-12
    assert np.all(is_real.sum(-1) == 1)  # one real root and a complex pair
    real = ev.real[is_real]
    pair = ev[~is_real].reshape(-1, 2)
    roots = theory.labelled_roots(q)
    np.testing.assert_array_equal(roots[:, 2].imag, 0)
    np.testing.assert_allclose(roots[:, 2].real, real, rtol=0, atol=1e-10)
    np.testing.assert_allclose(theory.exact_lambda3(q), real, rtol=0, atol=1e-10)
    qt = torch.tensor(q)
    np.testing.assert_allclose(theory.exact_lambda3(qt).numpy(), real, rtol=0, atol=1e-10)
    growth = np.abs(pair[:, 0]) ** 2
    np.testing.assert_allclose(theory.pair_growth(q), growth, rtol=1e-9)
    np.testing.assert_allclose(theory.pair_growth(qt).numpy(), growth, rtol=1e-9)


def test_lambda3_is_the_real_root_late_in_stage_3_of_a_real_run(env):
    """Late in stage 3 the perturbative lambda_3 lies nearer one of the complex pair than the
    real root (found in the seed-2 run of the authors' setup): lambda_3, exact_lambda3 and
    pair_growth must still use the real root, and numpy and torch agree."""
    h = train_closed_loop(RankOneAgent(N=100, seed=2), env, epochs=1000, T=50, seed=2,
                          eig_every=0)
    q = h.overlaps[complex_trap(h.overlaps, env)]
    assert len(q) > 10  # the trap is real: many late epochs of this run
    check_real_lambda3(q, env)


def test_lambda3_is_the_real_root_for_constructed_overlaps(env):
    rng = np.random.default_rng(0)
    q = rng.uniform([-1.2, -2.5, -1.0, -0.6], [-0.3, 2.5, 1.0, 0.2], (4000, 4))
    trap = complex_trap(q, env)
    assert trap.sum() > 20
    check_real_lambda3(q[trap], env)
    # gradients through the real root: the implicit-function gradient of exact_lambda3, and
    # pair_growth's, against finite differences
    for qi in q[trap][:3]:
        x = torch.tensor(qi, requires_grad=True)
        assert torch.autograd.gradcheck(theory.exact_lambda3, (x,), eps=1e-7, atol=1e-6)
        assert torch.autograd.gradcheck(theory.pair_growth, (x,), eps=1e-7, atol=1e-6)


def test_lambda3_with_three_real_roots_is_the_one_nearest_the_perturbative_value(env):
    q = np.array([[0.05, 0.02, 0.01, 0.2], [0.1, 0.01, 0.02, -0.4]])  # positive feedback
    ev = eig_eff(q, env)
    assert np.abs(ev.imag).max() < 1e-12
    near = ev.real[np.arange(2), np.abs(ev.real - theory.perturbative_lambda3(q)[:, None])
                   .argmin(-1)]
    np.testing.assert_allclose(theory.labelled_roots(q)[:, 2], near, atol=1e-12)


@pytest.mark.parametrize("found, epochs, filled", [
    ((18, 119), 200, (18, 119)),    # both reached: kept
    ((None, None), 200, (0, 100)),  # neither: stage 1 ends at 0, stage 3 starts half-way
    ((150, None), 200, (150, 150)),  # stage 1 ends after half-way: stage 3 starts there
    ((None, 60), 201, (0, 60)),
])
def test_fill_stages_gives_every_stage_a_start(found, epochs, filled):
    out = reduced.fill_stages(Stages(*found, epochs), epochs)
    assert (out.stage1_end, out.stabilization, out.last_epoch) == (*filled, epochs)


def test_reference_run_epochs_from_its_stages():
    run = reduced.ReferenceRun(None, None, Stages(18, 119, 200), Stages(18, 119, 200), 200)
    assert (run.stage2_epoch(5), run.stage2_epoch(0), run.stage2_epoch(500)) == (23, 18, 119)
    assert run.stage3_epochs == 81
    late = reduced.ReferenceRun(None, None, Stages(18, None, 200), Stages(18, 200, 200), 200)
    assert late.stage3_epochs == 1  # stage 3 never ran: one epoch to compare


def test_a_short_reference_run_says_where_stage_3_is_taken_to_start(env, capsys):
    run = reduced.reference_run(env, N=20, seed=1, epochs=6, T=10, batch=8, stream="package")
    assert run.detected.stabilization is None  # the authors' start is unstable
    assert capsys.readouterr().out == ("no stabilization within 6 epochs: stage 3 starts at "
                                       "epoch 3\n")
    assert run.stages.stabilization == 3 and run.stages.stage1_end is not None
    # its network at an epoch and lambda_1 from there to stabilization, from the history
    q2 = run.agent_at(2).overlaps().detach().numpy()
    np.testing.assert_allclose(q2, run.history.overlaps[2], rtol=1e-12)
    path = run.lambda1_path(1)
    assert path.shape == (3,) and np.all(path.imag >= 0)
    for lam, q in zip(path, run.history.overlaps[1:4]):
        assert np.min(np.abs(eig_eff(q, env) - lam)) < 1e-10
    # a run that stabilizes prints nothing
    stable = reduced.reference_run(env, N=20, seed=1, epochs=200, T=10, batch=8,
                                   stream="package")
    assert stable.detected.stabilization is not None and stable.stages == stable.detected
    assert capsys.readouterr().out == ""


def test_exact_rerun_trains_the_same_network_on_the_exact_loss_past_stabilization(env):
    kw = dict(T=10, lr=1e-2, clip=1.0)
    h = reduced.exact_rerun(env, Stages(0, 3, 400), N=20, seed=2, epochs=400, **kw)
    ref = train_closed_loop(RankOneAgent(N=20, seed=Stream(2, "authors")), env, epochs=56,
                            mode="exact", **kw)
    np.testing.assert_array_equal(h.expected_loss, ref.expected_loss)  # 2 * 3 + 50 epochs
    short = reduced.exact_rerun(env, Stages(0, 3, 400), N=20, seed=2, epochs=4, **kw)
    np.testing.assert_array_equal(short.expected_loss, ref.expected_loss[:len(short.epoch)])
    assert len(short.epoch) < len(h.epoch)


# -- the band of alpha that returns, and the myopic horizon (Chapter 3, Figs. 4d-e) -----------
@pytest.mark.parametrize("path, back", [
    ([1.01, 1.02, 0.99, 0.98], True),         # out, then in once: returns
    ([0.99, 1.01, 0.98], True),                # starts inside, goes out, comes back
    ([1.01, 1.02, 1.03], False),               # never comes back
    ([0.99, 0.98, 0.97], False),               # never was outside
    ([1.01, 0.99, 1.01, 0.99], False),         # chatter: inside at the end, but crossed twice
    ([1.01, 0.99, 1.01], False),               # chatter ending outside
    ([1.0, 0.999], True),                      # 1 counts as outside
])
def test_returns_inside_on_hand_built_paths(path, back):
    assert reduced.returns_inside(path) == back
    both = reduced.returns_inside(np.c_[path, path])  # (S+1, 2): one answer per column
    assert both.tolist() == [back, back]


BAND = (0.3141, 0.5926)


def in_band(x, b=None):
    return (x >= BAND[0]) & (x <= BAND[1])


@pytest.mark.parametrize("points, calls", [(9, 1), (1, 4), (3, 2)])
def test_bisect_edges_finds_the_edges_of_a_known_band(points, calls):
    seen = []

    def predicate(x, b):
        seen.append(len(x))
        return in_band(x)

    br = reduced.bisect_edges(predicate, [[0.31, 0.32], [0.59, 0.60]], [False, True], tol=1e-3,
                              points=points)
    assert np.all(br[:, 1] - br[:, 0] <= 1e-3 * (1 + 1e-9))
    assert br[0, 0] < BAND[0] <= br[0, 1] and br[1, 0] <= BAND[1] < br[1, 1]
    assert len(seen) == calls  # one batched call a round: 10, 2 or 4 pieces per round


def test_bisect_edges_keeps_the_outer_change_when_a_bracket_hides_more():
    # True on [0.3141, 0.5926] and on the island [0.305, 0.307] below it: the lower bracket
    # [0.30, 0.32] holds three changes; the outermost (the island's lower edge) is kept
    def predicate(x, b):
        return in_band(x) | ((x >= 0.305) & (x <= 0.307))

    br = reduced.bisect_edges(predicate, [[0.30, 0.32], [0.59, 0.60]], [False, True], tol=1e-3)
    assert br[0, 0] < 0.305 <= br[0, 1]
    assert br[1, 0] <= BAND[1] < br[1, 1]


def finite_difference_alpha(q, T_prime, h=1e-6):
    """alpha* from L_0 written out (paper s.5) and L_inf = (|lambda_1|^2)^T' from numpy's roots,
    differentiated along s_zm by central differences."""
    def L0(q):
        s_zm, s_zu, s_vm, _ = q
        k = s_vm * s_zu
        return (s_zm + 1) ** 2 + (s_zm + 3) ** 2 + (k + 2 * s_zm) ** 2 + (k + 3 * s_zm + 1) ** 2

    def Linf(q):
        s_zm, s_zu, s_vm, s_vu = q
        r = np.roots([1, -(s_vu + 2), 2 * s_vu - s_zm + 1, s_vu * s_zm - s_vu - s_vm * s_zu])
        return np.abs(r[np.argmax(r.imag)]) ** (2 * T_prime)

    e = np.array([h, 0, 0, 0])
    g0, gi = ((f(q + e) - f(q - e)) / (2 * h) for f in (L0, Linf))
    return g0 / (g0 - gi)


@pytest.mark.parametrize("T_prime", [5, 10, 20])
def test_balance_alpha_is_where_the_first_step_leaves_s_zm(T_prime):
    a = reduced.balance_alpha(STAGE2_START, T_prime)
    assert a == pytest.approx(finite_difference_alpha(STAGE2_START, T_prime), rel=1e-6)
    step = reduced.alpha_model(STAGE2_START, [a - 0.05, a, a + 0.05], T_prime=T_prime,
                               lr=1e-3, steps=1).overlaps
    ds = step[1, :, 0] - step[0, :, 0]
    assert ds[0] < 0 < ds[2] and abs(ds[1]) < 1e-12  # s_zm: down below alpha*, up above


def test_balance_alpha_is_nan_when_both_terms_pull_the_same_way():
    q = [0.05, 0.0, 0.0, 0.2]  # positive feedback: both terms want s_zm smaller
    assert np.isnan(reduced.balance_alpha(q, 10))


def test_alpha_model_with_one_horizon_per_member_equals_separate_runs():
    alphas, T = [0.2, 0.5, 0.5, 0.9], [5, 10, 20, 10]
    mixed = reduced.alpha_model(STAGE2_START, alphas, T_prime=T, steps=40)
    assert mixed.T_prime.tolist() == T
    for k, (a, t) in enumerate(zip(alphas, T)):
        one = reduced.alpha_model(STAGE2_START, [a], T_prime=t, steps=40)
        np.testing.assert_allclose(mixed.overlaps[:, k], one.overlaps[:, 0], rtol=0, atol=1e-14)
    picked = mixed.select(10, [0.9, 0.5])
    assert picked.alpha.tolist() == [0.9, 0.5] and picked.T_prime.tolist() == [10, 10]
    np.testing.assert_array_equal(picked.lambda1, mixed.lambda1[:, [3, 1]])
    with pytest.raises(ValueError, match="T_prime=15"):
        mixed.select(15, [0.5])


def test_alpha_bands_agree_with_a_fine_grid_on_which_the_predicate_is_monotone():
    """The band at T' = 10 after 200 steps from the reference network's stage-2 start: on a
    grid of spacing 0.001 the returning alphas form one run (the predicate changes once on
    either side of the band, so bisection is honest), and the bisected edges lie within tol of
    that run's ends; the band after fewer steps read off the grid is the band of a shorter
    descent."""
    fine = np.round(np.arange(0.0, 1.0005, 0.001), 3)
    back = reduced.returns_inside(np.abs(reduced.alpha_model(
        STAGE2_START, fine, T_prime=10, steps=200).lambda1))
    assert np.sum(np.diff(back.astype(int)) != 0) == 2  # one run, both edges inside (0, 1)
    lo, hi = fine[back][[0, -1]]
    bands = reduced.alpha_bands(STAGE2_START, [10, 20], steps=200, tol=1e-3)
    k = bands.index(10)
    assert abs(bands.lo[k] - (lo - 0.0005)) <= 0.001 and abs(bands.hi[k] - (hi + 0.0005)) <= 0.001
    assert bands.runs.tolist() == [1, 1] and bands.lo[1] < bands.lo[0] < bands.hi[0] < 0.6
    assert bands.hi[1] < bands.hi[0]  # the longer horizon's band lies lower
    alone = reduced.alpha_bands(STAGE2_START, [20], steps=200, tol=1e-3)  # T' = 20 by itself
    assert (alone.lo[0], alone.hi[0]) == (bands.lo[1], bands.hi[1])
    coarse = bands.grid.select(10, np.round(np.linspace(0, 1, 101), 2))
    short = reduced.alpha_model(STAGE2_START, coarse.alpha, T_prime=10, steps=50)
    a = coarse.alpha[reduced.returns_inside(np.abs(short.lambda1))]
    assert bands.grid_edges(10, 50) == (a.min(), a.max())
    assert bands.balance[0] == pytest.approx(reduced.balance_alpha(STAGE2_START, 10))


def test_alpha_bands_without_a_band_and_with_one_reaching_the_end():
    # one step from just outside: nothing is inside yet
    none = reduced.alpha_bands(STAGE2_START, [10], steps=1, spacing=0.5)
    assert np.isnan(none.lo[0]) and np.isnan(none.hi[0]) and none.runs.tolist() == [0]
    assert all(np.isnan(none.grid_edges(10, 1)))
    with pytest.raises(ValueError, match="T_prime must be one of"):
        none.index(5)
    # a pair far from the real axis (|lambda_1| = 1.07, Im 0.48) with the RNN's recurrence
    # already strong: every large alpha pulls it straight in, and the band reaches alpha = 1
    end = reduced.alpha_bands([-0.3, 0.3, 0.3, 0.0], [10], steps=100, spacing=0.1)
    assert end.hi[0] == 1.0 and 0.4 < end.lo[0] < 0.5 and end.runs.tolist() == [1]


def lambda1_by_eig(history, env):
    """|lambda_1| of every record from the eigenvalues of P_eff (independent of the cubic):
    the member of the complex pair with Im > 0."""
    ev = eig_eff(history.overlaps, env)
    top = np.take_along_axis(ev, np.argmax(ev.imag, -1)[..., None], -1)[..., 0]
    assert np.all(top.imag > 0)  # the pair stays complex on these runs
    return np.abs(top)


def test_horizon_scan_finds_the_longest_episode_that_never_returns():
    """Copies of the reference network at epoch 11, 100 epochs each: T = 10 stays outside the
    unit circle, T = 11 comes back (separate runs, eigenvalues of P_eff)."""
    env = DoubleIntegrator(UniformBox(2.0))
    st = Stream(3, "authors")
    agent = RankOneAgent(N=100, seed=st, dtype=env.dtype)
    train_closed_loop(agent, env, epochs=11, T=50, seed=st, lr=1e-2, batch=100, clip=1.0)
    np.testing.assert_allclose(agent.overlaps().detach().numpy(), STAGE2_START, atol=1e-15)
    scan = reduced.horizon_scan(agent, env, T_max=12, epochs=100, seed=3)
    assert scan.modulus.shape == (101, 12) and scan.T.tolist() == list(range(1, 13))
    separate = {T: lambda1_by_eig(train_closed_loop(agent.detached(), env, epochs=100, T=T,
                                                    seed=3), env) for T in (10, 11)}
    assert separate[10].min() >= 1 > separate[11].min()
    np.testing.assert_allclose(scan.modulus[:, [9, 10]], np.c_[separate[10], separate[11]],
                               atol=1e-9)
    assert scan.myopic() == 10 and scan.myopic(50) == 12  # all of them stay out 50 epochs
    assert scan.fan([20, 5]) == [5, 10, 20]
