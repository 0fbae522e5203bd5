"""Training the tracking network (paper s.7): closed-loop, on sampled references or the
exact phase average, and the open-loop twin that imitates a teacher's controls.
Introduced in Chapter 4, section "Training".
"""

from __future__ import annotations

import time
import warnings

import torch

from .. import _checks, streams
from .._threads import single_thread
from ..streams import make_generator
from ..history import (History, attach_history, interrupted_message, stack_rows,
                       stopped_message)
from ..linsys import abs2, fft_length
from .engine import (closed_loop_matrix, open_loop_steps, rollout, step_loop,
                     student_response)
from .loss import (linear_response, quadratic_losses, sampled_losses, sampled_with_clamp,
                   tracking_loss)
from .network import TrackingRNN, check_pair, check_single
from .task import POS, PointMass, Scoring, Sinusoids, check_refs

MODES = ("sampled", "exact")


class _Teacher:
    """What the open-loop student sees and imitates: the teacher's inputs and controls at
    t = 0..T, driving its own plant, scored by ``scoring``."""

    def __init__(self, teacher, plant, refs, scoring: Scoring):
        with torch.no_grad():
            resp = linear_response(teacher, plant, refs, scoring.convention)
            self.worst = resp.worst_state()
            # (x, y, r_x, r_y) at t = 0..T; the positions at t = 0 are 0
            inputs = torch.cat([resp.Y[..., POS], scoring.inputs], -1)
            self.inputs_fft = torch.fft.fft(inputs, n=fft_length(refs.T + 1), dim=1)
            self.u = resp.Y[..., scoring.rows, 4:]                     # the imitated rows
        self.teacher, self.plant, self.refs, self.scoring = teacher, plant, refs, scoring

    def losses(self, student, phases=None):
        """Imitation losses from one response of the student: (exact phase average, per-
        reference losses (B,) for ``phases`` or None, whether the clamp acted on the
        teacher's plant)."""
        sc = self.scoring
        d = student_response(student, self.inputs_fft, self.refs.T + 1)[..., sc.rows, :] - self.u
        expected = sc.twin_scale * (self.refs.reference_power() * abs2(d).sum(-1).mean(-1)).sum()
        if phases is None:
            return expected, None, False
        if self.plant.bound is not None and self.worst > self.plant.bound:
            r = self.refs.signal(phases)
            with torch.no_grad():
                out = step_loop(self.teacher, self.plant, r, sc.reads_first)
            if out["q"].abs().max() >= self.plant.bound:  # the clamp acted: step the student
                u = open_loop_steps(student, out["inputs"], sc.reads_first)
                return expected, sc.imitation(u, out["u"]), True
        return expected, sc.twin_scale * quadratic_losses(self.refs.coefficients(phases), d), \
            False


@single_thread()
def train_tracking(agent: TrackingRNN, plant: PointMass | None = None,
                   refs: Sinusoids | None = None, *, epochs: int = 5000, lr: float = 1e-3,
                   batch: int = 100, mode: str = "sampled", teacher: TrackingRNN | None = None,
                   seed=0, test_seed: int = 12345, n_test: int = 100,
                   test_every: int = 25, record_every: int = 10, convention=None) -> History:
    """Train ``agent`` in place with Adam (no clipping); return its History.

    ``convention`` (a ``conventions.TrackingConvention``, its name, or None: the authors',
    ``PAPER_TRACKING``) says how errors are paired and weighted, whether the twin trains W_in
    and whether epoch 0 updates; every loss recorded is in its units (``Scoring``).
    ``epochs`` counts updates.

    Closed-loop (``teacher=None``): the loss is the tracking loss of the clamped plant, on a
    fresh batch of ``batch`` random-phase references per epoch (``mode='sampled'``, the paper)
    or its exact phase average (``mode='exact'``: the linear loop, deterministic gradient);
    W_in stays fixed. Open-loop twin (``teacher`` given): the agent imitates the teacher's
    controls while the teacher drives the plant, on the same inputs (x, y, r_x, r_y); under
    the authors' convention it trains W_in as well.

    History arrays, one row per epoch (row e: the network whose loss epoch e computed; with
    no update at epoch 0, the authors', rows 0 and 1 are both the initial network and the
    final network is row epochs + 1; else row e is the network after e updates):
    ``epoch``; ``loss`` (the train loss of the batch); ``expected_loss`` (its phase
    average); ``test_loss`` at ``test_epoch``: closed-loop tracking loss of the clamped plant
    on ``n_test`` fixed references (drawn from ``test_seed``), at every epoch below 100 and
    every ``test_every`` epochs after (a runaway loop must be stepped, which costs far more
    than an update); ``probe_loss`` (E, K) at ``probe_epoch``: per-sinusoid exact closed-loop
    losses, and ``worst_state``: sup over phases of |state| of the unclamped loop, at every
    epoch in closed-loop training and at the test epochs of a twin (whose own closed loop
    nothing else needs); ``clamped``: whether the train batch reached the clamp. Every
    ``record_every`` epochs (and at the end): ``eig_epoch``, ``eig_W`` (R, N) =
    eig(W - I)/tau, ``spectral_radius`` (R,) of the unclamped closed loop (max |eig(M)|; > 1:
    it runs away), ``snapshot_epoch``, ``params/W``, ``params/W_out``, ``params/W_in``.
    Divergence or Ctrl-C stop training with the history so far; any other error carries it
    as its ``history`` attribute.

    An ensemble (``TrackingRNN.stack``) trains its members as independent closed-loop runs
    in one computation (Adam acts elementwise, so each member's update is its own); ``seed``
    may then give one seed per member (each draws its own batches, as its run alone would)
    and ``mode`` one mode per member; every array gets a member axis after the epoch axis
    (``History.member(k)`` takes one run out). A non-finite loss in any member stops all.
    Introduced in Chapter 4, section "Training".
    """
    plant = PointMass() if plant is None else plant
    refs = Sinusoids(dt=plant.dt, dtype=plant.dtype, device=plant.F.device) if refs is None \
        else refs
    check_pair(agent, plant)
    check_refs(plant, refs)
    scoring = refs.scoring(convention)
    conv = scoring.convention
    members = agent.batch_shape[0] if agent.batch_shape else None
    if teacher is not None:
        check_pair(teacher, plant, "teacher")
        check_single(teacher, "teacher")
        check_single(agent, "agent (an open-loop twin)")
    stream = streams.members(seed, agent.batch_shape)
    modes = _each(_checks.members("mode", mode, agent.batch_shape,
                                  lambda n, v: _checks.choice(n, v, MODES)), members)
    exact = torch.tensor([m == "exact" for m in modes], device=plant.F.device)
    epochs = _checks.integer("epochs", epochs, low=0)
    lr = _checks.real("lr", lr, low=0.0, low_open=True)
    batch = _checks.integer("batch", batch, low=1)
    n_test = _checks.integer("n_test", n_test, low=1)
    record_every = _checks.integer("record_every", record_every, low=1)
    test_every = _checks.integer("test_every", test_every, low=1)
    test_seed = _checks.integer("test_seed", test_seed, low=0, high=2**64 - 1)
    _checks.fits_memory(f"batch={batch}, n_test={n_test}, T={refs.T}, N={agent.N} (stepped "
                        f"episodes)", (batch + n_test) * (refs.T + 1) * (agent.N + 10)
                        * (members or 1))
    config = dict(kind="tracking", agent=repr(agent), plant=repr(plant), refs=repr(refs),
                  epochs=epochs, lr=lr, batch=batch, mode=modes if members else modes[0],
                  open_loop=teacher is not None,
                  seed=streams.describe(stream), test_seed=test_seed, n_test=n_test,
                  dt=agent.dt, tau=agent.tau, **scoring.config())
    # (B, K), or (members, B, K): each member from its own stream
    train_phases = streams.drawer(stream, lambda s, k: s.phases(refs, batch))
    test_phases = refs.sample_phases(n_test, make_generator(test_seed))
    teach = None if teacher is None else _Teacher(teacher, plant, refs, scoring)
    params = agent.parameters(W_in=teach is not None and scoring.twin_trains_W_in)
    # the fused CPU kernel: a third of the single-tensor step's time, the same update up to
    # rounding (4e-16 apart after 300 steps in float64)
    opt = torch.optim.Adam(params, lr=lr, fused=params[0].device.type == "cpu")
    # the final network's row: with no update at epoch 0, epochs updates take epochs + 2 rows
    last = epochs if scoring.update_at_epoch0 or not epochs else epochs + 1
    rows: list[dict] = []  # one dict per epoch, appended whole (Ctrl-C leaves no partial row)
    message, start, e = "", time.perf_counter(), 0
    try:
        for e in range(last + 1):
            update = e < last and (e > 0 or scoring.update_at_epoch0)
            tested = e < 100 or e % test_every == 0 or e == last
            resp = None  # a twin needs its own closed loop only for the test and probe losses
            if teach is None or tested:
                with torch.set_grad_enabled(update and teach is None):
                    resp = linear_response(agent, plant, refs, conv)
            clamped = torch.zeros_like(exact) if members else False
            if teach is not None:
                with torch.set_grad_enabled(update):
                    phases = None if mode == "exact" else train_phases(e, last)
                    expected, per, clamped = teach.losses(agent, phases)
                    loss = expected if mode == "exact" else per.mean()
            else:
                expected = resp.expected_loss()
                if exact.all():
                    loss = expected
                else:
                    with torch.set_grad_enabled(update):
                        per, clamped = sampled_with_clamp(agent, plant, refs,
                                                          train_phases(e, last), None, resp,
                                                          step=~exact if members else None)
                    loss = per.mean(-1)  # (members,): the sum's gradient is each member's
                    if exact.any():  # exact members train on their expected loss
                        loss = torch.where(exact, expected, loss)
            if update:
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                grads = [p.grad for p in params]
            if not (torch.isfinite(loss).all() and (not update or all(torch.isfinite(g).all()
                                                                       for g in grads))):
                message = stopped_message(e, rows[-1]["loss"] if rows else None,
                                          agent.W.dtype)
                break
            row = {"epoch": e, "loss": loss.detach(), "expected_loss": expected.detach(),
                   "clamped": clamped}
            if resp is not None:
                row.update(probe_epoch=e, probe_loss=resp.probe_losses(),
                           worst_state=resp.worst_state())
            if tested:
                with torch.no_grad():
                    test = sampled_losses(agent, plant, refs, test_phases, response=resp)
                row.update(test_epoch=e, test_loss=test.mean(-1))
            if e % record_every == 0 or e == last:
                with torch.no_grad():
                    rho = torch.linalg.eigvals(closed_loop_matrix(agent, plant)).abs().amax(-1)
                row.update({"eig_epoch": e, "eig_W": agent.rate_eigenvalues(),
                            "spectral_radius": rho, "snapshot_epoch": e},
                           **{f"params/{k}": v for k, v in agent.snapshot().items()})
            rows.append({k: v.detach().cpu().numpy().copy() if torch.is_tensor(v) else v
                         for k, v in row.items()})
            if update:
                opt.step()
    except KeyboardInterrupt:
        message = interrupted_message(e, len(rows))
    except Exception as exc:
        attach_history(exc, e, lambda message: History(config, stack_rows(rows), message,
                                                        time.perf_counter() - start))
        raise
    if message:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return History(config, stack_rows(rows), message, time.perf_counter() - start)


def stepped_batch_seconds(agent: TrackingRNN, plant: PointMass, refs: Sinusoids, batch: int,
                          seed: int = 0, convention=None) -> float:
    """Wall-clock seconds of one training batch computed the plain way: ``batch`` references
    (phases drawn from ``seed``) stepped through the clamped loop (``rollout``), loss,
    forward and backward, on one thread as training runs. The cost that training's
    convolutions avoid, timed on a copy of ``agent`` (whose gradients stay untouched).
    Introduced in Chapter 4, section "Run it yourself"."""
    check_pair(agent, plant)
    check_single(agent)
    check_refs(plant, refs)
    batch = _checks.integer("batch", batch, low=1)
    net = agent.copy()
    with single_thread():  # a backward of 300 small steps on two threads slows down many
        tick = time.perf_counter()  # times when a core is busy
        r = refs.signal(refs.sample_phases(batch, make_generator(seed)))
        tracking_loss(rollout(net, plant, r, convention)["q"], r, convention,
                      plant.dt).mean().backward()
        return time.perf_counter() - tick


def _each(value, members) -> list:
    """A per-member list as it is; one value repeated for every member (or the only run)."""
    return value if isinstance(value, list) else [value] * (members or 1)
