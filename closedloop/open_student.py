"""The open-loop student of a rank-one linear teacher (issue 28; Chapter 6).

Chapter 1's experiment with the tanh network replaced by the rank-one linear network of
Chapters 2-3: a teacher trained closed loop at the paper's defaults (the authors' stream,
``PAPER_RANK_ONE``, 1000 epochs), and a student from the teacher's epoch-0 weights trained
open loop (``PAPER_OPEN_LOOP``, as Chapter 1's student) to imitate the teacher's final
network on i.i.d. N(0, input_std^2) positions. For a linear rank-one network both losses are
functions of the four overlaps q = (s_zm, s_zu, s_vm, s_vu), so the student's closed loop is
known exactly at every epoch: its P_eff (4 x 4), rho(P_eff) and expected loss.

What the open loop sees. With h_0 = 0 the network's control is a convolution of its inputs,
u_t = sum_{k=0}^{t-1} g_k y_{t-k}, with the impulse response g_k = z W^k m:

    g_0 = s_zm,    g_k = p s_vu^(k-1) (k >= 1),    p = s_zu s_vm.

On white noise of variance sigma^2 the imitation loss summed over t = 1..T is, exactly in
expectation (``open_loop_loss``),

    L_open = sigma^2 sum_{k=0}^{T-1} (T - k) (g_k - g*_k)^2,

a weighted distance between impulse responses; ``time='mean'`` divides it by T. The closed
loop's characteristic polynomial lambda^3 - (s_vu + 2) lambda^2 + (2 s_vu - s_zm + 1) lambda
+ s_vu s_zm - s_vu - p sees the same three numbers (s_zm, p, s_vu): the loop of the plant
1/(lambda - 1)^2 with the controller K(lambda) = s_zm + p / (lambda - s_vu) = sum_k g_k
lambda^-k. The open loop pulls g_0 = s_zm, which is linear in z and weighted T, straight to
the teacher's (about -0.9), while p, a product of two small overlaps, grows slowly from ~0.
With p ~ 0 the pair is 1 +/- i sqrt(|s_zm|), |lambda|^2 = 1 + |s_zm|: a strong position
feedback without its velocity part, an oscillation that grows. To first order in p
(``required_product``) the pair is inside the unit circle only once

    p > p_c = |s_zm| ((1 - s_vu)^2 + |s_zm|) / (2 - s_vu)        (s_zm < 0).

Later the same order of learning can cross the other boundary: p reaches the teacher's value
before s_vu does, and the static gain K(1) = s_zm + p / (1 - s_vu) = sum_k g_k (``dc_gain``;
q(1) = -(1 - s_vu) K(1)), a small difference of large parts (about -0.96 + 0.84 in the
teacher), turns positive: positive feedback at low frequency, a real root above 1.

Scale, learning rate and clipping do not change this path: sigma^2 and the time factor scale
L_open, and clipping only shortens steps along the gradient, so in the small-step limit
every such setting follows the same gradient-flow curve, at another speed.

Shapes: E recorded rows (epochs), K members (one per seed); overlaps (E, K, 4). Units: the
student's closed-loop loss is the teacher's expected loss (``PAPER_RANK_ONE``: x_0..x_{T-1},
time mean, mean over the two coordinates); its open-loop loss is in its own convention
(default ``PAPER_OPEN_LOOP``: batch-mean squared control difference summed over the T steps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from . import _checks, conventions, coupled, streams
from .agents import OverlapAgent, RankOneAgent
from .envs import DoubleIntegrator
from .history import History
from .training import train_closed_loop, train_open_loop


def impulse_response(overlaps, T: int) -> torch.Tensor:
    """g_k = z W^k m for k = 0..T-1 of rank-one networks: overlaps (..., 4) -> (..., T)."""
    T = _checks.integer("T", T, low=1)
    q = _overlaps(overlaps)
    k = torch.arange(T - 1, dtype=q.dtype)
    tail = (q[..., 1] * q[..., 2])[..., None] * q[..., 3, None] ** k  # p s_vu^(k-1), k >= 1
    return torch.cat([q[..., :1], tail], -1)


def open_loop_loss(overlaps, teacher_overlaps, T: int, convention=None,
                   input_std: float = 1.0) -> torch.Tensor:
    """The imitation loss's expectation over white-noise inputs, exactly: (...).

    sigma^2 sum_{k<T} (T - k) (g_k - g*_k)^2 (``time='sum'``, the default convention
    ``PAPER_OPEN_LOOP``) or that divided by T (``time='mean'``); ``overlaps`` (..., 4) and
    ``teacher_overlaps`` broadcast against each other."""
    conv = conventions.resolve(convention, conventions.PAPER_OPEN_LOOP)
    std = _checks.real("input_std", input_std, low=0.0, low_open=True)
    d = impulse_response(overlaps, T) - impulse_response(teacher_overlaps, T)
    weight = torch.arange(T, 0, -1, dtype=d.dtype)  # T - k
    return std ** 2 * (weight * d ** 2).sum(-1) * conv.time_factor(T) / T


def closed_loop_loss(overlaps, env: DoubleIntegrator | None = None, T: int = 50
                     ) -> np.ndarray:
    """The exact expected closed-loop loss of rank-one networks with these overlaps (..., 4)
    -> (...), in the teacher's units (``coupled.expected_loss``, window x_0..x_{T-1})."""
    env = DoubleIntegrator() if env is None else env
    q = _overlaps(overlaps, env.dtype)
    with torch.no_grad():
        return coupled.expected_loss(OverlapAgent(q, dtype=env.dtype), env, T).numpy()


def required_product(overlaps) -> np.ndarray:
    """p_c (...): the s_zu s_vm above which the environment's pair is inside the unit circle,
    to first order in p, for s_zm < 0 (NaN for s_zm >= 0, where the pair is real).

    From q(lambda) = (lambda - s_vu) r(lambda) - p with r = (lambda - 1)^2 - s_zm: the root
    mu = 1 + i w (w = sqrt(|s_zm|)) of r moves by p / ((mu - s_vu) r'(mu)), which changes
    |lambda|^2 = 1 + |s_zm| by -p (2 - s_vu) / ((1 - s_vu)^2 + |s_zm|)."""
    q = _overlaps(overlaps).numpy()
    s_zm, s_vu = q[..., 0], q[..., 3]
    out = -s_zm * ((1 - s_vu) ** 2 - s_zm) / (2 - s_vu)
    return np.where(s_zm < 0, out, np.nan)


def pair_modulus_sq(overlaps) -> np.ndarray:
    """|lambda_1|^2 of the environment's complex pair to first order in p = s_zu s_vm, (...):
    1 + |s_zm| - p (2 - s_vu) / ((1 - s_vu)^2 + |s_zm|) for s_zm < 0 (NaN for s_zm >= 0)."""
    q = _overlaps(overlaps).numpy()
    s_zm, p, s_vu = q[..., 0], q[..., 1] * q[..., 2], q[..., 3]
    out = 1 - s_zm - p * (2 - s_vu) / ((1 - s_vu) ** 2 - s_zm)
    return np.where(s_zm < 0, out, np.nan)


def dc_gain(overlaps) -> np.ndarray:
    """K(1) = s_zm + p / (1 - s_vu) = sum_k g_k, the controller's static gain, (...).

    q(1) = -(1 - s_vu) K(1), and q is a monic cubic: for s_vu < 1 a positive static gain
    (positive feedback at low frequency) puts a real root above 1."""
    q = _overlaps(overlaps).numpy()
    return q[..., 0] + q[..., 1] * q[..., 2] / (1 - q[..., 3])


@dataclass(frozen=True)
class Spell:
    """A stretch of consecutive recorded rows with rho >= 1: its ``first`` and ``last``
    epoch, the row ``at`` of its largest rho, ``max_rho`` there, and ``kind``: 'oscillatory'
    if the eigenvalue of largest modulus there is complex, else 'real'."""

    first: int
    last: int
    at: int
    max_rho: float
    kind: str


def unstable_spells(epochs, eig) -> list[Spell]:
    """The spells of instability of one run: ``epochs`` (E,), ``eig`` (E, d) complex by
    decreasing modulus (a history's ``eig_epoch`` and ``eig_P`` of one member)."""
    epochs, eig = np.asarray(epochs), np.asarray(eig)
    if epochs.ndim != 1 or eig.ndim != 2 or eig.shape[0] != epochs.size:
        raise ValueError(f"epochs (E,) and eig (E, d) of one run, got shapes {epochs.shape} "
                         f"and {eig.shape}")
    rho = np.abs(eig[:, 0])
    flag = np.concatenate([[False], rho >= 1, [False]])
    starts = np.flatnonzero(~flag[:-1] & flag[1:])
    stops = np.flatnonzero(flag[:-1] & ~flag[1:])  # one past each spell's last row
    out = []
    for a, b in zip(starts, stops):
        i = a + int(np.argmax(rho[a:b]))
        kind = "oscillatory" if eig[i, 0].imag != 0 else "real"
        out.append(Spell(int(epochs[a]), int(epochs[b - 1]), int(epochs[i]), float(rho[i]),
                         kind))
    return out


def half_way(values) -> int:
    """The first row at which ``values`` (E,) has come half its way from its first value to
    its last (the row of the last value if it never moved)."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size < 2 or not np.isfinite(v).all():
        raise ValueError(f"values must be 1-d, finite, of length >= 2, got shape {v.shape}")
    span = v[-1] - v[0]
    if span == 0:
        return v.size - 1
    return int(np.argmax((v - v[0]) / span >= 0.5))


@dataclass
class LinearStudents:
    """Teachers and students of ``train_students``, member k for ``seeds[k]``.

    ``teacher``: the teachers' History (E_t = epochs + 1 rows, an update at epoch 0):
    ``expected_loss`` (E_t, K), ``spectral_radius``, ``overlaps``, ``eig_P``. ``student``: the
    students' (E_s = epochs + 2 rows, rows 0 and 1 the same network): ``loss`` (E_s, K) the
    open-loop batch loss, ``overlaps``, ``eig_P``, ``spectral_radius`` = rho(P_eff), and added
    here ``closed_loss`` (E_s, K) its exact expected closed-loop loss, ``open_loss`` (E_s, K)
    the imitation loss's expectation (``open_loop_loss``) and ``unstable`` (E_s, K) =
    rho >= 1. ``teacher_agent``, ``student_agent``: the final networks (the student in the
    basis of span{m, u, v, z} if ``compressed``)."""

    seeds: tuple
    stream: str
    T: int
    env: DoubleIntegrator
    teacher: History
    student: History
    teacher_agent: RankOneAgent
    student_agent: RankOneAgent
    compressed: bool
    seconds: float = 0.0

    def index(self, seed: int) -> int:
        """The member of ``seed``."""
        if seed not in self.seeds:
            raise ValueError(f"seed {seed!r} was not trained (seeds {list(self.seeds)})")
        return self.seeds.index(seed)


def train_students(seeds=(0, 1, 2, 3), *, stream: str = "authors", N: int = 100,
                   epochs: int = 1000, T: int = 50, lr: float = 1e-2, batch: int = 100,
                   clip: float | None = 1.0, env: DoubleIntegrator | None = None,
                   convention=None, input_std: float = 1.0, uv_scale: float = 1.0,
                   compress: bool = True) -> LinearStudents:
    """Train a rank-one teacher closed loop and its open-loop student at every seed.

    Teachers: ``RankOneAgent(N, seed=Stream(s, stream), uv_scale)`` trained by
    ``train_closed_loop`` on their own streams (Chapter 3's ``reference_run``), as one
    ensemble. Students: the teachers' initial networks trained by SGD (``lr``, ``clip`` per
    member, ``batch`` sequences of ``T`` steps a epoch) to imitate the final teachers on
    i.i.d. N(0, input_std^2) positions, the loss of ``convention`` (default
    ``PAPER_OPEN_LOOP``, Chapter 1's student: summed over time, no update at epoch 0), each
    member on its own stream's noise (``Stream.student``: the authors' continues the
    teacher's stream as their tanh notebook does): ``imitate``. ``compress``: train the
    students in the basis of span{m, u, v, z} (``RankOneAgent.compressed``), exact since no
    gradient leaves that span, and N / 4 times cheaper.
    """
    seeds = _checks.seeds("seeds", seeds)
    _checks.choice("stream", stream, streams.KINDS)
    epochs = _checks.integer("epochs", epochs, low=1)
    T = _checks.integer("T", T, low=1)
    batch = _checks.integer("batch", batch, low=1)
    std = _checks.real("input_std", input_std, low=0.0, low_open=True)
    if not isinstance(compress, (bool, np.bool_)):
        raise TypeError(f"compress must be True or False, got {_checks.short(compress)}")
    env = DoubleIntegrator() if env is None else env
    conv = conventions.resolve(convention, conventions.PAPER_OPEN_LOOP)
    start = time.perf_counter()
    runs = [streams.Stream(s, stream) for s in seeds]
    teacher = RankOneAgent.stack([RankOneAgent(N=N, seed=st, uv_scale=uv_scale, dtype=env.dtype,
                                               device=env.device) for st in runs])
    initial = teacher.detached()
    h_teacher = train_closed_loop(teacher, env, epochs=epochs, T=T, lr=lr, batch=batch,
                                  clip=clip, seed=runs, eig_W=False)
    if h_teacher.message:
        raise ValueError(f"a teacher did not finish its training: {h_teacher.message}")
    student = initial.compressed() if compress else initial
    target = teacher.compressed() if compress else teacher.detached()
    h_student = imitate(student, target, env, [st.student(T) for st in runs], epochs=epochs,
                        T=T, lr=lr, batch=batch, clip=clip, convention=conv, input_std=std)
    q = h_student.overlaps
    h_student.arrays["closed_loss"] = closed_loop_loss(q, env, T)
    h_student.arrays["open_loss"] = open_loop_loss(
        q, h_teacher.overlaps[-1], T, conv, std).numpy()
    h_student.arrays["unstable"] = h_student.spectral_radius >= 1
    return LinearStudents(seeds, stream, T, env, h_teacher, h_student, teacher.detached(),
                          student.detached(), bool(compress), time.perf_counter() - start)


def imitate(student: RankOneAgent, teacher: RankOneAgent, env, runs, *, epochs: int = 1000,
            T: int = 50, lr: float = 1e-2, batch: int = 100, clip: float | None = 1.0,
            convention=None, input_std: float = 1.0) -> History:
    """``train_open_loop`` on white noise with member k's inputs drawn from ``runs[k]`` (a
    list of ``streams.Stream``, one per member of the 1-axis ensembles ``student`` and
    ``teacher``), scaled by ``input_std``; trains ``student`` in place. ValueError if it
    stops early (a non-finite loss)."""
    coupled.check_pair(student, env, "student")
    coupled.check_pair(teacher, env, "teacher")
    if len(student.batch_shape) != 1 or teacher.batch_shape != student.batch_shape:
        raise ValueError(f"student and teacher must be ensembles of one axis and the same "
                         f"shape, got {student.batch_shape} and {teacher.batch_shape}")
    if (not isinstance(runs, (list, tuple)) or len(runs) != student.batch_shape[0]
            or not all(isinstance(r, streams.Stream) for r in runs)):
        raise ValueError(f"runs must be a list of {student.batch_shape[0]} streams.Stream, "
                         f"one per member, got {_checks.short(runs)}")
    h = train_open_loop(student, teacher, env, epochs=epochs, T=T, lr=lr, batch=batch,
                        clip=clip, seed=list(runs), convention=convention,
                        input_std=input_std, eig_W=False)
    if h.message:
        raise ValueError(f"a student did not finish its training: {h.message}")
    return h


def _overlaps(overlaps, dtype=torch.float64) -> torch.Tensor:
    q = _checks.real_tensor("overlaps", overlaps, dtype).detach()
    if q.dim() < 1 or q.shape[-1] != 4:
        raise ValueError(f"overlaps must have shape (..., 4), got {tuple(q.shape)}")
    return q
