"""k-means on a Dask cluster: Lloyd steps as map (per-shard counts and exact sums) and reduce, and
product quantization with the subspaces in parallel."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from lowbit._checks import as_float32, as_int, check_finite
from lowbit.codebook import ProductCodes
from lowbit.codebook import product_quantize as product_quantize_1

from ._common import Runner, Shard, pinned_threads, resolve, shards_of

_ROWS = 1 << 14  # rows per block of the distance computation (bounds its temporaries)
_LIMB = 26  # bits per limb of the exact sums


class ExactSum:
    """Exact sums of float64 values, one per key: every value is m * 2^(e - 53) with an integer
    m (|m| < 2^53) split into two 26/27-bit limbs, summed per (key, e) in int64. Adding two of
    them is exact and order-free, so any split of the data into shards, reduced in any order,
    gives the same sums; :meth:`values` rounds each once, correctly, to float64."""

    def __init__(self, nkeys: int, e0: int = 0, hi=None, lo=None):
        self.nkeys, self.e0 = nkeys, e0
        self.hi = np.zeros((nkeys, 0), np.int64) if hi is None else hi
        self.lo = np.zeros((nkeys, 0), np.int64) if lo is None else lo

    @classmethod
    def of(cls, values: np.ndarray, keys: np.ndarray, nkeys: int) -> "ExactSum":
        v = np.asarray(values, np.float64).reshape(-1)
        keys = np.asarray(keys, np.int64).reshape(-1)
        m, e = np.frexp(v)
        nz = m != 0
        if not nz.any():
            return cls(nkeys)
        m, e, keys = m[nz], e[nz], keys[nz]  # zeros add nothing
        e0, e1 = int(e.min()), int(e.max())
        ne = e1 - e0 + 1
        mi = (m * float(1 << 53)).astype(np.int64)
        hi, lo = mi >> _LIMB, mi & ((1 << _LIMB) - 1)
        slot = keys * ne + (e.astype(np.int64) - e0)
        out_hi = np.zeros(nkeys * ne, np.int64)
        out_lo = np.zeros(nkeys * ne, np.int64)
        step = 1 << 24  # float64 bincount sums of limbs < 2^27 stay exact (< 2^53)
        for s in range(0, m.size, step):
            sl = slice(s, s + step)
            out_hi += np.bincount(slot[sl], weights=hi[sl], minlength=nkeys * ne).astype(np.int64)
            out_lo += np.bincount(slot[sl], weights=lo[sl], minlength=nkeys * ne).astype(np.int64)
        return cls(nkeys, e0, out_hi.reshape(nkeys, ne), out_lo.reshape(nkeys, ne))

    def __add__(self, other: "ExactSum") -> "ExactSum":
        if self.hi.shape[1] == 0:
            return other
        if other.hi.shape[1] == 0:
            return self
        e0 = min(self.e0, other.e0)
        e1 = max(self.e0 + self.hi.shape[1], other.e0 + other.hi.shape[1])
        hi = np.zeros((self.nkeys, e1 - e0), np.int64)
        lo = np.zeros_like(hi)
        for t in (self, other):
            a = t.e0 - e0
            hi[:, a:a + t.hi.shape[1]] += t.hi
            lo[:, a:a + t.lo.shape[1]] += t.lo
        return ExactSum(self.nkeys, e0, hi, lo)

    def values(self) -> np.ndarray:
        """Each key's exact sum rounded to the nearest float64."""
        out = np.zeros(self.nkeys, np.float64)
        ne = self.hi.shape[1]
        if ne == 0:
            return out
        live = np.nonzero(np.any(self.hi != 0, axis=1) | np.any(self.lo != 0, axis=1))[0]
        for key in live:
            total = 0
            for j in range(ne - 1, -1, -1):
                total = (total << 1) + (int(self.hi[key, j]) << _LIMB) + int(self.lo[key, j])
            out[key] = float(Fraction(total) * Fraction(2) ** (self.e0 - 53))
        return out


def _assign(x: np.ndarray, c: np.ndarray):
    """(nearest centroid, squared distance) per row of x: distances in float64 summed over the
    coordinates in order (each row's result depends on that row only), the first on ties."""
    n, d = x.shape
    idx = np.empty(n, np.int64)
    dist = np.empty(n, np.float64)
    c64 = c.astype(np.float64)
    for s in range(0, n, _ROWS):
        xb = x[s:s + _ROWS].astype(np.float64)
        acc = np.zeros((xb.shape[0], c.shape[0]), np.float64)
        for t in range(d):
            diff = xb[:, t, None] - c64[None, :, t]
            acc += diff * diff
        j = np.argmin(acc, axis=1)
        idx[s:s + _ROWS] = j
        dist[s:s + _ROWS] = acc[np.arange(acc.shape[0]), j]
    return idx, dist


def _rows_of(x) -> np.ndarray:
    a = resolve(x)
    a = a.reshape(-1, 1) if a.ndim == 1 else a
    return np.ascontiguousarray(a, dtype=np.float32)


def _lloyd_map(x, c):
    """On a worker: one shard's (counts, exact sums per centroid and coordinate, exact error)."""
    with pinned_threads():
        a = _rows_of(x)
        idx, dist = _assign(a, c)
        k, d = c.shape
        counts = np.bincount(idx, minlength=k).astype(np.int64)
        keys = (idx[:, None] * d + np.arange(d)[None, :])
        return counts, ExactSum.of(a, keys, k * d), ExactSum.of(dist, np.zeros(dist.size, np.int64), 1)


def _farthest_map(x, offset, c, e):
    """On a worker: the shard's e rows farthest from their centroid: (-dist, global row, row)."""
    with pinned_threads():
        a = _rows_of(x)
        _, dist = _assign(a, c)
        order = np.lexsort((np.arange(a.shape[0]), -dist))[:e]
        return [(-float(dist[i]), offset + int(i), a[i].copy()) for i in order]


def _rows_map(x, offset, wanted):
    """On a worker: {global row: row} for the rows of `wanted` in this shard."""
    a = _rows_of(x)
    return {int(g): a[int(g) - offset].copy() for g in wanted if offset <= g < offset + a.shape[0]}


def _count_map(x):
    """On a worker: a shard's (rows, columns), checked finite."""
    a = _rows_of(x)
    if not np.all(np.isfinite(a)):
        raise ValueError("data holds NaN or Inf (a shard of shape "
                         f"{a.shape} has {int(np.size(a) - np.count_nonzero(np.isfinite(a)))} such values)")
    return a.shape


class KMeansResult:
    """What :func:`lowbit.dask.kmeans` returns.

    Parameters
    ----------
    centroids : numpy.ndarray
        float32 ``(k, d)``.
    counts : numpy.ndarray
        int64 ``(k,)``: the points nearest each centroid.
    inertia : float
        The sum of squared distances of the points to their nearest centroid.
    history : list of float
        The error of each Lloyd step's assignment (before its update).
    iterations : int
        The Lloyd updates made.

    Attributes
    ----------
    centroids, counts, inertia, history, iterations
        As given.
    """

    def __init__(self, centroids, counts, inertia, history, iterations):
        self.centroids, self.counts, self.inertia = centroids, counts, inertia
        self.history, self.iterations = list(history), iterations

    def assign(self, x) -> np.ndarray:
        """The nearest centroid of each row of ``x`` (the rule the Lloyd steps use).

        Parameters
        ----------
        x : array_like of float
            ``(n, d)``, or ``(n,)`` when ``d == 1``.

        Returns
        -------
        numpy.ndarray
            int64 ``(n,)``.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point array.
        ValueError
            If ``x`` does not have ``d`` columns or holds NaN/Inf.
        """
        a = as_float32(x, "x")
        a = a.reshape(-1, 1) if a.ndim == 1 else a
        if a.ndim != 2 or a.shape[1] != self.centroids.shape[1]:
            raise ValueError(f"x must have shape (n, {self.centroids.shape[1]}), got {np.shape(x)}")
        check_finite(a, "x")
        return _assign(a, self.centroids)[0]

    def __repr__(self) -> str:
        k, d = self.centroids.shape
        return f"KMeansResult(k={k}, d={d}, iterations={self.iterations}, inertia={self.inertia:.6g})"


def kmeans(data, k, *, init="random", iters=25, seed=0, client=None) -> KMeansResult:
    """k-means (Lloyd) over points too many for one worker, as map and reduce on a Dask cluster.

    Each Lloyd step maps the shards to their counts and their sums per centroid and
    coordinate, and reduces them. The sums are exact (each float split into integer limbs per
    binary exponent, added in int64; see Notes), so the result does not depend on how the
    points are split into shards, on the number of workers or on the order the partial sums
    arrive: the cluster gives the same centroids, bit for bit, as the same call with
    ``client="local"`` on the whole array in one process.

    Parameters
    ----------
    data : dask.array.Array, list of str or numpy.ndarray
        The points, ``(n, d)`` (or ``(n,)`` for scalar values), float, finite: a dask array
        (each row block a shard), ``.npy``/``.npz`` files (one shard each; the workers need the
        paths) or a numpy array (shards of 65536 rows).
    k : int
        Centroids, 1..65536.
    init : "random" or array_like, default "random"
        ``"random"``: k distinct rows chosen by ``seed`` (rows, not values: duplicate points
        may give equal centroids); or the starting centroids, ``(k, d)``.
    iters : int, default 25
        At most this many Lloyd updates; stops early when an update leaves the centroids
        unchanged.
    seed : int, default 0
        Seed of the random start, >= 0.
    client : distributed.Client, None or "local", default None
        The Dask client (None: the current one); ``"local"``: in this process.

    Returns
    -------
    KMeansResult
        The centroids, counts, inertia and history.

    Raises
    ------
    TypeError
        If ``data`` is of another kind or not floating-point, or a number has the wrong type.
    ValueError
        If ``data`` holds NaN/Inf or fewer than ``k`` points, ``init`` is unknown or not
        ``(k, d)``, a number is out of range, or there is no Dask client.

    Notes
    -----
    A Lloyd step: every point goes to its nearest centroid (squared distance in float64 summed
    over the coordinates in order; the first on ties), then each centroid becomes the mean of
    its points, ``float32(exact_sum / count)`` with the exact sum rounded once to float64.
    A centroid left without points takes the point farthest from its centroid (the largest
    distance first, then the lowest row), as :func:`lowbit.kmeans` does. This is not
    :func:`lowbit.kmeans`' accumulation (which sums in float64 in its own order), so the
    centroids are close to but not bit-identical with :func:`lowbit.kmeans` from the same
    start.
    """
    k = as_int(k, "k", 1, 65536)
    iters = as_int(iters, "iters", 0, 10**6)
    seed = as_int(seed, "seed", 0)
    shards, _ = shards_of(data, "data", ndim=(1, 2))
    runner = Runner(client)
    shapes = runner.map(_count_map, shards)
    cols = {c for _, c in shapes}
    if len(cols) != 1:
        raise ValueError(f"data: the shards have different numbers of columns {sorted(cols)}")
    d = cols.pop()
    rows = [r for r, _ in shapes]
    offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    n = int(offsets[-1])
    if n < k:
        raise ValueError(f"data has {n} points, fewer than k={k}")
    each_off = [(int(offsets[i]),) for i in range(len(shards))]
    if isinstance(init, str):
        if init != "random":
            raise ValueError(f"init must be \"random\" or the starting centroids (k, d), got {init!r}")
        pick = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
        found = {}
        for part in runner.map(_rows_map, shards, pick, each=each_off):
            found.update(part)
        c = np.stack([found[int(g)] for g in pick]).astype(np.float32)
    else:
        c = as_float32(init, "init")
        c = c.reshape(-1, 1) if c.ndim == 1 else c
        check_finite(c, "init")
        if c.ndim != 2 or c.shape != (k, d):
            raise ValueError(f"init must have shape (k, d) = ({k}, {d}), got {c.shape}")
        c = c.copy()
    history = []
    it = 0
    while True:
        parts = runner.map(_lloyd_map, shards, c)
        counts = sum(p[0] for p in parts)
        sums = parts[0][1]
        sse = parts[0][2]
        for p in parts[1:]:
            sums, sse = sums + p[1], sse + p[2]
        err = float(sse.values()[0])
        if it == iters:
            break
        history.append(err)
        new = c.copy()
        s = sums.values().reshape(k, d)
        live = counts > 0
        new[live] = (s[live] / counts[live, None].astype(np.float64)).astype(np.float32)
        empty = np.nonzero(~live)[0]
        if empty.size:
            cands = []
            for part in runner.map(_farthest_map, shards, c, int(empty.size), each=each_off):
                cands.extend(part)
            cands.sort(key=lambda t: (t[0], t[1]))
            for j, (_, _, row) in zip(empty, cands):
                new[j] = row
        it += 1
        if np.array_equal(new.view(np.uint32), c.view(np.uint32)):
            c = new
            break
        c = new
    return KMeansResult(c, counts, err, history, it)


_FNV = 0x100000001B3
_FNV_INV = pow(_FNV, -1, 1 << 64)


def product_quantize(x, m, *, bits=8, iters=25, seed=0, max_points_per_centroid=256, client=None):
    """:func:`lowbit.product_quantize` with the subspaces' k-means run in parallel on the workers.

    Subspace ``s`` is quantized on a worker by :func:`lowbit.product_quantize` of its columns
    with the seed the single-process run gives subspace ``s``, so the result is the same bit
    for bit.

    Parameters
    ----------
    x : array_like of float
        The vectors on the last axis (as :func:`lowbit.product_quantize`); it fits in this
        process (each worker gets one subspace's columns).
    m : int
        Subspaces; must divide the vector length.
    bits : int, default 8
        Bits per code, 1..16.
    iters : int, default 25
        At most this many Lloyd steps per subspace.
    seed : int, default 0
        In 0..2**64-1.
    max_points_per_centroid : int, "auto" or None, default 256
        As in :func:`lowbit.product_quantize`.
    client : distributed.Client, None or "local", default None
        The Dask client (None: the current one); ``"local"``: in this process.

    Returns
    -------
    lowbit.ProductCodes
        The codes and codebooks.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point array or an integer argument is not an integer.
    ValueError
        As :func:`lowbit.product_quantize`, or if there is no Dask client.
    """
    a = as_float32(x, "x")
    if a.ndim == 0:
        raise ValueError("x must have at least one dimension (vectors on the last axis), got a 0-d array")
    m = as_int(m, "m", 1, 2**31)
    if a.shape[-1] % m:
        raise ValueError(f"m={m} must divide the vector length (the last axis of x, {a.shape[-1]})")
    seed = as_int(seed, "seed", 0, 2**64 - 1)
    runner = Runner(client)
    flat = a.reshape(-1, a.shape[-1])
    ds = a.shape[-1] // m
    subs = [Shard(s, "array", np.ascontiguousarray(flat[:, s * ds:(s + 1) * ds])) for s in range(m)]
    seeds = [(((seed * _FNV + s) * _FNV_INV) % (1 << 64),) for s in range(m)]
    parts = runner.map(_pq_map, subs, bits, iters, max_points_per_centroid, each=seeds)
    cents = np.concatenate([p.centroids for p in parts], axis=0)
    codes = np.concatenate([p.codes.reshape(-1, 1) for p in parts], axis=1)
    inertia = [float(p.inertia[0]) for p in parts]
    return ProductCodes(cents, codes.reshape(a.shape[:-1] + (m,)), a.shape, bits, inertia=inertia)


def _pq_map(sub, seed, bits, iters, mppc):
    """On a worker: subspace's product quantization with m = 1 and the seed that gives the
    single-process run's generator for this subspace (the C++ seeds subspace s with
    seed * FNV + s; FNV is odd, hence invertible mod 2^64)."""
    with pinned_threads():
        return product_quantize_1(resolve(sub), 1, bits=bits, iters=iters, seed=seed,
                                       max_points_per_centroid=mppc)
