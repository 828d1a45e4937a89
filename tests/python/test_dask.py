"""lowbit.dask on a LocalCluster of 2 worker processes (1 thread each): every result equals the
single-process one bit for bit, and a worker killed mid-job loses and duplicates nothing."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("threadpoolctl")
da = pytest.importorskip("dask.array")

import lowbit  # noqa: E402
import lowbit.dask as ld  # noqa: E402
from lowbit.distill import Distiller  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=40)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6000, 16)).astype(np.float32)
    y = rng.integers(0, 10, 6000)
    teacher = lowbit.nn.MLP([16, 64, 10], seed=0)
    return x, y, teacher


def _ref(teacher, x, T=3.0, batch_size=4096, **kw):
    """Distiller's soft targets in this process, numpy's BLAS on one thread as on the workers (a
    float teacher's rounding depends on BLAS's thread count)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return Distiller(teacher, lowbit.nn.MLP([16, 8, 10], seed=1), temperature=T, **kw).soft_targets(
            x, batch_size=batch_size)


def test_import_lowbit_does_not_import_dask():
    code = "import sys, lowbit; assert 'lowbit.dask' not in sys.modules and 'distributed' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_dask_the_import_error_says_how_to_install():
    code = ("import sys; sys.modules['distributed'] = None\n"
            "try:\n    import lowbit.dask\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "pip install lowbit[dask]" in out


def test_soft_targets_every_kind_of_data(client, data, tmp_path):
    x, _, teacher = data
    # shards that are multiples of batch_size: the float teacher sees the same batches
    ref = _ref(teacher, x, batch_size=500)
    got = ld.soft_targets(teacher, da.from_array(x, chunks=(1500, 16)), temperature=3.0, batch_size=500)
    assert got.dtype == np.float32 and np.array_equal(got, ref)
    paths = []
    for i, a in enumerate(np.split(x, 4)):
        paths.append(str(tmp_path / f"x{i}.npy"))
        np.save(paths[-1], a)
    np.savez(tmp_path / "z.npz", x=x[:500])
    assert np.array_equal(ld.soft_targets(teacher, paths, temperature=3.0, batch_size=500), ref)
    assert np.array_equal(ld.soft_targets(teacher, [str(tmp_path / "z.npz")], temperature=3.0,
                                          batch_size=500), ref[:500])
    it = iter(np.split(x, 6))
    assert np.array_equal(ld.soft_targets(teacher, it, temperature=3.0, batch_size=500, window=2), ref)
    assert np.array_equal(ld.soft_targets(teacher, x, temperature=3.0, batch_size=500, client="local"), ref)


def test_soft_targets_int8_codebook_and_several_teachers(client, data):
    x, _, teacher = data
    q = lowbit.quantize_model(teacher, x[:1000])
    cb = ld.many._codebook_model(teacher, k=16)
    xd = da.from_array(x, chunks=(1700, 16))  # any chunks: these teachers' rows are independent
    for t in (q, cb):
        assert np.array_equal(ld.soft_targets(t, xd, temperature=2.0), _ref(t, x, T=2.0))
    both = [teacher, (q, 3.0)]
    got = ld.soft_targets(both, da.from_array(x, chunks=(2000, 16)), temperature=2.0, batch_size=1000)
    assert np.array_equal(got, _ref(both, x, T=2.0, batch_size=1000))


def test_soft_target_shards_stream_into_fit_stream(client, data, tmp_path):
    x, y, teacher = data
    xd = client.persist(da.from_array(x, chunks=(1500, 16)))  # blocks held by the workers
    shards = ld.soft_targets(teacher, xd, temperature=3.0, batch_size=500, out=tmp_path / "soft")
    assert len(shards) == 4 and shards.rows == [1500] * 4
    assert sorted(os.listdir(tmp_path / "soft")) == [f"soft-{i:06d}.npy" for i in range(4)]
    soft = _ref(teacher, x, batch_size=500)
    assert np.array_equal(shards.to_numpy(), soft)

    def run(chunks):
        student = lowbit.nn.MLP([16, 8, 10], seed=1)
        Distiller(teacher, student, temperature=3.0, alpha=0.7).fit_stream(chunks, epochs=2, batch_size=64,
                                                                           seed=3)
        return student

    streamed = run(ld.stream(xd, shards, y))
    in_memory = run(lambda: ((x[s:s + 1500], y[s:s + 1500], soft[s:s + 1500]) for s in range(0, 6000, 1500)))
    for a, b in zip(streamed.parameters(), in_memory.parameters()):
        assert np.array_equal(a, b)
    # fit() with the streamed soft targets equals fit() computing them itself
    s1, s2 = lowbit.nn.MLP([16, 8, 10], seed=1), lowbit.nn.MLP([16, 8, 10], seed=1)
    Distiller(teacher, s1, temperature=3.0).fit(x, y, epochs=1, soft_targets=shards.to_numpy(), seed=0)
    Distiller(teacher, s2, temperature=3.0).fit(x, y, epochs=1, soft_targets=soft, seed=0)
    for a, b in zip(s1.parameters(), s2.parameters()):
        assert np.array_equal(a, b)


class _SlowTeacher:
    """A teacher slow enough that a worker can be killed while shards are in flight."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x):
        time.sleep(0.15)
        return self.model(x)


class _CountingTeacher:
    """Records in a file every process that unpickles it."""

    def __init__(self, model, log):
        self.model, self.log = model, str(log)

    def __setstate__(self, state):
        self.__dict__.update(state)
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")

    def __call__(self, x):
        return self.model(x)


def test_teacher_shipped_once_per_worker_not_per_shard(client, data, tmp_path):
    x, _, teacher = data
    log = tmp_path / "unpickled.txt"
    xd = da.from_array(x, chunks=(500, 16))  # 12 shards
    got = ld.soft_targets(_CountingTeacher(teacher, log), xd, temperature=3.0, batch_size=500)
    assert np.array_equal(got, _ref(teacher, x, batch_size=500))
    worker_pids = set(client.run(os.getpid).values())
    per_pid = {}
    for line in log.read_text().split():
        per_pid[int(line)] = per_pid.get(int(line), 0) + 1
    on_workers = {p: c for p, c in per_pid.items() if p in worker_pids}
    assert on_workers and all(c == 1 for c in on_workers.values()), per_pid


@pytest.mark.parametrize("kind", ["dask array", "iterator"])
def test_killed_worker_loses_and_duplicates_no_shard(client, data, tmp_path, kind):
    x, _, teacher = data
    out = tmp_path / "soft"
    # 12 shards
    xd = da.from_array(x, chunks=(500, 16)) if kind == "dask array" else iter(np.split(x, 12))
    ref = _ref(teacher, x, batch_size=500)
    client.wait_for_workers(2, timeout=60)
    pids = client.run(os.getpid)  # {worker address: its process id}
    killed = []

    def kill_one():
        deadline = time.time() + 60
        while time.time() < deadline:
            if out.exists() and any(f.endswith(".npy") for f in os.listdir(out)):
                addr, pid = sorted(pids.items())[0]
                os.kill(pid, signal.SIGKILL)  # the worker process ends; its nanny starts a new one
                killed.append(addr)
                return
            time.sleep(0.02)

    th = threading.Thread(target=kill_one)
    th.start()
    shards = ld.soft_targets(_SlowTeacher(teacher), xd, temperature=3.0, batch_size=500, out=out)
    th.join()
    assert killed, "no worker was killed"
    assert sorted(os.listdir(out)) == [f"soft-{i:06d}.npy" for i in range(12)]
    assert np.array_equal(shards.to_numpy(), ref)
    client.wait_for_workers(2, timeout=60)


def test_soft_targets_bad_input(client, data, tmp_path):
    x, _, teacher = data
    with pytest.raises(TypeError, match="data"):
        ld.soft_targets(teacher, 3, temperature=2.0)
    with pytest.raises(ValueError, match="temperature"):
        ld.soft_targets(teacher, x, temperature=0.0)
    with pytest.raises(ValueError, match="data"):
        ld.soft_targets(teacher, [str(tmp_path / "missing.npy")], temperature=2.0)
    with pytest.raises(TypeError, match="teacher"):
        ld.soft_targets(42, x, temperature=2.0)
    with pytest.raises(TypeError, match="data"):
        ld.soft_targets(teacher, x.astype(np.int32), temperature=2.0)
    bad = x.copy()
    bad[5, 3] = np.nan
    with pytest.raises(ValueError, match="NaN|finite"):
        ld.soft_targets(teacher, da.from_array(bad, chunks=(3000, 16)), temperature=2.0)
    with pytest.raises(ValueError, match="client"):
        ld.soft_targets(teacher, x, temperature=2.0, client="nope")


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse", "entropy"])
def test_calibrate_equals_single_process(client, method):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((9000, 8)) * rng.uniform(0.1, 3.0, (9000, 1))).astype(np.float32)
    obs = ld.calibrate(da.from_array(x, chunks=(1300, 8)), method)
    single = lowbit.observer(method).observe(x)
    assert obs.count == single.count and (obs.min, obs.max) == (single.min, single.max)
    if method != "minmax":
        assert obs.bound == single.bound
        assert np.array_equal(obs.pos, single.pos) and np.array_equal(obs.neg, single.neg)
    assert obs.range() == lowbit.calibrate(x, method)


def test_kmeans_equals_single_process_for_any_sharding(client):
    rng = np.random.default_rng(2)
    w = (rng.standard_normal((12000, 4)) * np.array([1.0, 0.01, 100.0, 1e-6])).astype(np.float32)
    local = ld.kmeans(w, 16, iters=8, seed=5, client="local")
    for chunks in (1000, 3777):
        got = ld.kmeans(da.from_array(w, chunks=(chunks, 4)), 16, iters=8, seed=5)
        assert np.array_equal(got.centroids, local.centroids)
        assert np.array_equal(got.counts, local.counts)
        assert got.inertia == local.inertia and got.history == local.history
    init = local.centroids[::-1].copy()
    a = ld.kmeans(da.from_array(w, chunks=(2500, 4)), 16, init=init, iters=3)
    b = ld.kmeans(w, 16, init=init, iters=3, client="local")
    assert np.array_equal(a.centroids, b.centroids)
    assert local.inertia <= local.history[0]
    # close to lowbit.kmeans from the same start (not bit-identical: it accumulates in its own order)
    assert abs(local.inertia - ((w - local.centroids[local.assign(w)]) ** 2).astype(np.float64).sum()) \
        <= 1e-6 * local.inertia


def test_kmeans_empty_cluster_takes_farthest_point(client):
    w = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [50.0]], np.float32)
    init = np.array([[0.1], [10.0], [1000.0]], np.float32)  # centroid 2 gets no point
    a = ld.kmeans(da.from_array(w, chunks=(2, 1)), 3, init=init, iters=1)
    b = ld.kmeans(w, 3, init=init, iters=1, client="local")
    assert np.array_equal(a.centroids, b.centroids) and a.centroids[2, 0] == 50.0


def test_kmeans_bad_input(client):
    w = np.random.default_rng(0).standard_normal((100, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="k=200"):
        ld.kmeans(w, 200, client="local")
    with pytest.raises(ValueError, match="init"):
        ld.kmeans(w, 4, init=np.zeros((4, 3), np.float32), client="local")
    with pytest.raises(ValueError, match="init"):
        ld.kmeans(w, 4, init="kmeans++", client="local")
    with pytest.raises(TypeError, match="k"):
        ld.kmeans(w, 2.5, client="local")
    bad = w.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        ld.kmeans(da.from_array(bad, chunks=(50, 2)), 4)
    assert np.isinf(bad[3, 1])  # inputs never modified


def test_exact_sum_is_order_free():
    from lowbit.dask.kmeans import ExactSum

    rng = np.random.default_rng(3)
    v = rng.standard_normal(5000) * 10.0 ** rng.integers(-20, 20, 5000)
    keys = rng.integers(0, 3, 5000)
    whole = ExactSum.of(v, keys, 3).values()
    parts = [ExactSum.of(v[s:s + 700], keys[s:s + 700], 3) for s in range(0, 5000, 700)]
    acc = parts[-1]
    for p in parts[-2::-1]:
        acc = acc + p
    assert np.array_equal(acc.values(), whole)
    import math
    assert whole[0] == math.fsum(v[keys == 0])


def test_product_quantize_equals_single_process(client):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3000, 8)).astype(np.float32)
    got = ld.product_quantize(x, 4, bits=4, iters=6, seed=7)
    ref = lowbit.product_quantize(x, 4, bits=4, iters=6, seed=7)
    assert np.array_equal(got.centroids, ref.centroids) and np.array_equal(got.codes, ref.codes)
    assert list(got.inertia) == list(ref.inertia)


def test_compress_many_files_equal_single_process(client, data, tmp_path):
    x, _, teacher = data
    models = {"a": teacher, "b": lowbit.nn.MLP([16, 32, 10], seed=3)}
    lowbit.save(models["b"], tmp_path / "b_in.lowbit")
    got = ld.compress_many({"a": teacher, "b": str(tmp_path / "b_in.lowbit")}, tmp_path / "q", calibration=x[:500])
    ref = ld.compress_many(models, tmp_path / "q_local", calibration=x[:500], client="local")
    for name in models:
        with open(got[name], "rb") as f1, open(ref[name], "rb") as f2:
            assert f1.read() == f2.read()
    got = ld.compress_many(models, tmp_path / "cb", method="codebook", k=8)
    m = lowbit.load(got["a"])
    assert isinstance(m[0], lowbit.CodebookLinear)
    with pytest.raises(ValueError, match="calibration"):
        ld.compress_many(models, tmp_path / "q2")
    with pytest.raises(ValueError, match="name"):
        ld.compress_many({"../x": teacher}, tmp_path / "q2", calibration=x)
