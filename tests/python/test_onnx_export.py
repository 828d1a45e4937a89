"""ONNX export in QDQ form, run by ONNX Runtime, against lowbit's own outputs."""
import numpy as np
import pytest

import lowbit
from lowbit import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from lowbit.onnx_export import export_onnx, to_onnx  # noqa: E402


def _run(model_proto, x, level="all"):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                     "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    sess = ort.InferenceSession(model_proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    model = nn.MLP([64, 48, 32, 10], seed=1)
    nn.fit(model, x[:1200], d.target[:1200], epochs=15, lr=3e-3, seed=0)
    return model, x[:1200], x[1200:]


def test_float_model_exports_exactly():
    m = nn.Sequential([nn.Linear(8, 16, seed=1), nn.GELU(), nn.LayerNorm(16), nn.Dropout(0.5),
                       nn.Linear(16, 12, seed=2), nn.GELU(approximate="none"), nn.ReLU(),
                       nn.Linear(12, 5, seed=3, bias=False), nn.Softmax()])
    x = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(to_onnx(m), x), m(x), rtol=1e-4, atol=1e-5)


def test_qdq_structure(digits):
    model, calib, _ = digits
    q = lowbit.quantize_model(model, calib)
    ops = [n.op_type for n in to_onnx(q).graph.node]
    assert ops.count("QuantizeLinear") == 3 and ops.count("DequantizeLinear") == 6
    assert ops.count("MatMul") == 3 and ops.count("Relu") == 2
    inits = {i.name: i for i in to_onnx(q).graph.initializer}
    weights = [i for i in inits.values() if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2]
    assert len(weights) == 3


def test_onnxruntime_matches_lowbit_static(digits, tmp_path):
    model, calib, test = digits
    q = lowbit.quantize_model(model, calib, method="percentile")
    path = tmp_path / "q.onnx"
    export_onnx(q, path)
    proto = onnx.load(str(path))
    # Without QDQ fusion ORT computes the graph's float semantics: quantize, dequantize, float
    # MatMul, as lowbit's unfused QuantizedModel does, so they agree up to float rounding.
    got = _run(proto, test, "basic")
    unfused = lowbit.QuantizedModel(q.layers, fuse=False)(test)
    assert lowbit.sqnr(unfused, got) > 60
    fused = q(test)  # integer chain, requantized in the epilogue: within quantization tolerance
    assert lowbit.sqnr(fused, got) > 30
    assert np.mean(fused.argmax(1) == got.argmax(1)) > 0.99
    assert lowbit.sqnr(model(test), got) > 25


def test_onnxruntime_fused_int8_kernels_match_lowbit_fused_chain(digits):
    model, calib, test = digits
    # With full optimization ORT fuses Q/DQ into integer QGemm kernels that requantize to the
    # next layer's input like lowbit's fused chain. 7-bit weights keep ORT's AVX2 u8s8 kernel
    # (vpmaddubsw) from saturating its int16 pair sums; then the two integer pipelines agree.
    q7 = lowbit.quantize_model(model, calib, bits=7)
    got = _run(to_onnx(q7), test, "all")
    assert lowbit.sqnr(q7(test), got) > 80
    assert np.array_equal(q7(test).argmax(1), got.argmax(1))
    # 8-bit weights: exact on VNNI/ARM hosts; on AVX2-only hosts ORT's saturation costs accuracy
    q8 = lowbit.quantize_model(model, calib)
    got8 = _run(to_onnx(q8), test, "all")
    assert np.mean(q8(test).argmax(1) == got8.argmax(1)) > 0.95


def test_onnxruntime_matches_lowbit_dynamic_and_int4(digits):
    model, _, test = digits
    layers = [lowbit.QuantizedLinear(l.weight, l.bias, bits=4 if i == 2 else 8) if isinstance(l, nn.Linear)
              else l for i, l in enumerate(model.layers)]
    dyn = nn.Sequential(layers)
    got = _run(to_onnx(dyn), test)
    assert lowbit.sqnr(dyn(test), got) > 25  # per-tensor (ONNX) vs per-row (lowbit) activations
    assert np.mean(dyn(test).argmax(1) == got.argmax(1)) > 0.98


def test_binary_layers_export_as_float():
    rng = np.random.default_rng(3)
    bl = lowbit.BinaryLinear(rng.standard_normal((4, 6)).astype(np.float32), quantize_input=False)
    m = nn.Sequential([bl])
    x = rng.standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_allclose(_run(to_onnx(m), x), bl(x), rtol=1e-5, atol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="no ONNX export"):
        to_onnx(nn.Sequential([nn.Linear(3, 2), lambda v: v]))
    with pytest.raises(ValueError, match="opset"):
        to_onnx(nn.Sequential([nn.Linear(3, 2)]), opset=11)
    with pytest.raises(TypeError, match="path"):
        export_onnx(nn.Sequential([nn.Linear(3, 2)]), 5)


def test_rotated_int4_linear_exports_with_its_rotation():
    rng = np.random.default_rng(12)
    layer = lowbit.Int4Linear(rng.standard_normal((24, 256)).astype(np.float32), group_size=32, rotate=True)
    x = rng.standard_normal((5, 256)).astype(np.float32)
    got = _run(to_onnx([layer]), x)
    assert lowbit.sqnr(layer(x), got) > 35  # int8 per-row (lowbit) vs float (MatMulNBits) activations


def test_int4_linear_exports_as_matmulnbits_holding_its_codes(tmp_path):
    rng = np.random.default_rng(8)
    l1 = lowbit.Int4Linear(rng.standard_normal((40, 70)).astype(np.float32),
                           rng.standard_normal(40).astype(np.float32), group_size=32)
    l2 = lowbit.Int4Linear(rng.standard_normal((9, 40)).astype(np.float32), bits=3, group_size=16)
    layers = [l1, nn.ReLU(), l2]
    m = to_onnx(layers)
    assert [n.op_type for n in m.graph.node if n.domain == "com.microsoft"] == ["MatMulNBits"] * 2
    held = sum(i.dims[0] * (i.dims[1] * i.dims[2] if len(i.dims) == 3 else 1)
               for i in m.graph.initializer if i.data_type == onnx.TensorProto.UINT8)
    # codes and zero points stay 4-bit in the file: per row, blocks * group / 2 + ceil(blocks / 2) bytes
    assert held == 40 * (3 * 16 + 2) + 9 * (3 * 8 + 2)
    export_onnx(layers, tmp_path / "m.onnx")
    x = rng.standard_normal((5, 70)).astype(np.float32)
    y = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    # ONNX Runtime: float activations times the dequantized 4-bit weights
    ref = np.maximum(x @ l1.weight.T + l1.bias, 0) @ l2.weight.T
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    with pytest.raises(ValueError, match="block_size"):
        to_onnx([lowbit.Int4Linear(rng.standard_normal((4, 48)).astype(np.float32), group_size=24)])
