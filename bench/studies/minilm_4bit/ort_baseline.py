"""Exact ONNX Runtime MatMulNBits numerics: quantize a one-node MatMul graph holding W^T with
onnxruntime.quantization.matmul_nbits_quantizer, then run it on the identity to read back W_hat."""
import logging
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper
import onnxruntime as ort
from onnxruntime.quantization import matmul_nbits_quantizer as mnq

logging.getLogger().setLevel(logging.ERROR)


def _graph(W):
    K = W.shape[1]
    B = numpy_helper.from_array(np.ascontiguousarray(W.T.astype(np.float32)), "B")
    node = helper.make_node("MatMul", ["X", "B"], ["Y"], name="mm")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, K])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, W.shape[0]])], [B])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])


def ort_quantize_weight(W, bits=4, block_size=32, sym=False, algo="default"):
    """Returns (W_hat[out,in] float64, bits_per_weight, model_after_quant)."""
    m = _graph(W)
    if algo == "hqq":
        cfg = mnq.HQQWeightOnlyQuantConfig(block_size=block_size, bits=bits)
    else:
        cfg = mnq.DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=sym, bits=bits,
                                               accuracy_level=0)
    q = mnq.MatMulNBitsQuantizer(m, algo_config=cfg)
    q.process()
    qm = q.model.model
    ops = [n.op_type for n in qm.graph.node]
    assert "MatMulNBits" in ops, ops
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(qm.SerializeToString(), so, providers=["CPUExecutionProvider"])
    K = W.shape[1]
    What = sess.run(None, {"X": np.eye(K, dtype=np.float32)})[0].T.astype(np.float64)
    # storage actually used by the quantized node's initializers (codes + scales + zero points)
    nbytes = sum(numpy_helper.to_array(t).nbytes for t in qm.graph.initializer)
    return What, 8.0 * nbytes / W.size, qm


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    W = rng.standard_normal((384, 384)) * 0.05
    for bits in (4, 3, 2):
        for bs in (32, 64):
            try:
                Wh, bpw, qm = ort_quantize_weight(W, bits, bs)
                print(bits, bs, "bpw %.3f" % bpw, "rel err %.4f" % (np.linalg.norm(Wh - W) / np.linalg.norm(W)),
                      [(t.name, t.data_type, list(t.dims)) for t in qm.graph.initializer])
            except Exception as e:
                print(bits, bs, "FAILED", type(e).__name__, str(e)[:200])
    Wh, bpw, qm = ort_quantize_weight(W, 4, 32, algo="hqq")
    print("hqq", "bpw %.3f" % bpw, np.linalg.norm(Wh - W) / np.linalg.norm(W), [(t.name, t.data_type, list(t.dims)) for t in qm.graph.initializer])
