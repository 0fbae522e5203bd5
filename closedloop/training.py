"""Closed-loop training by BPTT through the environment (paper s.2), with a per-epoch history.

SGD with gradient clipping, done by hand so that an ensemble (agents with leading axes K)
trains as K independent runs in one computation: each member's gradient is clipped by its
own norm. The history is a set of numpy arrays indexed by epoch, never copies of models.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from . import _checks, conventions, coupled, kernels, streams
from ._threads import loop_threads
from .agents import Agent
from .history import (History, Recorder, attach_history, interrupted_message,
                      stopped_message)
from .envs import DoubleIntegrator

MODES = ("sampled", "exact")


def train_closed_loop(agent: Agent, env=None, *, epochs: int = 1000,
                      T: int = 50, lr: float = 1e-2, batch: int = 100, clip: float | None = 1.0,
                      beta: float = 0.0, mode: str = "sampled", seed: int = 0,
                      convention=None, eig_every: int = 1, eig_W: bool = True,
                      snapshot_every: int = 0, monitor=None, monitor_every: int = 1) -> History:
    """Train ``agent`` in place on the closed-loop control objective; return its History.

    ``convention`` (a ``conventions.Convention`` or its name) says how the loss is formed and
    whether epoch 0 updates; by default the authors' (``conventions.paper_for(agent)``:
    ``PAPER_TANH`` for a tanh agent, ``PAPER_RANK_ONE`` otherwise). ``epochs`` counts
    updates. The recorded ``loss`` and ``expected_loss`` are in the convention's units.

    ``T`` (steps), ``beta`` (control cost), ``lr`` and ``seed`` may give one value per member
    of a 1-axis ensemble (see ``sweep`` and ``closedloop.sweep``); with one seed per member
    each member draws its batches from its own generator, as it would alone.
    ``mode='sampled'``: a fresh batch of ``batch`` initial states each epoch (the paper);
    ``mode='exact'``: the expected loss over x_0 in closed form (linear agents; deterministic
    gradient descent). ``clip``: max 2-norm of each member's gradient (None: no clipping).
    ``seed`` fixes the initial-state draws: an integer (the package stream, a fresh generator
    at that seed), a ``streams.Stream`` (e.g. ``Stream(s, 'authors')``, continuing from where
    the network's draw left it), or one of either per member.
    ``monitor(agent) -> {name: tensor (*K, ...)}`` is evaluated every ``monitor_every``
    epochs and recorded under its names (with ``monitor_epoch``), e.g. a test loss from fixed
    starts (``gains.probe``). ``eig_W=False`` leaves out eig(W), which costs a second
    eigendecomposition per record (eig(P) and the spectral radius are always recorded). A
    non-finite loss or gradient stops training with a warning; Ctrl-C stops it too; either way the
    history so far is returned. Introduced in Chapter 2, section "Training".

    ``env``: the plant, ``DoubleIntegrator()`` by default, or any ``plants.LinearPlant`` with
    n states (the agent reads its one output y = C x). The state cost is then the mean over the
    n coordinates, 1/(n T) sum_t ||x_t||^2 (``coupled``'s episode cost; ``plant_theory``'s
    expected loss), so the double integrator's numbers are unchanged. A plant with process
    noise sigma > 0: the recorded ``expected_loss`` (and the ``'exact'`` loss) is exact over
    x_0 and the noise; ``'sampled'`` draws each epoch's noise w_0..w_{T-1} (T, batch, n) from
    the run's stream *after* its initial states (so a noise-free plant draws what it always
    did) and rolls the loop out step by step (a linear rank-one agent through its
    (n + 2)-dimensional P_eff). The authors' stream (``Stream(s, 'authors')``) draws only
    what their noise-free 2-state code draws: another plant is an error naming ``seed`` or
    ``noise``.
    """
    env = DoubleIntegrator() if env is None else env
    coupled.check_pair(agent, env)
    noisy = coupled.noise_level(env) > 0
    T, T_max = coupled.per_member("T", T, agent, integer=True, low=1)
    beta, _ = coupled.per_member("beta", beta, agent, low=0.0)
    lr = _per_member_lr(lr, agent)
    stream = streams.members(seed, agent.batch_shape)  # a list per member
    batch = _checks.integer("batch", batch, low=1)
    _checks.choice("mode", mode, MODES)
    linear = agent.activation == "identity"
    if not linear or (noisy and mode == "sampled"):  # else a cost matrix per epoch, no states
        _checks.fits_memory(f"T={T_max}, batch={batch}, N={agent.N}, batch_shape="
                            f"{agent.batch_shape} (the states of one batch)",
                            _episode_size(agent, T_max, batch + 2))
    if mode == "exact" and not linear:
        raise ValueError("mode='exact' needs a linear agent (activation='identity'); "
                         "use mode='sampled' for tanh")
    conv = conventions.resolve(convention, conventions.paper_for(agent))
    epochs = _checks.integer("epochs", epochs, low=0)
    last = final_row(epochs, conv.update_at_epoch0)
    draw = _initial_states(stream, env, batch, T, nonlinear=not linear,
                           noise=noisy and mode == "sampled")
    F = env.x0_factor()
    # the convention read once: the window's first state, the per-start control weight and
    # the factor of a time sum, numbers or per-member tensors (*K,)
    first, beta_eff = conv.first_state, _as_dtype(conv.beta_eff(beta, T, batch), env.dtype)
    scale = _as_dtype(conv.time_factor(T), env.dtype)

    # validated above: every epoch calls the unchecked core (the expected loss over x_0 is
    # the cost summed over the rows of F, as in ``coupled.expected_loss``)
    costs = lambda x0, w=None: kernels.start_costs(agent, env, x0, T, T_max, beta_eff, first,
                                                   _time_first(w))
    ones = F.new_ones(F.shape[0])

    def objective(e):
        if linear:  # one cost matrix (per member) for the batch and the exact loss
            S = kernels.cost_matrix(agent, env, T, beta_eff, first)
            S = S * (scale[..., None, None] if torch.is_tensor(scale) else scale)
            expected = kernels.quadratic_loss(S, F, ones)
            if noisy:
                expected = expected + scale * kernels.noise_cost(agent, env, T, T_max,
                                                                 beta_eff, first)
            if mode == "exact":
                loss = expected
            elif noisy:  # the states under this epoch's noise draws
                loss = scale * costs(*draw(e, last)).mean(-1)
            else:
                loss = kernels.quadratic_loss(S, draw(e, last))
            return loss, {"expected_loss": expected.detach()}
        return scale * costs(*_pair(draw(e, last))).mean(-1), {}

    config = dict(kind="closed_loop", agent=repr(agent), env=repr(env), epochs=epochs,
                  T=_plain(T), lr=_plain(lr), batch=batch, clip=clip, beta=_plain(beta),
                  mode=mode, seed=streams.describe(stream), convention=conv.name,
                  window=conv.window, time=conv.time, control=conv.control,
                  update_at_epoch0=conv.update_at_epoch0)
    return descend(agent, objective, env, config, epochs=epochs, lr=lr, clip=clip,
                   update_at_epoch0=conv.update_at_epoch0, eig_every=eig_every, eig_W=eig_W,
                   snapshot_every=snapshot_every, monitor=monitor, monitor_every=monitor_every)


def descend(agent: Agent, objective, env, config: dict, *, epochs: int, lr: float,
            clip: float | None, update_at_epoch0: bool = True, eig_every: int = 1,
            eig_W: bool = True, snapshot_every: int = 0, monitor=None,
            monitor_every: int = 1) -> History:
    """The training loop shared by closed-loop and open-loop training: SGD with per-member
    gradient clipping on ``objective(epoch) -> (loss (*K,), {name: extra per-epoch record})``.

    ``epochs`` updates. With ``update_at_epoch0=False`` epoch 0 only records (its gradient
    norm included) and the updates are those of epochs 1..epochs (the authors' tanh runs):
    epochs + 2 rows, the last the final network.

    Records, before each update and after the last: the loss, the gradient norm, the
    overlaps (rank-one agents), eig of the (linearized) coupled system and, if ``eig_W``, of W
    every ``eig_every`` epochs, parameter snapshots every ``snapshot_every`` epochs and
    ``monitor(agent)`` every ``monitor_every`` epochs (0 turns a record off). Stops with a
    warning on a non-finite loss or gradient and on Ctrl-C, keeping the history so far; any
    other error propagates with the history so far attached as its ``history`` attribute.
    An epoch's records are kept whole or not at all, and an update changes every parameter
    or none. Threads (``_threads.loop_threads``): one thread for the whole epoch unless its
    largest operation, eig(W) of every member, is large (an ensemble of many networks); the
    step loop of a nonlinear agent chooses again by product size. Products of N ~ 100 gain
    little from a second thread and lose much when the cores are shared.
    """
    epochs = _checks.integer("epochs", epochs, low=0)
    lr = _per_member_lr(lr, agent)
    if clip is not None:
        clip = _checks.real("clip", clip, low=0.0, low_open=True)
    eig_every = _checks.integer("eig_every", eig_every, low=0)
    if not isinstance(eig_W, (bool, np.bool_)):
        raise TypeError(f"eig_W must be True or False, got {_checks.short(eig_W)}")
    snapshot_every = _checks.integer("snapshot_every", snapshot_every, low=0)
    monitor_every = _checks.integer("monitor_every", monitor_every, low=0)
    if monitor is not None and not callable(monitor):
        raise TypeError(f"monitor must be a callable agent -> dict, got {type(monitor).__name__}")
    strides = dict(eig=eig_every, snapshot=snapshot_every,
                   monitor=monitor_every if monitor is not None else 0)
    if not isinstance(update_at_epoch0, (bool, np.bool_)):
        raise TypeError(f"update_at_epoch0 must be True or False, got "
                        f"{_checks.short(update_at_epoch0)}")
    last = final_row(epochs, update_at_epoch0)
    rec = Recorder(agent, env, monitor, strides, last, bool(eig_W))
    params = agent.parameters()
    message, start, e = "", time.perf_counter(), 0
    try:
        # one thread unless an epoch's largest operation (eig(W), N^3 per member) is big
        # enough to gain from more: small products lose much when the cores are shared
        with loop_threads(math.prod(agent.batch_shape) * agent.N ** 3):
            for e in range(last + 1):
                loss, extra = objective(e)
                finite = bool(torch.isfinite(loss).all())
                grads = (torch.autograd.grad(loss.sum(), params) if finite and e < last
                         else None)
                gnorm = _member_norm(grads, agent) if grads is not None else None
                if not (finite and (gnorm is None or torch.isfinite(gnorm).all())):
                    message = stopped_message(e, rec.last("loss"), agent.dtype)
                    break
                row = {"epoch": e, "loss": loss.detach(), **extra}
                if gnorm is not None:
                    row["grad_norm"] = gnorm
                rec.epoch(row, agent, e)
                if grads is None:
                    break
                if e == 0 and not update_at_epoch0:
                    continue
                scale = 1.0 if clip is None else torch.clamp(clip / (gnorm + 1e-300), max=1.0)
                with torch.no_grad():
                    steps = [_expand(lr * scale, g, agent) * g for g in grads]
                    torch._foreach_sub_(params, steps)  # one call: Ctrl-C cannot split an update
    except KeyboardInterrupt:
        message = interrupted_message(e, len(rec.rows))
    except Exception as exc:
        attach_history(exc, e, lambda message: History(config, rec.finish(), message,
                                                        time.perf_counter() - start))
        raise
    if message:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return History(config, rec.finish(), message, time.perf_counter() - start)


PER_MEMBER = ("T", "beta")


def sweep(setting: str, values, agent, env: DoubleIntegrator | None = None, *,
          progress: bool = True, **train_kwargs) -> History:
    """K closed-loop trainings that differ in one setting: one History with a leading K axis.

    - ``setting`` 'T' or 'beta' with ``agent`` an Agent: K copies of that network train as
      one ensemble, member k with ``values[k]``;
    - any ``setting`` with ``agent`` a callable value -> Agent (a seed, an initial overlap
      s_zm(0), ...): the K networks it builds train as one ensemble;
    - any other ``train_closed_loop`` keyword (``lr``, ``batch``, ``mode``, ...): one run per
      value in a loop (with a progress bar unless ``progress=False``); runs that stopped
      early are padded with NaN to the longest.

    ``train_kwargs`` go to ``train_closed_loop``; ``config['sweep']`` records the setting and
    values. Introduced in Chapter 3, section "Episode length plays alpha".
    """
    values = list(values)
    if not values:
        raise ValueError("values must name at least one setting")
    if setting in train_kwargs:
        raise ValueError(f"{setting!r} is swept: do not also pass it as a keyword")
    if callable(agent) and not isinstance(agent, Agent):
        members = [agent(v) for v in values]
        if not all(isinstance(m, Agent) for m in members):
            raise TypeError("agent(value) must return an Agent")
        history = train_closed_loop(type(members[0]).stack(members), env, **train_kwargs)
    elif not isinstance(agent, Agent):
        raise TypeError(f"agent must be an Agent or a callable value -> Agent, got "
                        f"{type(agent).__name__}")
    elif setting in PER_MEMBER:
        if agent.batch_shape:
            raise ValueError("sweep copies a single network: pass one without ensemble axes")
        ensemble = type(agent).stack([agent.detached() for _ in values])
        history = train_closed_loop(ensemble, env, **{setting: values}, **train_kwargs)
    else:
        if setting not in inspect.signature(train_closed_loop).parameters:
            raise ValueError(f"setting must be 'T', 'beta' or a train_closed_loop keyword, "
                             f"got {setting!r}")
        seed = train_kwargs.pop("seed", 0)
        # each run draws from its own copy of a Stream, as it would alone
        again = lambda: seed.copy() if isinstance(seed, streams.Stream) else seed
        runs = [train_closed_loop(agent.detached(), env, **{setting: v}, seed=again(),
                                  **train_kwargs)
                for v in tqdm(values, desc=f"sweep over {setting}", disable=not progress)]
        history = _stack_runs(runs)
    history.config["sweep"] = {"setting": setting, "values": [_plain(v) for v in values]}
    return history


def _stack_runs(runs: list[History]) -> History:
    """Histories of separate runs as one with a member axis 1 (NaN past a run's end)."""
    longest = max(runs, key=lambda h: len(h.epoch))
    arrays = {}
    for name, ref in longest.arrays.items():
        if name.endswith("epoch"):
            arrays[name] = ref
            continue
        rows = []
        for h in runs:
            a = h.arrays[name].astype(np.result_type(h.arrays[name], np.float64))
            pad = np.full((len(ref) - len(a),) + a.shape[1:], np.nan, dtype=a.dtype)
            rows.append(np.concatenate([a, pad]))
        arrays[name] = np.stack(rows, 1)
    message = "; ".join(f"run {k}: {h.message}" for k, h in enumerate(runs) if h.message)
    return History(dict(longest.config), arrays, message, sum(h.seconds for h in runs))


INPUTS = ("white_noise", "teacher")


def open_loop_inputs(source: str, batch: int, T: int, stream, teacher, env) -> torch.Tensor:
    """Observation sequences y_1..y_T for open-loop training: (T, batch).

    'white_noise': i.i.d. N(0, 1) positions (the paper's choice); 'teacher': the positions of
    the teacher's own closed-loop rollouts from x_0 ~ env.x0. Nothing here depends on the
    student, so what it sees cannot depend on what it does. ``stream``: a ``streams.Stream``
    (or a seed, the package stream), drawn from where it stands. Introduced in Chapter 1.
    """
    _checks.choice("source", source, INPUTS)
    batch = _checks.integer("batch", batch, low=1)
    T = _checks.integer("T", T, low=1)
    stream = streams.stream(stream, name="stream")
    if source == "teacher":
        coupled.check_pair(teacher, env, "teacher")
        _noise_free_teacher(env)
    else:
        coupled.check_env(env)
    return _open_loop_inputs(source, batch, T, stream, teacher, env)


def _noise_free_teacher(env):
    """The teacher's rollouts of ``inputs='teacher'`` are noise-free: refuse a noisy plant
    rather than drop its noise."""
    if coupled.noise_level(env) > 0:
        raise ValueError(f"inputs='teacher' rolls the teacher out without process noise, and "
                         f"the plant has noise={coupled.noise_level(env)}: use "
                         f"env.with_noise(0.0) or inputs='white_noise'")


def _open_loop_inputs(source, batch, T, stream, teacher, env):
    """``open_loop_inputs`` unchecked (open-loop training, every epoch)."""
    if source == "white_noise":
        return stream.white_noise(T, batch, env.dtype, env.device)
    x0 = stream.initial_states(env.x0, batch, 0, True, env.dtype, env.device)
    with torch.no_grad():
        x = kernels.rollout(teacher, env, x0, T)["x"]
    return x[1:] @ env.C  # the teacher's loop is closed and stable or not: y may overflow


def train_open_loop(student: Agent, teacher: Agent, env: DoubleIntegrator | None = None, *,
                    epochs: int = 1000, T: int = 50, lr: float = 1e-2, batch: int = 100,
                    clip: float | None = 1.0, inputs: str = "white_noise", seed: int = 0,
                    convention=None, input_std: float = 1.0, eig_every: int = 1,
                    eig_W: bool = True, snapshot_every: int = 0, monitor=None,
                    monitor_every: int = 1) -> History:
    """Train ``student`` in place to imitate ``teacher``'s controls open loop; return its History.

    Each epoch both networks receive the same ``batch`` observation sequences of length ``T``
    (``open_loop_inputs``) and the loss is the squared difference of their controls u_1..u_T,
    batch mean, summed over the steps (``convention`` ``PAPER_OPEN_LOOP``, the default, which
    also makes no update at epoch 0) or averaged over them (``time='mean'``, e.g. ``BOOK``).
    The environment is never driven by the student: only ``monitor`` (e.g. ``gains.probe``)
    puts it in the closed loop, to measure it. ``seed``: an integer (the package stream) or a
    ``streams.Stream``; for the authors' student, the teacher's stream's ``student(T)``; or
    one of either per member of a 1-axis ensemble (member k's inputs are those of its run
    alone). ``input_std`` scales the observations (white noise of that standard deviation).
    Optimizer, clipping and recording are those of ``train_closed_loop``.
    Introduced in Chapter 1, section "Open-loop training".
    """
    env = DoubleIntegrator() if env is None else env
    coupled.check_pair(student, env, "student")
    T = _checks.integer("T", T, low=1)
    batch = _checks.integer("batch", batch, low=1)
    _checks.choice("inputs", inputs, INPUTS)
    coupled.check_pair(teacher, env, "teacher")  # so dtype and device are the student's
    if inputs == "teacher":
        _noise_free_teacher(env)
    _checks.fits_memory(f"T={T}, batch={batch}, N={student.N}, batch_shape="
                        f"{student.batch_shape} (the states of one batch)",
                        _episode_size(student, T, batch) + _episode_size(teacher, T, batch))
    if teacher.batch_shape not in ((), student.batch_shape):
        raise ValueError(f"teacher.batch_shape must be () or the student's "
                         f"{student.batch_shape}, got {teacher.batch_shape}")
    conv = conventions.resolve(convention, conventions.PAPER_OPEN_LOOP)
    std = _checks.real("input_std", input_std, low=0.0, low_open=True)
    teacher = teacher.detached()
    stream = streams.members(seed, student.batch_shape)
    epochs = _checks.integer("epochs", epochs, low=0)
    last = final_row(epochs, conv.update_at_epoch0)
    # with a stream per member, member k's 'teacher' inputs are its own teacher's rollouts
    per_member = not isinstance(stream, streams.Stream)
    teachers = ([teacher.member(k) for k in range(teacher.batch_shape[0])]
                if per_member and teacher.batch_shape and inputs == "teacher" else None)
    draw = streams.drawer(stream, lambda s, k: _open_loop_inputs(
        inputs, batch, T, s, teacher if teachers is None else teachers[k], env))
    scale = conv.time_factor(T)

    def objective(e):  # validated above: the unchecked cores, every epoch
        y = draw(e, last)
        if per_member:  # (K, T, B) per member -> (T, K, B)
            y = y.movedim(0, 1)
        if std != 1.0:
            y = std * y
        with torch.no_grad():
            target = teacher._drive(y)
        return scale * ((student._drive(y) - target) ** 2).mean((0, -1)), {}

    config = dict(kind="open_loop", agent=repr(student), teacher=repr(teacher), env=repr(env),
                  epochs=epochs, T=T, lr=lr, batch=batch, clip=clip, inputs=inputs,
                  input_std=std, seed=streams.describe(stream),
                  convention=conv.name, time=conv.time, update_at_epoch0=conv.update_at_epoch0)
    return descend(student, objective, env, config, epochs=epochs, lr=lr, clip=clip,
                   update_at_epoch0=conv.update_at_epoch0, eig_every=eig_every, eig_W=eig_W,
                   snapshot_every=snapshot_every, monitor=monitor, monitor_every=monitor_every)


def final_row(epochs: int, update_at_epoch0: bool) -> int:
    """The row of the final network: ``epochs`` updates, plus one row if epoch 0 only
    records (no update at epoch 0)."""
    return epochs if update_at_epoch0 or not epochs else epochs + 1


def _initial_states(stream, env, batch: int, T, nonlinear: bool, noise: bool = False):
    """``draw(e, last)``: epoch e's initial states, (B, n) for one stream or (K, B, n) for
    one per member (``streams.drawer``); with ``noise``, the pair (x0, w) with the process
    noise w drawn after x0, (T_max, B, n) or (K, T_max, B, n): a member of horizon T_k draws
    its T_k steps, as it would alone, padded with zeros (steps its loss does not count)."""
    Ts = T.tolist() if torch.is_tensor(T) else None
    runs = [stream] if isinstance(stream, streams.Stream) else stream
    if (nonlinear and Ts is not None and len(set(Ts)) > 1 and isinstance(stream, streams.Stream)
            and stream.authors):  # its batches draw T zero-noise steps: one T for all
        raise ValueError("one authors' Stream for members of different T: give one Stream per "
                         "member (seed=[Stream(s, 'authors'), ...])")
    n = kernels.state_size(env)
    if any(s.authors for s in runs) and (n != 2 or noise):  # before anything trains
        what = f"noise={coupled.noise_level(env)}" if noise else f"a plant with n = {n} states"
        raise ValueError(f"seed: the authors' stream draws the batches of their noise-free "
                         f"double integrator, not for {what}: use an integer seed (the "
                         f"package stream)")
    T_max = max(Ts) if Ts is not None else T
    sigma = coupled.noise_level(env)

    def one(s, k):
        x0 = s.initial_states(env.x0, batch, T if Ts is None else Ts[k], nonlinear, env.dtype,
                              env.device)
        if not noise:
            return x0
        steps = T_max if Ts is None or isinstance(stream, streams.Stream) else Ts[k]
        w = s.process_noise(sigma, steps, batch, n, env.dtype, env.device)
        return x0, torch.cat([w, w.new_zeros(T_max - steps, *w.shape[1:])])
    return streams.drawer(stream, one)


def _pair(drawn):
    """(x0, w) from a draw: w None where the plant has no noise."""
    return drawn if isinstance(drawn, tuple) else (drawn, None)


def _time_first(w):
    """Noise as drawn per member, (K, T, B, n), to the rollout's time-first (T, K, B, n)."""
    return w if w is None or w.dim() == 3 else w.movedim(-3, 0)


def _episode_size(agent, T: int, batch: int) -> int:
    """Numbers held for one batch's episodes (the states kept for backpropagation)."""
    return (T + 1) * math.prod(agent.batch_shape) * batch * (agent.N + 2)


def _per_member_lr(lr, agent):
    """A positive learning rate, or one per member of a 1-axis ensemble ((*K,) tensor)."""
    if torch.is_tensor(lr) and lr.shape == agent.batch_shape and lr.dtype == agent.dtype:
        return lr  # already checked by the caller (train_closed_loop -> descend)
    lr, _ = coupled.per_member("lr", lr, agent, low=0.0)
    if (lr <= 0).any() if torch.is_tensor(lr) else lr <= 0:
        raise ValueError(f"lr must be > 0, got {_plain(lr)}")
    return lr


def _as_dtype(v, dtype):
    """A per-member tensor in ``dtype`` (numbers stay numbers): per-member T is int64, and a
    number divided by it would be torch's default float type."""
    return v.to(dtype) if torch.is_tensor(v) else v


def _plain(v):
    """A config value as plain Python (per-member tensors become lists)."""
    return v.tolist() if torch.is_tensor(v) else v


def _member_norm(grads, agent):
    nb = len(agent.batch_shape)
    sq = sum((g ** 2).flatten(nb).sum(-1) if g.dim() > nb else g ** 2 for g in grads)
    return sq.sqrt()


def _expand(scale, g, agent):
    if not torch.is_tensor(scale):
        return scale
    return scale.reshape(scale.shape + (1,) * (g.dim() - scale.dim()))
