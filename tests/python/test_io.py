"""lowbit.save / lowbit.load: round trips of every object, and every kind of broken file."""
import hashlib
import json
import os
import struct

import numpy as np
import pytest

import lowbit
from lowbit import io as lio
from lowbit import nn


def _rng(seed=0):
    return np.random.default_rng(seed)


def roundtrip(obj, tmp_path, name="obj.lowbit"):
    p = tmp_path / name
    lowbit.save(obj, p)
    return lowbit.load(p)


def crafted(header: dict, payload: bytes = b"", *, version=lio.VERSION, magic=lio.MAGIC) -> bytes:
    """A file with a valid checksum around an arbitrary header (to test the checks after it)."""
    h = json.dumps(header).encode()
    digest = hashlib.sha256(h + payload).digest()
    return struct.pack("<8sIIQQ32s", magic, version, 0, len(h), len(payload), digest) + h + payload


# ------------------------------------------------------------------ round trips

@pytest.mark.parametrize("kw", [dict(bits=8), dict(bits=8, symmetric=False), dict(bits=4, axis=0),
                                dict(bits=3, symmetric=False, axis=1), dict(bits=2)])
def test_qtensor_round_trip(tmp_path, kw):
    x = _rng(1).standard_normal((7, 9)).astype(np.float32)
    q = lowbit.quantize(x, **kw)
    r = roundtrip(q, tmp_path)
    assert isinstance(r, lowbit.QTensor)
    assert (r.shape, r.bits, r.axis, r.symmetric) == (q.shape, q.bits, q.axis, q.symmetric)
    np.testing.assert_array_equal(r.int_repr(), q.int_repr())
    np.testing.assert_array_equal(r.scale, q.scale)
    np.testing.assert_array_equal(r.zero_point, q.zero_point)
    np.testing.assert_array_equal(r.dequantize(), q.dequantize())
    assert r.nbytes == q.nbytes


def test_packed_int8_round_trip(tmp_path):
    b = _rng(2).integers(-128, 128, (33, 17)).astype(np.int8)
    r = roundtrip(lowbit.pack_int8(b), tmp_path)
    np.testing.assert_array_equal(r.unpack(), b)
    a = _rng(3).integers(0, 256, (5, 33)).astype(np.uint8)
    np.testing.assert_array_equal(lowbit.matmul_int8(a, r), lowbit.matmul_int8(a, b))


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("bits,per_channel", [(8, True), (4, False)])
def test_quantized_linear_round_trip(tmp_path, static, bits, per_channel):
    rng = _rng(4)
    w, b = rng.standard_normal((12, 20)).astype(np.float32), rng.standard_normal(12).astype(np.float32)
    kw = dict(act_scale=0.02, act_zero_point=128) if static else {}
    layer = lowbit.QuantizedLinear(w, b, bits=bits, per_channel=per_channel, **kw)
    r = roundtrip(layer, tmp_path)
    x = rng.standard_normal((6, 20)).astype(np.float32)
    np.testing.assert_array_equal(r(x), layer(x))
    np.testing.assert_array_equal(r.weight_q.int_repr(), layer.weight_q.int_repr())
    assert (r.act_scale, r.act_zero_point, r.bits, r.per_channel) == \
        (layer.act_scale, layer.act_zero_point, bits, per_channel)
    if static:
        codes = rng.integers(0, 256, (3, 20)).astype(np.uint8)
        np.testing.assert_array_equal(r.forward_quantized(codes, 0.05, 10),
                                      layer.forward_quantized(codes, 0.05, 10))


def _float_model():
    return nn.Sequential([nn.Linear(8, 16, seed=1), nn.GELU(), nn.LayerNorm(16), nn.Dropout(0.3),
                          nn.Linear(16, 12, seed=2), nn.ReLU(), nn.Linear(12, 4, seed=3, bias=False),
                          nn.Softmax()])


def test_nn_model_round_trip(tmp_path):
    m = _float_model()
    m.layers[2].weight[:] = _rng(5).standard_normal(16)
    r = roundtrip(m, tmp_path)
    assert [type(l) for l in r.layers] == [type(l) for l in m.layers]
    x = _rng(6).standard_normal((5, 8)).astype(np.float32)
    np.testing.assert_array_equal(r(x), m(x))
    assert r.layers[3].p == 0.3 and r.layers[6].bias is None
    mlp = nn.MLP([8, 10, 3], activation="gelu", dropout=0.1, seed=7)
    r2 = roundtrip(mlp, tmp_path, "mlp.lowbit")
    assert isinstance(r2, nn.MLP) and r2.sizes == [8, 10, 3]
    np.testing.assert_array_equal(r2(x), mlp(x))


def test_quantized_model_round_trip(tmp_path):
    m = _float_model()
    x = _rng(8).standard_normal((64, 8)).astype(np.float32)
    q = lowbit.quantize_model(m, x)
    r = roundtrip(q, tmp_path)
    assert isinstance(r, lowbit.QuantizedModel)
    np.testing.assert_array_equal(r(x), q(x))


def test_nonlinear_and_compress_round_trips(tmp_path):
    rng = _rng(9)
    w = rng.standard_t(3, (10, 16)).astype(np.float32)
    for obj in (lowbit.quantize_pow2(w, bits=4, axis=0), lowbit.quantize_pow2(w, bits=6),
                lowbit.compand(w, method="mu-law", bits=4), lowbit.compand(w, method="sigmoid", axis=0),
                lowbit.binarize(w)):
        r = roundtrip(obj, tmp_path)
        assert type(r) is type(obj)
        np.testing.assert_array_equal(r.dequantize(), obj.dequantize())
    bl = lowbit.BinaryLinear(w, rng.standard_normal(10).astype(np.float32))
    x = rng.standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_array_equal(roundtrip(bl, tmp_path)(x), bl(x))


def test_plain_containers_round_trip(tmp_path):
    obj = {"a": np.arange(5, dtype=np.int16), "b": [1, 2.5, "s", None, True], "c": (3, 4),
           "d": {"nested": np.ones((2, 0), np.float64)}, "e": float("inf"),
           "f": np.array(3.5, np.float32), "g": np.array([True, False])}
    r = roundtrip(obj, tmp_path)
    assert r["b"] == [1, 2.5, "s", None, True] and r["c"] == (3, 4) and r["e"] == float("inf")
    assert r["a"].dtype == np.int16 and r["d"]["nested"].shape == (2, 0)
    assert r["f"].shape == () and r["g"].dtype == np.bool_


def test_codebook_round_trip_when_present(tmp_path):
    if not hasattr(lowbit, "kmeans"):
        pytest.skip("lowbit.kmeans (the codebook area) is not there yet")
    cb = lowbit.kmeans(_rng(10).standard_normal((16, 8)).astype(np.float32), 8)
    r = roundtrip(cb, tmp_path)
    np.testing.assert_array_equal(r.decode(), cb.decode())


def test_registry_accepts_new_types(tmp_path):
    class Toy:
        def __init__(self, v, name):
            self.v, self.name = v, name

    lio.register("test.Toy", Toy, lambda t: {"v": t.v, "name": t.name},
                 lambda s: Toy(lio.need_array(s, "v", "Toy"), lio.need(s, "name", str, "Toy")))
    r = roundtrip([Toy(np.arange(3), "x")], tmp_path)
    assert r[0].name == "x" and list(r[0].v) == [0, 1, 2]
    assert "test.Toy" in lio.registered_types()


def test_unsavable_objects_raise_type_error(tmp_path):
    with pytest.raises(TypeError, match="not savable"):
        lowbit.save(object(), tmp_path / "x")
    with pytest.raises(TypeError, match="dtype"):
        lowbit.save(np.array(["a"]), tmp_path / "x")
    with pytest.raises(TypeError, match="keys"):
        lowbit.save({1: 2}, tmp_path / "x")
    with pytest.raises(TypeError, match="path"):
        lowbit.save(1, 3)
    assert not (tmp_path / "x").exists()
    assert [f for f in os.listdir(tmp_path)] == []  # no temporary file left behind


def test_no_pickle_in_files(tmp_path):
    p = tmp_path / "m.lowbit"
    lowbit.save(_float_model(), p)
    data = p.read_bytes()
    assert data[:8] == lio.MAGIC and b"\x80\x04" not in data[:200]


# ------------------------------------------------------------------ corruption

@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("io") / "good.lowbit"
    x = _rng(11).standard_normal((4, 6)).astype(np.float32)
    lowbit.save({"q": lowbit.quantize(x, bits=4, axis=0), "layer": lowbit.QuantizedLinear(x)}, p)
    return p.read_bytes()


def _load_bytes(tmp_path, data, name="bad.lowbit"):
    p = tmp_path / name
    p.write_bytes(data)
    return lowbit.load(p)


def test_good_file_loads(tmp_path, good_file):
    r = _load_bytes(tmp_path, good_file)
    assert set(r) == {"q", "layer"}


def test_every_truncation_raises_value_error(good_file):
    for n in range(len(good_file)):
        with pytest.raises(ValueError):
            lio.loads(good_file[:n])


def test_every_flipped_byte_raises_value_error(good_file):
    for i in range(len(good_file)):
        bad = bytearray(good_file)
        bad[i] ^= 0x40
        with pytest.raises(ValueError):
            lio.loads(bytes(bad))


def test_flipped_bit_messages(tmp_path, good_file):
    bad = bytearray(good_file)
    bad[-1] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        _load_bytes(tmp_path, bytes(bad))
    with pytest.raises(ValueError, match="truncated"):
        _load_bytes(tmp_path, good_file[:-1])
    with pytest.raises(ValueError, match="trailing"):
        _load_bytes(tmp_path, good_file + b"\x00")


def test_wrong_magic_and_version(tmp_path, good_file):
    with pytest.raises(ValueError, match="magic"):
        _load_bytes(tmp_path, b"NOTLOWBT" + good_file[8:])
    v2 = good_file[:8] + struct.pack("<I", 2) + good_file[12:]
    with pytest.raises(ValueError, match="version 2"):
        _load_bytes(tmp_path, v2)
    with pytest.raises(ValueError, match="version"):
        lio.loads(crafted({"format": "lowbit", "root": None, "arrays": []}, version=0))


def test_foreign_files(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.ones(3))
    (tmp_path / "b.txt").write_text("hello, this is a text file that is long enough to matter\n" * 3)
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    (tmp_path / "d").write_bytes(b"")
    np.save(tmp_path / "e.npy", np.arange(10))
    for name in ("a.npz", "b.txt", "c.png", "d", "e.npy"):
        with pytest.raises(ValueError):
            lowbit.load(tmp_path / name)
    with pytest.raises(ValueError, match="directory"):
        lowbit.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        lowbit.load(tmp_path / "missing")


@pytest.mark.parametrize("header,payload,match", [
    ({"format": "lowbit", "root": {"__object__": "Evil", "state": {"__dict__": {}}}, "arrays": []},
     b"", "unknown type"),
    ({"format": "other", "root": 1, "arrays": []}, b"", "not a lowbit header"),
    ({"format": "lowbit", "root": {"__array__": 0}, "arrays": []}, b"", "array reference"),
    ({"format": "lowbit", "root": {"__array__": 0},
      "arrays": [{"dtype": "<f4", "shape": [4], "offset": 0, "nbytes": 16}]}, b"\x00" * 8, "fit"),
    ({"format": "lowbit", "root": {"__array__": 0},
      "arrays": [{"dtype": "|O", "shape": [1], "offset": 0, "nbytes": 8}]}, b"\x00" * 8, "dtype"),
    ({"format": "lowbit", "root": {"__array__": 0},
      "arrays": [{"dtype": "<f4", "shape": [-1], "offset": 0, "nbytes": 4}]}, b"\x00" * 4, "shape"),
    ({"format": "lowbit", "root": {"__object__": "QTensor", "state": {"__dict__": {"shape": [3]}}},
      "arrays": []}, b"", "invalid QTensor"),
    ({"format": "lowbit", "root": {"weird": 1}, "arrays": []}, b"", "unexpected"),
])
def test_well_checksummed_but_invalid_contents(header, payload, match):
    with pytest.raises(ValueError, match=match):
        lio.loads(crafted(header, payload))


def test_bad_json_with_valid_checksum():
    body = b"{not json"
    digest = hashlib.sha256(body).digest()
    data = struct.pack("<8sIIQQ32s", lio.MAGIC, lio.VERSION, 0, len(body), 0, digest) + body
    with pytest.raises(ValueError, match="JSON"):
        lio.loads(data)


def test_qtensor_state_mismatch_is_value_error(good_file):
    # a QTensor whose codes do not match its shape, with a valid checksum
    q = lowbit.quantize(np.ones((2, 2), np.float32))
    data = lio.dumps(q)
    hlen = struct.unpack_from("<Q", data, 16)[0]
    header = json.loads(data[64:64 + hlen])
    header["root"]["state"]["__dict__"]["shape"]["__tuple__"] = [3, 3]
    with pytest.raises(ValueError, match="QTensor"):
        lio.loads(crafted(header, data[64 + hlen:]))


def test_quantized_linear_with_foreign_codes_keeps_them_exactly(tmp_path):
    # codes that lowbit.quantize would not produce (max |code| < 127): loading must not
    # re-quantize them
    rng = _rng(12)
    codes = rng.integers(-50, 51, (6, 10)).astype(np.int8)
    scale = rng.uniform(0.01, 0.1, 6).astype(np.float32)
    wq = lowbit.QTensor.from_codes(codes, scale, axis=0)
    bias = rng.standard_normal(6).astype(np.float32)
    state = {"weight_q": wq, "bias": bias, "bits": 8, "per_channel": True, "act_scale": 0.05,
             "act_zero_point": 7}
    layer = lio._BY_NAME["QuantizedLinear"].from_state(state)
    np.testing.assert_array_equal(layer.weight_q.int_repr(), codes)
    x = rng.standard_normal((4, 10)).astype(np.float32)
    xq = lowbit.quantize(x, symmetric=False, scale=0.05, zero_point=7).int_repr().astype(np.float64)
    want = ((xq - 7) * np.float32(0.05)) @ (codes.astype(np.float64) * scale[:, None]).T + bias
    for lay in (layer, roundtrip(layer, tmp_path)):
        np.testing.assert_allclose(lay(x), want, rtol=1e-5, atol=1e-5)
        dyn = lio._BY_NAME["QuantizedLinear"].from_state(dict(state, act_scale=None, act_zero_point=None))
        qx = lowbit.quantize(x, axis=0, symmetric=False)  # per-row dynamic activations
        xd = (qx.int_repr().astype(np.float64) - qx.zero_point[:, None]) * qx.scale[:, None]
        np.testing.assert_allclose(dyn(x), xd @ (codes.astype(np.float64) * scale[:, None]).T + bias,
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(dyn.weight_q.int_repr(), codes)
