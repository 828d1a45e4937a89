"""int8 GEMM and QuantizedLinear benchmark against numpy, ONNX Runtime and torch, side by side.

Shapes are M x K x N (activations (M, K), weights (K, N) -- for the layers (N, K) like
torch.nn.Linear). At every shape and thread count all tools below are timed interleaved in one
run; GOP/s = 2*M*N*K / time.

Exact integer GEMM (int32 out):
  * ``lowbit.matmul_int8(a_u8, lowbit.pack_int8(b))`` -- weights packed once
  * ONNX Runtime ``MatMulInteger`` with B as a constant initializer (ORT prepacks it), A uint8
    ("u8s8", ORT's usual path) and A int8 ("s8s8"); and "u8u8": A uint8, B uint8 = lowbit's
    int8 weights + 128 with ``b_zero_point`` = 128 as a constant initializer, so that
    A (B - 128) is the same exact product (ORT's u8u8 kernels widen to int16: exact on full
    range, where u8s8 saturates on AVX2)
  * ``torch._int_mm(a_s8, b_s8)``: both int8, 2-D, ``a.size(1) == b.size(0)``; on CPU it has no
    shape constraints (the CUDA ones -- M > 16, K and N multiples of 8 -- do not apply). We pass
    ``a`` (M, K) and ``b`` (K, N) contiguous. torch uses oneDNN only on CPUs with AVX-512 VNNI;
    elsewhere it runs a naive loop, and shapes it would need seconds for are skipped.
  Activations are drawn in 0..127 so that the same numbers are valid uint8 and int8: every
  tool multiplies identical values and must return identical int32 results (checked). Which
  tools stay exact on full-range inputs (u8 0..255 / s8 -128..127) is checked separately and
  reported: ORT's u8s8 kernels on AVX2 saturate in int16 (vpmaddubsw).

Float in, float out (dynamic activation quantization included):
  * ``lowbit.QuantizedLinear(W, bias)`` (per output channel int8 weights, per row u8 activations)
  * ONNX Runtime ``DynamicQuantizeMatMul`` (com.microsoft): the same int8 weight codes as lowbit,
    (K, N), with lowbit's per-column scales and the bias, as initializers; ORT quantizes A per
    tensor.
  * ``torch.ao.nn.quantized.dynamic.Linear`` made by ``torch.ao.quantization.quantize_dynamic``
    on an ``nn.Linear`` holding W and bias (qint8, per-channel weight qconfig; its forward
    quantizes activations per tensor with reduce_range=True, 7-bit codes).
  Each is checked against the float result (SQNR) and against lowbit's before timing.

numpy float32 ``x @ W^T`` is the float baseline of both. A tiny shape (1 x 64 x 64) measures the
per-call overhead from Python.

Every GOP/s table has lowbit's "% peak": its GOP/s / (int8 peak per core x threads), the peak
measured on this core at the start of the run (:func:`lowbit_bench.peak.measured_peaks`: the
best exact int8 loop of the kernel set lowbit runs) unless ``main(peak=...)`` gives one.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

import lowbit

from . import common

SHAPES = [(1, 4096, 4096), (8, 4096, 4096), (32, 4096, 4096), (128, 768, 3072),
          (512, 1024, 1024), (2048, 2048, 2048), (64, 512, 512),
          (540, 64, 512), (540, 512, 512)]  # the demo's layers at its batch of 540 (lowbit demo)
QUICK_SHAPES = [(64, 512, 512), (128, 768, 3072)]
OVERHEAD_SHAPE = (1, 64, 64)

# ONNX: opset 13 (MatMulInteger exists since 10) and the com.microsoft domain version 1, in an
# IR version 7 model -- accepted by every onnxruntime release since 1.6.
ONNX_OPSET = 13
ONNX_IR_VERSION = 7

#: int GEMM tools, then the float-in/float-out tools (column order of the tables)
INT_TOOLS = ["lowbit matmul_int8", "ORT MatMulInteger u8s8", "ORT MatMulInteger s8s8",
             "ORT MatMulInteger u8u8", "torch._int_mm"]
FLOAT_TOOLS = ["lowbit QuantizedLinear", "ORT DynamicQuantizeMatMul", "torch dynamic Linear"]
#: the 7-bit settings (exact on every ISA; faster on AVX2 without VNNI): matmul_int8 on
#: activations in 0..127 and weights in -64..63 (b >> 1) against ONNX Runtime's u8s8 kernel on the
#: same operands (which cannot saturate there), and QuantizedLinear(bits=7, act_bits=7)
SEVEN_TOOLS = ["lowbit matmul_int8 7-bit", "ORT MatMulInteger u8s8 7-bit",
               "lowbit QuantizedLinear 7/7"]
NUMPY = "numpy f32 matmul"

#: torch._int_mm calls predicted to take longer than this (naive loop) are skipped
TORCH_INT_MM_MAX_SECONDS = 2.0
#: calls slower than this are timed once instead of repeat times
MAX_CALL = 0.5


def shape_name(shape) -> str:
    return "x".join(str(s) for s in shape)


@dataclass
class Problem:
    """The inputs of one shape: integer operands and a float linear layer."""

    m: int
    k: int
    n: int
    a: np.ndarray        # (M, K) uint8 in 0..127 (the same numbers as int8)
    b: np.ndarray        # (K, N) int8, full range
    x: np.ndarray        # (M, K) float32 activations
    w: np.ndarray        # (N, K) float32 weight, torch.nn.Linear layout
    bias: np.ndarray     # (N,) float32

    @property
    def ops(self) -> float:
        return 2.0 * self.m * self.n * self.k


def make_problem(m: int, k: int, n: int, seed: int = 0) -> Problem:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 128, (m, k), dtype=np.uint8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32) / np.float32(math.sqrt(k))
    bias = rng.standard_normal(n, dtype=np.float32) * np.float32(0.1)
    return Problem(m, k, n, a, b, x, w, bias)


# ----------------------------------------------------------------------------------------------
# peers
# ----------------------------------------------------------------------------------------------
def _onnx_model(node, inputs, outputs, initializers, domains=()):
    onnx = common.optional_import("onnx")
    from onnx import helper

    graph = helper.make_graph([node], "lowbit_bench", inputs, outputs, initializer=initializers)
    opsets = [helper.make_opsetid("", ONNX_OPSET)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=ONNX_IR_VERSION,
                              producer_name="lowbit_bench")
    onnx.checker.check_model(model)
    return model


def onnx_matmul_integer(b: np.ndarray, a_dtype=np.uint8):
    """An ONNX model Y = MatMulInteger(A, B) with B (K, N) int8 as a constant initializer."""
    common.optional_import("onnx")
    from onnx import TensorProto, helper, numpy_helper

    k, n = b.shape
    elem = TensorProto.UINT8 if np.dtype(a_dtype) == np.uint8 else TensorProto.INT8
    return _onnx_model(helper.make_node("MatMulInteger", ["A", "B"], ["Y"]),
                       [helper.make_tensor_value_info("A", elem, [None, k])],
                       [helper.make_tensor_value_info("Y", TensorProto.INT32, [None, n])],
                       [numpy_helper.from_array(np.ascontiguousarray(b), "B")])


def onnx_matmul_integer_u8u8(b: np.ndarray):
    """An ONNX model Y = MatMulInteger(A, B_u8, , b_zero_point) with A uint8, B_u8 = b + 128
    (K, N) uint8 and b_zero_point = 128 (a scalar) as constant initializers: Y = A (B_u8 - 128)
    = A b, the product lowbit computes from the int8 weights b."""
    common.optional_import("onnx")
    from onnx import TensorProto, helper, numpy_helper

    k, n = b.shape
    b_u8 = np.ascontiguousarray(b, np.int8).view(np.uint8) ^ np.uint8(0x80)  # b + 128
    return _onnx_model(helper.make_node("MatMulInteger", ["A", "B", "", "b_zero_point"], ["Y"]),
                       [helper.make_tensor_value_info("A", TensorProto.UINT8, [None, k])],
                       [helper.make_tensor_value_info("Y", TensorProto.INT32, [None, n])],
                       [numpy_helper.from_array(b_u8, "B"),
                        numpy_helper.from_array(np.array(128, np.uint8), "b_zero_point")])


def onnx_dynamic_quantize_matmul(codes_kn: np.ndarray, scale: np.ndarray, bias=None):
    """An ONNX model Y = DynamicQuantizeMatMul(A, B, b_scale, , bias) (com.microsoft domain):
    B (K, N) int8 codes, b_scale per column (N,) or a scalar, symmetric (no zero point)."""
    common.optional_import("onnx")
    from onnx import TensorProto, helper, numpy_helper

    k, n = codes_kn.shape
    inits = [numpy_helper.from_array(np.ascontiguousarray(codes_kn, np.int8), "B"),
             numpy_helper.from_array(np.asarray(scale, np.float32), "b_scale")]
    inputs = ["A", "B", "b_scale", ""]
    if bias is not None:
        inits.append(numpy_helper.from_array(np.asarray(bias, np.float32), "bias"))
        inputs.append("bias")
    node = helper.make_node("DynamicQuantizeMatMul", inputs, ["Y"], domain="com.microsoft")
    return _onnx_model(node, [helper.make_tensor_value_info("A", TensorProto.FLOAT, [None, k])],
                       [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n])],
                       inits, domains=("com.microsoft",))


def torch_dynamic_linear(w: np.ndarray, bias: np.ndarray | None):
    """torch.ao.nn.quantized.dynamic.Linear (qint8, per-channel weights) holding w, bias."""
    torch = common.optional_import("torch")
    tq = torch.ao.quantization
    n, k = w.shape
    lin = torch.nn.Linear(k, n, bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
        if bias is not None:
            lin.bias.copy_(torch.from_numpy(bias))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization warns that it is deprecated
        q = tq.quantize_dynamic(torch.nn.Sequential(lin),
                                {torch.nn.Linear: tq.per_channel_dynamic_qconfig},
                                dtype=torch.qint8)
    layer = q[0]
    if not isinstance(layer, torch.ao.nn.quantized.dynamic.Linear):
        raise TypeError(f"quantize_dynamic returned {type(layer).__name__}, not a dynamic Linear")
    return layer


def torch_int_mm_rate() -> float | None:
    """GOP/s of torch._int_mm at 64x256x256 on the current threads: tells oneDNN (hundreds)
    from torch's naive fallback loop (a few). None without torch."""
    torch = common.optional_import("torch")
    if torch is None:
        return None
    import time

    a = torch.ones((64, 256), dtype=torch.int8)
    b = torch.ones((256, 256), dtype=torch.int8)
    torch._int_mm(a, b)
    t0 = time.perf_counter()
    torch._int_mm(a, b)
    return 2 * 64 * 256 * 256 / (time.perf_counter() - t0) / 1e9


# ----------------------------------------------------------------------------------------------
# one shape
# ----------------------------------------------------------------------------------------------
class Unavailable(Exception):
    """A tool that cannot run here: its peer is missing, or it would take too long."""


@dataclass
class Tool:
    """One contestant at one shape and thread count.

    ``call()`` runs it on the Problem's own inputs, already in the tool's native type (torch
    tensors for torch) -- this is what is timed; ``run(inp)`` takes other numpy inputs of the
    kind ``takes`` ("u8", "s8" or "f32") and returns numpy, for the checks.
    """

    name: str
    takes: str
    call: Callable[[], object]
    run: Callable[[np.ndarray], np.ndarray]


def make_tool(name: str, p: Problem, threads: int, *, layer=None, packed=None,
              torch_rate: float | None = None) -> Tool:
    """Builds the tool ``name`` (one of NUMPY, INT_TOOLS, FLOAT_TOOLS) for ``p`` at ``threads``
    (ONNX Runtime sessions take their thread count here; the others follow
    :class:`common.Threads`). ``layer``/``packed``: lowbit's QuantizedLinear / packed b, built
    if not given. Raises :class:`Unavailable` when the peer is missing or too slow here."""
    if name == NUMPY:
        w_kn = np.ascontiguousarray(p.w.T)
        return Tool(name, "f32", lambda: p.x @ w_kn, lambda x: x @ w_kn)
    if name == "lowbit matmul_int8":
        packed = packed if packed is not None else lowbit.pack_int8(p.b)
        return Tool(name, "u8", lambda: lowbit.matmul_int8(p.a, packed),
                    lambda a: lowbit.matmul_int8(a, packed))
    if name == "lowbit QuantizedLinear":
        layer = layer if layer is not None else lowbit.QuantizedLinear(p.w, p.bias)
        return Tool(name, "f32", lambda: layer(p.x), layer)
    if name == "lowbit matmul_int8 7-bit":
        packed7 = lowbit.pack_int8(p.b >> 1)
        return Tool(name, "u8", lambda: lowbit.matmul_int8(p.a, packed7),
                    lambda a: lowbit.matmul_int8(a, packed7))
    if name == "lowbit QuantizedLinear 7/7":
        layer7 = lowbit.QuantizedLinear(p.w, p.bias, bits=7, act_bits=7)
        return Tool(name, "f32", lambda: layer7(p.x), layer7)
    if name.startswith("ORT"):
        if common.optional_import("onnxruntime") is None or common.optional_import("onnx") is None:
            raise Unavailable("missing (" + str(common.import_error("onnxruntime") or
                                               common.import_error("onnx")) + ")")
        if name == "ORT DynamicQuantizeMatMul":
            layer = layer if layer is not None else lowbit.QuantizedLinear(p.w, p.bias)
            wq = layer.weight_q
            model = onnx_dynamic_quantize_matmul(np.ascontiguousarray(wq.int_repr().T), wq.scale,
                                                 p.bias)
            takes, x = "f32", p.x
        elif name == "ORT MatMulInteger u8s8":
            model, takes, x = onnx_matmul_integer(p.b, np.uint8), "u8", p.a
        elif name == "ORT MatMulInteger s8s8":
            model, takes, x = onnx_matmul_integer(p.b, np.int8), "s8", p.a.view(np.int8)
        elif name == "ORT MatMulInteger u8u8":
            model, takes, x = onnx_matmul_integer_u8u8(p.b), "u8", p.a
        elif name == "ORT MatMulInteger u8s8 7-bit":
            model, takes, x = onnx_matmul_integer(p.b >> 1, np.uint8), "u8", p.a
        else:
            raise ValueError(f"unknown tool {name!r}")
        sess = common.ort_session(model, threads)
        return Tool(name, takes, lambda: sess.run(["Y"], {"A": x})[0],
                    lambda inp: sess.run(["Y"], {"A": inp})[0])
    if name.startswith("torch"):
        torch = common.optional_import("torch")
        if torch is None:
            raise Unavailable(f"missing ({common.import_error('torch')})")
        if name == "torch._int_mm":
            predicted = None if not torch_rate else p.ops / (torch_rate * 1e9)
            if predicted is not None and predicted > TORCH_INT_MM_MAX_SECONDS:
                raise Unavailable(f"skipped: naive loop here, ~{predicted:.0f} s per call")
            at, bt = torch.from_numpy(p.a.view(np.int8)), torch.from_numpy(p.b)
            return Tool(name, "s8", lambda: torch._int_mm(at, bt),
                        lambda a: torch._int_mm(torch.from_numpy(a), bt).numpy())
        if name == "torch dynamic Linear":
            try:
                tlin = torch_dynamic_linear(p.w, p.bias)
            except Exception as e:  # quantize_dynamic may be gone in a future torch
                raise Unavailable(f"unavailable ({type(e).__name__}: {e})") from None
            xt = torch.from_numpy(p.x)

            def run(x):
                with torch.inference_mode():
                    return tlin(torch.from_numpy(x)).numpy()

            return Tool(name, "f32", lambda: tlin(xt), run)
    raise ValueError(f"unknown tool {name!r}")


def check_int(tools: dict[str, Tool], p: Problem) -> None:
    """Every integer tool returns lowbit's exact int32 result on the Problem (AssertionError)."""
    ref = tools["lowbit matmul_int8"].run(p.a)
    for name in INT_TOOLS[1:]:
        if name in tools:
            t = tools[name]
            got = np.asarray(t.run(p.a if t.takes == "u8" else p.a.view(np.int8)))
            if got.shape != ref.shape or not np.array_equal(got, ref):
                bad = np.abs(got.astype(np.int64) - ref).max() if got.shape == ref.shape else "shape"
                raise AssertionError(f"{name} differs from lowbit.matmul_int8 at "
                                     f"{shape_name((p.m, p.k, p.n))} (max |diff| {bad})")


def check_seven(tools: dict[str, Tool], p: Problem) -> float | None:
    """The 7-bit integer tools equal the int64 product exactly (AssertionError otherwise);
    returns QuantizedLinear(bits=7, act_bits=7)'s SQNR (dB) against the float64 result."""
    ref = p.a.astype(np.int64) @ (p.b >> 1).astype(np.int64)
    for name in SEVEN_TOOLS[:2]:
        if name in tools:
            got = np.asarray(tools[name].run(p.a))
            if got.shape != ref.shape or not np.array_equal(got, ref):
                raise AssertionError(f"{name} is not exact at {shape_name((p.m, p.k, p.n))}")
    if SEVEN_TOOLS[2] not in tools:
        return None
    y_ref = p.x.astype(np.float64) @ p.w.T.astype(np.float64) + p.bias
    return lowbit.sqnr(y_ref, tools[SEVEN_TOOLS[2]].run(p.x))


def check_float(tools: dict[str, Tool], p: Problem, min_db: float = 20.0) -> dict[str, float]:
    """Every float tool is within ``min_db`` SQNR of lowbit's QuantizedLinear output
    (AssertionError otherwise). Returns each one's SQNR (dB) against the float64 result."""
    y_ref = p.x.astype(np.float64) @ p.w.T.astype(np.float64) + p.bias
    y_lb = tools["lowbit QuantizedLinear"].run(p.x)
    out = {}
    for name in FLOAT_TOOLS:
        if name not in tools:
            continue
        y = np.asarray(tools[name].run(p.x))
        if y.shape != y_ref.shape:
            raise AssertionError(f"{name} returned shape {y.shape}, expected {y_ref.shape}")
        out[name] = lowbit.sqnr(y_ref, y)
        between = lowbit.sqnr(y_lb, y)
        if name != "lowbit QuantizedLinear" and between < min_db:
            raise AssertionError(f"{name} differs from lowbit.QuantizedLinear at "
                                 f"{shape_name((p.m, p.k, p.n))}: SQNR between them "
                                 f"{between:.1f} dB < {min_db} dB")
    return out


def full_range_exactness(tools: dict[str, Tool], p: Problem, seed: int = 1) -> dict[str, str]:
    """Which integer tools are exact on full-range inputs (u8 0..255, s8 -128..127)."""
    rng = np.random.default_rng(seed)
    a = {"u8": rng.integers(0, 256, (p.m, p.k), dtype=np.uint8),
         "s8": rng.integers(-128, 128, (p.m, p.k), dtype=np.int8)}
    b64 = p.b.astype(np.float64)  # float64 products and sums of these sizes are exact
    ref = {kind: v.astype(np.float64) @ b64 for kind, v in a.items()}

    def verdict(got, kind):
        err = np.abs(np.asarray(got, np.float64) - ref[kind]).max(initial=0)
        return "exact" if err == 0 else f"max err {err:.0f}"

    out = {}
    for name in INT_TOOLS:
        if name not in tools:
            continue
        t = tools[name]
        if name == "lowbit matmul_int8":  # takes both
            out[name] = f"{verdict(t.run(a['u8']), 'u8')} (u8), {verdict(t.run(a['s8']), 's8')} (s8)"
            out[name] = "exact" if out[name] == "exact (u8), exact (s8)" else out[name]
        else:
            out[name] = verdict(t.run(a[t.takes]), t.takes)
    return out


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------
def _peak_for(peak, threads: int) -> float | None:
    if peak is None:
        return None
    if isinstance(peak, dict):
        return peak.get(threads)
    return float(peak) * threads


def _gops(res: dict, key, ops: float):
    t = res.get(key)
    return None if t is None else ops / t.median / 1e9


def _mark(res, key) -> str:
    t = res.get(key)
    return "*" if t is not None and t.single else ""


def _tail_headers(label: str, pk, t: int, t1: int) -> list:
    """The columns every GOP/s table ends with: % of peak, scaling over t1 threads, noise."""
    return ([f"{label} ({pk:.0f})"] if pk else []) + ([f"{t}T/{t1}T"] if t != t1 else []) + ["noise"]


def _tail_cells(results, shape, t: int, t1: int, lb: str, g: dict, pk) -> list:
    """The cells of those columns for lowbit tool ``lb`` (GOP/s in ``g``) at ``shape``."""
    res = results.get((shape, t), {})
    row = []
    if pk:
        row.append("-" if g[lb] is None else f"{100 * g[lb] / pk:.0f}%")
    if t != t1:
        base = results.get((shape, t1), {}).get(lb)
        row.append(common.fmt_ratio(base.median if base else None,
                                    res[lb].median if lb in res else None))
    noisy = [tm.spread for name, tm in res.items() if name in g and not tm.single]
    row.append(f"{max(noisy):.0%}" if noisy else "-")
    return row


def _table(kind: str, shapes, results, skipped, t: int, thread_list, peak, exactness=None) -> str:
    """The GOP/s table of one kind ("int" or "float") at t threads. For "int", ``exactness``
    ({shape: {tool: verdict}}) adds a "vs best exact" column over the peers exact on full range."""
    lb = "lowbit matmul_int8" if kind == "int" else "lowbit QuantizedLinear"
    peers = INT_TOOLS[1:] if kind == "int" else FLOAT_TOOLS[1:]
    short = {"ORT MatMulInteger u8s8": "ORT u8s8", "ORT MatMulInteger s8s8": "ORT s8s8",
             "ORT MatMulInteger u8u8": "ORT u8u8", "torch._int_mm": "torch._int_mm",
             "ORT DynamicQuantizeMatMul": "ORT DQMatMul", "torch dynamic Linear": "torch dyn"}
    headers = ["M x K x N", "numpy f32", "lowbit"] + [short[x] for x in peers]
    headers += [f"vs {short[x]}" for x in peers] + ["vs best"]
    if exactness is not None:
        headers.append("vs best exact")
    pk, t1 = _peak_for(peak, t), thread_list[0]
    headers += _tail_headers("% peak", pk, t, t1)
    rows = []
    for shape in shapes:
        res = results.get((shape, t), {})
        ops = 2.0 * shape[0] * shape[1] * shape[2]
        g = {name: _gops(res, name, ops) for name in [NUMPY, lb] + peers}

        def cell(name):
            if g[name] is None:
                return "skip" if name in skipped.get((shape, t), {}) else "-"
            return f"{g[name]:.1f}{_mark(res, name)}"

        row = [shape_name(shape), cell(NUMPY), cell(lb)] + [cell(x) for x in peers]
        row += [common.fmt_ratio(g[lb], g[x]) for x in peers]
        best = max((g[x] for x in peers if g[x] is not None), default=None)
        row.append(common.fmt_ratio(g[lb], best))
        if exactness is not None:
            ex = exactness.get(shape, {})
            best_exact = max((g[x] for x in peers if g[x] is not None and ex.get(x) == "exact"),
                             default=None)
            row.append(common.fmt_ratio(g[lb], best_exact))
        rows.append(row + _tail_cells(results, shape, t, t1, lb, g, pk))
    return common.format_table(headers, rows)


def _table_seven(shapes, results, sqnr, t: int, thread_list, peak) -> str:
    """GOP/s of the 7-bit settings against the peers on the same problems."""
    lb7, ort7, ql7 = SEVEN_TOOLS
    headers = ["M x K x N", "lowbit 7-bit", "ORT u8s8", "vs ORT u8s8", "lowbit QL 7/7",
               "ORT DQMatMul", "torch dyn", "vs best", "SQNR 7/7", "SQNR best peer"]
    pk, t1 = _peak_for(peak, t), thread_list[0]
    headers += _tail_headers("% 7-bit peak", pk, t, t1)
    rows = []
    for shape in shapes:
        res = results.get((shape, t), {})
        ops = 2.0 * shape[0] * shape[1] * shape[2]
        g = {n: _gops(res, n, ops) for n in SEVEN_TOOLS + FLOAT_TOOLS[1:]}
        fmt = lambda n: "-" if g[n] is None else f"{g[n]:.1f}{_mark(res, n)}"  # noqa: E731
        best = max((g[x] for x in FLOAT_TOOLS[1:] if g[x] is not None), default=None)
        sq = sqnr.get(shape, {})
        best_sq = max((sq[x] for x in FLOAT_TOOLS[1:] if sq.get(x) is not None), default=None)
        row = [shape_name(shape), fmt(lb7), fmt(ort7), common.fmt_ratio(g[lb7], g[ort7]), fmt(ql7),
               fmt(FLOAT_TOOLS[1]), fmt(FLOAT_TOOLS[2]), common.fmt_ratio(g[ql7], best),
               common.fmt_num(sq.get(ql7)), common.fmt_num(best_sq)]
        rows.append(row + _tail_cells(results, shape, t, t1, lb7, g, pk))
    return common.format_table(headers, rows)


def main(threads="1,2", repeat=7, quick=False, peak=None, shapes=None) -> int:
    """Runs the GEMM / QuantizedLinear comparison and prints its tables; returns 0.

    ``peak``: GOP/s per thread (or ``{threads: GOP/s}``) that lowbit's "% peak" column divides
    by; None (the default): the int8 peak measured on one core of this CPU at the start
    (:func:`lowbit_bench.peak.measured_peaks`, times the thread count); 0: no such column.
    ``shapes``: override the list of (M, K, N).
    """
    thread_list = common.parse_threads(threads)
    repeat = common.check_repeat(repeat)
    if shapes:
        shapes = [tuple(int(v) for v in s) for s in shapes]
        if any(len(s) != 3 or min(s) < 1 for s in shapes):
            raise ValueError(f"shapes must be (M, K, N) triples of positive integers, got {shapes}")
    else:
        shapes = QUICK_SHAPES if quick else SHAPES
    min_sample = 0.02 if quick else 0.05
    with common.inference_mode():
        return _run(shapes, thread_list, repeat, min_sample, peak)


def _build_all(p: Problem, threads: int, layer, packed, torch_rate, seven: bool = True):
    """{name: Tool} of every tool that can run, and {name: reason} of the others."""
    tools, skipped = {}, {}
    for name in [NUMPY] + INT_TOOLS + FLOAT_TOOLS + (SEVEN_TOOLS if seven else []):
        try:
            tools[name] = make_tool(name, p, threads, layer=layer, packed=packed,
                                    torch_rate=torch_rate)
        except Unavailable as e:
            skipped[name] = str(e)
    return tools, skipped


def _peak_note(peak, measured: str | None) -> str:
    """The header line that says what "% peak" divides by."""
    if not peak:
        return ("% peak: not shown (no peak loop runs on this CPU)" if measured is not None
                else "% peak: not shown (peak=0)")
    if measured is not None:
        return measured + "; '% peak' = lowbit GOP/s / (int8 peak x threads)"
    if isinstance(peak, dict):
        given = ", ".join(f"{t}T {v:.1f}" for t, v in sorted(peak.items()))
        return f"'% peak' = lowbit GOP/s / the peak given for the thread count ({given} GOP/s)"
    return f"'% peak' = lowbit GOP/s / ({float(peak):.1f} GOP/s given x threads)"


def _run(shapes, thread_list, repeat, min_sample, peak) -> int:
    torch = common.optional_import("torch")
    measured = None
    peak7 = peak
    if peak is None:
        from . import peak as peak_bench

        peaks = peak_bench.measured_peaks()
        peak = peaks.get("int8")  # None where no loop runs: no column
        # the 7-bit settings' ceiling: AVX2's two-step vpmaddubsw where that kernel runs
        peak7 = peaks.get("int8_avx2_maddubs2", peak) if lowbit.cpu_info()["isa"] in (
            "avx2", "avx512") else peak
        measured = peak_bench.describe_peak(peaks)
    peak_note = _peak_note(peak, measured)
    results: dict = {}
    skipped: dict = {}
    sqnr: dict = {}
    exactness: dict = {}
    torch_rates: dict = {}
    headers: dict = {}
    for t in thread_list:
        with common.Threads(t):
            torch_rates[t] = torch_int_mm_rate()
    for shape in shapes:
        p = make_problem(*shape)
        layer, packed = lowbit.QuantizedLinear(p.w, p.bias), lowbit.pack_int8(p.b)
        for t in thread_list:
            common.progress(f"[gemm] {shape_name(shape)}, {t} thread(s) ...")
            with common.Threads(t), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tools, skipped[(shape, t)] = _build_all(p, t, layer, packed, torch_rates[t])
                check_int(tools, p)
                sq = check_float(tools, p)
                sq[SEVEN_TOOLS[2]] = check_seven(tools, p)
                if t == thread_list[0]:
                    sqnr[shape] = sq
                    exactness[shape] = full_range_exactness(tools, p)
                results[(shape, t)] = common.measure(
                    [(n, tl.call) for n, tl in tools.items()], repeat=repeat,
                    min_sample=min_sample, max_call=MAX_CALL)
                headers[t] = common.describe(t)
            del tools

    overhead = {}
    p = make_problem(*OVERHEAD_SHAPE)
    layer, packed = lowbit.QuantizedLinear(p.w, p.bias), lowbit.pack_int8(p.b)
    for t in thread_list:
        common.progress(f"[gemm] per-call overhead at {shape_name(OVERHEAD_SHAPE)}, {t} thread(s) ...")
        with common.Threads(t), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tools, _ = _build_all(p, t, layer, packed, torch_rates[t], seven=False)
            check_int(tools, p)
            check_float(tools, p)
            overhead[t] = common.measure([(n, tl.call) for n, tl in tools.items()],
                                         repeat=repeat, min_sample=min_sample)
            del tools

    # ---- print ----
    for kind, title in (("int", "int8 GEMM, exact int32 result: a (M, K) x b (K, N)"),
                        ("float", "QuantizedLinear: float32 in, float32 out, dynamic activation "
                                  "quantization included")):
        for t in thread_list:
            print(f"== {title}; GOP/s = 2*M*N*K/t; {common.cpu_model()}, {t} thread(s) ==")
            print("\n".join(headers[t]))
            print(peak_note)
            if torch is not None and kind == "int":
                rate = torch_rates[t]
                path = ("oneDNN" if rate and rate > 20 else
                        "naive loop (oneDNN is used only with AVX-512 VNNI)")
                print(f"torch._int_mm: {path}, probe {rate:.1f} GOP/s at 64x256x256")
            print(f"timing: median of {repeat} samples (each >= {min_sample * 1e3:.0f} ms), tools "
                  f"interleaved, {'0.2 s' if t > 1 else '3 ms'} idle + 20 ms of untimed calls before "
                  "each sample (other tools' spinning threads); 'vs X' = lowbit GOP/s / X GOP/s (> 1: lowbit faster); "
                  "noise = max over the row of (max-min)/median; "
                  f"* = one call only (slower than {MAX_CALL} s); skip = not run"
                  + ("; 'vs best exact' = against the fastest peer that is exact on full-range "
                     "inputs (see the checks below)" if kind == "int" else ""))
            print(_table(kind, shapes, results, skipped, t, thread_list, peak,
                         exactness if kind == "int" else None))
            notes = sorted({f"{n}: {why}" for (s, tt), d in skipped.items() if tt == t
                            for n, why in d.items()
                            if n in (INT_TOOLS if kind == "int" else FLOAT_TOOLS)})
            for note in notes:
                print(f"  {note}")
            print()

    for t in thread_list:
        print(f"== 7-bit operands (exact on every ISA; AVX2 without VNNI adds two vpmaddubsw steps "
              f"in int16); GOP/s; {common.cpu_model()}, {t} thread(s) ==")
        print("\n".join(headers[t]))
        print("int: activations 0..127 x weights -64..63 (b >> 1), both tools exact on them; float: "
              "QuantizedLinear(bits=7, act_bits=7) against the 8-bit peers of the table above; "
              "SQNR in dB against the float64 result; '% 7-bit peak': of the measured peak of the "
              "instructions the 7-bit kernel uses (avx2_maddubs2 on AVX2, else the int8 peak)")
        print(_table_seven(shapes, results, sqnr, t, thread_list, peak7))
        print()

    print("== checks before timing ==")
    print("int GEMM: every peer returned lowbit's exact int32 result on activations in 0..127 "
          "(valid as u8 and s8). On full-range inputs:")
    ex_tools = [x for x in INT_TOOLS if any(x in e for e in exactness.values())]
    print(common.format_table(["M x K x N"] + ex_tools,
                              [[shape_name(s)] + [exactness[s].get(x, "-") for x in ex_tools]
                               for s in shapes]))
    print("QuantizedLinear: SQNR (dB) against the float64 x @ W^T + b (every peer within 20 dB "
          "SQNR of lowbit's output):")
    print(common.format_table(["M x K x N"] + FLOAT_TOOLS,
                              [[shape_name(s)] + [common.fmt_num(sqnr[s].get(x)) for x in FLOAT_TOOLS]
                               for s in shapes]))
    print()

    print(f"== per-call overhead at {shape_name(OVERHEAD_SHAPE)} (microseconds per call) ==")
    print("\n".join(common.describe(",".join(map(str, thread_list)))))
    rows = []
    for name in [NUMPY] + INT_TOOLS + FLOAT_TOOLS:
        ref = "lowbit matmul_int8" if name in INT_TOOLS else "lowbit QuantizedLinear"
        row = [name]
        for t in thread_list:
            tm, lb = overhead[t].get(name), overhead[t].get(ref)
            row += ["-" if tm is None else f"{tm.median * 1e6:.2f}",
                    "-" if tm is None or lb is None else common.fmt_ratio(tm.median, lb.median),
                    "-" if tm is None else f"{tm.spread:.0%}"]
        rows.append(row)
    hdr = ["tool"]
    for t in thread_list:
        hdr += [f"us ({t}T)", "lowbit x", "noise"]
    print("'lowbit x' = tool time / lowbit time (matmul_int8 for the integer tools, "
          "QuantizedLinear for the float ones); > 1: lowbit faster")
    print(common.format_table(hdr, rows))
    print()
    all_t = [tm for d in list(results.values()) + list(overhead.values()) for tm in d.values()]
    print(common.noise_summary(all_t))
    print()
    return 0
