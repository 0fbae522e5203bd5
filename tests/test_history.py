"""Saved histories (issue 8): exact round trips, clear errors for damaged or foreign files, no
pickle anywhere (the figures redrawn from saved histories: test_figures.py)."""

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from closedloop import DoubleIntegrator, RankOneAgent  # noqa: E402
from closedloop import tracking as tr  # noqa: E402
from closedloop.training import History, train_closed_loop  # noqa: E402
from histories import assert_same  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def roundtrip(h: History, path: Path) -> History:
    h.save(path)
    return History.load(path)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small history with every kind of array (ints, floats, complex, snapshots), saved."""
    env = DoubleIntegrator()
    h = train_closed_loop(RankOneAgent(N=6, batch_shape=(2,)), env, epochs=4,
                          snapshot_every=2, monitor=lambda a: {"zm": (a.z * a.m).sum(-1)})
    path = tmp_path_factory.mktemp("saved") / "run.npz"
    h.save(path)
    return h, path


def test_round_trip_is_exact(saved):
    h, path = saved
    assert_same(h, History.load(path), seconds=True)
    assert History.load(path).member(1).overlaps.shape == (5, 4)


def test_round_trip_of_interrupted_and_tracking_histories(tmp_path, env):
    h = train_closed_loop(RankOneAgent(N=4), env, epochs=0)
    assert_same(h, roundtrip(h, tmp_path / "zero.npz"), seconds=True)
    with pytest.warns(RuntimeWarning):
        stopped = train_closed_loop(RankOneAgent(N=5, s_zm0=0.2), env, epochs=50, lr=1e3,
                                    clip=None, T=200)
    back = roundtrip(stopped, tmp_path / "stopped.npz")
    assert_same(stopped, back, seconds=True)
    assert not back.completed
    t = tr.train_tracking(tr.TrackingRNN(N=5), refs=tr.Sinusoids(T=30), epochs=3, batch=2,
                          n_test=2)
    assert_same(t, roundtrip(t, tmp_path / "tracking.npz"), seconds=True)


def test_config_tuples_come_back_as_lists_and_objects_are_refused(tmp_path):
    h = History({"freqs": (0.1, 0.2), "w": np.float64(2.0), "k": torch.tensor([1, 2]),
                 "none": None}, {"epoch": np.arange(3)})
    assert roundtrip(h, tmp_path / "a.npz").config == {
        "freqs": [0.1, 0.2], "w": 2.0, "k": [1, 2], "none": None}
    with pytest.raises(TypeError, match=r"config\['agent'\]"):
        History({"agent": RankOneAgent(N=3)}, {}).save(tmp_path / "b.npz")
    with pytest.raises(TypeError, match="pickle"):
        History({}, {"x": np.array([object()])}).save(tmp_path / "c.npz")
    assert not (tmp_path / "b.npz").exists() and not (tmp_path / "c.npz").exists()


def test_a_failed_save_leaves_the_earlier_file_intact(saved, tmp_path, monkeypatch):
    h, path = saved
    target = tmp_path / "run.npz"
    target.write_bytes(path.read_bytes())

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        h.save(target)
    assert target.read_bytes() == path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]  # no temporary left behind


def _rewrite(path, out, meta_edit=None, arrays_edit=None):
    """Copy a saved history with its metadata or arrays changed (as another writer would)."""
    with np.load(path) as z:
        meta = json.loads(str(z["__meta__"][()]))
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    if meta_edit:
        meta_edit(meta)
    if arrays_edit:
        arrays_edit(arrays)
    np.savez(out, __meta__=np.array(json.dumps(meta)), **arrays)
    return out


@pytest.mark.parametrize("edit,match", [
    (dict(meta_edit=lambda m: m.update(version=2, package_version="9.0")),
     "format version 2 .*upgrade closedloop"),
    (dict(meta_edit=lambda m: m.update(version=0)), "format version 0"),
    (dict(meta_edit=lambda m: m.update(version="1")), "not an integer"),
    (dict(meta_edit=lambda m: m.update(format="something.else")), "format is 'something.else'"),
    (dict(meta_edit=lambda m: m.pop("config")), "'config' is missing"),
    (dict(meta_edit=lambda m: m["arrays"].update(ghost=["<f8", [3]])), r"missing \['ghost'\]"),
    (dict(arrays_edit=lambda a: a.update(extra=np.zeros(2))), r"unlisted \['extra'\]"),
    (dict(arrays_edit=lambda a: a.update(loss=a["loss"][:-1])), "'loss' is <f8"),
    (dict(arrays_edit=lambda a: a.update(loss=a["loss"].astype(np.float32))), "'loss' is <f4"),
])
def test_incompatible_files_say_what_is_wrong(saved, tmp_path, edit, match):
    bad = _rewrite(saved[1], tmp_path / "bad.npz", **edit)
    with pytest.raises(ValueError, match=match):
        History.load(bad)


def test_foreign_damaged_and_pickled_files_are_refused(saved, tmp_path):
    data = saved[1].read_bytes()
    cases = {
        "empty.npz": b"",
        "text.npz": b"not a history at all",
        "truncated.npz": data[: len(data) // 2],
        "tail_cut.npz": data[:-30],
    }
    middle = bytearray(data)
    middle[len(data) // 2] ^= 0xFF  # inside an array's bytes: the CRC-32 catches it
    cases["flipped.npz"] = bytes(middle)
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match="not a readable closedloop history"):
            History.load(tmp_path / name)
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single array"):
        History.load(tmp_path / "single.npy")
    np.savez(tmp_path / "plain.npz", loss=np.zeros(3))
    with pytest.raises(ValueError, match="no closedloop metadata"):
        History.load(tmp_path / "plain.npz")
    import pickle

    (tmp_path / "pickled.npz").write_bytes(pickle.dumps({"loss": [1.0]}))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name in ("pickled.npz", "objects.npy"):
        with pytest.raises(ValueError, match="pickle"):
            History.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        History.load(tmp_path / "missing.npz")


def test_the_package_never_unpickles():
    """No pickle import, no allow_pickle=True, and any torch.load with weights_only=True."""
    for path in (ROOT / "closedloop").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from) (c?pickle|dill|joblib)", text, re.M), path
        assert "allow_pickle=True" not in text, path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


def test_records_are_read_at_or_after_the_epoch():
    """The one rule for strided records: the first recorded epoch at or after the asked one."""
    from closedloop.history import record_index

    recorded = np.array([0, 10, 20, 25])
    assert [record_index(recorded, e) for e in (0, 1, 10, 11, 24, 25, 26, 2**70)] == [
        0, 1, 1, 2, 3, 3, 3, 3]                     # beyond the last record: the last
    with pytest.raises(ValueError, match="epoch"):
        record_index(recorded, -1)
