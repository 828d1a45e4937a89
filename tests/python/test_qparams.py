"""The one rule for quantization parameters (csrc/include/lowbit/quant.h, `choose_params`) and
everything that must follow it bit for bit: lowbit.quantize, lowbit.quant.qparams,
lowbit.observers.range_to_qparams, and lowbit.nn's fake quantization (= quantize, then
dequantize). The oracle here is an independent numpy transcription of the documented rule."""
import importlib

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lowbit
from lowbit import nn
from conftest import ISAS, using_isa

observers = importlib.import_module("lowbit.observers")
F32 = np.float32
TINY = float(np.finfo(np.float32).tiny)  # 2^-126, the smallest normal float32


def rule(mn, mx, bits, symmetric):
    """The documented rule for one channel, written from quant.h's comment: float32 operations,
    round half to even, the subnormal adjustment stated there."""
    mn, mx = F32(mn), F32(mx)
    qmax = 2 ** (bits - 1) - 1 if symmetric else 2**bits - 1
    if mn == mx:
        scale = F32(1) if mn == 0 else abs(mn)
        return scale, (1 if (not symmetric and mn < 0) else 0)
    with np.errstate(over="ignore", under="ignore"):
        if symmetric:
            rng = max(abs(mn), abs(mx))
            scale = F32(rng / F32(qmax))
        else:
            lo, hi = min(mn, F32(0)), max(mx, F32(0))
            rng = F32(hi - lo)
            scale = F32(rng / F32(qmax))
            if np.isinf(scale):
                scale = F32((float(hi) - float(lo)) / qmax)
                rng = float(hi) - float(lo)
    if scale == 0:
        scale = F32(rng)
    elif scale < TINY:
        while float(scale) * qmax < float(rng):
            scale = np.nextafter(scale, F32(np.inf))
    if symmetric:
        return scale, 0
    with np.errstate(over="ignore"):
        z = np.rint(F32(-lo) / scale)
    return scale, int(min(max(z, 0), qmax))


def bits_of(a):
    """float32 array as its bit patterns (so -0.0 != 0.0 and the comparison is exact)."""
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


# ------------------------------------------------------------------ the rule itself

@pytest.mark.parametrize("mn,mx,bits,symmetric,want", [
    (-1.0, 3.0, 8, False, (F32(4) / F32(255), 64)),           # ONNX: zp = rne(1 / (4/255)) = 64
    (-1.0, 3.0, 8, True, (F32(3) / F32(127), 0)),
    (1.0, 3.0, 8, False, (F32(3) / F32(255), 0)),             # widened to include 0
    (-3.0, -1.0, 8, False, (F32(3) / F32(255), 255)),         # negative only: zp at the top
    (-3.0, -1.0, 4, True, (F32(3) / F32(7), 0)),
    (0.0, 0.0, 8, True, (F32(1), 0)),                          # all zero
    (0.0, 0.0, 8, False, (F32(1), 0)),
    (0.25, 0.25, 8, False, (F32(0.25), 0)),                    # constant: exact round trip
    (-0.25, -0.25, 8, False, (F32(0.25), 1)),
    (-0.25, -0.25, 8, True, (F32(0.25), 0)),
    (-3e38, 3e38, 8, False, (F32(6e38 / 255), 128)),           # hi - lo overflows float32
    (0.0, 1.4e-45, 8, True, (F32(1.4e-45), 0)),                # a / 127 underflows to 0
])
def test_documented_examples(mn, mx, bits, symmetric, want):
    s, z = lowbit.quant.qparams(mn, mx, bits=bits, symmetric=symmetric)
    assert (s.dtype, z.dtype) == (np.float32, np.int32)
    assert (s, int(z)) == (want[0], want[1])
    assert (s, int(z)) == rule(mn, mx, bits, symmetric)


def test_subnormal_scale_covers_the_range():
    # 2.8e-44 / 15 is 1.87e-45, which rounds to 1 ulp (1.4e-45): 15 ulps cover 2.1e-44 only, so
    # 2.8e-44 would saturate 5 half-steps away; the rule raises the scale to 2 ulps
    s, z = lowbit.quant.qparams(-1.4e-45, 2.8e-44, bits=4, symmetric=False)
    assert float(s) * 15 >= 2.8e-44 + 1.4e-45 and s == F32(2.8e-45)


def test_vectorized_over_channels_and_refuses_bad_ranges():
    mn = np.array([-1, 0, 2, -5e-40], np.float32)
    mx = np.array([3, 0, 2, 7e-41], np.float32)
    for sym in (True, False):
        s, z = lowbit.quant.qparams(mn, mx, bits=6, symmetric=sym)
        assert s.shape == z.shape == (4,)
        assert [(a, int(b)) for a, b in zip(s, z)] == [rule(a, b, 6, sym) for a, b in zip(mn, mx)]
    for bad in ((np.nan, 1.0), (0.0, np.inf), (-np.inf, 0.0), (2.0, 1.0), (0.0, 1e39)):
        with pytest.raises(ValueError):
            lowbit.quant.qparams(*bad)
    with pytest.raises(ValueError, match="bits"):
        lowbit.quant.qparams(0.0, 1.0, bits=9)


finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
subnormal32 = st.floats(-TINY, TINY, width=32, allow_subnormal=True)
exponents = st.sampled_from([-149, -140, -130, -126, -100, -40, -10, 0, 10, 40, 100, 127])


@st.composite
def ranges(draw):
    kind = draw(st.sampled_from(["any", "subnormal", "scaled", "constant", "negative", "positive"]))
    if kind == "any":
        a, b = draw(finite32), draw(finite32)
    elif kind == "subnormal":
        a, b = draw(subnormal32), draw(subnormal32)
    elif kind == "scaled":
        e = draw(exponents)
        with np.errstate(over="ignore"):  # 2 * 2^127 overflows: replaced below
            a, b = (float(np.ldexp(F32(draw(st.floats(-2, 2, width=32))), e)) for _ in range(2))
    elif kind == "constant":
        a = b = draw(st.one_of(finite32, subnormal32, st.just(0.0)))
    else:
        a, b = abs(draw(finite32)), abs(draw(finite32))
        if kind == "negative":
            a, b = -a, -b
    a, b = F32(a), F32(b)
    if not (np.isfinite(a) and np.isfinite(b)):  # ldexp can overflow
        a, b = F32(1), F32(2)
    return min(a, b), max(a, b)


@settings(max_examples=500, deadline=None)
@given(r=ranges(), bits=st.integers(2, 8), symmetric=st.booleans())
@example(r=(F32(-1.4e-45), F32(2.8e-44)), bits=4, symmetric=False)
def test_rule_and_quantize_agree_with_the_oracle(r, bits, symmetric):
    mn, mx = r
    want = rule(mn, mx, bits, symmetric)
    s, z = lowbit.quant.qparams(mn, mx, bits=bits, symmetric=symmetric)
    assert (s, int(z)) == want
    # lowbit.quantize computes the same parameters from data with that min and max
    q = lowbit.quantize(np.array([mn, mx, mx, mn], np.float32), bits=bits, symmetric=symmetric)
    assert (q.scale, int(q.zero_point)) == want
    assert np.isfinite(s) and s > 0


def test_range_to_qparams_equals_quantize_on_random_ranges():
    # the issue: 4,959 of these 20,000 ranges got a scale 1 ulp away from lowbit.quantize's
    rng = np.random.default_rng(13)
    lo = (-np.abs(rng.standard_normal(20000)) * 10.0 ** rng.uniform(-6, 6, 20000)).astype(np.float32)
    hi = (np.abs(rng.standard_normal(20000)) * 10.0 ** rng.uniform(-6, 6, 20000)).astype(np.float32)
    lo[::7] = np.abs(lo[::7])  # some ranges not containing 0
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    x = np.stack([lo, hi], axis=1)
    q = lowbit.quantize(x, axis=0, symmetric=False)
    got = [observers.range_to_qparams(float(a), float(b)) for a, b in zip(lo, hi)]
    bad = [i for i, (s, z) in enumerate(got) if (s, z) != (float(q.scale[i]), int(q.zero_point[i]))]
    assert not bad, f"{len(bad)} of {len(lo)} ranges differ, first {lo[bad[0]]!r}..{hi[bad[0]]!r}"
    assert all(isinstance(s, float) and isinstance(z, int) for s, z in got[:10])
    for bits in (2, 4, 7):
        q = lowbit.quantize(x[:500], axis=0, bits=bits, symmetric=False)
        for i in range(500):
            assert observers.range_to_qparams(float(lo[i]), float(hi[i]), bits=bits) == \
                (float(q.scale[i]), int(q.zero_point[i]))


def test_range_to_qparams_takes_float64_ranges_as_float32():
    # observers return Python floats (float64): the range is rounded to float32 first, as a
    # float32 tensor with that range would have it
    lo, hi = -0.123456789012345, 2.718281828459045
    assert observers.range_to_qparams(lo, hi) == observers.range_to_qparams(float(F32(lo)), float(F32(hi)))
    with pytest.raises(ValueError):
        observers.range_to_qparams(0.0, float("nan"))
    with pytest.raises(ValueError):
        observers.range_to_qparams(1.0, -1.0)


# ------------------------------------------------------------------ fake quantization

@st.composite
def tensors(draw, rows=None):
    """2-D float32 tensors of one of the problem kinds, rows of possibly different magnitude."""
    r = rows or draw(st.integers(1, 5))
    c = draw(st.integers(1, 17))
    kind = draw(st.sampled_from(["normal", "subnormal", "tiny", "huge", "zero", "negative", "mixed"]))
    x = draw(hnp.arrays(np.float32, (r, c), elements=st.floats(-1, 1, width=32)))
    if kind == "subnormal":
        x = (x * F32(2e-39)).astype(np.float32)
    elif kind == "tiny":
        x = (x * F32(1e-36)).astype(np.float32)
    elif kind == "huge":
        x = (x * F32(3e38)).astype(np.float32)
    elif kind == "zero":
        x[:] = 0
    elif kind == "negative":
        x = -np.abs(x)
    elif kind == "mixed":  # every row its own scale, one row constant
        e = draw(hnp.arrays(np.int32, (r, 1), elements=st.integers(-140, 120)))
        x = np.ldexp(x, e).astype(np.float32)
        x[0] = x[0, 0]
    return x


@settings(max_examples=300, deadline=None)
@given(w=tensors(), bits=st.integers(2, 8))
def test_fake_quantize_weight_is_quantize_then_dequantize(w, bits):
    deq, codes, scale = nn.fake_quantize_weight(w, bits)
    q = lowbit.quantize(w, bits=bits, axis=0)
    np.testing.assert_array_equal(bits_of(scale), bits_of(q.scale))
    np.testing.assert_array_equal(codes.astype(np.int8), q.int_repr())
    np.testing.assert_array_equal(bits_of(deq), bits_of(q.dequantize()))


@settings(max_examples=300, deadline=None)
@given(x=tensors())
def test_fake_quantize_rows_is_quantize_then_dequantize(x):
    deq, codes, scale, zp = nn.fake_quantize_rows(x)
    q = lowbit.quantize(x, axis=0, symmetric=False)
    np.testing.assert_array_equal(bits_of(scale), bits_of(q.scale))
    np.testing.assert_array_equal(zp.astype(np.int32), q.zero_point)
    np.testing.assert_array_equal(codes.astype(np.uint8), q.int_repr())
    np.testing.assert_array_equal(bits_of(deq), bits_of(q.dequantize()))


@settings(max_examples=300, deadline=None)
@given(x=tensors(), r=ranges())
def test_fake_quantize_static_is_quantize_then_dequantize(x, r):
    s, z = observers.range_to_qparams(float(r[0]), float(r[1]))
    deq, mask = nn.fake_quantize_static(x, s, z)
    q = lowbit.quantize(x, scale=s, zero_point=z, symmetric=False)
    np.testing.assert_array_equal(bits_of(deq), bits_of(q.dequantize()))
    with np.errstate(over="ignore"):
        raw = np.rint(x / F32(s)) + F32(z)  # before the clamp
    np.testing.assert_array_equal(mask, (raw >= 0) & (raw <= 255))


def test_fake_quantize_weight_on_subnormal_weights():
    # from the issue: numpy's own scale was 1 ulp low on subnormal rows (7.874e-42 against
    # 7.875e-42), and so were codes (one 63 for 64); these rows show the same (scale 3.1e-44
    # against 3.2e-44, five codes off by up to 4)
    w = np.array([[2147484464, 2147483916, 8, 2147483936, 1350, 1050, 2147486476, 2147485619]],
                 np.uint32).view(np.float32)
    deq, codes, scale = nn.fake_quantize_weight(w, 8)
    q = lowbit.quantize(w, axis=0)
    assert scale[0] == q.scale[0] == F32(3.2e-44)
    np.testing.assert_array_equal(codes.astype(np.int8), q.int_repr())
    np.testing.assert_array_equal(bits_of(deq), bits_of(q.dequantize()))
    assert np.all(np.abs(w.astype(np.float64) - deq) <= float(scale[0]) / 2)


def test_fake_quant_in_float64_uses_the_float32_rule():
    # float64 models (gradient checks) fake-quantize their float32 rounding: same codes and
    # scales as lowbit.quantize of the float32 tensor, results in float64
    x = np.random.default_rng(3).standard_normal((6, 11))
    deq, codes, scale = nn.fake_quantize_weight(x, 4)
    assert deq.dtype == codes.dtype == scale.dtype == np.float64
    q = lowbit.quantize(x.astype(np.float32), bits=4, axis=0)
    np.testing.assert_array_equal(deq, q.dequantize().astype(np.float64))
    deq, codes, scale, zp = nn.fake_quantize_rows(x)
    assert deq.dtype == np.float64
    np.testing.assert_array_equal(deq, lowbit.quantize(x.astype(np.float32), axis=0, symmetric=False)
                                  .dequantize().astype(np.float64))


def test_fake_quant_layer_static_parameters_follow_the_rule():
    layer = nn.FakeQuantLinear(5, 3, act="static")
    x = np.random.default_rng(4).standard_normal((7, 5)).astype(np.float32) * 3
    layer.forward(x, train=True)
    s, z = observers.range_to_qparams(layer.act_min, layer.act_max)
    assert (layer.act_scale, layer.act_zero_point) == (s, z)


def test_every_kernel_set_computes_the_same_parameters():
    x = np.ldexp(np.random.default_rng(5).standard_normal((40, 33)),
                 np.arange(40)[:, None] * 7 - 149).astype(np.float32)
    want = None
    for isa in ISAS:
        for t in (1, 2):
            with using_isa(isa, t):
                got = [(q.scale.tobytes(), q.zero_point.tobytes()) for q in
                       (lowbit.quantize(x, axis=0, symmetric=s, bits=b) for s in (True, False) for b in (8, 3))]
                want = want or got
                assert got == want, isa


@pytest.mark.parametrize("zp", [0, 1, 100, 127, 128, 254, 255])
def test_fake_quantize_static_mask_at_the_clipping_ties(zp):
    # x / s exactly at -zp - 0.5 and 255.5 - zp: half to even decides whether the code is in range
    s = F32(0.5)
    t = np.array([-zp - 0.5, -zp - 0.5, 255.5 - zp, 255.5 - zp, -zp - 1.5, 256.5 - zp, 0], np.float32)
    t[1] = np.nextafter(t[1], F32(np.inf))
    t[3] = np.nextafter(t[3], F32(-np.inf))
    x = t * s
    assert np.array_equal(x / s, t)  # exact
    deq, mask = nn.fake_quantize_static(x, float(s), zp)
    want = (np.rint(t) + zp >= 0) & (np.rint(t) + zp <= 255)
    np.testing.assert_array_equal(mask, want)
    assert list(want[:4]) == [zp % 2 == 0, True, zp % 2 == 1, True]
    np.testing.assert_array_equal(deq, lowbit.quantize(x, scale=float(s), zero_point=zp, symmetric=False).dequantize())
