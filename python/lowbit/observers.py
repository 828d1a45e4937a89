"""Calibration: choosing the float range (lo, hi) that a tensor is quantized over.

`lowbit.calibrate(x, method=...)` computes a range from one array; the observers compute the same
range from a stream of batches (`obs.observe(batch)` as often as needed, then `obs.range()`),
so calibration data never has to fit in memory at once:

- ``"minmax"`` (`MinMaxObserver`): the smallest and largest value seen. Exact.
- ``"percentile"`` (`PercentileObserver`): the `percentile`-th percentile of the values (and the
  `100 - percentile`-th for the low end), or of ``abs(x)`` when `symmetric`. Read off the histogram
  below with linear interpolation inside a bin, so within one bin width of `np.percentile`.
- ``"mse"`` (`MSEObserver`): the clipping threshold t that minimizes the mean squared error of
  quantize-then-dequantize to `bits` bits over [-t, t] (or [0, t] for non-negative data, which
  gets all 2^bits unsigned levels), every value standing for its histogram bin's centre.
- ``"entropy"`` (`EntropyObserver`): TensorRT's KL-divergence calibration (Migacz, "8-bit
  Inference with TensorRT", GTC 2017). A 2048-bin histogram of ``abs(x)`` over
  ``[0, max(abs(x))]``; for every
  candidate i from bin 128 to bin 2048 the reference P is bins[0:i] with the outliers
  (sum of bins[i:]) added to bin i-1, the candidate Q is bins[0:i] merged into 128 levels (bin j
  goes to level floor(j * 128 / i), as NVIDIA's pytorch-quantization does) and each level's count
  spread evenly back over its non-empty bins (empty bins stay empty); both are normalized and
  KL(P || Q) = sum P log(P / Q) is computed (infinite when P > 0 where Q = 0). The threshold is
  the upper edge i * bin_width of the i with the smallest divergence (the first one on ties).

The histogram-based observers keep a histogram of ``abs(x)`` for the positive and for the
negative values, `num_bins` bins over [0, R]. R is the first batch's ``max(abs(x))``; when a later
batch exceeds it, R doubles (as often as needed) and adjacent bins are summed pairwise, which is
exact, so a stream's histogram covers [0, R] with ``max(abs(x)) <= R < 2 max(abs(x))``. A single
array (or a stream whose first batch holds the maximum) gives exactly the histogram over
``[0, max(abs(x))]``.

Observers merge (`obs.merge(other)`), so statistics computed per shard (on Dask workers, say:
`lowbit.dask.calibrate`) reduce to what one process computes: min, max and counts exactly; the
histograms add bin by bin, which needs both to cover the same [0, R] (or one to hold only
zeros). A histogram observer built with ``bound=R`` keeps R fixed (a value beyond it is an
error): with R the data's ``max(abs(x))`` (a first pass of min-max observers), the shards'
histograms add up to exactly the single array's histogram, bit for bit, because each value's
bin depends on the value and R only. (Growing the smaller of two histograms by the pairwise
merges would not do: a value at exactly the smaller R sits in its last bin, which the merge
maps one bin below where the histogram over the larger R puts it.)

The range returned: with ``symmetric=False`` (the default) the threshold t is intersected with
the data's range, (max(min x, -t), min(max x, t)), so non-negative data gets lo >= 0 and is
quantized over [0, t] by an asymmetric uint8 quantizer (also when t is below every value: the
intersection is then empty and the range is (0, t), or (-t, 0) for negative data); with
``symmetric=True`` it is (-t, t). `range_to_qparams(lo, hi)` turns a range into the parameters
lowbit.quantize(symmetric=False) would compute for a tensor with that min and max.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import as_bool, as_float32, as_int, check_finite
from .quant import qparams

METHODS = ("minmax", "percentile", "mse", "entropy")


def _batch(x, name: str = "batch") -> np.ndarray:
    a = as_float32(x, name)
    check_finite(a, name)
    return a


class Observer:
    """Base of the calibration observers.

    Call :meth:`observe` with a batch any number of times (it returns the observer, so calls
    chain), then :meth:`range` for ``(lo, hi)`` as Python floats.

    Parameters
    ----------
    symmetric : bool, default False
        Return ``(-t, t)`` rather than a range intersected with the data's.

    Attributes
    ----------
    method : str
        The method's name, as :func:`lowbit.calibrate` takes it.
    symmetric : bool
        Whether the range is symmetric.
    count : int
        The number of values observed.
    min, max : float
        The smallest and largest value observed (``inf`` and ``-inf`` before any).

    Raises
    ------
    TypeError
        If ``symmetric`` is not a bool.
    """

    method = ""

    def __init__(self, *, symmetric=False):
        self.symmetric = as_bool(symmetric, "symmetric")
        self.count = 0  # values observed
        self.min = math.inf
        self.max = -math.inf

    def observe(self, batch) -> "Observer":
        """Add a batch of values to what the observer has seen.

        Parameters
        ----------
        batch : array_like of float
            Any shape (converted to float32); an empty batch changes nothing.

        Returns
        -------
        Observer
            ``self``, so calls chain: ``obs.observe(a).observe(b).range()``.

        Raises
        ------
        TypeError
            If ``batch`` is not a floating-point array.
        ValueError
            If ``batch`` holds NaN/Inf.
        """
        a = _batch(batch)
        if a.size:
            self._observe(a)  # first: it may refuse the batch (a fixed bound)
            self.count += int(a.size)
            self.min = min(self.min, float(a.min()))
            self.max = max(self.max, float(a.max()))
        return self

    def _observe(self, a: np.ndarray) -> None:
        pass

    def _check_merge(self, other) -> None:
        if not isinstance(other, Observer):
            raise TypeError(f"other must be an observer, got {type(other).__name__}")
        if type(other) is not type(self):
            raise ValueError(f"other must be a {type(self).__name__} (method {self.method!r}) to merge into "
                             f"this one, got a {type(other).__name__} (method {other.method!r})")
        for name in ("symmetric",) + self._merge_keys:
            if getattr(self, name) != getattr(other, name):
                raise ValueError(f"other has {name}={getattr(other, name)!r} but this observer "
                                 f"{name}={getattr(self, name)!r}; only observers with the same settings merge")

    _merge_keys: tuple = ()

    def merge(self, other) -> "Observer":
        """Add what another observer of the same kind and settings has seen (exactly).

        Min, max and counts combine exactly; histograms add bin by bin, so they must cover the
        same ``[0, R]``: build the shards' observers with the same ``bound=`` (the data's
        ``max(abs(x))``), and the merged histogram equals the single array's bit for bit (so
        does the range). The other observer is not changed. Merging is how per-shard
        statistics, computed on different processes or machines, reduce to one range.

        Parameters
        ----------
        other : Observer
            An observer of the same class and settings (``symmetric``, and for the histogram
            observers ``num_bins``, ``bits``, ``percentile``, ``start_bin`` and ``bound``).

        Returns
        -------
        Observer
            ``self``, so merges chain.

        Raises
        ------
        TypeError
            If ``other`` is not an observer.
        ValueError
            If ``other`` is of another class or has other settings, or (histogram observers)
            the two histograms cover different ranges ``[0, R]`` (fix R with ``bound=``).
        """
        self._check_merge(other)
        if other.count == 0:
            return self
        self._merge(other)
        self.count += other.count
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def _merge(self, other) -> None:
        pass

    def _check_seen(self) -> None:
        if self.count == 0:
            raise ValueError(f"{type(self).__name__}.range(): no data observed yet (call observe(batch) "
                             "with a non-empty batch first)")

    def _clip(self, t: float) -> tuple[float, float]:
        """The range for a symmetric threshold t: (-t, t), or intersected with the data."""
        t = float(t)
        if self.symmetric:
            return -t, t
        lo, hi = max(self.min, -t), min(self.max, t)
        if lo > hi:  # every value beyond t on one side: the data's side of [-t, t]
            return (0.0, t) if self.min > 0 else (-t, 0.0)
        return lo, hi

    def range(self) -> tuple[float, float]:
        """The range to quantize over, from what was observed (implemented by subclasses).

        Returns
        -------
        tuple of float
            ``(lo, hi)``.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(count={self.count}, symmetric={self.symmetric})"


class MinMaxObserver(Observer):
    """The smallest and largest value seen.

    The range is ``(min, max)``, or ``(-max(abs(x)), max(abs(x)))`` when ``symmetric``. Exact.

    Parameters
    ----------
    symmetric : bool, default False
        Return the symmetric range.

    Attributes
    ----------
    count : int
        The number of values observed.
    min, max : float
        The smallest and largest value observed (``inf`` and ``-inf`` before any).

    Raises
    ------
    TypeError
        If ``symmetric`` is not a bool.

    See Also
    --------
    lowbit.calibrate : The same range from one array.
    """

    #: The method's name, as :func:`lowbit.calibrate` and :func:`lowbit.observer` take it.
    method = "minmax"

    def range(self) -> tuple[float, float]:
        """The smallest and largest value seen (symmetric: ``-t, t`` for the largest magnitude).

        Returns
        -------
        tuple of float
            ``(lo, hi)``.

        Raises
        ------
        ValueError
            If no value was observed yet.
        """
        self._check_seen()
        if self.symmetric:
            t = max(abs(self.min), abs(self.max))
            return -t, t
        return self.min, self.max


class _HistogramObserver(Observer):
    """Histograms of |x| for the positive and the negative values: `num_bins` bins over [0, R]
    (see the module docstring for how R grows on streams)."""

    _merge_keys: tuple = ("num_bins", "fixed_bound")

    def __init__(self, *, num_bins=2048, symmetric=False, bound=None):
        super().__init__(symmetric=symmetric)
        self.num_bins = as_int(num_bins, "num_bins", 8, 1 << 20)
        self.fixed_bound = None if bound is None else _as_bound(bound)
        self.bound = 0.0 if bound is None else self.fixed_bound  # R
        self.pos = np.zeros(self.num_bins, np.int64)  # x >= 0, by |x|
        self.neg = np.zeros(self.num_bins, np.int64)  # x < 0, by |x|

    def _merge(self, other) -> None:
        a, b = self.bound, other.bound
        if a != b and a != 0.0 and b != 0.0:
            raise ValueError(f"other covers [0, {b!r}] and this observer [0, {a!r}]: histograms merge exactly "
                             "only over the same range; build the shards' observers with the same bound= "
                             "(the data's max(abs(x)), e.g. from merged MinMaxObservers)")
        if b > a:  # this one saw only zeros (bin 0 whatever R is), or nothing
            self.bound = b
        self.pos += other.pos
        self.neg += other.neg

    def _grow(self, amax: float) -> None:
        if self.bound == 0.0:  # only zeros so far: they stay in bin 0 whatever R becomes
            self.bound = amax
            return
        r = self.bound
        self.pos, self.neg = _doubled(self.pos, r, amax), _doubled(self.neg, r, amax)
        while self.bound < amax:
            self.bound *= 2.0

    def _hist(self, mag: np.ndarray) -> np.ndarray:
        if self.bound == 0.0:
            return np.array([mag.size] + [0] * (self.num_bins - 1), np.int64)
        h, _ = np.histogram(mag, bins=self.num_bins, range=(0.0, self.bound))
        return h.astype(np.int64)

    def _observe(self, a: np.ndarray) -> None:
        flat = a.reshape(-1).astype(np.float64)
        amax = float(np.max(np.abs(flat)))
        if amax > self.bound:
            if self.fixed_bound is not None:
                raise ValueError(f"batch holds |x| = {amax!r}, beyond the observer's fixed bound={self.bound!r}")
            self._grow(amax)
        self.pos += self._hist(flat[flat >= 0])
        self.neg += self._hist(-flat[flat < 0])

    @property
    def bin_width(self) -> float:
        """The width of a bin: ``R / num_bins``."""
        return self.bound / self.num_bins

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """The histogram of ``abs(x)`` the threshold is chosen from.

        Returns
        -------
        counts : numpy.ndarray
            int64 counts per bin, ``(num_bins,)``.
        edges : numpy.ndarray
            The bin edges, ``(num_bins + 1,)``, from 0 to R.
        """
        return self.pos + self.neg, np.linspace(0.0, self.bound, self.num_bins + 1)


def _order_stat(counts: np.ndarray, width: float, k: int) -> float:
    """Estimate of the k-th smallest (0-based) of the values histogrammed in `counts` (bins of
    `width` from 0): the values of a bin are taken as evenly spread over it, so the estimate lies
    in the same bin as the true value."""
    cum = np.cumsum(counts)
    j = min(int(np.searchsorted(cum, k + 1, side="left")), counts.size - 1)
    r = k - (int(cum[j]) - int(counts[j]))  # rank inside bin j
    return (j + (r + 0.5) / max(int(counts[j]), 1)) * width


def _doubled(h: np.ndarray, r: float, amax: float) -> np.ndarray:
    """The histogram h over [0, r] as one over [0, r * 2^j], r * 2^j the first >= amax: bins 2i
    and 2i+1 become bin i, j times (exact)."""
    h = h.copy()
    starts = np.arange(0, h.size, 2)
    while r < amax:
        merged = np.add.reduceat(h, starts)
        h[:] = 0
        h[:merged.size] = merged
        r *= 2.0
    return h


def _as_bound(bound) -> float:
    if isinstance(bound, bool) or not isinstance(bound, (int, float, np.integer, np.floating)):
        raise TypeError(f"bound must be a number, got {type(bound).__name__}")
    b = float(bound)
    if not (math.isfinite(b) and b >= 0.0):
        raise ValueError(f"bound must be finite and >= 0, got {bound}")
    return b


class PercentileObserver(_HistogramObserver):
    """The ``percentile``-th percentile as hi and the ``(100 - percentile)``-th as lo.

    With ``symmetric``, the range is ``(-t, t)`` for ``t`` the ``percentile``-th percentile of
    ``abs(x)``. Percentiles follow ``np.percentile``'s default ("linear": position
    ``p/100 * (n - 1)`` between order statistics), with each order statistic read off the
    histogram, so the result is within one bin width (``R / num_bins``) of ``np.percentile``
    on the same data. The histogram, and how it grows on a stream, is described in
    :func:`lowbit.calibrate`.

    Parameters
    ----------
    percentile : float, default 99.99
        The percentile, in [50, 100].
    num_bins : int, default 2048
        Histogram bins, 8..2^20.
    symmetric : bool, default False
        Return ``(-t, t)``.
    bound : float, optional
        Fix the histogram's range to ``[0, bound]`` (finite, >= 0) instead of growing it from
        the data: a batch with ``abs(x) > bound`` is then refused. Shards' observers with the
        same bound merge into exactly the single array's histogram when ``bound`` is the data's
        ``max(abs(x))`` (see :meth:`merge`).

    Attributes
    ----------
    percentile : float
        The percentile.
    num_bins : int
        Histogram bins.
    count : int
        The number of values observed.
    min, max : float
        The smallest and largest value observed (``inf`` and ``-inf`` before any).

    Raises
    ------
    TypeError
        If ``percentile`` is not a number, ``num_bins`` not an integer or ``symmetric`` not a
        bool.
    ValueError
        If ``percentile`` is not in [50, 100] or ``num_bins`` not in 8..2^20.
        ``bound`` (a number, else TypeError) must be finite and >= 0.
    """

    #: The method's name, as :func:`lowbit.calibrate` and :func:`lowbit.observer` take it.
    method = "percentile"

    _merge_keys = ("num_bins", "fixed_bound", "percentile")

    def __init__(self, percentile=99.99, *, num_bins=2048, symmetric=False, bound=None):
        super().__init__(num_bins=num_bins, symmetric=symmetric, bound=bound)
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.integer, np.floating)):
            raise TypeError(f"percentile must be a number, got {type(percentile).__name__}")
        if not 50.0 <= float(percentile) <= 100.0:
            raise ValueError(f"percentile must be in [50, 100], got {percentile}")
        self.percentile = float(percentile)

    def _signed_order_stat(self, k: int) -> float:
        """k-th smallest signed value: the negatives (most negative first), then the rest."""
        if k <= 0:
            return self.min  # the extremes are known exactly
        if k >= self.count - 1:
            return self.max
        n_neg = int(self.neg.sum())
        if k < n_neg:
            return -self.bound + _order_stat(self.neg[::-1], self.bin_width, k)
        return _order_stat(self.pos, self.bin_width, k - n_neg)

    def _quantile(self, q: float, stat) -> float:
        pos = q * (self.count - 1)
        k = int(math.floor(pos))
        frac = pos - k
        v = stat(k)
        if frac > 0 and k + 1 < self.count:
            v += frac * (stat(k + 1) - v)
        return v

    def range(self) -> tuple[float, float]:
        """The percentile range of the values observed, within the data's min and max.

        Returns
        -------
        tuple of float
            ``(lo, hi)``.

        Raises
        ------
        ValueError
            If no value was observed yet.
        """
        self._check_seen()
        p = self.percentile / 100.0
        if self.symmetric:
            mags = self.pos + self.neg
            amax = max(abs(self.min), abs(self.max))
            t = self._quantile(p, lambda k: amax if k >= self.count - 1
                               else min(_order_stat(mags, self.bin_width, k), amax))
            return -t, t
        lo = min(max(self._quantile(1.0 - p, self._signed_order_stat), self.min), self.max)
        hi = min(max(self._quantile(p, self._signed_order_stat), self.min), self.max)
        return float(min(lo, hi)), float(max(lo, hi))


def mse_errors(counts: np.ndarray, edges: np.ndarray, levels: int,
               candidates: np.ndarray) -> np.ndarray:
    """Sum over bins of count * (centre - fakequant(centre, t))^2 for each candidate t, where
    fakequant rounds |x| to the nearest of `levels` steps of t / levels and saturates at t."""
    centres = 0.5 * (edges[:-1] + edges[1:])
    keep = counts > 0
    c, w = centres[keep], counts[keep].astype(np.float64)
    out = np.empty(candidates.size, np.float64)
    step = 256  # candidates per chunk: bounds the temporary to 256 x bins
    for s in range(0, candidates.size, step):
        t = candidates[s:s + step, None]
        scale = t / levels
        q = np.minimum(np.round(c[None, :] / scale), levels) * scale
        out[s:s + step] = ((c[None, :] - q) ** 2 * w[None, :]).sum(axis=1)
    return out


class MSEObserver(_HistogramObserver):
    """The threshold ``t`` minimizing the squared error of ``bits``-bit quantization.

    The error is that of quantize-then-dequantize, every value standing for its histogram bin's
    centre: symmetric (``2^(bits-1) - 1`` levels per side over ``[-t, t]``) for signed data or
    with ``symmetric=True``, unsigned (``2^bits - 1`` levels over ``[0, t]``) when no negative
    value was seen and ``symmetric`` is False. Candidates are the upper bin edges (``num_bins``
    of them). The histogram, and the range returned for ``t``, are described in
    :func:`lowbit.calibrate`.

    Parameters
    ----------
    bits : int, default 8
        Bits of the quantization, 2..16.
    num_bins : int, default 2048
        Histogram bins, 8..2^20.
    symmetric : bool, default False
        Return ``(-t, t)``.
    bound : float, optional
        Fix the histogram's range to ``[0, bound]`` (finite, >= 0) instead of growing it from
        the data: a batch with ``abs(x) > bound`` is then refused. Shards' observers with the
        same bound merge into exactly the single array's histogram when ``bound`` is the data's
        ``max(abs(x))`` (see :meth:`merge`).

    Attributes
    ----------
    bits : int
        Bits of the quantization.
    num_bins : int
        Histogram bins.
    count : int
        The number of values observed.
    min, max : float
        The smallest and largest value observed (``inf`` and ``-inf`` before any).

    Raises
    ------
    TypeError
        If ``bits`` or ``num_bins`` is not an integer or ``symmetric`` not a bool.
    ValueError
        If ``bits`` is not in 2..16 or ``num_bins`` not in 8..2^20.
        ``bound`` (a number, else TypeError) must be finite and >= 0.
    """

    #: The method's name, as :func:`lowbit.calibrate` and :func:`lowbit.observer` take it.
    method = "mse"

    _merge_keys = ("num_bins", "fixed_bound", "bits")

    def __init__(self, bits=8, *, num_bins=2048, symmetric=False, bound=None):
        super().__init__(num_bins=num_bins, symmetric=symmetric, bound=bound)
        self.bits = as_int(bits, "bits", 2, 16)

    def levels(self) -> int:
        """The number of quantization steps of ``t`` the error is computed with.

        Returns
        -------
        int
            ``2^bits - 1`` (unsigned) when no negative value was seen and ``symmetric`` is
            False, else ``2^(bits-1) - 1`` (per side).
        """
        if self.neg.sum() == 0 and not self.symmetric:
            return (1 << self.bits) - 1
        return (1 << (self.bits - 1)) - 1

    def range(self) -> tuple[float, float]:
        """The range for the threshold of least squared error.

        Returns
        -------
        tuple of float
            ``(lo, hi)``: ``(-t, t)`` when ``symmetric``, else ``[-t, t]`` intersected with the
            data's range.

        Raises
        ------
        ValueError
            If no value was observed yet.
        """
        self._check_seen()
        counts, edges = self.histogram()
        if self.bound == 0.0:
            return self._clip(0.0)
        cands = edges[1:]
        err = mse_errors(counts, edges, self.levels(), cands)
        return self._clip(cands[int(np.argmin(err))])


def kl_divergences(counts: np.ndarray, levels: int = 128, start_bin: int = 128) -> np.ndarray:
    """TensorRT's divergence for every candidate i = start_bin .. len(counts) (see the module
    docstring); entry k is the divergence of i = start_bin + k, inf where Q misses part of P."""
    bins = np.asarray(counts, np.float64)
    n = bins.size
    total = bins.sum()
    nonzero = (bins != 0).astype(np.float64)
    out = np.full(n - start_bin + 1, np.inf)
    tail = np.concatenate([np.cumsum(bins[::-1])[::-1], [0.0]])  # tail[i] = sum(bins[i:])
    for i in range(start_bin, n + 1):
        p = bins[:i].copy()
        p[i - 1] += tail[i]
        level = (np.arange(i) * levels) // i
        sums = np.bincount(level, weights=bins[:i], minlength=levels)
        cnt = np.bincount(level, weights=nonzero[:i], minlength=levels)
        per = np.divide(sums, cnt, out=np.zeros(levels), where=cnt > 0)
        q = per[level] * nonzero[:i]
        qs = q.sum()
        if qs == 0 or total == 0:
            continue
        p /= total
        q /= qs
        m = p > 0
        if np.any(q[m] == 0):
            continue
        out[i - start_bin] = float(np.sum(p[m] * np.log(p[m] / q[m])))
    return out


class EntropyObserver(_HistogramObserver):
    """TensorRT's entropy (KL-divergence) calibration.

    Migacz, "8-bit Inference with TensorRT", GTC 2017. A histogram of ``abs(x)``, ``num_bins``
    bins over ``[0, max(abs(x))]``; for every candidate ``i`` from bin ``start_bin``
    to bin ``num_bins`` the reference P is ``bins[0:i]`` with the outliers (``sum(bins[i:])``)
    added to bin ``i-1``, the candidate Q is ``bins[0:i]`` merged into ``2^(bits-1)`` levels
    (bin ``j`` goes to level ``floor(j * levels / i)``, as NVIDIA's pytorch-quantization does)
    and each level's count spread evenly back over its non-empty bins (empty bins stay empty);
    both are normalized and ``KL(P || Q) = sum P log(P / Q)`` is computed (infinite when
    ``P > 0`` where ``Q = 0``). The threshold is the upper edge ``i * bin_width`` of the ``i``
    with the smallest divergence (the first one on ties). With the defaults (``bits=8``): 2048
    bins, candidates from bin 128 to 2048, 128 quantized levels. The histogram, and the range
    returned for the threshold, are described in :func:`lowbit.calibrate`.

    Parameters
    ----------
    bits : int, default 8
        Bits of the quantization, 2..16: ``2^(bits-1)`` levels.
    num_bins : int, default 2048
        Histogram bins, 8..2^20.
    start_bin : int, default 128
        The first candidate, in ``2^(bits-1)..num_bins``.
    symmetric : bool, default False
        Return ``(-t, t)``.
    bound : float, optional
        Fix the histogram's range to ``[0, bound]`` (finite, >= 0) instead of growing it from
        the data: a batch with ``abs(x) > bound`` is then refused. Shards' observers with the
        same bound merge into exactly the single array's histogram when ``bound`` is the data's
        ``max(abs(x))`` (see :meth:`merge`).

    Attributes
    ----------
    bits : int
        Bits of the quantization.
    num_bins : int
        Histogram bins.
    start_bin : int
        The first candidate.
    count : int
        The number of values observed.
    min, max : float
        The smallest and largest value observed (``inf`` and ``-inf`` before any).
    divergences : numpy.ndarray
        After :meth:`range`: the divergence of every candidate, entry ``k`` for
        ``i = start_bin + k``.

    Raises
    ------
    TypeError
        If ``bits``, ``num_bins`` or ``start_bin`` is not an integer or ``symmetric`` not a
        bool.
    ValueError
        If ``bits`` is not in 2..16, ``num_bins`` not in 8..2^20, or ``start_bin`` not in
        ``2^(bits-1)..num_bins``.
        ``bound`` (a number, else TypeError) must be finite and >= 0.
    """

    #: The method's name, as :func:`lowbit.calibrate` and :func:`lowbit.observer` take it.
    method = "entropy"

    _merge_keys = ("num_bins", "fixed_bound", "bits", "start_bin")

    def __init__(self, bits=8, *, num_bins=2048, start_bin=128, symmetric=False, bound=None):
        super().__init__(num_bins=num_bins, symmetric=symmetric, bound=bound)
        self.bits = as_int(bits, "bits", 2, 16)
        self.start_bin = as_int(start_bin, "start_bin", 1, self.num_bins)
        if self.start_bin < (1 << (self.bits - 1)):
            raise ValueError(f"start_bin must be >= the number of levels 2^(bits-1) = "
                             f"{1 << (self.bits - 1)}, got {self.start_bin}")

    def range(self) -> tuple[float, float]:
        """The range for the threshold of least divergence.

        Also stores every candidate's divergence in ``divergences``.

        Returns
        -------
        tuple of float
            ``(lo, hi)``: ``(-t, t)`` when ``symmetric``, else ``[-t, t]`` intersected with the
            data's range.

        Raises
        ------
        ValueError
            If no value was observed yet.
        """
        self._check_seen()
        if self.bound == 0.0:
            return self._clip(0.0)
        counts, _ = self.histogram()
        div = kl_divergences(counts, 1 << (self.bits - 1), self.start_bin)
        i = self.start_bin + int(np.argmin(div))
        self.divergences = div
        return self._clip(i * self.bin_width)


def observer(method="minmax", **kwargs) -> Observer:
    """A new observer for a calibration method.

    Parameters
    ----------
    method : {"minmax", "percentile", "mse", "entropy"}, default "minmax"
        :class:`lowbit.MinMaxObserver`, :class:`lowbit.PercentileObserver`,
        :class:`lowbit.MSEObserver` or :class:`lowbit.EntropyObserver`.
    **kwargs
        Passed to the observer's constructor: those it takes of ``percentile``, ``bits``,
        ``num_bins``, ``start_bin``, ``symmetric`` and ``bound``.

    Returns
    -------
    Observer
        The observer, with nothing observed yet.

    Raises
    ------
    TypeError
        If ``method`` is not a string, or the observer does not take one of ``kwargs`` (or a
        value has the wrong type).
    ValueError
        If ``method`` is unknown, or a value is out of range.
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}")
    cls = {"minmax": MinMaxObserver, "percentile": PercentileObserver, "mse": MSEObserver,
           "entropy": EntropyObserver}.get(method)
    if cls is None:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    import inspect

    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    bad = sorted(set(kwargs) - allowed)
    if bad:
        raise TypeError(f"method={method!r} does not take {', '.join(bad)} "
                        f"(it takes {', '.join(sorted(allowed)) or 'no options'})")
    return cls(**kwargs)


def calibrate(x, method="minmax", *, percentile=99.99, bits=8, num_bins=2048, symmetric=False
              ) -> tuple[float, float]:
    """The range ``(lo, hi)`` to quantize ``x`` over, by a calibration method.

    The observers (:func:`lowbit.observer`) compute the same range from a stream of batches,
    so calibration data never has to fit in memory at once.

    Parameters
    ----------
    x : array_like of float
        The values (any shape, converted to float32), not empty.
    method : {"minmax", "percentile", "mse", "entropy"}, default "minmax"
        "minmax": the smallest and largest value, exact (:class:`lowbit.MinMaxObserver`);
        "percentile": the ``percentile``-th percentile of the values (and the
        ``100 - percentile``-th for the low end), or of ``abs(x)`` when ``symmetric``
        (:class:`lowbit.PercentileObserver`); "mse": the clipping threshold ``t`` that
        minimizes the mean squared error of quantize-then-dequantize to ``bits`` bits
        (:class:`lowbit.MSEObserver`); "entropy": TensorRT's KL-divergence calibration
        (:class:`lowbit.EntropyObserver`).
    percentile : float, default 99.99
        For "percentile": in [50, 100].
    bits : int, default 8
        For "mse" and "entropy": 2..16. ("entropy" starts at bin 128, which must be at least
        its ``2^(bits-1)`` levels and at most ``num_bins``.)
    num_bins : int, default 2048
        For all but "minmax": histogram bins, 8..2^20.
    symmetric : bool, default False
        Return ``(-t, t)``; else the range does not reach past the data's min and max.

    Returns
    -------
    tuple of float
        ``(lo, hi)``.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point array, ``method`` is not a string, or an option has
        the wrong type.
    ValueError
        If ``method`` is unknown, ``x`` is empty or holds NaN/Inf, or an option is out of
        range.

    Notes
    -----
    The histogram-based methods keep a histogram of ``abs(x)`` for the positive and for the
    negative values, ``num_bins`` bins over ``[0, R]``. R is the first batch's
    ``max(abs(x))``; when a later batch exceeds it, R doubles (as often as needed) and adjacent
    bins are summed pairwise, which is exact, so a stream's histogram covers ``[0, R]`` with
    ``max(abs(x)) <= R < 2 max(abs(x))``. A single array (or a stream whose first batch holds
    the maximum) gives exactly the histogram over ``[0, max(abs(x))]``.

    The range returned for a threshold ``t``: with ``symmetric=False`` (the default) ``t`` is
    intersected with the data's range, ``(max(min x, -t), min(max x, t))``, so non-negative
    data gets ``lo >= 0`` and is quantized over ``[0, t]`` by an asymmetric uint8 quantizer
    (also when ``t`` is below every value: the intersection is then empty and the range is
    ``(0, t)``, or ``(-t, 0)`` for negative data); with ``symmetric=True`` it is ``(-t, t)``.
    ``lowbit.observers.range_to_qparams(lo, hi)`` turns a range into the parameters
    ``lowbit.quantize(symmetric=False)`` would compute for a tensor with that min and max.
    """
    kw: dict = {"symmetric": symmetric}
    if method in ("percentile", "mse", "entropy"):
        kw["num_bins"] = num_bins
    if method == "percentile":
        kw["percentile"] = percentile
    elif method in ("mse", "entropy"):
        kw["bits"] = bits
    obs = observer(method, **kw)
    a = _batch(x, "x")
    if a.size == 0:
        raise ValueError("x must not be empty")
    return obs.observe(a).range()


def range_to_qparams(lo: float, hi: float, *, bits=8) -> tuple[float, int]:
    """Scale and zero point of asymmetric unsigned ``bits``-bit quantization over ``[lo, hi]``.

    The parameters ``lowbit.quantize(x, symmetric=False)`` computes for a float32 tensor whose
    min is ``lo`` and max is ``hi`` (``lowbit.quant.qparams``, the one rule: ONNX
    DynamicQuantizeLinear's, the range widened to include 0, in float32; a constant range ``v``
    gets scale ``abs(v)``, 1 for ``v == 0``).

    Parameters
    ----------
    lo, hi : float
        The range, rounded to float32 first.
    bits : int, default 8
        Bits per code, 2..8.

    Returns
    -------
    scale : float
        The scale.
    zero_point : int
        The zero point, in ``[0, 2^bits - 1]``.

    Raises
    ------
    TypeError
        If ``lo`` or ``hi`` is not a number, or ``bits`` not an integer.
    ValueError
        If ``lo`` or ``hi`` is not finite in float32, ``lo > hi``, or ``bits`` is not in 2..8.
    """
    bits = as_int(bits, "bits", 2, 8)
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    try:
        scale, zp = qparams(lo, hi, bits=bits, symmetric=False)
    except ValueError:
        raise ValueError(f"the range must be finite in float32 with lo <= hi, got ({lo}, {hi})") from None
    return float(scale), int(zp)
