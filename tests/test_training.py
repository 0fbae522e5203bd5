"""Training: determinism, ensembles, clipping, stopping, bad input."""

import numpy as np
import pytest
import torch

from closedloop import DoubleIntegrator, RankOneAgent, RNNAgent, UniformBox, coupled
from closedloop.streams import Stream
from closedloop.training import train_closed_loop, train_open_loop


def test_same_seed_same_history_and_different_seed_differs(env):
    runs = [train_closed_loop(RankOneAgent(N=20, seed=1), env, epochs=30, seed=s)
            for s in (7, 7, 8)]
    for key in runs[0].arrays:
        np.testing.assert_array_equal(runs[0].arrays[key], runs[1].arrays[key])
    assert not np.array_equal(runs[0].loss, runs[2].loss)


def test_exact_mode_is_deterministic_and_tracks_expected_loss(env):
    h = train_closed_loop(RankOneAgent(N=20, seed=1), env, epochs=20, mode="exact", seed=0)
    h2 = train_closed_loop(RankOneAgent(N=20, seed=1), env, epochs=20, mode="exact", seed=99)
    np.testing.assert_array_equal(h.loss, h2.loss)
    np.testing.assert_array_equal(h.loss, h.expected_loss)


def test_ensemble_equals_its_member_runs(env):
    singles = [RankOneAgent(N=20, seed=k, s_zm0=s) for k, s in enumerate((-0.1, 0.0, 0.15))]
    ens = train_closed_loop(RankOneAgent.stack([a.detached() for a in singles]), env,
                            epochs=40, seed=3)
    for k, a in enumerate(singles):
        h = train_closed_loop(a, env, epochs=40, seed=3)
        for key in ("loss", "expected_loss", "overlaps", "eig_P", "grad_norm"):
            np.testing.assert_allclose(ens.member(k).arrays[key], h.arrays[key],
                                       rtol=1e-9, atol=1e-12)


def test_each_member_is_clipped_to_norm_clip(env):
    a = RankOneAgent(N=20, seed=0, s_zm0=0.3)  # runaway loss: a huge raw gradient
    before = [p.detach().clone() for p in a.parameters()]
    h = train_closed_loop(a, env, epochs=1, lr=0.01, clip=1.0)
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(a.parameters(), before)))
    assert h.grad_norm[0] > 1e3
    assert step.item() == pytest.approx(0.01, rel=1e-9)


def test_divergence_stops_with_message_and_keeps_history(env):
    a = RankOneAgent(N=20, seed=0, s_zm0=0.2)
    with pytest.warns(RuntimeWarning, match="not finite"):
        h = train_closed_loop(a, env, epochs=200, lr=1e3, clip=None, T=200)
    assert not h.completed and "epoch" in h.message
    assert 1 <= len(h.epoch) < 201 and np.isfinite(h.loss).all()


def test_interrupt_keeps_history(env, monkeypatch):
    real, calls = Stream.initial_states, []

    def interrupted(*args, **kwargs):  # Ctrl-C arrives while epoch 5 draws its batch
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(Stream, "initial_states", interrupted)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        h = train_closed_loop(RankOneAgent(N=10), env, epochs=50)
    assert len(h.epoch) == 5 and not h.completed


def test_snapshots_rebuild_the_network(env):
    a = RNNAgent(N=12, g=0.3, activation="identity", seed=2)
    h = train_closed_loop(a, env, epochs=10, snapshot_every=4, lr=1e-3)
    assert h.snapshot_epoch.tolist() == [0, 4, 8, 10]
    i = 2
    b = RNNAgent.from_tensors(*(torch.tensor(h.arrays[f"params/{k}"][i]) for k in "Wmz"),
                              activation="identity")
    e = int(h.snapshot_epoch[i])
    assert coupled.expected_loss(b, env, 50).item() == pytest.approx(h.expected_loss[e], rel=1e-12)


def test_tanh_training_runs_and_learns():
    env = DoubleIntegrator(UniformBox(1.0))
    h = train_closed_loop(RNNAgent(N=20, g=0.1, seed=0), env, epochs=60, beta=0.005)
    assert h.completed and "expected_loss" not in h.arrays
    assert h.loss[-10:].mean() < h.loss[:5].mean()






@pytest.mark.parametrize("kwargs,param", [
    (dict(epochs=-1), "epochs"), (dict(T=0), "T"), (dict(lr=0.0), "lr"), (dict(lr=-1), "lr"),
    (dict(batch=0), "batch"), (dict(mode="bogus"), "mode"), (dict(beta=-0.1), "beta"),
    (dict(clip=0), "clip"), (dict(lr=float("nan")), "lr"),
])
def test_bad_training_arguments_name_the_parameter(env, kwargs, param):
    with pytest.raises((ValueError, TypeError), match=param):
        train_closed_loop(RankOneAgent(N=5), env, epochs=kwargs.pop("epochs", 1), **kwargs)


@pytest.mark.parametrize("make,param", [
    (lambda: RankOneAgent(N=0), "N"), (lambda: RNNAgent(N=0), "N"),
    (lambda: RNNAgent(activation="relu"), "activation"), (lambda: RNNAgent(g=-1), "g"),
    (lambda: RankOneAgent(s_zm0=1.5), "s_zm0"),
    (lambda: RankOneAgent(s_zm0=float("nan")), "s_zm0"),
    (lambda: RankOneAgent(s_zm0=torch.zeros(3), batch_shape=(2,)), "s_zm0"),
    (lambda: RNNAgent.from_tensors(torch.zeros(3, 3), torch.zeros(4), torch.zeros(3)), "m"),
    (lambda: UniformBox(-1.0), "half_width"), (lambda: RankOneAgent(seed=-1), "seed"),
    (lambda: RNNAgent(N=2.5), "N"),
])
def test_bad_construction_names_the_parameter(make, param):
    with pytest.raises((ValueError, TypeError), match=param):
        make()


def test_exact_mode_refuses_tanh(env):
    with pytest.raises(ValueError, match="mode='exact'"):
        train_closed_loop(RNNAgent(N=5), env, epochs=1, mode="exact")


@pytest.mark.parametrize("call,param", [
    (lambda env: coupled.closed_loop_loss(RankOneAgent(N=5), env, torch.zeros(4, 3), 5), "x0"),
    (lambda env: coupled.closed_loop_loss(RankOneAgent(N=5), env,
                                          torch.full((4, 2), float("nan")), 5), "x0"),
    (lambda env: coupled.closed_loop_loss(RankOneAgent(N=5), env, torch.zeros(4, 2), 0), "T"),
    (lambda env: coupled.effective_matrix(torch.zeros(3), env), "overlaps"),
    (lambda env: coupled.expected_loss(RNNAgent(N=5), env, 5), "linear agent"),
])
def test_bad_loss_arguments_name_the_parameter(env, call, param):
    with pytest.raises((ValueError, TypeError), match=param):
        call(env)


def test_bad_theory_arguments_name_the_parameter():
    from closedloop import theory
    with pytest.raises(ValueError, match="T"):
        theory.stage1_loss(0.1, 0)
    with pytest.raises(ValueError, match="R"):
        theory.lqr_gain(np.eye(2), np.ones(2), R=0.0)
    with pytest.raises(ValueError, match="s_zm"):
        theory.stage1_loss(float("nan"), 10)




def test_agent_at_rebuilds_the_first_snapshot_at_or_after(env):
    """Snapshots at 0, 5, 10 and the final 12: an epoch reads the first at or after it, a
    network that has trained at least that long; past the last, the last."""
    a = RNNAgent(N=8, g=0.3, seed=2)
    h = train_closed_loop(a, env, epochs=12, snapshot_every=5, convention="book")
    b = h.agent_at(10, like=a)
    assert b.snapshot_epoch == 10 and b.activation == "tanh"
    np.testing.assert_array_equal(b.tensors["W"].detach().numpy(), h.arrays["params/W"][2])
    assert [h.agent_at(e, like=a).snapshot_epoch for e in (0, 1, 6, 11, 12, 10**30)] == [
        0, 5, 10, 12, 12, 12]


@pytest.mark.parametrize("mode", [np.array(["exact"]), torch.tensor([1]), ["exact"]])
def test_a_mode_that_is_not_a_name_is_refused(env, mode):
    """An array holding an allowed name is not that name (its config would not be either)."""
    with pytest.raises(ValueError, match="mode must be one of"):
        train_closed_loop(RankOneAgent(N=4), env, epochs=1, mode=mode)


@pytest.mark.parametrize("make", [lambda s: RankOneAgent(N=6, seed=s),
                                  lambda s: RNNAgent(N=6, g=0.4, seed=s)])
def test_members_with_their_own_seed_and_lr_equal_their_runs_alone(env, make):
    """One seed and one lr per member: each member draws its own batches, so it trains as
    it would alone (to rounding: batched products)."""
    seeds, lrs = [3, 8, 5], [0.01, 0.03, 0.02]
    ens = type(make(0)).stack([make(s) for s in seeds])
    h = train_closed_loop(ens, env, epochs=4, T=9, batch=5, lr=lrs, seed=seeds, eig_every=0)
    assert h.config["seed"] == seeds and h.config["lr"] == lrs
    for k, (s, lr) in enumerate(zip(seeds, lrs)):
        alone = make(s)
        ha = train_closed_loop(alone, env, epochs=4, T=9, batch=5, lr=lr, seed=s, eig_every=0)
        np.testing.assert_allclose(h.loss[:, k], ha.loss, rtol=1e-10)
        for name in alone.names:
            torch.testing.assert_close(ens.member(k).tensors[name], alone.tensors[name],
                                       rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kw,param", [(dict(lr=[0.1, 0.0]), "lr"), (dict(lr=[0.1]), "lr"),
                                      (dict(seed=[1, -2]), "seed"), (dict(lr=-1.0), "lr")])
def test_bad_per_member_settings_name_the_parameter(env, kw, param):
    ens = RankOneAgent.stack([RankOneAgent(N=4, seed=s) for s in (0, 1)])
    with pytest.raises(ValueError, match=param):
        train_closed_loop(ens, env, epochs=1, **kw)


@pytest.mark.parametrize("inputs", ["white_noise", "teacher"])
def test_open_loop_ensemble_with_a_stream_per_member_is_each_run_alone(inputs):
    """seed=[...] one per member: member k sees the inputs of its run alone (white noise
    scaled by input_std, or its own teacher's rollouts), so it ends where that run ends."""
    env = DoubleIntegrator()
    make = lambda s: RNNAgent(N=6, seed=s)  # noqa: E731
    teachers = [make(9), make(8)]
    kw = dict(epochs=4, T=5, batch=3, input_std=2.5, eig_every=0, inputs=inputs)
    both = RNNAgent.stack([make(1), make(2)])
    h = train_open_loop(both, RNNAgent.stack(teachers), env,
                        seed=[Stream(5), Stream(6)], **kw)
    assert h.loss.shape == (6, 2)
    for k, (s, seed) in enumerate(((1, 5), (2, 6))):
        alone = make(s)
        h1 = train_open_loop(alone, teachers[k], env, seed=Stream(seed), **kw)
        np.testing.assert_allclose(h.loss[:, k], h1.loss, rtol=1e-12)
        torch.testing.assert_close(both.tensors["W"][k], alone.tensors["W"], rtol=1e-12,
                                   atol=1e-15)


@pytest.mark.parametrize("train", ["closed", "open"])
def test_seeds_per_member_of_a_two_axis_ensemble_are_refused(train):
    """The draws of per-member streams stack along one axis: a (2, 2) ensemble with a (2, 2)
    array of seeds is a ValueError naming seed (it failed inside numpy or torch)."""
    a = RNNAgent.stack([RNNAgent.stack([RNNAgent(N=4, seed=i + 2 * j) for i in range(2)])
                        for j in range(2)])
    seeds = np.arange(4).reshape(2, 2)
    with pytest.raises(ValueError, match="seed: one per member needs an ensemble of one axis"):
        if train == "closed":
            train_closed_loop(a, epochs=1, T=3, batch=2, seed=seeds)
        else:
            train_open_loop(a, a, epochs=1, T=3, batch=2, seed=seeds)
