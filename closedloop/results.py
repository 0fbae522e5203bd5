"""Training histories on disk: one ``.npz`` file of plain arrays plus JSON metadata, no pickle.

Layout (format ``closedloop.History``, version ``VERSION``): every array of
``History.arrays`` under its own name (``loss``, ``params/W``, ...), and ``__meta__``, a 0-d
unicode array holding the JSON object

    {"format", "version", "package_version", "config", "message", "seconds",
     "arrays": {name: [dtype, shape]}}

Loading never unpickles (``allow_pickle=False``; object arrays cannot be written either). It
checks the format name and version, and that every array the metadata lists is there with
its dtype and shape; the zip container's CRC-32 of each entry catches corrupted bytes. Any
problem is a ValueError that names the file and says what is wrong. A save goes to a
temporary file that replaces ``path`` only once complete, so an interrupted save never
destroys an earlier good file. JSON has no tuples: tuples in the config come back as lists.
Introduced with the reliability checks (issue 8); every chapter's figures can be redrawn
from saved histories.
"""

from __future__ import annotations

import json
import numbers
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from . import _checks
from .training import History

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
