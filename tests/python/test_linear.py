"""matmul_int8 and QuantizedLinear: exact integer results on every kernel set and thread count,
error bounds for the float layer, and bad input."""
import threading

import numpy as np
import pytest

import lowbit
from conftest import ISAS, using_isa


def ref_matmul(a, b, za=0, zb=0):
    return (a.astype(np.int64) - za) @ (b.astype(np.int64) - zb)


def random_ab(rng, m, k, n, a_dtype=np.uint8):
    info = np.iinfo(a_dtype)
    a = rng.integers(info.min, info.max + 1, (m, k), dtype=np.int64).astype(a_dtype)
    b = rng.integers(-128, 128, (k, n), dtype=np.int64).astype(np.int8)
    return a, b


# Every tail of every micro-kernel: rows 1..9 (mr is 1..8), columns around 16, K not a multiple of 4/8.
TAIL_SHAPES = [(m, k, n) for m in (1, 2, 3, 4, 5, 7, 8, 9) for k in (1, 3, 5, 8, 13) for n in (1, 15, 16, 17, 31)]
LARGE_SHAPES = [(64, 300, 70), (129, 257, 33), (1, 1000, 300), (300, 64, 17), (17, 777, 129)]


def test_exact_on_every_tail_and_isa():
    rng = np.random.default_rng(0)
    for m, k, n in TAIL_SHAPES:
        a, b = random_ab(rng, m, k, n)
        want = ref_matmul(a, b)
        for isa in ISAS:
            with using_isa(isa):
                np.testing.assert_array_equal(lowbit.matmul_int8(a, b), want, err_msg=f"{isa} {m}x{k}x{n}")


@pytest.mark.parametrize("shape", LARGE_SHAPES)
def test_exact_on_larger_shapes_every_isa_and_thread_count(shape):
    rng = np.random.default_rng(1)
    a, b = random_ab(rng, *shape)
    want = ref_matmul(a, b, 3, -2)
    for isa in ISAS:
        for threads in (1, 2):
            with using_isa(isa, threads):
                got = lowbit.matmul_int8(a, b, a_zero_point=3, b_zero_point=-2)
                assert got.dtype == np.int32
                np.testing.assert_array_equal(got, want, err_msg=f"{isa} threads={threads}")


def test_int8_activations_are_exact():
    rng = np.random.default_rng(2)
    a, b = random_ab(rng, 9, 37, 21, np.int8)
    for za in (0, -5, 100):
        np.testing.assert_array_equal(lowbit.matmul_int8(a, b, a_zero_point=za), ref_matmul(a, b, za))


def test_extreme_values_along_k():
    for isa in ISAS:
        with using_isa(isa):
            a = np.full((3, 65793), 255, np.uint8)
            b = np.full((65793, 5), -128, np.int8)
            np.testing.assert_array_equal(lowbit.matmul_int8(a, b), ref_matmul(a, b))
            a = np.full((2, 4096), 255, np.uint8)
            b = np.full((4096, 17), 127, np.int8)
            np.testing.assert_array_equal(lowbit.matmul_int8(a, b), ref_matmul(a, b))


def test_result_that_could_overflow_is_rejected():
    a = np.zeros((1, 65794), np.uint8)
    b = np.zeros((65794, 1), np.int8)
    with pytest.raises(ValueError, match="overflow int32"):
        lowbit.matmul_int8(a, b)
    with pytest.raises(ValueError, match="overflow int32"):
        lowbit.matmul_int8(np.zeros((1, 40000), np.uint8), np.zeros((40000, 1), np.int8), b_zero_point=127)


def test_non_contiguous_inputs():
    rng = np.random.default_rng(3)
    a, b = random_ab(rng, 40, 60, 50)
    for av, bv in ((a[::2, ::3], b[::3, ::2]), (a[::-1], b[::-1]), (a[:, 5:25], b.T.copy().T[5:25]),
                   (np.asfortranarray(a), np.asfortranarray(b))):
        np.testing.assert_array_equal(lowbit.matmul_int8(av, bv), ref_matmul(av, bv))


def test_prepacked_weights():
    rng = np.random.default_rng(4)
    a, b = random_ab(rng, 5, 70, 33)
    pb = lowbit.pack_int8(b)
    np.testing.assert_array_equal(pb.unpack(), b)
    np.testing.assert_array_equal(lowbit.matmul_int8(a, pb), ref_matmul(a, b))
    assert pb.nbytes >= b.size


def test_empty_shapes():
    assert lowbit.matmul_int8(np.zeros((0, 4), np.uint8), np.zeros((4, 3), np.int8)).shape == (0, 3)
    assert lowbit.matmul_int8(np.zeros((2, 4), np.uint8), np.zeros((4, 0), np.int8)).shape == (2, 0)
    np.testing.assert_array_equal(lowbit.matmul_int8(np.zeros((2, 0), np.uint8), np.zeros((0, 3), np.int8)),
                                  np.zeros((2, 3), np.int32))


def test_bad_matmul_input():
    a = np.zeros((2, 3), np.uint8)
    b = np.zeros((3, 4), np.int8)
    with pytest.raises(TypeError, match="a must be a uint8 or int8"):
        lowbit.matmul_int8(a.astype(np.float32), b)
    with pytest.raises(TypeError, match="b must be an int8"):
        lowbit.matmul_int8(a, b.astype(np.uint8))
    with pytest.raises(ValueError, match="a has 3 columns but b has 4 rows"):
        lowbit.matmul_int8(a, np.zeros((4, 4), np.int8))
    with pytest.raises(ValueError, match="2-D"):
        lowbit.matmul_int8(a[0], b)
    with pytest.raises(TypeError, match="a_zero_point"):
        lowbit.matmul_int8(a, b, a_zero_point=1.5)


# ---- QuantizedLinear --------------------------------------------------------------------------

def error_bound(x, w, layer_w_scale):
    """|y - y_float| bound from the two scales: per row, activations are within s_x/2 of their
    codes, weights within s_w/2: sum_k |x| s_w/2 + |w| s_x/2 + s_x s_w / 4 (plus float slack)."""
    lo = np.minimum(x.min(axis=1), 0)
    hi = np.maximum(x.max(axis=1), 0)
    sx = (hi - lo) / 255.0
    sw = layer_w_scale
    sxa = np.abs(x).sum(axis=1)[:, None]
    bound = sxa * sw[None, :] / 2 + (sx[:, None] / 2) * np.abs(w).sum(axis=0)[None, :] \
        + x.shape[1] * sx[:, None] * sw[None, :] / 4
    return bound * 1.001 + 1e-5


@pytest.mark.parametrize("per_channel", [True, False])
def test_quantized_linear_within_error_bound(per_channel):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((70, 45)).astype(np.float32) * 0.2
    bias = rng.standard_normal(70).astype(np.float32)
    x = rng.standard_normal((33, 45)).astype(np.float32)
    layer = lowbit.QuantizedLinear(w, bias, per_channel=per_channel)
    y = layer(x)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + bias
    assert y.shape == (33, 70) and y.dtype == np.float32
    wt = w.T
    assert np.all(np.abs(y - ref) <= error_bound(x, wt, np.broadcast_to(layer.weight_q.scale, (70,))))
    assert lowbit.sqnr(ref, y) > 30


def test_quantized_linear_same_on_every_isa_and_thread_count():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((130, 99)).astype(np.float32)
    x = rng.standard_normal((37, 99)).astype(np.float32)
    layer = lowbit.QuantizedLinear(w, np.ones(130, np.float32))
    with using_isa("scalar", 1):
        want = layer(x)
    for isa in ISAS:
        for t in (1, 2):
            with using_isa(isa, t):
                np.testing.assert_array_equal(layer(x), want, err_msg=f"{isa} t={t}")


def test_quantized_linear_batch_shapes_and_relu():
    rng = np.random.default_rng(7)
    w = rng.standard_normal((8, 6)).astype(np.float32)
    layer = lowbit.QuantizedLinear(w)
    x = rng.standard_normal((2, 3, 6)).astype(np.float32)
    y = layer(x)
    assert y.shape == (2, 3, 8)
    np.testing.assert_array_equal(layer(x, relu=True), np.maximum(y, 0))
    np.testing.assert_array_equal(layer(x[0, 0]), y[0, 0])
    assert layer(np.zeros((0, 6), np.float32)).shape == (0, 8)
    assert layer.in_features == 6 and layer.out_features == 8


def test_quantized_linear_nbytes_is_about_a_quarter():
    w = np.random.default_rng(8).standard_normal((512, 512)).astype(np.float32)
    layer = lowbit.QuantizedLinear(w, np.zeros(512, np.float32))
    assert layer.nbytes / (w.nbytes + 512 * 4) < 0.26


def test_static_mode_and_chaining():
    rng = np.random.default_rng(9)
    w1 = rng.standard_normal((32, 16)).astype(np.float32) * 0.3
    w2 = rng.standard_normal((8, 32)).astype(np.float32) * 0.3
    x = rng.uniform(-1, 1, (20, 16)).astype(np.float32)
    s_in, z_in = 2.0 / 255, 128
    l1 = lowbit.QuantizedLinear(w1, act_scale=s_in, act_zero_point=z_in)
    h = l1(x, relu=True)
    ref = np.maximum(x @ w1.T, 0)
    assert lowbit.sqnr(ref, h) > 25
    s_h = float(h.max()) / 255
    l2 = lowbit.QuantizedLinear(w2, act_scale=s_h, act_zero_point=0)
    xq = lowbit.quantize(x, scale=s_in, zero_point=z_in, symmetric=False).int_repr()
    hq = l1.forward_quantized(xq, s_h, 0, relu=True)  # int8 chain, requantized in the epilogue
    assert hq.dtype == np.uint8
    # exact oracle: the int64 product, then the float32 requantize rule of forward_quantized
    acc = (xq.astype(np.int64) - z_in) @ l1.weight_q.int_repr().astype(np.int64).T
    m = (s_in * l1.weight_q.scale.astype(np.float64) / np.float32(s_h)).astype(np.float32)
    yq = np.clip(acc.astype(np.int32).astype(np.float32) * m, 0, 255)
    np.testing.assert_array_equal(hq, np.rint(yq).astype(np.uint8))
    h_direct = lowbit.quantize(h, scale=s_h, zero_point=0, symmetric=False).int_repr().astype(int)
    assert np.abs(hq.astype(int) - h_direct).max() <= 1  # and it agrees with the float path
    y = l2(hq.astype(np.float32) * s_h)
    assert lowbit.sqnr(ref @ w2.T, y) > 20


def requant_oracle(xq, z_in, w_codes, w_scale, act_scale, bias, out_scale, out_zp, relu):
    """forward_quantized's documented rule, written independently of the kernels: the exact
    integer product (int64), bias_q = rne(bias / (act_scale * w_scale)) (float64), the float32
    multiplier m = act_scale * w_scale / out_scale (float64, rounded to float32), then in float32
    y = float32(acc + bias_q) * m, q = rne(y) + out_zp, clamped to [0, 255] ([out_zp, 255] with
    relu)."""
    acc = (xq.astype(np.int64) - z_in) @ w_codes.astype(np.int64).T
    ws = w_scale.astype(np.float64)
    if bias is not None:
        acc = acc + np.rint(bias.astype(np.float64) / (float(act_scale) * ws)).astype(np.int64)
    assert np.abs(acc).max() < 2**24  # float32(acc) exact, so the test pins the rounding alone
    m = (float(act_scale) * ws / float(np.float32(out_scale))).astype(np.float32)
    y = acc.astype(np.float32) * m  # float32 product
    q = np.rint(y) + np.float32(out_zp)  # half to even
    return np.clip(q, max(out_zp, 0) if relu else 0, 255).astype(np.uint8)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("config", ["ties", "generic"])
def test_forward_quantized_equals_the_requantize_rule_exactly(config, relu):
    rng = np.random.default_rng(12)
    k, n = 37, 19  # odd sizes: partial panels and tails on every kernel set
    w_codes = rng.integers(-127, 128, (n, k)).astype(np.int8)
    xq = rng.integers(0, 256, (23, k)).astype(np.uint8)
    if config == "ties":
        # m = act_scale * w_scale / out_scale = 0.5 (odd channels) or 1.5 (even ones) exactly:
        # every odd sum (bias included) is a tie, x.5, which rne sends to the even neighbour
        w_scale = np.where(np.arange(n) % 2, 0.03125, 0.09375).astype(np.float32)
        act_scale, out_scale, out_zp, z_in = 0.5, 0.03125, 100, 128
        bias = (rng.integers(-50, 50, n) * act_scale * w_scale).astype(np.float32)  # exact bias_q
        w_codes = rng.integers(-20, 21, (n, k)).astype(np.int8)  # sums mostly in range
        xq = (z_in + rng.integers(-6, 7, (23, k))).astype(np.uint8)
        xq[0], xq[1] = 255, 0  # rows that saturate
    else:
        w_scale = rng.uniform(0.001, 0.01, n).astype(np.float32)
        act_scale, out_scale, out_zp, z_in = 0.0173, 0.011, 37, 121
        bias = rng.standard_normal(n).astype(np.float32)
    wq = lowbit.QTensor.from_codes(w_codes, w_scale, axis=0)
    layer = lowbit.QuantizedLinear.from_quantized(wq, bias, act_scale=act_scale, act_zero_point=z_in)
    want = requant_oracle(xq, z_in, w_codes, w_scale, act_scale, bias, out_scale, out_zp, relu)
    # the cases the rule has to get right are all there: saturation at both ends, and ties
    assert np.any(want == 255) and np.any(want == (out_zp if relu else 0))
    assert 0.2 < np.mean((want > 0) & (want < 255)) < 0.9
    if config == "ties":
        acc = (xq.astype(np.int64) - z_in) @ w_codes.astype(np.int64).T
        acc += np.rint(bias / (act_scale * w_scale.astype(np.float64))).astype(np.int64)
        inside = (want > max(out_zp, 0) if relu else want > 0) & (want < 255)
        assert np.sum(inside & (acc % 2 != 0)) >= 40  # in-range ties
    for isa in ISAS:
        for t in (1, 2):
            with using_isa(isa, t):
                got = layer.forward_quantized(xq, out_scale, out_zp, relu=relu)
                np.testing.assert_array_equal(got, want, err_msg=f"{isa} threads={t}")


def test_quantized_linear_bad_input():
    w = np.ones((4, 3), np.float32)
    layer = lowbit.QuantizedLinear(w)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
        layer(np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        layer(np.ones((2, 3), np.int32))
    x = np.ones((2, 3), np.float32)
    x[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 non-finite value.*\(1, 1\)"):
        layer(x)
    with pytest.raises(ValueError, match="weight must be 2-D"):
        lowbit.QuantizedLinear(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="bias must have shape"):
        lowbit.QuantizedLinear(w, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        lowbit.QuantizedLinear(np.full((2, 2), np.inf, np.float32))
    with pytest.raises(ValueError, match="bits"):
        lowbit.QuantizedLinear(w, bits=9)


def test_concurrent_calls_match_serial():
    rng = np.random.default_rng(10)
    layer = lowbit.QuantizedLinear(rng.standard_normal((256, 128)).astype(np.float32))
    xs = [rng.standard_normal((64, 128)).astype(np.float32) for _ in range(8)]
    want = [layer(x) for x in xs]
    got = [None] * len(xs)

    def work(i):
        for _ in range(5):
            got[i] = layer(xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_from_quantized_uses_the_given_codes():
    rng = np.random.default_rng(11)
    codes = rng.integers(-127, 128, (6, 10)).astype(np.int8)
    wq = lowbit.QTensor.from_codes(codes, np.linspace(0.01, 0.06, 6, dtype=np.float32), axis=0)
    layer = lowbit.QuantizedLinear.from_quantized(wq, np.ones(6, np.float32))
    x = rng.standard_normal((4, 10)).astype(np.float32)
    ref = x @ wq.dequantize().T + 1
    assert lowbit.sqnr(ref, layer(x)) > 30
    np.testing.assert_array_equal(layer.weight_q.int_repr(), codes)
    with pytest.raises(ValueError, match="2-D signed"):
        lowbit.QuantizedLinear.from_quantized(lowbit.QTensor.from_codes(codes.view(np.uint8), 1.0))
    with pytest.raises(TypeError, match="QTensor"):
        lowbit.QuantizedLinear.from_quantized(codes)


def _arrays_held(obj) -> int:
    """Bytes of the numpy arrays an object keeps in its attributes."""
    return sum(v.nbytes for v in vars(obj).values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("bits,per_channel", [(8, True), (4, False)])
def test_quantized_linear_keeps_one_copy_of_the_weight(bits, per_channel):
    w = np.random.default_rng(3).standard_normal((96, 130)).astype(np.float32)
    layer = lowbit.QuantizedLinear(w, np.ones(96, np.float32), bits=bits, per_channel=per_channel)
    # Only scales and bias sit beside the packed weight: weight_q is rebuilt on request.
    assert _arrays_held(layer) <= 3 * 96 * 4
    want = lowbit.quantize(w, bits=bits, axis=0 if per_channel else None, symmetric=True)
    got = layer.weight_q
    np.testing.assert_array_equal(got.int_repr(), want.int_repr())
    np.testing.assert_array_equal(got.scale, want.scale)
    assert (got.bits, got.axis, got.symmetric) == (want.bits, want.axis, True)
    again = lowbit.QuantizedLinear.from_quantized(got, layer.bias)
    x = np.random.default_rng(4).standard_normal((5, 130)).astype(np.float32)
    np.testing.assert_array_equal(again(x), layer(x))


def test_nibble_packed_weights_exact_on_every_tail_and_isa():
    rng = np.random.default_rng(21)
    for m, k, n in TAIL_SHAPES + LARGE_SHAPES:
        a = rng.integers(0, 256, (m, k)).astype(np.uint8)
        b = rng.integers(-8, 8, (k, n)).astype(np.int8)
        pb = lowbit.pack_int8(b, nibbles=True)
        assert pb.nibbles and not lowbit.pack_int8(b).nibbles
        np.testing.assert_array_equal(pb.unpack(), b)
        for isa in ISAS:
            with using_isa(isa):
                np.testing.assert_array_equal(lowbit.matmul_int8(a, pb, a_zero_point=3),
                                              ref_matmul(a, b, 3), err_msg=f"{isa} {m}x{k}x{n}")


def test_nibble_packing_refuses_values_outside_4_bits():
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        lowbit.pack_int8(np.array([[8, 0]], np.int8), nibbles=True)
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        lowbit.PackedInt8(np.array([[0], [-9]], np.int8), nibbles=True)
    with pytest.raises(TypeError, match="nibbles"):
        lowbit.PackedInt8(np.zeros((2, 2), np.int8), nibbles=1)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_weights_of_4_bits_or_fewer_are_held_two_a_byte(bits):
    # issue 13: QuantizedLinear(bits=4) held int8 weights (nbytes 67,584, the same as 8-bit)
    rng = np.random.default_rng(22)
    w = rng.standard_normal((256, 384)).astype(np.float32)
    b = rng.standard_normal(256).astype(np.float32)
    low, full = lowbit.QuantizedLinear(w, b, bits=bits), lowbit.QuantizedLinear(w, b, bits=8)
    assert low._packed.nibbles and not full._packed.nibbles
    weight_bytes = 256 * 384
    assert low.nbytes <= full.nbytes - weight_bytes // 2
    assert low.nbytes < 0.55 * full.nbytes
    # the same codes held one a byte (a 5-bit layer) give the same outputs, bit for bit
    wq = low.weight_q
    same = lowbit.QuantizedLinear.from_quantized(
        lowbit.QTensor.from_codes(wq.int_repr(), wq.scale, axis=0, bits=5), b)
    assert not same._packed.nibbles
    x = rng.standard_normal((9, 384)).astype(np.float32)
    for isa in ISAS:
        with using_isa(isa):
            np.testing.assert_array_equal(low(x), same(x), err_msg=isa)
            np.testing.assert_array_equal(low(x[:1]), same(x[:1]), err_msg=isa)


def test_nibble_packed_weights_survive_files_and_pickle(tmp_path):
    import pickle
    rng = np.random.default_rng(23)
    pb = lowbit.pack_int8(rng.integers(-8, 8, (40, 24)).astype(np.int8), nibbles=True)
    lowbit.save(pb, tmp_path / "pb.lowbit")
    for back in (lowbit.load(tmp_path / "pb.lowbit"), pickle.loads(pickle.dumps(pb))):
        assert back.nibbles and back.nbytes == pb.nbytes
        np.testing.assert_array_equal(back.unpack(), pb.unpack())
    layer = lowbit.QuantizedLinear(rng.standard_normal((24, 40)).astype(np.float32), bits=4)
    back = pickle.loads(pickle.dumps(layer))
    assert back._packed.nibbles and back.nbytes == layer.nbytes
