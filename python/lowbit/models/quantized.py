"""QuantizedModel: an inference Sequential run by the C++ runtime's plan (lowbit::Model), the one
executor it shares with exported models: static int8 layers pass uint8 codes to each other."""
from __future__ import annotations

import operator

import numpy as np

from .. import _core
from .. import io as _io
from .._checks import as_bool, as_float32, check_finite
from ..codebook import CodebookLinear
from ..linear import QuantizedLinear
from . import layers as nn


def _runtime_layer(layer):
    """The C++ runtime's description of `layer` (sharing its packed weights), None for Dropout
    (the identity at inference), or False when the runtime does not run it. Exactly the lowbit
    classes: a subclass may compute something else, so it runs in Python."""
    kind = type(layer)
    if kind is QuantizedLinear:
        static = layer.act_scale is not None
        return ("linear", layer._packed._packed, layer._w_scale, layer.bias, static,
                layer.act_scale if static else 1.0, layer.act_zero_point if static else 0,
                layer.act_bits)
    if kind is CodebookLinear:
        return ("codebook", layer._plan)
    if isinstance(layer, nn.ReLU):
        return ("relu",)
    if isinstance(layer, nn.Dropout):
        return None
    return False


class _Run:
    """Consecutive layers executed by one lowbit::Model (``_core.RuntimeModel``)."""

    __slots__ = ("start", "stop", "model", "in_features", "out_features")

    def __init__(self, start, stop, model):
        self.start, self.stop, self.model = start, stop, model
        self.in_features, self.out_features = model.in_features, model.out_features

    def __call__(self, h: np.ndarray) -> np.ndarray:
        if h.ndim == 0 or h.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {h.shape}")
        lead = h.shape[:-1]
        x2 = np.ascontiguousarray(h.reshape(-1, self.in_features))
        y = self.model.forward(x2)
        if y is None:
            check_finite(h, "x")
            raise ValueError(f"layers[{self.start}:{self.stop}] produced NaN or Inf (float32 overflow)")
        return y.reshape(lead + (self.out_features,))


def _plan(layers) -> list:
    """The executor of `layers`: the maximal runs of layers the runtime executes (starting at a
    QuantizedLinear or CodebookLinear; ReLU and Dropout inside) as _Run objects, every other layer
    as itself (run in Python between them)."""
    steps, i, n = [], 0, len(layers)
    while i < n:
        spec = _runtime_layer(layers[i])
        if not spec or spec[0] == "relu":
            steps.append(layers[i])
            i += 1
            continue
        specs, j, width = [], i, None
        while j < n:
            spec = _runtime_layer(layers[j])
            if spec is False:
                break
            if spec is not None:
                if spec[0] != "relu":
                    k = layers[j].in_features
                    if width is not None and k != width:
                        raise ValueError(f"layers[{j}] takes {k} features but receives {width}")
                    width = layers[j].out_features
                specs.append(spec)
            j += 1
        steps.append(_Run(i, j, _core.RuntimeModel.from_layers(specs, layers[i].in_features)))
        i = j
    return steps


class QuantizedModel(nn.Sequential):
    """An inference-only Sequential run by the C++ runtime's plan.

    The executor of exported models (:func:`lowbit.export_runtime`, ``lowbit_infer``): each
    maximal run of QuantizedLinear (static or dynamic), CodebookLinear, ReLU and Dropout layers
    (starting at a QuantizedLinear or CodebookLinear; exactly these lowbit classes, not
    subclasses) executes in one ``lowbit::Model``, built on the first call and kept (the layers
    are treated as immutable; replacing an entry of ``layers`` re-plans). Other layers (float
    Linear, GELU, LayerNorm, any callable) run in Python between the runs.

    In a run, chains of static QuantizedLinear layers (Linear [-> ReLU] -> Linear) stay in uint8
    codes: a layer's int32 accumulators are requantized in the GEMM epilogue straight to the
    next layer's input codes (ReLU fused), as :meth:`lowbit.QuantizedLinear.forward_quantized`
    does; so the output equals the exported model's bit for bit. ``fuse=False`` (or
    ``forward(..., return_hidden=True)``) runs the layers one by one through float instead.

    Calls from several threads are safe: each run's model runs one call at a time (its buffers
    are planned for the largest batch seen, up to 16 MiB; larger batches run in chunks).

    Parameters
    ----------
    layers : iterable of callable
        The layers: lowbit layers, or any callable ``x -> array``.
    fuse : bool, default True
        Run the runtime's plan (False: every layer one by one, through float).

    Attributes
    ----------
    layers : list
        The layers, in order.
    fuse : bool
        Whether calls run the runtime's plan.

    Raises
    ------
    TypeError
        If ``layers`` is not an iterable of callables or ``fuse`` not a bool.
    """

    def __init__(self, layers, *, fuse=True):
        super().__init__(layers)
        self.fuse = as_bool(fuse, "fuse")

    def _executor(self) -> list:
        layers = self.layers
        cache = self.__dict__.setdefault("_cache", {})
        hit = cache.get("executor")
        if hit is not None and len(hit[0]) == len(layers) and all(map(operator.is_, hit[0], layers)):
            return hit[1]
        steps = _plan(layers)
        cache["executor"] = (list(layers), steps)
        return steps

    def forward(self, x, *, return_hidden=False):
        """Apply the layers, by the runtime's plan unless ``fuse`` is False or ``return_hidden``.

        Parameters
        ----------
        x : array_like of float, shape (..., in_features)
            The input (converted to float32).
        return_hidden : bool, default False
            Also return every layer's output (runs the layers one by one, through float).

        Returns
        -------
        numpy.ndarray or tuple
            The output, float32 (through float: in the model's dtype); with
            ``return_hidden``, ``(output, hidden)`` where ``hidden[i]`` is the output of
            ``layers[i]`` (also kept as ``self.hidden``).

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point array.
        ValueError
            If the last axis of ``x`` does not match ``in_features``, the layers' shapes do
            not chain, or ``x`` holds NaN/Inf or the runtime's plan produces them (float32
            overflow).
        """
        if return_hidden or not self.fuse:
            return super().forward(x, return_hidden=return_hidden)
        h = as_float32(x, "x")
        n_in = self.in_features
        if h.ndim == 0 or (n_in is not None and h.shape[-1] != n_in):
            raise ValueError(f"x must have shape (..., {n_in}), got {h.shape}")
        for step in self._executor():
            h = step(h) if type(step) is _Run else np.asarray(step(h), dtype=np.float32)
        return h


def _register_io() -> None:
    def qm_from(s):
        return QuantizedModel(nn.layers_of(s, "QuantizedModel"),
                              fuse=_io.need(s, "fuse", bool, "QuantizedModel"))

    _io.register("QuantizedModel", QuantizedModel,
                 lambda m: {"layers": list(m.layers), "fuse": m.fuse}, qm_from)


_register_io()
