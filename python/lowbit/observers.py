"""Calibration: choosing the float range (lo, hi) that a tensor is quantized over.

`lowbit.calibrate(x, method=...)` computes a range from one array; the observers compute the same
range from a stream of batches (`obs.observe(batch)` as often as needed, then `obs.range()`),
so calibration data never has to fit in memory at once:

- ``"minmax"`` (`MinMaxObserver`): the smallest and largest value seen. Exact.
- ``"percentile"`` (`PercentileObserver`): the `percentile`-th percentile of the values (and the
  `100 - percentile`-th for the low end), or of |x| when `symmetric`. Read off the histogram
  below with linear interpolation inside a bin, so within one bin width of `np.percentile`.
- ``"mse"`` (`MSEObserver`): the clipping threshold t that minimizes the mean squared error of
  quantize-then-dequantize to `bits` bits over [-t, t] (or [0, t] for non-negative data, which
  gets all 2^bits unsigned levels), every value standing for its histogram bin's centre.
- ``"entropy"`` (`EntropyObserver`): TensorRT's KL-divergence calibration (Migacz, "8-bit
  Inference with TensorRT", GTC 2017). A 2048-bin histogram of |x| over [0, max|x|]; for every
  candidate i from bin 128 to bin 2048 the reference P is bins[0:i] with the outliers
  (sum of bins[i:]) added to bin i-1, the candidate Q is bins[0:i] merged into 128 levels (bin j
  goes to level floor(j * 128 / i), as NVIDIA's pytorch-quantization does) and each level's count
  spread evenly back over its non-empty bins (empty bins stay empty); both are normalized and
  KL(P || Q) = sum P log(P / Q) is computed (infinite when P > 0 where Q = 0). The threshold is
  the upper edge i * bin_width of the i with the smallest divergence (the first one on ties).

The histogram-based observers keep a histogram of |x| for the positive and for the negative
values, `num_bins` bins over [0, R]. R is the first batch's max|x|; when a later batch exceeds
it, R doubles (as often as needed) and adjacent bins are summed pairwise, which is exact, so a
stream's histogram covers [0, R] with max|x| <= R < 2 max|x|. A single array (or a stream whose
first batch holds the maximum) gives exactly the histogram over [0, max|x|].

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
    """Base of the calibration observers: `observe(batch)` any number of times (it returns the
    observer, so calls chain), then `range() -> (lo, hi)` as Python floats."""

    method = ""

    def __init__(self, *, symmetric=False):
        self.symmetric = as_bool(symmetric, "symmetric")
        self.count = 0  # values observed
        self.min = math.inf
        self.max = -math.inf

    def observe(self, batch) -> "Observer":
        a = _batch(batch)
        if a.size:
            self.count += int(a.size)
            self.min = min(self.min, float(a.min()))
            self.max = max(self.max, float(a.max()))
            self._observe(a)
        return self

    def _observe(self, a: np.ndarray) -> None:
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
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(count={self.count}, symmetric={self.symmetric})"


class MinMaxObserver(Observer):
    """The smallest and largest value seen: (min, max), or (-max|x|, max|x|) when symmetric."""

    method = "minmax"

    def range(self) -> tuple[float, float]:
        self._check_seen()
        if self.symmetric:
            t = max(abs(self.min), abs(self.max))
            return -t, t
        return self.min, self.max


class _HistogramObserver(Observer):
    """Histograms of |x| for the positive and the negative values: `num_bins` bins over [0, R]
    (see the module docstring for how R grows on streams)."""

    def __init__(self, *, num_bins=2048, symmetric=False):
        super().__init__(symmetric=symmetric)
        self.num_bins = as_int(num_bins, "num_bins", 8, 1 << 20)
        self.bound = 0.0  # R
        self.pos = np.zeros(self.num_bins, np.int64)  # x >= 0, by |x|
        self.neg = np.zeros(self.num_bins, np.int64)  # x < 0, by |x|

    def _grow(self, amax: float) -> None:
        if self.bound == 0.0:  # only zeros so far: they stay in bin 0 whatever R becomes
            self.bound = amax
            return
        starts = np.arange(0, self.num_bins, 2)
        while self.bound < amax:
            # Double R: bins 2j and 2j+1 become bin j, exactly.
            for h in (self.pos, self.neg):
                merged = np.add.reduceat(h, starts)
                h[:] = 0
                h[:merged.size] = merged
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
            self._grow(amax)
        self.pos += self._hist(flat[flat >= 0])
        self.neg += self._hist(-flat[flat < 0])

    @property
    def bin_width(self) -> float:
        return self.bound / self.num_bins

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts of |x| per bin, bin edges): the histogram the threshold is chosen from."""
        return self.pos + self.neg, np.linspace(0.0, self.bound, self.num_bins + 1)


def _order_stat(counts: np.ndarray, width: float, k: int) -> float:
    """Estimate of the k-th smallest (0-based) of the values histogrammed in `counts` (bins of
    `width` from 0): the values of a bin are taken as evenly spread over it, so the estimate lies
    in the same bin as the true value."""
    cum = np.cumsum(counts)
    j = min(int(np.searchsorted(cum, k + 1, side="left")), counts.size - 1)
    r = k - (int(cum[j]) - int(counts[j]))  # rank inside bin j
    return (j + (r + 0.5) / max(int(counts[j]), 1)) * width


class PercentileObserver(_HistogramObserver):
    """The `percentile`-th percentile as hi and the (100 - percentile)-th as lo; with
    `symmetric`, (-t, t) for t the `percentile`-th percentile of |x|. Percentiles follow
    np.percentile's default ("linear": position p/100 * (n - 1) between order statistics), with
    each order statistic read off the histogram, so the result is within one bin width
    (R / num_bins) of np.percentile on the same data."""

    method = "percentile"

    def __init__(self, percentile=99.99, *, num_bins=2048, symmetric=False):
        super().__init__(num_bins=num_bins, symmetric=symmetric)
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
    """The threshold t minimizing the squared error of `bits`-bit quantization: symmetric
    (2^(bits-1) - 1 levels per side) for signed data, unsigned (2^bits - 1 levels over [0, t])
    when no negative value was seen. Candidates are the bin edges (num_bins of them)."""

    method = "mse"

    def __init__(self, bits=8, *, num_bins=2048, symmetric=False):
        super().__init__(num_bins=num_bins, symmetric=symmetric)
        self.bits = as_int(bits, "bits", 2, 16)

    def levels(self) -> int:
        if self.neg.sum() == 0 and not self.symmetric:
            return (1 << self.bits) - 1
        return (1 << (self.bits - 1)) - 1

    def range(self) -> tuple[float, float]:
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
    """TensorRT's entropy (KL-divergence) calibration; see the module docstring. With bits=8:
    2048 bins, candidates from bin 128 to 2048, 128 quantized levels (2^(bits-1))."""

    method = "entropy"

    def __init__(self, bits=8, *, num_bins=2048, start_bin=128, symmetric=False):
        super().__init__(num_bins=num_bins, symmetric=symmetric)
        self.bits = as_int(bits, "bits", 2, 16)
        self.start_bin = as_int(start_bin, "start_bin", 1, self.num_bins)
        if self.start_bin < (1 << (self.bits - 1)):
            raise ValueError(f"start_bin must be >= the number of levels 2^(bits-1) = "
                             f"{1 << (self.bits - 1)}, got {self.start_bin}")

    def range(self) -> tuple[float, float]:
        self._check_seen()
        if self.bound == 0.0:
            return self._clip(0.0)
        counts, _ = self.histogram()
        div = kl_divergences(counts, 1 << (self.bits - 1), self.start_bin)
        i = self.start_bin + int(np.argmin(div))
        self.divergences = div
        return self._clip(i * self.bin_width)


def observer(method="minmax", **kwargs) -> Observer:
    """A new observer for `method` ("minmax", "percentile", "mse", "entropy"); keyword arguments go
    to its constructor (percentile=, bits=, num_bins=, start_bin=, symmetric=)."""
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
    """The range (lo, hi) to quantize `x` over, by `method`: "minmax", "percentile", "mse" or
    "entropy" (see the lowbit.calibrate module docstring). `percentile` is for "percentile", `bits`
    for "mse" and "entropy", `num_bins` for all but "minmax". With symmetric=True the range is
    (-t, t), else it does not reach past the data's min and max."""
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
    """(scale, zero_point) of asymmetric unsigned `bits`-bit quantization over [lo, hi]: the
    parameters lowbit.quantize(x, symmetric=False) computes for a float32 tensor whose min is lo
    and max is hi (lowbit.quant.qparams, the one rule: ONNX DynamicQuantizeLinear's, the range
    widened to include 0, in float32; a constant range v gets scale |v|, 1 for v == 0). lo and
    hi are rounded to float32 first. ValueError if they are not finite in float32 or lo > hi."""
    bits = as_int(bits, "bits", 2, 8)
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    try:
        scale, zp = qparams(lo, hi, bits=bits, symmetric=False)
    except ValueError:
        raise ValueError(f"the range must be finite in float32 with lo <= hi, got ({lo}, {hi})") from None
    return float(scale), int(zp)
