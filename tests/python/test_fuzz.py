"""Random arguments thrown at the public functions: the only outcomes allowed are a result or a
TypeError/ValueError (never a crash, a hang, or another exception)."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
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
@given(w=arrays(max_dims=3, max_side=6), x=arrays(max_dims=3, max_side=6), bits=st.integers(1, 9))
def test_quantized_linear_never_crashes(w, x, bits):
    layer = call(lowbit.QuantizedLinear, w, bits=bits)
    if layer is not None:
        y = call(layer, x)
        if y is not None:
            assert y.shape == x.shape[:-1] + (layer.out_features,)
            assert np.all(np.isfinite(y))


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
