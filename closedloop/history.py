"""What training records: ``History`` (per-epoch arrays), the recorder that fills it whole
epoch by whole epoch, and its file on disk.

On disk a history is one ``.npz`` file of plain arrays plus JSON metadata, no pickle. Layout
(format ``closedloop.History``, version ``VERSION``): every array of ``History.arrays`` under
its own name (``loss``, ``params/W``, ...), and ``__meta__``, a 0-d unicode array holding the
JSON object

    {"format", "version", "package_version", "config", "message", "seconds",
     "arrays": {name: [dtype, shape]}}

Loading never unpickles (``allow_pickle=False``; object arrays cannot be written either). It
checks the format name and version, and that every array the metadata lists is there with
its dtype and shape; the zip container's CRC-32 of each entry catches corrupted bytes. Any
problem is a ValueError that names the file and says what is wrong. A save goes to a
temporary file that replaces ``path`` only once complete, so an interrupted save never
destroys an earlier good file. JSON has no tuples: tuples in the config come back as lists.
"""

from __future__ import annotations

import json
import numbers
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import _checks, coupled, kernels
from .agents import Agent, has_overlaps

def record_index(recorded, epoch: int) -> int:
    """The row of a strided record (snapshots, eigenvalues, monitor or probe values) that shows
    the network of ``epoch``: the first of the ``recorded`` epochs (increasing, not empty) at
    or after ``epoch``, so a network that has trained at least that long; the last row if none.
    The one rule by which every chapter reads strided records."""
    epoch = _checks.integer("epoch", epoch, low=0)
    # epochs beyond the last record read the last (and cannot overflow int64)
    epoch = min(epoch, int(recorded[-1]))
    return min(int(np.searchsorted(recorded, epoch)), len(recorded) - 1)


@dataclass
class History:
    """What training recorded. ``arrays[name]`` has shape (n_records, *batch_shape, ...).

    Row e of the per-epoch arrays describes the network *before* update e; the last row is
    the final network (so there are epochs + 1 rows for a completed run, epochs + 2 when
    epoch 0 makes no update: rows 0 and 1 are then the same network). Keys:

    - ``epoch`` (E,); ``loss`` (E, *K): the loss the update was computed from;
      ``expected_loss`` (E, *K): its exact expectation over x_0 (linear agents);
      ``grad_norm`` (E, *K): before clipping;
    - ``overlaps`` (E, *K, 4): (s_zm, s_zu, s_vm, s_vu) (rank-one agents);
    - ``eig_epoch`` (R,); ``eig_P`` (R, *K, d) and ``eig_W`` (R, *K, N), complex, by decreasing
      modulus, every ``eig_every`` epochs (see ``coupled.spectrum``);
      ``spectral_radius`` (R, *K) = rho(P).
    - ``snapshot_epoch`` (S,), ``params/<name>`` (S, *K, ...): parameters every
      ``snapshot_every`` epochs, enough to rebuild the network.

    ``message`` is empty for a completed run and says why otherwise (divergence, interrupt).
    """

    config: dict
    arrays: dict = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0

    def __getattr__(self, name):
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    @property
    def completed(self) -> bool:
        return not self.message

    def agent_at(self, epoch: int, like: Agent) -> Agent:
        """The network at the first snapshot at or after ``epoch`` (``record_index``; the last
        if none), rebuilt as an agent of ``like``'s type, activation, trainable set and dtype
        (its ``snapshot_epoch`` says which).

        Introduced in Chapter 1, section "Rollouts".
        """
        if "snapshot_epoch" not in self.arrays:
            raise ValueError("this history has no parameter snapshots (train with "
                             "snapshot_every > 0)")
        if not isinstance(like, Agent) or set(like.names) != {
                k.removeprefix("params/") for k in self.arrays if k.startswith("params/")}:
            raise TypeError(f"like must be an agent of the type trained, got "
                            f"{_checks.short(like)}")
        i = record_index(self.arrays["snapshot_epoch"], epoch)
        tensors = {k: torch.as_tensor(self.arrays[f"params/{k}"][i], dtype=like.dtype)
                   for k in like.names}
        agent = like._new(tensors)
        agent.snapshot_epoch = int(self.arrays["snapshot_epoch"][i])
        return agent

    def save(self, path) -> None:
        """Write this history to ``path``: one .npz of its arrays with its config, message
        and run time as versioned JSON metadata; never pickle (see the module docstring)."""
        save_history(self, path)

    @classmethod
    def load(cls, path) -> "History":
        """Read a history written by ``save``; ValueError for a corrupt, truncated or
        incompatible file."""
        return load_history(path)

    def member(self, k: int) -> "History":
        """Ensemble member k: every per-member array indexed at axis 1."""
        loss = self.arrays.get("loss")
        if loss is None or loss.ndim < 2:
            raise ValueError("member() needs an ensemble history (per-member arrays)")
        k = _checks.integer("k", k, low=0, high=loss.shape[1] - 1)
        per_member = {n: a[k] if n.startswith("coord/") else a[:, k]  # a sweep's settings
                      for n, a in self.arrays.items() if not n.endswith("epoch")}
        epochs = {n: a for n, a in self.arrays.items() if n.endswith("epoch")}
        return History(dict(self.config, member=k), {**epochs, **per_member}, self.message,
                       self.seconds)


class Recorder:
    """Collects each epoch's records in a dict that joins ``rows`` only when complete (one
    list append), so that Ctrl-C in the middle of an epoch's records leaves none of them."""

    def __init__(self, agent, env, monitor, strides, epochs, eig_W=True):
        self.rows: list[dict] = []
        self.eig_W = eig_W
        self.pending: dict = {}
        self.rank_one = has_overlaps(agent)
        self.env, self.monitor, self.strides, self.epochs = env, monitor, strides, epochs

    def add(self, name, value):
        # a copy: a recorded tensor may be a parameter that the next update changes in place
        v = value.detach().cpu().numpy().copy() if torch.is_tensor(value) else np.asarray(value)
        self.pending[name] = v

    def last(self, name):
        """The latest recorded value of ``name``, or None."""
        return next((r[name] for r in reversed(self.rows) if name in r), None)

    def due(self, what, e):
        every = self.strides[what]
        return bool(every) and (e % every == 0 or e == self.epochs)

    def epoch(self, row, agent, e):
        self.pending = {}
        for k, v in row.items():
            self.add(k, v)
        if self.rank_one:
            self.add("overlaps", agent.overlaps())
        if self.due("eig", e):
            ev = kernels.spectrum(agent, self.env)
            self.add("eig_epoch", e)
            self.add("eig_P", ev)
            self.add("spectral_radius", ev.abs()[..., 0])
            if self.eig_W:
                self.add("eig_W", coupled.recurrent_spectrum(agent))
        if self.due("snapshot", e):
            self.add("snapshot_epoch", e)
            for k, v in agent.snapshot().items():
                self.add(f"params/{k}", v)
        if self.due("monitor", e):
            try:
                with torch.no_grad():
                    values = self.monitor(agent)
            except Exception as exc:  # a user's callable: say where the error came from
                exc.add_note(f"raised by monitor(agent) at epoch {e}")
                raise
            if not isinstance(values, dict):
                raise TypeError(f"monitor must return a dict {{name: tensor}}, got "
                                f"{_checks.short(values)}")
            self.add("monitor_epoch", e)
            for k, v in values.items():
                self.add(k, v)
        self.rows.append(self.pending)

    def finish(self):
        return stack_rows(self.rows)


def stack_rows(rows: list[dict]) -> dict:
    """Per-epoch dicts -> {name: array over the epochs that recorded it}."""
    names = dict.fromkeys(k for r in rows for k in r)  # first-seen order
    return {k: np.stack([np.asarray(r[k]) for r in rows if k in r]) for k in names}


def stopped_message(e: int, last_loss, dtype=None) -> str:
    """The message of a run stopped by a non-finite loss or gradient at epoch ``e``; for a
    run in a float format narrower than float64 (``dtype``), how to rerun it wider."""
    if last_loss is None:
        out = (f"training stopped at epoch {e}: the loss or its gradient is not finite "
               f"(overflow at the first epoch: no finite loss, nothing kept)")
    else:
        out = (f"training stopped at epoch {e}: the loss or its gradient is not finite (last "
               f"finite loss {np.max(last_loss):.4g}, at epoch {e - 1}); history up to epoch "
               f"{e - 1} kept")
    if dtype is not None and dtype != torch.float64:
        out += (f". It ran in {dtype}, whose largest number is "
                f"{torch.finfo(dtype).max:.3g}: rerun with dtype=torch.float64 (a chapter's "
                f"dtype parameter 'float64')")
    return out


def interrupted_message(e: int, n_rows: int) -> str:
    """The message of a run stopped by Ctrl-C at epoch ``e`` with ``n_rows`` whole epochs
    recorded (e, or e + 1 if the epoch was recorded and its update interrupted)."""
    return (f"training interrupted at epoch {e}; history up to epoch {n_rows - 1} kept" if n_rows
            else f"training interrupted at epoch {e}; nothing recorded")


def attach_history(exc: Exception, e: int, make) -> None:
    """Attach the history so far, ``make(message)``, to an error raised during training
    (``exc.history``), so a failure late in a long run does not lose it."""
    try:
        exc.history = make(f"failed at epoch {e}: {exc!r}")
        n = len(exc.history.arrays.get("epoch", ()))
        exc.add_note(f"closedloop: training failed at epoch {e}; the history of the {n} "
                     f"epochs before is kept in this error's .history attribute")
    except Exception:  # noqa: BLE001 - the original error matters more than the history
        pass


FORMAT = "closedloop.History"
VERSION = 1
META = "__meta__"
_KINDS = "biufcU"  # bool, integers, floats, complex, unicode: all stored without pickle


def save_history(history: History, path) -> Path:
    """Write ``history`` to ``path`` (one .npz file); returns the path."""
    if not isinstance(history, History):
        raise TypeError(f"history must be a History, got {_checks.short(history)}")
    path = Path(os.fspath(path))
    arrays = {}
    for name, a in history.arrays.items():
        if not isinstance(name, str) or name == META or not name:
            raise ValueError(f"array name {name!r} cannot be stored (reserved or not a string)")
        a = np.asarray(a)
        if a.dtype.kind not in _KINDS:
            raise TypeError(f"array {name!r} has dtype {a.dtype}, which would need pickle; "
                            f"store numbers, booleans or strings")
        arrays[name] = a
    from . import __version__

    meta = {"format": FORMAT, "version": VERSION, "package_version": __version__,
            "config": _jsonable(history.config, "config"), "message": str(history.message),
            "seconds": float(history.seconds),
            "arrays": {k: [a.dtype.str, list(a.shape)] for k, a in arrays.items()}}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{META: np.array(json.dumps(meta))}, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_history(path) -> History:
    """Read a history written by ``save_history``; ValueError if the file is not one, is
    corrupt or truncated, or has a format version this package cannot read."""
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"no history file at {path}")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise _Bad("it holds a single array, not a saved history")
        with z:
            if META not in z.files:
                raise _Bad("it has no closedloop metadata (__meta__)")
            meta = _meta(json.loads(str(z[META][()])))
            missing = set(meta["arrays"]) - set(z.files)
            extra = set(z.files) - set(meta["arrays"]) - {META}
            if missing or extra:
                raise _Bad(f"its arrays do not match its metadata (missing {sorted(missing)}, "
                           f"unlisted {sorted(extra)})")
            arrays = {}
            for name, (dtype, shape) in meta["arrays"].items():
                a = z[name]  # reading an entry checks its CRC-32 (BadZipFile, below)
                if a.dtype.str != dtype or list(a.shape) != shape:
                    raise _Bad(f"array {name!r} is {a.dtype.str} {list(a.shape)}, its metadata "
                               f"says {dtype} {shape}")
                arrays[name] = a
    except _Bad as e:
        raise ValueError(f"{path} is not a readable closedloop history: {e}") from None
    except Exception as e:  # noqa: BLE001 - whatever a damaged file makes the readers raise
        raise ValueError(f"{path} is not a readable closedloop history (corrupt or "
                         f"truncated?): {type(e).__name__}: {e}") from None
    return History(meta["config"], arrays, meta["message"], meta["seconds"])


class _Bad(Exception):
    """A structural problem found while reading (reported as ValueError)."""


def _meta(meta) -> dict:
    """Check the metadata object: format, version, and the type of every field."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise _Bad(f"its format is {got!r}, not {FORMAT!r}")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Bad(f"its format version {version!r} is not an integer")
    from . import __version__

    if version > VERSION:
        raise _Bad(f"it has format version {version} (written by closedloop "
                   f"{meta.get('package_version')!r}); this closedloop {__version__} reads "
                   f"versions up to {VERSION}: upgrade closedloop to read it")
    if version < 1:
        raise _Bad(f"its format version {version} is not one closedloop ever wrote")
    types = {"config": dict, "message": str, "seconds": numbers.Real, "arrays": dict}
    for key, kind in types.items():
        if not isinstance(meta.get(key), kind):
            raise _Bad(f"its metadata field {key!r} is missing or not a {kind.__name__}")
    for name, entry in meta["arrays"].items():
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], list)
                and all(isinstance(n, int) and n >= 0 for n in entry[1])):
            raise _Bad(f"its metadata entry for array {name!r} is malformed: {entry!r}")
    return meta


def _jsonable(value, where: str):
    """``value`` with tuples, numpy and torch values turned into JSON types; TypeError naming
    the config entry otherwise (the history itself stays in memory, nothing is lost)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"{where} = {_checks.short(value)} cannot be stored as JSON; keep "
                    f"numbers, strings, None, lists and dicts with string keys in a config")
