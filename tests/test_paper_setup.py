"""Chapters 2 and 3 in the authors' setup (shared/paper.md section 9), against plain loops
written here: the loss window x_0..x_{T-1} and the update at epoch 0, the uniform initial
draws and the prescribed-s_zm(0) construction, the paper's stage-3 model as a literal 4x4 SGD
loop, the stage-3 comparison, the symmetry (s_zu, s_vm) -> (c s_zu, s_vm / c), the
stabilization epoch of independent runs and the spread of a median of few runs."""

import itertools
import math

import numpy as np
import pytest
import torch

from closedloop import RankOneAgent, coupled, reduced, stages, theory
from closedloop.agents import OverlapAgent, make_generator
from closedloop.streams import Stream
from closedloop.training import train_closed_loop


# -- plain loops ---------------------------------------------------------------------------------
def network_rollout(u, v, z, m, x0, T):
    """States x_0..x_{T+1} and controls u_0..u_T of a rank-one network from one start x0 (2,),
    stepped one neuron vector at a time: h_{t+1} = u (v . h_t) + m y_{t+1}, y_{t+1} the
    position of x_{t+1} = A x_t + B u_t, u_t = z . h_t (h_0 = 0, so u_0 = 0)."""
    x = [x0[0], x0[1]]
    h = torch.zeros_like(m)
    xs, us = [list(x)], []
    for _ in range(T + 1):
        ctrl = (z * h).sum()
        us.append(ctrl)
        x = [x[0] + x[1], x[1] + ctrl]  # A x + B u
        h = u * (v * h).sum() + m * x[0]
        xs.append(list(x))
    return xs, us


def network_cost(u, v, z, m, x0, T, beta=0.0, first=0):
    """Cost per start, 1/(2T) sum_{t=first}^{first+T-1} |x_t|^2 + beta sum_{t=0}^{T-1} u_t^2,
    averaged over the starts x0 (B, 2)."""
    total = 0.0
    for b in range(x0.shape[0]):
        xs, us = network_rollout(u, v, z, m, x0[b], T)
        state = sum(xs[t][0] ** 2 + xs[t][1] ** 2 for t in range(first, first + T)) / (2 * T)
        total = total + state + beta * sum(us[t] ** 2 for t in range(T))
    return total / x0.shape[0]


def overlap_cost(q, x0, T, beta=0.0):
    """The same cost of the four-overlap model: P_eff written out entry by entry."""
    s_zm, s_zu, s_vm, s_vu = q
    total = 0.0
    for b in range(x0.shape[0]):
        x1, x2, a, c = x0[b, 0], x0[b, 1], 0.0 * q[0], 0.0 * q[0]
        cost = 0.0
        for _ in range(T):
            ctrl = s_zm * a + s_zu * c  # u_t = z . h_t, h_t = a m + c u
            cost = cost + (x1 ** 2 + x2 ** 2) / (2 * T) + beta * ctrl ** 2
            x1, x2, a, c = (x1 + x2, x2 + ctrl, x1 + x2, s_vm * a + s_vu * c)
        total = total + cost
    return total / x0.shape[0]


def sgd_step(params, loss, lr, clip):
    """One step of SGD with the gradient clipped at 2-norm ``clip``: (new leaves, norm)."""
    grads = torch.autograd.grad(loss, params)
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    scale = min(1.0, clip / norm) if clip is not None else 1.0
    with torch.no_grad():
        new = [(p - lr * scale * g).requires_grad_(True) for p, g in zip(params, grads)]
    return new, norm


# -- the loss window and the update at epoch 0 ---------------------------------------------------
@pytest.mark.parametrize("convention, first", [(None, 0), ("paper_rank_one", 0), ("book", 1)])
def test_the_default_loss_counts_x0_to_x_T_minus_1(env, convention, first):
    agent = RankOneAgent(N=9, seed=4, s_zm0=-0.3)
    T, batch, beta = 6, 5, 0.2
    h = train_closed_loop(agent.detached(), env, epochs=0, T=T, batch=batch, beta=beta,
                          seed=11, convention=convention)
    x0 = env.sample_x0(batch, make_generator(11))
    t = {k: agent.tensors[k].detach() for k in ("u", "v", "z", "m")}
    expected = network_cost(t["u"], t["v"], t["z"], t["m"], x0, T, beta, first)
    assert h.loss[0] == pytest.approx(float(expected), rel=1e-12)
    # the expected loss over x_0 ~ U(box): E[x0 x0^T] = diag(w_i^2 / 3), so the mean of a
    # quadratic cost is the sum of its values at the unit vectors times w_i^2 / 3
    w2 = np.asarray(env.x0.half_width, dtype=float) ** 2 / 3 * np.ones(2)
    mean = sum(w2[i] * float(network_cost(t["u"], t["v"], t["z"], t["m"], e[None], T, beta,
                                          first))
               for i, e in enumerate(torch.eye(2, dtype=torch.float64)))
    assert h.expected_loss[0] == pytest.approx(mean, rel=1e-12)


def test_the_x0_term_is_what_the_default_window_adds(env):
    """With beta = 0 the two windows differ by (E|x_0|^2 - E|x_T|^2) / (2T)."""
    agent = RankOneAgent(N=7, seed=2)
    T = 8
    with torch.no_grad():
        paper = coupled.expected_loss(agent, env, T).item()
        book = coupled.expected_loss(agent, env, T, window="after_x0").item()
    vecs = [agent.tensors[k].detach() for k in ("u", "v", "z", "m")]
    w2 = np.asarray(env.x0.half_width, dtype=float) ** 2 / 3 * np.ones(2)  # E[x0 x0^T]
    x_T = sum(w2[i] * float(sum(c ** 2 for c in network_rollout(*vecs, e, T)[0][T]))
              for i, e in enumerate(torch.eye(2, dtype=torch.float64)))
    assert paper - book == pytest.approx((w2.sum() - x_T) / (2 * T), rel=1e-10)


def test_epoch_0_updates_with_the_clipped_gradient_of_the_default_loss(env):
    agent = RankOneAgent(N=6, seed=1, s_zm0=0.1)
    T, batch, lr = 5, 4, 0.05
    h = train_closed_loop(agent.detached(), env, epochs=2, T=T, batch=batch, lr=lr, seed=3,
                          snapshot_every=1)
    gen = make_generator(3)
    p = [agent.tensors[k].detach().clone().requires_grad_(True) for k in ("u", "v", "z")]
    m = agent.m.detach()
    for e in range(2):
        np.testing.assert_allclose(h.arrays["params/u"][e], p[0].detach(), rtol=1e-12)
        np.testing.assert_allclose(h.arrays["params/z"][e], p[2].detach(), rtol=1e-12)
        loss = network_cost(p[0], p[1], p[2], m, env.sample_x0(batch, gen), T)
        assert h.loss[e] == pytest.approx(loss.item(), rel=1e-12)
        p, norm = sgd_step(p, loss, lr, 1.0)
        assert h.grad_norm[e] == pytest.approx(norm, rel=1e-12)
    assert not np.allclose(h.arrays["params/z"][1], h.arrays["params/z"][0])


# -- the authors' initial draws ------------------------------------------------------------------
def test_m_and_z_are_uniform_and_u_v_gaussian():
    N, K = 200, 300
    a = RankOneAgent(N=N, seed=0, batch_shape=(K,))
    n = N * K
    bound = 1 / math.sqrt(N)
    for k in ("m", "z"):
        x = a.tensors[k].detach().numpy().ravel()
        assert np.abs(x).max() <= bound
        # U(-a, a): mean 0, E x^2 = a^2/3 = 1/(3N), var(x^2) = 4 a^4 / 45
        assert abs(x.mean()) < 4 * math.sqrt(bound ** 2 / 3 / n)
        assert abs((x ** 2).mean() - 1 / (3 * N)) < 4 * math.sqrt(4 * bound ** 4 / 45 / n)
        # and not a Gaussian of the same variance: E x^4 = a^4/5 (Gaussian: 3 a^4 / 9)
        assert abs((x ** 4).mean() - bound ** 4 / 5) < 0.05 * bound ** 4
    mm = (a.m.detach() ** 2).sum(-1).numpy()
    assert abs(mm.mean() - 1 / 3) < 4 * mm.std() / math.sqrt(K)
    for k in ("u", "v"):  # N(0, 1/N): E x^2 = 1/N, E x^4 = 3/N^2
        x = a.tensors[k].detach().numpy().ravel()
        assert abs((x ** 2).mean() - 1 / N) < 4 * math.sqrt(2 / N ** 2 / n)
        assert abs((x ** 4).mean() - 3 / N ** 2) < 0.1 * 3 / N ** 2
    assert a.trainable == ("u", "v", "z")


@pytest.mark.parametrize("s_zm0", [0.2, -0.15, 0.01])
def test_a_prescribed_overlap_has_an_orthogonal_part_of_a_tenth_of_the_parallel_one(s_zm0):
    a = RankOneAgent(N=50, seed=7, s_zm0=s_zm0)
    m, z = a.m.detach().numpy(), a.z.detach().numpy()
    parallel = (z @ m) / (m @ m) * m
    perp = z - parallel
    assert z @ m == pytest.approx(s_zm0, rel=1e-12)
    assert abs(perp @ m) < 1e-14
    assert np.linalg.norm(perp) / np.linalg.norm(parallel) == pytest.approx(0.1, rel=1e-12)
    assert np.linalg.norm(parallel) == pytest.approx(abs(s_zm0) / np.linalg.norm(m), rel=1e-12)


def test_prescribed_overlaps_per_member():
    s = torch.tensor([-0.2, 0.05, 0.1], dtype=torch.float64)
    a = RankOneAgent(N=30, seed=1, s_zm0=s, batch_shape=(3,))
    m, z = a.m.detach(), a.z.detach()
    mm = (m * m).sum(-1)
    torch.testing.assert_close((z * m).sum(-1), s, rtol=1e-12, atol=0)
    perp = z - ((z * m).sum(-1) / mm)[:, None] * m
    torch.testing.assert_close(perp.norm(dim=-1), 0.1 * s.abs() / mm.sqrt(), rtol=1e-12,
                               atol=0)


# -- the paper's stage-3 model -------------------------------------------------------------------
@pytest.mark.parametrize("beta, clip", [(0.0, 1.0), (0.4, 1.0), (0.0, None)])
def test_the_papers_model_is_plain_sgd_on_the_four_overlaps(env, beta, clip):
    q0 = [-0.6, 0.9, 0.4, -0.2]
    T, batch, lr, epochs = 7, 5, 2e-2, 12
    h = train_closed_loop(OverlapAgent(q0), env, epochs=epochs, T=T, batch=batch, lr=lr,
                          clip=clip, beta=beta, seed=9)
    gen = make_generator(9)
    q = torch.tensor(q0, dtype=torch.float64, requires_grad=True)
    clipped = 0
    for e in range(epochs + 1):
        np.testing.assert_allclose(h.overlaps[e], q.detach().numpy(), rtol=1e-11, atol=1e-14)
        loss = overlap_cost(q, env.sample_x0(batch, gen), T, beta)
        assert h.loss[e] == pytest.approx(loss.item(), rel=1e-11)
        if e < epochs:
            (q,), norm = sgd_step([q], loss, lr, clip)
            assert h.grad_norm[e] == pytest.approx(norm, rel=1e-11)
            clipped += clip is not None and norm > clip
    if clip is not None and beta == 0:
        assert clipped > 0  # the clipping of the 4-vector's gradient was exercised


def test_stage3_runs_are_the_three_models_on_their_batches(env):
    start = RankOneAgent(N=12, seed=5, s_zm0=-0.4)
    kw = dict(epochs=15, T=9, batch=6, lr=1e-2, clip=1.0)
    runs = reduced.stage3_runs(start, env, betas=[0.0, 0.7], seed=4, **kw)
    assert runs.reduced_seed == 5
    full = train_closed_loop(start.detached(), env, beta=0.7, seed=4, **kw)
    np.testing.assert_allclose(runs.full.member(1).loss, full.loss, rtol=1e-12)
    paper = train_closed_loop(OverlapAgent(start.overlaps().detach()), env, beta=0.7, seed=5,
                              **kw)
    np.testing.assert_allclose(runs.paper.member(1).loss, paper.loss, rtol=1e-12)
    frozen = train_closed_loop(OverlapAgent(start.overlaps().detach(),
                                            start.overlap_metric()), env, seed=5, **kw)
    np.testing.assert_allclose(runs.frozen_metric.loss, frozen.loss, rtol=1e-12)
    # the exact reduction trains like the full network; the paper's model does not
    assert runs.loss_gap("compressed").max() < 1e-10
    assert runs.final_eig_gap("compressed") < 1e-10
    gap = np.abs(runs.paper.expected_loss[:, 0] - runs.full.expected_loss[:, 0])
    assert runs.median_gap_pct("paper") == pytest.approx(
        100 * np.median(gap / runs.full.expected_loss[:, 0]))
    # the metric the full network records is its overlap metric at each epoch
    np.testing.assert_allclose(runs.full.metric[0, 0], start.overlap_metric().numpy(),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="member"):
        runs.median_gap_pct("frozen_metric", 1)
    with pytest.raises(ValueError, match="model"):
        runs.loss_gap("colour")
    with pytest.raises(TypeError, match="start"):
        reduced.stage3_runs(OverlapAgent([0.1, 0, 0, 0]), env, epochs=1)


# -- the symmetry --------------------------------------------------------------------------------
@pytest.mark.parametrize("c", [0.5, 3.0, -1.0])
def test_rescaling_s_zu_and_s_vm_changes_no_loss_and_no_eigenvalue(env, c):
    q = np.array([-0.7, 1.3, 0.4, -0.3])
    q2 = theory.rescale_overlaps(q, c)
    assert q2[1] * q2[2] == pytest.approx(q[1] * q[2], rel=1e-14) and q2[1] == c * q[1]
    x0 = env.sample_x0(20, make_generator(0))
    for beta in (0.0, 0.5):
        a = overlap_cost(torch.tensor(q), x0, 15, beta)
        b = overlap_cost(torch.tensor(q2), x0, 15, beta)
        assert float(b) == pytest.approx(float(a), rel=1e-12)
    e1, e2 = (np.sort_complex(np.linalg.eigvals(
        coupled.effective_matrix(torch.tensor(p), env).numpy())) for p in (q, q2))
    np.testing.assert_allclose(e1, e2, atol=1e-12)
    with pytest.raises(ValueError, match="c must be nonzero"):
        theory.rescale_overlaps(q, 0.0)


def test_plain_gradient_descent_on_the_overlaps_keeps_their_balance(env):
    """Gradient flow keeps s_zu^2 - s_vm^2; an SGD step changes it at O(lr^2)."""
    q0 = [-0.6, 0.9, 0.4, -0.2]
    changes = []
    for lr in (2e-4, 1e-4):
        h = train_closed_loop(OverlapAgent(q0), env, epochs=10, T=10, lr=lr, clip=None,
                              mode="exact")
        b = reduced.balance(h.overlaps)
        moved = np.abs(h.overlaps[-1] - h.overlaps[0]).max()
        assert moved > 100 * np.abs(b[-1] - b[0])  # the overlaps move, the balance does not
        changes.append(abs(b[1] - b[0]))
    assert changes[0] / changes[1] == pytest.approx(4, rel=0.05)


def test_symmetry_partner(env):
    q = np.array([-0.8, 1.9, 0.5, -0.35])
    p, c = reduced.symmetry_partner(q, 0.03)
    assert reduced.balance(p) == pytest.approx(0.03, abs=1e-12)
    assert p[1] * p[2] == pytest.approx(q[1] * q[2], rel=1e-12) and c > 0
    np.testing.assert_array_equal(p[[0, 3]], q[[0, 3]])
    with pytest.raises(ValueError, match="one-point orbit"):
        reduced.symmetry_partner([0.1, 0.0, 0.3, 0.2], 0.0)


# -- the stabilization epoch ---------------------------------------------------------------------
def test_the_stabilization_epoch_is_the_first_after_which_every_record_is_stable(env):
    h = train_closed_loop(RankOneAgent(N=20, seed=3), env, epochs=200, T=20, seed=3)
    rho = np.abs(h.eig_P).max(-1)  # every |eig(P)| of the network recorded before update e
    unstable = [e for e in range(len(rho)) if rho[e] >= 1]
    expected = None if rho[-1] >= 1 else (unstable[-1] + 1 if unstable else 0)
    assert stages.detect_stages(h).stabilization == expected
    assert expected is not None and 0 < expected < 200  # the case is a real one


def test_detect_stages_names_missing_eigenvalue_records(env):
    h = train_closed_loop(RankOneAgent(N=5), env, epochs=2, T=5, eig_every=0)
    with pytest.raises(ValueError, match="eig_every"):
        stages.detect_stages(h)


@pytest.mark.parametrize("kind", ["authors", "package"])
def test_independent_runs(env, kind):
    seeds = [2, 5]
    kw = dict(N=10, epochs=60, T=12, batch=8, stream=kind)
    runs = stages.independent_runs(seeds, env, **kw)
    for k, s in enumerate(seeds):
        stream = Stream(s, kind)  # the network and its batches, one stream
        h = train_closed_loop(RankOneAgent(N=10, seed=stream), env, epochs=60, T=12, batch=8,
                              seed=stream)
        st = stages.detect_stages(h)
        for key, v in (("stabilization", st.stabilization), ("stage1_end", st.stage1_end)):
            assert (np.isnan(runs[key][k]) if v is None else runs[key][k] == v)
        # one ensemble on per-member streams: each member is its run alone to rounding
        assert runs["final_loss"][k] == runs["final_loss_paper"][k]
        assert runs["final_loss"][k] == pytest.approx(h.expected_loss[-1], rel=1e-12)
        assert runs["final_spectral_radius"][k] == pytest.approx(h.spectral_radius[-1],
                                                                  rel=1e-12)
    shared = stages.independent_runs(seeds, env, shared_batches=0, **kw)
    ens = train_closed_loop(RankOneAgent.stack([RankOneAgent(N=10, seed=Stream(s, kind))
                                                for s in seeds]),
                            env, epochs=60, T=12, batch=8, seed=0)
    np.testing.assert_array_equal(shared["final_loss"], ens.expected_loss[-1])
    # another window: the final network's loss is also given in the authors' window
    book = stages.independent_runs(seeds, env, convention="book", **kw)
    assert np.all(book["final_loss_paper"] != book["final_loss"])
    with pytest.raises(ValueError, match="seeds"):
        stages.independent_runs([], env)


def test_median_of_n_against_enumeration():
    values = np.array([3.0, 1.0, 4.0, 1.0, 5.0, np.nan])
    n = 3
    medians = np.sort([np.median(np.where(np.isnan(c), np.inf, c))
                       for c in itertools.product(values, repeat=n)])
    for q in (5, 25, 50, 75, 90):
        # the smallest x with P(median <= x) >= q / 100
        expected = medians[math.ceil(q / 100 * len(medians)) - 1]
        got = stages.median_of_n(values, n, q=[q])[0]
        assert got == expected or (np.isinf(expected) and np.isnan(got))
    with pytest.raises(ValueError, match="odd"):
        stages.median_of_n(values, 4)
    assert np.isnan(stages.median_of_n([np.nan, np.nan], 3)).all()


def test_stage3_spread_compares_the_papers_model_with_each_runs_own_training(env):
    kw = dict(N=10, epochs=120, T=12, batch=8)
    out = reduced.stage3_spread([1], env, stream="package", **kw)
    stream = Stream(1, "package")  # the network and its batches, one stream
    h = train_closed_loop(RankOneAgent(N=10, seed=stream), env, epochs=120, T=12, batch=8,
                          seed=stream)
    e = stages.detect_stages(h).stabilization
    assert e is not None and out["stabilization"][0] == e
    paper = train_closed_loop(OverlapAgent(h.overlaps[e]), env, epochs=120 - e, T=12, batch=8,
                              seed=2)
    gap = np.abs(paper.expected_loss - h.expected_loss[e:]) / h.expected_loss[e:]
    assert out["median_gap_pct"][0] == pytest.approx(100 * np.median(gap))
    assert out["max_gap_pct"][0] == pytest.approx(100 * gap.max())
