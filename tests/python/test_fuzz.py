"""Random arguments thrown at the public functions: the only outcomes allowed are a result or a
TypeError/ValueError (never a crash, a hang, or another exception)."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lowbit

ALLOWED = (TypeError, ValueError)
dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.int8, np.uint8, np.int32, np.bool_])
special = st.sampled_from([0.0, -0.0, 1e-45, 1e38, -3e38, np.nan, np.inf, -np.inf, 0.5, 1.5])


@st.composite
def arrays(draw, max_dims=3, max_side=7):
    dtype = draw(dtypes)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side))
    a = draw(hnp.arrays(dtype, shape))
    if a.dtype.kind == "f" and a.size and draw(st.booleans()):
        a.flat[draw(st.integers(0, a.size - 1))] = draw(special)
    if a.ndim and draw(st.booleans()):  # a strided or reversed view
        step = draw(st.sampled_from([-1, 2, -2]))
        a = a[::step]
    return a


def call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ALLOWED:
        return None


# LOWBIT_FUZZ_EXAMPLES=100000 for a long run (README, "Fuzzing").
common = settings(max_examples=int(os.environ.get("LOWBIT_FUZZ_EXAMPLES", "150")), deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])


@common
@given(x=arrays(), bits=st.integers(-1, 10), axis=st.one_of(st.none(), st.integers(-4, 4)),
       symmetric=st.booleans(), scale=st.one_of(st.none(), st.floats(allow_nan=True), st.just(1.0)))
def test_quantize_never_crashes(x, bits, axis, symmetric, scale):
    before = x.copy()
    q = call(lowbit.quantize, x, bits=bits, axis=axis, symmetric=symmetric, scale=scale)
    np.testing.assert_array_equal(x, before)  # never modified
    if q is not None:
        d = q.dequantize()
        assert d.shape == x.shape and d.dtype == np.float32
        assert q.int_repr().shape == x.shape


@common
@given(a=arrays(max_dims=3, max_side=6), b=arrays(max_dims=3, max_side=6),
       za=st.one_of(st.integers(-300, 300), st.floats(allow_nan=True)), zb=st.integers(-300, 300))
def test_matmul_int8_never_crashes(a, b, za, zb):
    c = call(lowbit.matmul_int8, a, b, a_zero_point=za, b_zero_point=zb)
    if c is not None:
        want = (a.astype(np.int64) - za) @ (b.astype(np.int64) - zb)
        np.testing.assert_array_equal(c, want)


@common
@example(w=np.array([[1.7014118e38, 0]], np.float32), x=np.array([2, 0], np.float32), bits=2)
@given(w=arrays(max_dims=3, max_side=6), x=arrays(max_dims=3, max_side=6), bits=st.integers(1, 9))
def test_quantized_linear_never_crashes(w, x, bits):
    layer = call(lowbit.QuantizedLinear, w, bits=bits)
    if layer is not None:
        y = call(layer, x)
        if y is not None:
            assert y.shape == x.shape[:-1] + (layer.out_features,)
            # The float64 product of the inputs, and how far quantizing both operands can move
            # it: each term x_k w_k by at most max|x| max|w| (a generous bound). Where even the
            # farthest value fits float32 the output must be finite and within that distance;
            # elsewhere inf is right (2 * 2^127 = 2^128 overflows float32, as numpy's does).
            with np.errstate(over="ignore", invalid="ignore"):
                w64 = np.asarray(w, np.float32).astype(np.float64)
                x64 = np.asarray(x, np.float32).astype(np.float64)
                ref = x64 @ w64.T
                bound = x64.shape[-1] * np.max(np.abs(x64), initial=0) * np.max(np.abs(w64), initial=0)
                fits = np.abs(ref) + bound < np.finfo(np.float32).max
            assert np.all(np.isfinite(y[fits]))
            assert np.all(np.abs(y[fits] - ref[fits]) <= bound * (1 + 1e-6) + 1e-38)


@common
@given(codes=arrays(max_dims=2), scale=st.one_of(st.floats(allow_nan=True), st.lists(st.floats(), max_size=3)),
       zp=st.one_of(st.integers(-300, 300), st.floats()), bits=st.integers(0, 9),
       axis=st.one_of(st.none(), st.integers(-2, 2)))
def test_from_codes_never_crashes(codes, scale, zp, bits, axis):
    q = call(lowbit.QTensor.from_codes, codes, scale, zp, axis=axis, bits=bits)
    if q is not None:
        assert q.dequantize().shape == codes.shape


@pytest.mark.parametrize("bad", [None, "text", [[1, 2], [3]], object(), {"a": 1}])
def test_non_arrays_raise_type_error(bad):
    for fn in (lambda v: lowbit.quantize(v), lambda v: lowbit.matmul_int8(v, np.zeros((1, 1), np.int8)),
               lambda v: lowbit.QuantizedLinear(v), lambda v: lowbit.sqnr(v, v)):
        with pytest.raises(ALLOWED):
            fn(bad)


# --- the rest of the public functions that take arrays ---------------------------------------
small = st.integers(-2, 40)
ints = st.one_of(small, st.just(2**40), st.floats(allow_nan=True), st.none(), st.text(max_size=3))


@common
@given(x=arrays(max_dims=2, max_side=9), k=ints, dim=st.one_of(st.integers(-1, 5), st.none()),
       init=st.sampled_from(["kmeans++", "linear", "random", "bogus", 3]), iters=st.integers(-1, 4))
def test_kmeans_and_codebooks_never_crash(x, k, dim, init, iters):
    cb = call(lowbit.kmeans, x, k, dim=dim, init=init, iters=iters)
    if cb is not None:
        assert cb.decode().shape == x.shape
        w = call(lowbit.CodebookLinear.from_codebook, cb)
        if w is not None:
            assert call(w, np.ones((2, w.in_features), np.float32)).shape == (2, w.out_features)


@common
@given(w=arrays(max_dims=2, max_side=9), x=arrays(max_dims=3, max_side=9), k=ints,
       dim=st.integers(-1, 4), act=st.sampled_from(["int8", "int16", "int4", None]))
def test_codebook_linear_never_crashes(w, x, k, dim, act):
    layer = call(lowbit.CodebookLinear, w, None, k=k, dim=dim, activations=act, iters=3)
    if layer is not None:
        y = call(layer, x)
        assert y is None or y.shape == x.shape[:-1] + (layer.out_features,)


@common
@given(x=arrays(max_dims=2, max_side=12), m=st.integers(-1, 5), bits=st.integers(-1, 10))
def test_product_quantize_never_crashes(x, m, bits):
    pq = call(lowbit.product_quantize, x, m, bits=bits, iters=2)
    if pq is not None:
        assert pq.decode().shape == x.shape


@common
@given(x=arrays(), y=arrays(), bits=st.integers(-1, 10), method=st.sampled_from(
    ["minmax", "percentile", "mse", "entropy", "mu-law", "tanh", "bogus"]))
def test_calibration_and_nonlinear_quantizers_never_crash(x, y, bits, method):
    call(lowbit.calibrate, x, method, bits=bits)
    call(lowbit.sqnr, x, y)
    call(lowbit.quantize_pow2, x, bits=bits)
    call(lowbit.compand, x, method=method, bits=bits)
    call(lowbit.binarize, x)
    call(lowbit.prune_magnitude, x, 0.5)
    call(lowbit.low_rank, x, 1)
    obs = call(lowbit.observer, method, bits=bits) if method in ("percentile", "mse", "entropy") else None
    if obs is not None:
        call(obs.observe, x)


@common
@given(data=st.binary(max_size=300), flips=st.lists(st.integers(0, 10**6), max_size=4))
def test_loaders_refuse_random_and_corrupt_bytes(tmp_path_factory, data, flips):
    d = tmp_path_factory.mktemp("fuzz")
    # A valid file with a few bytes flipped, and pure random bytes: each loads or raises ValueError.
    good = d / "good.lbit"
    lowbit.save(lowbit.quantize(np.arange(12, dtype=np.float32).reshape(3, 4)), good)
    blob = bytearray(good.read_bytes())
    for f in flips:
        blob[f % len(blob)] ^= 0xFF
    for raw in (bytes(blob), data):
        p = d / "x.lbit"
        p.write_bytes(raw)
        call(lowbit.load, p)
        call(lowbit.load_model, p)
