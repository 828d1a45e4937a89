"""Evaluation helpers of the tools: accuracy, output KL, and timing as the benchmarks time."""
from __future__ import annotations

import math
import time

import numpy as np

from .._checks import as_float32

# --------------------------------------------------------------------------- evaluation

def labels_array(labels, n, name="labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of class labels, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one label per row of data), got {y.shape}")
    return y.astype(np.int64)


def predict(model, x, batch_size=1024) -> np.ndarray:
    out = [np.asarray(model(x[s:s + batch_size])) for s in range(0, x.shape[0], batch_size)]
    return np.concatenate(out, axis=0)


def accuracy(model, data, labels) -> float:
    """Fraction of rows of `data` whose argmax output equals the label."""
    x = as_float32(data, "data")
    y = labels_array(labels, x.shape[0])
    return float(np.mean(predict(model, x).argmax(axis=-1) == y))


def _probs(z: np.ndarray) -> np.ndarray:
    """Rows of z as probabilities: as they are when they already are (a Softmax last layer), else
    softmax(z)."""
    z = z.astype(np.float64)
    if z.size and z.min() >= 0 and np.allclose(z.sum(axis=-1), 1.0, atol=1e-4):
        return z
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def mean_kl(reference, approx) -> float:
    """Mean over rows of KL(p_reference || p_approx) in nats, outputs taken as logits (or as
    probabilities when they already are)."""
    p, q = _probs(np.asarray(reference)), _probs(np.asarray(approx))
    tiny = 1e-30
    return float(np.mean(np.sum(p * (np.log(p + tiny) - np.log(q + tiny)), axis=-1)))


def time_call(fn, repeat: int, *, warmup: float = 0.05, min_sample: float = 0.005) -> float:
    """Seconds per call of fn, timed as lowbit's benchmarks do: one first call (set-up), untimed
    calls for `warmup` seconds (caches, worker threads, clock frequency: the first calls after an
    idle pause run slow), then `repeat` samples of enough calls to last `min_sample` seconds
    each, garbage collection off; the median of the samples' time per call. (A single call of a
    small layer is too short to time: one scheduler tick in it turns 0.02 ms into 8 ms.)"""
    import gc

    fn()
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= warmup and calls >= 2:
            break
    inner = max(1, math.ceil(min_sample / max(elapsed / calls, 1e-9)))
    was = gc.isenabled()
    gc.disable()
    try:
        ts = []
        for _ in range(repeat):
            t = time.perf_counter()
            for _ in range(inner):
                fn()
            ts.append((time.perf_counter() - t) / inner)
    finally:
        if was:
            gc.enable()
    return float(np.median(ts))
