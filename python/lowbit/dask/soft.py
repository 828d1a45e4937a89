"""Soft targets on a Dask cluster: the teachers' softened outputs computed shard by shard on the
workers (the teachers shipped once per worker), written as .npy shards, streamed back into
Distiller.fit_stream."""
from __future__ import annotations

import os
import re

import numpy as np

from lowbit._checks import as_int
from lowbit.distill.distiller import _normalize_teachers, teacher_probs_batch
from lowbit.nn._util import as_number
from lowbit.nn.training import _check_finite

from ._common import Runner, as_out_dir, pinned_threads, resolve, shards_of, write_npy_atomic

SHARD_NAME = "soft-{:06d}.npy"
_SHARD_RE = re.compile(r"^soft-(\d{6})\.npy$")


class SoftTargetShards:
    """Soft targets stored as numbered .npy shards (``soft-000000.npy``, ...) in a directory.

    What :func:`soft_targets` returns with ``out=``; shard ``i`` holds the soft targets of the
    data's shard ``i``. Read one shard at a time with :meth:`load` or iterate; pass to
    :func:`stream` to train with :meth:`lowbit.distill.Distiller.fit_stream`.

    Parameters
    ----------
    directory : str or os.PathLike
        The directory holding the shards.

    Attributes
    ----------
    directory : str
        The directory.
    paths : list of str
        The shard files, in order.
    rows : list of int
        Rows per shard.

    Raises
    ------
    TypeError
        If ``directory`` is not a str or os.PathLike.
    ValueError
        If the directory holds no shards, or their numbers are not 0, 1, ..., n - 1.
    """

    def __init__(self, directory):
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"directory must be a str or os.PathLike, got {type(directory).__name__}")
        self.directory = os.fspath(directory)
        found = sorted(int(m.group(1)) for f in os.listdir(self.directory) if (m := _SHARD_RE.match(f)))
        if not found:
            raise ValueError(f"directory {self.directory!r} holds no soft-target shards (soft-NNNNNN.npy)")
        if found != list(range(len(found))):
            raise ValueError(f"directory {self.directory!r}: the shards are not numbered 0..{len(found) - 1}")
        self.paths = [os.path.join(self.directory, SHARD_NAME.format(i)) for i in found]
        self.rows = [int(np.load(p, mmap_mode="r", allow_pickle=False).shape[0]) for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> np.ndarray:
        """Shard ``i``.

        Parameters
        ----------
        i : int
            The shard's index, 0..len - 1.

        Returns
        -------
        numpy.ndarray
            float32 ``(rows, classes)``.

        Raises
        ------
        TypeError
            If ``i`` is not an integer.
        ValueError
            If ``i`` is out of range.
        """
        i = as_int(i, "i", 0, len(self.paths) - 1)
        return np.load(self.paths[i], allow_pickle=False)

    def __iter__(self):
        for i in range(len(self.paths)):
            yield self.load(i)

    def to_numpy(self) -> np.ndarray:
        """All shards concatenated (in memory: for data that fits).

        Returns
        -------
        numpy.ndarray
            float32 ``(n, classes)``.
        """
        return np.concatenate(list(self), axis=0)

    def __repr__(self) -> str:
        return f"SoftTargetShards({self.directory!r}, shards={len(self)}, rows={sum(self.rows)})"


def _soft_shard(x, index, teachers, temperature, batch_size, out):
    """On a worker: the soft targets of one shard, returned, or written as shard `index` of `out`
    (returning (index, rows))."""
    teachers_, weights = teachers
    with pinned_threads():
        xa = resolve(x)
        if xa.ndim != 2:
            raise ValueError(f"data shard {index} must be 2-D (rows, features), got shape {xa.shape}")
        n = xa.shape[0]
        parts = []
        for s in range(0, n, batch_size):
            xb = np.asarray(xa[s:s + batch_size], dtype=np.float32)
            _check_finite(xb, f"data shard {index}")
            p, _ = teacher_probs_batch(teachers_, weights, temperature, xb)
            parts.append(p.astype(np.float32))
        if not parts:
            raise ValueError(f"data shard {index} is empty")
        probs = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    if out is None:
        return probs
    write_npy_atomic(os.path.join(out, SHARD_NAME.format(index)), probs)
    return index, n


def soft_targets(teacher, data, *, temperature, out=None, teacher_weights=None, batch_size=4096,
                 client=None, window=8):
    """The teachers' softened outputs over data too large for one machine, on a Dask cluster.

    Each shard of ``data`` is a task on a worker: the teachers (shipped once per worker, not
    per shard) run on it in batches of ``batch_size`` rows and the weighted average of their
    softmax at ``temperature`` is computed exactly as :meth:`lowbit.distill.Distiller.soft_targets`
    computes it, so the result equals the single-process one bit for bit. On each worker
    lowbit's kernels and numpy's BLAS use the worker's threads.

    With ``out``, shard ``i`` is written to ``out/soft-{i:06d}.npy`` under a temporary name and
    then renamed: a task retried after a worker died rewrites its own shard, so a killed
    worker neither loses nor duplicates shards (leftover temporary files and stale shards with
    numbers beyond the data's are removed at the end).

    Parameters
    ----------
    teacher : callable or list
        What :class:`lowbit.distill.Distiller` takes: a lowbit model (float, int8 or codebook
        layers), a picklable callable ``x -> logits``, or a list of them, optionally as
        ``(teacher, weight)`` pairs (distributions averaged with the weights).
    data : dask.array.Array, list of str, numpy.ndarray or iterator of numpy.ndarray
        The inputs, 2-D ``(rows, features)`` float, finite: a dask array (each row chunk is a
        shard, computed on the cluster), a list of ``.npy``/``.npz`` files (one shard each; the
        workers must see the paths, e.g. a shared filesystem; ``.npz``: one array or one named
        ``x``), a numpy array (shards of 65536 rows) or an iterator of arrays (each a shard,
        sent from this process, at most ``window`` in flight).
    temperature : float
        T > 0.
    out : str or os.PathLike, optional
        A directory (created if missing) for the shards; None returns the soft targets in
        memory.
    teacher_weights : sequence of float, optional
        One weight per teacher, as in :class:`lowbit.distill.Distiller`.
    batch_size : int, default 4096
        Rows per teacher call, >= 1.
    client : distributed.Client, None or "local", default None
        The Dask client (None: the current one); ``"local"`` runs the same tasks in this
        process without Dask.
    window : int, default 8
        For an iterator ``data``: shards in flight at once, >= 1.

    Returns
    -------
    numpy.ndarray or SoftTargetShards
        float32 ``(n, classes)`` in the data's row order (``out=None``), else the shards.

    Raises
    ------
    TypeError
        If ``data`` is of another kind or not floating-point, a teacher is not callable, or a
        number has the wrong type.
    ValueError
        If ``data`` is not 2-D, is empty or holds NaN/Inf, a file is missing or not
        .npy/.npz, ``temperature`` is not > 0, ``out`` is not a directory, there is no Dask
        client, or a teacher returns something other than finite logits.
    """
    teachers = _normalize_teachers(teacher, teacher_weights)
    T = as_number(temperature, "temperature", 0.0, lo_open=True)
    batch_size = as_int(batch_size, "batch_size", 1)
    window = as_int(window, "window", 1)
    out_dir = None if out is None else as_out_dir(out)
    shards, is_iter = shards_of(data, "data")
    runner = Runner(client)
    payload = runner.broadcast(teachers)
    results = _map_indexed(runner, _soft_shard, shards, (payload, T, batch_size, out_dir),
                           window if is_iter else None)
    if out_dir is None:
        return np.concatenate(results, axis=0)
    _clean(out_dir, len(results))
    return SoftTargetShards(out_dir)


def _map_indexed(runner, fn, shards, args, window):
    """runner.map with each shard's index passed after its data."""
    if runner.local or window is None:
        shards = list(shards)
        if not shards:
            raise ValueError("data: the iterator yielded no arrays")
        return runner.map(fn, shards, *args, each=[(s.index,) for s in shards])
    from dask.delayed import Delayed
    from distributed import as_completed

    client = runner.client
    # the shared teacher node as one future (submit resolves futures, not delayed objects)
    args = tuple(client.compute(a) if isinstance(a, Delayed) else a for a in args)
    it = iter(shards)
    pending = as_completed()
    out, index_of = {}, {}
    n_in = 0

    def submit_next():
        nonlocal n_in
        s = next(it, None)
        if s is None:
            return False
        # the array travels in the task (not scattered): a rerun after a killed worker has it
        f = client.submit(fn, s.load(), s.index, *args, pure=False)
        index_of[f.key] = s.index
        pending.add(f)
        n_in += 1
        return True

    while n_in < window and submit_next():
        pass
    for f in pending:
        out[index_of.pop(f.key)] = f.result()
        f.release()
        submit_next()
    if not out:
        raise ValueError("data: the iterator yielded no arrays")
    return [out[i] for i in sorted(out)]


def _clean(out_dir: str, n: int) -> None:
    """Remove temporary files left by killed tasks, and shards numbered n or more (a previous
    run over more shards)."""
    for f in os.listdir(out_dir):
        m = _SHARD_RE.match(f)
        if (m and int(m.group(1)) >= n) or (f.startswith("soft-") and ".npy.tmp-" in f):
            try:
                os.unlink(os.path.join(out_dir, f))
            except FileNotFoundError:
                pass


def stream(data, soft, y=None):
    """A ``chunks`` callable for :meth:`lowbit.distill.Distiller.fit_stream`: data shard by shard
    with its soft targets.

    Yields ``(x_shard, y_shard, soft_shard)`` in shard order, one shard in memory at a time
    (a dask array's blocks are computed one at a time, files are read when reached).

    Parameters
    ----------
    data : dask.array.Array, list of str or numpy.ndarray
        The inputs, sharded as they were for :func:`soft_targets` (an iterator cannot be
        replayed: pass the same data as a list).
    soft : SoftTargetShards, str or numpy.ndarray
        The soft targets: shards (or their directory), or an array ``(n, classes)``.
    y : array_like of int, optional
        Labels ``(n,)`` (None when ``alpha == 1``).

    Returns
    -------
    callable
        A function returning a generator of ``(x, y or None, soft)`` tuples.

    Raises
    ------
    TypeError
        If ``data`` or ``soft`` is of another kind.
    ValueError
        If the shards' row counts do not match.
    """
    shards, is_iter = shards_of(data, "data")
    if is_iter:
        raise TypeError("data must be a dask array, a list of files or a numpy array (an iterator "
                        "cannot be replayed once per epoch)")
    if isinstance(soft, (str, os.PathLike)):
        soft = SoftTargetShards(soft)
    if isinstance(soft, SoftTargetShards):
        if len(soft) != len(shards):
            raise ValueError(f"soft has {len(soft)} shards but data {len(shards)}")
        get_soft = soft.load
    elif isinstance(soft, np.ndarray):
        get_soft = None
    else:
        raise TypeError(f"soft must be SoftTargetShards, a directory or a numpy array, got {type(soft).__name__}")
    y_all = None if y is None else np.asarray(y)

    def gen():
        start = 0
        for s in shards:
            # a dask block through the current scheduler (the cluster, for persisted arrays)
            x = np.asarray(s.obj.compute()) if s.kind == "block" else s.load()
            n = x.shape[0]
            p = get_soft(s.index) if get_soft is not None else soft[start:start + n]
            if p.shape[0] != n:
                raise ValueError(f"shard {s.index}: data has {n} rows, soft targets {p.shape[0]}")
            yc = None if y_all is None else y_all[start:start + n]
            start += n
            yield x, yc, p

    return gen


__all__ = ["soft_targets", "stream", "SoftTargetShards"]
