"""Hostile input (issue 8): hypothesis throws random and adversarial values at the public API.

Each case takes a valid call and replaces one argument by a value drawn from a hostile pool:
NaN, inf, signed zeros, negatives, subnormals, huge numbers and integers beyond any range,
wrong types (None, strings, bytes, containers, complex, booleans, tensors, dtypes,
callables), and tensors of wrong dtype or shape or with NaN and inf in them. The outcome
must be one of
- a clear error: ValueError or TypeError raised by closedloop itself, whose message names
  the argument that was replaced;
- a correct result: checked against the math each function promises (finite where it must
  be, shapes, z.m = s_zm(0), samples inside their box, whole and finite histories ...).
Never another exception (from deep inside torch, numpy or scipy), never a warning other than
training's own stop messages, never a silent NaN. Cases are drawn from a fixed seed (see
conftest); the total run is printed at the end of the session.
"""

import math
import re
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from closedloop import DoubleIntegrator, RankOneAgent, RNNAgent, UniformBox
from closedloop import coupled, gains, stages, theory
from closedloop import tracking as tr
from closedloop.agents import make_generator
from closedloop.streams import Stream
from closedloop.params import CHAPTERS, check_parameters
from closedloop.training import History, open_loop_inputs, train_closed_loop, train_open_loop
from conftest import counted
from histories import assert_consistent

PACKAGE = Path(__import__("closedloop").__file__).resolve().parent
NAN, INF = float("nan"), float("inf")

HUGE = [2**63, 2**64, 10**30, 1e300, 1.7976931348623157e308, -2**63, -1e300]
NUMBERS = [NAN, INF, -INF, 0, 0.0, -0.0, -1, -1.0, 5e-324, -1e-300, 0.5, 3.5, True, False,
           np.float64(NAN), np.int64(-3), np.float32(1e38)]
ODD = [None, "1", "", b"1", [], [1.0], (1.0, 2.0, 3.0), {}, 1j, object(), torch.tensor(1.0),
       torch.tensor([1.0, 2.0]), np.array([1.0, 2.0]), torch.float64, print]


def hostile(huge=True, ints=(-50, 1000)):
    """Bad values of every kind; ``huge=False`` leaves out huge positive integers where they
    would be a valid request for endless work (epochs), not an error."""
    pool = NUMBERS + ODD + (HUGE if huge else [v for v in HUGE if not (
        isinstance(v, int) and v > 0)])
    return st.one_of(st.sampled_from(pool), st.floats(), st.integers(*ints))


@st.composite
def tensors(draw, good_shape=None):
    """Tensors of any small shape (or ``good_shape``), dtype and filling, NaN and inf among
    them; also the same as a list or numpy array."""
    shape = good_shape if good_shape is not None and draw(st.booleans()) else tuple(
        draw(st.lists(st.integers(0, 4), max_size=4)))
    dtype = draw(st.sampled_from([torch.float64, torch.float64, torch.float32, torch.int64,
                                  torch.complex128, torch.bool]))
    fill = draw(st.sampled_from(["randn", "randn", 0.0, NAN, INF, -INF, 1e300]))
    if fill == "randn":
        t = torch.randn(shape, generator=make_generator(draw(st.integers(0, 9))),
                        dtype=torch.float64)
    else:
        t = torch.full(shape, fill, dtype=torch.float64)
        if t.numel() and draw(st.booleans()):  # a single bad entry among good ones
            t = torch.randn(shape, dtype=torch.float64).flatten()
            t[0] = fill
            t = t.reshape(shape)
    t = t.to(dtype) if dtype is not torch.bool else t > 0
    form = draw(st.sampled_from(["tensor", "tensor", "list", "numpy"]))
    return t if form == "tensor" else (t.tolist() if form == "list" else t.numpy())


class Fresh:
    """A valid argument built anew for each case (agents are trained in place)."""

    def __init__(self, make):
        self.make = make


def one_bad(data, valid: dict, bad: dict | None = None):
    """(name, kwargs): ``valid`` with one argument replaced by a hostile draw."""
    name = data.draw(st.sampled_from(sorted(valid)), label="argument")
    strategy = (bad or {}).get(name, hostile())
    value = data.draw(strategy, label=name)
    kwargs = {k: (v.make() if isinstance(v, Fresh) else v) for k, v in valid.items()}
    kwargs[name] = value
    return name, kwargs


ERROR = object()
OUR_WARNINGS = ("training stopped at epoch", "training interrupted at epoch")


def attempt(call, name):
    """call() -> its result, or ERROR after checking that the error is a clear one."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
            event("a result")
        except (ValueError, TypeError) as e:
            assert_clear(e, name)
            result = ERROR
            event(f"a clear {type(e).__name__}")
    foreign = [str(w.message) for w in caught if not (
        issubclass(w.category, RuntimeWarning) and str(w.message).startswith(OUR_WARNINGS))]
    assert not foreign, foreign
    return result


def assert_clear(e: Exception, names):
    """Raised by closedloop (not deep in torch/numpy/scipy), naming the argument (one of
    ``names`` where the bad one could be either of them)."""
    frames = traceback.extract_tb(e.__traceback__)
    assert Path(frames[-1].filename).resolve().is_relative_to(PACKAGE), (
        f"{type(e).__name__} from {frames[-1].filename}: {e}")
    text = "\n".join([str(e), *getattr(e, "__notes__", [])])
    names = (names,) if isinstance(names, str) else names
    assert any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", text) for n in names), (
        f"the message does not name {names}: {e}")


def finite(x) -> bool:
    x = x.detach().numpy() if torch.is_tensor(x) else np.asarray(x)
    return bool(np.isfinite(x).all())


def train_hostile(data, train, valid, bad):
    """``train`` with one argument of ``valid`` made hostile: a clear error naming it, or a
    whole, finite history."""
    name, kw = one_bad(data, valid, bad)
    h = attempt(lambda: train(**kw), name)
    if h is not ERROR:
        check_history(h, kw["epochs"])


def check_history(h, epochs):
    """A whole history: completed with epochs + 1 rows (+ 1 when epoch 0 makes no update), or
    stopped with a message; finite."""
    assert isinstance(h, History)
    if h.completed:
        assert_consistent(h, epochs + 1 + (epochs > 0 and not h.config["update_at_epoch0"]))
    else:
        assert "epoch" in h.message
        if h.arrays:
            assert_consistent(h, len(h.epoch))


FEW = settings(max_examples=40)
SOME = settings(max_examples=80)
MANY = settings(max_examples=150)
ENV = DoubleIntegrator()
X0 = ENV.sample_x0(4, make_generator(0))


# -- construction -----------------------------------------------------------------------------
@SOME
@given(st.data())
@counted
def test_rnn_agent(data):
    valid = dict(N=4, g=0.5, activation="tanh", seed=1, batch_shape=(2,), dtype=torch.float64)
    name, kw = one_bad(data, valid, {"batch_shape": hostile() | st.lists(hostile(), max_size=2)})
    a = attempt(lambda: RNNAgent(**kw), name)
    if a is not ERROR:
        assert all(finite(t) and t.dtype == a.dtype for t in a.tensors.values())
        assert a.tensors["W"].shape == a.batch_shape + (a.N, a.N)


@SOME
@given(st.data())
@counted
def test_rank_one_agent(data):
    valid = dict(N=5, seed=0, s_zm0=0.3, z_perp_scale=0.1, uv_scale=1.0, train_m=False,
                 batch_shape=())
    name, kw = one_bad(data, valid, {"s_zm0": hostile() | tensors()})
    a = attempt(lambda: RankOneAgent(**kw), name)
    if a is not ERROR:
        assert all(finite(t) for t in a.tensors.values())
        if kw["s_zm0"] is not None:  # z.m = s_zm0, up to rounding of the product
            z, m = a.tensors["z"].detach(), a.tensors["m"]
            want = torch.as_tensor(np.asarray(kw["s_zm0"]), dtype=z.dtype)
            err = ((z * m).sum(-1) - want).abs()
            assert (err <= 1e-12 * (1 + z.norm(dim=-1) * m.norm(dim=-1))).all()


@FEW
@given(st.data())
@counted
def test_agent_from_tensors_and_drive(data):
    valid = dict(W=torch.eye(3, dtype=torch.float64) * 0.5, m=torch.ones(3, dtype=torch.float64),
                 z=torch.ones(3, dtype=torch.float64) / 3)
    name, kw = one_bad(data, valid, {k: tensors(v.shape) for k, v in valid.items()})
    a = attempt(lambda: RNNAgent.from_tensors(**kw), name)
    if a is not ERROR:
        assert a.N == 3
    y = data.draw(tensors((5, 2)), label="y")
    u = attempt(lambda: RNNAgent.from_tensors(**valid).drive(y), "y")
    if u is not ERROR:
        assert u.shape == (5, 2) and finite(u)


@SOME
@given(st.data())
@counted
def test_environment_and_initial_states(data):
    half_width = data.draw(hostile() | st.tuples(hostile(), hostile()), label="half_width")
    box = attempt(lambda: UniformBox(half_width), "half_width")
    if box is not ERROR:
        x = box.sample(50, make_generator(0))
        assert finite(x) and (x.abs() <= torch.tensor(box.half_width, dtype=x.dtype)).all()
    name, kw = one_bad(data, dict(batch=3, generator=Fresh(lambda: make_generator(0))))
    x = attempt(lambda: UniformBox(1.0).sample(**kw), name)
    if x is not ERROR:
        assert x.shape == (kw["batch"], 2) and (x.abs() <= 1).all()
    dtype = data.draw(hostile() | st.sampled_from([torch.float32, torch.int64]), label="dtype")
    attempt(lambda: DoubleIntegrator(dtype=dtype), "dtype")


# -- training ---------------------------------------------------------------------------------
TRAIN_BAD = {"epochs": hostile(huge=False, ints=(-5, 3)), "eig_every": hostile(huge=False),
             "snapshot_every": hostile(huge=False), "monitor_every": hostile(huge=False),
             "monitor": st.sampled_from([print, len, lambda a: 3, lambda a: {"x": a.z}, None,
                                         "probe"])}


@MANY
@given(st.data())
@counted
def test_train_closed_loop(data):
    linear = data.draw(st.booleans(), label="linear")
    make = (lambda: RankOneAgent(N=4, seed=1)) if linear else (lambda: RNNAgent(N=4, seed=1))
    valid = dict(agent=Fresh(make), env=ENV, epochs=2, T=6, lr=1e-2, batch=3, clip=1.0,
                 beta=0.0, mode="exact" if linear else "sampled", seed=0, eig_every=1,
                 snapshot_every=1, monitor=None, monitor_every=1)
    train_hostile(data, train_closed_loop, valid, TRAIN_BAD)


@SOME
@given(st.data())
@counted
def test_train_open_loop(data):
    valid = dict(student=Fresh(lambda: RNNAgent(N=4, seed=1)),
                 teacher=Fresh(lambda: RNNAgent(N=4, seed=2)), env=ENV, epochs=2, T=5, lr=1e-2,
                 batch=3, clip=1.0, inputs="teacher", seed=0)
    train_hostile(data, train_open_loop, valid, TRAIN_BAD)
    name, kw = one_bad(data, dict(source="white_noise", batch=3, T=4,
                                  stream=Fresh(lambda: Stream(0)),
                                  teacher=RNNAgent(N=3), env=ENV))
    y = attempt(lambda: open_loop_inputs(**kw), name)
    if y is not ERROR:
        assert y.shape == (kw["T"], kw["batch"]) and finite(y)


# -- the coupled system -----------------------------------------------------------------------
@MANY
@given(st.data())
@counted
def test_rollouts_and_losses(data):
    agent = data.draw(st.sampled_from([
        RankOneAgent(N=4, seed=3), RNNAgent(N=4, seed=3), RNNAgent(N=4, seed=3, batch_shape=(2,)),
        RankOneAgent(N=4, seed=3, s_zm0=0.9)]), label="agent")  # the last runs away fast
    fn = data.draw(st.sampled_from(["rollout", "start_costs", "closed_loop_loss",
                                    "expected_loss"]), label="function")
    valid = dict(agent=agent, env=ENV, x0=X0, T=7, beta=0.1)
    if fn == "rollout":
        del valid["beta"]
    if fn == "expected_loss":
        del valid["x0"]
    name, kw = one_bad(data, valid, {"x0": tensors((4, 2)), "T": hostile(ints=(-5, 1500))})
    if fn == "expected_loss" and agent.activation != "identity":
        kw["agent"] = RankOneAgent(N=4, seed=3) if name != "agent" else kw["agent"]
    out = attempt(lambda: getattr(coupled, fn)(**kw), name)
    if out is ERROR:
        return
    if fn == "rollout":
        assert out["x"].shape[0] == kw["T"] + 1 and finite(out["x"]) and finite(out["u"])
        torch.testing.assert_close(out["x"][0], kw["x0"].expand_as(out["x"][0]))
    else:  # costs: >= 0, inf where they overflow float64, never NaN
        assert not out.isnan().any() and (out >= 0).all()


@SOME
@given(st.data())
@counted
def test_effective_system(data):
    q = torch.tensor([-0.1, 0.02, 0.05, 0.3], dtype=torch.float64)
    valid = dict(overlaps=q, env=ENV, x0=X0, T=9)
    name, kw = one_bad(data, valid, {"overlaps": tensors((4,)) | hostile(),
                                     "x0": tensors((4, 2)), "T": hostile(ints=(-5, 300))})
    out = attempt(lambda: coupled.effective_rollout(**kw), name)
    if out is not ERROR:
        assert finite(out["x"]) and finite(out["u"])
    P = attempt(lambda: coupled.effective_matrix(kw["overlaps"], ENV), "overlaps")
    if P is not ERROR:
        assert P.shape[-2:] == (4, 4) and finite(P)
    name, kw = one_bad(data, dict(P=torch.eye(3, dtype=torch.float64) * 0.9,
                                  s0=torch.ones(2, 3, dtype=torch.float64), T=5),
                       {"P": tensors((3, 3)), "s0": tensors((2, 3)), "T": hostile(ints=(-5, 300))})
    s = attempt(lambda: coupled.linear_states(**kw), name)
    if s is not ERROR:
        assert s.shape[0] == kw["T"] + 1 and finite(s)


# -- gains and theory -------------------------------------------------------------------------
@MANY
@given(st.data())
@counted
def test_gain_functions(data):
    fn = data.draw(st.sampled_from(["feedback_loss", "stability_region", "gain_grid",
                                    "lqr_feedback", "fixed_starts", "probe",
                                    "effective_gains"]), label="function")
    k_bad = tensors((5, 2)) | hostile()
    if fn == "feedback_loss":
        name, kw = one_bad(data, dict(k=torch.zeros(5, 2), env=ENV, x0=(1.0, 1.0), T=20,
                                      beta=0.0), {"k": k_bad, "x0": tensors((2,)) | hostile()})
        out = attempt(lambda: gains.feedback_loss(**kw), name)
        if out is not ERROR:  # a cost: >= 0, inf where it overflows, never NaN
            assert not np.isnan(out).any() and (out >= 0).all()
    elif fn == "stability_region":
        k = data.draw(k_bad, label="k")
        out = attempt(lambda: gains.stability_region(k, ENV), "k")
        if out is not ERROR:
            assert set(np.unique(out)) <= {0, 1, 2}
    elif fn == "gain_grid":
        name, kw = one_bad(data, dict(lim=(-1.0, 1.0), n=5),
                           {"lim": st.tuples(hostile(), hostile()) | hostile(),
                            "n": hostile(ints=(-5, 50))})
        out = attempt(lambda: gains.gain_grid(**kw), name)
        if out is not ERROR:
            assert out[2].shape == (kw["n"], kw["n"], 2) and finite(out[2])
    elif fn == "lqr_feedback":
        R = data.draw(hostile(), label="R")
        out = attempt(lambda: gains.lqr_feedback(ENV, R), "R")
        if out is not ERROR:  # it stabilizes the double integrator
            assert gains.stability_region(out, ENV) == 0
    elif fn == "fixed_starts":
        name, kw = one_bad(data, dict(env=ENV, n=4, seed=1))
        out = attempt(lambda: gains.fixed_starts(**kw), name)
        if out is not ERROR:
            assert out.shape == (kw["n"], 2)
    elif fn == "probe":
        name, kw = one_bad(data, dict(env=ENV, x0=X0, T=5), {"x0": tensors((4, 2))})
        measure = attempt(lambda: gains.probe(**kw), name)
        if measure is not ERROR:
            out = measure(RNNAgent(N=3, seed=0))
            assert all(finite(v) for v in out.values())
    else:
        x = data.draw(tensors((6, 3, 2)), label="x")
        u = data.draw(tensors((6, 3)), label="u")
        out = attempt(lambda: gains.effective_gains(x, u), ("x", "u"))
        if out is not ERROR:
            assert finite(out[0]) and finite(out[1])


@MANY
@given(st.data())
@counted
def test_theory_functions(data):
    fn = data.draw(st.sampled_from(["cubic_roots", "stage1_eigenvalues", "stage1_loss",
                                    "lqr_gain", "stage1_simulated_loss"]), label="function")
    if fn == "cubic_roots":
        q = data.draw(tensors((3, 4)) | hostile(), label="overlaps")
        out = attempt(lambda: theory.cubic_roots(q), "overlaps")
        if out is not ERROR:  # the roots solve the cubic
            c = theory.cubic_coefficients(q).reshape(-1, 4)
            for ci, ri in zip(c, out.reshape(-1, 3)):
                scale = (1 + np.abs(ci).sum()) ** 3
                assert np.all(np.abs(np.polyval(ci, ri)) <= 1e-8 * scale)
    elif fn == "stage1_eigenvalues":
        s = data.draw(tensors((3,)) | hostile(), label="s_zm")
        out = attempt(lambda: theory.stage1_eigenvalues(s), "s_zm")
        if out is not ERROR:
            assert finite(out)
    elif fn == "stage1_loss":
        name, kw = one_bad(data, dict(s_zm=np.array([-0.2, 0.0, 0.1]), T=20),
                           {"s_zm": tensors((3,)) | hostile()})
        out = attempt(lambda: theory.stage1_loss(**kw), name)
        if out is not ERROR:  # a loss: positive, inf beyond float64, never NaN
            assert not np.isnan(out).any() and (out > 0).all()
    elif fn == "lqr_gain":
        name, kw = one_bad(data, dict(A=ENV.A, B=ENV.B, Q=None, R=1e-8),
                           {"A": tensors((2, 2)) | hostile(), "B": tensors((2,)) | hostile(),
                            "Q": tensors((2, 2)) | hostile()})
        out = attempt(lambda: theory.lqr_gain(**kw), name)
        if out is not ERROR:
            assert finite(out)
    else:
        name, kw = one_bad(data, dict(s_zm=np.array([-0.1, 0.2]), env=ENV, T=10, N=4, seed=0,
                                      uv_scale=1e-3), {"s_zm": tensors((2,)) | hostile(),
                                                       "T": hostile(ints=(-5, 300))})
        out = attempt(lambda: theory.stage1_simulated_loss(**kw), name)
        if out is not ERROR:
            assert not np.isnan(out).any() and (out >= 0).all()


@SOME
@given(st.data())
@counted
def test_stage_detection(data):
    valid = dict(epochs=np.arange(10), condition=np.arange(10) % 4 > 0)
    name, kw = one_bad(data, valid, {k: tensors((10,)) | hostile() for k in valid})
    out = attempt(lambda: stages.settles(**kw), ("epochs", "condition"))
    if out is not ERROR:  # against a plain scan from the end
        e, c = np.asarray(kw["epochs"]), np.asarray(kw["condition"]).astype(bool)
        i = len(c)
        while i > 0 and c[i - 1]:
            i -= 1
        assert out == (None if i == len(c) else e[i])
    h = data.draw(hostile(), label="history")
    attempt(lambda: stages.detect_stages(h), "history")


# -- Chapter 4 --------------------------------------------------------------------------------
@SOME
@given(st.data())
@counted
def test_tracking_construction(data):
    cls, valid, bad = data.draw(st.sampled_from([
        (tr.PointMass, dict(dt=0.1, bound=10.0), {}),
        (tr.Sinusoids, dict(freqs=(0.1, 0.3), axes=(0, 1), amplitude=2.0, T=30, dt=0.1,
                            ramp=1.0),
         {"freqs": st.lists(hostile(), max_size=3) | hostile(),
          "axes": st.lists(hostile(), max_size=3) | hostile(),
          "amplitude": st.lists(hostile(), max_size=3) | hostile()}),
        (tr.TrackingRNN, dict(N=5, g=0.2, dt=0.1, tau=1.0, seed=0), {}),
    ]), label="class")
    name, kw = one_bad(data, valid, bad)
    obj = attempt(lambda: cls(**kw), name)
    if isinstance(obj, tr.Sinusoids):
        assert finite(obj.rho.abs()) and all(f < 1 / (2 * obj.dt) for f in obj.freqs)
    if isinstance(obj, tr.TrackingRNN):
        assert finite(obj.W) and finite(obj.W_out)


@SOME
@given(st.data())
@counted
def test_train_tracking(data):
    refs = tr.Sinusoids(T=20)
    valid = dict(agent=Fresh(lambda: tr.TrackingRNN(N=4, seed=0)), plant=tr.PointMass(),
                 refs=refs, epochs=2, lr=1e-3, batch=3, mode="sampled", teacher=None, seed=0,
                 test_seed=1, n_test=2, test_every=1, record_every=1)
    train_hostile(data, tr.train_tracking, valid, {"epochs": hostile(huge=False, ints=(-5, 3)),
                                                    "test_every": hostile(huge=False),
                                                    "record_every": hostile(huge=False)})


@SOME
@given(st.data())
@counted
def test_tracking_functions(data):
    agent, plant, refs = tr.TrackingRNN(N=4, seed=0), tr.PointMass(), tr.Sinusoids(T=20)
    fn = data.draw(st.sampled_from(["rollout", "tracking_loss", "running_median",
                                    "acquisition_epoch", "frequency_match", "signal"]),
                   label="function")
    r = refs.signal(torch.zeros(2, 4))  # (T+1, B, 2) = (21, 2, 2): time first
    if fn == "rollout":
        bad = data.draw(tensors((21, 2, 2)), label="r")
        out = attempt(lambda: tr.rollout(agent, plant, bad), "r")
        if out is not ERROR:
            steps = tuple(np.shape(bad))[:-1]  # (T+1, B): time first
            assert out["q"].shape == steps + (4,) and out["u"].shape == steps + (2,)
            assert finite(out["q"]) and (out["q"].abs() <= plant.bound).all()
    elif fn == "tracking_loss":
        name, kw = one_bad(data, dict(q=torch.zeros(21, 2, 4, dtype=torch.float64), r=r),
                           {"q": tensors((21, 2, 4)), "r": tensors((21, 2, 2))})
        out = attempt(lambda: tr.tracking_loss(**kw), name)
        if out is not ERROR:  # a sum of squares: inf where it overflows float64, never NaN
            assert out.shape == (2,) and not out.isnan().any() and (out >= 0).all()
    elif fn == "running_median":
        name, kw = one_bad(data, dict(x=np.arange(9.0), window=3),
                           {"x": tensors((9,)) | hostile()})
        out = attempt(lambda: tr.running_median(**kw), name)
        if out is not ERROR:
            assert out.shape == np.shape(kw["x"]) and finite(out)
    elif fn == "acquisition_epoch":
        name, kw = one_bad(data, dict(epochs=np.arange(9), loss=np.linspace(2, 0, 9),
                                      threshold=1.0, window=3),
                           {"epochs": tensors((9,)) | hostile(),
                            "loss": tensors((9,)) | hostile()})
        out = attempt(lambda: tr.acquisition_epoch(**kw), name)
        assert out is ERROR or out is None or isinstance(out, int)
    elif fn == "frequency_match":
        name, kw = one_bad(data, dict(rate_eigs=np.array([1j, -1j, 2j]), omega=[1.0, 2.0]),
                           {"rate_eigs": tensors((3,)) | hostile(),
                            "omega": tensors((2,)) | hostile()})
        out = attempt(lambda: tr.frequency_match(**kw), name)
        if out is not ERROR:
            assert finite(out) and (out >= 0).all()
    else:
        name, kw = one_bad(data, dict(phases=torch.zeros(2, 4, dtype=torch.float64),
                                      which=None),
                           {"phases": tensors((2, 4)), "which": hostile() | st.lists(hostile())})
        out = attempt(lambda: refs.signal(**kw), name)
        if out is not ERROR:  # (T+1, B, 2): time first
            assert out.shape == (21, np.shape(kw["phases"])[0], 2) and finite(out)


@SOME
@given(st.data())
@counted
def test_history_readers(readers, data):
    ens, track, refs = readers
    fn = data.draw(st.sampled_from(["member", "agent_at", "acquisition_epochs",
                                    "largest_frequency", "tracking.agent_at", "coupled"]),
                   label="function")
    if fn == "member":
        k = data.draw(hostile(), label="k")
        out = attempt(lambda: ens.member(k), "k")
        if out is not ERROR:
            np.testing.assert_array_equal(out.loss, ens.loss[:, k])
    elif fn == "agent_at":
        name, kw = one_bad(data, dict(epoch=2, like=RankOneAgent(N=4)),
                           {"like": st.sampled_from([RNNAgent(N=4), "agent", None]) | hostile()})
        out = attempt(lambda: ens.agent_at(**kw), name)
        if out is not ERROR:
            assert out.snapshot_epoch == min(kw["epoch"], 3)
    elif fn == "acquisition_epochs":
        name, kw = one_bad(data, dict(history=track, refs=refs, fraction=0.5, window=3),
                           {"refs": st.just(tr.Sinusoids(freqs=(0.1,), axes=(0,))) | hostile(),
                            "history": st.just(ens) | hostile()})
        out = attempt(lambda: tr.acquisition_epochs(**kw), name)
        if out is not ERROR:
            assert len(out) == refs.K
    elif fn == "largest_frequency":
        name, kw = one_bad(data, dict(history=track, epochs=[0, None, 3]),
                           {"epochs": st.lists(hostile(), max_size=3) | hostile(),
                            "history": st.just(ens) | hostile()})
        out = attempt(lambda: tr.largest_frequency(**kw), name)
        if out is not ERROR:
            assert len(out) == len(kw["epochs"])
    elif fn == "tracking.agent_at":
        name, kw = one_bad(data, dict(history=track, epoch=1, agent=None),
                           {"history": st.just(ens) | hostile()})
        out = attempt(lambda: tr.agent_at(**kw), name)
        if out is not ERROR:
            assert out[1].N == 4
    else:
        which = data.draw(st.sampled_from(["coupled_matrix", "linear_system", "spectrum"]))
        name, kw = one_bad(data, dict(agent=RankOneAgent(N=4), env=ENV))
        out = attempt(lambda: getattr(coupled, which)(**kw), name)
        if out is not ERROR and which == "spectrum":
            assert finite(out)


@pytest.fixture(scope="module")
def readers():
    """An ensemble history (snapshots every epoch) and a tracking history."""
    ens = train_closed_loop(RankOneAgent(N=4, batch_shape=(2,)), ENV, epochs=3, snapshot_every=1)
    refs = tr.Sinusoids(T=20)
    track = tr.train_tracking(tr.TrackingRNN(N=4), refs=refs, epochs=3, batch=2, n_test=2,
                              record_every=1)
    return ens, track, refs


# -- saved files and chapter parameters -------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    h = train_closed_loop(RankOneAgent(N=4), ENV, epochs=3, snapshot_every=1)
    path = tmp_path_factory.mktemp("hostile") / "run.npz"
    h.save(path)
    return h, path.read_bytes(), tmp_path_factory.mktemp("damaged")


@MANY
@given(st.data())
@counted
def test_damaged_files_load_exactly_or_fail_clearly(saved, data):
    h, raw, folder = saved
    content = bytearray(raw)
    how = data.draw(st.sampled_from(["flip", "flip", "cut", "zero", "splice"]), label="how")
    at = data.draw(st.integers(0, len(raw) - 1), label="at")
    if how == "flip":
        content[at] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "cut":
        content = content[:at]
    elif how == "zero":
        content[at:at + 64] = bytes(len(content[at:at + 64]))
    else:
        content[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    path = folder / f"case{data.draw(st.integers(0, 10**9))}.npz"
    path.write_bytes(bytes(content))
    try:
        back = History.load(path)
    except ValueError as e:
        assert "not a readable closedloop history" in str(e)
        return
    finally:
        path.unlink()
    assert back.config == h.config and back.message == h.message  # untouched where it matters
    for k in h.arrays:
        assert back.arrays[k].tobytes() == h.arrays[k].tobytes()


# valid values where 0.1 is not one (a chapter's RELATIONS: Chapter 6's poles need |a| > 1)
VALID = {"ch6_plants": {"a": 1.5, "atlas_values": [1.5]}}


@MANY
@given(st.data())
@counted
def test_chapter_parameters(data):
    chapter = data.draw(st.sampled_from(sorted(CHAPTERS)), label="chapter")
    spec = CHAPTERS[chapter]
    def valid(p):
        if p.kind is list:
            return [valid(p.item)]
        if p.kind is int:
            v = p.low if p.low is not None and not p.low_open else 1
            return v + 1 if p.odd and v % 2 == 0 else v
        return 0.1 if p.kind is float else p.choices[0] if p.choices else "folder"

    values = {k: valid(p) for k, p in spec.items()} | VALID.get(chapter, {})
    check_parameters(chapter, values)
    name, kw = one_bad(data, values)
    if attempt(lambda: check_parameters(chapter, kw), name) is not ERROR:
        assert acceptable(spec[name], kw[name]), f"{name} = {kw[name]!r} was accepted"


def acceptable(p, v) -> bool:
    """What a parameter spec allows, written out independently of ``Param.check``."""
    if v is None:
        return p.none_ok
    if p.kind is list:
        return isinstance(v, (list, tuple)) and len(v) > 0 and all(acceptable(p.item, x)
                                                                     for x in v)
    if p.kind is str:  # one of the choices, or an address where the spec takes one
        if p.pattern == ".+":  # any path
            return isinstance(v, str) and len(v) > 0 and "\n" not in v
        return isinstance(v, str) and (v in p.choices or (
            p.pattern is not None and v.startswith("tcp://") and v.count(":") == 2
            and v.rsplit(":", 1)[1].isdigit() and " " not in v))
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                              np.floating)):
        return False
    if not math.isfinite(v) or (p.kind is int and (v != int(v) or (p.odd and int(v) % 2 == 0))):
        return False
    above = p.low is None or (v > p.low if p.low_open else v >= p.low)
    below = p.high is None or (v < p.high if p.high_open else v <= p.high)
    return above and below


@pytest.mark.parametrize("seeds,error,words", [
    (3, TypeError, "a sequence of seeds"), ("01", TypeError, "a sequence of seeds"),
    ([], ValueError, "at least one"), ([1, 1], ValueError, "distinct"),
    ([0, -1], ValueError, "seeds[1]"), ([0, 1.5], TypeError, "seeds[1]")])
def test_a_bad_seed_list_is_named(seeds, error, words):
    from closedloop import _checks

    with pytest.raises(error, match=re.escape(words)):
        _checks.seeds("seeds", seeds)
    assert _checks.seeds("seeds", range(3)) == (0, 1, 2)


def test_one_value_or_one_per_member():
    """The per-member rule shared by both trainings: one value stays one value; a sequence,
    array or tensor must have the ensemble's shape and is checked item by item."""
    from closedloop import _checks

    seed = _checks.seed
    assert _checks.members("seed", 3, (2,), seed) == 3
    assert _checks.members("seed", np.array(4), (2,), seed) == 4
    assert _checks.members("seed", [2**64 - 1, 0], (2,), seed) == [2**64 - 1, 0]  # no int64
    assert _checks.members("seed", torch.tensor([1, 2]), (2,), seed) == [1, 2]
    with pytest.raises(ValueError, match=re.escape("shape (3,), got (2,)")):
        _checks.members("seed", [1, 2], (3,), seed)
    with pytest.raises(ValueError, match="none here"):
        _checks.members("seed", [1, 2], (), seed)
    with pytest.raises(ValueError, match=re.escape("seed[1] must be >= 0")):
        _checks.members("seed", [1, -2], (2,), seed)
