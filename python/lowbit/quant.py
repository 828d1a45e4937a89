"""Linear quantization: lowbit.quantize / dequantize / sqnr and the QTensor container."""
from __future__ import annotations

import math

import numpy as np

from . import _core
from ._checks import as_axis, as_bool, as_float32, as_int, check_finite


def _split_shape(shape: tuple, axis: int | None) -> tuple[int, int, int]:
    """(outer, channels, inner) of a tensor quantized along `axis` (None: one channel)."""
    if axis is None:
        return 1, 1, int(math.prod(shape))
    return int(math.prod(shape[:axis])), int(shape[axis]), int(math.prod(shape[axis + 1:]))


def _code_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    if signed:
        hi = (1 << (bits - 1)) - 1
        return (-hi if narrow else -hi - 1), hi
    return 0, (1 << bits) - 1


def _codes_per_byte(bits: int) -> int:
    """How QTensor stores `bits`-bit codes: four per byte for 2 bits, two for 3-4, else one."""
    return 4 if bits == 2 else 2 if bits <= 4 else 1


def _pack_codes(codes: np.ndarray, per: int) -> np.ndarray:
    """`per` (2 or 4) codes per byte, code i in the (i % per)-th lowest 8/per bits of byte
    i // per; codes: bytes (uint8 view of int8/uint8 codes), any shape. per 1: a flat copy."""
    flat = codes.reshape(-1).view(np.uint8)
    if per == 1:
        return flat.copy()
    return _core.pack_codes(flat, per)


def _unpack_codes(packed: np.ndarray, n: int, per: int, signed: bool) -> np.ndarray:
    """The first n codes of `packed` as int8 (signed, sign-extended) or uint8, flat."""
    if per == 1:
        flat = packed.reshape(-1)[:n]
    else:
        flat = _core.unpack_codes(packed, n, per, signed)
    return flat.view(np.int8 if signed else np.uint8)


def qparams(mn, mx, *, bits=8, symmetric=True) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point of ``bits``-bit quantization of channels with the given min and max.

    THE rule every computed parameter in lowbit follows (:func:`lowbit.quantize`,
    :class:`lowbit.QuantizedLinear`'s dynamic activations, ``lowbit.observers.range_to_qparams``,
    lowbit.nn's fake quantization), implemented once in C++ (``choose_params``,
    ``csrc/include/lowbit/quant.h``, where it is specified):

    - symmetric: signed codes in ``[-qmax, qmax]``, ``qmax = 2^(b-1) - 1``,
      ``scale = max(abs(mn), abs(mx)) / qmax``, zero point 0;
    - asymmetric (ONNX DynamicQuantizeLinear): codes in ``[0, qmax]``, ``qmax = 2^b - 1``, the
      range widened to include 0, ``scale = (hi - lo) / qmax``,
      ``zero point = clamp(round_half_even(-lo / scale), 0, qmax)``;
    - a constant channel ``v`` gets scale ``abs(v)`` (1 for ``v == 0``) so it round-trips
      exactly; subnormal scales are raised (an ulp at a time) until they cover the range.

    All float32, IEEE rounding.

    Parameters
    ----------
    mn, mx : float or array_like of float
        The channels' min and max: scalars or arrays of one shape (broadcast together),
        converted to float32.
    bits : int, default 8
        Bits per code, 2..8.
    symmetric : bool, default True
        Signed codes with zero point 0 (True) or unsigned codes (False).

    Returns
    -------
    scale : numpy.ndarray
        float32, of the (broadcast) shape of ``mn`` and ``mx``.
    zero_point : numpy.ndarray
        int32, of the same shape.

    Raises
    ------
    TypeError
        If ``bits`` is not an integer or ``symmetric`` not a bool.
    ValueError
        If ``bits`` is not in 2..8, a range is non-finite (in float32) or ``mn > mx``.
    """
    bits = as_int(bits, "bits", 2, 8)
    symmetric = as_bool(symmetric, "symmetric")
    with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf: refused below
        lo, hi = np.broadcast_arrays(np.asarray(mn, np.float32), np.asarray(mx, np.float32))
    s, z = _core.qparams(lo.reshape(-1), hi.reshape(-1), bits, symmetric)
    return s.reshape(lo.shape), z.reshape(lo.shape)


class QTensor:
    """Integer codes plus the scale and zero point that map them back.

    ``real = scale * (q - zero_point)``, per tensor or per index along ``axis``. Codes are
    stored packed: four per byte for ``bits=2``, two per byte for bits 3-4 (first code in the
    lowest bits), one byte each above.

    A QTensor is normally built internally: use :func:`lowbit.quantize` or
    :meth:`QTensor.from_codes`. The constructor takes the stored form as is, unchecked.

    Parameters
    ----------
    codes : numpy.ndarray of uint8
        The codes as stored: bytes (a uint8 view of int8/uint8 codes), flat, already packed as
        :attr:`codes_per_byte` says for ``bits``.
    shape : tuple of int
        The logical shape of the tensor.
    bits : int
        Bits per code, 2..8.
    axis : int or None
        The axis with one scale and zero point per index, or None (per tensor).
    symmetric : bool
        Whether the codes are signed (int8) rather than unsigned (uint8).
    scale : numpy.ndarray of float32
        Shape ``()`` (per tensor) or ``(C,)`` for ``C = shape[axis]``.
    zero_point : numpy.ndarray of int32
        The same shape as ``scale``.
    """

    __slots__ = ("shape", "bits", "axis", "symmetric", "scale", "zero_point", "_codes")

    def __init__(self, codes: np.ndarray, shape: tuple, bits: int, axis: int | None,
                 symmetric: bool, scale: np.ndarray, zero_point: np.ndarray):
        # Internal: use lowbit.quantize or QTensor.from_codes. `codes` are bytes (uint8 view),
        # already packed as _codes_per_byte(bits) says.
        #: The logical shape (tuple of int).
        self.shape = tuple(int(s) for s in shape)
        #: Bits per code, 2..8.
        self.bits = int(bits)
        #: The quantized axis (one scale and zero point per index along it), or None: per tensor.
        self.axis = axis
        #: Whether the codes are signed (int8) rather than unsigned (uint8).
        self.symmetric = bool(symmetric)
        #: The scale(s): float32, shape ``()`` (per tensor) or ``(C,)`` (one per index along axis).
        self.scale = np.asarray(scale, np.float32)
        #: The zero point(s): int32, the shape of ``scale``.
        self.zero_point = np.asarray(zero_point, np.int32)
        self._codes = codes

    @property
    def packed(self) -> bool:
        """Whether several codes share a byte (``bits <= 4``)."""
        return self.bits <= 4

    @property
    def codes_per_byte(self) -> int:
        """Codes stored per byte: 4 for 2 bits, 2 for 3-4 bits, else 1."""
        return _codes_per_byte(self.bits)

    @property
    def size(self) -> int:
        """The number of values (the product of :attr:`shape`)."""
        return int(math.prod(self.shape))

    @property
    def nbytes(self) -> int:
        """The bytes held in memory: packed codes, scales and zero points."""
        return int(self._codes.nbytes + self.scale.nbytes + self.zero_point.nbytes)

    def int_repr(self) -> np.ndarray:
        """The codes, unpacked.

        Returns
        -------
        numpy.ndarray
            A new int8 (signed) or uint8 array of the logical :attr:`shape`.
        """
        flat = _unpack_codes(self._codes, self.size, self.codes_per_byte, self.symmetric)
        return flat.reshape(self.shape).copy()

    def _bytes3(self) -> np.ndarray:
        outer, c, inner = _split_shape(self.shape, self.axis)
        flat = _unpack_codes(self._codes, self.size, self.codes_per_byte, self.symmetric)
        return flat.view(np.uint8).reshape(outer, c, inner)

    def dequantize(self, out=None) -> np.ndarray:
        """The real values: ``(q - zero_point) * scale``.

        Parameters
        ----------
        out : numpy.ndarray, optional
            A writable float32 C-contiguous array of :attr:`shape` to write into (no
            allocation).

        Returns
        -------
        numpy.ndarray
            float32 of :attr:`shape`: ``out`` when given, else a new array.

        Raises
        ------
        ValueError
            If ``out`` is not a writable C-contiguous float32 array of :attr:`shape`.
        """
        if out is not None:
            if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != self.shape \
                    or not out.flags.c_contiguous or not out.flags.writeable:
                raise ValueError(f"out must be a writable C-contiguous float32 array of shape {self.shape}")
        res = _core.dequantize(self._bytes3(), self.symmetric, self.scale.reshape(-1),
                               self.zero_point.reshape(-1), out)
        return out if out is not None else res.reshape(self.shape)

    @classmethod
    def from_codes(cls, codes, scale, zero_point=0, *, axis=None, bits=8) -> "QTensor":
        """Wrap existing integer codes and their parameters, e.g. from ONNX or PyTorch.

        Parameters
        ----------
        codes : array_like of int8 or uint8
            The codes, unpacked, of the tensor's shape: int8 gives a signed QTensor, uint8 an
            unsigned one. Every code must lie in the ``bits``-bit range of its type
            (``[-2^(bits-1), 2^(bits-1) - 1]`` or ``[0, 2^bits - 1]``).
        scale : float or array_like of float
            Finite and > 0 (in float32): a scalar, or one per index along ``axis``.
        zero_point : int or array_like of int, default 0
            A scalar, or one per index along ``axis``, each in the code range.
        axis : int, optional
            The axis with one scale and zero point per index (None: per tensor).
        bits : int, default 8
            Bits per code, 2..8.

        Returns
        -------
        QTensor
            The codes, packed for ``bits``, with their parameters.

        Raises
        ------
        TypeError
            If ``codes`` is not int8 or uint8, ``scale`` is not numeric, ``zero_point`` is not
            integral, or ``bits``/``axis`` is not an integer.
        ValueError
            If ``bits`` is not in 2..8, ``axis`` is out of range, a code or zero point is
            outside the code range, ``scale`` is not finite and > 0 (or underflows float32),
            or ``scale``/``zero_point`` has the wrong shape.
        """
        bits = as_int(bits, "bits", 2, 8)
        c = np.asarray(codes)
        if c.dtype not in (np.int8, np.uint8):
            raise TypeError(f"codes must be an int8 or uint8 array, got dtype {c.dtype}")
        signed = c.dtype == np.int8
        axis = as_axis(axis, c.ndim)
        lo, hi = _code_range(bits, signed, narrow=False)
        if c.size and (int(c.min()) < lo or int(c.max()) > hi):
            raise ValueError(f"codes must lie in [{lo}, {hi}] for bits={bits}, "
                             f"got values in [{int(c.min())}, {int(c.max())}]")
        scale, zp = _check_params(scale, zero_point, c.shape, axis, bits, signed)
        data = _pack_codes(np.ascontiguousarray(c), _codes_per_byte(bits))
        return cls(data, c.shape, bits, axis, signed, scale, zp)

    def __repr__(self) -> str:
        kind = "per-tensor" if self.axis is None else f"per-channel axis={self.axis}"
        sign = "signed" if self.symmetric else "unsigned"
        return f"QTensor(shape={self.shape}, bits={self.bits}, {sign}, {kind}, nbytes={self.nbytes})"


def _check_params(scale, zero_point, shape, axis, bits, signed):
    """Validated (scale float32, zero_point int32), each () or (C,) for `axis`."""
    nchan = None if axis is None else int(shape[axis])
    want = () if axis is None else (nchan,)
    try:
        s = np.asarray(scale, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"scale must be a positive number or array of numbers, got {scale!r}") from None
    if s.dtype.kind not in "fiu":
        raise TypeError(f"scale must be numeric, got dtype {np.asarray(scale).dtype}")
    ok_shapes = ((), want) if axis is not None else ((), (1,))
    if s.shape not in ok_shapes:
        raise ValueError(f"scale must be a scalar or have shape {want} (one per index along axis "
                         f"{axis}), got shape {s.shape}")
    if not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise ValueError("scale must be finite and > 0")
    s32 = s.astype(np.float32)
    if not np.all(s32 > 0):
        raise ValueError("scale underflows float32 (must be >= 1.4e-45)")
    z = np.asarray(zero_point)
    if z.dtype.kind not in "iub":
        if z.dtype.kind == "f" and np.all(np.isfinite(z)) and np.all(z == np.round(z)):
            z = z.astype(np.int64)
        else:
            raise TypeError(f"zero_point must be an integer or array of integers, got dtype {z.dtype}")
    if z.shape not in ok_shapes:
        raise ValueError(f"zero_point must be a scalar or have shape {want}, got shape {z.shape}")
    lo, hi = _code_range(bits, signed, narrow=False)
    if z.size and (int(z.min()) < lo or int(z.max()) > hi):
        raise ValueError(f"zero_point must lie in the code range [{lo}, {hi}]")
    shp = want
    return (np.broadcast_to(s32.reshape(-1) if s32.ndim else s32, shp).astype(np.float32),
            np.broadcast_to(z.astype(np.int32).reshape(-1) if z.ndim else z.astype(np.int32), shp)
            .astype(np.int32))


def quantize(x, *, bits=8, axis=None, symmetric=True, scale=None, zero_point=None) -> QTensor:
    """Quantize a float tensor to ``bits``-bit integer codes.

    The rules are in the docs ("Linear quantization"). Without ``scale``, the parameters come
    from the data's range, per tensor (``axis=None``) or per index along ``axis``: symmetric
    gives signed codes in ``[-(2^(b-1)-1), 2^(b-1)-1]`` with zero point 0, asymmetric unsigned
    codes in ``[0, 2^b-1]`` as ONNX DynamicQuantizeLinear. With ``scale`` (and optionally
    ``zero_point``): static quantization over the full code range, as ONNX QuantizeLinear.
    Rounding is half to even, out-of-range values saturate. float16/float64 inputs are
    converted to float32.

    Parameters
    ----------
    x : array_like of float
        The tensor to quantize.
    bits : int, default 8
        Bits per code, 2..8.
    axis : int, optional
        Quantize per index along this axis (one scale and zero point each); None: per tensor.
    symmetric : bool, default True
        Signed codes (zero point 0 for computed parameters) or unsigned codes.
    scale : float or array_like of float, optional
        Static quantization with this scale: a scalar, or one per index along ``axis``;
        finite and > 0. None: computed from the data.
    zero_point : int or array_like of int, optional
        With ``scale``: the zero point(s), in the code range (default 0).

    Returns
    -------
    QTensor
        The codes with their scale and zero point.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point array (integer inputs included), or an argument has
        the wrong type.
    ValueError
        If ``x`` holds NaN/Inf, ``bits`` is not in 2..8, ``axis`` is out of range,
        ``zero_point`` is given without ``scale``, or ``scale``/``zero_point`` is invalid
        (see :meth:`QTensor.from_codes`).
    """
    bits = as_int(bits, "bits", 2, 8)
    symmetric = as_bool(symmetric, "symmetric")
    a = as_float32(x, "x")
    axis = as_axis(axis, a.ndim)
    outer, chans, inner = _split_shape(a.shape, axis)
    x3 = a.reshape(outer, chans, inner)
    if scale is None:
        if zero_point is not None:
            raise ValueError("zero_point was given without scale; pass both, or neither to compute them")
        codes, s, z, ok = _core.quantize_dynamic(x3, bits, symmetric)
    else:
        s, z = _check_params(scale, 0 if zero_point is None else zero_point, a.shape, axis, bits,
                             symmetric)
        qmin, qmax = _code_range(bits, symmetric, narrow=False)
        codes, ok = _core.quantize_static(x3, s.reshape(-1) if s.ndim else s.reshape(1),
                                          z.reshape(-1) if z.ndim else z.reshape(1), qmin, qmax)
    if not ok:
        check_finite(a, "x")
    if axis is None:
        s, z = np.float32(np.asarray(s).reshape(-1)[0]), np.int32(np.asarray(z).reshape(-1)[0])
    data = codes.reshape(-1)
    if bits <= 4:
        data = _pack_codes(data, _codes_per_byte(bits))
    return QTensor(data, a.shape, bits, axis, symmetric, np.asarray(s, np.float32),
                   np.asarray(z, np.int32))


def dequantize(q: QTensor) -> np.ndarray:
    """The real values of a QTensor: ``(q - zero_point) * scale``.

    Parameters
    ----------
    q : QTensor
        The quantized tensor.

    Returns
    -------
    numpy.ndarray
        float32, of ``q.shape``.

    Raises
    ------
    TypeError
        If ``q`` is not a :class:`lowbit.QTensor`.
    """
    if not isinstance(q, QTensor):
        raise TypeError(f"q must be a lowbit.QTensor, got {type(q).__name__}")
    return q.dequantize()


def sqnr(reference, approx) -> float:
    """Signal-to-quantization-noise ratio in dB.

    ``10 log10(sum(ref^2) / sum((ref - approx)^2))``, computed in float64.

    Parameters
    ----------
    reference : array_like of numbers
        The exact values.
    approx : array_like of numbers or QTensor
        The approximation (a QTensor is dequantized), of the shape of ``reference``.

    Returns
    -------
    float
        The ratio in dB; ``inf`` when ``approx`` equals ``reference``, ``-inf`` when
        ``reference`` is all zeros and ``approx`` is not.

    Raises
    ------
    TypeError
        If an input is not numeric.
    ValueError
        If the shapes differ or an input holds NaN/Inf.
    """
    r = np.asarray(reference)
    a = np.asarray(approx)
    if isinstance(approx, QTensor):
        a = approx.dequantize()
    for name, v in (("reference", r), ("approx", a)):
        if v.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a numeric array, got dtype {v.dtype}")
    if r.shape != a.shape:
        raise ValueError(f"reference and approx must have the same shape, got {r.shape} and {a.shape}")
    r = r.astype(np.float64)
    a = a.astype(np.float64)
    check_finite(r, "reference")
    check_finite(a, "approx")
    noise = float(np.sum((r - a) ** 2))
    signal = float(np.sum(r ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


# --------------------------------------------------------------------------- file format

from . import io as _io  # noqa: E402


def _to_state(q: QTensor) -> dict:
    return {"shape": q.shape, "bits": q.bits, "axis": q.axis, "symmetric": q.symmetric,
            "scale": np.asarray(q.scale, np.float32), "zero_point": np.asarray(q.zero_point, np.int32),
            "codes": np.asarray(q._codes, np.uint8).reshape(-1), "codes_per_byte": q.codes_per_byte}


def _from_state(s: dict) -> QTensor:
    what = "QTensor"
    shape = _io.need_shape(s, "shape", what)
    bits = _io.need(s, "bits", int, what)
    if not 2 <= bits <= 8:
        raise ValueError(f"QTensor: bits {bits} out of 2..8")
    axis = _io.need_axis(s, what, len(shape))
    symmetric = _io.need(s, "symmetric", bool, what)
    # Files written before "codes_per_byte" existed packed every bits <= 4 two per byte.
    per = _io.need(s, "codes_per_byte", int, what) if "codes_per_byte" in s else (2 if bits <= 4 else 1)
    if per != _codes_per_byte(bits) and not (bits == 2 and per == 2):
        raise ValueError(f"QTensor: {bits}-bit codes cannot be stored {per} per byte")
    n = math.prod(shape)
    codes = _io.need_array(s, "codes", what, dtype=np.uint8, shape=(-(-n // per),))
    want = () if axis is None else (shape[axis],)
    scale = _io.need_array(s, "scale", what, dtype=np.float32, shape=want)
    zp = _io.need_array(s, "zero_point", what, dtype=np.int32, shape=want)
    if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        raise ValueError("QTensor: scale must be finite and > 0")
    if per != _codes_per_byte(bits):  # an old 2-bit file: repacked four per byte
        codes = _pack_codes(_unpack_codes(codes, n, per, symmetric), _codes_per_byte(bits))
    if axis is None:
        scale, zp = np.float32(scale), np.int32(zp)
    return QTensor(codes, shape, bits, axis, symmetric, scale, zp)


_io.register("QTensor", QTensor, _to_state, _from_state)
