"""Integer GEMM and the drop-in int8 linear layer."""
from __future__ import annotations

import numpy as np

from . import _core
from ._checks import as_bias, as_bool, as_float32, as_int, as_weight, check_finite
from .quant import QTensor, quantize
from . import io as _io

_INT32_MAX = 2**31 - 1


class PackedInt8:
    """int8 weights ``(K, N)`` packed once for lowbit's GEMM kernels.

    Pass it to :func:`lowbit.matmul_int8` as ``b`` to skip packing on every call;
    :func:`lowbit.pack_int8` makes one.

    Parameters
    ----------
    b : array_like of int8, shape (K, N)
        The weights (any strides; they are read once, while packing).
    nibbles : bool, default False
        Hold the weights two a byte, as 4-bit nibbles: half the memory, for weights of 4 bits or
        fewer (every value in ``[-8, 7]``). The kernels unpack a block of them at a time into a
        per-thread buffer; results are the same as with one byte per weight.

    Attributes
    ----------
    shape : tuple of int
        ``(K, N)``.
    nibbles : bool
        Whether the weights are held two a byte.

    Raises
    ------
    TypeError
        If ``b`` is not an int8 array or ``nibbles`` not a bool.
    ValueError
        If ``b`` is not 2-D, or ``nibbles`` is True and a value of ``b`` is outside ``[-8, 7]``.
    """

    __slots__ = ("_packed", "shape")

    def __init__(self, b, *, nibbles=False):
        b = np.asarray(b)
        if b.dtype != np.int8:
            raise TypeError(f"b must be an int8 array, got dtype {b.dtype}")
        if b.ndim != 2:
            raise ValueError(f"b must be 2-D (K, N), got shape {b.shape}")
        self._packed = _core.PackedB(b, as_bool(nibbles, "nibbles"))
        self.shape = (int(b.shape[0]), int(b.shape[1]))

    @property
    def nibbles(self) -> bool:
        """Whether the weights are held two a byte."""
        return bool(self._packed.s4)

    @property
    def nbytes(self) -> int:
        """Bytes held by the packed copy: the packed weights and the kernels' per-column data."""
        return int(self._packed.nbytes)

    def unpack(self) -> np.ndarray:
        """The weights, unpacked.

        Returns
        -------
        numpy.ndarray
            A new int8 array of shape ``(K, N)``, equal to the ``b`` packed.
        """
        return self._packed.unpack()


def pack_int8(b, *, nibbles=False) -> PackedInt8:
    """Pack int8 weights ``(K, N)`` once for repeated :func:`lowbit.matmul_int8` calls.

    Parameters
    ----------
    b : array_like of int8, shape (K, N)
        The weights.
    nibbles : bool, default False
        Hold them two a byte (every value must be in ``[-8, 7]``); see :class:`PackedInt8`.

    Returns
    -------
    PackedInt8
        The packed weights.

    Raises
    ------
    TypeError
        If ``b`` is not an int8 array or ``nibbles`` not a bool.
    ValueError
        If ``b`` is not 2-D, or ``nibbles`` is True and a value is outside ``[-8, 7]``.
    """
    return PackedInt8(b, nibbles=nibbles)


def _check_no_overflow(k: int, a_span: int, b_span: int) -> None:
    bound = k * a_span * b_span
    if bound > _INT32_MAX:
        raise ValueError(
            f"the result could overflow int32: K={k} x max|a - a_zero_point|={a_span} x "
            f"max|b - b_zero_point|={b_span} = {bound} > {_INT32_MAX}; split K"
        )


def matmul_int8(a, b, *, a_zero_point=0, b_zero_point=0) -> np.ndarray:
    """Exact ``(a - a_zero_point) @ (b - b_zero_point)`` as int32.

    Parameters
    ----------
    a : array_like of uint8 or int8, shape (M, K)
        The left operand.
    b : array_like of int8, shape (K, N), or PackedInt8
        The right operand, or a :class:`lowbit.PackedInt8` from :func:`lowbit.pack_int8`.
    a_zero_point : int, default 0
        Subtracted from every element of ``a``.
    b_zero_point : int, default 0
        Subtracted from every element of ``b``.

    Returns
    -------
    numpy.ndarray
        int32 of shape ``(M, N)``.

    Raises
    ------
    TypeError
        If ``a`` is not uint8/int8, ``b`` not int8, or a zero point not an integer.
    ValueError
        If ``a`` or ``b`` is not 2-D, the inner dimensions differ, a zero point is outside
        int32, or the shapes could overflow int32: the bound comes from K and the zero points,
        whatever the data.
    """
    if type(b) is PackedInt8 and type(a_zero_point) is int and type(b_zero_point) is int \
            and not (a_zero_point or b_zero_point):
        c = _core.gemm_int32_fast(a, b._packed)  # the common case, checked in C++
        if c is not None:
            return c
    packed = b if isinstance(b, PackedInt8) else None
    a = np.asarray(a)
    if a.dtype not in (np.uint8, np.int8):
        raise TypeError(f"a must be a uint8 or int8 array, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"a must be 2-D (M, K), got shape {a.shape}")
    packed = packed or PackedInt8(b)
    k, n = packed.shape
    if a.shape[1] != k:
        raise ValueError(f"a has {a.shape[1]} columns but b has {k} rows")
    za = as_int(a_zero_point, "a_zero_point", -(2**31), 2**31 - 1)
    zb = as_int(b_zero_point, "b_zero_point", -(2**31), 2**31 - 1)
    if a.dtype == np.int8:  # a + 128 is uint8; the zero point moves with it, exactly
        lo, hi = -128, 127
        a = np.ascontiguousarray(a).view(np.uint8) ^ np.uint8(0x80)
        za_u = za + 128
    else:
        lo, hi = 0, 255
        za_u = za
    _check_no_overflow(k, max(abs(lo - za), abs(hi - za)), max(abs(-128 - zb), abs(127 - zb)))
    if a.shape[0] == 0 or n == 0:
        return np.zeros((a.shape[0], n), np.int32)
    # Zero points enter the epilogue in wrapping int32 arithmetic: exact whenever the true result
    # fits int32, which the bound above guarantees.
    wrap = lambda v: int(np.int64(v).astype(np.int32))  # noqa: E731
    return _core.gemm_int32(a, packed._packed, wrap(za_u), wrap(zb))



class QuantizedLinear:
    """A drop-in int8 replacement for a float linear layer ``y = x W^T + b``.

    The weight is quantized symmetric (per output channel when ``per_channel``) to ``bits``
    and packed once. ``layer(x)`` quantizes activations on the fly, per row, to
    ``act_bits``-bit unsigned codes (dynamic), or with the given ``act_scale`` /
    ``act_zero_point`` (static), runs the int8 GEMM, and dequantizes with the bias added in the
    same pass. :meth:`from_quantized` makes a layer of already-quantized weights.

    Weights of 4 bits or fewer (``bits <= 4``) are held two a byte (half of ``nbytes`` of the
    8-bit layer's packed weight); up to 4 rows at a time the kernels read them as they are held,
    which streams half the bytes of the int8 GEMV, and larger batches unpack a block of them at a
    time into a per-thread buffer. Results are the same as with one byte per weight.

    ``bits=7`` or ``act_bits=7`` (7-bit weights in [-63, 63], or activation codes in [0, 127])
    give operands whose products AVX2 CPUs without VNNI can sum exactly with vpmaddubsw, and
    both together let them sum twice as many in 16 bits: about 1.3x faster there, for ~6 dB less
    SQNR per 7-bit operand. Results are the same on every ISA for a given setting.

    Parameters
    ----------
    weight : array_like of float, shape (out_features, in_features)
        The float weight, like ``torch.nn.Linear.weight``; non-empty and finite.
    bias : array_like of float, shape (out_features,), optional
        The bias (None: no bias).
    bits : int, default 8
        Weight bits, 2..8.
    per_channel : bool, default True
        One weight scale per output channel (False: one for the whole weight).
    act_scale : float, optional
        Static activation quantization with this scale (finite, > 0); None: dynamic, per row.
    act_zero_point : int, optional
        With ``act_scale``: the activations' zero point, in ``[0, 2^act_bits - 1]``
        (default 0).
    act_bits : int, default 8
        Activation bits, 7 or 8.

    Attributes
    ----------
    bits : int
        Weight bits.
    act_bits : int
        Activation bits.
    per_channel : bool
        Whether the weight has one scale per output channel.
    act_scale : float or None
        The static activation scale, or None (dynamic).
    act_zero_point : int or None
        The static activation zero point, or None (dynamic).

    Raises
    ------
    TypeError
        If ``weight`` or ``bias`` is not a floating-point array, or another argument has the
        wrong type.
    ValueError
        If ``weight`` is not a non-empty finite 2-D array, ``bias`` has the wrong shape or
        holds NaN/Inf, ``bits``/``act_bits`` is out of range, the activation parameters are
        invalid, or ``act_zero_point`` is given without ``act_scale``.
    """

    def __init__(self, weight, bias=None, *, bits=8, per_channel=True, act_scale=None,
                 act_zero_point=None, act_bits=8):
        w = as_weight(weight)
        self.bits = as_int(bits, "bits", 2, 8)
        self.act_bits = as_int(act_bits, "act_bits", 7, 8)
        self.per_channel = as_bool(per_channel, "per_channel")
        #: The layer's sizes, from the weight's shape ``(out_features, in_features)``: inputs
        #: have ``in_features`` values in their last axis, outputs ``out_features``.
        self.out_features, self.in_features = (int(s) for s in w.shape)
        #: The float32 bias ``(out_features,)`` (a private copy), or None.
        self.bias = as_bias(bias, self.out_features)
        self._pack_weight(quantize(w, bits=self.bits, axis=0 if self.per_channel else None,
                                   symmetric=True))
        self._set_activation(act_scale, act_zero_point)

    def _pack_weight(self, weight_q: QTensor) -> None:
        """Packs weight_q's codes (with the scales and bias) for the kernels. The packed copy is
        the only copy the layer keeps (weight_q is rebuilt from it on request), so its resident
        weight bytes are those of `nbytes`."""
        codes = weight_q.int_repr()  # (out, in) int8
        # B = W^T, (in, out); packing reads through the strides. 4 bits or fewer: two a byte.
        self._packed = PackedInt8(codes.T, nibbles=self.bits <= 4)
        self._w_scale_q = np.array(weight_q.scale, np.float32)  # () or (out,), as weight_q has it
        self._w_scale = np.ascontiguousarray(np.broadcast_to(weight_q.scale, (self.out_features,)),
                                             dtype=np.float32)
        self._dynamic = _core.DynamicLinear(self._packed._packed, self._w_scale, self.bias,
                                            self.act_bits)

    @property
    def weight_q(self) -> QTensor:
        """The quantized weight, a QTensor ``(out_features, in_features)`` with zero points 0.

        Rebuilt from the packed weight on each access."""
        codes = np.ascontiguousarray(self._packed.unpack().T)
        return QTensor.from_codes(codes, self._w_scale_q, 0, axis=0 if self.per_channel else None,
                                  bits=self.bits)

    def _set_activation(self, act_scale, act_zero_point) -> None:
        """Static activation parameters (validated like lowbit.quantize's), or None: dynamic."""
        self.act_scale = self.act_zero_point = None
        if act_scale is not None:
            q = quantize(np.zeros(1, np.float32), bits=self.act_bits, symmetric=False, scale=act_scale,
                         zero_point=0 if act_zero_point is None else act_zero_point)
            self.act_scale, self.act_zero_point = float(q.scale), int(q.zero_point)
        elif act_zero_point is not None:
            raise ValueError("act_zero_point was given without act_scale")

    @classmethod
    def from_quantized(cls, weight_q: QTensor, bias=None, *, act_scale=None,
                       act_zero_point=None, act_bits=8) -> "QuantizedLinear":
        """A layer of already-quantized weights, e.g. loaded from a file or made by
        :meth:`lowbit.QTensor.from_codes`.

        Parameters
        ----------
        weight_q : QTensor
            A 2-D signed QTensor ``(out_features, in_features)`` with zero points 0, per tensor
            or per output channel (``axis=0``). Its ``bits`` and axis give the layer's
            ``bits`` and ``per_channel``.
        bias : array_like of float, shape (out_features,), optional
            The bias (None: no bias).
        act_scale : float, optional
            Static activation quantization with this scale; None: dynamic.
        act_zero_point : int, optional
            With ``act_scale``: the activations' zero point (default 0).
        act_bits : int, default 8
            Activation bits, 7 or 8.

        Returns
        -------
        QuantizedLinear
            The layer.

        Raises
        ------
        TypeError
            If ``weight_q`` is not a :class:`lowbit.QTensor`, or another argument has the wrong
            type.
        ValueError
            If ``weight_q`` is not 2-D, signed, per tensor or along axis 0 with zero points 0,
            or another argument is invalid (as in the constructor).
        """
        if not isinstance(weight_q, QTensor):
            raise TypeError(f"weight_q must be a lowbit.QTensor, got {type(weight_q).__name__}")
        if len(weight_q.shape) != 2 or not weight_q.symmetric or weight_q.axis not in (None, 0):
            raise ValueError("weight_q must be a 2-D signed QTensor, per tensor or along axis 0")
        if np.any(weight_q.zero_point != 0):
            raise ValueError("weight_q must have zero points 0 (symmetric weights)")
        layer = cls.__new__(cls)
        layer.bits, layer.per_channel = weight_q.bits, weight_q.axis == 0
        layer.act_bits = as_int(act_bits, "act_bits", 7, 8)
        layer.out_features, layer.in_features = (int(v) for v in weight_q.shape)
        layer.bias = as_bias(bias, layer.out_features)
        layer._pack_weight(weight_q)
        layer._set_activation(act_scale, act_zero_point)
        return layer

    @property
    def nbytes(self) -> int:
        """Packed weight + its column sums + scales + bias, in bytes."""
        return int(self._packed.nbytes + self._w_scale.nbytes +
                   (0 if self.bias is None else self.bias.nbytes))

    def _flat_input(self, x) -> tuple[np.ndarray, tuple]:
        a = as_float32(x, "x")
        if a.ndim == 0 or a.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {a.shape}")
        return a.reshape(-1, self.in_features), a.shape[:-1]

    def __call__(self, x, *, relu=False) -> np.ndarray:
        """The layer's output for float inputs.

        Parameters
        ----------
        x : array_like of float, shape (..., in_features)
            The input.
        relu : bool, default False
            Apply ReLU to the output (fused into the GEMM's epilogue).

        Returns
        -------
        numpy.ndarray
            float32 of shape ``(..., out_features)``.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point array or ``relu`` not a bool.
        ValueError
            If the last axis of ``x`` is not ``in_features`` or ``x`` holds NaN/Inf.
        """
        if (self.act_scale is None and type(x) is np.ndarray and x.dtype == np.float32
                and x.ndim == 2 and x.shape[1] == self.in_features and x.shape[0]
                and x.flags.c_contiguous and relu is False):
            y = self._dynamic(x)  # the common case, with no conversion at all
            if y is not None:
                return y
        x2, lead = self._flat_input(x)
        relu = as_bool(relu, "relu")
        if x2.shape[0] == 0:
            return np.zeros(lead + (self.out_features,), np.float32)
        if self.act_scale is None:
            y = self._dynamic(x2, relu)
            if y is None:
                check_finite(x2.reshape(lead + (self.in_features,)), "x")
        else:
            q = quantize(x2, bits=self.act_bits, symmetric=False, scale=self.act_scale,
                         zero_point=self.act_zero_point)
            y = _core.gemm_f32(q.int_repr(), self._packed._packed,
                               np.array([self.act_scale], np.float32),
                               np.array([self.act_zero_point], np.int32), self._w_scale, self.bias,
                               relu)
        return y.reshape(lead + (self.out_features,))

    def forward_quantized(self, x_codes, out_scale, out_zero_point=0, *, relu=False) -> np.ndarray:
        """Chaining int8 layers: uint8 input codes to uint8 output codes.

        The int32 accumulators are requantized in the GEMM epilogue:
        ``q = clamp(round_half_even(float32(acc + bias_q) * m) + out_zero_point, 0, 255)`` with
        the float32 multiplier ``m = act_scale * w_scale / out_scale`` per output channel (as
        ONNX Runtime requantizes) and ``bias_q = round(bias / (act_scale * w_scale))``, the same
        on every ISA. Needs static activation quantization (``act_scale``).

        Parameters
        ----------
        x_codes : array_like of uint8, shape (..., in_features)
            The input codes, quantized with this layer's ``act_scale`` and ``act_zero_point``.
        out_scale : float
            The scale of the output codes (finite, > 0).
        out_zero_point : int, default 0
            The zero point of the output codes, in [0, 255].
        relu : bool, default False
            Apply ReLU (fused into the requantization).

        Returns
        -------
        numpy.ndarray
            uint8 codes of shape ``(..., out_features)`` for ``(out_scale, out_zero_point)``.

        Raises
        ------
        TypeError
            If ``x_codes`` is not uint8, or another argument has the wrong type.
        ValueError
            If the layer has no ``act_scale``, the last axis of ``x_codes`` is not
            ``in_features``, or ``out_scale``/``out_zero_point`` is invalid.
        """
        if self.act_scale is None:
            raise ValueError("forward_quantized needs act_scale (static activation quantization)")
        xc = np.asarray(x_codes)
        if xc.dtype != np.uint8:
            raise TypeError(f"x_codes must be uint8, got dtype {xc.dtype}")
        if xc.ndim == 0 or xc.shape[-1] != self.in_features:
            raise ValueError(f"x_codes must have shape (..., {self.in_features}), got {xc.shape}")
        lead = xc.shape[:-1]
        oq = quantize(np.zeros(1, np.float32), bits=8, symmetric=False, scale=out_scale,
                      zero_point=out_zero_point)
        osc, ozp = float(oq.scale), int(oq.zero_point)
        scale = (self.act_scale * self._w_scale.astype(np.float64) / osc).astype(np.float32)
        bias_i32 = None
        if self.bias is not None:
            bias_i32 = np.round(self.bias / (self.act_scale * self._w_scale.astype(np.float64)))
            bias_i32 = np.clip(bias_i32, -(2**31), 2**31 - 1).astype(np.int32)
        out = _core.gemm_requant(np.ascontiguousarray(xc.reshape(-1, self.in_features)),
                                 self._packed._packed, self.act_zero_point, scale, bias_i32,
                                 ozp, 0, 255, as_bool(relu, "relu"))
        return out.reshape(lead + (self.out_features,))

    def __repr__(self) -> str:
        mode = "dynamic" if self.act_scale is None else "static"
        return (f"QuantizedLinear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bits={self.bits}, act_bits={self.act_bits}, per_channel={self.per_channel}, {mode}, "
                f"nbytes={self.nbytes})")


# --------------------------------------------------------------------------- file format

def _register() -> None:
    """PackedInt8 and QuantizedLinear in lowbit.save / lowbit.load."""
    def pk_from(s):
        b = _io.need_array(s, "b", "PackedInt8", dtype=np.int8)
        if b.ndim != 2:
            raise ValueError("PackedInt8: b must be 2-D")
        # files written before nibbles existed hold one byte a weight
        nibbles = _io.need(s, "nibbles", bool, "PackedInt8") if "nibbles" in s else False
        return PackedInt8(b, nibbles=nibbles)

    _io.register("PackedInt8", PackedInt8, lambda p: {"b": p.unpack(), "nibbles": p.nibbles}, pk_from)

    def ql_to(layer):
        return {"weight_q": layer.weight_q, "bias": layer.bias, "bits": layer.bits,
                "per_channel": layer.per_channel, "act_scale": layer.act_scale,
                "act_zero_point": layer.act_zero_point, "act_bits": layer.act_bits}

    def ql_from(s):
        what = "QuantizedLinear"
        wq = _io.need(s, "weight_q", QTensor, what)
        if len(wq.shape) != 2 or not wq.symmetric:
            raise ValueError(f"{what}: weight_q must be a 2-D symmetric QTensor")
        bits = _io.need(s, "bits", int, what)
        per_channel = _io.need(s, "per_channel", bool, what)
        if wq.bits != bits or (wq.axis == 0) != per_channel:
            raise ValueError(f"{what}: weight_q does not match bits/per_channel")
        bias = s.get("bias")
        if bias is not None:
            bias = _io.need_array(s, "bias", what, dtype=np.float32, shape=(wq.shape[0],))
        act_scale, act_zp = s.get("act_scale"), s.get("act_zero_point")
        # files written before act_bits existed quantized activations to 8 bits
        act_bits = _io.need(s, "act_bits", int, what) if "act_bits" in s else 8
        return QuantizedLinear.from_quantized(wq, bias, act_scale=act_scale, act_zero_point=act_zp,
                                              act_bits=act_bits)

    _io.register("QuantizedLinear", QuantizedLinear, ql_to, ql_from)


_register()
