"""Small helpers shared by lowbit.nn and lowbit.distill: argument checks and seeds."""
from __future__ import annotations


import numpy as np

from .._checks import FLOAT_DTYPES, as_float, as_number, as_seed  # noqa: F401  (re-exported)


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


def sub_seed(seed: int, *keys: int) -> int:
    """A well-mixed 32-bit seed derived from (seed, *keys): independent streams per layer/purpose."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])
