"""The open-loop student's excursion (paper s.6) and what causes it (Chapter 1).

Read off training histories: the student's test-loss peak (``find_excursion``), the
closed-loop plateau (``find_plateau``), the epochs at which a pair is replayed
(``replay_epochs``); and trained: the pair of trainings (closed loop, then
an open-loop student of its final network from the same initial weights) under the
authors' setup and under each of its ingredients switched one at a time (``train_pairs``),
as few ensembles as the settings allow.

Test losses here are whatever the histories recorded (Chapter 1: the authors' summed state
cost, ``gains.probe(..., units='summed')``).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context

import numpy as np
import torch

from . import _checks, conventions, streams
from ._threads import single_thread
from .agents import RNNAgent
from .envs import DoubleIntegrator
from .training import train_closed_loop, train_open_loop


# -- reading a history ------------------------------------------------------------------------
@dataclass(frozen=True)
class Excursion:
    """The highest test loss a training reached *after* it had been lower (a rise, not the
    untrained network's start), against its start and its end.

    ``peak_epoch`` is None when the test loss never rose above a value it had reached before
    (then ``peak_loss`` is NaN)."""

    peak_epoch: int | None
    peak_loss: float
    start_loss: float
    final_loss: float

    @property
    def ratio(self) -> float:
        """Peak over final test loss (NaN without a rise)."""
        return self.peak_loss / self.final_loss

    @property
    def over_start(self) -> float:
        """Peak over the test loss at epoch 0 (NaN without a rise)."""
        return self.peak_loss / self.start_loss

    @property
    def shows(self) -> bool:
        """The excursion of the paper: the test loss rises above the untrained network's."""
        return self.peak_epoch is not None and self.peak_loss > self.start_loss


def find_excursion(epochs, test_loss) -> Excursion:
    """The excursion of one test-loss curve: ``epochs`` (E,) and ``test_loss`` (E,) positive.

    The peak is the largest test loss among the epochs at which it stands above the lowest
    value reached before them (so a curve that only falls has none). Introduced in Chapter 1,
    section "Open-loop training".
    """
    epochs, loss = _curve(epochs, test_loss, "test_loss")
    rising = np.zeros(loss.shape, bool)
    rising[1:] = loss[1:] > np.minimum.accumulate(loss)[:-1]
    if not rising.any():
        return Excursion(None, math.nan, float(loss[0]), float(loss[-1]))
    i = int(np.argmax(np.where(rising, loss, -np.inf)))
    return Excursion(int(epochs[i]), float(loss[i]), float(loss[0]), float(loss[-1]))


def find_plateau(epochs, loss, flat: float = 2.0, drop: float = 10.0):
    """The longest stretch of epochs over which ``loss`` stays within a factor ``flat``
    (max/min <= flat) and after which it later falls below 1/``drop`` of that stretch's
    lowest value: (first epoch, last epoch), or None (the earliest of equally long ones).

    The second condition keeps the final convergence out (it is flat but nothing follows).
    Introduced in Chapter 1, section "Closed-loop training".
    """
    epochs, loss = _curve(epochs, loss, "loss")
    flat = _checks.real("flat", flat, low=1.0, low_open=True)
    drop = _checks.real("drop", drop, low=1.0, low_open=True)
    later_min = np.append(np.minimum.accumulate(loss[::-1])[::-1][1:], np.inf)  # min after i
    best = None
    for a in range(len(loss)):
        seg = loss[a:]
        lo = np.minimum.accumulate(seg)
        flat_so_far = np.logical_and.accumulate(np.maximum.accumulate(seg) <= flat * lo)
        ends = np.flatnonzero(flat_so_far & (later_min[a:] < lo / drop))
        if ends.size and (best is None or ends[-1] > best[1] - best[0]):
            best = (a, a + int(ends[-1]))
    return None if best is None else (int(epochs[best[0]]), int(epochs[best[1]]))


def learned_shares(history):
    """How far a network has come, at each recorded epoch, on the first two weights of its
    linearized response to the position: z.m (the current position) and z.W m (the position
    one step back), each as a share of its final value: two arrays (E,). Needs a
    ``gains.probe`` monitor (``instant_gain``, ``lag_gain``).
    Introduced in Chapter 1, section "What causes the excursion".
    """
    arrays = getattr(history, "arrays", None)
    if not isinstance(arrays, dict) or not {"instant_gain", "lag_gain"} <= set(arrays):
        raise ValueError("history must be a training History with a gains.probe monitor "
                         "(instant_gain and lag_gain)")
    w0, w1 = arrays["instant_gain"], arrays["lag_gain"]
    if w0.ndim != 1:
        raise ValueError("learned_shares needs a single run; use history.member(k)")
    return w0 / w0[-1], w1 / w1[-1]


def lag_at_half(history) -> float:
    """The share of its final z.W m a network had at the first recorded epoch at which it had
    half of its final z.m (``learned_shares``): about 0.5 when both are learned at one pace,
    near 0 when the response to the current position comes first."""
    share0, share1 = learned_shares(history)
    return float(share1[int(np.argmax(share0 >= 0.5))])


def recurrent_spectra(history) -> tuple[np.ndarray, np.ndarray]:
    """eig(W) of the RNN alone at every parameter snapshot of ``history``: (snapshot epochs
    (S,), eigenvalues (S, N) complex, largest modulus first). ValueError without snapshots
    of W. Introduced in Chapter 1, section "The final solutions"."""
    if "params/W" not in history.arrays:
        raise ValueError("history has no snapshots of W: train with snapshot_every > 0 "
                         "(an RNNAgent)")
    W = np.asarray(history.arrays["params/W"], dtype=np.float64)
    if W.ndim != 3:
        raise ValueError(f"recurrent_spectra needs a single run, got W snapshots of shape "
                         f"{W.shape}")
    ev = np.linalg.eigvals(W)
    return history.snapshot_epoch, np.take_along_axis(ev, np.argsort(-np.abs(ev), -1), -1)


def replay_epochs(h_closed, stages, peak_epoch: int) -> tuple[list, list]:
    """The epochs at which Chapter 1 replays each network of a pair, in order, without
    repeats: the teacher (``h_closed``) at its start, the end of its stage 1 (at least 1),
    the start of its stage 3 (or halfway, if never stable) and its last epoch; the student at
    its start, ``peak_epoch`` and the teacher's last epoch. ``stages`` is
    ``detect_stages(h_closed)``. Introduced in Chapter 1, section "Rollouts".
    """
    last = int(h_closed.epoch[-1])
    closed = [0, max(1, stages.stage1_end or 1), stages.stabilization or last // 2, last]
    return sorted(set(closed)), sorted({0, peak_epoch, last})


def _curve(epochs, values, name):
    epochs, values = np.asarray(epochs), np.asarray(values, dtype=float)
    if epochs.ndim != 1 or values.shape != epochs.shape or len(epochs) < 2:
        raise ValueError(f"epochs and {name} must be 1-d of equal length >= 2, got shapes "
                         f"{epochs.shape} and {values.shape}")
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError(f"{name} must be finite and positive")
    return epochs, values


# -- the ablation ---------------------------------------------------------------------------
MEAN_CLOSED = conventions.PAPER_TANH.with_(time="mean", name="paper (tanh), time mean")
MEAN_OPEN = conventions.PAPER_OPEN_LOOP.with_(time="mean", name="paper (open loop), time mean")


@dataclass(frozen=True)
class Setting:
    """One pair of trainings: the teacher's closed-loop convention and the initial scale of
    m, z (``init`` of ``RNNAgent``; the student starts from the same weights), and the
    student's convention and inputs. ``key`` names the setting in code (results are indexed
    by it), ``label`` in figures and tables."""

    key: str
    label: str
    init: str = "paper"
    closed: conventions.Convention = conventions.PAPER_TANH
    student: conventions.Convention = conventions.PAPER_OPEN_LOOP
    inputs: str = "white_noise"


def ablation_settings(inputs: str = "white_noise") -> tuple:
    """The authors' setup (the student on ``inputs``) and each of its ingredients switched on
    its own: the student's loss averaged over time instead of summed (1/T as large: unclipped
    steps T times smaller; its teacher unchanged), m and z drawn with standard deviation
    1/sqrt(N) instead of 1/N (the pair: the teacher starts there and the student from the
    teacher's initial weights), the student's other inputs (its teacher unchanged).
    Introduced in Chapter 1, section "What causes the excursion".
    """
    from .training import INPUTS

    _checks.choice("inputs", inputs, INPUTS)
    other = INPUTS[1 - INPUTS.index(inputs)]
    return (Setting("paper", "authors' setup", inputs=inputs),
            Setting("mean", "time mean (student)", student=MEAN_OPEN, inputs=inputs),
            Setting("init", "m, z std 1/sqrt(N)", init="gaussian", inputs=inputs),
            Setting("inputs", f"{other.replace('_', ' ')} inputs", inputs=other))


@dataclass
class Pairs:
    """What ``train_pairs`` trained: per (setting key, seed) the teacher's (``closed``) and
    the student's (``open``) History, single runs taken out of the ensembles; the settings,
    seeds, environment and clipping norm they were trained with."""

    settings: tuple
    seeds: tuple
    env: object = None
    clip: float | None = None
    closed: dict = field(default_factory=dict)
    open: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def reference(self) -> str:
        """The key of the first setting (the one every seed runs)."""
        return self.settings[0].key

    def excursion(self, key: str, seed: int) -> Excursion:
        """The student's excursion in setting ``key`` at ``seed``."""
        h = self.open[(key, seed)]
        return find_excursion(h.monitor_epoch, h.test_loss)

    def students(self, seed: int) -> dict:
        """{setting label: the student's History} at ``seed``, in the order of the settings
        (the reference first), for a figure of the ablation."""
        return {s.label: self.open[(s.key, seed)] for s in self.settings}

    def seeds_showing(self) -> int:
        """How many seeds' students of the reference setting show the excursion."""
        return sum(self.excursion(self.reference, sd).shows for sd in self.seeds)

    def table(self) -> list[dict]:
        """One row per setting (at the first seed) about its student: the peak epoch, peak /
        final and peak / start test loss, whether it shows the excursion, how many recorded
        epochs its effective gains spent in the unstable oscillatory region, the share of its
        updates whose gradient was clipped, ``lag_at_half`` (``lag_at_half``), its final test
        loss and its teacher's."""
        from .gains import stability_region

        rows, seed = [], self.seeds[0]
        for s in self.settings:
            ex, h = self.excursion(s.key, seed), self.open[(s.key, seed)]
            grad = h.grad_norm[1:]  # the updates: epochs 1..epochs (epoch 0 only records)
            clipped = float(np.mean(grad > self.clip)) if self.clip is not None else 0.0
            rows.append(dict(key=s.key, setting=s.label, peak_epoch=ex.peak_epoch, ratio=ex.ratio,
                             over_start=ex.over_start, shows=ex.shows,
                             oscillatory_epochs=int((stability_region(h.gains, self.env)
                                                     == 1).sum()),
                             clipped=clipped, lag_at_half=lag_at_half(h), final=ex.final_loss,
                             teacher_final=float(self.closed[(s.key, seed)].test_loss[-1])))
        return rows

    def markdown(self) -> str:
        """``table()`` as a Markdown table (for a chapter's glue)."""
        head = ("| setting | peak epoch | peak / final | peak / start | epochs with "
                "unstable-oscillatory gains | updates clipped | z.W m learned at half z.m "
                "| final test loss |\n|---|---|---|---|---|---|---|---|\n")
        fmt = lambda v: "-" if v is None or v != v else f"{v:.3g}"
        return head + "".join(
            f"| {r['setting']} | {fmt(r['peak_epoch'])} | {fmt(r['ratio'])} | "
            f"{fmt(r['over_start'])} | {r['oscillatory_epochs']} | {100 * r['clipped']:.0f}% | "
            f"{100 * r['lag_at_half']:.0f}% | {r['final']:.3g} |\n" for r in self.table())


def train_pairs(settings, seeds=(0,), *, N: int = 100, g: float = 0.1, epochs: int = 1000,
                T: int = 50, lr: float = 1e-2, batch: int = 100, clip: float | None = 1.0,
                beta: float = 0.005, env=None, monitor=None, snapshot_every: int = 0,
                workers: int = 1, stream: str = "authors", dtype=None) -> Pairs:
    """The pair of trainings for every setting at the first seed, and for the first setting
    (the reference) at every seed of ``seeds``.

    A pair: ``RNNAgent(N, g, seed=seed, init=setting.init)`` trained closed loop with the
    setting's convention (the teacher) and ``beta``; then a student from the same initial
    weights trained open loop to imitate the teacher's final network. Settings that share a
    teacher share its training. ``stream`` says what a seed draws (``streams.KINDS``):
    'authors', the run the authors' code makes at that seed (network, batches, and the
    student's inputs continuing the teacher's stream); 'package', the package's networks,
    with every run on the batches of the first seed (so the reference pair at the first seed
    is what ``train_closed_loop``/``train_open_loop`` give run alone at that seed).

    ``workers`` > 1 trains that many runs at a time in worker processes (one thread each;
    a student starts as soon as its teacher is done). Single runs, not ensembles: a tanh
    ensemble of K members costs K single runs or more here (measured on 2 cores, N = 100,
    with a test-loss monitor: an open-loop member 24 s alone, 26-27 s in ensembles of 2-5).
    ``monitor`` (e.g. ``gains.probe``; picklable when ``workers`` > 1) records every epoch
    of every student and of the reference teacher, the first and last epoch of the other
    teachers; eig(P) every epoch and parameter snapshots every ``snapshot_every`` epochs are
    recorded for the reference pair only. ``dtype``: the number format of the trainings
    (default ``env``'s; the authors trained in float32); the monitor measures in ``env``'s.
    Introduced in Chapter 1, section "What causes the excursion".
    """
    settings = tuple(settings)
    if not settings or not all(isinstance(s, Setting) for s in settings):
        raise TypeError(f"settings must be a non-empty sequence of Setting, got "
                        f"{_checks.short(settings)}")
    if len({s.key for s in settings}) != len(settings):
        raise ValueError("settings must have distinct keys")
    seeds = _checks.seeds("seeds", seeds)
    _checks.choice("stream", stream, streams.KINDS)
    workers = _checks.integer("workers", workers, low=1)
    for name, value in (("N", N), ("epochs", epochs), ("T", T), ("batch", batch)):
        _checks.integer(name, value, low=1)
    start = time.perf_counter()
    env = DoubleIntegrator() if env is None else env
    dtype = env.dtype if dtype is None else _checks.float_dtype("dtype", dtype)
    common = dict(epochs=epochs, T=T, lr=lr, batch=batch, clip=clip, eig_W=False,
                  monitor=monitor)
    draw = dict(N=N, g=g, kind=stream, batches=seeds[0], dtype=dtype)
    train_env = env.to(dtype)
    if workers == 1:
        out = _train_pairs(settings, seeds, draw, beta, train_env, common, snapshot_every,
                           _Here())
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                 initializer=_one_thread) as pool:
            out = _train_pairs(settings, seeds, draw, beta, train_env, common, snapshot_every,
                               pool)
    out.env = env
    out.seconds = time.perf_counter() - start
    return out


def _train_pairs(settings, seeds, draw, beta, env, common, snapshot_every, pool):
    """``train_pairs`` after its checks, its runs submitted to ``pool``."""
    runs = [(s, seeds[0]) for s in settings] + [(settings[0], sd) for sd in seeds[1:]]
    teacher_of = {run: (run[0].closed, run[0].init, run[1]) for run in runs}
    keys = list(dict.fromkeys(teacher_of.values()))  # the reference teacher first
    # each teacher's stream: the authors' continues from its network's draw into its batches
    stream = {k: (streams.Stream(k[2], "authors") if draw["kind"] == "authors"
                  else draw["batches"]) for k in keys}
    initial = {k: RNNAgent(N=draw["N"], g=draw["g"], init=k[1], dtype=draw["dtype"],
                           seed=stream[k] if draw["kind"] == "authors" else k[2]).snapshot()
               for k in keys}
    record = dict(eig_every=1, snapshot_every=snapshot_every, monitor_every=1)
    last = common["epochs"] + 1  # the final network's row (no update at epoch 0) or beyond
    quiet = dict(eig_every=0, snapshot_every=0)
    teachers = {pool.submit(_train_teacher, initial[k], k[0], beta, env,
                            dict(common, seed=stream[k], **(record if k == keys[0] else
                                                            dict(quiet, monitor_every=last)))): k
                for k in keys}
    out, students = Pairs(settings, seeds, env, common["clip"]), {}
    for done in as_completed(teachers):
        k = teachers[done]
        history, final, after = done.result()
        for run in (r for r in runs if teacher_of[r] == k):
            out.closed[(run[0].key, run[1])] = history
            seed = after.student(common["T"]) if isinstance(after, streams.Stream) else after
            students[pool.submit(_train_student, initial[k], final, run[0].inputs,
                                 run[0].student, env,
                                 dict(common, seed=seed,
                                      **(record if run == runs[0] else quiet)))] = run
    for done in as_completed(students):
        s, sd = students[done]
        out.open[(s.key, sd)] = done.result()
    return out


class _Here:
    """An executor that runs each job when it is submitted, in this process."""

    def submit(self, f, *args):
        future = Future()
        try:
            future.set_result(f(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            future.set_exception(exc)
        return future


def _one_thread():
    torch.set_num_threads(1)


def _agent(snapshot):
    """A tanh RNN from a parameter snapshot ({'W', 'm', 'z'} numpy arrays)."""
    return RNNAgent.from_tensors(*(torch.as_tensor(snapshot[k]) for k in "Wmz"))


def _train_teacher(snapshot, conv, beta, env, kw):
    """A job: one teacher trained closed loop: (history, its final parameters, its stream
    where training left it)."""
    agent = _agent(snapshot)
    with single_thread():
        h = train_closed_loop(agent, env, beta=beta, convention=conv, **kw)
    return h, agent.snapshot(), kw["seed"]


def _train_student(snapshot, teacher, inputs, conv, env, kw):
    """A job: one student trained open loop on ``teacher``: its history."""
    with single_thread():
        return train_open_loop(_agent(snapshot), _agent(teacher), env, inputs=inputs,
                               convention=conv, **kw)
