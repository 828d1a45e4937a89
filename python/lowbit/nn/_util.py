"""Small helpers shared by lowbit.nn and lowbit.distill: argument checks and seeds."""
from __future__ import annotations

import numbers

import numpy as np

from .._checks import as_float  # noqa: F401  (float32 normally, float64 for gradient checks)

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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
