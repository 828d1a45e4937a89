"""mixed_precision: float / int8 / int4 / codebook per layer, chosen greedily from measured accuracy and sizes."""
from __future__ import annotations

import math

import numpy as np

from .._checks import as_float32, as_int, check_finite
from ..codebook import CodebookLinear
from ..models import QuantizedModel, as_model, calibrate_model, layer_nbytes, linear_indices, weight_of
from ..models.graph import layer_name
from ..models.ptq import quantized_linear
from .evaluate import accuracy, labels_array

# --------------------------------------------------------------------------- mixed precision

def available_choices() -> tuple:
    """The per-layer precisions mixed_precision can pick: "float", "int8", "int4", "codebook"."""
    return ("float", "int8", "int4", "codebook")


def _build(layer, choice, rng_, *, per_channel, codebook_k):
    if choice == "float":
        return layer
    if choice in ("int8", "int4"):
        return quantized_linear(layer, rng_, bits=8 if choice == "int8" else 4, per_channel=per_channel)
    return CodebookLinear(weight_of(layer), layer.bias, k=codebook_k)


def mixed_precision(model, data, labels, *, max_accuracy_drop=None, size_budget=None,
                    choices=None, method="minmax", per_channel=True, codebook_k=16):
    """Mixed precision: a QuantizedModel choosing a precision per Linear layer.

    Each float Linear gets one of ``choices`` (float, int8, int4 or a codebook of
    ``codebook_k`` centroids), chosen greedily from the accuracy measured on
    ``(data, labels)`` and the layers' sizes:

    - ``max_accuracy_drop``: start from float everywhere and repeatedly apply the change of one
      layer to a smaller choice that costs the least accuracy per byte saved, as long as the
      whole model stays within the allowed drop;
    - ``size_budget``: the same greedy steps until the model fits the budget; with both, the
      budget is met first and the steps go on while the accuracy allows.

    Activations of int8/int4 layers use static ranges calibrated on ``data`` with ``method``.

    Parameters
    ----------
    model : Sequential, list of layers or str
        The float model (anything :func:`lowbit.models.as_model` accepts); it is not modified.
    data : array_like of float, shape (N, features)
        The data the accuracy is measured on (and the activations calibrated on), finite.
    labels : array_like of int, shape (N,)
        Its class labels.
    max_accuracy_drop : float, optional
        The allowed accuracy drop in percentage points (e.g. 0.5), >= 0.
    size_budget : int, optional
        The bytes all layers may hold, >= 1. Give ``max_accuracy_drop`` and/or
        ``size_budget``.
    choices : iterable of str, optional
        The precisions to choose from, among ``"float"``, ``"int8"``, ``"int4"`` and
        ``"codebook"`` (default: all four; ``"float"`` is always added).
    method : {"minmax", "percentile", "mse", "entropy"}, default "minmax"
        How the activation ranges are calibrated (see :func:`lowbit.calibrate`).
    per_channel : bool, default True
        One weight scale per output channel for int8/int4, else one per layer.
    codebook_k : int, default 16
        Centroids of the ``"codebook"`` choice (a :class:`lowbit.CodebookLinear`).

    Returns
    -------
    QuantizedModel
        The model, with ``.plan`` (one dict per Linear: index, name, choice, bytes),
        ``.accuracy`` and ``.float_accuracy`` (fractions in [0, 1] on ``data``) and ``.nbytes``
        (bytes held).

    Raises
    ------
    TypeError
        If ``max_accuracy_drop`` is not a number, ``size_budget`` not an integer, ``data`` not
        a float array or ``labels`` not integer labels.
    ValueError
        If neither ``max_accuracy_drop`` nor ``size_budget`` is given, one is out of range, a
        choice is unknown, ``data`` holds NaN/Inf, ``labels`` has the wrong shape, or even the
        smallest choices do not fit ``size_budget``.
    """
    model = as_model(model)
    if max_accuracy_drop is None and size_budget is None:
        raise ValueError("give max_accuracy_drop (points) and/or size_budget (bytes)")
    if max_accuracy_drop is not None:
        if isinstance(max_accuracy_drop, bool) or not isinstance(max_accuracy_drop, (int, float, np.number)):
            raise TypeError(f"max_accuracy_drop must be a number of points, got {type(max_accuracy_drop).__name__}")
        if not (math.isfinite(float(max_accuracy_drop)) and max_accuracy_drop >= 0):
            raise ValueError(f"max_accuracy_drop must be >= 0, got {max_accuracy_drop}")
    if size_budget is not None:
        size_budget = as_int(size_budget, "size_budget", 1)
    avail = available_choices()
    choices = avail if choices is None else tuple(choices)
    for c in choices:
        if c not in avail:
            raise ValueError(f"choices may hold {', '.join(avail)}; {c!r} is not available")
    if "float" not in choices:
        choices = ("float",) + choices
    x = as_float32(data, "data")
    check_finite(x, "data")
    y = labels_array(labels, x.shape[0])
    lin = linear_indices(model)
    ranges = calibrate_model(model, x, method=method)
    built = {(i, c): _build(model.layers[i], c, ranges[i], per_channel=per_channel, codebook_k=codebook_k)
             for i in lin for c in choices}
    size = {k: layer_nbytes(v) for k, v in built.items()}
    current = {i: "float" for i in lin}
    other_bytes = sum(layer_nbytes(layer) for k, layer in enumerate(model.layers) if k not in lin)

    def assemble(cur):
        layers = list(model.layers)
        for i, c in cur.items():
            layers[i] = built[(i, c)]
        return QuantizedModel(layers)

    def total(cur):
        return other_bytes + sum(size[(i, c)] for i, c in cur.items())

    acc_float = accuracy(model, x, y)
    acc = acc_float
    limit = None if max_accuracy_drop is None else acc_float - float(max_accuracy_drop) / 100.0
    while True:
        over = size_budget is not None and total(current) > size_budget
        best = None
        for i in lin:
            for c in choices:
                saved = size[(i, current[i])] - size[(i, c)]
                if saved <= 0:
                    continue
                trial = dict(current)
                trial[i] = c
                a = accuracy(assemble(trial), x, y)
                if not over and limit is not None and a < limit - 1e-12:
                    continue
                if not over and limit is None:
                    continue  # budget met and no accuracy goal: stop shrinking
                key = ((acc - a) / saved, -saved)
                if best is None or key < best[0]:
                    best = (key, i, c, a)
        if best is None:
            break
        _, i, c, a = best
        current[i], acc = c, a
    if size_budget is not None and total(current) > size_budget:
        raise ValueError(f"size_budget={size_budget} bytes cannot be met: the smallest choices take "
                         f"{total(current)} bytes")
    out = assemble(current)
    out.plan = [{"index": i, "name": layer_name(model, i), "choice": current[i],
                 "bytes": size[(i, current[i])]} for i in lin]
    out.accuracy, out.float_accuracy = acc, acc_float  # out.nbytes == total(current)
    return out
