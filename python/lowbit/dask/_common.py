"""What lowbit.dask's functions share: the client, the data's shards, running one task per shard
(with an object shipped once per worker), thread pinning on workers and atomic shard files."""
from __future__ import annotations

import os
import uuid

import numpy as np

LOCAL = "local"


class Runner:
    """Runs fn(shard, *args) over shards, on a Dask client or (``client="local"``) in this
    process, returning the results in shard order."""

    def __init__(self, client):
        if client is None:
            from distributed import default_client

            try:
                client = default_client()
            except ValueError:
                raise ValueError("client: there is no current Dask client; create one "
                                 "(distributed.Client(...)) or pass client=... (\"local\" runs in this "
                                 "process)") from None
        if isinstance(client, str):
            if client != LOCAL:
                raise ValueError(f"client must be a distributed.Client, None or \"local\", got {client!r}")
            self.client = None
        else:
            from distributed import Client

            if not isinstance(client, Client):
                raise TypeError(f"client must be a distributed.Client, None or \"local\", got "
                                f"{type(client).__name__}")
            self.client = client

    @property
    def local(self) -> bool:
        return self.client is None

    def broadcast(self, obj):
        """obj as one node of the task graph (a dask.delayed literal) that every task depends on:
        sent to a worker once and copied to each other worker once (it stays in a worker's
        memory while tasks need it), not once per task; if a worker dies, the scheduler can
        recompute it from the graph (scattered data would be lost with the worker). In this
        process: obj itself."""
        if self.local:
            return obj
        import dask

        return dask.delayed(obj, name=f"lowbit-shared-{uuid.uuid4().hex}", traverse=False)

    def map(self, fn, shards, *args, each=None):
        """[fn(data of shard i, *each[i], *args) for each shard], in shard order: tasks on the
        cluster (a shard's data is loaded or computed there), or calls in this process."""
        each = [()] * len(shards) if each is None else each
        if self.local:
            return [fn(s.load(), *e, *args) for s, e in zip(shards, each)]
        import dask

        tasks = [dask.delayed(fn, pure=False)(s.task_input(self.client), *e, *args)
                 for s, e in zip(shards, each)]
        return self.client.gather(self.client.compute(tasks))


class Shard:
    """One shard of the data: a dask block, a file or an array, with its index and global row
    offset (None when unknown before loading, for files)."""

    def __init__(self, index: int, kind: str, obj, offset=None, rows=None):
        self.index, self.kind, self.obj, self.offset, self.rows = index, kind, obj, offset, rows

    def load(self) -> np.ndarray:
        if self.kind == "block":
            return np.asarray(self.obj.compute(scheduler="sync"))
        if self.kind == "file":
            return load_file(self.obj)
        return self.obj

    def task_input(self, client):
        if self.kind == "block":
            return self.obj  # a dask.delayed block: computed on the cluster
        if self.kind == "file":
            return FileRef(self.obj)
        # An array from this process goes into the task itself (not scattered to one worker):
        # the scheduler keeps it until the task is done, so a task rerun after its worker died
        # still has its data.
        return self.obj


class FileRef:
    """A file to load on the worker (the workers need the path: a shared filesystem)."""

    def __init__(self, path: str):
        self.path = path


def resolve(x) -> np.ndarray:
    """A task's input as an array (loading a FileRef on the worker)."""
    if isinstance(x, FileRef):
        return load_file(x.path)
    return np.asarray(x)


def load_file(path: str) -> np.ndarray:
    """A .npy file, or the one array (or the array "x") of a .npz file; never unpickles."""
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if len(names) != 1 and "x" not in names:
                raise ValueError(f"data: {path} holds arrays {names}; a .npz shard must hold one array "
                                 "or an array named 'x'")
            return z["x"] if "x" in names else z[names[0]]
    return np.load(path, allow_pickle=False)


def shards_of(data, name: str = "data", *, ndim=(2,), chunk_rows: int = 65536):
    """(list of Shard or a lazy iterator of them, iterator?) for a dask array, a list of
    .npy/.npz paths, a numpy array (split into chunk_rows rows) or an iterator of arrays."""
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - lowbit.dask checks at import
        da = None
    if da is not None and isinstance(data, da.Array):
        if data.ndim not in ndim:
            raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, got shape {data.shape}")
        if data.dtype.kind != "f":
            raise TypeError(f"{name} must be a floating-point array, got dtype {data.dtype}")
        if any(len(c) != 1 for c in data.chunks[1:]):
            data = data.rechunk({a: -1 for a in range(1, data.ndim)})
        blocks = data.to_delayed().ravel()
        offsets = np.concatenate([[0], np.cumsum(data.chunks[0])]).astype(int)
        return [Shard(i, "block", b, int(offsets[i]), int(data.chunks[0][i])) for i, b in enumerate(blocks)], False
    if isinstance(data, np.ndarray):
        if data.ndim not in ndim:
            raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, got shape {data.shape}")
        if data.dtype.kind != "f":
            raise TypeError(f"{name} must be a floating-point array, got dtype {data.dtype}")
        n = data.shape[0]
        starts = list(range(0, n, chunk_rows)) or [0]
        return [Shard(i, "array", data[s:s + chunk_rows], s, min(chunk_rows, n - s))
                for i, s in enumerate(starts)], False
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError(f"{name} must not be an empty list")
        if all(isinstance(p, (str, os.PathLike)) for p in data):
            paths = [os.fspath(p) for p in data]
            for p in paths:
                if not p.endswith((".npy", ".npz")):
                    raise ValueError(f"{name}: shard files must be .npy or .npz, got {p!r}")
                if not os.path.exists(p):
                    raise ValueError(f"{name}: no such file {p!r}")
            return [Shard(i, "file", p) for i, p in enumerate(paths)], False
        return [Shard(i, "array", _check_array(a, f"{name}[{i}]", ndim)) for i, a in enumerate(data)], False
    if hasattr(data, "__iter__") or hasattr(data, "__next__"):
        def gen():
            for i, a in enumerate(data):
                yield Shard(i, "array", _check_array(a, f"{name} item {i}", ndim))
        return gen(), True
    raise TypeError(f"{name} must be a dask array, a list of .npy/.npz paths, a numpy array or an "
                    f"iterator of arrays, got {type(data).__name__}")


def _check_array(a, name, ndim) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {a.dtype}")
    if a.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, got shape {a.shape}")
    return a


class pinned_threads:
    """On a Dask worker: lowbit's kernels and numpy's BLAS limited to the worker's threads (so two
    one-thread workers on two cores do not oversubscribe them); elsewhere a no-op."""

    def __enter__(self):
        self._limits = None
        try:
            from distributed import get_worker

            w = get_worker()
        except (ImportError, ValueError):
            return self
        n = int(getattr(getattr(w, "state", None), "nthreads", None) or getattr(w, "nthreads", 1) or 1)
        from lowbit import _core

        if _core.num_threads() != n:
            _core.set_num_threads(n)
        try:
            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits(limits=n, user_api="blas")
        except ImportError:
            pass
        return self

    def __exit__(self, *exc):
        if self._limits is not None:
            self._limits.restore_original_limits()
        return False


def write_npy_atomic(path: str, a: np.ndarray) -> None:
    """Write a .npy file under a temporary name, then rename: a reader (or a retried task) never
    sees a partial shard, and writing the same shard twice leaves one file."""
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            np.save(f, a, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def as_out_dir(out, name: str = "out") -> str:
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"{name} must be a directory path (str or os.PathLike), got {type(out).__name__}")
    d = os.fspath(out)
    if os.path.exists(d) and not os.path.isdir(d):
        raise ValueError(f"{name}={d!r} exists and is not a directory")
    os.makedirs(d, exist_ok=True)
    return d
