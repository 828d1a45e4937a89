"""4-bit linear layers: lowbit's 4-bit kernels against its int8 layer and ONNX Runtime's
MatMulNBits, side by side, at M = 1 (a GEMV: streaming the weight is the cost) and M = 32.

A (4096, 4096) float32 weight (quick mode: (512, 1024)) and its bias, as:

  * ``lowbit.Int4Linear``, group 32 and group 128 (4-bit codes, a binary16 scale and a zero
    point per group; int8 activations per row);
  * ``lowbit.QuantizedLinear(bits=4)`` (per-channel 4-bit weights held two a byte, read as held
    by the gemm4 kernels for up to 4 rows);
  * ``lowbit.QuantizedLinear`` (int8 weights): the reference of the ratios;
  * ONNX Runtime's ``MatMulNBits`` holding the same 4-bit weights as the group-32 Int4Linear
    (``lowbit.export_onnx``), with float activations (accuracy_level 0) and with int8
    activations (accuracy_level 4, its int8 kernels), when onnxruntime is installed.

Every variant's output is checked against the float layer first (SQNR in dB, shown). Columns:
ms per call (median of interleaved rounds), GB/s of weight bytes held, the speed-up over lowbit's
int8 layer, and the spread of the rounds.
"""
from __future__ import annotations

import numpy as np

import lowbit

from . import common

SHAPE = (4096, 4096)
QUICK_SHAPE = (512, 1024)
ROWS = (1, 32)
INT8 = "lowbit QuantizedLinear int8"


def _ort_matmulnbits(layer, level: int, threads: int):
    """An ONNX Runtime session of `layer` (an Int4Linear) as MatMulNBits at accuracy_level
    `level`, or None without onnxruntime/onnx."""
    if common.optional_import("onnxruntime") is None or common.optional_import("onnx") is None:
        return None
    from lowbit.onnx_export import to_onnx

    m = to_onnx([layer])
    for node in m.graph.node:
        if node.op_type == "MatMulNBits":
            node.attribute.append(__import__("onnx").helper.make_attribute("accuracy_level", level))
    return common.ort_session(m, threads)


def build_layers(w: np.ndarray, b: np.ndarray) -> dict:
    """{name: (layer or None, weight bytes held)} of the lowbit variants."""
    layers = {
        "lowbit Int4Linear g32": lowbit.Int4Linear(w, b, group_size=32),
        "lowbit Int4Linear g128": lowbit.Int4Linear(w, b, group_size=128),
        "lowbit QuantizedLinear bits=4": lowbit.QuantizedLinear(w, b, bits=4),
        INT8: lowbit.QuantizedLinear(w, b),
    }
    return {name: (layer, layer.nbytes - b.nbytes) for name, layer in layers.items()}


def build_cases(w, b, x, threads: int, layers: dict) -> tuple[list, dict, dict]:
    """(cases for common.measure, {name: weight bytes}, {name: SQNR dB vs float}) at one batch."""
    ref = x @ w.T + b
    cases, nbytes, sqnr = [], {}, {}
    for name, (layer, held) in layers.items():
        y = layer(x)
        sqnr[name] = lowbit.sqnr(ref, y)
        cases.append((name, lambda layer=layer: layer(x)))
        nbytes[name] = held
    int4 = layers["lowbit Int4Linear g32"][0]
    for level, label in ((0, "float activations"), (4, "int8 activations")):
        sess = _ort_matmulnbits(int4, level, threads)
        if sess is None:
            continue
        name = f"ORT MatMulNBits g32, {label}"
        y = sess.run(None, {"x": x})[0]
        sqnr[name] = lowbit.sqnr(ref, y)
        if sqnr[name] < sqnr["lowbit Int4Linear g32"] - 3:
            raise AssertionError(f"{name}: SQNR {sqnr[name]:.1f} dB, far below lowbit's on the same weights")
        cases.append((name, lambda sess=sess: sess.run(None, {"x": x})))
        nbytes[name] = int4.nbytes - b.nbytes
    return cases, nbytes, sqnr


def main(threads="1,2", repeat=7, quick=False, shape=None) -> int:
    """Prints one table per batch size and thread count. Returns 0."""
    thread_list = common.parse_threads(threads)
    repeat = common.check_repeat(repeat)
    shape = tuple(shape) if shape is not None else (QUICK_SHAPE if quick else SHAPE)
    rng = np.random.default_rng(0)
    w = rng.standard_normal(shape).astype(np.float32) / np.sqrt(shape[1])
    b = rng.standard_normal(shape[0]).astype(np.float32)
    common.progress(f"[fourbit] quantizing a {shape[0]}x{shape[1]} weight ...")
    layers = build_layers(w, b)
    for t in thread_list:
        for m in ROWS:
            x = rng.standard_normal((m, shape[1])).astype(np.float32)
            common.progress(f"[fourbit] M={m}, {t} thread(s) ...")
            with common.Threads(t):
                cases, nbytes, sqnr = build_cases(w, b, x, t, layers)
                timings = common.measure(cases, repeat=repeat, min_sample=0.02 if quick else 0.05)
                header = common.describe(t, peers=("onnxruntime",))
            ref = timings[INT8].median
            rows = [(name, f"{nbytes[name] / 2**20:.2f}", f"{tm.median * 1e3:.3f}",
                     f"{nbytes[name] / tm.median / 1e9:.1f}", common.fmt_ratio(ref, tm.median),
                     f"{sqnr[name]:.1f}", f"{tm.spread:.1%}")
                    for name, tm in timings.items()]
            print("\n".join([f"== 4-bit linear layers: M={m} x K={shape[1]} -> N={shape[0]}, {t} thread(s) =="]
                            + header))
            print(common.format_table(["layer", "weights MiB", "ms", "GB/s weights", "vs int8",
                                       "SQNR dB", "spread"], rows))
            print(common.noise_summary(timings.values()))
            print()
    return 0
