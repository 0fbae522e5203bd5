"""closedloop.sweep: grids validated before anything trains, chunks as ensembles whose members
equal their runs alone, the same bits on every engine (in-process, a LocalCluster, a
scheduler and worker started by hand and reached by address), resume, failures, a killed
worker. Clusters are started for real and shut down by the tests that start them."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from closedloop import DoubleIntegrator, RankOneAgent, sweep

ROOT = Path(__file__).resolve().parents[1]
from closedloop.training import train_closed_loop

SMALL = dict(N=[6], epochs=[15], batch=[8], T=[12])
GRID = {**SMALL, "seed": [0, 1, 2], "lr": [0.01, 0.05]}


def assert_bitwise(a, b):
    assert set(a.arrays) == set(b.arrays)
    for name in a.arrays:
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name], err_msg=name)


def test_points_fill_defaults_and_follow_the_grid_order():
    pts = sweep.points_of({"seed": [4, 5], "T": [10, 20]})
    assert [(p["seed"], p["T"]) for p in pts] == [(4, 10), (4, 20), (5, 10), (5, 20)]
    assert pts[0]["N"] == 100 and pts[0]["lr"] == 1e-2  # the paper's defaults
    assert sweep.points_of([{"seed": 3}, {"T": 7}])[1]["T"] == 7


@pytest.mark.parametrize("grid,match", [
    ({"T": [10, 0]}, "grid point 1 .*T"), ({"lr": [0.1, -1.0]}, "lr"),
    ({"tau": [1.0]}, "unknown setting.*tau"), ({"seed": []}, "empty"),
    ({"seed": 3}, "list of values"), ("T", "grid must be"), ({"s_zm0": [2.0]}, "s_zm0"),
    ({"mode": ["fast"]}, "mode"), ({"N": [2.5]}, "N")])
def test_a_bad_grid_fails_before_anything_trains(grid, match, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(sweep, "train_chunk", lambda *a: calls.append(a))
    with pytest.raises((ValueError, TypeError), match=match):
        sweep.run(grid, out=tmp_path, progress=False)
    assert not calls and not any(tmp_path.iterdir())


def test_chunks_split_by_shared_settings_then_size():
    pts = sweep.points_of({"N": [5, 7], "seed": [0, 1, 2], "T": [10, 20]})
    chunks = sweep.chunks_of(pts, "rank_one", chunk_size=4)
    assert sorted(i for c in chunks for i in c) == list(range(12))
    for c in chunks:
        assert len(c) <= 4 and len({pts[i]["N"] for i in c}) == 1
    assert [len(c) for c in chunks] == [4, 2, 4, 2]


def test_a_member_equals_its_run_alone():
    h = sweep.run(GRID, chunk_size=4, progress=False)
    coords = sweep.coords_of(h)
    for k in (0, 3, 5):
        agent = RankOneAgent(N=6, seed=int(coords["seed"][k]))
        alone = train_closed_loop(agent, DoubleIntegrator(), epochs=15, batch=8, T=12,
                                  lr=float(coords["lr"][k]), seed=int(coords["seed"][k]))
        np.testing.assert_allclose(h.loss[:, k], alone.loss, rtol=1e-10)
        np.testing.assert_allclose(h.spectral_radius[:, k], alone.spectral_radius, rtol=1e-9)
    sub = sweep.select(h, lr=0.05)
    assert sub.loss.shape[1] == 3 and set(sweep.coords_of(sub)["lr"]) == {0.05}
    with pytest.raises(ValueError, match="not a coordinate"):
        sweep.select(h, tau=1)


def test_resume_trains_only_the_missing_chunk(tmp_path, monkeypatch):
    first = sweep.run(GRID, chunk_size=2, out=tmp_path, progress=False)
    (folder,) = tmp_path.iterdir()
    files = sorted(folder.glob("chunk-*.npz"))
    assert len(files) == 3
    files[1].unlink()
    calls = []
    real = sweep.train_chunk
    monkeypatch.setattr(sweep, "train_chunk", lambda f, p: calls.append(p) or real(f, p))
    again = sweep.run(GRID, chunk_size=2, out=tmp_path, progress=False)
    assert len(calls) == 1 and [p["seed"] for p in calls[0]] == [1, 1]
    assert_bitwise(first, again)


def test_a_failed_chunk_is_reported_with_its_points_after_the_others_are_saved(tmp_path,
                                                                             monkeypatch):
    real = sweep.MODELS["rank_one"]

    def flaky(points):
        if any(p["seed"] == 1 for p in points):
            raise RuntimeError("boom")
        return real.train(points)

    monkeypatch.setitem(sweep.MODELS, "rank_one", sweep.Model(
        "rank_one", real.defaults, real.shared, real.check, flaky))
    with pytest.raises(sweep.SweepError, match="1 of 3 chunks failed.*seed=1.*boom") as err:
        sweep.run(GRID, chunk_size=2, out=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*/chunk-*.npz"))) == 2
    assert list(sweep.coords_of(err.value.history)["seed"]) == [0, 0, 2, 2]


@pytest.fixture(scope="module")
def reference():
    return sweep.run(GRID, chunk_size=4, progress=False)


def test_local_cluster_gives_the_same_bits(reference):
    h = sweep.run(GRID, chunk_size=4, engine="local", n_workers=2, progress=False)
    assert_bitwise(reference, h)


@pytest.fixture
def scheduler_and_worker(tmp_path):
    """``dask scheduler`` and ``dask worker`` started as separate processes on 127.0.0.1, the
    worker as the README says (``DASK_CONFIG=tools/dask``)."""
    dask = str(Path(sys.executable).parent / "dask")
    file = tmp_path / "scheduler.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    try:
        for _ in range(300):
            if file.exists() and file.stat().st_size:
                break
            time.sleep(0.1)
        procs.append(subprocess.Popen(
            [dask, "worker", "--scheduler-file", str(file), "--nthreads", "1",
             "--no-dashboard", "--host", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(env, DASK_CONFIG=str(ROOT / "tools" / "dask"))))
        import json

        import distributed

        address = json.loads(file.read_text())["address"]
        with distributed.Client(address) as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


def test_a_scheduler_reached_by_address_gives_the_same_bits(reference, scheduler_and_worker):
    h = sweep.run(GRID, chunk_size=4, engine=scheduler_and_worker, progress=False)
    assert_bitwise(reference, h)


def test_a_worker_started_with_the_readmes_config_does_not_trim_memory(scheduler_and_worker):
    """The worker process was exec'd without Dask's MALLOC_TRIM_THRESHOLD_ (read from
    /proc: glibc reads it at start, and the nanny removes it from os.environ afterwards)."""
    import distributed

    with distributed.Client(scheduler_and_worker) as client:
        pids = client.run(os.getpid)
    for pid in pids.values():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not any(v.startswith(b"MALLOC_TRIM_THRESHOLD_=") for v in environ)
        assert b"OMP_NUM_THREADS=1" in environ


def test_a_client_made_by_the_user_gives_the_same_bits(reference):
    import distributed

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        h = sweep.run(GRID, chunk_size=4, engine=client, progress=False)
    assert_bitwise(reference, h)


def _killed_once(points, marker=None):
    """A chunk whose first attempt kills its worker process (the marker file says it did)."""
    marker = Path(os.environ["CLOSEDLOOP_TEST_MARKER"])
    if any(p["seed"] == 2 for p in points) and not marker.exists():
        marker.write_text("killed")
        os._exit(1)
    return sweep._train_rank_one(points)


def test_a_worker_killed_mid_sweep_loses_nothing(reference, tmp_path, monkeypatch):
    """The chunk whose worker dies is retried on a fresh worker; the result is whole."""
    import cloudpickle
    import distributed

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setenv("CLOSEDLOOP_TEST_MARKER", str(tmp_path / "marker"))
    real = sweep.MODELS["rank_one"]
    monkeypatch.setitem(sweep.MODELS, "rank_one", sweep.Model(
        "rank_one", real.defaults, real.shared, real.check, _killed_once))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None,
                                  env={"CLOSEDLOOP_TEST_MARKER": str(tmp_path / "marker"),
                                       "OMP_NUM_THREADS": "1"}) as cluster, \
            distributed.Client(cluster) as client:
        h = sweep.run(GRID, chunk_size=2, engine=client, out=tmp_path / "out", progress=False)
    assert (tmp_path / "marker").read_text() == "killed"
    assert len(list((tmp_path / "out").glob("*/chunk-*.npz"))) == 3
    ref2 = sweep.run(GRID, chunk_size=2, progress=False)
    assert_bitwise(ref2, h)


def test_engines_other_than_inprocess_are_named():
    with pytest.raises(ValueError, match="engine must be"):
        sweep.run(SMALL, engine="cluster", progress=False)
    with pytest.raises(ValueError, match="model must be one of"):
        sweep.run(SMALL, model="lstm", progress=False)


def test_the_local_cluster_does_not_trim_memory_at_every_free(monkeypatch):
    """Dask's default MALLOC_TRIM_THRESHOLD_ (64 KiB) made an open-loop chunk's pages fault
    in again at every step; the workers run with glibc's own threshold, as this process,
    and on one torch thread."""
    import os

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with sweep.dask_client("local", 1) as client:
        env = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        threads = client.run(os.environ.get, "OMP_NUM_THREADS")
    assert list(env.values()) == [None] and list(threads.values()) == ["1"]
    assert client.status == "closed"  # the cluster started here is closed here
