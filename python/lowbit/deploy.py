"""Deployment without Python: lowbit.export_runtime writes a quantized model as one compact,
versioned, checksummed binary file that lowbit's C++ runtime (csrc/include/lowbit/model.h, the
example program examples/lowbit_infer.cc) loads and runs on any CPU lowbit builds for.

The format is described in csrc/include/lowbit/model.h; a transformer encoder
(lowbit.models.Encoder, quantized) is written in its own format (csrc/include/lowbit/encoder.h),
which lowbit_infer also runs. Layers: lowbit.QuantizedLinear (dynamic
or static activations), lowbit.CodebookLinear (k-means codebook weights, stored as packed codes
and centroids) and ReLU. The runtime runs them with the plan lowbit.QuantizedModel runs (chains of
static int8 layers on uint8 codes, requantized in the GEMM epilogue), on the same kernels: its
output equals `lowbit.QuantizedModel(layers)(x)` bit for bit.
"""
from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from .codebook import CodebookLinear
from .linear import QuantizedLinear

MAGIC = b"LBRT"
VERSION = 2  # 1 when the model has no codebook layer (readable by older runtimes)
_LINEAR, _RELU, _CODEBOOK = 1, 2, 3
_DENSE = (QuantizedLinear, CodebookLinear)


def _layers_of(model) -> list:
    layers = getattr(model, "layers", model)
    if not isinstance(layers, (list, tuple)):
        raise TypeError("model must be a lowbit Sequential (or anything with .layers) or a list "
                        f"of layers, got {type(model).__name__}")
    return list(layers)


def runtime_layers(model) -> list:
    """The layers the runtime executes (Dropout, an identity at inference, is left out).

    Parameters
    ----------
    model : Sequential or list
        A lowbit Sequential (or anything with ``.layers``) or a list of layers.

    Returns
    -------
    list
        The layers, in order.

    Raises
    ------
    TypeError
        If ``model`` is neither.
    ValueError
        Naming any layer the runtime cannot run, or if there is no QuantizedLinear or
        CodebookLinear layer.
    """
    from .models import layers as nn

    out = []
    for i, layer in enumerate(_layers_of(model)):
        if isinstance(layer, nn.Dropout):
            continue
        if not isinstance(layer, _DENSE + (nn.ReLU,)):
            raise ValueError(f"layer {i} ({type(layer).__name__}) cannot be exported: the runtime runs "
                             "lowbit.QuantizedLinear, lowbit.CodebookLinear and ReLU layers (quantize "
                             "Linear layers first, e.g. with lowbit.quantize_model)")
        if isinstance(layer, CodebookLinear) and (layer.per_row or layer.outliers):
            raise ValueError(f"layer {i} (CodebookLinear with per_row=True or outliers) cannot be "
                             "exported: the runtime format holds one codebook per layer and no "
                             "outliers")
        out.append(layer)
    if not any(isinstance(l, _DENSE) for l in out):
        raise ValueError("model has no QuantizedLinear or CodebookLinear layer to export")
    return out


def runtime_reference(model, x) -> np.ndarray:
    """What the runtime computes for ``x``, in Python.

    :class:`lowbit.QuantizedModel` of the exported layers: the same plan, through lowbit's
    binding of the runtime.

    Parameters
    ----------
    model : Sequential, list or Encoder
        The model, as :func:`lowbit.export_runtime` takes it.
    x : array_like of float, or tuple
        The input, ``(..., in_features)``; for an encoder ``(input_ids, attention_mask)``.

    Returns
    -------
    numpy.ndarray
        float32, ``(..., out_features)``; for an encoder its last hidden states.
    """
    from .models import Encoder, QuantizedModel

    if isinstance(model, Encoder):
        return model(*x)
    return QuantizedModel(runtime_layers(model))(x)


def export_runtime(model, path) -> int:
    """Write a quantized model as one file for lowbit's C++ runtime.

    The file is compact, versioned and checksummed; the C++ runtime
    (``csrc/include/lowbit/model.h``, where the format is described; the example program
    ``examples/lowbit_infer.cc``) loads and runs it on any CPU lowbit builds for. The runtime
    runs the layers with the plan :class:`lowbit.QuantizedModel` runs (chains of static int8
    layers on uint8 codes, requantized in the GEMM epilogue), on the same kernels: its output
    equals ``lowbit.QuantizedModel(layers)(x)`` bit for bit.

    A quantized transformer encoder (:class:`lowbit.models.Encoder` whose linear layers the C++
    plan runs, e.g. from ``lowbit.quantize_model(encoder, None, scheme="int8")``) is written as
    its plan (the format of ``csrc/include/lowbit/encoder.h``); ``lowbit_infer MODEL IDS.npy
    OUT.npy [MASK.npy]`` gives its last hidden states equal to ``encoder(ids, mask)`` bit for bit.

    Parameters
    ----------
    model : Sequential, list or Encoder
        A quantized :class:`lowbit.models.Encoder`, or a lowbit Sequential (or anything with
        ``.layers``) or a list of layers:
        :class:`lowbit.QuantizedLinear` (dynamic or static activations),
        :class:`lowbit.CodebookLinear` (k-means codebook weights, stored as packed codes and
        centroids; not one with ``per_row=True`` or outliers, which is refused) and ReLU
        layers (Dropout, an identity at inference, is left out). The first
        layer must be a QuantizedLinear or CodebookLinear, and shapes must chain: each layer's
        ``in_features`` equals the previous ``out_features``.
    path : str or path-like
        The file to write.

    Returns
    -------
    int
        The bytes written.

    Raises
    ------
    TypeError
        If ``model`` is neither a Sequential nor a list of layers.
    ValueError
        If a layer cannot be exported (quantize Linear layers first, e.g. with
        :func:`lowbit.quantize_model`; an encoder's must all be dynamic QuantizedLinear or
        Int4Linear; a CodebookLinear must have one codebook per layer and no outliers),
        there is no QuantizedLinear or CodebookLinear layer,
        the first layer is not one, or the shapes do not chain.
    """
    data = runtime_bytes(model)
    with open(os.fspath(path), "wb") as f:
        f.write(data)
    return len(data)


def runtime_bytes(model) -> bytes:
    """The runtime file of a model, as :func:`lowbit.export_runtime` writes it.

    Parameters
    ----------
    model : Sequential or list
        The model, as :func:`lowbit.export_runtime` takes it.

    Returns
    -------
    bytes
        The file's contents.

    Raises
    ------
    TypeError
        If ``model`` is neither a Sequential nor a list of layers.
    ValueError
        As :func:`lowbit.export_runtime`.
    """
    from .models import Encoder
    if isinstance(model, Encoder):
        return bytes(model.plan().save())
    layers = runtime_layers(model)
    body = bytearray()
    width = first = None
    for i, layer in enumerate(layers):
        if isinstance(layer, _DENSE):
            if width is not None and layer.in_features != width:
                raise ValueError(f"layer {i} takes {layer.in_features} features but receives {width}")
            first = layer.in_features if first is None else first
        if isinstance(layer, CodebookLinear):
            body += _codebook_layer(layer)
            width = layer.out_features
        elif isinstance(layer, QuantizedLinear):
            static = layer.act_scale is not None
            flags = ((1 if layer.bias is not None else 0) | (2 if static else 0)
                     | (4 if layer.act_bits == 7 else 0))
            body += struct.pack("<IIIIfi", _LINEAR, layer.in_features, layer.out_features, flags,
                                layer.act_scale if static else 1.0, layer.act_zero_point if static else 0)
            body += np.ascontiguousarray(layer._w_scale, "<f4").tobytes()
            body += np.ascontiguousarray(layer.weight_q.int_repr(), np.int8).tobytes()
            if layer.bias is not None:
                body += np.ascontiguousarray(layer.bias, "<f4").tobytes()
            width = layer.out_features
        else:
            if width is None:
                raise ValueError("the first exported layer must be a QuantizedLinear or CodebookLinear")
            body += struct.pack("<I", _RELU)
    version = VERSION if any(isinstance(l, CodebookLinear) for l in layers) else 1
    head = MAGIC + struct.pack("<IIII", version, len(layers), first, width)
    data = head + bytes(body)
    return data + struct.pack("<I", zlib.crc32(data) & 0xFFFFFFFF)


def _codebook_layer(layer: CodebookLinear) -> bytes:
    """Layer kind 3: shape, k, dim, flags, centroids, the codes as the Codebook stores them
    (4-bit packed when k <= 16), bias."""
    cb = layer.codebook
    flags = (1 if layer.bias is not None else 0) | (2 if layer.activations == "int16" else 0)
    out = struct.pack("<IIIIII", _CODEBOOK, layer.in_features, layer.out_features, cb.k, cb.dim, flags)
    out += np.ascontiguousarray(cb.centroids, "<f4").tobytes()
    out += np.ascontiguousarray(cb.indices.reshape(-1), "<u2" if cb.bits == 16 else np.uint8).tobytes()
    if layer.bias is not None:
        out += np.ascontiguousarray(layer.bias, "<f4").tobytes()
    return out
