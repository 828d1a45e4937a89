"""Nonlinear quantization: power-of-two (log2) codes and companding (mu-law, tanh, sigmoid).

Linear quantization spends its levels evenly over the range; weights are mostly small with a few
large ones (Gaussian, or heavier-tailed like Student's t), so levels packed near zero can lower
the error at the same bit count. Each quantizer here has a quantize function returning a tensor
object with `dequantize()`, `int_repr()`, `nbytes`:

- `quantize_pow2(x, bits=4)` -> `Pow2Tensor`: every value becomes 0 or sign * 2^e, the code a
  sign and an exponent index, so multiplying an integer by a weight is a bit shift
  (`shift_matmul`).
- `compand(x, method="mu-law"|"tanh"|"sigmoid", bits=8)` -> `CompandedTensor`: a compressor c(x)
  maps the range onto [-1, 1] (or [0, 1] for "sigmoid"), the result is quantized uniformly and
  dequantized through the inverse c^-1 (the expander).
- `compare_sqnr(x, bits)`: SQNR in dB of linear, power-of-two and companded quantization of the
  same tensor, for the bench.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import as_axis, as_float32, as_int, check_finite
from .quant import _codes_per_byte, _pack_codes, _unpack_codes, quantize, sqnr
from . import io as _io


def _channel_max(a: np.ndarray, axis: int | None) -> np.ndarray:
    """max|x| over everything (axis None, shape ()) or per index along `axis` (shape (C,))."""
    if axis is None:
        return np.asarray(np.max(np.abs(a)) if a.size else 0.0, np.float64)
    other = tuple(i for i in range(a.ndim) if i != axis)
    if a.size == 0:
        return np.zeros(a.shape[axis], np.float64)
    return np.max(np.abs(a), axis=other).astype(np.float64)


def _bcast(v: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    """A per-channel vector reshaped to broadcast along `axis` of an ndim-array."""
    if axis is None or v.ndim == 0:
        return v
    shape = [1] * ndim
    shape[axis] = v.shape[0]
    return v.reshape(shape)


def _store(codes: np.ndarray, bits: int) -> np.ndarray:
    """Codes as bytes, packed as QTensor packs them: four per byte for 2 bits, two for 3-4."""
    return _pack_codes(np.ascontiguousarray(codes), _codes_per_byte(bits))


def _load(data: np.ndarray, n: int, bits: int, signed: bool) -> np.ndarray:
    return _unpack_codes(data, n, _codes_per_byte(bits), signed)


def _check_x(x, name="x") -> np.ndarray:
    a = as_float32(x, name)
    check_finite(a, name)
    return a


# --------------------------------------------------------------------------- power of two

class Pow2Tensor:
    """Power-of-two codes: value = sign * 2^(e_max - kmax + ``|code|``), 0 for code 0.

    kmax = 2^(bits-1) - 1. Codes are int8 in [-kmax, kmax] (packed four per byte for 2 bits,
    two for 3-4); e_max is int32, shape ``()`` or ``(C,)`` per index along ``axis``.
    :func:`quantize_pow2` and :meth:`from_codes` make one; the constructor wraps its arguments
    unchecked.

    Parameters
    ----------
    codes_bytes : numpy.ndarray of uint8
        The codes as stored (packed as described above).
    shape : tuple of int
        The logical shape.
    bits : int
        Bits per code, 2..8.
    axis : int or None
        The axis with one e_max per index, or None (one for the tensor).
    e_max : array_like of int
        The largest exponent: ``()`` or ``(shape[axis],)``.

    Attributes
    ----------
    shape : tuple of int
        The logical shape.
    bits : int
        Bits per code.
    axis : int or None
        The axis with one e_max per index, or None.
    e_max : numpy.ndarray
        int32, ``()`` or ``(shape[axis],)``.
    """

    __slots__ = ("shape", "bits", "axis", "e_max", "_codes")

    def __init__(self, codes_bytes, shape, bits, axis, e_max):
        self.shape = tuple(int(s) for s in shape)
        self.bits = int(bits)
        self.axis = axis
        self.e_max = np.asarray(e_max, np.int32)
        self._codes = codes_bytes

    @property
    def kmax(self) -> int:
        """The largest code magnitude, 2^(bits-1) - 1 (the number of exponents)."""
        return (1 << (self.bits - 1)) - 1

    @property
    def nbytes(self) -> int:
        """Bytes stored: the packed codes + e_max."""
        return int(self._codes.nbytes + self.e_max.nbytes)

    def int_repr(self) -> np.ndarray:
        """The codes, unpacked.

        Returns
        -------
        numpy.ndarray
            int8 array of ``shape``: sign * exponent index, 0 for zero.
        """
        return _load(self._codes, int(math.prod(self.shape)), self.bits, True).reshape(self.shape).copy()

    def exponents(self) -> np.ndarray:
        """The exponent of every value.

        Returns
        -------
        numpy.ndarray
            int32 array of ``shape``: e with ``|value|`` = 2^e (meaningless where the code
            is 0).
        """
        c = self.int_repr().astype(np.int32)
        e_min = _bcast(self.e_max.astype(np.int32), len(self.shape), self.axis) - self.kmax + 1
        return (e_min + np.abs(c) - 1).astype(np.int32)

    def dequantize(self) -> np.ndarray:
        """The values the codes represent.

        Returns
        -------
        numpy.ndarray
            float32 array of ``shape``.
        """
        c = self.int_repr()
        mag = np.ldexp(1.0, self.exponents())
        return (np.sign(c) * np.where(c == 0, 0.0, mag)).astype(np.float32)

    @classmethod
    def from_codes(cls, codes, e_max, *, bits=4, axis=None) -> "Pow2Tensor":
        """Wrap existing codes and their e_max.

        Parameters
        ----------
        codes : numpy.ndarray of int8
            Codes in [-(2^(bits-1)-1), 2^(bits-1)-1].
        e_max : array_like of int
            The largest exponent, in [-1000, 1000]: a scalar, or one per index along ``axis``.
        bits : int, default 4
            Bits per code, 2..8.
        axis : int or None, default None
            The axis of ``codes`` with one e_max per index (None: one for the tensor).

        Returns
        -------
        Pow2Tensor
            The codes, packed, with e_max.

        Raises
        ------
        TypeError
            If ``codes`` is not int8, ``e_max`` not integer, or ``bits``/``axis`` not an
            integer.
        ValueError
            If ``bits`` is not in 2..8, ``axis`` is out of range, a code is out of range, or
            ``e_max`` has the wrong shape or lies outside [-1000, 1000].
        """
        bits = as_int(bits, "bits", 2, 8)
        c = np.asarray(codes)
        if c.dtype != np.int8:
            raise TypeError(f"codes must be an int8 array, got dtype {c.dtype}")
        axis = as_axis(axis, c.ndim)
        kmax = (1 << (bits - 1)) - 1
        if c.size and int(np.abs(c.astype(np.int16)).max()) > kmax:
            raise ValueError(f"codes must lie in [-{kmax}, {kmax}] for bits={bits}")
        e = np.asarray(e_max)
        if e.dtype.kind not in "iu":
            raise TypeError(f"e_max must be integer, got dtype {e.dtype}")
        want = () if axis is None else (c.shape[axis],)
        if e.shape != want:
            raise ValueError(f"e_max must have shape {want}, got {e.shape}")
        if e.size and (int(e.min()) < -1000 or int(e.max()) > 1000):
            raise ValueError("e_max must lie in [-1000, 1000]")
        return cls(_store(c.astype(np.int8), bits), c.shape, bits, axis, e.astype(np.int32))

    def __repr__(self) -> str:
        return f"Pow2Tensor(shape={self.shape}, bits={self.bits}, axis={self.axis}, nbytes={self.nbytes})"


def _round_log2(mag: np.ndarray) -> np.ndarray:
    """The exponent e whose 2^e is nearest to mag > 0 (linear distance; ties, at 1.5 * 2^e,
    go up)."""
    m, ex = np.frexp(mag)  # mag = m * 2^ex, m in [0.5, 1)
    return (ex - 1 + (m >= 0.75)).astype(np.int64)


def quantize_pow2(x, *, bits=4, axis=None) -> Pow2Tensor:
    """Power-of-two (logarithmic) quantization.

    Each value becomes 0 or sign * 2^e with e among the kmax = 2^(bits-1) - 1 exponents
    e_max - kmax + 1 .. e_max, the code being sign * index. e_max is the exponent ``max|x|``
    rounds to (per tensor, or per index along ``axis``). Values round to the nearest
    representable magnitude (ties away from zero), saturate at 2^e_max, and below
    2^(e_min - 1) become 0. Multiplying an integer by such a weight is a bit shift
    (:func:`shift_matmul`).

    Parameters
    ----------
    x : array_like of float
        float16/32/64 array (computed in float32), no NaN/Inf.
    bits : int, default 4
        Bits per code (sign and exponent index), 2..8.
    axis : int or None, default None
        The axis with one e_max per index (None: one for the tensor).

    Returns
    -------
    Pow2Tensor
        The codes and e_max.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point array, or ``bits``/``axis`` not an integer.
    ValueError
        If ``x`` holds NaN/Inf, ``bits`` is not in 2..8 or ``axis`` is out of range.
    """
    bits = as_int(bits, "bits", 2, 8)
    a = _check_x(x)
    axis = as_axis(axis, a.ndim)
    kmax = (1 << (bits - 1)) - 1
    amax = _channel_max(a, axis)
    e_max = np.where(amax > 0, _round_log2(np.where(amax > 0, amax, 1.0)), 0).astype(np.int64)
    e_max = np.clip(e_max, -126, 127)
    x64 = a.astype(np.float64)
    mag = np.abs(x64)
    e_top = _bcast(e_max, a.ndim, axis)
    e_min = e_top - kmax + 1
    e = _round_log2(np.where(mag > 0, mag, 1.0))
    e = np.minimum(e, e_top)
    small = e < e_min
    k = e - e_min + 1
    k = np.where(small, np.where(mag >= np.ldexp(1.0, e_min - 1), 1, 0), k)
    k = np.where(mag > 0, k, 0)
    codes = (np.sign(x64).astype(np.int64) * k).astype(np.int8)
    return Pow2Tensor(_store(codes, bits), a.shape, bits, axis,
                      e_max.astype(np.int32) if axis is not None else np.int32(e_max))


def shift_matmul(a, w: Pow2Tensor) -> tuple[np.ndarray, int]:
    """Integer activations times power-of-two weights with shifts and adds only.

    ``a @ w.dequantize().T == acc * 2^e`` exactly: acc[m, n] = sum_k sign[n, k] *
    (a[m, k] << (exp[n, k] - e)), e the smallest exponent of a nonzero weight, in int64.

    Parameters
    ----------
    a : array_like of int, shape (M, K)
        Integer activations.
    w : Pow2Tensor
        Weights of shape (N, K), quantized per tensor or per row (``axis=0``).

    Returns
    -------
    acc : numpy.ndarray
        int64 ``(M, N)``.
    e : int
        The exponent of the result (0 when every weight is 0).

    Raises
    ------
    TypeError
        If ``w`` is not a :class:`Pow2Tensor` or ``a`` is not an integer array.
    ValueError
        If the shapes do not match, ``w`` is quantized along axis 1, or the sum could
        overflow int64.
    """
    if not isinstance(w, Pow2Tensor):
        raise TypeError(f"w must be a Pow2Tensor, got {type(w).__name__}")
    ai = np.asarray(a)
    if ai.dtype.kind not in "iu":
        raise TypeError(f"a must be an integer array, got dtype {ai.dtype}")
    if ai.ndim != 2 or len(w.shape) != 2 or ai.shape[1] != w.shape[1]:
        raise ValueError(f"a must be (M, K) and w (N, K) with the same K, got {ai.shape} and {w.shape}")
    if w.axis not in (None, 0):
        raise ValueError("w must be quantized per tensor or per row (axis=0)")
    codes = w.int_repr().astype(np.int64)
    exps = w.exponents().astype(np.int64)
    nz = codes != 0
    if not nz.any():
        return np.zeros((ai.shape[0], w.shape[0]), np.int64), 0
    e0 = int(exps[nz].min())
    shifts = np.where(nz, exps - e0, 0)
    sign = np.sign(codes)
    amax = int(np.abs(ai.astype(np.int64)).max()) if ai.size else 0
    bound = amax * (1 << int(shifts.max())) * ai.shape[1]
    if bound >= 2**63:
        raise ValueError(f"a @ w could overflow int64 (max|a| {amax}, exponent span {int(shifts.max())}, "
                         f"K {ai.shape[1]}); use fewer bits or smaller activations")
    a64 = ai.astype(np.int64)
    acc = np.empty((ai.shape[0], w.shape[0]), np.int64)
    for n in range(w.shape[0]):  # one output channel at a time: (M, K) shifts, then a row sum
        acc[:, n] = (np.left_shift(a64, shifts[n][None, :]) * sign[n][None, :]).sum(axis=1)
    return acc, e0


# --------------------------------------------------------------------------- companding

COMPANDERS = ("mu-law", "tanh", "sigmoid")


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


class CompandedTensor:
    """Codes of a companded tensor: u = c(x / xmax) quantized uniformly.

    c is the compressor of ``method`` with parameter ``param`` (mu for "mu-law", alpha for
    "tanh"/"sigmoid"). "mu-law" and "tanh" give signed codes in [-L, L], L = 2^(bits-1) - 1;
    "sigmoid" gives unsigned codes in [0, 2^bits - 1]. xmax is float32, shape ``()`` or
    ``(C,)`` per index along ``axis``. :func:`compand` makes one; the constructor wraps its
    arguments unchecked.

    Parameters
    ----------
    codes_bytes : numpy.ndarray of uint8
        The codes as stored (packed four per byte for 2 bits, two for 3-4).
    shape : tuple of int
        The logical shape.
    bits : int
        Bits per code, 2..8.
    axis : int or None
        The axis with one xmax per index, or None (one for the tensor).
    method : {"mu-law", "tanh", "sigmoid"}
        The compressor.
    param : float
        Its parameter: mu ("mu-law") or alpha ("tanh", "sigmoid").
    xmax : array_like of float
        ``max|x|``: ``()`` or ``(shape[axis],)``.

    Attributes
    ----------
    shape : tuple of int
        The logical shape.
    bits : int
        Bits per code.
    axis : int or None
        The axis with one xmax per index, or None.
    method : str
        The compressor.
    param : float
        Its parameter.
    xmax : numpy.ndarray
        float32, ``()`` or ``(shape[axis],)``.
    """

    __slots__ = ("shape", "bits", "axis", "method", "param", "xmax", "_codes")

    def __init__(self, codes_bytes, shape, bits, axis, method, param, xmax):
        self.shape = tuple(int(s) for s in shape)
        self.bits = int(bits)
        self.axis = axis
        self.method = method
        self.param = float(param)
        self.xmax = np.asarray(xmax, np.float32)
        self._codes = codes_bytes

    @property
    def signed(self) -> bool:
        """Whether the codes are signed (int8): True except for "sigmoid" (uint8)."""
        return self.method != "sigmoid"

    @property
    def nbytes(self) -> int:
        """Bytes stored: the packed codes + xmax."""
        return int(self._codes.nbytes + self.xmax.nbytes)

    def int_repr(self) -> np.ndarray:
        """The codes, unpacked.

        Returns
        -------
        numpy.ndarray
            int8 (signed) or uint8 ("sigmoid") array of ``shape``.
        """
        n = int(math.prod(self.shape))
        return _load(self._codes, n, self.bits, self.signed).reshape(self.shape).copy()

    def dequantize(self) -> np.ndarray:
        """The values the codes represent, through the expander (the compressor's inverse).

        Returns
        -------
        numpy.ndarray
            float32 array of ``shape``.
        """
        c = self.int_repr().astype(np.float64)
        xmax = _bcast(self.xmax.astype(np.float64), len(self.shape), self.axis)
        return (_expand(c, self.method, self.param, self.bits) * xmax).astype(np.float32)

    def __repr__(self) -> str:
        return (f"CompandedTensor(shape={self.shape}, method={self.method!r}, bits={self.bits}, "
                f"axis={self.axis}, nbytes={self.nbytes})")


def _compress(v: np.ndarray, method: str, p: float, bits: int) -> np.ndarray:
    """v = x / xmax in [-1, 1] -> real-valued code (before rounding)."""
    if method == "mu-law":
        return np.sign(v) * np.log1p(p * np.abs(v)) / math.log1p(p) * ((1 << (bits - 1)) - 1)
    if method == "tanh":
        return np.tanh(p * v) / math.tanh(p) * ((1 << (bits - 1)) - 1)
    lo, hi = _sigmoid(-p), _sigmoid(p)
    return (_sigmoid(p * v) - lo) / (hi - lo) * ((1 << bits) - 1)


def _expand(c: np.ndarray, method: str, p: float, bits: int) -> np.ndarray:
    """code -> x / xmax (the inverse of _compress)."""
    if method == "mu-law":
        u = c / ((1 << (bits - 1)) - 1)
        return np.sign(u) * np.expm1(np.abs(u) * math.log1p(p)) / p
    if method == "tanh":
        u = c / ((1 << (bits - 1)) - 1) * math.tanh(p)
        return np.arctanh(u) / p
    lo, hi = _sigmoid(-p), _sigmoid(p)
    s = lo + c / ((1 << bits) - 1) * (hi - lo)
    return np.log(s / (1.0 - s)) / p


def compand(x, *, method="mu-law", bits=8, axis=None, mu=255.0, alpha=None) -> CompandedTensor:
    """Companding quantization: a compressor, uniform codes, and the inverse (the expander).

    With v = x / ``max|x|`` (per tensor or per index along ``axis``):

    - "mu-law": c(v) = sign(v) ln(1 + mu ``|v|``) / ln(1 + mu), signed codes round(c * L),
      L = 2^(bits-1) - 1 (G.711's mu = 255 by default).
    - "tanh": c(v) = tanh(alpha v) / tanh(alpha), signed codes round(c * L) (alpha default 2).
    - "sigmoid": c(v) = (s(alpha v) - s(-alpha)) / (s(alpha) - s(-alpha)) in [0, 1], s the
      logistic function, unsigned codes round(c * (2^bits - 1)): all 2^bits codes are used, but
      0 has no exact code (alpha default 4; s(a v) = (1 + tanh(a v / 2)) / 2).

    Rounding is half to even; dequantization applies the inverse mapping exactly.

    Parameters
    ----------
    x : array_like of float
        float16/32/64 array (computed in float32), no NaN/Inf.
    method : {"mu-law", "tanh", "sigmoid"}, default "mu-law"
        The compressor.
    bits : int, default 8
        Bits per code, 2..8.
    axis : int or None, default None
        The axis with one ``max|x|`` per index (None: one for the tensor).
    mu : float, default 255.0
        mu of "mu-law", in (0, 1e6] (ignored by the other methods).
    alpha : float, optional
        alpha of "tanh" (default 2) or "sigmoid" (default 4), in (0, 1e6] (ignored by
        "mu-law").

    Returns
    -------
    CompandedTensor
        The codes, xmax and the method.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point array, ``bits``/``axis`` not an integer, or the
        parameter (mu or alpha) not a number.
    ValueError
        If ``method`` is unknown (also when it is not a string), ``bits`` is not in 2..8,
        ``axis`` is out of range, ``x`` holds NaN/Inf, or the parameter is not in (0, 1e6].
    """
    if not isinstance(method, str) or method not in COMPANDERS:
        raise ValueError(f"method must be one of {', '.join(COMPANDERS)}, got {method!r}")
    bits = as_int(bits, "bits", 2, 8)
    a = _check_x(x)
    axis = as_axis(axis, a.ndim)
    if method == "mu-law":
        p = mu
        pname = "mu"
    else:
        p = alpha if alpha is not None else (2.0 if method == "tanh" else 4.0)
        pname = "alpha"
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"{pname} must be a number, got {type(p).__name__}")
    p = float(p)
    if not (math.isfinite(p) and 0.0 < p <= 1e6):
        raise ValueError(f"{pname} must be in (0, 1e6], got {p}")
    xmax = _channel_max(a, axis).astype(np.float32)
    safe = np.where(xmax > 0, xmax, 1.0).astype(np.float64)
    v = np.clip(a.astype(np.float64) / _bcast(safe, a.ndim, axis), -1.0, 1.0)
    c = np.rint(_compress(v, method, p, bits))
    if method == "sigmoid":
        codes = np.clip(c, 0, (1 << bits) - 1).astype(np.uint8)
    else:
        lim = (1 << (bits - 1)) - 1
        codes = np.clip(c, -lim, lim).astype(np.int8)
    return CompandedTensor(_store(codes, bits), a.shape, bits, axis, method, p,
                           xmax if axis is not None else np.float32(xmax))


def dequantize(t) -> np.ndarray:
    """float32 values of a Pow2Tensor or CompandedTensor."""
    if not isinstance(t, (Pow2Tensor, CompandedTensor)):
        raise TypeError(f"t must be a Pow2Tensor or CompandedTensor, got {type(t).__name__}")
    return t.dequantize()


def compare_sqnr(x, *, bits=4, axis=None) -> dict:
    """SQNR (dB) against `x` of linear (symmetric), power-of-two, mu-law, tanh and sigmoid
    quantization at the same bit count, as {name: dB}."""
    a = _check_x(x)
    return {
        "linear": sqnr(a, quantize(a, bits=bits, axis=axis).dequantize()),
        "pow2": sqnr(a, quantize_pow2(a, bits=bits, axis=axis).dequantize()),
        "mu-law": sqnr(a, compand(a, method="mu-law", bits=bits, axis=axis).dequantize()),
        "tanh": sqnr(a, compand(a, method="tanh", bits=bits, axis=axis).dequantize()),
        "sigmoid": sqnr(a, compand(a, method="sigmoid", bits=bits, axis=axis).dequantize()),
    }


# --------------------------------------------------------------------------- file format

def _register() -> None:
    """Pow2Tensor and CompandedTensor in lowbit.save / lowbit.load."""
    def p2_from(s):
        what = "Pow2Tensor"
        shape = _io.need_shape(s, "shape", what)
        axis = _io.need_axis(s, what, len(shape))
        codes = _io.need_array(s, "codes", what, dtype=np.int8, shape=shape)
        e = _io.need_array(s, "e_max", what, dtype=np.int32)
        return Pow2Tensor.from_codes(codes, e if axis is not None else e.reshape(()),
                                               bits=_io.need(s, "bits", int, what), axis=axis)

    _io.register("Pow2Tensor", Pow2Tensor,
             lambda t: {"shape": t.shape, "bits": t.bits, "axis": t.axis, "codes": t.int_repr(),
                        "e_max": t.e_max.reshape(-1) if t.axis is not None else t.e_max.reshape(1)},
             p2_from)

    def ct_from(s):
        what = "CompandedTensor"
        shape = _io.need_shape(s, "shape", what)
        bits = _io.need(s, "bits", int, what)
        if not 2 <= bits <= 8:
            raise ValueError(f"{what}: bits out of 2..8")
        axis = _io.need_axis(s, what, len(shape))
        method = _io.need(s, "method", str, what)
        if method not in COMPANDERS:
            raise ValueError(f"{what}: unknown method {method!r}")
        param = float(_io.need(s, "param", (int, float), what))
        if not (math.isfinite(param) and param > 0):
            raise ValueError(f"{what}: bad parameter")
        signed = method != "sigmoid"
        codes = _io.need_array(s, "codes", what, dtype=np.int8 if signed else np.uint8, shape=shape)
        lim = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        if codes.size and (int(codes.max()) > lim or int(codes.min()) < (-lim if signed else 0)):
            raise ValueError(f"{what}: codes out of range")
        xmax = _io.need_array(s, "xmax", what, dtype=np.float32,
                          shape=() if axis is None else (shape[axis],))
        return CompandedTensor(_store(codes, bits), shape, bits, axis, method,
                                         param, xmax)

    _io.register("CompandedTensor", CompandedTensor,
             lambda t: {"shape": t.shape, "bits": t.bits, "axis": t.axis, "method": t.method,
                        "param": t.param, "codes": t.int_repr(), "xmax": t.xmax}, ct_from)


_register()
