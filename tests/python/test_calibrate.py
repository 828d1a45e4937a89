"""Calibration observers against brute-force numpy computations."""
import importlib
from collections import Counter

import numpy as np
import pytest

import lowbit
cal = importlib.import_module("lowbit.observers")  # the observers module (lowbit.calibrate is a function)


def _data(seed=0, n=20000, kind="normal"):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "t":
        return rng.standard_t(3, n).astype(np.float32)
    if kind == "relu":
        return np.maximum(rng.standard_normal(n), 0).astype(np.float32)
    raise AssertionError(kind)


# ---------------------------------------------------------------- brute-force references

def brute_entropy_threshold(x, num_bins=2048, start=128, levels=128):
    """TensorRT's algorithm written out bin by bin, the way the GTC 2017 slides and NVIDIA's
    pytorch-quantization (linspace + digitize + Counter) spell it."""
    mag = np.abs(np.asarray(x, np.float64))
    hist, edges = np.histogram(mag, bins=num_bins, range=(0.0, mag.max()))
    bins = hist.astype(np.float64)
    best, best_i = np.inf, None
    for i in range(start, num_bins + 1):
        p = bins[:i].copy()
        p[i - 1] += bins[i:].sum()
        space = np.linspace(0, i, num=levels + 1)
        dig = np.digitize(np.arange(i), space) - 1
        dig[bins[:i] == 0] = -1
        dens = np.zeros(levels)
        for j, d in enumerate(dig):
            if d != -1:
                dens[d] += bins[j]
        for key, val in Counter(dig).items():
            if key != -1:
                dens[key] /= val
        q = np.array([dens[d] if d != -1 else 0.0 for d in dig])
        p /= p.sum()
        q /= q.sum()
        kl = 0.0
        for pj, qj in zip(p, q):
            if pj > 0:
                kl = np.inf if qj == 0 else kl + pj * np.log(pj / qj)
        if kl < best:
            best, best_i = kl, i
    return best_i * (edges[1] - edges[0]) if best_i else None, edges


def brute_mse_threshold(x, bits, num_bins=2048, unsigned=False):
    mag = np.abs(np.asarray(x, np.float64))
    hist, edges = np.histogram(mag, bins=num_bins, range=(0.0, mag.max()))
    centres = (edges[:-1] + edges[1:]) / 2
    levels = (1 << bits) - 1 if unsigned else (1 << (bits - 1)) - 1
    best, best_t = np.inf, None
    for t in edges[1:]:
        s = t / levels
        err = 0.0
        for c, n in zip(centres, hist):
            if n:
                q = min(np.round(c / s), levels) * s
                err += n * (c - q) ** 2
        if err < best:
            best, best_t = err, t
    return best_t


def fake_quant_mse(x, t, levels):
    s = t / levels
    q = np.clip(np.round(x / s), -levels, levels) * s
    return float(np.mean((x - q) ** 2))


# ---------------------------------------------------------------- minmax

def test_minmax_matches_numpy_and_streams():
    x = _data(1)
    assert lowbit.calibrate(x, "minmax") == (float(x.min()), float(x.max()))
    obs = cal.MinMaxObserver()
    for chunk in np.array_split(x, 7):
        obs.observe(chunk)
    assert obs.range() == (float(x.min()), float(x.max()))
    a = float(np.abs(x).max())
    assert lowbit.calibrate(x, "minmax", symmetric=True) == (-a, a)
    assert obs.count == x.size


def test_minmax_multidim_and_float64():
    x = np.random.default_rng(2).standard_normal((4, 5, 6))
    lo, hi = lowbit.calibrate(x)
    assert lo == float(np.float32(x).min()) and hi == float(np.float32(x).max())


# ---------------------------------------------------------------- percentile

@pytest.mark.parametrize("kind", ["normal", "t", "relu"])
@pytest.mark.parametrize("p", [99.0, 99.9, 99.99])
def test_percentile_within_one_bin_of_numpy(kind, p):
    x = _data(3, 50000, kind)
    width = float(np.abs(x).max()) / 2048
    lo, hi = lowbit.calibrate(x, "percentile", percentile=p)
    assert abs(hi - np.percentile(x, p)) <= width * 1.01
    assert abs(lo - np.percentile(x, 100 - p)) <= width * 1.01
    lo, hi = lowbit.calibrate(x, "percentile", percentile=p, symmetric=True)
    assert lo == -hi
    assert abs(hi - np.percentile(np.abs(x), p)) <= width * 1.01


def test_percentile_100_is_minmax():
    x = _data(4)
    lo, hi = lowbit.calibrate(x, "percentile", percentile=100)
    assert hi == pytest.approx(x.max(), abs=1e-6) and lo == pytest.approx(x.min(), abs=1e-6)


# ---------------------------------------------------------------- entropy (TensorRT)

@pytest.mark.parametrize("kind,seed", [("normal", 0), ("t", 1), ("relu", 2)])
def test_entropy_matches_brute_force_tensorrt(kind, seed):
    x = _data(seed, 20000, kind)
    want, _ = brute_entropy_threshold(x)
    lo, hi = lowbit.calibrate(x, "entropy", symmetric=True)
    assert hi == pytest.approx(want, rel=1e-12)
    assert lo == -hi
    # asymmetric: the same threshold, intersected with the data's range
    lo2, hi2 = lowbit.calibrate(x, "entropy")
    assert hi2 == min(float(x.max()), want) and lo2 == max(float(x.min()), -want)


def test_entropy_small_histogram_matches_brute_force():
    # few bins and sparse data exercise the empty-bin and infinite-divergence rules
    x = np.random.default_rng(5).standard_t(2, 3000).astype(np.float32)
    want, _ = brute_entropy_threshold(x, num_bins=256, start=16, levels=16)
    lo, hi = cal.EntropyObserver(bits=5, num_bins=256, start_bin=16,
                                 symmetric=True).observe(x).range()
    assert hi == pytest.approx(want, rel=1e-12)


def test_entropy_clips_heavy_tails():
    x = _data(6, 50000, "t")
    lo, hi = lowbit.calibrate(x, "entropy", symmetric=True)
    assert hi < float(np.abs(x).max()) / 2  # outliers are clipped


def test_kl_divergences_is_the_brute_force_minimum():
    x = _data(7, 5000)
    obs = cal.EntropyObserver().observe(x)
    counts, _ = obs.histogram()
    div = cal.kl_divergences(counts)
    assert div.shape == (2048 - 128 + 1,)
    assert np.isfinite(div[-1])  # i = 2048: nothing clipped, always finite
    assert (np.abs(x).max() / 2048) * (128 + np.argmin(div)) == pytest.approx(obs.range()[1])


# ---------------------------------------------------------------- MSE

@pytest.mark.parametrize("kind,bits", [("normal", 4), ("t", 4), ("relu", 4), ("t", 8)])
def test_mse_matches_brute_force(kind, bits):
    x = _data(8, 5000, kind)
    unsigned = kind == "relu"
    want = brute_mse_threshold(x, bits, num_bins=256, unsigned=unsigned)
    obs = cal.MSEObserver(bits, num_bins=256, symmetric=not unsigned).observe(x)
    lo, hi = obs.range()
    assert hi == pytest.approx(want, rel=1e-12)


def test_mse_is_near_optimal_on_raw_data():
    x = _data(9, 20000, "t").astype(np.float64)
    lo, hi = lowbit.calibrate(x.astype(np.float32), "mse", bits=4, symmetric=True)
    grid = np.linspace(0.05, 1, 400) * np.abs(x).max()
    errs = [fake_quant_mse(x, t, 7) for t in grid]
    best = min(errs)
    assert fake_quant_mse(x, hi, 7) <= best * 1.02
    assert fake_quant_mse(x, hi, 7) < fake_quant_mse(x, np.abs(x).max(), 7) / 2


# ---------------------------------------------------------------- streams

@pytest.mark.parametrize("method", ["percentile", "mse", "entropy"])
def test_stream_with_max_first_equals_single_array(method):
    x = _data(10, 20000, "t")
    i = int(np.argmax(np.abs(x)))
    x = np.concatenate([x[i:i + 1], np.delete(x, i)])
    whole = lowbit.calibrate(x, method)
    obs = cal.observer(method)
    for chunk in np.array_split(x, 5):
        obs.observe(chunk)
    assert obs.range() == pytest.approx(whole, rel=1e-12, abs=1e-12)


def test_stream_growth_merges_bins_exactly():
    rng = np.random.default_rng(11)
    batches = [rng.standard_normal(1000).astype(np.float32) * s for s in (0.1, 1.0, 3.0, 0.5)]
    obs = cal.EntropyObserver()
    for b in batches:
        obs.observe(b)
    first = float(np.abs(batches[0]).max())
    allx = np.abs(np.concatenate(batches)).astype(np.float64)
    assert obs.bound >= allx.max() and obs.bound < 2 * allx.max()
    assert obs.bound / first == 2 ** round(np.log2(obs.bound / first))
    counts, edges = obs.histogram()
    assert counts.sum() == allx.size
    # Each value lands in the bin its magnitude belongs to, up to values on a bin edge.
    want, _ = np.histogram(allx, bins=2048, range=(0.0, obs.bound))
    assert np.abs(np.cumsum(counts) - np.cumsum(want)).max() <= 2


def test_zero_data_and_zeros_first():
    assert lowbit.calibrate(np.zeros(10, np.float32), "entropy") == (0.0, 0.0)
    assert lowbit.calibrate(np.zeros(10, np.float32), "mse") == (0.0, 0.0)
    obs = cal.PercentileObserver(100).observe(np.zeros(5, np.float32)).observe(np.ones(5, np.float32))
    assert obs.range() == pytest.approx((0.0, 1.0))


def test_range_to_qparams_is_onnx_dynamic():
    s, z = cal.range_to_qparams(-1.0, 3.0)
    assert (s, z) == (float(np.float32(4) / np.float32(255)), 64)  # float32, rne(63.75)
    assert cal.range_to_qparams(0.0, 0.0) == (1.0, 0)
    # exactly what lowbit.quantize computes for a tensor with that range (tests/python/test_qparams.py
    # checks 20,000 ranges)
    x = np.array([-0.3, 0.2, 1.7], np.float32)
    q = lowbit.quantize(x, symmetric=False, bits=5)
    assert cal.range_to_qparams(float(x.min()), float(x.max()), bits=5) == (float(q.scale), int(q.zero_point))


def test_a_threshold_below_all_the_data_gives_the_datas_side_of_it():
    # entropy/mse thresholds can fall below every |x| of one-signed data: the intersection with
    # the data's range is then empty, and the range is [0, t] (or [-t, 0]), never lo > hi
    for method, cls in (("mse", cal.MSEObserver), ("entropy", cal.EntropyObserver)):
        obs = cls()
        obs.min, obs.max = 5.0, 50.0
        assert obs._clip(3.0) == (0.0, 3.0)
        obs.min, obs.max = -50.0, -5.0
        assert obs._clip(3.0) == (-3.0, 0.0)
        obs.min, obs.max = -1.0, 50.0
        assert obs._clip(3.0) == (-1.0, 3.0)
    for lo, hi in ((0.0, 3.0), (-3.0, 0.0)):
        cal.range_to_qparams(lo, hi)  # valid ranges


# ---------------------------------------------------------------- bad input

def test_bad_inputs():
    with pytest.raises(ValueError, match="method"):
        lowbit.calibrate(np.ones(3, np.float32), "kmeans")
    with pytest.raises(TypeError, match="method"):
        lowbit.calibrate(np.ones(3, np.float32), 3)
    with pytest.raises(TypeError, match="x"):
        lowbit.calibrate(np.ones(3, np.int32))
    with pytest.raises(ValueError, match="non-finite"):
        lowbit.calibrate(np.array([1.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="empty"):
        lowbit.calibrate(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="percentile"):
        lowbit.calibrate(np.ones(3, np.float32), "percentile", percentile=101)
    with pytest.raises(ValueError, match="no data"):
        cal.MinMaxObserver().range()
    with pytest.raises(TypeError, match="percentile"):
        cal.observer("minmax", percentile=99)
    with pytest.raises(ValueError, match="start_bin"):
        cal.EntropyObserver(bits=8, start_bin=64)


def test_inputs_not_modified():
    x = _data(12)
    before = x.copy()
    for m in cal.METHODS:
        lowbit.calibrate(x, m)
    np.testing.assert_array_equal(x, before)


# --- merge: per-shard observers reduce exactly to the single array's statistics ------------------

MERGE_METHODS = ["minmax", "percentile", "mse", "entropy"]


@pytest.mark.parametrize("method", MERGE_METHODS)
@pytest.mark.parametrize("symmetric", [False, True])
def test_merged_shards_equal_single_array_bit_for_bit(method, symmetric):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(50_000) * rng.uniform(0.01, 5.0, 50_000)).astype(np.float32)
    single = lowbit.observer(method, symmetric=symmetric).observe(x)
    kw = {"symmetric": symmetric}
    if method != "minmax":
        kw["bound"] = float(np.max(np.abs(x)))  # the first pass: merged min-max observers
    shards = [lowbit.observer(method, **kw).observe(s) for s in np.array_split(x, 9)]
    merged = lowbit.observer(method, **kw)
    for o in shards[::-1]:  # any order
        merged.merge(o)
    assert (merged.count, merged.min, merged.max) == (single.count, single.min, single.max)
    if method != "minmax":
        assert merged.bound == single.bound
        assert np.array_equal(merged.pos, single.pos) and np.array_equal(merged.neg, single.neg)
    assert merged.range() == single.range() == lowbit.calibrate(x, method, symmetric=symmetric)


def test_merge_does_not_change_other_and_chains():
    a = lowbit.PercentileObserver(bound=4.0).observe(np.float32([1.0, -2.0]))
    b = lowbit.PercentileObserver(bound=4.0).observe(np.float32([3.5]))
    before = (b.count, b.pos.copy(), b.neg.copy())
    assert a.merge(b).merge(lowbit.PercentileObserver(bound=4.0)) is a
    assert (b.count, list(b.pos), list(b.neg)) == (before[0], list(before[1]), list(before[2]))
    assert a.count == 3 and a.min == -2.0 and a.max == 3.5


def test_zeros_only_observer_merges_into_any_range():
    z = lowbit.MSEObserver().observe(np.zeros(5, np.float32))
    x = np.float32([0.0, 1.0, -3.0])
    m = lowbit.MSEObserver().observe(x).merge(z)
    ref = lowbit.MSEObserver().observe(np.concatenate([x, np.zeros(5, np.float32)]))
    assert np.array_equal(m.pos, ref.pos) and m.range() == ref.range()
    z2 = lowbit.MSEObserver().observe(np.zeros(5, np.float32)).merge(lowbit.MSEObserver().observe(x))
    assert np.array_equal(z2.pos, ref.pos) and z2.range() == ref.range()


def test_merges_that_cannot_be_exact_are_refused():
    x = np.float32([1.0, -2.0, 3.0])
    with pytest.raises(TypeError, match="other"):
        lowbit.MinMaxObserver().merge(x)
    with pytest.raises(ValueError, match="other"):
        lowbit.MinMaxObserver().merge(lowbit.PercentileObserver())
    with pytest.raises(ValueError, match="symmetric"):
        lowbit.MinMaxObserver().merge(lowbit.MinMaxObserver(symmetric=True))
    with pytest.raises(ValueError, match="num_bins"):
        lowbit.PercentileObserver().merge(lowbit.PercentileObserver(num_bins=1024))
    with pytest.raises(ValueError, match="bits"):
        lowbit.MSEObserver(bits=8).merge(lowbit.MSEObserver(bits=4))
    with pytest.raises(ValueError, match="start_bin"):
        lowbit.EntropyObserver().merge(lowbit.EntropyObserver(start_bin=256))
    with pytest.raises(ValueError, match="percentile"):
        lowbit.PercentileObserver(99.0).merge(lowbit.PercentileObserver(99.9))
    with pytest.raises(ValueError, match="bound"):
        lowbit.MSEObserver(bound=4.0).merge(lowbit.MSEObserver(bound=8.0))
    # histograms over different [0, R] (even R and 2R: the pairwise merge is not the direct histogram)
    a, b = lowbit.MSEObserver().observe(x), lowbit.MSEObserver().observe(2 * x)
    with pytest.raises(ValueError, match="other"):
        a.merge(b)
    assert a.count == 3  # a refused merge changes nothing


def test_fixed_bound():
    o = lowbit.EntropyObserver(bound=2.0)
    with pytest.raises(ValueError, match="bound"):
        o.observe(np.float32([1.0, 2.5]))
    assert o.count == 0 and o.pos.sum() == 0  # the refused batch left no trace
    with pytest.raises(TypeError, match="bound"):
        lowbit.MSEObserver(bound="2")
    with pytest.raises(ValueError, match="bound"):
        lowbit.MSEObserver(bound=-1.0)
    with pytest.raises(ValueError, match="bound"):
        lowbit.MSEObserver(bound=float("inf"))
    assert lowbit.observer("percentile", bound=3.0).bound == 3.0
