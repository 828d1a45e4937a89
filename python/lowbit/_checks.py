"""Argument checks shared by the public API: every message names the argument and what was
expected. Inputs are never modified; conversions make copies."""
from __future__ import annotations

import numbers

import numpy as np


def as_float32(x, name: str) -> np.ndarray:
    """A float32 C-contiguous array from any floating array-like (float16/32/64 are converted).

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
        return np.asarray(a, dtype=np.float32, order="C")  # (ascontiguousarray makes 0-d 1-d)


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
