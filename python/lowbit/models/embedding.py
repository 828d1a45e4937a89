"""Int4Embedding: an embedding table held as 4-bit codes in groups along each row (what
``lowbit.quantize_model(encoder, ..., embeddings="int4")`` gives an encoder's word embeddings)."""
from __future__ import annotations

import numpy as np

from .. import io as _io
from .._checks import as_float32, as_int, check_finite


class Int4Embedding:
    """A ``(rows, dim)`` table held as 4-bit codes, in groups of ``group_size`` consecutive values
    of a row, each group with a binary16 scale and a 4-bit zero point: value
    ``float32(scale) * (code - zero)``, computed in float32 (as lowbit's encoder plan gathers it).

    Each group is quantized asymmetrically over its [min, max] (0 included), the step being
    ``(max - min) / 15`` rounded to binary16; codes round half to even and saturate to 0..15.
    Bits per value: ``4 + 24 / group_size`` (4.75 for groups of 32, 4.375 for 64).

    Parameters
    ----------
    table : array_like of float
        ``(rows, dim)``, finite; ``dim`` a multiple of ``group_size``.
    group_size : int, default 32
        Values per group: even, dividing ``dim``.

    Attributes
    ----------
    shape : tuple of int
        ``(rows, dim)``.
    group_size : int
        Values per group.
    codes : numpy.ndarray
        uint8 ``(rows * dim // 2,)``: two codes a byte, the first in the low nibble, row-major.
    scale : numpy.ndarray
        float16 ``(rows, dim // group_size)``.
    zero : numpy.ndarray
        uint8 ``(rows, dim // group_size)``, 0..15.

    Raises
    ------
    TypeError
        If ``table`` is not a floating-point array or ``group_size`` not an integer.
    ValueError
        If ``table`` is not 2-D, is empty or holds NaN/Inf, or ``group_size`` is odd or does not
        divide ``dim``, or a scale overflows binary16 (values beyond 983,040 in magnitude).
    """

    def __init__(self, table, group_size=32):
        t = as_float32(table, "table")
        if t.ndim != 2 or t.size == 0:
            raise ValueError(f"table must be a non-empty 2-D array, got shape {t.shape}")
        check_finite(t, "table")
        g = as_int(group_size, "group_size", 2)
        rows, dim = t.shape
        if g % 2 or dim % g:
            raise ValueError(f"group_size must be even and divide the table's {dim} columns, got {g}")
        x = t.reshape(rows, dim // g, g)
        lo = np.minimum(x.min(axis=2), 0.0)
        hi = np.maximum(x.max(axis=2), 0.0)
        with np.errstate(over="ignore"):
            scale = ((hi.astype(np.float64) - lo) / 15.0).astype(np.float16)
        if not np.all(np.isfinite(scale)):
            raise ValueError("table: a group's range overflows a binary16 scale")
        s = scale.astype(np.float32)
        safe = np.where(s > 0, s, np.float32(1.0))
        zero = np.clip(np.rint(-lo / safe), 0, 15).astype(np.uint8)
        codes = np.clip(np.rint(x / safe[..., None]) + zero[..., None], 0, 15).astype(np.uint8)
        codes[s == 0] = zero[s == 0][:, None]  # an all-zero group: every code is its zero point
        self._set(codes.reshape(-1), scale, zero, (rows, dim), g)

    def _set(self, codes_flat, scale, zero, shape, group):
        self.shape, self.group_size = tuple(shape), group
        self.codes = (codes_flat[0::2] | (codes_flat[1::2] << 4)).astype(np.uint8)
        self.scale, self.zero = scale, zero

    @classmethod
    def _from_parts(cls, codes, scale, zero, shape, group) -> "Int4Embedding":
        e = cls.__new__(cls)
        e.shape, e.group_size, e.codes, e.scale, e.zero = tuple(shape), group, codes, scale, zero
        return e

    def int_repr(self) -> np.ndarray:
        """The codes, unpacked.

        Returns
        -------
        numpy.ndarray
            uint8 ``(rows, dim)``, 0..15.
        """
        out = np.empty(self.codes.size * 2, np.uint8)
        out[0::2], out[1::2] = self.codes & 15, self.codes >> 4
        return out.reshape(self.shape)

    def rows(self, ids) -> np.ndarray:
        """Rows of the table in float32, as an embedding lookup.

        Parameters
        ----------
        ids : array_like of int
            Row indices, any shape, each in ``0..rows - 1``.

        Returns
        -------
        numpy.ndarray
            float32 ``ids.shape + (dim,)``.
        """
        ids = np.asarray(ids)
        rows, dim = self.shape
        g = self.group_size
        codes = self.int_repr()[ids].reshape(*ids.shape, dim // g, g).astype(np.float32)
        zero = self.zero[ids].astype(np.float32)[..., None]
        scale = self.scale[ids].astype(np.float32)[..., None]
        return ((codes - zero) * scale).reshape(*ids.shape, dim)  # exact difference, one rounding

    def dequantize(self) -> np.ndarray:
        """The whole table.

        Returns
        -------
        numpy.ndarray
            float32 ``(rows, dim)``.
        """
        return self.rows(np.arange(self.shape[0]))

    @property
    def nbytes(self) -> int:
        """Bytes held: the packed codes, the scales and the zero points."""
        return int(self.codes.nbytes + self.scale.nbytes + self.zero.nbytes)

    @property
    def bits_per_value(self) -> float:
        """Bits held per table value."""
        return 8.0 * self.nbytes / (self.shape[0] * self.shape[1])

    def __repr__(self) -> str:
        return (f"Int4Embedding(shape={self.shape}, group_size={self.group_size}, "
                f"bits_per_value={self.bits_per_value:.3f}, nbytes={self.nbytes})")


def _register_io() -> None:
    what = "Int4Embedding"

    def to_state(e):
        return {"shape": list(e.shape), "group_size": e.group_size, "codes": e.codes,
                "scale": e.scale, "zero": e.zero}

    def from_state(s):
        shape = _io.need_shape(s, "shape", what)
        g = _io.need(s, "group_size", int, what)
        if len(shape) != 2 or 0 in shape or g < 2 or g % 2 or shape[1] % g:
            raise ValueError(f"{what}: bad shape or group_size")
        groups = (shape[0], shape[1] // g)
        codes = _io.need_array(s, "codes", what, dtype=np.uint8, shape=(shape[0] * shape[1] // 2,))
        scale = _io.need_array(s, "scale", what, dtype=np.float16, shape=groups)
        zero = _io.need_array(s, "zero", what, dtype=np.uint8, shape=groups)
        if not np.all(np.isfinite(scale)) or np.any(scale < 0) or np.any(zero > 15):
            raise ValueError(f"{what}: scales must be finite and >= 0, zero points <= 15")
        return Int4Embedding._from_parts(codes, scale, zero, shape, g)

    _io.register(what, Int4Embedding, to_state, from_state)


_register_io()
