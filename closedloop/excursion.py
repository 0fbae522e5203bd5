"""The open-loop student's excursion (paper s.6) and what causes it (Chapter 1).

Read off training histories: the student's test-loss peak (``find_excursion``), the
closed-loop plateau (``find_plateau``); and trained: the pair of trainings (closed loop, then
an open-loop student of its final network from the same initial weights) under the
authors' setup and under each of its ingredients switched one at a time (``train_pairs``),
as few ensembles as the settings allow.

Test losses here are whatever the histories recorded (Chapter 1: the authors' summed state
cost, ``gains.probe(..., units='summed')``).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import numpy as np
import torch

from . import _checks, conventions
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
    its own: the loss averaged over time instead of summed (the student's only, then both
    trainings': a loss 1/T as large, so unclipped steps T times smaller), m and z drawn with
    standard deviation 1/sqrt(N) instead of 1/N (both: the student starts from the teacher's
    initial weights), the student's other inputs. Introduced in Chapter 1, section "What
    causes the excursion".
    """
    from .training import INPUTS

    _checks.choice("inputs", inputs, INPUTS)
    other = INPUTS[1 - INPUTS.index(inputs)]
    return (Setting("paper", "authors' setup", inputs=inputs),
            Setting("mean_student", "time mean (student)", student=MEAN_OPEN, inputs=inputs),
            Setting("mean_both", "time mean (both)", closed=MEAN_CLOSED, student=MEAN_OPEN,
                    inputs=inputs),
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

    def seeds_showing(self) -> int:
        """How many seeds' students of the reference setting show the excursion."""
        return sum(self.excursion(self.reference, sd).shows for sd in self.seeds)

    def table(self) -> list[dict]:
        """One row per setting (at the first seed) about its student: the peak epoch, peak /
        final and peak / start test loss, whether it shows the excursion, how many recorded
        epochs its effective gains spent in the unstable oscillatory region, the share of its
        updates whose gradient was clipped, its final test loss and its teacher's."""
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
                             clipped=clipped, final=ex.final_loss,
                             teacher_final=float(self.closed[(s.key, seed)].test_loss[-1])))
        return rows

    def markdown(self) -> str:
        """``table()`` as a Markdown table (for a chapter's glue)."""
        head = ("| setting | peak epoch | peak / final | peak / start | epochs with "
                "unstable-oscillatory gains | updates clipped | final test loss |\n"
                "|---|---|---|---|---|---|---|\n")
        fmt = lambda v: "-" if v is None or v != v else f"{v:.3g}"
        return head + "".join(
            f"| {r['setting']} | {fmt(r['peak_epoch'])} | {fmt(r['ratio'])} | "
            f"{fmt(r['over_start'])} | {r['oscillatory_epochs']} | {100 * r['clipped']:.0f}% | "
            f"{r['final']:.3g} |\n" for r in self.table())


def train_pairs(settings, seeds=(0,), *, N: int = 100, g: float = 0.1, epochs: int = 1000,
                T: int = 50, lr: float = 1e-2, batch: int = 100, clip: float | None = 1.0,
                beta: float = 0.005, env=None, monitor=None, snapshot_every: int = 0,
                workers: int = 1) -> Pairs:
    """The pair of trainings for every setting at the first seed, and for the first setting
    (the reference) at every seed of ``seeds``.

    A pair: ``RNNAgent(N, g, seed=seed, init=setting.init)`` trained closed loop with the
    setting's convention (the teacher) and ``beta``; then a student from the same initial
    weights trained open loop to imitate the teacher's final network. Seeds fix the initial
    networks; every run trains on the batches of the first seed (so the reference pair at
    the first seed is the single run ``train_closed_loop``/``train_open_loop`` would make).
    Teachers that share a convention train as ensembles, all students as ensembles (their
    conventions and inputs per member); ``workers`` > 1 splits them into that many parts
    trained side by side in worker processes (one thread each). ``monitor`` (e.g.
    ``gains.probe``; it must be picklable when ``workers`` > 1) applies to every run; eig(P)
    every epoch and parameter snapshots every ``snapshot_every`` epochs are recorded for the
    part holding the reference pair at the first seed only. Introduced in Chapter 1, section
    "What causes the excursion".
    """
    settings = tuple(settings)
    if not settings or not all(isinstance(s, Setting) for s in settings):
        raise TypeError(f"settings must be a non-empty sequence of Setting, got "
                        f"{_checks.short(settings)}")
    if len({s.key for s in settings}) != len(settings):
        raise ValueError("settings must have distinct keys")
    if isinstance(seeds, (int, str)) or not hasattr(seeds, "__len__"):
        raise TypeError(f"seeds must be a sequence of seeds, got {_checks.short(seeds)}")
    seeds = tuple(_checks.integer(f"seeds[{i}]", s, low=0) for i, s in enumerate(seeds))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    workers = _checks.integer("workers", workers, low=1)
    for name, value in (("N", N), ("epochs", epochs), ("T", T), ("batch", batch)):
        _checks.integer(name, value, low=1)
    start = time.perf_counter()
    env = DoubleIntegrator() if env is None else env
    runs = [(s, seeds[0]) for s in settings] + [(settings[0], sd) for sd in seeds[1:]]
    common = dict(epochs=epochs, T=T, lr=lr, batch=batch, clip=clip, monitor=monitor,
                  seed=seeds[0], eig_W=False, env=env)
    record = dict(eig_every=1, snapshot_every=snapshot_every)
    quiet = dict(eig_every=0, snapshot_every=0)

    if workers == 1:
        return _train_pairs(settings, seeds, runs, N, g, beta, common, record, quiet, 1, None,
                            start)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_one_thread) as pool:
        return _train_pairs(settings, seeds, runs, N, g, beta, common, record, quiet, workers,
                            pool, start)


def _train_pairs(settings, seeds, runs, N, g, beta, common, record, quiet, workers, pool,
                 start):
    """``train_pairs`` after its checks, on ``pool`` (None: in this process)."""
    # the teachers: per closed-loop convention, members (init, seed), the reference first
    keys = list(dict.fromkeys((s.closed, s.init, sd) for s, sd in runs))
    initial = {k: RNNAgent(N=N, g=g, seed=k[2], init=k[1]).snapshot() for k in keys}
    jobs = []
    for conv in dict.fromkeys(k[0] for k in keys):
        members = [k for k in keys if k[0] == conv]
        for part in _parts(members, len(keys), workers):
            rec = record if part[0] == keys[0] else quiet
            jobs.append((_train_teachers, (conv, [initial[k] for k in part], beta,
                                           dict(common, **rec)), part))
    teachers, final = {}, {}
    for (h, finals), part in _run(jobs, pool):
        for i, k in enumerate(part):
            teachers[k], final[k] = h.member(i), finals[i]

    # the students: from the teachers' initial weights, imitating their final networks
    jobs = []
    for part in _parts(runs, len(runs), workers):
        keys_ = [(s.closed, s.init, sd) for s, sd in part]
        rec = record if part[0] == runs[0] else quiet
        jobs.append((_train_students, ([initial[k] for k in keys_], [final[k] for k in keys_],
                                       [s.inputs for s, _ in part],
                                       [s.student for s, _ in part], dict(common, **rec)),
                     part))
    out = Pairs(settings, seeds, common["env"], common["clip"])
    for h, part in _run(jobs, pool):
        for i, (s, sd) in enumerate(part):
            out.open[(s.key, sd)] = h.member(i)
            out.closed[(s.key, sd)] = teachers[(s.closed, s.init, sd)]
    out.seconds = time.perf_counter() - start
    return out


def _parts(members, total, workers):
    """``members`` in consecutive parts of at most ceil(total / workers)."""
    size = max(1, math.ceil(total / workers))
    return [members[i:i + size] for i in range(0, len(members), size)]


def _run(jobs, pool):
    """[(result, tag)] of jobs (function, args, tag), on ``pool`` if given (largest jobs
    first, so that the parts finish together), else here."""
    if pool is None:
        return [(f(*args), tag) for f, args, tag in jobs]
    futures = {i: pool.submit(jobs[i][0], *jobs[i][1])
               for i in sorted(range(len(jobs)), key=lambda i: -len(jobs[i][2]))}
    return [(futures[i].result(), jobs[i][2]) for i in range(len(jobs))]


def _one_thread():
    torch.set_num_threads(1)


def _ensemble(snapshots):
    """An ensemble of tanh RNNs from parameter snapshots ({'W', 'm', 'z'} numpy arrays)."""
    return RNNAgent.stack([RNNAgent.from_tensors(*(torch.as_tensor(s[k]) for k in "Wmz"))
                           for s in snapshots])


def _train_teachers(conv, snapshots, beta, kw):
    """A worker's part of the teachers: (history, final parameters of each member)."""
    agent = _ensemble(snapshots)
    with single_thread():
        h = train_closed_loop(agent, kw.pop("env"), beta=beta, convention=conv, **kw)
    return h, [agent.member(i).snapshot() for i in range(len(snapshots))]


def _train_students(snapshots, teachers, inputs, convs, kw):
    """A worker's part of the students: their history."""
    with single_thread():
        return train_open_loop(_ensemble(snapshots), _ensemble(teachers), kw.pop("env"),
                               inputs=inputs, convention=convs, **kw)
