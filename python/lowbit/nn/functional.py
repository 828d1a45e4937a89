"""Losses and their gradients with respect to the logits, numerically stable (log-sum-exp).

Each loss returns ``(loss, grad)``: the mean over the batch and dLoss/dlogits with the dtype of the
logits. The arithmetic runs in float64 (the arrays are (batch, classes), small), so logits up to
1e4 and temperatures up to 20 lose nothing to overflow or cancellation.
"""
from __future__ import annotations

import numpy as np

from ._util import as_float, as_labels, as_number

__all__ = ["log_softmax", "softmax", "cross_entropy", "kd_loss", "mse_loss"]


def log_softmax(z, axis: int = -1) -> np.ndarray:
    """log(softmax(z)), computed as z - max - log(sum(exp(z - max))): never overflows.

    Parameters
    ----------
    z : array_like of float
        The logits.
    axis : int, default -1
        The axis the softmax normalizes.

    Returns
    -------
    numpy.ndarray
        An array of the shape (and float dtype) of ``z``.
    """
    z = np.asarray(z)
    s = z - z.max(axis=axis, keepdims=True)
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def softmax(z, axis: int = -1) -> np.ndarray:
    """softmax(z), with the maximum subtracted first (never overflows).

    Parameters
    ----------
    z : array_like of float
        The logits.
    axis : int, default -1
        The axis the softmax normalizes.

    Returns
    -------
    numpy.ndarray
        An array of the shape (and float dtype) of ``z`` whose sums along ``axis`` are 1.
    """
    z = np.asarray(z)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _logits(logits, name: str = "logits") -> np.ndarray:
    out_dtype = np.float64 if np.asarray(logits).dtype == np.float64 else np.float32
    z = as_float(logits, name, out_dtype)
    if z.ndim != 2:
        raise ValueError(f"{name} must be 2-D (batch, classes), got shape {z.shape}")
    return z


def cross_entropy(logits, y) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy with integer labels, and its gradient.

    The loss is the mean over the batch of -log softmax(logits)[i, y_i]; its gradient with
    respect to the logits is (softmax - onehot) / batch. Computed in float64.

    Parameters
    ----------
    logits : array_like of float, shape (batch, classes)
        The logits.
    y : array_like of int, shape (batch,)
        The class labels, each in [0, classes).

    Returns
    -------
    loss : float
        The mean cross-entropy (0.0 for an empty batch).
    grad : numpy.ndarray
        dLoss/dlogits, ``(batch, classes)``, float64 if ``logits`` is float64, else float32.

    Raises
    ------
    TypeError
        If ``logits`` is not a floating-point array or ``y`` not an integer array.
    ValueError
        If ``logits`` is not 2-D, or ``y`` has the wrong shape or a label out of range.
    """
    z = _logits(logits)
    y = as_labels(y, "y", z.shape[0], z.shape[1])
    return _cross_entropy(z, y)


def _cross_entropy(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    n = z.shape[0]
    if n == 0:
        return 0.0, np.zeros_like(z)
    lp = log_softmax(z.astype(np.float64))
    rows = np.arange(n)
    loss = -float(lp[rows, y].mean())
    g = np.exp(lp)
    g[rows, y] -= 1.0
    g /= n
    return loss, g.astype(z.dtype)


def _teacher_terms(p_t: np.ndarray, log_p_t: np.ndarray | None) -> np.ndarray:
    """sum p_t log p_t per row (0 log 0 = 0), from log-probabilities when available (exact)."""
    if log_p_t is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            log_p_t = np.where(p_t > 0, np.log(np.where(p_t > 0, p_t, 1.0)), 0.0)
    return np.sum(np.where(p_t > 0, p_t * log_p_t, 0.0), axis=1)


def kd_loss(student_logits, y=None, *, teacher_logits=None, teacher_probs=None,
            temperature: float = 4.0, alpha: float = 0.9) -> tuple[float, np.ndarray]:
    """The distillation loss of Hinton et al. (2015), and its gradient.

    The loss, averaged over the batch, is::

        alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

    for student logits ``s``. The teacher is given as logits ``t`` or as probabilities already
    softened at T (``teacher_probs``, e.g. precomputed or averaged over several teachers). The
    T^2 keeps the soft gradient, T * (softmax(s/T) - p_teacher), on the scale of the hard one
    as T changes. Computed in float64.

    Parameters
    ----------
    student_logits : array_like of float, shape (batch, classes)
        The student's logits ``s``.
    y : array_like of int, shape (batch,), optional
        The class labels; needed unless ``alpha == 1``.
    teacher_logits : array_like of float, shape (batch, classes), optional
        The teacher's logits ``t``.
    teacher_probs : array_like of float, shape (batch, classes), optional
        The teacher's probabilities softened at T (finite, >= 0, rows summing to 1 within
        1e-3). Give exactly one of ``teacher_logits`` and ``teacher_probs``.
    temperature : float, default 4.0
        T, > 0.
    alpha : float, default 0.9
        The weight of the soft (distillation) term, in [0, 1].

    Returns
    -------
    loss : float
        The loss (0.0 for an empty batch).
    grad : numpy.ndarray
        dLoss/dstudent_logits, ``(batch, classes)``, float64 if ``student_logits`` is
        float64, else float32.

    Raises
    ------
    TypeError
        If an array is not of the right kind (float logits/probabilities, integer labels) or
        a number is not a number.
    ValueError
        If not exactly one teacher is given, shapes do not match, ``teacher_probs`` are not
        probabilities, ``y`` is missing while ``alpha < 1`` or holds a label out of range, or
        ``temperature``/``alpha`` is out of range.
    """
    z = _logits(student_logits, "student_logits")
    T = as_number(temperature, "temperature", 0.0, lo_open=True)
    a = as_number(alpha, "alpha", 0.0, 1.0)
    if (teacher_logits is None) == (teacher_probs is None):
        raise ValueError("pass exactly one of teacher_logits and teacher_probs")
    if teacher_logits is not None:
        t = as_float(teacher_logits, "teacher_logits", np.float64)
        if t.shape != z.shape:
            raise ValueError(f"teacher_logits must have the shape of student_logits {z.shape}, got {t.shape}")
        log_p_t = log_softmax(t / T)
        p_t = np.exp(log_p_t)
    else:
        p_t = check_probs(teacher_probs, "teacher_probs", z.shape)
        log_p_t = None
    if a < 1.0 and y is None:
        raise ValueError("y (labels) is required when alpha < 1 (the hard loss has weight 1 - alpha)")
    if y is not None:
        y = as_labels(y, "y", z.shape[0], z.shape[1])
    loss, _, _, g = _kd(z, p_t, log_p_t, y, T, a)
    return loss, g


def check_probs(p, name: str, shape: tuple) -> np.ndarray:
    """Teacher probabilities as float64, checked: right shape, finite, >= 0, rows summing to 1."""
    p = as_float(p, name, np.float64)
    if p.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {p.shape}")
    if p.size:
        if not np.all(np.isfinite(p)) or p.min() < 0:
            raise ValueError(f"{name} must hold probabilities (finite, >= 0)")
        err = np.abs(p.sum(axis=1) - 1.0).max()
        if err > 1e-3:
            raise ValueError(f"{name} rows must sum to 1 (probabilities softened at the distillation "
                             f"temperature); a row is off by {err:.3g}")
    return p


def _kd(z: np.ndarray, p_t: np.ndarray, log_p_t, y, T: float, alpha: float, plogp=None):
    """(loss, soft, hard, grad) for student logits z, teacher probabilities p_t at T (float64).
    ``plogp``: the rows' sum p_t log p_t when already known (it does not depend on the student)."""
    n = z.shape[0]
    if n == 0:
        return 0.0, 0.0, 0.0, np.zeros_like(z)
    z64 = z.astype(np.float64)
    lq = log_softmax(z64 / T)
    if plogp is None:
        plogp = _teacher_terms(p_t, log_p_t)
    kl = plogp - np.sum(p_t * lq, axis=1)
    soft = float(kl.mean()) * T * T
    g = (np.exp(lq) - p_t) * (alpha * T / n)
    hard = 0.0
    if y is not None and alpha < 1.0:
        hard, gh = _cross_entropy(z64, y)
        g += (1.0 - alpha) * gh
    elif y is not None:
        hard = _cross_entropy(z64, y)[0]
    loss = alpha * soft + (1.0 - alpha) * hard
    return loss, soft, hard, g.astype(z.dtype)


def mse_loss(pred, target) -> tuple[float, np.ndarray]:
    """Mean squared error over all elements, and its gradient with respect to ``pred``.

    Parameters
    ----------
    pred : array_like
        The prediction.
    target : array_like
        The target, of the shape of ``pred``.

    Returns
    -------
    loss : float
        mean((pred - target)^2), computed in float64.
    grad : numpy.ndarray
        2 (pred - target) / size, in the dtype of ``pred`` when it is floating-point, else
        float32.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    p = np.asarray(pred)
    t = np.asarray(target)
    if p.shape != t.shape:
        raise ValueError(f"target must have the shape of pred {p.shape}, got {t.shape}")
    d = p.astype(np.float64) - t
    n = max(d.size, 1)
    return float(np.sum(d * d) / n), (d * (2.0 / n)).astype(p.dtype if p.dtype.kind == "f" else np.float32)
