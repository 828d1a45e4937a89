"""k-means codebooks: scalar weight sharing (Deep Compression), vector quantization, product
quantization, and a linear layer whose weight is a codebook.

* :func:`kmeans` clusters the values (``dim=1``) or the groups of ``dim`` consecutive values of
  the last axis (``dim > 1``) of an array into ``k`` centroids and returns a :class:`Codebook`.
* :func:`product_quantize` splits vectors into ``m`` subspaces, each with its own codebook
  (as faiss' ProductQuantizer), and returns a :class:`ProductCodes`.
* :class:`CodebookLinear` is a drop-in layer like :class:`lowbit.QuantizedLinear` whose weight is
  a codebook and whose forward never builds the float weight.

The clustering, the assignment, the decode and the codebook GEMM run in lowbit's C++ kernels
(``lowbit._core``); results are deterministic for a seed and the same for any thread count.
"""
from __future__ import annotations

import math

import numpy as np

from . import _core
from ._checks import (as_bias, as_bool, as_float32, as_int, as_number, as_shape, as_weight,
                      check_finite)

__all__ = ["Codebook", "kmeans", "ProductCodes", "product_quantize", "CodebookLinear",
           "compression_ratio"]

_INITS = {"auto": 3, "kmeans++": 0, "linear": 1, "random": 2}
_MAX_K = 65536


def _index_bits(k: int) -> int:
    """Stored bits per code: 4 (two codes a byte) for k <= 16, 8 for k <= 256, 16 above."""
    return 4 if k <= 16 else 8 if k <= 256 else 16


def compression_ratio(n: int, k: int, dim: int = 1, b: int = 32) -> float:
    """Deep Compression's ratio r = n*b / (n*log2(k) + k*b) for n weights of b bits shared
    through k centroids; with groups of ``dim`` weights, (n/dim) codes of log2(k) bits and k
    centroids of dim*b bits: r = n*b / ((n/dim)*log2(k) + k*dim*b)."""
    return float(n * b) / ((n / dim) * math.log2(k) + k * dim * b)


def _as_seed(seed) -> int:
    return as_int(seed, "seed", 0, 2**64 - 1)


def _max_points(mppc, k: int, dim: int) -> int:
    """Training-sample size for d > 1 (0: every point); "auto": 512 points per centroid for
    dim <= 4, where the neighbour-list searches make Lloyd steps cheap, else 256."""
    if mppc is None:
        return 0
    if isinstance(mppc, str) and mppc == "auto":
        return (512 if dim <= 4 else 256) * k
    return as_int(mppc, "max_points_per_centroid", 1, 2**40) * k


class Codebook:
    """Values (or groups of ``dim`` values) replaced by the nearest of ``k`` centroids.

    ``Codebook(centroids, indices, shape)`` wraps existing arrays (checked, then copied and
    made read-only); :func:`kmeans` makes one.

    Parameters
    ----------
    centroids : array_like of float, shape (k, dim) or (k,)
        The centroids (converted to float32; a 1-D array is ``dim=1``). ``k`` must be
        2..65536, and every value finite.
    indices : numpy.ndarray of uint8 or uint16
        The codes, each smaller than ``k``, in the stored layout: for ``k <= 16`` uint8
        packed two per byte (element ``2i`` in the low nibble of byte ``i``), flat,
        ``ceil(N / 2)`` bytes for ``N`` codes; for ``k <= 256`` uint8, and uint16 above, of
        shape ``shape[:-1] + (shape[-1] // dim,)``.
    shape : tuple of int
        The logical shape (that of the clustered array); ``dim`` must divide its last axis.
    history : sequence of float, optional
        The k-means objective after each Lloyd step (default: empty).
    inertia : float or None, optional
        The sum of squared errors of this codebook on the clustered array (default: unknown).

    Attributes
    ----------
    centroids : numpy.ndarray
        float32 ``(k, dim)``, read-only.
    indices : numpy.ndarray
        The codes as stored (see the parameter ``indices``), read-only.
    shape : tuple of int
        The logical shape (that of the clustered array).
    k : int
        Number of centroids.
    dim : int
        Values per centroid (1: scalar weight sharing).
    bits : int
        Index bits as stored: 4, 8 or 16.
    history : tuple of float
        The k-means objective (sum of squared errors) after each Lloyd step, never
        increasing (dim > 1: on the training sample).
    inertia : float or None
        The sum of squared errors of this codebook on the clustered array.

    Raises
    ------
    TypeError
        If ``centroids`` is not a floating-point array, ``shape`` is not a tuple of ints, or
        ``indices`` does not have the dtype ``k`` asks for (uint8 for ``k <= 256``, else uint16).
    ValueError
        If ``centroids`` is not ``(k, dim)`` with ``k`` in 2..65536 or holds NaN/Inf, ``dim``
        does not divide the last axis of ``shape``, ``indices`` has the wrong shape, or a code
        is not smaller than ``k``.
    """

    __slots__ = ("centroids", "indices", "shape", "dim", "k", "bits", "history", "inertia")

    def __init__(self, centroids, indices, shape, *, history=(), inertia=None):
        c = as_float32(centroids, "centroids")
        if c.ndim == 1:
            c = c.reshape(-1, 1)
        if c.ndim != 2 or c.shape[1] < 1:
            raise ValueError(f"centroids must be 2-D (k, dim), got shape {c.shape}")
        k, dim = (int(s) for s in c.shape)
        if not 2 <= k <= _MAX_K:
            raise ValueError(f"centroids must hold 2..{_MAX_K} rows (k), got {k}")
        check_finite(c, "centroids")
        shape = as_shape(shape)
        if shape[-1] % dim:
            raise ValueError(f"dim={dim} (the centroids' length) must divide the last axis of "
                             f"shape {shape}")
        n = math.prod(shape) // dim
        bits = _index_bits(k)
        idx = np.asarray(indices)
        want = np.uint16 if bits == 16 else np.uint8
        if idx.dtype != want:
            raise TypeError(f"indices must be {np.dtype(want).name} for k={k}, got dtype {idx.dtype}")
        if bits == 4:
            if idx.ndim != 1 or idx.size != (n + 1) // 2:
                raise ValueError(f"indices must be {(n + 1) // 2} bytes (k <= 16: two codes a byte, "
                                 f"flat), got shape {idx.shape}")
            codes = _unpack_nibbles(idx, n)
        else:
            code_shape = shape[:-1] + (shape[-1] // dim,)
            if idx.shape != code_shape:
                raise ValueError(f"indices must have shape {code_shape}, got {idx.shape}")
            codes = idx
        if codes.size and int(codes.max()) >= k:
            raise ValueError(f"indices must be smaller than k={k}, got {int(codes.max())}")
        self._set(np.array(c, np.float32), np.array(idx, order="C"), shape, history, inertia)

    def _set(self, centroids, indices, shape, history, inertia) -> None:
        self.centroids, self.indices = centroids, indices  # private copies, made read-only
        self.centroids.setflags(write=False)
        self.indices.setflags(write=False)
        self.k, self.dim = (int(s) for s in centroids.shape)
        self.shape, self.bits = tuple(shape), _index_bits(self.k)
        self.history = tuple(float(h) for h in history)
        self.inertia = None if inertia is None else float(inertia)

    @classmethod
    def _wrap(cls, centroids, indices, shape, history, inertia) -> "Codebook":
        """A Codebook around fresh arrays from lowbit._core (already checked there)."""
        cb = cls.__new__(cls)
        cb._set(centroids, indices, shape, history, inertia)
        return cb

    @property
    def size(self) -> int:
        """Number of values (weights) represented."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes stored: indices + centroids."""
        return int(self.indices.nbytes + self.centroids.nbytes)

    @property
    def compression_ratio(self) -> float:
        """Deep Compression's ratio against float32 weights (see :func:`compression_ratio`)."""
        return compression_ratio(self.size, self.k, self.dim) if self.size else 1.0

    def codes(self) -> np.ndarray:
        """The codes, unpacked.

        Returns
        -------
        numpy.ndarray
            A new uint8 (``k <= 256``) or uint16 array of shape
            ``shape[:-1] + (shape[-1] // dim,)``.
        """
        code_shape = self.shape[:-1] + (self.shape[-1] // self.dim,)
        if self.bits == 4:
            return _unpack_nibbles(self.indices, math.prod(code_shape)).reshape(code_shape)
        return self.indices.copy()

    def decode(self, out=None) -> np.ndarray:
        """The decoded values: ``centroids[indices]``, by lowbit's lookup kernels.

        Parameters
        ----------
        out : numpy.ndarray, optional
            A writeable float32 C-contiguous array of ``shape`` to write into (saves the
            allocation when decoding repeatedly).

        Returns
        -------
        numpy.ndarray
            float32 array of ``shape`` (``out`` when given).

        Raises
        ------
        TypeError
            If ``out`` is not a float32 numpy array.
        ValueError
            If ``out`` is not a writeable C-contiguous array of ``shape``.
        """
        n = self.size // self.dim
        if out is None:
            out = np.empty(self.shape, np.float32)
        else:
            if not isinstance(out, np.ndarray) or out.dtype != np.float32:
                raise TypeError(f"out must be a float32 numpy array, got "
                                f"{type(out).__name__ if not isinstance(out, np.ndarray) else out.dtype}")
            if out.shape != self.shape or not out.flags.c_contiguous or not out.flags.writeable:
                raise ValueError(f"out must be a writeable C-contiguous array of shape {self.shape}, "
                                 f"got shape {out.shape}")
        if n:
            _core.codebook_decode(self.indices.reshape(-1), self.bits, n, self.centroids,
                                  out.reshape(-1))
        return out

    def __repr__(self) -> str:
        return (f"Codebook(shape={self.shape}, k={self.k}, dim={self.dim}, index_bits={self.bits}, "
                f"nbytes={self.nbytes}, compression_ratio={self.compression_ratio:.2f})")


def _pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """Codes < 16, two a byte (element 2i in the low nibble of byte i; an odd count leaves the
    last high nibble 0): the inverse of _unpack_nibbles."""
    c = codes.reshape(-1)
    if c.size % 2:
        c = np.append(c, np.uint8(0))
    return (c[0::2] | (c[1::2] << 4)).astype(np.uint8)


def _unpack_nibbles(packed: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(packed.size * 2, np.uint8)
    out[0::2] = packed & 0x0F
    out[1::2] = packed >> 4
    return out[:n]


def _check_init(init) -> int:
    if not isinstance(init, str):
        raise TypeError(f"init must be one of {', '.join(map(repr, _INITS))}, got {type(init).__name__}")
    if init not in _INITS:
        raise ValueError(f"init must be one of {', '.join(map(repr, _INITS))}, got {init!r}")
    return _INITS[init]


def kmeans(x, k, *, dim=1, iters=25, init="auto", seed=0, max_points_per_centroid="auto") -> Codebook:
    """k-means codebook of ``x``.

    Every value (``dim=1``, scalar weight sharing as in Deep Compression) or every group of
    ``dim`` consecutive values of the last axis (vector quantization) is replaced by the
    nearest of ``k`` centroids.

    Parameters
    ----------
    x : array_like of float
        float16/32/64 array (computed in float32) with at least one dimension, at least ``k``
        distinct values (``dim=1``) or points (``dim > 1``), no NaN/Inf.
    k : int
        Number of centroids, 2..65536.
    dim : int, default 1
        Values per group; must divide the last axis.
    iters : int, default 25
        At most this many Lloyd steps (each run stops early at a fixed point).
    init : {"auto", "kmeans++", "linear", "random"}, default "auto"
        ``"auto"``: at ``dim=1`` the better of two starts (see Notes); at ``dim > 1``
        k-means++. ``"kmeans++"``: D^2 sampling. ``"linear"``: evenly over [min, max], Deep
        Compression's choice. ``"random"``: k distinct random points. An explicit start is
        honoured at every ``dim``: Lloyd runs from it alone, so that e.g. Deep Compression's
        linear initialization is reproduced (it may end in a worse local optimum than
        ``"auto"``).
    seed : int, default 0
        In 0..2**64-1. The result is a deterministic function of (x, k, dim, iters, init,
        seed) -- also across thread counts and kernel sets.
    max_points_per_centroid : int, "auto" or None, default "auto"
        ``dim > 1`` only: Lloyd runs on a random sample of ``k * max_points_per_centroid``
        points when there are more (None: all); finally every point is assigned and the
        centroids set to the means of their points. ``"auto"``: 512 for ``dim <= 4``, twice
        faiss' sample -- there each Lloyd step searches mostly a centroid's 32 nearest
        centroids (exactly: the triangle inequality says when that suffices), so the larger
        sample costs about what faiss' training does and gains about 0.03 dB at k = 256 -- and
        256 (faiss' choice) for larger ``dim``, where the lists rarely suffice.

    Returns
    -------
    Codebook
        The centroids, the codes of ``x`` and the objective's history.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point array, an integer argument is not an integer, or
        ``init`` is not a string.
    ValueError
        If ``x`` is 0-d, empty, holds NaN/Inf or has fewer than ``k`` distinct values
        (points), ``dim`` does not divide its last axis, ``init`` is unknown, or a number is
        out of its range.

    Notes
    -----
    ``dim=1`` has its own algorithm: the values are sorted once, so a Lloyd step costs
    O(k log n) through exact prefix sums instead of O(n k); with ``init="auto"`` Lloyd from
    k-means++ and Lloyd from the optimal partition of a summary of the sorted values (an exact
    dynamic program over up to max(1024, 8k) groups of values; for large k the asymptotically
    optimal companding start) both run, and the codebook with the lower error is kept.
    """
    a = as_float32(x, "x")
    if a.ndim == 0:
        raise ValueError("x must have at least one dimension, got a 0-d array")
    if a.size == 0:
        raise ValueError(f"x must not be empty, got shape {a.shape}")
    k = as_int(k, "k", 2, _MAX_K)
    dim = as_int(dim, "dim", 1, 2**31)
    if a.shape[-1] % dim:
        raise ValueError(f"dim={dim} must divide the last axis of x (length {a.shape[-1]})")
    iters = as_int(iters, "iters", 1, 10**6)
    init_code = _check_init(init)
    seed = _as_seed(seed)
    max_points = _max_points(max_points_per_centroid, k, dim)
    r = _core.kmeans(a.reshape(-1), dim, k, iters, init_code, seed, max_points)
    if r is None:
        check_finite(a, "x")
        raise ValueError("x holds NaN or Inf")  # not reached: check_finite raises
    codes = r["codes"]
    if r["bits"] != 4:
        codes = codes.reshape(a.shape[:-1] + (a.shape[-1] // dim,))
    return Codebook._wrap(r["centroids"], codes, a.shape, r["history"], r["inertia"])


class ProductCodes:
    """Product quantization of vectors.

    The last axis (length D) is split into ``m`` subspaces of ``D // m`` values, each with its
    own codebook of ``2**bits`` centroids. :func:`product_quantize` makes one;
    ``ProductCodes(centroids, codes, shape, bits)`` wraps existing arrays (checked, then copied
    and made read-only). :meth:`decode` rebuilds the vectors.

    Parameters
    ----------
    centroids : array_like of float, shape (m, 2**bits, D // m)
        Each subspace's centroids (converted to float32), finite.
    codes : numpy.ndarray of uint8 or uint16, shape ``shape[:-1] + (m,)``
        Each vector's code in each subspace: uint8 for ``bits <= 8``, else uint16; each
        smaller than ``2**bits``.
    shape : tuple of int
        The logical shape of the vectors; it must end with ``D = m * (D // m)``.
    bits : int
        Bits per code, 1..16 (``2**bits`` centroids per subspace).
    inertia : sequence of float, optional
        Sum of squared errors per subspace (default: empty).

    Attributes
    ----------
    centroids : numpy.ndarray
        float32 ``(m, 2**bits, D // m)``, read-only.
    codes : numpy.ndarray
        uint8 (bits <= 8) or uint16 of shape ``shape[:-1] + (m,)``, read-only.
    shape : tuple of int
        The logical shape of the vectors.
    m : int
        Number of subspaces.
    bits : int
        Bits per code.
    inertia : tuple of float
        Sum of squared errors per subspace.

    Raises
    ------
    TypeError
        If ``bits`` is not an integer, ``centroids`` is not a floating-point array, or
        ``codes`` does not have the dtype ``bits`` asks for.
    ValueError
        If ``bits`` is not in 1..16, ``centroids``, ``shape`` or ``codes`` have inconsistent
        shapes, ``centroids`` holds NaN/Inf, or a code is not smaller than ``2**bits``.
    """

    __slots__ = ("centroids", "codes", "shape", "m", "bits", "inertia")

    def __init__(self, centroids, codes, shape, bits, *, inertia=()):
        bits = as_int(bits, "bits", 1, 16)
        c = as_float32(centroids, "centroids")
        if c.ndim != 3 or c.shape[0] < 1 or c.shape[1] != 2**bits or c.shape[2] < 1:
            raise ValueError(f"centroids must have shape (m, 2**bits={2**bits}, dsub), got {c.shape}")
        check_finite(c, "centroids")
        shape = as_shape(shape)
        m, k, dsub = (int(v) for v in c.shape)
        if shape[-1] != m * dsub:
            raise ValueError(f"shape must end with m * dsub = {m * dsub}, got {shape}")
        q = np.asarray(codes)
        want = np.uint8 if bits <= 8 else np.uint16
        if q.dtype != want:
            raise TypeError(f"codes must be {np.dtype(want).name} for bits={bits}, got dtype {q.dtype}")
        if q.shape != shape[:-1] + (m,):
            raise ValueError(f"codes must have shape {shape[:-1] + (m,)}, got {q.shape}")
        if q.size and int(q.max()) >= k:
            raise ValueError(f"codes must be smaller than 2**bits={k}, got {int(q.max())}")
        self.centroids = np.array(c, np.float32)
        self.codes = np.array(q, order="C")
        self.shape, self.m, self.bits = shape, m, bits
        self.inertia = tuple(float(v) for v in inertia)
        self.centroids.setflags(write=False)
        self.codes.setflags(write=False)

    @property
    def nbytes(self) -> int:
        """Bytes stored: codes + centroids."""
        return int(self.codes.nbytes + self.centroids.nbytes)

    @property
    def compression_ratio(self) -> float:
        """float32 bytes of the vectors / nbytes."""
        return 4.0 * math.prod(self.shape) / self.nbytes

    def decode(self) -> np.ndarray:
        """The vectors rebuilt from their codes.

        Returns
        -------
        numpy.ndarray
            float32 array of ``shape``: each subspace's centroid of its code, concatenated.
        """
        flat = _core.pq_decode(np.ascontiguousarray(self.codes.reshape(-1, self.m)), self.centroids)
        return flat.reshape(self.shape)

    def __repr__(self) -> str:
        return (f"ProductCodes(shape={self.shape}, m={self.m}, bits={self.bits}, nbytes={self.nbytes}, "
                f"compression_ratio={self.compression_ratio:.2f})")


def product_quantize(x, m, *, bits=8, iters=25, seed=0, max_points_per_centroid=256) -> ProductCodes:
    """Product quantization (as faiss.ProductQuantizer).

    The vectors of ``x`` (its last axis, length D) are split into ``m`` subspaces of D // m
    values; each subspace gets a k-means codebook of ``2**bits`` centroids (k-means++, Lloyd
    on up to ``max_points_per_centroid`` points per centroid, then every vector is encoded).

    Parameters
    ----------
    x : array_like of float
        float16/32/64 array (computed in float32), vectors on the last axis, at least
        ``2**bits`` of them, no NaN/Inf.
    m : int
        Number of subspaces; must divide D.
    bits : int, default 8
        Bits per code, 1..16: ``2**bits`` centroids per subspace.
    iters : int, default 25
        At most this many Lloyd steps per subspace.
    seed : int, default 0
        In 0..2**64-1; the result is a deterministic function of the arguments.
    max_points_per_centroid : int, "auto" or None, default 256
        Lloyd runs on a random sample of ``2**bits * max_points_per_centroid`` vectors when
        there are more (None: all; ``"auto"``: as in :func:`kmeans` with ``dim = D // m``).

    Returns
    -------
    ProductCodes
        The codes and the codebooks, with :meth:`ProductCodes.decode` and ``nbytes``.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point array or an integer argument is not an integer.
    ValueError
        If ``x`` is 0-d, empty, holds NaN/Inf or has fewer than ``2**bits`` vectors, ``m``
        does not divide D, or a number is out of its range.
    """
    a = as_float32(x, "x")
    if a.ndim == 0:
        raise ValueError("x must have at least one dimension (vectors on the last axis), got a 0-d array")
    if a.size == 0:
        raise ValueError(f"x must not be empty, got shape {a.shape}")
    m = as_int(m, "m", 1, 2**31)
    if a.shape[-1] % m:
        raise ValueError(f"m={m} must divide the vector length (the last axis of x, {a.shape[-1]})")
    bits = as_int(bits, "bits", 1, 16)
    iters = as_int(iters, "iters", 1, 10**6)
    seed = _as_seed(seed)
    k = 2**bits
    flat = a.reshape(-1, a.shape[-1])
    if flat.shape[0] < k:
        raise ValueError(f"x has {flat.shape[0]} vectors, fewer than 2**bits={k} centroids per subspace")
    r = _core.product_quantize(flat, m, bits, iters, seed,
                               _max_points(max_points_per_centroid, k, a.shape[-1] // m))
    if r is None:
        check_finite(a, "x")
        raise ValueError("x holds NaN or Inf")
    codes = r["codes"].reshape(a.shape[:-1] + (m,))
    return ProductCodes(r["centroids"], codes, a.shape, bits, inertia=r["inertia"])


def _moments(calibration, in_features: int) -> np.ndarray:
    """E[x_k^2] of each input channel over the calibration rows (float64, in_features)."""
    a = as_float32(calibration, "calibration")
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != in_features:
        raise ValueError(f"calibration must have shape (n, {in_features}) with n > 0, got {a.shape}")
    check_finite(a, "calibration")
    return np.mean(np.square(a, dtype=np.float64), axis=0)


def _split_outliers(w: np.ndarray, m, fraction: float):
    """The mask of weights to cluster and the CSR (indptr, indices, values) of the
    floor(fraction * size) weights of largest |w| * sqrt(m) (ties: the first in row-major order)."""
    score = np.abs(w.astype(np.float64))
    if m is not None:
        score *= np.sqrt(m)[None]
    n = int(math.floor(fraction * w.size))
    keep = np.ones(w.shape, bool)
    if n == 0:
        return keep, None
    idx = np.sort(np.argsort(-score.reshape(-1), kind="stable")[:n])
    rows, cols = np.divmod(idx, w.shape[1])
    keep.reshape(-1)[idx] = False
    indptr = np.zeros(w.shape[0] + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=w.shape[0]), out=indptr[1:])
    return keep, (indptr, cols.astype(np.int32), w.reshape(-1)[idx].astype(np.float32))


def _weighted_lloyd(x: np.ndarray, wt: np.ndarray, c: np.ndarray, iters: int) -> np.ndarray:
    """Weighted 1-D Lloyd on every row of x (R, n) with per-value weights wt from the sorted
    centroids c (R, k): exact prefix sums over the sorted values, float64; a centroid without
    weight stays where it is."""
    R, n = x.shape
    order = np.argsort(x, axis=1, kind="stable")
    xs = np.take_along_axis(x, order, 1).astype(np.float64)
    ws = np.take_along_axis(wt, order, 1).astype(np.float64)
    zero = np.zeros((R, 1))
    cw = np.concatenate([zero, np.cumsum(ws, 1)], 1)
    cx = np.concatenate([zero, np.cumsum(ws * xs, 1)], 1)
    c = c.astype(np.float64)
    ends = (np.zeros((R, 1), np.int64), np.full((R, 1), n, np.int64))
    for _ in range(iters):
        t = (c[:, 1:] + c[:, :-1]) / 2
        b = np.concatenate([ends[0], np.stack([np.searchsorted(xs[r], t[r]) for r in range(R)]),
                            ends[1]], 1)
        sw = np.diff(np.take_along_axis(cw, b, 1), axis=1)
        sx = np.diff(np.take_along_axis(cx, b, 1), axis=1)
        new = np.sort(np.where(sw > 0, sx / np.where(sw > 0, sw, 1.0), c), axis=1)
        if np.array_equal(new, c):
            break
        c = new
    return c.astype(np.float32)


def _cluster_rows(w, keep, sens, k, iters, init, seed) -> np.ndarray:
    """Sorted (R, k) float32 centroids of each row of w (R, n): lowbit's 1-D k-means of the
    row's kept values (all its distinct values when it has at most k), then, with sens, weighted
    Lloyd steps (weights sens, 0 for values not kept)."""
    R = w.shape[0]
    cents = np.zeros((R, k), np.float32)
    code = _INITS[init]
    for r in range(R):
        v = np.ascontiguousarray(w[r][keep[r]])
        u = np.unique(v)
        if u.size <= k:
            if u.size:
                cents[r, :u.size], cents[r, u.size:] = u, u[-1]
        else:
            cents[r] = np.sort(_core.kmeans(v, 1, k, iters, code, seed, 0)["centroids"][:, 0])
    if sens is not None:
        cents = _weighted_lloyd(w, np.where(keep, sens, 0.0), cents, iters)
    return cents


def _nearest(w: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Code of the nearest entry of each row's sorted table (R, k) for every value of w (R, n)."""
    codes = np.empty(w.shape, np.uint8 if tables.shape[1] <= 256 else np.uint16)
    mids = (tables[:, 1:].astype(np.float64) + tables[:, :-1]) / 2
    for r in range(w.shape[0]):
        codes[r] = np.searchsorted(mids[r], w[r], side="right")
    return codes


def _quantize_tables(cents: np.ndarray, qmax: int):
    """Per-row symmetric quantization of the tables (as the plan does the shared one):
    scale max|c| / qmax (1 for zeros), entries round-half-even(c / scale)."""
    mx = np.abs(cents).max(1)
    scales = np.where(mx > 0, mx / np.float32(qmax), np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(cents / scales[:, None]), -qmax, qmax).astype(np.int16)
    return q, scales


class CodebookLinear:
    """A float linear layer y = x W^T + b whose weight is a k-means codebook.

    A drop-in replacement for a float linear layer: Deep Compression weight sharing, or with
    ``dim > 1`` vector quantization of groups of ``dim`` weights along the input axis. The
    weight is clustered once here with :func:`kmeans` (``layer.codebook``);
    :meth:`from_codebook` makes a layer of an existing codebook.

    ``layer(x)`` for float x of shape ``(..., in_features)`` returns float32
    ``(..., out_features)`` without ever building the float weight: activations are quantized
    per row on the fly (symmetric), the centroids once (one scale), and the products are summed
    exactly in integers. With ``k <= 16`` and ``dim=1`` the weights stay 4-bit codes that the
    kernel looks up in a 16-entry table held in a register -- a lookup-table GEMV for one row
    that streams half a byte per weight; otherwise tiles of int16 weights are decoded inside
    the multiply. ``layer(x, relu=True)`` applies a ReLU to the result. ``layer.weight()`` is
    the codebook's float weight (built on request).

    Parameters
    ----------
    weight : array_like of float, shape (out_features, in_features)
        The float weight (torch.nn.Linear's layout), non-empty and finite.
    bias : array_like of float, shape (out_features,), optional
        The bias (None: no bias).
    k : int, default 16
        Number of centroids (see :func:`kmeans`).
    dim : int, default 1
        Weights per group along the input axis; must divide ``in_features``.
    seed : int, default 0
        The k-means seed.
    iters : int, default 25
        At most this many Lloyd steps.
    init : {"auto", "kmeans++", "linear", "random"}, default "auto"
        The k-means start (see :func:`kmeans`).
    activations : {"int8", "int16"}, default "int8"
        ``"int8"``: activations and the 4-bit table in 8 bits, like QuantizedLinear's
        dynamic quantization: about 40 dB from the exact product with the codebook weight, the
        fastest. ``"int16"``: 13 bits, within about 1e-4 of it, e.g. to run a fine-tuned
        shared-weight model faithfully. The decoded-tile path (k > 16 or dim > 1) is always
        13-bit.
    per_row : bool, default False
        One codebook of ``k`` centroids (2..256) per output row, clustered per row (1-D
        k-means), each row's table quantized with its own scale: rows of very different scales
        each get centroids of their own. The 4-bit path (``k <= 16``) runs the lookup kernel once
        per output row with that row's table; held: the 4-bit codes, a table (int8, or int16 for
        ``activations="int16"`` and ``k > 16``) and a float32 scale per row. ``dim`` must be 1.
    calibration : array_like of float, shape (n, in_features), optional
        The layer's inputs on calibration data (never the data you evaluate on). Each weight
        ``w[o, i]`` then counts in the clustering with the weight ``E[x_i^2]``, the second
        moment of its input channel over the ``n`` rows (SqueezeLLM's sensitivity weighting: the
        diagonal approximation of the Fisher / Hessian of the layer's output error, since
        ``E[(x (w - q))^2] = sum_i E[x_i^2] (w_i - q_i)^2`` for uncorrelated channels): lowbit's
        1-D k-means first, then weighted Lloyd steps (at most ``iters``) from its centroids. A
        channel that is always 0 weighs nothing. ``dim`` must be 1.
    outliers : float, default 0.0
        In [0, 1): the fraction ``f`` of weights kept exactly (``floor(f * size)`` of them):
        those of largest ``|w[o, i]| * sqrt(E[x_i^2])`` (``|w|`` without ``calibration``), held as
        float32 in a sparse side matrix (CSR by output row: float32 values, int32 column indices,
        ``out_features + 1`` int32 row pointers, and per outlier the float32 difference from the
        dense weight there that the forward adds, all counted in ``nbytes``) and left out of the
        clustering. The forward adds their exact contribution (``x @ S^T``, in double, minus what
        the dense codes give at those positions, which hold each row's entry nearest zero);
        :meth:`weight` equals the original weight there. ``dim`` must be 1.

    Attributes
    ----------
    in_features : int
        Length of the input rows.
    out_features : int
        Length of the output rows.
    bias : numpy.ndarray or None
        float32 ``(out_features,)``, or None.
    activations : str
        ``"int8"`` or ``"int16"``.
    per_row : bool
        Whether every output row has its own codebook.
    outliers : float
        The fraction of weights held exactly in the sparse side matrix (0.0: none).
    calibrated : bool
        Whether the clustering was weighted by calibration statistics.

    Raises
    ------
    TypeError
        If ``weight``, ``bias`` or ``calibration`` is not a floating-point array, or an
        argument has the wrong type.
    ValueError
        If ``weight`` is not a non-empty finite 2-D array, ``bias`` does not have shape
        ``(out_features,)``, ``activations`` or ``init`` is unknown, the clustering
        refuses its arguments (see :func:`kmeans`), ``calibration`` is not ``(n,
        in_features)`` with ``n > 0`` or holds NaN/Inf, ``outliers`` is not in [0, 1), ``k``
        is above 256 with ``per_row``, or ``dim`` is not 1 with ``per_row``, ``calibration`` or
        ``outliers``.

    Notes
    -----
    :func:`lowbit.export_runtime` and :func:`lowbit.export_onnx` refuse layers with
    ``per_row=True`` or outliers (not implemented); ``lowbit.save`` / ``lowbit.load`` and pickle
    keep them. Results are the same for every thread count and kernel set.
    """

    def __init__(self, weight, bias=None, *, k=16, dim=1, seed=0, iters=25, init="auto",
                 activations="int8", per_row=False, calibration=None, outliers=0.0):
        w = as_weight(weight)
        activations = _check_activations(activations)
        per_row = as_bool(per_row, "per_row")
        fraction = as_number(outliers, "outliers", 0.0, 1.0, hi_open=True)
        m = None if calibration is None else _moments(calibration, w.shape[1])
        if not (per_row or m is not None or fraction > 0):
            self._setup(kmeans(w, k, dim=dim, iters=iters, init=init, seed=seed), bias, activations)
            return
        if as_int(dim, "dim", 1, 2**31) != 1:
            raise ValueError(f"dim must be 1 with per_row, calibration or outliers, got dim={dim}")
        k = as_int(k, "k", 2, 256 if per_row else _MAX_K)
        iters, seed = as_int(iters, "iters", 1, 10**6), _as_seed(seed)
        _check_init(init)
        keep, sparse = _split_outliers(w, m, fraction)
        sens = None if m is None else np.broadcast_to(m, w.shape)
        if per_row:
            cents = _cluster_rows(w, keep, sens, k, iters, init, seed)
            qt, scales = _quantize_tables(cents, 127 if k <= 16 and activations == "int8" else 4095)
            codes = _nearest(w, qt * scales[:, None])
            codes[~keep] = np.abs(qt).argmin(1)[np.nonzero(~keep)[0]]  # nearest zero: see Notes
            self._setup_rows(qt, scales, codes, bias, activations, sparse)
        else:
            flat = (lambda a: None if a is None else a.reshape(1, -1))
            cents = _cluster_rows(flat(w), flat(keep), flat(sens), k, iters, init, seed)
            codes = _nearest(flat(w), cents).reshape(w.shape)
            codes[~keep] = np.abs(cents[0]).argmin()
            packed = _pack_nibbles(codes) if k <= 16 else codes
            self._setup(Codebook(cents[0], packed, w.shape), bias, activations, sparse)
        self.calibrated = m is not None

    @classmethod
    def from_codebook(cls, codebook: Codebook, bias=None, *, activations="int8") -> "CodebookLinear":
        """The layer of an existing codebook, without clustering.

        Parameters
        ----------
        codebook : Codebook
            The codebook of a non-empty ``(out_features, in_features)`` weight (for example
            one fine-tuned, or loaded from a file).
        bias : array_like of float, shape (out_features,), optional
            The bias (None: no bias).
        activations : {"int8", "int16"}, default "int8"
            Precision of the activations, as in :class:`CodebookLinear`.

        Returns
        -------
        CodebookLinear
            The layer.

        Raises
        ------
        TypeError
            If ``codebook`` is not a :class:`Codebook`, ``bias`` is not a floating-point array
            or ``activations`` is not a string.
        ValueError
            If the codebook is not of a non-empty 2-D weight, ``bias`` has the wrong shape or
            holds NaN/Inf, or ``activations`` is unknown.
        """
        if not isinstance(codebook, Codebook):
            raise TypeError(f"codebook must be a lowbit.Codebook, got {type(codebook).__name__}")
        if len(codebook.shape) != 2 or codebook.size == 0:
            raise ValueError(f"codebook must be of a non-empty 2-D weight (out_features, in_features), "
                             f"got shape {codebook.shape}")
        activations = _check_activations(activations)
        layer = cls.__new__(cls)
        layer._setup(codebook, bias, activations)
        return layer

    def _setup(self, codebook: Codebook, bias, activations: str, sparse=None) -> None:
        # The plan (codes in the kernels' layout) is the only copy of the codes kept; `codebook`
        # is rebuilt from it on request, so the layer's resident weight bytes are `nbytes`.
        self._centroids, self._shape = codebook.centroids, codebook.shape
        self._history, self._inertia = codebook.history, codebook.inertia
        self.activations, self.per_row, self.outliers, self.calibrated = activations, False, 0.0, False
        self.out_features, self.in_features = (int(s) for s in codebook.shape)
        self.bias = as_bias(bias, self.out_features)
        codes = np.ascontiguousarray(codebook.codes().reshape(-1))
        self._plan = _core.CodebookLinearPlan(codebook.centroids, codes, self.out_features,
                                              self.in_features, self.bias,
                                              activations == "int16")
        self._set_sparse(sparse)

    def _setup_rows(self, qtables, scales, codes, bias, activations: str, sparse) -> None:
        # per_row: the plan holds the quantized tables, the scales and the codes; nothing else is kept.
        self.activations, self.per_row, self.outliers, self.calibrated = activations, True, 0.0, False
        self.out_features, self.in_features = (int(s) for s in codes.shape)
        self._shape, self._k = (self.out_features, self.in_features), int(qtables.shape[1])
        self.bias = as_bias(bias, self.out_features)
        self._plan = _core.CodebookLinearPlan.make_per_row(
            qtables, scales, np.ascontiguousarray(codes.reshape(-1)), self.out_features,
            self.in_features, self.bias, activations == "int16")
        self._set_sparse(sparse)

    def _set_sparse(self, sparse) -> None:
        if sparse is not None and sparse[2].size:
            self._plan.set_outliers(*sparse)
            self.outliers = sparse[2].size / (self.out_features * self.in_features)

    @property
    def sparse(self):
        """The outliers kept exactly, in CSR by output row: ``(indptr, indices, values)``,
        int32 ``(out_features + 1,)``, int32 ``(nnz,)`` and float32 ``(nnz,)`` (new arrays;
        empty when there are none)."""
        return self._plan.outliers

    @property
    def centroids(self) -> np.ndarray:
        """The centroids as the forward uses them: per_row, float32 ``(out_features, k)``, each
        row's table entries times its scale (the weight of code ``j`` in row ``o`` is
        ``centroids[o, j]``); otherwise the codebook's float32 ``(k, dim)``."""
        if not self.per_row:
            return self._centroids
        q = self._plan.qcentroids.reshape(self.out_features, -1)[:, :self.k]
        return (q * self._plan.row_scales[:, None]).astype(np.float32)

    @property
    def codebook(self) -> Codebook:
        """The layer's Codebook (centroids, indices, history), rebuilt from the plan on each
        access. A per_row layer has one codebook per row and raises ValueError (see
        :attr:`centroids` and :meth:`weight`)."""
        if self.per_row:
            raise ValueError("a per_row CodebookLinear has one codebook per output row, not one "
                             "Codebook (see centroids and weight())")
        codes = self._plan.codes()
        bits = _index_bits(self._centroids.shape[0])
        if bits == 4:
            codes = _pack_nibbles(codes)
        else:
            codes = codes.reshape(self._shape[:-1] + (self._shape[-1] // self.dim,))
        return Codebook._wrap(self._centroids, codes, self._shape, self._history, self._inertia)

    @property
    def k(self) -> int:
        """Number of centroids of the codebook (of each row's table, per_row)."""
        return int(self._k) if self.per_row else int(self._centroids.shape[0])

    @property
    def dim(self) -> int:
        """Weights per centroid (1: scalar weight sharing)."""
        return 1 if self.per_row else int(self._centroids.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes the forward uses: weight codes (4-bit packed when k <= 16 and dim == 1) +
        quantized centroids (int8 / int16; per_row, a table and a float32 scale per row) + scale
        + bias + outliers (float32 values, int32 column indices and out_features + 1 int32 row
        pointers)."""
        return int(self._plan.nbytes)

    def weight(self) -> np.ndarray:
        """The codebook's float weight, built on request only.

        Returns
        -------
        numpy.ndarray
            The decoded float32 weight ``(out_features, in_features)``.
        """
        if self.per_row:
            c = self._plan.codes().reshape(self._shape)
            w = np.take_along_axis(self.centroids, c.astype(np.intp), 1)
        else:
            w = self.codebook.decode()
        indptr, cols, values = self.sparse
        if values.size:
            w[np.repeat(np.arange(self.out_features), np.diff(indptr)), cols] = values
        return w

    def __call__(self, x, *, relu=False) -> np.ndarray:
        """Apply the layer.

        Parameters
        ----------
        x : array_like of float, shape (..., in_features)
            The input, finite.
        relu : bool, default False
            Apply a ReLU to the result.

        Returns
        -------
        numpy.ndarray
            float32 ``(..., out_features)``.
        """
        a = as_float32(x, "x")
        if a.ndim == 0 or a.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {a.shape}")
        relu = as_bool(relu, "relu")
        lead = a.shape[:-1]
        x2 = a.reshape(-1, self.in_features)
        if x2.shape[0] == 0:
            return np.zeros(lead + (self.out_features,), np.float32)
        y = self._plan.forward(x2)
        if y is None:
            check_finite(a, "x")
            raise ValueError("x holds NaN or Inf")
        if relu:
            np.maximum(y, 0.0, out=y)
        return y.reshape(lead + (self.out_features,))

    def __repr__(self) -> str:
        extra = (", per_row=True" if self.per_row else "") + \
            (", calibrated=True" if self.calibrated else "") + \
            (f", outliers={self.sparse[2].size}" if self.outliers else "")
        return (f"CodebookLinear(in_features={self.in_features}, out_features={self.out_features}, "
                f"k={self.k}, dim={self.dim}{extra}, activations={self.activations!r}, "
                f"nbytes={self.nbytes})")


def _check_activations(activations) -> str:
    if not isinstance(activations, str):
        raise TypeError(f"activations must be 'int8' or 'int16', got {type(activations).__name__}")
    if activations not in ("int8", "int16"):
        raise ValueError(f"activations must be 'int8' or 'int16', got {activations!r}")
    return activations


def _register_io() -> None:
    """lowbit.save / lowbit.load for Codebook, ProductCodes and CodebookLinear."""
    from . import io as _io

    def rebuild(what, make):
        try:
            return make()
        except (TypeError, ValueError) as e:  # a state the constructor rejects
            raise ValueError(f"{what}: {e}") from None

    def cb_from(s):
        what = "Codebook"
        c = _io.need_array(s, "centroids", what, dtype=np.float32)
        idx = _io.need_array(s, "indices", what, kind="u")
        shape = _io.need_shape(s, "shape", what)
        history = _io.need(s, "history", (list, tuple), what)
        inertia = s.get("inertia")
        return rebuild(what, lambda: Codebook(c, idx, shape, history=history, inertia=inertia))

    _io.register("Codebook", Codebook,
                 lambda cb: {"centroids": cb.centroids, "indices": cb.indices, "shape": cb.shape,
                             "history": list(cb.history), "inertia": cb.inertia}, cb_from)

    def pq_from(s):
        what = "ProductCodes"
        c = _io.need_array(s, "centroids", what, dtype=np.float32)
        codes = _io.need_array(s, "codes", what, kind="u")
        shape = _io.need_shape(s, "shape", what)
        bits = _io.need(s, "bits", int, what)
        inertia = _io.need(s, "inertia", (list, tuple), what)
        return rebuild(what, lambda: ProductCodes(c, codes, shape, bits, inertia=inertia))

    _io.register("ProductCodes", ProductCodes,
                 lambda p: {"centroids": p.centroids, "codes": p.codes, "shape": p.shape,
                            "bits": p.bits, "inertia": list(p.inertia)}, pq_from)

    def cl_from(s):
        what = "CodebookLinear"
        bias = s.get("bias")
        if bias is not None:
            bias = _io.need_array(s, "bias", what, dtype=np.float32)
        act = s.get("activations", "int8")
        sparse = None
        if "sparse_values" in s:  # outliers (absent from older files)
            sparse = tuple(np.ascontiguousarray(_io.need_array(s, f"sparse_{n}", what, dtype=t))
                           for n, t in (("indptr", np.int32), ("indices", np.int32),
                                        ("values", np.float32)))
        calibrated = bool(s.get("calibrated", False))
        if not s.get("per_row", False):
            cb = _io.need(s, "codebook", Codebook, what)
            layer = rebuild(what, lambda: CodebookLinear.from_codebook(cb, bias, activations=act))
            if sparse is not None:
                rebuild(what, lambda: layer._set_sparse(sparse))
        else:
            qt = _io.need_array(s, "qtables", what, dtype=np.int16)
            scales = _io.need_array(s, "scales", what, dtype=np.float32)
            shape = _io.need_shape(s, "shape", what)
            codes = _io.need_array(s, "codes", what, dtype=np.uint8)

            def make():
                if len(shape) != 2 or qt.ndim != 2 or qt.shape[0] != shape[0] or 0 in shape:
                    raise ValueError(f"qtables {qt.shape} do not fit shape {shape}")
                n = shape[0] * shape[1]
                c = _unpack_nibbles(codes.reshape(-1), n) if qt.shape[1] <= 16 else codes
                if c.size != n:
                    raise ValueError(f"codes must hold {n} codes")
                layer = CodebookLinear.__new__(CodebookLinear)
                layer._setup_rows(np.ascontiguousarray(qt), np.ascontiguousarray(scales),
                                  c.reshape(shape), bias, _check_activations(act), sparse)
                return layer
            layer = rebuild(what, make)
        layer.calibrated = calibrated
        return layer

    def cl_state(layer):
        st = {"bias": layer.bias, "activations": layer.activations}
        if layer.per_row:
            codes = layer._plan.codes()
            st.update(per_row=True, shape=list(layer._shape), scales=layer._plan.row_scales,
                      qtables=layer._plan.qcentroids.reshape(layer.out_features, -1)[:, :layer.k],
                      codes=_pack_nibbles(codes) if layer.k <= 16 else codes)
        else:
            st["codebook"] = layer.codebook
        if layer.outliers:
            st.update(zip(("sparse_indptr", "sparse_indices", "sparse_values"), layer.sparse))
        if layer.calibrated:
            st["calibrated"] = True
        return st

    _io.register("CodebookLinear", CodebookLinear, cl_state, cl_from)


_register_io()
