"""Quantization-aware training and codebook fine-tuning for lowbit.nn models.

- ``FakeQuantLinear``: a Linear whose forward rounds its weights (symmetric, per output channel)
  and its inputs (uint8, per row like QuantizedLinear's dynamic mode, or with a static range
  learned by a moving-average observer) to the integer grid and back, in float; backward uses the
  straight-through estimator (gradients pass the rounding unchanged; for static activations they
  are zeroed where the input was clipped). The rounding reproduces lowbit.quantize's rules
  exactly (float32 division, round half to even, constant-channel cases), so ``convert_qat``
  gives QuantizedLinear layers whose int8 inference matches the fake-quantized forward.
- ``prepare_qat`` / ``convert_qat`` / ``quantize_dynamic``: model-level conversions.
- ``SharedWeightLinear``: a Linear whose weight is a codebook, ``centroids[indices]``; the
  gradient of a centroid is the sum of the gradients of the weights that share it (Deep
  Compression, Han et al. 2016). ``prepare_codebook`` clusters a model's Linear layers.

Both layers save (lowbit.save, pickling) as their own types, "nn.FakeQuantLinear" and
"nn.SharedWeightLinear", with everything training continues from: float master weights, bits,
activation mode and observed range; centroids and indices.
"""
from __future__ import annotations

import numpy as np

from ._util import as_float, as_number, as_seed
from .layers import Layer, Linear, Sequential

__all__ = ["fake_quantize_weight", "fake_quantize_rows", "fake_quantize_static", "FakeQuantLinear",
           "prepare_qat", "convert_qat", "quantize_dynamic", "SharedWeightLinear", "prepare_codebook"]

_ACT_MODES = ("dynamic", "static", None)


# --- fake quantization: lowbit's own quantize, then dequantize -------------------------------
# The parameters and the rounding are lowbit.quantize's (the C++ core; the parameters rule is
# lowbit.quant.qparams), so the fake-quantized numbers are the ones int8 inference computes, bit
# for bit (tests/python/test_qparams.py). Inputs of another float dtype (float64 models) are
# quantized as float32 and the results returned in their dtype. Non-finite inputs give NaN
# results (a diverging training then shows in its loss).
from .. import _core  # noqa: E402
from ..quant import qparams as _qparams  # noqa: E402


def _as_f32(x) -> tuple[np.ndarray, np.dtype]:
    x = np.asarray(x)
    dt = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    return np.ascontiguousarray(x, np.float32), dt


def fake_quantize_weight(w, bits: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fake-quantize a weight as ``lowbit.quantize(w, bits=bits, axis=0)`` does.

    Symmetric per output channel, codes in the narrow range
    ``[-(2^(bits-1) - 1), 2^(bits-1) - 1]``, ``scale = max(abs(w_row)) / (2^(bits-1) - 1)`` (a
    constant row ``v`` gets scale ``abs(v)``, 1 when ``v == 0``). The weight is quantized as
    float32, bit for bit as int8 inference does; non-finite weights give NaN results.

    Parameters
    ----------
    w : array_like of float, shape (out_features, ...)
        The weight; each row (the first axis) is a channel.
    bits : int, default 8
        Weight bits, 2..8.

    Returns
    -------
    dequantized : numpy.ndarray
        The dequantized weight, of ``w``'s shape.
    codes : numpy.ndarray
        The integer codes, of ``w``'s shape.
    scales : numpy.ndarray
        One scale per row, ``(out_features,)``.

    Notes
    -----
    All three are in ``w``'s dtype (float32 for a non-float ``w``).
    """
    w32, dt = _as_f32(w)
    rows = w32.shape[0]
    w2 = w32.reshape(rows, -1)
    codes, s, z, ok = _core.quantize_dynamic(w2.reshape(1, rows, w2.shape[1]), bits, True)
    if not ok:
        nan = np.full(w32.shape, np.nan, dt)
        return nan, nan.copy(), np.full(rows, np.nan, dt)
    deq = _core.dequantize(codes, True, s, z, None).reshape(w32.shape)
    return (deq.astype(dt, copy=False), codes.view(np.int8).reshape(w32.shape).astype(dt),
            s.astype(dt, copy=False))


def _asym_params(mn: np.ndarray, mx: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (scale, zero point) per entry of mn/mx by the one rule (lowbit.quant.qparams, ONNX
    DynamicQuantizeLinear's), as arrays of `dtype`."""
    s, z = _qparams(mn, mx, bits=8, symmetric=False)
    return s.astype(dtype), z.astype(dtype)


def fake_quantize_rows(x) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fake-quantize activations as :class:`lowbit.QuantizedLinear`'s dynamic mode does.

    The dynamic per-row uint8 quantization QuantizedLinear applies to its input:
    ``lowbit.quantize(x, axis=0, symmetric=False)`` on ``(rows, features)``, in float32, bit
    for bit; non-finite inputs give NaN results.

    Parameters
    ----------
    x : array_like of float, shape (rows, features)
        The activations.

    Returns
    -------
    dequantized : numpy.ndarray
        The dequantized ``x``, ``(rows, features)``.
    codes : numpy.ndarray
        The uint8 codes (as numbers), ``(rows, features)``.
    scales : numpy.ndarray
        One scale per row, ``(rows,)``.
    zero_points : numpy.ndarray
        One zero point per row, ``(rows,)``.

    Notes
    -----
    All four are in ``x``'s dtype (float32 for a non-float ``x``).
    """
    x32, dt = _as_f32(x)
    rows, cols = x32.shape
    codes, s, z, ok = _core.quantize_dynamic(x32.reshape(1, rows, cols), 8, False)
    if not ok:
        nan = np.full(x32.shape, np.nan, dt)
        return nan, nan.copy(), np.full(rows, np.nan, dt), np.full(rows, np.nan, dt)
    deq = _core.dequantize(codes, False, s, z, None).reshape(rows, cols)
    return (deq.astype(dt, copy=False), codes.reshape(rows, cols).astype(dt), s.astype(dt, copy=False),
            z.astype(dt))


def fake_quantize_static(x, scale: float, zero_point: int):
    """Fake-quantize activations to uint8 with given parameters.

    As ``QuantizedLinear(act_scale=..., act_zero_point=...)`` quantizes its input:
    ``lowbit.quantize(x, scale=scale, zero_point=zero_point, symmetric=False)``, codes
    ``clamp(rint(x / scale) + zero_point, 0, 255)``, in float32; non-finite inputs give NaN
    results.

    Parameters
    ----------
    x : array_like of float
        The activations, any shape.
    scale : float
        The scale, finite and > 0 in float32.
    zero_point : int
        The zero point, an integer in [0, 255].

    Returns
    -------
    dequantized : numpy.ndarray
        The dequantized ``x``, in its dtype (float32 for a non-float ``x``).
    mask : numpy.ndarray of bool
        False where ``x`` was clipped (the code before the clamp, computed the same way in
        float32, is outside [0, 255]).

    Raises
    ------
    ValueError
        If ``scale`` or ``zero_point`` is invalid.
    """
    x32, dt = _as_f32(x)
    s = np.array([scale], np.float32)
    z = np.array([zero_point], np.int32)
    sf = float(s[0])
    if not 0.0 < sf < float("inf") or z[0] != zero_point or not 0 <= z[0] <= 255:
        raise ValueError(f"need a finite scale > 0 and a zero point in [0, 255], got {scale}, {zero_point}")
    codes, ok = _core.quantize_static(x32.reshape(1, 1, -1), s, z, 0, 255)
    deq = _core.dequantize(codes, False, s, z, None).reshape(x32.shape)
    # In range: rint(t) + z in [0, 255] for t = x / scale (the kernel's float32 quotient), that
    # is t between -z - 0.5 and 255.5 - z (exact in float32), a bound itself included when half
    # to even rounds it inwards: -z - 0.5 when z is even, 255.5 - z when z is odd.
    zi = int(z[0])
    lo, hi = np.float32(-zi - 0.5), np.float32(255.5 - zi)
    with np.errstate(over="ignore", invalid="ignore"):
        t = x32 / s[0]
        mask = np.greater_equal(t, lo) if zi % 2 == 0 else np.greater(t, lo)
        mask &= np.less_equal(t, hi) if zi % 2 == 1 else np.less(t, hi)
    if not ok:
        deq[~np.isfinite(x32)] = np.nan
    return deq.astype(dt, copy=False), mask


class FakeQuantLinear(Linear):
    """A Linear trained with quantization in the loop.

    Its forward rounds its weights (symmetric, per output channel) and its inputs (uint8, per
    row like :class:`lowbit.QuantizedLinear`'s dynamic mode, or with a static range learned by
    a moving-average observer) to the integer grid and back, in float; backward uses the
    straight-through estimator (gradients pass the rounding unchanged; for static activations
    they are zeroed where the input was clipped). The rounding reproduces
    :func:`lowbit.quantize`'s rules exactly (float32 division, round half to even,
    constant-channel cases), so :func:`lowbit.nn.convert_qat` gives QuantizedLinear layers whose
    int8 inference matches the fake-quantized forward. Inference (``layer(x)``) is the
    fake-quantized forward. :meth:`from_linear` starts from a trained Linear.

    The layer saves (``lowbit.save``, pickling) as "nn.FakeQuantLinear", with everything training
    continues from: float master weights, bits, activation mode and observed range.

    Parameters
    ----------
    in_features : int
        Length of the input rows, >= 1.
    out_features : int
        Length of the output rows, >= 1.
    bias : bool, default True
        False makes a layer without bias.
    seed : int, default 0
        Seed of the initialization (as :class:`lowbit.nn.Linear`), >= 0.
    bits : int, default 8
        Weight bits, 2..8 (symmetric per output channel).
    act : {"dynamic", "static", None}, default "dynamic"
        "dynamic": each input row quantized to uint8 with its own range, as QuantizedLinear
        does by default; "static": one range for all rows, tracked during training by an
        exponential moving average of the batch min/max with ``momentum``, frozen as
        ``act_scale``/``act_zero_point`` and passed to QuantizedLinear on conversion; None:
        weights only.
    momentum : float, default 0.01
        The moving average's weight of a new batch, in (0, 1].
    dtype : numpy.dtype, default numpy.float32
        float32 or float64 (for gradient checks).

    Attributes
    ----------
    weight : numpy.ndarray
        The float master weight ``(out_features, in_features)``.
    bias : numpy.ndarray or None
        ``(out_features,)``, or None.
    bits : int
        Weight bits.
    act : str or None
        The activation mode.
    momentum : float
        The moving average's weight of a new batch.
    act_min, act_max : float or None
        The observed activation range (static; None before a training forward).

    Raises
    ------
    TypeError
        If an integer argument is not an integer, or ``dtype`` is neither float32 nor float64.
    ValueError
        If a size is < 1, ``seed`` negative, ``bits`` not in 2..8, ``act`` unknown, or
        ``momentum`` not in (0, 1].
    """

    def __init__(self, in_features, out_features, *, bias=True, seed=0, bits=8, act="dynamic",
                 momentum=0.01, dtype=np.float32):
        super().__init__(in_features, out_features, bias=bias, seed=seed, dtype=dtype)
        from lowbit._checks import as_int

        self.bits = as_int(bits, "bits", 2, 8)
        if act not in _ACT_MODES:
            raise ValueError(f"act must be 'dynamic', 'static' or None, got {act!r}")
        self.act = act
        self.momentum = as_number(momentum, "momentum", 0.0, 1.0, lo_open=True)
        self.act_min = self.act_max = None  # observed range (static)

    @classmethod
    def from_linear(cls, layer: Linear, *, bits=8, act="dynamic", momentum=0.01) -> "FakeQuantLinear":
        """A FakeQuantLinear starting from copies of a Linear's weight and bias.

        Parameters
        ----------
        layer : lowbit.nn.Linear
            The layer (its dtype is kept).
        bits : int, default 8
            Weight bits, 2..8.
        act : {"dynamic", "static", None}, default "dynamic"
            The activation mode (see the class).
        momentum : float, default 0.01
            The static observer's moving-average weight, in (0, 1].

        Returns
        -------
        FakeQuantLinear
            The new layer.

        Raises
        ------
        TypeError
            If ``layer`` is not a :class:`lowbit.nn.Linear`.
        ValueError
            If ``bits``, ``act`` or ``momentum`` is invalid.
        """
        if not isinstance(layer, Linear):
            raise TypeError(f"layer must be a lowbit.nn.Linear, got {type(layer).__name__}")
        new = cls(layer.in_features, layer.out_features, bias=layer.bias is not None, bits=bits, act=act,
                  momentum=momentum, dtype=layer.weight.dtype)
        new.weight = np.array(layer.weight, copy=True)
        if layer.bias is not None:
            new.bias = np.array(layer.bias, copy=True)
        return new

    @property
    def act_scale(self):
        """The static activation scale (None until a training forward observed a range)."""
        if self.act != "static" or self.act_min is None:
            return None
        return float(_asym_params(np.array([self.act_min], np.float32), np.array([self.act_max], np.float32),
                                  np.float32)[0][0])

    @property
    def act_zero_point(self):
        """The static activation zero point (None until a training forward observed a range)."""
        if self.act != "static" or self.act_min is None:
            return None
        return int(_asym_params(np.array([self.act_min], np.float32), np.array([self.act_max], np.float32),
                                np.float32)[1][0])

    def _effective_weight(self, train):
        return fake_quantize_weight(self.weight, self.bits)[0]

    def _fake_act(self, x: np.ndarray, train: bool):
        if self.act is None:
            return x, None
        if self.act == "dynamic":
            x2 = x.reshape(-1, self.in_features)
            return fake_quantize_rows(x2)[0].reshape(x.shape), None
        if train:  # update the observer with this batch, then quantize with the new range
            mn, mx = float(x.min()), float(x.max())
            if self.act_min is None:
                self.act_min, self.act_max = mn, mx
            else:
                m = self.momentum
                self.act_min += m * (mn - self.act_min)
                self.act_max += m * (mx - self.act_max)
        if self.act_min is None:
            raise RuntimeError("this FakeQuantLinear (act='static') has not observed any activations "
                               "yet: train it before inference")
        s, z = _asym_params(np.array([self.act_min], x.dtype), np.array([self.act_max], x.dtype), x.dtype)
        return fake_quantize_static(x, s[0], z[0])

    def forward(self, x, train=False, rng=None):
        """The fake-quantized output: quantized inputs and weights, back in float.

        With ``act="static"``, a training forward first updates the observed range with the
        batch's min and max, then quantizes with the new range.

        Parameters
        ----------
        x : array_like of float, shape (..., in_features)
            The input.
        train : bool, default False
            Keep what :meth:`backward` needs (and update the static range).
        rng : numpy.random.Generator, optional
            Unused (the protocol's dropout generator).

        Returns
        -------
        numpy.ndarray
            The output, ``(..., out_features)``.

        Raises
        ------
        RuntimeError
            If ``act="static"`` and no training forward observed a range yet.
        ValueError
            If the last axis of ``x`` is not ``in_features`` long, or ``x`` is not 2-D in
            training.
        """
        x = self._input(x)
        xq, mask = self._fake_act(x, train)
        if train:
            self._cache["act_mask"] = mask
        return super().forward(xq, train, rng)

    def backward(self, grad, need_input_grad=True):
        """Back-propagate through the last training forward, by the straight-through estimator.

        The weights' gradient is written to ``grad_weight`` (and ``grad_bias``), as if the
        rounding were the identity; with static activations the input's gradient is zeroed
        where the input was clipped.

        Parameters
        ----------
        grad : array_like
            dLoss/dy of the last training forward (never modified).
        need_input_grad : bool, default True
            Compute dLoss/dx (False: return None).

        Returns
        -------
        numpy.ndarray or None
            dLoss/dx ``(batch, in_features)``, or None when ``need_input_grad`` is False.

        Raises
        ------
        RuntimeError
            If no training forward came before.
        ValueError
            If ``grad`` does not have the shape of the output.
        """
        dx = super().backward(grad, need_input_grad)
        mask = self._cache.get("act_mask")
        if dx is not None and mask is not None:
            dx = dx * mask
        return dx

    def to_quantized(self):
        """The :class:`lowbit.QuantizedLinear` computing this layer's fake-quantized forward in int8.

        Returns
        -------
        lowbit.QuantizedLinear
            Per-channel weights of ``bits`` bits; dynamic activations, or the static
            ``act_scale``/``act_zero_point``.

        Raises
        ------
        ValueError
            If ``act`` is None (QuantizedLinear always quantizes activations).
        """
        from lowbit.linear import QuantizedLinear

        if self.act is None:
            raise ValueError("a FakeQuantLinear with act=None quantizes weights only; QuantizedLinear "
                             "always quantizes activations: train with act='dynamic' or 'static'")
        b = None if self.bias is None else self.bias.astype(np.float32)
        return QuantizedLinear(self.weight.astype(np.float32), b, bits=self.bits, per_channel=True,
                               act_scale=self.act_scale, act_zero_point=self.act_zero_point)

    def __repr__(self) -> str:
        return (f"FakeQuantLinear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bits={self.bits}, act={self.act!r})")


def _linear_indices(model, layers, name="layers") -> list:
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a lowbit.nn Sequential/MLP, got {type(model).__name__}")
    if layers is None:
        return [i for i, l in enumerate(model.layers) if isinstance(l, Linear)]
    out = []
    for i in layers:
        if not -len(model) <= int(i) < len(model) or not isinstance(model.layers[int(i)], Linear):
            raise ValueError(f"{name} must list indices of Linear layers of the model, got {i}")
        out.append(int(i) % len(model))
    return out


def prepare_qat(model, *, bits: int = 8, act="dynamic", layers=None, momentum: float = 0.01) -> Sequential:
    """Prepare a model for quantization-aware training or distillation.

    Parameters
    ----------
    model : lowbit.nn.Sequential
        The model (a Sequential or MLP); not modified.
    bits : int, default 8
        Weight bits, 2..8.
    act : {"dynamic", "static", None}, default "dynamic"
        The activation mode (see :class:`lowbit.nn.FakeQuantLinear`).
    layers : sequence of int, optional
        Indices of the Linear layers to convert (None: all).
    momentum : float, default 0.01
        The static observer's moving-average weight, in (0, 1].

    Returns
    -------
    lowbit.nn.Sequential
        A copy of ``model`` whose Linear layers (all, or those in ``layers``) are
        :class:`lowbit.nn.FakeQuantLinear`.

    Raises
    ------
    TypeError
        If ``model`` is not a lowbit.nn Sequential/MLP.
    ValueError
        If ``layers`` holds an index that is not a Linear layer's, or a setting is invalid.
    """
    idx = set(_linear_indices(model, layers))
    new = model.copy()
    for i in idx:
        new.layers[i] = FakeQuantLinear.from_linear(model.layers[i], bits=bits, act=act, momentum=momentum)
    return new


def convert_qat(model) -> Sequential:
    """Convert a quantization-aware trained model to int8 inference.

    Parameters
    ----------
    model : lowbit.nn.Sequential
        The trained model, holding FakeQuantLinear layers; not modified.

    Returns
    -------
    lowbit.nn.Sequential
        A copy of ``model`` in which every FakeQuantLinear is the equivalent
        :class:`lowbit.QuantizedLinear`; other layers are copied.

    Raises
    ------
    TypeError
        If ``model`` is not a lowbit.nn Sequential/MLP.
    ValueError
        If ``model`` has no FakeQuantLinear layer, or one has ``act=None``.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a lowbit.nn Sequential/MLP, got {type(model).__name__}")
    if not any(isinstance(l, FakeQuantLinear) for l in model.layers):
        raise ValueError("model has no FakeQuantLinear layer: prepare it with prepare_qat and train it, "
                         "or use quantize_dynamic for post-training quantization")
    new = model.copy()
    for i, l in enumerate(model.layers):
        if isinstance(l, FakeQuantLinear):
            new.layers[i] = l.to_quantized()
    return new


def quantize_dynamic(model, *, bits: int = 8, per_channel: bool = True, layers=None) -> Sequential:
    """Post-training quantization of a lowbit.nn model's Linear layers.

    Works for teachers too (an int8 teacher).

    Parameters
    ----------
    model : lowbit.nn.Sequential
        The model (a Sequential or MLP); not modified.
    bits : int, default 8
        Weight bits, 2..8.
    per_channel : bool, default True
        One weight scale per output channel.
    layers : sequence of int, optional
        Indices of the Linear layers to quantize (None: all).

    Returns
    -------
    lowbit.nn.Sequential
        A copy of ``model`` with those layers replaced by :class:`lowbit.QuantizedLinear`
        (dynamic int8 activations). FakeQuantLinear layers keep their own settings (those
        with ``act=None`` are quantized with ``bits`` and ``per_channel``).

    Raises
    ------
    TypeError
        If ``model`` is not a lowbit.nn Sequential/MLP, or a setting has the wrong type.
    ValueError
        If ``layers`` holds an index that is not a Linear layer's, or ``bits`` is out of range.
    """
    from lowbit.linear import QuantizedLinear

    idx = _linear_indices(model, layers)
    new = model.copy()
    for i in idx:
        l = model.layers[i]
        if isinstance(l, FakeQuantLinear) and l.act is not None:
            new.layers[i] = l.to_quantized()
        else:
            b = None if l.bias is None else np.asarray(l.bias, np.float32)
            new.layers[i] = QuantizedLinear(np.asarray(l.weight, np.float32), b, bits=bits,
                                            per_channel=per_channel)
    return new


# --- codebooks ----------------------------------------------------------------------------------
def _nearest(values: np.ndarray, centroids: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Index of the nearest centroid (k, d) for each row of values (n, d), in chunks."""
    out = np.empty(values.shape[0], np.int64)
    cn = np.sum(centroids.astype(np.float64) ** 2, axis=1)
    for s in range(0, values.shape[0], chunk):
        v = values[s:s + chunk].astype(np.float64)
        d = cn[None, :] - 2.0 * (v @ centroids.T.astype(np.float64))
        out[s:s + chunk] = np.argmin(d, axis=1)
    return out


class SharedWeightLinear(Linear):
    """A Linear whose weight is a codebook: ``weight = centroids[indices]``.

    Trained by fine-tuning the centroids (and bias) with the indices fixed: backward writes
    each centroid's gradient, the sum of the gradients of the weights that share it (Deep
    Compression, Han et al. 2016), to ``grad_centroids``. ``weight`` is the decoded weight,
    read-only. :func:`lowbit.nn.prepare_codebook` clusters a model's Linear layers into these.

    The layer saves (``lowbit.save``, pickling) as "nn.SharedWeightLinear", with its centroids
    and indices.

    Parameters
    ----------
    centroids : array_like of float
        ``(k,)`` or ``(k, 1)`` for scalar weight sharing, ``(k, d)`` for groups of ``d``
        consecutive weights along the input axis (kept in float64 if float64, else float32).
    indices : array_like of int
        Non-empty, ``(out_features, in_features)`` for scalars or
        ``(out_features, in_features // d)`` for groups, each in ``0..k-1``.
    bias : array_like of float, shape (out_features,), optional
        The bias (None: no bias).

    Attributes
    ----------
    centroids : numpy.ndarray
        ``(k, d)``, the trained parameter.
    indices : numpy.ndarray
        int64, ``(out_features, in_features // d)``.
    bias : numpy.ndarray or None
        ``(out_features,)``, or None.

    Raises
    ------
    TypeError
        If ``centroids`` or ``bias`` is not a floating-point array, or ``indices`` not an
        integer array.
    ValueError
        If ``centroids`` is not ``(k,)`` or ``(k, d)``, ``indices`` is not a non-empty 2-D array
        of values in ``0..k-1``, or ``bias`` has the wrong shape.
    """

    def __init__(self, centroids, indices, bias=None):
        Layer.__init__(self)
        c = as_float(centroids, "centroids", np.float64 if np.asarray(centroids).dtype == np.float64 else np.float32)
        if c.ndim == 1:
            c = c.reshape(-1, 1)
        if c.ndim != 2 or c.shape[0] < 1:
            raise ValueError(f"centroids must have shape (k,) or (k, d), got {np.shape(centroids)}")
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"indices must be an integer array, got dtype {idx.dtype}")
        if idx.ndim != 2 or idx.size == 0:
            raise ValueError(f"indices must be a non-empty 2-D array (out_features, in_features / d), got {idx.shape}")
        if idx.min() < 0 or idx.max() >= c.shape[0]:
            raise ValueError(f"indices must be in 0..{c.shape[0] - 1} (k = {c.shape[0]} centroids)")
        self.centroids = np.array(c, copy=True)
        self.indices = idx.astype(np.int64)
        self.out_features = int(idx.shape[0])
        self.in_features = int(idx.shape[1] * c.shape[1])
        if bias is None:
            self.bias = None
            self._params = ("centroids",)
        else:
            b = as_float(bias, "bias", c.dtype)
            if b.shape != (self.out_features,):
                raise ValueError(f"bias must have shape ({self.out_features},), got {b.shape}")
            self.bias = b.copy()
            self._params = ("centroids", "bias")

    @property
    def k(self) -> int:
        """The number of centroids."""
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        """Weights per centroid ``d`` (1: scalar weight sharing)."""
        return int(self.centroids.shape[1])

    @property
    def weight(self) -> np.ndarray:
        """The decoded weight (out_features, in_features), a new array."""
        return self.centroids[self.indices].reshape(self.out_features, self.in_features)

    @weight.setter
    def weight(self, value):
        raise AttributeError("a SharedWeightLinear's weight is centroids[indices]; set centroids instead")

    def _input(self, x):
        x = np.asarray(x, dtype=self.centroids.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {x.shape}")
        return x

    def _effective_weight(self, train):
        return self.weight

    def _weight_grad_target(self, w):
        return self._buffer("gw", w.shape, w.dtype)

    def _finish_weight_grad(self, gw):
        flat = self.indices.ravel()
        g = gw.reshape(-1, self.dim)
        out = self._grad("centroids")
        for j in range(self.dim):
            out[:, j] = np.bincount(flat, weights=g[:, j], minlength=self.k)

    def codebook(self) -> tuple[np.ndarray, np.ndarray]:
        """The codebook.

        Returns
        -------
        centroids : numpy.ndarray
            A copy of the centroids, ``(k, d)``.
        indices : numpy.ndarray
            A copy of the indices.
        """
        return self.centroids.copy(), self.indices.copy()

    def to_linear(self) -> Linear:
        """A plain Linear with the decoded weight.

        Returns
        -------
        lowbit.nn.Linear
            The layer, holding copies of the decoded weight and the bias.
        """
        return Linear.from_arrays(self.weight, self.bias)

    def to_codebook_linear(self, activations="int16"):
        """The equivalent :class:`lowbit.CodebookLinear`.

        Needs lowbit's codebook module. The decoded weight holds exactly ``k`` distinct values
        (vectors), which the layer's k-means recovers.

        Parameters
        ----------
        activations : {"int16", "int8"}, default "int16"
            "int16" (the default here: within about 1e-4 of this float layer) or "int8"
            (faster, activations quantized like QuantizedLinear's).

        Returns
        -------
        lowbit.CodebookLinear
            The layer, float32.
        """
        from ..codebook import CodebookLinear

        b = None if self.bias is None else self.bias.astype(np.float32)
        return CodebookLinear(self.weight.astype(np.float32), b, k=self.k, dim=self.dim, activations=activations)

    def __repr__(self) -> str:
        return (f"SharedWeightLinear(in_features={self.in_features}, out_features={self.out_features}, "
                f"k={self.k}, dim={self.dim})")


def _codebook_arrays(cb, shape, name):
    """(centroids (k, d), indices) from a (centroids, indices) pair or a Codebook-like object
    with .centroids and .decode() (indices recovered as the nearest centroid of each decoded
    value, exact since decoded values are centroids)."""
    if isinstance(cb, (tuple, list)) and len(cb) == 2:
        c, idx = cb
        c = np.asarray(c)
        c = c.reshape(-1, 1) if c.ndim == 1 else c
        idx = np.asarray(idx)
        if c.ndim == 2 and idx.ndim == 1 and idx.size * c.shape[1] == shape[0] * shape[1]:
            idx = idx.reshape(shape[0], -1)
        return c, idx
    if hasattr(cb, "centroids") and hasattr(cb, "decode"):
        c = np.asarray(cb.centroids, np.float32)
        c = c.reshape(-1, 1) if c.ndim == 1 else c
        d = c.shape[1]
        if tuple(getattr(cb, "shape", shape)) != tuple(shape):
            raise ValueError(f"{name} has shape {tuple(cb.shape)}, but the layer's weight is {tuple(shape)}")
        if callable(getattr(cb, "codes", None)):  # lowbit.Codebook: the unpacked codes
            return c, np.asarray(cb.codes()).reshape(shape[0], shape[1] // d)
        w = np.asarray(cb.decode(), np.float32)
        return c, _nearest(w.reshape(-1, d), c).reshape(shape[0], shape[1] // d)
    raise TypeError(f"{name} must be a (centroids, indices) pair or a lowbit Codebook, got {type(cb).__name__}")


def prepare_codebook(model, codebooks=None, *, k: int = 16, dim: int = 1, seed: int = 0, iters: int = 25,
                     layers=None) -> Sequential:
    """Prepare a model for Deep Compression fine-tuning of codebook weights.

    Train the result with :func:`lowbit.nn.fit` or a :class:`lowbit.distill.Distiller`; only
    centroids and biases learn.

    Parameters
    ----------
    model : lowbit.nn.Sequential
        The model (a Sequential or MLP); not modified.
    codebooks : dict, optional
        ``{layer index: (centroids, indices) or lowbit.Codebook}``: the codebooks of those
        layers. The other layers to convert are clustered here with :func:`lowbit.kmeans`,
        ``k`` centroids of ``dim`` values.
    k : int, default 16
        Centroids per clustered layer, 2..65536.
    dim : int, default 1
        Values per centroid, >= 1; must divide the clustered layers' ``in_features``.
    seed : int, default 0
        Seed of the clustering, >= 0.
    iters : int, default 25
        Lloyd iterations of the clustering.
    layers : sequence of int, optional
        Indices of the Linear layers to cluster (None: all). Layers in ``codebooks`` are
        converted too.

    Returns
    -------
    lowbit.nn.Sequential
        A copy of ``model`` whose Linear layers (those in ``layers`` and ``codebooks``) are
        :class:`lowbit.nn.SharedWeightLinear`.

    Raises
    ------
    TypeError
        If ``model`` is not a lowbit.nn Sequential/MLP, ``codebooks`` not a dict (or holds
        something other than a pair or a Codebook), or a setting has the wrong type.
    ValueError
        If an index is not a Linear layer's, ``dim`` does not divide a layer's
        ``in_features``, a codebook does not fit its layer, or a setting is out of range.
    """
    from lowbit._checks import as_int

    k = as_int(k, "k", 2, 65536)
    dim = as_int(dim, "dim", 1)
    seed = as_seed(seed)
    idx = _linear_indices(model, layers)
    if codebooks is not None and not isinstance(codebooks, dict):
        raise TypeError(f"codebooks must be a dict {{layer index: codebook}}, got {type(codebooks).__name__}")
    given = {int(i) % len(model): cb for i, cb in (codebooks or {}).items()}
    for i in given:
        if not isinstance(model.layers[i], Linear):
            raise ValueError(f"codebooks has key {i}, which is not a Linear layer of the model")
    new = model.copy()
    from ..codebook import kmeans

    for i in sorted(set(idx) | set(given)):
        layer = model.layers[i]
        w = np.asarray(layer.weight, np.float32)
        if i in given:
            c, ind = _codebook_arrays(given[i], w.shape, f"codebooks[{i}]")
        else:
            if w.shape[1] % dim:
                raise ValueError(f"dim={dim} must divide in_features={w.shape[1]} of layer {i}")
            c, ind = _codebook_arrays(kmeans(w, k, dim=dim, seed=seed, iters=iters), w.shape,
                                      f"lowbit.kmeans(layers[{i}])")
        new.layers[i] = SharedWeightLinear(np.asarray(c, layer.weight.dtype), ind, layer.bias)
    return new


# --- file format: the training state, not just the weight the layer computes ---------------------
# (Files written before these types existed hold such layers as "nn.Linear"/"models.Linear" with
# the effective weight; they still load, as plain Linear layers.)
from .. import io as _io  # noqa: E402


def _exact_keys(s: dict, keys: tuple, what: str) -> None:
    """The state holds exactly `keys`: an unknown entry may change what the layer computes."""
    for k in keys:
        if k not in s:
            raise ValueError(f"{what} is missing {k!r}")
    extra = sorted(set(s) - set(keys))
    if extra:
        raise ValueError(f"{what}: unexpected entries {extra} (a file of a newer lowbit?)")


def _param(s: dict, key: str, what: str, ndim: int, dtype=None) -> np.ndarray:
    a = _io.need_array(s, key, what, kind="f", dtype=dtype)
    if a.dtype not in (np.float32, np.float64) or a.ndim != ndim or a.size == 0:
        raise ValueError(f"{what}: {key!r} must be a non-empty {ndim}-D float32/float64 array, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a)


def _bias_of(s: dict, what: str, out: int, dtype) -> np.ndarray | None:
    if s["bias"] is None:
        return None
    return _io.need_array(s, "bias", what, dtype=dtype, shape=(out,))


_F32_MAX = float(np.finfo(np.float32).max)
_FQ_KEYS = ("weight", "bias", "bits", "act", "momentum", "act_min", "act_max")


def _fq_to(layer: FakeQuantLinear) -> dict:
    return {"weight": layer.weight, "bias": layer.bias, "bits": layer.bits, "act": layer.act,
            "momentum": layer.momentum, "act_min": layer.act_min, "act_max": layer.act_max}


def _fq_from(s: dict) -> FakeQuantLinear:
    what = "FakeQuantLinear"
    _exact_keys(s, _FQ_KEYS, what)
    w = _param(s, "weight", what, 2)
    b = _bias_of(s, what, w.shape[0], w.dtype)
    bits = _io.need(s, "bits", int, what)
    if not 2 <= bits <= 8:
        raise ValueError(f"{what}: bits must be in 2..8, got {bits}")
    act = s["act"]
    if act not in _ACT_MODES:
        raise ValueError(f"{what}: act must be 'dynamic', 'static' or None, got {act!r}")
    m = _io.need(s, "momentum", (int, float), what)
    if not 0.0 < m <= 1.0:
        raise ValueError(f"{what}: momentum must be in (0, 1], got {m}")
    lo, hi = s["act_min"], s["act_max"]
    if lo is not None or hi is not None:  # the observed range: static activations only, finite, ordered
        lo, hi = _io.need(s, "act_min", (int, float), what), _io.need(s, "act_max", (int, float), what)
        if act != "static" or not -_F32_MAX <= lo <= hi <= _F32_MAX:
            raise ValueError(f"{what}: act_min/act_max must be a finite range (min <= max) of act='static', "
                             f"got [{lo}, {hi}] with act={act!r}")
        lo, hi = float(lo), float(hi)
    layer = FakeQuantLinear(w.shape[1], w.shape[0], bias=b is not None, bits=bits, act=act, momentum=m,
                            dtype=w.dtype)
    layer.weight = w
    if b is not None:
        layer.bias = np.ascontiguousarray(b)
    layer.act_min, layer.act_max = lo, hi
    return layer


def _sw_to(layer: SharedWeightLinear) -> dict:
    return {"centroids": layer.centroids, "indices": layer.indices.astype(np.min_scalar_type(layer.k - 1)),
            "bias": layer.bias, "k": layer.k, "dim": layer.dim}


def _sw_from(s: dict) -> SharedWeightLinear:
    what = "SharedWeightLinear"
    _exact_keys(s, ("centroids", "indices", "bias", "k", "dim"), what)
    c = _param(s, "centroids", what, 2)
    k, dim = _io.need(s, "k", int, what), _io.need(s, "dim", int, what)
    if (k, dim) != c.shape:
        raise ValueError(f"{what}: k={k}, dim={dim} do not match centroids of shape {c.shape}")
    idx = _io.need_array(s, "indices", what, kind="iu")
    if idx.ndim != 2 or idx.size == 0:
        raise ValueError(f"{what}: 'indices' must be a non-empty 2-D array, got shape {idx.shape}")
    if idx.min() < 0 or idx.max() >= k:
        raise ValueError(f"{what}: indices must be in 0..{k - 1}")
    return SharedWeightLinear(c, idx, _bias_of(s, what, idx.shape[0], c.dtype))


_io.register("nn.FakeQuantLinear", FakeQuantLinear, _fq_to, _fq_from)
_io.register("nn.SharedWeightLinear", SharedWeightLinear, _sw_to, _sw_from)
