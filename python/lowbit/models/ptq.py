"""Post-training quantization of a whole model: calibrate each Linear's input range, then quantize."""
from __future__ import annotations

import numpy as np

from .._checks import as_bool, as_float32, as_int, check_finite
from ..linear import QuantizedLinear
from ..observers import METHODS, observer, range_to_qparams
from .graph import linear_indices, weight_of
from .loaders import as_model
from .quantized import QuantizedModel

def batches(data, name="calibration_data", batch_size=512):
    """float32 batches (2-D or more) from an array or an iterable of arrays."""
    if isinstance(data, np.ndarray) or (isinstance(data, (list, tuple)) and data
                                         and not isinstance(data[0], np.ndarray)):
        a = as_float32(data, name)
        if a.ndim < 2 or a.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty (samples, features) array, got shape {a.shape}")
        check_finite(a, name)
        return [a[s:s + batch_size] for s in range(0, a.shape[0], batch_size)]
    try:
        items = list(data)
    except TypeError:
        raise TypeError(f"{name} must be an array or an iterable of arrays, got {type(data).__name__}") from None
    out = []
    for k, b in enumerate(items):
        a = as_float32(b, f"{name}[{k}]")
        check_finite(a, f"{name}[{k}]")
        out.append(a)
    if not out:
        raise ValueError(f"{name} is empty")
    return out


def _skip_set(skip, model) -> set:
    n = len(model.layers)
    if isinstance(skip, (int, np.integer)) and not isinstance(skip, bool):
        skip = (skip,)
    try:
        items = list(skip)
    except TypeError:
        raise TypeError(f"skip must be a sequence of layer indices, got {type(skip).__name__}") from None
    out = set()
    for s in items:
        s = as_int(s, "skip entries", -n, n - 1)
        out.add(s % n)
    return out


def calibrate_model(model, calibration_data, *, method="minmax", **observer_kwargs) -> dict:
    """The input range of every float Linear of a model, observed over calibration data.

    Parameters
    ----------
    model : Sequential, list of layers or str
        The model (anything :func:`lowbit.models.as_model` accepts); it is not modified.
    calibration_data : array_like or iterable of array_like
        A float array ``(N, features)`` (run in batches of 512 rows) or an iterable of float
        batches, finite.
    method : {"minmax", "percentile", "mse", "entropy"}, default "minmax"
        The observer (see :func:`lowbit.observer`).
    **observer_kwargs
        Passed to the observer's constructor (``percentile=``, ``bits=``, ``num_bins=``,
        ``start_bin=``, ``symmetric=``).

    Returns
    -------
    dict of int to tuple of float
        ``{layer index: (lo, hi)}`` of the input of every float Linear.

    Raises
    ------
    TypeError
        If ``calibration_data`` is not an array or an iterable of float arrays.
    ValueError
        If ``method`` is unknown, or ``calibration_data`` is empty or holds NaN/Inf.
    """
    model = as_model(model)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    lin = linear_indices(model)
    obs = {i: observer(method, **observer_kwargs) for i in lin}
    for batch in batches(calibration_data):
        h = batch
        for i, layer in enumerate(model.layers):
            if i in obs:
                obs[i].observe(h)
            h = np.asarray(layer(h), np.float32)
    return {i: o.range() for i, o in obs.items()}


def quantized_linear(layer, rng, *, bits, per_channel):
    scale, zp = range_to_qparams(*rng, bits=8)
    return QuantizedLinear(weight_of(layer), layer.bias, bits=bits, per_channel=per_channel,
                           act_scale=scale, act_zero_point=zp)


def quantize_model(model, calibration_data, *, method="minmax", bits=8, per_channel=True, skip=(),
                   fuse=True, scheme=None, **options):
    """Post-training quantization of a whole model.

    Every float Linear of ``model`` (except the layer indices in ``skip``) becomes a
    :class:`lowbit.QuantizedLinear` with ``bits``-bit symmetric weights (per output channel
    when ``per_channel``) and static uint8 activation parameters from the range ``method``
    finds for its input over ``calibration_data`` (see :func:`calibrate_model`). Other layers
    are kept (copied when they have a ``copy`` method, else shared). The model given is not
    modified.

    Parameters
    ----------
    model : Sequential, list of layers or str
        The model (anything :func:`lowbit.models.as_model` accepts).
    calibration_data : array_like or iterable of array_like
        A float array ``(N, features)`` or an iterable of float batches, finite.
    method : {"minmax", "percentile", "mse", "entropy"}, default "minmax"
        How the activation range is found (see :func:`lowbit.observer`).
    bits : int, default 8
        Weight bits, 2..8.
    per_channel : bool, default True
        One weight scale per output channel, else one per layer.
    skip : int or sequence of int, default ()
        Indices of layers to leave in float (negative ones count from the end).
    fuse : bool, default True
        Run chains of quantized layers on uint8 codes (see :class:`lowbit.QuantizedModel`).
    scheme : {"int8", "int4", "codebook"} or None
        For a transformer encoder (:class:`lowbit.models.Encoder`), how its linear layers are
        quantized (default ``"int8"``: dynamic per-row activations, no calibration needed;
        ``"int4"``: :class:`lowbit.Int4Linear`, ``calibration_data`` sentences or
        ``(input_ids, attention_mask)`` for ``method="gptq"``; ``"codebook"``:
        :class:`lowbit.CodebookLinear`), with ``options`` passed to the layer
        (:func:`lowbit.models.encoder.quantize_encoder`). For other models only ``"int8"`` (the
        static quantization above) is available.
    **options
        Encoders only: keyword arguments of the scheme's layer.

    Returns
    -------
    QuantizedModel or Encoder
        The quantized model (an :class:`lowbit.models.Encoder` for an encoder).

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``bits`` is not in 2..8, a ``skip`` index is out of range, ``method`` is unknown,
        or ``calibration_data`` is empty or holds NaN/Inf.
    """
    from .encoder import Encoder, quantize_encoder
    if isinstance(model, Encoder):
        if method != "minmax":
            options["method"] = method
        if bits != 8:
            options["bits"] = bits
        return quantize_encoder(model, calibration_data, scheme=scheme or "int8", **options)
    if scheme not in (None, "int8"):
        raise ValueError(f"scheme {scheme!r} is for transformer encoders (lowbit.models.Encoder); "
                         "a Sequential model is quantized to int8 (quantize its layers with "
                         "lowbit.Int4Linear or lowbit.CodebookLinear for 4 bits)")
    if options:
        raise TypeError(f"quantize_model got unexpected keyword arguments {', '.join(options)}")
    model = as_model(model)
    bits = as_int(bits, "bits", 2, 8)
    per_channel = as_bool(per_channel, "per_channel")
    skipped = _skip_set(skip, model)
    ranges = calibrate_model(model, calibration_data, method=method)
    layers = []
    for i, layer in enumerate(model.layers):
        if i in ranges and i not in skipped:
            layers.append(quantized_linear(layer, ranges[i], bits=bits, per_channel=per_channel))
        else:
            layers.append(layer.copy() if hasattr(layer, "copy") else layer)
    return QuantizedModel(layers, fuse=fuse)
