"""Grids of trainings, past one machine: chunks that each train as one ensemble, on any engine.

A *grid* is a dict {setting: values} (every combination, in the order given) or a list of
points (dicts). Its points are split into *chunks*: first by the settings that members of one
ensemble cannot differ in (N, epochs, batch, ...: a model's ``shared`` settings), then into
slices of ``chunk_size`` points. Each chunk trains as one batched ensemble in which every
member has its own network seed and its own batches, so a member equals its run alone to
rounding, and the chunking depends on the grid and ``chunk_size`` only: a result is bitwise
the same on every engine.

Engines (``run(..., engine=...)``):

- ``"inprocess"`` (default): chunks one after another in this process; no dask import.
- ``"local"``: a Dask ``LocalCluster`` of ``n_workers`` processes with one thread each
  (started and closed by ``run``).
- ``"tcp://host:port"``: the address of a running Dask scheduler (``dask scheduler`` and
  ``dask worker`` started by hand, or by a batch system).
- a ``distributed.Client`` you made: how a SLURM or Kubernetes cluster enters (e.g. a
  ``dask_jobqueue.SLURMCluster`` or ``dask_kubernetes`` cluster's client; neither is a
  dependency). The workers need this package installed.

Every chunk runs on one torch thread (where it runs must not change its last bits).
Finished chunks are saved, as History ``.npz`` files (no pickle), under
``out/<model>-<hash of the grid and chunk size>/``; a rerun loads them instead of training
again (resumable). A chunk that fails is reported with its grid points after the others are
saved (``SweepError``, whose ``history`` holds the rest). Dask is the optional extra
``closedloop[dask]``.

The result is one History whose per-member arrays have the grid's points on axis 1, in grid
order, and whose ``coord/<setting>`` arrays (P,) give each point's settings; ``select`` picks
points by their settings. Introduced in Chapter 5.

The models ``rank_one`` and ``tanh`` train on any linear plant: its settings (``plant``, a
family's parameters, ``noise``) are ``plant_settings``'s. Introduced for plants in Chapter 6.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import _checks, plant_settings
from ._threads import single_thread
from .history import History



@dataclass(frozen=True)
class Model:
    """A kind of training a grid can sweep. ``defaults``: every setting and its default (the
    paper's); ``shared``: the settings all members of one ensemble must share; ``check``:
    setting -> callable(name, value) raising a clear error; ``train(points) -> History``
    trains the points (dicts with every setting, equal in ``shared``) as one ensemble."""

    name: str
    defaults: dict
    shared: tuple
    check: dict
    train: Callable
    check_point: Callable | None = None  # point -> point, for rules across settings


MODELS: dict[str, Model] = {}


class SweepError(RuntimeError):
    """Some chunks failed: ``failures`` [(grid points, error text)], ``history`` the rest."""

    def __init__(self, message, failures, history):
        super().__init__(message)
        self.failures, self.history = failures, history


def points_of(grid, model: str = "rank_one") -> list[dict]:
    """The grid's points with every setting filled in from the model's defaults, validated
    (a bad setting raises naming it and the point, before anything trains)."""
    spec = _model(model)
    if isinstance(grid, Mapping):
        for k, v in grid.items():
            if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
                raise TypeError(f"grid[{k!r}] must be a list of values, got {_checks.short(v)}")
        names = list(grid)
        values = [list(grid[k]) for k in names]
        for k, v in zip(names, values):
            if not v:
                raise ValueError(f"grid[{k!r}] is empty")
        raw = [dict(zip(names, combo)) for combo in itertools.product(*values)]
    elif isinstance(grid, (list, tuple)) and grid and all(isinstance(p, Mapping) for p in grid):
        raw = [dict(p) for p in grid]
    else:
        raise TypeError(f"grid must be a dict setting -> values or a non-empty list of dicts, "
                        f"got {_checks.short(grid)}")
    out = []
    for i, p in enumerate(raw):
        unknown = set(p) - set(spec.defaults)
        if unknown:
            raise ValueError(f"grid point {i}: unknown setting(s) {sorted(unknown)} for model "
                             f"{model!r}; known: {sorted(spec.defaults)}")
        point = {**spec.defaults, **p}
        try:
            for k, v in point.items():
                point[k] = spec.check[k](k, v)
            if spec.check_point is not None:
                point = spec.check_point(point)
        except (TypeError, ValueError) as e:
            raise type(e)(f"grid point {i} ({_short_point(p)}): {e}") from None
        out.append(point)
    return out


def chunks_of(points: list[dict], model: str = "rank_one", chunk_size: int = 32
              ) -> list[list[int]]:
    """The chunks, as lists of point indices: grouped by the model's shared settings (groups
    in order of first appearance), each group cut into slices of ``chunk_size``."""
    spec = _model(model)
    chunk_size = _checks.integer("chunk_size", chunk_size, low=1)
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault(_key({k: p[k] for k in spec.shared}), []).append(i)
    return [idx[j:j + chunk_size] for idx in groups.values()
            for j in range(0, len(idx), chunk_size)]


def run(grid, model: str = "rank_one", *, chunk_size: int = 32, engine="inprocess",
        n_workers: int | None = None, out=None, progress: bool = True) -> History:
    """Train every point of ``grid`` with ``model`` (a name of ``MODELS``); return one History
    with the points on axis 1 (see the module docstring for engines, files and errors).

    ``out``: the folder for finished chunks (None: nothing saved, nothing resumed).
    ``n_workers``: the processes of ``engine='local'`` (default: the CPU count).
    """
    points = points_of(grid, model)
    chunks = chunks_of(points, model, chunk_size)
    folder = None
    if out is not None:
        digest = hashlib.sha256(_key({"model": model, "points": points,
                                      "chunk_size": chunk_size}).encode()).hexdigest()[:12]
        folder = Path(os.fspath(out)) / f"{model}-{digest}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "grid.json").write_text(json.dumps(
            {"model": model, "chunk_size": chunk_size, "points": points}, indent=1,
            default=str))
    paths = [None if folder is None else folder / f"chunk-{c:04d}.npz"
             for c in range(len(chunks))]
    results: dict[int, History] = {}
    for c, path in enumerate(paths):
        if path is not None and path.exists():
            try:
                results[c] = History.load(path)
            except ValueError:
                path.unlink()  # a truncated or foreign file: train that chunk again
    todo = [c for c in range(len(chunks)) if c not in results]
    failures = []
    bar = tqdm(total=len(chunks), initial=len(results), desc=f"sweep ({model})", unit="chunk",
               disable=not progress)

    def finished(c, history, error):
        if error is not None:
            failures.append(([points[i] for i in chunks[c]], error))
        else:
            results[c] = history
            if paths[c] is not None:
                history.save(paths[c])
        bar.update()

    try:
        _submit(engine, n_workers, model, [(c, [points[i] for i in chunks[c]]) for c in todo],
                finished)
    finally:
        bar.close()
    done = sorted(results)
    history = _assemble([results[c] for c in done], [chunks[c] for c in done], points, model,
                        chunk_size)
    if failures:
        spec = _model(model)
        lines = "; ".join(f"[{'; '.join(_short_point(p, spec.defaults) for p in pts)}]: {err}"
                          for pts, err in failures)
        raise SweepError(f"{len(failures)} of {len(chunks)} chunks failed (the others are "
                         f"{'saved' if folder else 'in .history'}): {lines}", failures, history)
    return history


def select(history: History, **settings) -> History:
    """The members of a sweep's history whose coordinates equal ``settings``
    (e.g. ``select(h, T=50, lr=0.01)``), in grid order."""
    coords = coords_of(history)
    mask = np.ones(len(next(iter(coords.values()))), bool)
    for k, v in settings.items():
        if k not in coords:
            raise ValueError(f"{k!r} is not a coordinate of this sweep; it has {sorted(coords)}")
        mask &= np.asarray(coords[k] == v)
    idx = np.flatnonzero(mask)
    arrays = {n: (a if n.endswith("epoch") else a[idx] if n.startswith("coord/") else a[:, idx])
              for n, a in history.arrays.items()}
    return History(dict(history.config, selected=settings), arrays, history.message,
                   history.seconds)


def coords_of(history: History) -> dict:
    """{setting: array (P,)} of a sweep's history."""
    coords = {n.removeprefix("coord/"): a for n, a in history.arrays.items()
              if n.startswith("coord/")}
    if not coords:
        raise ValueError("this history has no coordinates (not made by sweep.run)")
    return coords


# engines ---------------------------------------------------------------------------------------
def train_chunk(train: Callable, points: list[dict]) -> History:
    """One chunk: ``train(points)`` on one torch thread (the unit of work every engine runs;
    the function travels with it, so a model registered only here runs on any worker)."""
    with single_thread():
        return train(points)


@contextlib.contextmanager
def dask_client(engine, n_workers: int | None = None):
    """The ``distributed.Client`` of a Dask engine for a ``with`` block, None for
    ``"inprocess"``: ``"local"`` starts a ``LocalCluster`` of ``n_workers`` single-threaded
    processes (default: the CPU count), closed at the end; an address (``"tcp://host:port"``)
    connects to a running scheduler; a ``Client`` is used as it is (left open)."""
    if engine == "inprocess":
        yield None
        return
    try:
        import distributed
    except ImportError:
        raise ImportError("engines other than 'inprocess' need Dask: pip install "
                          "'closedloop[dask]' (dask and distributed)") from None
    if isinstance(engine, distributed.Client):
        yield engine
    elif engine == "local":
        import dask

        n = _checks.integer("n_workers", n_workers or os.cpu_count() or 1, low=1)
        # Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536 (memory back to the system
        # early); torch's temporaries then fault their pages in again at every step: an
        # open-loop chunk took 1.7 times its CPU time in process (measured: system time 0.7
        # of user). Unset, the workers allocate as this process does.
        with dask.config.set({f"{_PRE_SPAWN}.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        with cluster, distributed.Client(cluster) as client:
            yield client
    elif isinstance(engine, str) and "://" in engine:
        with distributed.Client(engine) as client:
            yield client
    else:
        raise ValueError(f"engine must be 'inprocess', 'local', a scheduler address "
                         f"('tcp://host:port') or a distributed.Client, got "
                         f"{_checks.short(engine)}")


_PRE_SPAWN = "distributed.nanny.pre-spawn-environ"


def _submit(engine, n_workers, model, jobs, finished):
    train = _model(model).train
    with dask_client(engine, n_workers) as client:
        if client is None:
            for c, pts in jobs:
                try:
                    h = train_chunk(train, pts)
                except Exception as exc:  # noqa: BLE001 - reported with its grid points
                    finished(c, None, f"{type(exc).__name__}: {exc}")
                else:
                    finished(c, h, None)
            return
        import distributed

        futures = {client.submit(train_chunk, train, pts, pure=False): c for c, pts in jobs}
        for fut in distributed.as_completed(futures):
            c = futures[fut]
            try:
                h = fut.result()
            except Exception as exc:  # noqa: BLE001 - a failed or killed chunk
                finished(c, None, f"{type(exc).__name__}: {exc}")
            else:
                finished(c, h, None)


# assembly --------------------------------------------------------------------------------------
def _assemble(histories, chunks, points, model, chunk_size) -> History:
    """Chunk histories -> one History with every trained point on axis 1, in grid order."""
    order = [i for idx in chunks for i in idx]
    config = {"kind": "sweep", "model": model, "chunk_size": chunk_size, "n_points": len(points),
              "trained_points": sorted(order), "chunks": [h.config for h in histories]}
    if not histories:
        return History(config, {}, "no chunk finished", 0.0)
    arrays = _stack_members(histories)
    perm = np.argsort(order, kind="stable")
    arrays = {n: a if n.endswith("epoch") else a[:, perm] for n, a in arrays.items()}
    trained = [points[i] for i in sorted(order)]
    for k in points[0]:
        values = [p[k] for p in trained]
        if all(v is None or isinstance(v, (bool, int, float)) for v in values):
            arrays[f"coord/{k}"] = np.array([np.nan if v is None else v for v in values])
        else:
            arrays[f"coord/{k}"] = np.array([str(v) for v in values])
    message = "; ".join(h.message for h in histories if h.message)
    return History(config, arrays, message, sum(h.seconds for h in histories))


def _model(name) -> Model:
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {_checks.short(name)}")
    return MODELS[name]


def _key(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _short_point(p, defaults=None) -> str:
    """A point's settings, without those at their defaults."""
    items = [(k, v) for k, v in p.items() if defaults is None or defaults.get(k, ...) != v]
    return ", ".join(f"{k}={v}" for k, v in items) or "the defaults"


def _stack_members(histories) -> dict:
    """Concatenate histories along the member axis 1; a shorter run (fewer epochs) or smaller
    network (fewer entries on a trailing axis) is padded with NaN."""
    names = dict.fromkeys(n for h in histories for n in h.arrays)
    out = {}
    for n in names:
        parts = [h.arrays[n] for h in histories if n in h.arrays]
        if n.endswith("epoch"):
            out[n] = max(parts, key=len)
            continue
        if len(parts) < len(histories):
            raise ValueError(f"array {n!r} is missing from some chunks")
        shape = np.max([p.shape for p in parts], axis=0)
        padded = []
        for p in parts:
            dtype = np.result_type(p, np.float64) if p.dtype.kind in "biu" else p.dtype
            q = np.full((shape[0], p.shape[1], *shape[2:]), np.nan, dtype=dtype)
            q[tuple(slice(0, k) for k in p.shape)] = p
            padded.append(q)
        out[n] = np.concatenate(padded, 1)
    return out


# models ----------------------------------------------------------------------------------------
def _column(points, k):
    """The members' values of setting k: one number when they agree (a chunk's shared T, lr
    or beta stays a plain number in training), else a list. Seeds stay per member."""
    values = [p[k] for p in points]
    return values[0] if k != "seed" and len(set(values)) == 1 else values


def _number(low=None, high=None, none_ok=False, integer=False):
    return plant_settings.number(low, high, integer=integer, none_ok=none_ok)


def _positive(name, value):
    return _checks.real(name, value, low=0.0, low_open=True)


def _one_of(*allowed):
    return lambda name, value: _checks.choice(name, value, allowed)


def _clip(name, value):
    return None if value is None else _positive(name, value)


_COMMON_CHECKS = {
    "N": _number(1, 100_000, integer=True), "seed": _number(0, 2**63 - 1, integer=True),
    "init": _one_of("paper", "gaussian"), "T": _number(1, 100_000, integer=True),
    "beta": _number(0.0), "lr": _positive, "epochs": _number(0, 10**7, integer=True),
    "batch": _number(1, 10**6, integer=True), "clip": _clip,
    "x0_half_width": _number(1e-150, 1e150), "eig_every": _number(0, integer=True),
}


def _train_rank_one(points):
    from . import conventions
    from .agents import RankOneAgent
    from .training import train_closed_loop

    p0 = points[0]
    members = [RankOneAgent(N=p["N"], seed=p["seed"], s_zm0=p["s_zm0"], init=p["init"])
               for p in points]
    env = plant_settings.env_of(p0)
    col = lambda k: _column(points, k)
    return train_closed_loop(
        RankOneAgent.stack(members), env, epochs=p0["epochs"], T=col("T"), beta=col("beta"),
        lr=col("lr"), batch=p0["batch"], clip=p0["clip"], mode=p0["mode"], seed=col("seed"),
        convention=conventions.resolve(p0["convention"], conventions.PAPER_RANK_ONE),
        eig_every=p0["eig_every"], eig_W=False)


MODELS["rank_one"] = Model(
    "rank_one",
    defaults=dict(N=100, seed=0, s_zm0=None, init="paper", T=50, beta=0.0, lr=1e-2,
                  epochs=1000, batch=100, clip=1.0, x0_half_width=2.0, mode="sampled",
                  convention="paper_rank_one", eig_every=1, **plant_settings.DEFAULTS),
    shared=("N", "epochs", "batch", "clip", "x0_half_width", "mode", "convention",
            "eig_every", *plant_settings.DEFAULTS),
    check={**_COMMON_CHECKS, "s_zm0": _number(-1.0, 1.0, none_ok=True),
           "mode": _one_of("sampled", "exact"),
           "convention": _one_of("paper_rank_one", "book"), **plant_settings.CHECKS},
    train=_train_rank_one, check_point=plant_settings.check_point)


def _train_tanh(points):
    """A tanh ensemble on the point's plant; its test loss (``gains.probe``): noise-free
    rollouts from fixed starts (the noise is in the training loss, not in the test)."""
    from . import conventions, gains
    from .agents import RNNAgent
    from .training import train_closed_loop

    p0 = points[0]
    members = [RNNAgent(N=p["N"], g=p["g"], seed=p["seed"], init=p["init"]) for p in points]
    env = plant_settings.env_of(p0)
    quiet = env.with_noise(0.0) if p0["noise"] else env
    col = lambda k: _column(points, k)
    probe = gains.probe(quiet, gains.fixed_starts(quiet, p0["n_test"]), p0["test_T"])
    return train_closed_loop(
        RNNAgent.stack(members), env, epochs=p0["epochs"], T=col("T"), beta=col("beta"),
        lr=col("lr"), batch=p0["batch"], clip=p0["clip"], seed=col("seed"),
        convention=conventions.resolve(p0["convention"], conventions.PAPER_TANH),
        eig_every=p0["eig_every"], eig_W=False, monitor=probe,
        monitor_every=p0["monitor_every"])


MODELS["tanh"] = Model(
    "tanh",
    defaults=dict(N=100, g=0.1, seed=0, init="paper", T=50, beta=0.005, lr=1e-2, epochs=1000,
                  batch=100, clip=1.0, x0_half_width=1.0, convention="paper_tanh",
                  eig_every=1, n_test=100, test_T=50, monitor_every=1,
                  **plant_settings.DEFAULTS),
    shared=("N", "epochs", "batch", "clip", "x0_half_width", "convention", "eig_every",
            "n_test", "test_T", "monitor_every", *plant_settings.DEFAULTS),
    check={**_COMMON_CHECKS, "g": _number(0.0, 1e6),
           "convention": _one_of("paper_tanh", "book"), "n_test": _number(2, integer=True),
           "test_T": _number(1, integer=True), "monitor_every": _number(0, integer=True),
           **plant_settings.CHECKS},
    train=_train_tanh, check_point=plant_settings.check_point)


def _train_open_loop(points):
    """Per point: a tanh network trained closed loop (the teacher, the paper's setup) and a
    student from the same initial weights trained open loop to imitate it, with the point's
    ``lr``; the student's closed-loop test loss is recorded every ``monitor_every`` epochs,
    in the trainings' ``dtype`` (float32: the authors'). Points that share a network (seed,
    init, g) share one teacher training."""
    from . import conventions, gains
    from .agents import RNNAgent
    from .envs import DoubleIntegrator, UniformBox
    from .training import train_closed_loop, train_open_loop

    import torch

    p0, dtype = points[0], getattr(torch, points[0]["dtype"])
    env = DoubleIntegrator(UniformBox(p0["x0_half_width"]), dtype=dtype)
    net = lambda p: (p["seed"], p["init"], p["g"])
    nets = list(dict.fromkeys(net(p) for p in points))
    initial = [RNNAgent(N=p0["N"], g=g, seed=seed, init=init, dtype=dtype)
               for seed, init, g in nets]
    teachers = RNNAgent.stack([a.detached() for a in initial])
    train_closed_loop(teachers, env, epochs=p0["teacher_epochs"], T=p0["T"], beta=p0["beta"],
                      lr=p0["teacher_lr"], batch=p0["batch"], clip=p0["clip"],
                      seed=[seed for seed, _, _ in nets], convention=conventions.PAPER_TANH,
                      eig_every=0, eig_W=False)
    which = [nets.index(net(p)) for p in points]
    students = RNNAgent.stack([initial[i].detached() for i in which])
    teacher = RNNAgent.stack([teachers.member(i) for i in which])
    probe = gains.probe(env, gains.fixed_starts(env, p0["n_test"]), p0["test_T"])
    return train_open_loop(students, teacher, env, epochs=p0["epochs"], T=p0["T"],
                           lr=[p["lr"] for p in points], batch=p0["batch"], clip=p0["clip"],
                           seed=p0["data_seed"], convention=conventions.PAPER_OPEN_LOOP,
                           eig_every=0, eig_W=False, monitor=probe,
                           monitor_every=p0["monitor_every"])


MODELS["open_loop"] = Model(
    "open_loop",
    defaults=dict(N=100, g=0.1, seed=0, init="paper", lr=1e-2, teacher_lr=1e-2, epochs=1000,
                  teacher_epochs=1000, T=50, beta=0.005, batch=100, clip=1.0,
                  x0_half_width=1.0, data_seed=0, n_test=100, test_T=50, monitor_every=1,
                  dtype="float64"),
    shared=("N", "teacher_lr", "epochs", "teacher_epochs", "T", "beta", "batch", "clip",
            "x0_half_width", "data_seed", "n_test", "test_T", "monitor_every", "dtype"),
    check={**_COMMON_CHECKS, "g": _number(0.0, 1e6), "teacher_lr": _positive,
           "teacher_epochs": _number(0, 10**7, integer=True),
           "data_seed": _number(0, 2**63 - 1, integer=True), "n_test": _number(2, integer=True),
           "test_T": _number(1, integer=True), "monitor_every": _number(1, integer=True),
           "dtype": _one_of("float32", "float64")},
    train=_train_open_loop)
