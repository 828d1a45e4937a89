"""Power-of-two and companding quantization against brute-force numpy computations."""
import math

import numpy as np
import pytest

import lowbit
from lowbit import nonlinear as nl


def _w(kind="normal", shape=(64, 48), seed=0):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.standard_normal(shape).astype(np.float32)
    return rng.standard_t(3, shape).astype(np.float32)


# ------------------------------------------------------------------ power of two

def brute_pow2(x, bits):
    """Nearest of {0} U {+-2^e : e_max-kmax+1 <= e <= e_max} (ties away from zero), e_max the
    power of two nearest max|x|."""
    kmax = (1 << (bits - 1)) - 1
    amax = float(np.abs(x).max())
    cand_e = np.arange(-200, 200)
    # ties (amax = 1.5 * 2^e) go up: prefer the larger exponent
    d = np.abs(2.0 ** cand_e - amax)
    e_max = int(cand_e[np.flatnonzero(d == d.min()).max()])
    levels = np.concatenate([[0.0], 2.0 ** np.arange(e_max - kmax + 1, e_max + 1)])
    out = np.empty(x.size)
    for i, v in enumerate(np.abs(x.astype(np.float64)).ravel()):
        dist = np.abs(levels - v)
        out[i] = levels[np.flatnonzero(dist == dist.min()).max()]
    return (np.sign(x.ravel()) * out).reshape(x.shape)


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
@pytest.mark.parametrize("kind", ["normal", "t"])
def test_pow2_matches_brute_force(bits, kind):
    x = _w(kind, (40, 30), seed=bits)
    q = nl.quantize_pow2(x, bits=bits)
    np.testing.assert_array_equal(q.dequantize(), brute_pow2(x, bits).astype(np.float32))
    c = q.int_repr()
    assert c.dtype == np.int8 and np.abs(c.astype(int)).max() <= (1 << (bits - 1)) - 1


def test_pow2_values_are_powers_of_two_and_per_channel():
    x = _w("t", (16, 50), 1) * np.logspace(-3, 2, 16, dtype=np.float32)[:, None]
    q = nl.quantize_pow2(x, bits=4, axis=0)
    d = q.dequantize().astype(np.float64)
    nz = d != 0
    m, _ = np.frexp(np.abs(d[nz]))
    assert np.all(m == 0.5)
    for r in range(16):  # each row quantized on its own equals per-tensor on that row
        np.testing.assert_array_equal(d[r], nl.quantize_pow2(x[r], bits=4).dequantize())
    assert q.e_max.shape == (16,)
    assert q.nbytes == 16 * 50 // 2 + 16 * 4


def test_pow2_exact_values_and_ties():
    x = np.array([0.0, 1.0, -0.5, 0.25, 1.5, 0.75, 0.1, -3.0], np.float32)
    q = nl.quantize_pow2(x, bits=3)
    d = q.dequantize()
    # max 3.0 is a tie between 2 and 4 and rounds up: e_max = 2, so the magnitudes are 4, 2, 1;
    # 1.5 ties up to 2, 0.75 up to 1, -0.5 (half of the smallest) up to -1, 0.25 and 0.1 to 0
    np.testing.assert_array_equal(d, [0, 1, -1, 0, 2, 1, 0, -4])


def test_shift_matmul_is_exact():
    rng = np.random.default_rng(3)
    w = nl.quantize_pow2(_w("t", (12, 40), 3), bits=5, axis=0)
    a = rng.integers(-128, 128, (7, 40)).astype(np.int8)
    acc, e = nl.shift_matmul(a, w)
    want = a.astype(np.float64) @ w.dequantize().astype(np.float64).T
    np.testing.assert_array_equal(np.ldexp(acc.astype(np.float64), e), want)
    a2 = rng.integers(0, 256, (3, 40)).astype(np.uint8)
    acc2, e2 = nl.shift_matmul(a2, w)
    np.testing.assert_array_equal(np.ldexp(acc2.astype(np.float64), e2),
                                  a2.astype(np.float64) @ w.dequantize().astype(np.float64).T)


def test_shift_matmul_rejects_overflow_and_bad_args():
    w = nl.quantize_pow2(_w("t", (4, 8), 4), bits=8)
    with pytest.raises(ValueError, match="overflow"):
        nl.shift_matmul(np.full((1, 8), 2**60, np.int64), w)
    with pytest.raises(TypeError, match="a must be an integer"):
        nl.shift_matmul(np.ones((1, 8), np.float32), w)
    with pytest.raises(ValueError, match="same K"):
        nl.shift_matmul(np.ones((1, 9), np.int8), w)
    with pytest.raises(TypeError, match="Pow2Tensor"):
        nl.shift_matmul(np.ones((1, 8), np.int8), np.ones((4, 8)))


def test_pow2_from_codes_round_trip_and_zero():
    q = nl.quantize_pow2(_w(), bits=4, axis=0)
    q2 = nl.Pow2Tensor.from_codes(q.int_repr(), q.e_max, bits=4, axis=0)
    np.testing.assert_array_equal(q.dequantize(), q2.dequantize())
    z = nl.quantize_pow2(np.zeros((3, 3), np.float32))
    np.testing.assert_array_equal(z.dequantize(), 0)
    with pytest.raises(ValueError, match="codes"):
        nl.Pow2Tensor.from_codes(np.array([9], np.int8), 0, bits=4)


# ------------------------------------------------------------------ companding

def brute_codes(x, method, bits, p, axis=None):
    x = x.astype(np.float64)
    xmax = np.abs(x).max() if axis is None else np.abs(x).max(axis=1, keepdims=True)
    v = x / xmax
    L = 2 ** (bits - 1) - 1
    if method == "mu-law":
        c = np.sign(v) * np.log(1 + p * np.abs(v)) / np.log(1 + p) * L
    elif method == "tanh":
        c = np.tanh(p * v) / np.tanh(p) * L
    else:
        s = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
        c = (s(p * v) - s(-p)) / (s(p) - s(-p)) * (2 ** bits - 1)
    return np.round(c)  # numpy rounds half to even


@pytest.mark.parametrize("method,p", [("mu-law", 255.0), ("mu-law", 15.0), ("tanh", 2.0),
                                      ("sigmoid", 4.0)])
@pytest.mark.parametrize("bits", [3, 4, 8])
def test_compand_codes_match_formula(method, p, bits):
    x = _w("t", (10, 64), bits)
    kw = {"mu": p} if method == "mu-law" else {"alpha": p}
    q = nl.compand(x, method=method, bits=bits, axis=0, **kw)
    np.testing.assert_array_equal(q.int_repr().astype(np.float64),
                                  brute_codes(x, method, bits, p, axis=0))
    # dequantize -> re-compand gives back the same codes (the expander inverts the compressor)
    d = q.dequantize()
    q2 = nl.compand(d, method=method, bits=bits, axis=0, **kw)
    np.testing.assert_array_equal(q2.int_repr(), q.int_repr())


def test_compand_exact_points():
    x = np.array([-2.0, 0.0, 0.5, 2.0], np.float32)
    for m in ("mu-law", "tanh"):
        d = nl.compand(x, method=m, bits=8).dequantize()
        assert d[1] == 0.0
        assert d[0] == pytest.approx(-2.0, rel=1e-6) and d[3] == pytest.approx(2.0, rel=1e-6)
    d = nl.compand(x, method="sigmoid", bits=8).dequantize()
    assert d[0] == pytest.approx(-2.0, rel=1e-6) and d[3] == pytest.approx(2.0, rel=1e-6)
    assert np.all(nl.compand(np.zeros(4, np.float32)).dequantize() == 0)


def test_compand_sizes_and_bad_args():
    x = _w("normal", (8, 16))
    assert nl.compand(x, bits=4).nbytes == 8 * 16 // 2 + 4
    assert nl.compand(x, bits=8, axis=0).nbytes == 8 * 16 + 8 * 4
    with pytest.raises(ValueError, match="method"):
        nl.compand(x, method="a-law")
    with pytest.raises(ValueError, match="mu"):
        nl.compand(x, mu=-1)
    with pytest.raises(TypeError, match="alpha"):
        nl.compand(x, method="tanh", alpha="big")
    with pytest.raises(ValueError, match="non-finite"):
        nl.compand(np.array([np.inf], np.float32))
    with pytest.raises(TypeError, match="x"):
        nl.quantize_pow2(np.ones(3, np.int32))


def test_sqnr_comparison_gaussian_vs_heavy_tailed():
    g = _w("normal", (256, 256), 0)
    t = _w("t", (256, 256), 0)
    rg = nl.compare_sqnr(g, bits=8, axis=0)
    rt = nl.compare_sqnr(t, bits=8, axis=0)
    assert rg["linear"] > rg["mu-law"]  # uniform levels suit the Gaussian at 8 bits
    assert rt["mu-law"] > rt["linear"]  # companding wins on heavy tails
    r3 = nl.compare_sqnr(t, bits=3, axis=0)
    assert r3["pow2"] > r3["linear"]  # and log codes at very few bits
    for r in (rg, rt, r3):
        assert set(r) == {"linear", "pow2", "mu-law", "tanh", "sigmoid"}
        assert all(math.isfinite(v) for v in r.values())


def test_inputs_not_modified():
    x = _w("t")
    before = x.copy()
    nl.quantize_pow2(x, bits=4, axis=1)
    for m in nl.COMPANDERS:
        nl.compand(x, method=m, bits=4, axis=1)
    np.testing.assert_array_equal(x, before)
    assert lowbit.sqnr(x, nl.dequantize(nl.compand(x))) > 20
