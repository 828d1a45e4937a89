"""Argument checks shared by the public API: every message names the argument and what was
expected. Inputs are never modified; conversions make copies."""
from __future__ import annotations

import numbers

import numpy as np


def as_float(x, name: str, dtype=np.float32) -> np.ndarray:
    """A C-contiguous array of the floating `dtype` from any floating array-like (float16/32/64
    are converted).

    Integer, bool, complex and object arrays raise TypeError: they are more likely a mistake
    (already-quantized codes, say) than a tensor to quantize.
    """
    if isinstance(x, np.ndarray):
        a = x
    else:
        try:
            a = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{name} must be a floating-point array, could not convert: {e}") from None
    if a.dtype.kind != "f":
        raise TypeError(
            f"{name} must be a floating-point array (float16/float32/float64), got dtype {a.dtype}"
            + ("; convert it with .astype(np.float32) if that is intended" if a.dtype.kind in "iub" else "")
        )
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf: reported later
        return np.asarray(a, dtype=dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)


def as_float32(x, name: str) -> np.ndarray:
    """as_float with float32, the dtype of every kernel."""
    return as_float(x, name, np.float32)


def check_finite(a: np.ndarray, name: str) -> None:
    """ValueError naming how many values are NaN/Inf and where the first is."""
    bad = ~np.isfinite(a)
    count = int(bad.sum())
    if count:
        first = np.unravel_index(int(np.argmax(bad)), a.shape) if a.ndim else ()
        raise ValueError(
            f"{name} holds {count} non-finite value{'s' if count > 1 else ''} (NaN or Inf, or beyond "
            f"float32's range before conversion); "
            f"the first is {a[first]!r} at index {tuple(int(i) for i in first)}"
        )


def as_int(v, name: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be in {lo}..{hi}, got {v}")
    return v


def as_axis(axis, ndim: int, name: str = "axis") -> int | None:
    if axis is None:
        return None
    axis = as_int(axis, name)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array of {ndim} dimension(s)")
    return axis % ndim


def as_bool(v, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(v).__name__}")
    return bool(v)


def as_weight(w, name: str = "weight") -> np.ndarray:
    """A layer's weight: a non-empty, finite, 2-D float32 array (out_features, in_features)."""
    a = as_float32(w, name)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (out_features, in_features), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    check_finite(a, name)
    return a


def as_bias(bias, out_features: int, name: str = "bias") -> np.ndarray | None:
    """None, or a private float32 copy of a finite bias of shape (out_features,)."""
    if bias is None:
        return None
    b = as_float32(bias, name)
    if b.shape != (out_features,):
        raise ValueError(f"{name} must have shape ({out_features},), got {b.shape}")
    check_finite(b, name)
    return b.copy()


def as_shape(shape, name: str = "shape") -> tuple:
    """A tuple of ints with at least one dimension, none negative."""
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}") from None
    if len(shape) == 0 or any(s < 0 for s in shape):
        raise ValueError(f"{name} must have at least one non-negative dimension, got {shape}")
    return shape


def as_number(v, name: str, lo: float | None = None, hi: float | None = None, *,
              lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite real number in [lo, hi] (bounds open when *_open)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    v = float(v)
    ok = np.isfinite(v)
    if lo is not None:
        ok = ok and (v > lo if lo_open else v >= lo)
    if hi is not None:
        ok = ok and (v < hi if hi_open else v <= hi)
    if not ok:
        lb = "-inf" if lo is None else f"{lo}"
        hb = "inf" if hi is None else f"{hi}"
        raise ValueError(f"{name} must be a finite number in {'(' if lo_open else '['}{lb}, {hb}"
                         f"{')' if hi_open else ']'}, got {v}")
    return v


def as_seed(seed, name: str = "seed") -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer, got {type(seed).__name__}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed}")
    return seed


def positive_int(v, name: str) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {type(v).__name__}")
    if int(v) < 1:
        raise ValueError(f"{name} must be a positive integer, got {int(v)}")
    return int(v)


FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # what layers compute in
