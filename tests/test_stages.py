"""Stage detection (closedloop.stages) on synthetic histories with known boundaries."""

import numpy as np
import pytest

from closedloop import stages


def test_settles():
    e = np.arange(10)
    assert stages.settles(e, [0, 1, 0, 1, 1, 1, 1, 1, 1, 1]) == 3
    assert stages.settles(e, [1] * 10) == 0
    assert stages.settles(e, [1] * 9 + [0]) is None


def test_detect_stages_on_a_synthetic_history():
    from closedloop.training import History
    E = np.arange(100)
    s_zm = np.where(E < 12, 0.05, -0.1)
    s_zm[20] = 0.01  # a late sign flip moves the boundary
    rho = np.where(E < 60, 1.01, 0.8)
    q = np.zeros((100, 4))
    q[:, 0] = s_zm
    h = History({}, {"epoch": E, "eig_epoch": E, "overlaps": q, "spectral_radius": rho})
    s = stages.detect_stages(h)
    assert (s.stage1_end, s.stabilization) == (21, 60)
    assert [sp[0] for sp in s.spans()] == ["stage 1", "stage 2", "stage 3"]


def test_detect_stages_from_effective_gains():
    """A tanh history has no overlaps: the recorded z.m (instant_gain) takes their place."""
    from closedloop.training import History
    E = np.arange(50)
    zm = np.where(E < 9, 0.02, -0.05)
    rho = np.where(E < 30, 1.2, 0.9)
    h = History({}, {"epoch": E, "eig_epoch": E, "monitor_epoch": E, "instant_gain": zm,
                     "spectral_radius": rho})
    s = stages.detect_stages(h)
    assert (s.stage1_end, s.stabilization) == (9, 30)
    with pytest.raises(ValueError, match="overlaps"):
        stages.detect_stages(History({}, {"epoch": E, "eig_epoch": E, "spectral_radius": rho}))


def test_member_stages_of_each_member():
    """Member k of an ensemble history, stage by stage, as detect_stages reads it alone."""
    from closedloop.training import History
    E = np.arange(3)
    q = np.zeros((3, 2, 4))
    q[..., 0] = [[-0.1, 0.2], [-0.1, -0.1], [-0.1, -0.1]]  # member 1 turns negative at 1
    rho = np.array([[1.1, 1.1], [0.9, 1.1], [0.9, 0.9]])  # member 0 stable from 1, 1 from 2
    h = History({}, {"epoch": E, "eig_epoch": E, "overlaps": q, "spectral_radius": rho,
                     "loss": np.ones((3, 2))})
    found = [(s.stage1_end, s.stabilization) for s in stages.member_stages(h)]
    assert found == [(0, 1), (1, 2)]
    with pytest.raises(ValueError, match="ensemble"):
        stages.member_stages(History({}, {"epoch": E, "eig_epoch": E, "overlaps": q[:, 0],
                                          "spectral_radius": rho[:, 0], "loss": np.ones(3)}))


def test_batch_losses_of_a_network_without_control(env):
    """z = 0: no control, so from x_0 = (p, v) the state is x_t = (p + t v, v), and a batch's
    loss is the mean over its starts of sum_{t<T} |x_t|^2 / (2T)."""
    from closedloop import RankOneAgent
    from closedloop.agents import make_generator
    agent, T = RankOneAgent(N=4, seed=0, s_zm0=0.0, z_perp_scale=0.0), 5
    losses = stages.batch_losses(agent, env, T, n_batches=3, batch=2, seed=7)
    x0 = env.sample_x0(6, make_generator(7)).numpy().reshape(3, 2, 2)
    pos = x0[..., :1] + np.arange(T) * x0[..., 1:]
    expect = ((pos ** 2).sum(-1) + T * x0[..., 1] ** 2).mean(-1) / (2 * T)
    assert losses.shape == (3,)
    np.testing.assert_allclose(losses, expect, rtol=1e-12)
    assert not np.allclose(stages.batch_losses(agent, env, T, 3, 2, seed=8), losses)


def test_an_epoch_percentile_on_a_run_next_to_a_never_run_is_that_run():
    from closedloop.stages import epoch_percentile

    assert epoch_percentile([60.0, float("nan"), 80.0], 50) == 80.0
    assert epoch_percentile([60.0, 80.0], 100) == 80.0


def test_independent_runs_in_another_format_keep_the_plant():
    """``dtype`` reruns the plant given in that format (a LinearPlant stayed a plant; it was
    rebuilt as a double integrator, which refused its box): the same runs as the plant built
    in float32."""
    import torch

    from closedloop.plants import LinearPlant

    make = lambda dt: LinearPlant.damped_oscillator(0.3, 0.1, 0.5, dtype=dt)  # noqa: E731
    kw = dict(N=8, epochs=3, T=10, batch=4, stream="package")
    converted = stages.independent_runs([0, 1], make(torch.float64), dtype=torch.float32, **kw)
    direct = stages.independent_runs([0, 1], make(torch.float32), **kw)
    for key in ("final_loss", "last_update_loss", "last_update_rho"):
        np.testing.assert_array_equal(converted[key], direct[key])
