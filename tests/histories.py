"""Checks on histories that several test modules share (import: ``from histories import ...``)."""

import numpy as np

from closedloop.history import History, _jsonable


def assert_same(a: History, b: History, seconds: bool = False):
    """Bitwise the same history: config (as saved: tuples become lists), message, the same
    arrays in the same order with the same dtype, shape and bytes; and the wall time too when
    ``seconds`` (a save/load round trip keeps it, a second training does not)."""
    assert _jsonable(a.config, "config") == _jsonable(b.config, "config")
    assert a.message == b.message
    if seconds:
        assert a.seconds == b.seconds
    assert list(a.arrays) == list(b.arrays)
    for name in a.arrays:
        assert a.arrays[name].dtype == b.arrays[name].dtype, name
        assert a.arrays[name].shape == b.arrays[name].shape, name
        assert a.arrays[name].tobytes() == b.arrays[name].tobytes(), name


def assert_consistent(h: History, n_epochs: int):
    """``n_epochs`` whole epochs recorded, all finite: every per-epoch array has that many rows
    (``grad_norm`` one fewer when the last row is the final network), and every strided record
    (eig, snapshot, monitor, test) one row per epoch it lists."""
    assert h.epoch.tolist() == list(range(n_epochs))
    for name, a in h.arrays.items():
        assert np.isfinite(a).all(), name
    strided = {"eig_epoch": ("eig_P", "eig_W", "spectral_radius"),
               "monitor_epoch": ("test_loss", "gains", "gain_r2", "instant_gain"),
               "snapshot_epoch": tuple(k for k in h.arrays if k.startswith("params/")),
               "test_epoch": ("test_loss",)}
    per_epoch = set(h.arrays) - set(strided) - {n for v in strided.values() for n in v}
    for name in per_epoch:  # the final network makes no update: one gradient row fewer
        rows = (n_epochs - 1, n_epochs) if name == "grad_norm" else (n_epochs,)
        assert len(h.arrays[name]) in rows, name
    for idx, names in strided.items():
        if idx in h.arrays:
            assert set(h.arrays[idx]) <= set(range(n_epochs))
            for name in names:
                if name in h.arrays:
                    assert len(h.arrays[name]) == len(h.arrays[idx]), name
