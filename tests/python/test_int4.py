"""Int4Linear: 2- to 4-bit weights in groups, held packed; round-to-nearest by lowbit's one
parameter rule, GPTQ, the kernels the same on every ISA and thread count, files, bad input."""
import pickle

import numpy as np
import pytest

import lowbit
from conftest import ISAS, using_isa
from lowbit.quant import qparams


def _layer_data(seed=0, n=48, k=200):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, k)).astype(np.float32),
            rng.standard_normal(n).astype(np.float32), rng)


@pytest.mark.parametrize("bits,group", [(4, 32), (4, 64), (3, 32), (2, 16), (4, 128)])
def test_rtn_codes_follow_the_one_parameter_rule(bits, group):
    w, b, _ = _layer_data(1)
    w_in = w.copy()
    layer = lowbit.Int4Linear(w, b, bits=bits, group_size=group)
    np.testing.assert_array_equal(w, w_in)  # the input is not modified
    a = layer.arrays()
    k, g = w.shape[1], -(-w.shape[1] // group)
    assert a["codes"].shape == w.shape and a["zero_point"].shape == (48, g)
    assert a["codes"].max() < 2**bits and a["zero_point"].max() < 2**bits
    pad = np.pad(w, ((0, 0), (0, g * group - k)), mode="edge").reshape(48, g, group)
    scale, zero = qparams(pad.min(2), pad.max(2), bits=bits, symmetric=False)
    np.testing.assert_array_equal(a["zero_point"], zero)
    eff = a["row_scale"][:, None] * a["scale"].astype(np.float32)
    np.testing.assert_allclose(eff, scale, rtol=2**-11)  # binary16 relative scales
    # every weight within half a step of its dequantized value (the clamp never binds for RTN)
    step = np.repeat(eff, group, axis=1)[:, :k]
    assert np.all(np.abs(layer.weight - w) <= 0.5 * step * (1 + 1e-5) + 1e-7)


def test_forward_is_the_dequantized_layer_within_int8_activations_and_same_everywhere():
    w, b, rng = _layer_data(2, 70, 300)
    layer = lowbit.Int4Linear(w, b, group_size=64)
    x = rng.standard_normal((9, 300)).astype(np.float32)
    ref = x.astype(np.float64) @ layer.weight.T.astype(np.float64) + b
    y = layer(x)
    assert y.dtype == np.float32 and y.shape == (9, 70)
    # int8 activations per row: each x within half a step of max|x| / 127
    bound = (np.abs(layer.weight).sum(1)[None, :] * np.abs(x).max(1, keepdims=True) / 254) + 1e-4
    assert np.all(np.abs(y - ref) <= bound)
    for isa in ISAS:
        for threads in (1, 2):
            with using_isa(isa):
                lowbit.set_num_threads(threads)
                assert layer(x).tobytes() == y.tobytes(), (isa, threads)
                assert layer(x[:1]).tobytes() == y[:1].tobytes(), (isa, threads)
    lowbit.set_num_threads(2)
    assert layer(x.reshape(3, 3, 300)).shape == (3, 3, 70)
    assert layer(np.zeros((0, 300), np.float32)).shape == (0, 70)


def test_held_packed_and_counted():
    w, b, _ = _layer_data(3, 256, 384)
    l4 = lowbit.Int4Linear(w, b, group_size=64)
    l8 = lowbit.QuantizedLinear(w, b)
    assert l4.nbytes == l4._w.nbytes + b.nbytes
    assert l4.nbytes < 0.6 * l8.nbytes
    assert l4.bits_per_weight == pytest.approx(4 + (16 + 8) / 64 + 32 / 384)
    assert lowbit.Int4Linear(w, group_size=32).bits_per_weight == pytest.approx(4 + 24 / 32 + 32 / 384)
    assert "bits_per_weight=4.4" in repr(l4)


def test_gptq_beats_round_to_nearest_on_held_out_inputs():
    rng = np.random.default_rng(4)
    k, n = 128, 64
    mix = rng.standard_normal((k, k)).astype(np.float32) / np.sqrt(k)  # correlated inputs
    scales = np.exp(rng.standard_normal(k)).astype(np.float32)
    x_cal = (rng.standard_normal((2048, k)).astype(np.float32) @ mix) * scales
    x_test = (rng.standard_normal((256, k)).astype(np.float32) @ mix) * scales
    w = rng.standard_normal((n, k)).astype(np.float32)
    ref = x_test @ w.T
    rtn = lowbit.Int4Linear(w, bits=3, group_size=32)
    gptq = lowbit.Int4Linear(w, bits=3, group_size=32, method="gptq", calibration=x_cal)
    assert gptq.method == "gptq"
    assert lowbit.sqnr(ref, gptq(x_test)) > lowbit.sqnr(ref, rtn(x_test)) + 1.0


def test_rotation_is_the_same_layer_with_outliers_spread(tmp_path):
    rng = np.random.default_rng(9)
    k, n = 256, 48
    w = rng.standard_normal((n, k)).astype(np.float32)
    w[:, 5] *= 40.0  # an outlier input channel: round-to-nearest's worst case
    x = rng.standard_normal((64, k)).astype(np.float32)
    plain = lowbit.Int4Linear(w, group_size=64)
    rot = lowbit.Int4Linear(w, group_size=64, rotate=True)
    assert plain.rotation is None and rot.rotation.shape == (k,) and set(np.unique(rot.rotation)) == {-1.0, 1.0}
    ref = x @ w.T
    assert lowbit.sqnr(ref, rot(x)) > lowbit.sqnr(ref, plain(x)) + 3.0
    # weight is W itself (un-rotated), within the 4-bit error; forward is (x R)(W R)^T
    assert lowbit.sqnr(w, rot.weight) > 15
    np.testing.assert_allclose(rot(x), x @ rot.weight.T, rtol=0, atol=0.05 * np.abs(ref).max())
    assert rot.nbytes == plain.nbytes + 4 * k and "rotate=True" in repr(rot)
    g = lowbit.Int4Linear(w, group_size=64, rotate=True, method="gptq", calibration=x)
    assert lowbit.sqnr(ref, g(x)) > lowbit.sqnr(ref, rot(x))
    lowbit.save(rot, tmp_path / "r.lowbit")
    for back in (lowbit.load(tmp_path / "r.lowbit"), pickle.loads(pickle.dumps(rot))):
        assert np.array_equal(back.rotation, rot.rotation) and back(x).tobytes() == rot(x).tobytes()
    with pytest.raises(ValueError, match="multiple of 128"):
        lowbit.Int4Linear(w[:, :200], rotate=True)


def test_files_and_pickle_round_trip(tmp_path):
    w, b, rng = _layer_data(5, 20, 50)
    layer = lowbit.Int4Linear(w, b, bits=3, group_size=16)
    x = rng.standard_normal((4, 50)).astype(np.float32)
    lowbit.save(layer, tmp_path / "l.lowbit")
    for back in (lowbit.load(tmp_path / "l.lowbit"), pickle.loads(pickle.dumps(layer))):
        assert isinstance(back, lowbit.Int4Linear)
        assert (back.bits, back.group_size, back.method, back.nbytes) == (3, 16, "rtn", layer.nbytes)
        assert back(x).tobytes() == layer(x).tobytes()


def test_corrupt_state_is_refused():
    w, b, _ = _layer_data(6, 8, 40)
    layer = lowbit.Int4Linear(w, b, bits=2, group_size=8)
    data = lowbit.io.dumps(layer)
    back = lowbit.io.loads(data)
    assert back(w[:1]).tobytes() == layer(w[:1]).tobytes()
    bad = layer.arrays()
    bad["codes"][0, 0] = 4  # beyond 2 bits
    with pytest.raises(ValueError, match="exceed 2 bits"):
        lowbit.io._BY_NAME["Int4Linear"].from_state(
            {"codes": bad["codes"], "zero_point": bad["zero_point"], "scale": bad["scale"].view(np.uint16),
             "row_scale": bad["row_scale"], "bias": None, "bits": 2, "group_size": 8, "method": "rtn"})


def test_bad_input():
    w, b, rng = _layer_data(7, 8, 40)
    with pytest.raises(ValueError, match="bits"):
        lowbit.Int4Linear(w, bits=5)
    with pytest.raises(ValueError, match="group_size"):
        lowbit.Int4Linear(w, group_size=30)
    with pytest.raises(TypeError, match="group_size"):
        lowbit.Int4Linear(w, group_size=32.0)
    with pytest.raises(ValueError, match="method"):
        lowbit.Int4Linear(w, method="awq")
    with pytest.raises(ValueError, match="needs calibration"):
        lowbit.Int4Linear(w, method="gptq")
    with pytest.raises(ValueError, match="gptq' only"):
        lowbit.Int4Linear(w, calibration=np.ones((4, 40), np.float32))
    with pytest.raises(ValueError, match="calibration must have shape"):
        lowbit.Int4Linear(w, method="gptq", calibration=np.ones((4, 41), np.float32))
    with pytest.raises(ValueError, match="calibration"):
        lowbit.Int4Linear(w, method="gptq", calibration=np.full((4, 40), np.nan, np.float32))
    with pytest.raises(ValueError, match="weight"):
        lowbit.Int4Linear(np.full((2, 8), np.inf, np.float32))
    layer = lowbit.Int4Linear(w, b)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 40\)"):
        layer(np.ones((2, 39), np.float32))
    x = np.ones((2, 40), np.float32)
    x[1, 3] = np.nan
    with pytest.raises(ValueError, match="x"):
        layer(x)
    with pytest.raises(TypeError, match="x"):
        layer(np.ones((2, 40), np.int32))
