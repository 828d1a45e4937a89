"""ONNX export of lowbit models in QDQ form (needs the optional `onnx` package).

`export_onnx(model, path)` writes a model that ONNX Runtime (or any ONNX backend) runs:

- a static `QuantizedLinear` becomes QuantizeLinear -> DequantizeLinear on the activations (its
  act_scale / act_zero_point, uint8) and DequantizeLinear on the int8 weight initializer
  (per output channel: axis=1 of the (in, out) weight, or per tensor), around a MatMul, then Add
  for the bias; runtimes that understand QDQ fuse this into integer kernels;
- a dynamic `QuantizedLinear` uses DynamicQuantizeLinear for the activations instead (one scale
  per tensor in ONNX, where lowbit uses one per row: outputs differ a little more);
- float `lowbit.models.Linear` (and lowbit.nn.Linear) -> MatMul + Add; ReLU -> Relu; GELU -> its tanh or erf formula;
  LayerNorm -> LayerNormalization; Softmax -> Softmax(axis=-1); Dropout -> nothing;
- an `Int4Linear` becomes ONNX Runtime's MatMulNBits (domain com.microsoft, bits=4, its group
  size as block_size: a power of two >= 16), with its codes, zero points and float32 scales
  (row scale x group scale) as they are: the graph holds the 4-bit weight, and ONNX Runtime runs
  it with float activations where lowbit quantizes them to int8 per row;
- layers with a decoded float weight (BinaryLinear, CodebookLinear: anything with `decode()` or a
  `weight_b`) are exported as float MatMul of that weight;
- a `CodebookLinear` with per-row codebooks (`per_row=True`) or outliers (`outliers > 0`) is
  refused (ValueError): export is not implemented for those forms.

Executed as written (float QDQ semantics), the graph computes what lowbit's unfused
QuantizedModel computes. Runtimes that fuse Q/DQ into integer kernels (ONNX Runtime at its
default optimization level makes QGemm of Linear -> ReLU -> Quantize) requantize between layers
like lowbit's fused chain. Note: ONNX Runtime's u8s8 kernels on AVX2-only x86 CPUs (no VNNI) use
vpmaddubsw, whose int16 pair sums saturate when 2 * 255 * 127 > 32767; with 8-bit weights that
can change results there (ORT's documented reduce_range issue). Quantizing weights to 7 bits
(quantize_model(..., bits=7)) avoids it: then ORT's integer pipeline matches lowbit's fused one.
"""
from __future__ import annotations

import math
import os

import numpy as np

from . import _core
from .codebook import CodebookLinear
from .int4 import Int4Linear
from .linear import QuantizedLinear
from .models import as_model
from .models import layers as nn


def _onnx():
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("ONNX export needs the optional onnx package: pip install onnx") from None
    return onnx, TensorProto, helper, numpy_helper


class _Graph:
    def __init__(self):
        _, self.TP, self.helper, self.nph = _onnx()
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base: str, value) -> str:
        name = self.name(base)
        self.inits.append(self.nph.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs, base: str, n_out: int = 1, **attrs):
        outs = [self.name(base) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op, list(inputs), outs, name=self.name(op), **attrs))
        return outs[0] if n_out == 1 else outs

    # --- layers ---------------------------------------------------------------------------
    def matmul_bias(self, h: str, w_name: str, bias, tag: str) -> str:
        y = self.node("MatMul", [h, w_name], f"{tag}_matmul")
        if bias is not None:
            y = self.node("Add", [y, self.const(f"{tag}_bias", np.asarray(bias, np.float32))], f"{tag}_out")
        return y

    def float_linear(self, h: str, weight, bias, tag: str) -> str:
        w = self.const(f"{tag}_weight", np.ascontiguousarray(np.asarray(weight, np.float32).T))
        return self.matmul_bias(h, w, bias, tag)

    def quantized_linear(self, h: str, layer, tag: str) -> str:
        if layer.act_bits != 8:
            raise ValueError(f"{tag}: a QuantizedLinear with act_bits={layer.act_bits} has no ONNX "
                             "form (QuantizeLinear and DynamicQuantizeLinear make 8-bit codes)")
        wq = layer.weight_q
        codes_t = np.ascontiguousarray(wq.int_repr().T)  # (in, out) int8
        w_scale = np.asarray(wq.scale, np.float32)
        w_zp = np.zeros(w_scale.shape, np.int8)
        attrs = {"axis": 1} if w_scale.ndim == 1 else {}
        w = self.node("DequantizeLinear", [self.const(f"{tag}_wq", codes_t),
                                           self.const(f"{tag}_wscale", w_scale),
                                           self.const(f"{tag}_wzp", w_zp)], f"{tag}_w", **attrs)
        if layer.act_scale is not None:
            s = self.const(f"{tag}_xscale", np.float32(layer.act_scale))
            z = self.const(f"{tag}_xzp", np.uint8(layer.act_zero_point))
            q = self.node("QuantizeLinear", [h, s, z], f"{tag}_xq")
            x = self.node("DequantizeLinear", [q, s, z], f"{tag}_xdq")
        else:
            q, s, z = self.node("DynamicQuantizeLinear", [h], f"{tag}_xq", n_out=3)
            x = self.node("DequantizeLinear", [q, s, z], f"{tag}_xdq")
        return self.matmul_bias(x, w, layer.bias, tag)

    def int4_linear(self, h: str, layer, tag: str) -> str:
        g = layer.group_size
        if g < 16 or g & (g - 1):
            raise ValueError(f"{tag}: an Int4Linear with group_size={g} has no MatMulNBits form "
                             "(block_size must be a power of two >= 16)")
        if layer.rotation is not None:  # x R first, R as a float MatMul (rows of R = e_i R)
            k = layer.in_features
            r = _core.hadamard(np.eye(k, dtype=np.float32), layer.rotation)
            h = self.float_linear(h, r.T, None, f"{tag}_rot")
        a = layer.arrays()
        n, k = a["codes"].shape
        blocks = -(-k // g)
        codes = np.zeros((n, blocks * g), np.uint8)
        codes[:, :k] = a["codes"]
        codes[:, k:] = np.repeat(a["zero_point"][:, -1:], blocks * g - k, axis=1)  # padding decodes to 0
        packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).reshape(n, blocks, g // 2)
        zp = np.zeros((n, blocks + blocks % 2), np.uint8)
        zp[:, :blocks] = a["zero_point"]
        zp_packed = (zp[:, 0::2] | (zp[:, 1::2] << 4)).reshape(-1)
        scales = (a["row_scale"][:, None] * a["scale"].astype(np.float32)).reshape(-1)
        y = self.node("MatMulNBits", [h, self.const(f"{tag}_q4", packed), self.const(f"{tag}_scales", scales),
                                      self.const(f"{tag}_zp", zp_packed)],
                      f"{tag}_matmul", domain="com.microsoft", K=k, N=n, bits=4, block_size=g)
        if layer.bias is not None:
            y = self.node("Add", [y, self.const(f"{tag}_bias", np.asarray(layer.bias, np.float32))], f"{tag}_out")
        return y

    def gelu(self, h: str, approximate: str, tag: str) -> str:
        half = self.const(f"{tag}_half", np.float32(0.5))
        one = self.const(f"{tag}_one", np.float32(1.0))
        if approximate == "tanh":
            x3 = self.node("Mul", [self.node("Mul", [h, h], tag), h], tag)
            inner = self.node("Add", [h, self.node("Mul", [x3, self.const(tag, np.float32(0.044715))], tag)], tag)
            t = self.node("Tanh", [self.node("Mul", [inner, self.const(tag, np.float32(math.sqrt(2 / math.pi)))],
                                             tag)], tag)
        else:
            t = self.node("Erf", [self.node("Mul", [h, self.const(tag, np.float32(1 / math.sqrt(2)))], tag)], tag)
        return self.node("Mul", [self.node("Mul", [h, half], tag), self.node("Add", [t, one], tag)],
                         f"{tag}_out")


def to_onnx(model, *, opset=17, input_name="x", output_name="y", batch="batch"):
    """The onnx.ModelProto of `model` (a lowbit Sequential / QuantizedModel, a list of
    layers, or anything lowbit.load_model accepts). Input: float32 (batch, in_features)."""
    onnx, TP, helper, _ = _onnx()
    model = as_model(model)
    n_in = model.in_features
    if n_in is None:
        raise ValueError("model: cannot tell the input width (no layer declares in_features)")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 17:
        raise ValueError(f"opset must be an integer >= 17 (LayerNormalization), got {opset!r}")
    g = _Graph()
    h = input_name
    width = n_in
    for i, layer in enumerate(model.layers):
        tag = f"l{i}"
        if isinstance(layer, QuantizedLinear):
            h = g.quantized_linear(h, layer, tag)
        elif isinstance(layer, Int4Linear):
            h = g.int4_linear(h, layer, tag)
        elif isinstance(layer, nn.Linear):
            eff = getattr(layer, "_effective_weight", None)
            h = g.float_linear(h, eff(False) if callable(eff) else layer.weight, layer.bias, tag)
        elif isinstance(layer, nn.ReLU):
            h = g.node("Relu", [h], f"{tag}_relu")
        elif isinstance(layer, nn.GELU):
            h = g.gelu(h, layer.approximate, tag)
        elif isinstance(layer, nn.Dropout):
            continue
        elif isinstance(layer, nn.LayerNorm):
            h = g.node("LayerNormalization", [h, g.const(f"{tag}_gamma", np.asarray(layer.weight, np.float32)),
                                              g.const(f"{tag}_beta", np.asarray(layer.bias, np.float32))],
                       f"{tag}_ln", axis=-1, epsilon=float(layer.eps))
        elif isinstance(layer, nn.Softmax):
            h = g.node("Softmax", [h], f"{tag}_softmax", axis=-1)
        elif isinstance(layer, CodebookLinear) and (layer.per_row or layer.outliers):
            raise ValueError(f"layer {i} (CodebookLinear with per_row=True or outliers) has no ONNX "
                             "export: only one codebook per layer without outliers is exported")
        elif hasattr(layer, "weight_b") or hasattr(layer, "decode") or hasattr(layer, "codebook"):
            w = _decoded_weight(layer)
            h = g.float_linear(h, w, getattr(layer, "bias", None), tag)
        else:
            raise ValueError(f"layer {i} ({type(layer).__name__}) has no ONNX export")
        width = getattr(layer, "out_features", width)
    g.nodes.append(helper.make_node("Identity", [h], [output_name], name="output"))
    graph = helper.make_graph(
        g.nodes, "lowbit",
        [helper.make_tensor_value_info(input_name, TP.FLOAT, [batch, n_in])],
        [helper.make_tensor_value_info(output_name, TP.FLOAT, [batch, width])],
        initializer=g.inits)
    domains = [helper.make_opsetid("", opset)]
    if any(node.domain == "com.microsoft" for node in g.nodes):
        domains.append(helper.make_opsetid("com.microsoft", 1))
    m = helper.make_model(graph, opset_imports=domains, producer_name="lowbit")
    m.ir_version = min(m.ir_version, 9)  # readable by older runtimes
    onnx.checker.check_model(m)
    return m


def _decoded_weight(layer) -> np.ndarray:
    if hasattr(layer, "weight_b"):
        return layer.weight_b.dequantize()
    for attr in ("codebook", "weight_cb", "weight_c", "weight"):
        obj = getattr(layer, attr, None)
        if obj is not None and hasattr(obj, "decode"):
            return np.asarray(obj.decode(), np.float32)
    if hasattr(layer, "decode"):
        return np.asarray(layer.decode(), np.float32)
    raise ValueError(f"{type(layer).__name__}: cannot find its weight to export")


def export_onnx(model, path, *, opset=17, input_name="x", output_name="y"):
    """Write a model to a file as ONNX in QDQ form (needs the optional ``onnx`` package).

    The graph has one float32 input ``(batch, in_features)`` and one float32 output
    ``(batch, out_features)``, and is checked with ``onnx.checker`` before it is saved. ONNX
    Runtime (or any ONNX backend) runs it:

    - a static :class:`lowbit.QuantizedLinear` becomes QuantizeLinear -> DequantizeLinear on
      the activations (its act_scale / act_zero_point, uint8) and DequantizeLinear on the int8
      weight initializer (per output channel: axis=1 of the (in, out) weight, or per tensor),
      around a MatMul, then Add for the bias; runtimes that understand QDQ fuse this into
      integer kernels;
    - a dynamic QuantizedLinear uses DynamicQuantizeLinear for the activations instead (one
      scale per tensor in ONNX, where lowbit uses one per row: outputs differ a little more);
    - float :class:`lowbit.models.Linear` (and :class:`lowbit.nn.Linear`) -> MatMul + Add;
      ReLU -> Relu; GELU -> its tanh or erf formula; LayerNorm -> LayerNormalization;
      Softmax -> Softmax(axis=-1); Dropout -> nothing;
    - an :class:`lowbit.Int4Linear` -> ONNX Runtime's MatMulNBits (com.microsoft, bits=4,
      block_size = its group size, a power of two >= 16) holding its 4-bit codes, zero points
      and scales; ONNX Runtime runs it on float activations (lowbit on int8 ones);
    - layers with a decoded float weight (BinaryLinear, CodebookLinear: anything with
      ``decode()`` or a ``weight_b``) are exported as float MatMul of that weight;
    - a :class:`lowbit.CodebookLinear` with ``per_row=True`` or outliers is refused
      (ValueError: not implemented).

    Parameters
    ----------
    model : Sequential, QuantizedModel, list of layers or str
        A lowbit Sequential / QuantizedModel, a list of layers, or anything
        :func:`lowbit.load_model` accepts.
    path : str or os.PathLike
        The ``.onnx`` file to write.
    opset : int, default 17
        The ONNX opset, at least 17 (LayerNormalization).
    input_name : str, default "x"
        The name of the graph's input.
    output_name : str, default "y"
        The name of the graph's output.

    Returns
    -------
    onnx.ModelProto
        The model written.

    Raises
    ------
    ImportError
        If the ``onnx`` package is not installed.
    TypeError
        If ``path`` is not a str or os.PathLike.
    ValueError
        If ``opset`` is not an integer >= 17, the model's input width is unknown, a layer has
        no ONNX form (a CodebookLinear with ``per_row=True`` or outliers has none), a
        QuantizedLinear has ``act_bits`` other than 8, or an Int4Linear a group size
        MatMulNBits cannot take.

    Notes
    -----
    Executed as written (float QDQ semantics), the graph computes what lowbit's unfused
    QuantizedModel computes. Runtimes that fuse Q/DQ into integer kernels (ONNX Runtime at its
    default optimization level makes QGemm of Linear -> ReLU -> Quantize) requantize between
    layers like lowbit's fused chain. ONNX Runtime's u8s8 kernels on AVX2-only x86 CPUs (no
    VNNI) use vpmaddubsw, whose int16 pair sums saturate when 2 * 255 * 127 > 32767; with 8-bit
    weights that can change results there (ORT's documented reduce_range issue). Quantizing
    weights to 7 bits (``quantize_model(..., bits=7)``) avoids it: then ORT's integer pipeline
    matches lowbit's fused one.
    """
    onnx, *_ = _onnx()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    m = to_onnx(model, opset=opset, input_name=input_name, output_name=output_name)
    onnx.save(m, os.fspath(path))
    return m
