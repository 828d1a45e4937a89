"""Small helpers shared by lowbit.nn and lowbit.distill: argument checks and seeds."""
from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float(x, name: str, dtype=np.float32) -> np.ndarray:
    """A C-contiguous floating array of `dtype` from any floating array-like.

    Like lowbit._checks.as_float32, but the target dtype is the model's (float32 normally,
    float64 for gradient checks). Integer/bool/object input raises TypeError naming `name`.
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{name} must be a floating-point array, could not convert: {e}") from None
    if x.dtype.kind != "f":
        raise TypeError(
            f"{name} must be a floating-point array (float16/float32/float64), got dtype {x.dtype}"
            + ("; convert it with .astype(np.float32) if that is intended" if x.dtype.kind in "iub" else "")
        )
    return np.asarray(x, dtype=dtype, order="C")


def as_labels(y, name: str, n: int, n_classes: int | None = None) -> np.ndarray:
    """Integer class labels (n,) as int64, each in [0, n_classes)."""
    if not isinstance(y, np.ndarray):
        try:
            y = np.asarray(y)
        except Exception as e:
            raise TypeError(f"{name} must be an integer array of class labels, could not convert: {e}") from None
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of class labels, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one label per row of x), got {y.shape}")
    y = y.astype(np.int64)
    if n and n_classes is not None and (y.min() < 0 or y.max() >= n_classes):
        bad = y[(y < 0) | (y >= n_classes)][0]
        raise ValueError(f"{name} holds label {int(bad)}; the model has {n_classes} outputs, so labels "
                         f"must be in 0..{n_classes - 1}")
    return y


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


def sub_seed(seed: int, *keys: int) -> int:
    """A well-mixed 32-bit seed derived from (seed, *keys): independent streams per layer/purpose."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])
