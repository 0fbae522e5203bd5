"""Divergence, interruption and determinism of every training function (issue 8).

A blow-up stops training with a message naming the epoch and the last finite loss; Ctrl-C
and any other error keep the history so far, whole epochs only; the same seed gives bitwise
the same history in one process and across processes, and another seed another one.
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from closedloop import DoubleIntegrator, RankOneAgent, RNNAgent, UniformBox, gains
from closedloop import tracking as tr
from closedloop.training import History, train_closed_loop, train_open_loop
from histories import assert_consistent, assert_same

ROOT = Path(__file__).resolve().parents[1]


# -- divergence -------------------------------------------------------------------------------
def test_closed_loop_blow_up_names_epoch_and_last_finite_loss(env):
    a = RankOneAgent(N=20, seed=0, s_zm0=0.2)
    with pytest.warns(RuntimeWarning, match="not finite") as rec:
        h = train_closed_loop(a, env, epochs=200, lr=1e3, clip=None, T=200)
    n = len(h.epoch)
    assert 1 <= n < 201 and not h.completed
    assert f"stopped at epoch {n}" in h.message
    assert f"last finite loss {h.loss[-1]:.4g}, at epoch {n - 1}" in h.message
    assert str(rec[0].message) == h.message
    assert_consistent(h, n)


def test_open_loop_blow_up_keeps_history(env):
    teacher = RNNAgent(N=6, g=0.5, activation="identity", seed=1)
    student = RNNAgent(N=6, g=0.5, activation="identity", seed=2)
    with pytest.warns(RuntimeWarning, match="not finite"):
        h = train_open_loop(student, teacher, env, epochs=100, lr=1e6, clip=None, T=30)
    assert not h.completed and f"stopped at epoch {len(h.epoch)}" in h.message
    assert_consistent(h, len(h.epoch))


def test_overflow_at_the_first_epoch_says_nothing_was_kept(env):
    # rho(P) > 1 and T = 20000 steps: the very first loss overflows float64
    with pytest.warns(RuntimeWarning, match="overflow at the first epoch"):
        h = train_closed_loop(RankOneAgent(N=5, s_zm0=0.5), env, epochs=3, T=20000, batch=2)
    assert h.arrays == {} and not h.completed


def test_stage1_losses_need_float64():
    """A runaway start at the paper's T = 50 (s_zm(0) = 0.5): the batch loss is ~1e21 and its
    gradient ~1e23, whose squared norm (per-member clipping) is ~1e46: beyond float32 (3e38),
    well inside float64. The float64 run trains; the float32 one stops at epoch 0."""
    runs = {}
    for dtype in (torch.float64, torch.float32):
        env = DoubleIntegrator(dtype=dtype)
        agent = RankOneAgent(N=100, seed=2, s_zm0=0.5, dtype=dtype)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs[dtype] = train_closed_loop(agent, env, epochs=5, T=50)
        runs[dtype].warned = [str(w.message) for w in caught]
    h64, h32 = runs[torch.float64], runs[torch.float32]
    assert h64.completed and not h64.warned
    assert h64.loss[0] > 1e20 and np.isfinite(h64.grad_norm).all()
    assert not h32.completed and "stopped at epoch 0" in h32.message


def test_overflow_is_an_error_for_trajectories_and_inf_for_costs(env):
    """A loop that grows past float64: trajectories raise (never NaN states handed on),
    costs are inf (a sum of squares beyond the range), never NaN."""
    from closedloop import coupled, theory

    runaway = RankOneAgent(N=4, seed=3, s_zm0=0.9)
    x0 = env.sample_x0(3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        raw = coupled.linear_states(*[t.detach() for t in _system(runaway, env)], 40)
        assert np.isfinite(raw.numpy()).all()  # the same system over fewer steps is fine
        for call in (lambda: coupled.rollout(runaway, env, x0, 3000),
                     lambda: coupled.effective_rollout(runaway.overlaps(), env, x0, 3000)):
            with pytest.raises(ValueError, match="overflow float64.*shorten T"):
                call()
        costs = coupled.start_costs(runaway, env, x0, 3000)
        assert torch.isinf(costs).all() and (costs > 0).all()
    assert np.isposinf(gains.feedback_loss([[5.0, 5.0]], env, T=3000)).all()
    assert np.isposinf(theory.stage1_loss(0.9, 3000))


def _system(agent, env):
    from closedloop import coupled

    P, _ = coupled.linear_system(agent, env)
    s0 = torch.zeros(1, P.shape[-1], dtype=P.dtype)
    s0[0, 0] = 1.0
    return P, s0


def test_tracking_blow_up_names_epoch_and_last_finite_loss():
    refs = tr.Sinusoids(T=300)
    a = tr.TrackingRNN(N=6, seed=0)
    a = tr.TrackingRNN.from_tensors(a.W, a.W_in, 30 * a.W_out)
    with pytest.warns(RuntimeWarning, match="not finite"):
        h = tr.train_tracking(a, tr.PointMass(bound=None), refs, epochs=50, lr=1e3,
                              mode="exact", n_test=2)
    n = len(h.epoch)
    assert f"stopped at epoch {n}" in h.message
    assert f"last finite loss {h.loss[-1]:.4g}, at epoch {n - 1}" in h.message
    assert_consistent(h, n)


# -- interruption -----------------------------------------------------------------------------
def interrupting(fn, at_call):
    """``fn`` that raises KeyboardInterrupt on its ``at_call``-th call (1-based)."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == at_call:
            raise KeyboardInterrupt
        return fn(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("k", [1, 4])
def test_ctrl_c_in_the_monitor_keeps_whole_epochs(k):
    """Ctrl-C while epoch k is being recorded (its loss already computed): epochs 0..k-1 are
    kept whole, and the network is the one that epoch k would have recorded (k - 1 updates:
    the authors' tanh schedule makes none at epoch 0)."""
    env = DoubleIntegrator(UniformBox(1.0))
    probe = gains.probe(env, gains.fixed_starts(env, 8), 10)
    agent = RNNAgent(N=6, seed=3)
    kept = f"interrupted at epoch {k}; history up to epoch {k - 1} kept"
    with pytest.warns(RuntimeWarning, match=kept):
        h = train_closed_loop(agent, env, epochs=10, T=10, batch=4, snapshot_every=1,
                              monitor=interrupting(probe, k + 1))
    assert_consistent(h, k)
    assert h.monitor_epoch.tolist() == list(range(k))
    again = RNNAgent(N=6, seed=3)
    train_closed_loop(again, env, epochs=k - 1, T=10, batch=4)
    for name in agent.names:
        torch.testing.assert_close(agent.tensors[name], again.tensors[name], rtol=0, atol=0)


def test_ctrl_c_in_the_objective_of_open_loop_training(env, monkeypatch):
    import closedloop.training as training

    monkeypatch.setattr(training, "_open_loop_inputs",
                        interrupting(training._open_loop_inputs, 4))
    with pytest.warns(RuntimeWarning, match="interrupted at epoch 3"):
        h = train_open_loop(RNNAgent(N=5, seed=1), RNNAgent(N=5, seed=2), env, epochs=10, T=8,
                            batch=3)
    assert_consistent(h, 3)


def test_ctrl_c_while_tracking_records_its_spectrum():
    a = tr.TrackingRNN(N=6, seed=0)
    a.rate_eigenvalues = interrupting(a.rate_eigenvalues, 3)  # epoch 2 (record_every=1)
    with pytest.warns(RuntimeWarning, match="interrupted at epoch 2"):
        h = tr.train_tracking(a, refs=tr.Sinusoids(T=40), epochs=10, batch=3, n_test=2,
                              record_every=1)
    assert_consistent(h, 2)


def test_another_error_carries_the_history_so_far(env):
    def monitor(agent):
        monitor.calls += 1
        if monitor.calls == 6:
            raise ZeroDivisionError("a bug in a user's monitor")
        return {"zm": (agent.z * agent.m).sum(-1)}

    monitor.calls = 0
    with pytest.raises(ZeroDivisionError) as err:
        train_closed_loop(RankOneAgent(N=5), env, epochs=10, monitor=monitor)
    assert_consistent(err.value.history, 5)
    assert any(".history" in note for note in err.value.__notes__)


# -- determinism ------------------------------------------------------------------------------
def small_runs(seed: int) -> dict:
    """One short run of each training function, all drawn from ``seed``."""
    env = DoubleIntegrator(UniformBox(1.0))
    probe = gains.probe(env, gains.fixed_starts(env, 6), 8)
    closed = train_closed_loop(RNNAgent(N=6, seed=seed), env, epochs=8, T=8, batch=5,
                               beta=0.005, seed=seed, monitor=probe, snapshot_every=3)
    rank_one = train_closed_loop(RankOneAgent(N=8, seed=seed, batch_shape=(2,)), env,
                                 epochs=8, T=12, batch=5, seed=seed)
    open_ = train_open_loop(RNNAgent(N=6, seed=seed), RNNAgent(N=6, seed=seed + 100), env,
                            epochs=8, T=8, batch=5, seed=seed, inputs="teacher", monitor=probe)
    tracking = tr.train_tracking(tr.TrackingRNN(N=6, seed=seed), refs=tr.Sinusoids(T=40),
                                 epochs=6, batch=4, n_test=3, seed=seed, record_every=2)
    return {"closed": closed, "rank_one": rank_one, "open": open_, "tracking": tracking}


def test_same_seed_same_histories_in_one_process():
    first, second = small_runs(4), small_runs(4)
    for kind in first:
        assert_same(first[kind], second[kind])


def test_different_seeds_give_different_histories():
    a, b = small_runs(4), small_runs(5)
    for kind in a:
        assert not np.array_equal(a[kind].loss, b[kind].loss), kind


def test_same_seed_same_histories_across_processes(tmp_path):
    """A fresh interpreter runs the same trainings and saves them; its files load to
    histories bitwise equal to this process's (the file bytes differ: zip entries carry a
    time stamp)."""
    script = ("import sys; sys.path.insert(0, 'tests'); from pathlib import Path\n"
              "from test_reliability import small_runs\n"
              "for kind, h in small_runs(7).items():\n"
              "    h.save(Path(sys.argv[1]) / f'{kind}.npz')\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, env=env,
                   check=True, timeout=300)
    for kind, h in small_runs(7).items():
        assert_same(History.load(tmp_path / f"{kind}.npz"), h)


def test_config_records_every_seed(env):
    """What a reader needs to rerun a history: its seeds are in the config, as JSON."""
    h = small_runs(3)
    for kind in ("closed", "open", "tracking"):
        assert h[kind].config["seed"] == 3
        json.dumps(h[kind].config)
