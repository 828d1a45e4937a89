"""Knowledge distillation in numpy: Distiller, soft targets precomputed and streamed in chunks."""
from __future__ import annotations

import numbers
import os

import numpy as np

from lowbit.nn._util import as_float, as_labels, as_number, as_seed, sub_seed
from lowbit.nn.functional import _kd, _teacher_terms, check_probs, log_softmax, mse_loss
from lowbit.nn.layers import Linear, Sequential
from lowbit.nn.optim import make_optimizer
from lowbit.nn.training import (History, _check_finite, check_common, check_model, check_resume,
                                check_validation, evaluate, run_epochs, shuffled_batches)

__all__ = ["Distiller", "chunks_from_files"]


def _normalize_teachers(teacher, teacher_weights):
    """([callables], weights summing to 1) from a teacher, a list of teachers, or a list of
    (teacher, weight) pairs."""
    if isinstance(teacher, (list, tuple)):
        items = list(teacher)
        if not items:
            raise ValueError("teacher must not be an empty list")
        teachers, weights = [], []
        for i, t in enumerate(items):
            if isinstance(t, (list, tuple)) and len(t) == 2 and callable(t[0]) and not callable(t[1]):
                teachers.append(t[0])
                weights.append(as_number(t[1], f"teacher[{i}] weight", 0.0))
            elif callable(t):
                teachers.append(t)
                weights.append(1.0)
            else:
                raise TypeError(f"teacher[{i}] must be a callable x -> logits or a (teacher, weight) pair, "
                                f"got {type(t).__name__}")
    elif callable(teacher):
        teachers, weights = [teacher], [1.0]
    else:
        raise TypeError(f"teacher must be a model, a callable x -> logits, or a list of them, got "
                        f"{type(teacher).__name__}")
    if teacher_weights is not None:
        tw = list(np.atleast_1d(np.asarray(teacher_weights, dtype=object)))
        if len(tw) != len(teachers):
            raise ValueError(f"teacher_weights must hold one weight per teacher ({len(teachers)}), got {len(tw)}")
        weights = [as_number(w, f"teacher_weights[{i}]", 0.0) for i, w in enumerate(tw)]
    total = sum(weights)
    if not total > 0:
        raise ValueError("the teacher weights must not all be zero")
    return teachers, [w / total for w in weights]


def _teacher_logits(teacher, x, i: int, n_classes=None) -> np.ndarray:
    try:
        z = np.asarray(teacher(x))
    except Exception as e:
        if isinstance(e, (TypeError, ValueError)) and "teacher" in str(e):
            raise
        raise type(e)(f"teacher {i} failed on a batch of shape {x.shape}: {e}") from e
    if z.ndim != 2 or z.shape[0] != x.shape[0]:
        raise ValueError(f"teacher {i} must return logits of shape ({x.shape[0]}, classes), got {z.shape}")
    if z.dtype.kind != "f":
        raise TypeError(f"teacher {i} must return floating-point logits, got dtype {z.dtype}")
    if n_classes is not None and z.shape[1] != n_classes:
        raise ValueError(f"teacher {i} returns {z.shape[1]} classes but the student has {n_classes}")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"teacher {i} returned non-finite logits (NaN or Inf)")
    return z


def teacher_probs_batch(teachers, weights, temperature, xb, n_classes=None):
    """(p, log p or None) of one batch: the weighted average of the teachers' softmax at the
    temperature, in float64 (log p for a single teacher). Distiller's soft targets and
    lowbit.dask.soft_targets both compute through this function, so they agree bit for bit."""
    if len(teachers) == 1:
        z = _teacher_logits(teachers[0], xb, 0, n_classes)
        lp = log_softmax(z.astype(np.float64) / temperature)
        return np.exp(lp), lp
    p = None
    for i, (t, w) in enumerate(zip(teachers, weights)):
        z = _teacher_logits(t, xb, i, n_classes)
        pi = np.exp(log_softmax(z.astype(np.float64) / temperature)) * w
        if p is not None and pi.shape != p.shape:
            raise ValueError(f"teacher {i} returns {pi.shape[1]} classes, teacher 0 {p.shape[1]}")
        p = pi if p is None else p + pi
    return p, None


class Distiller:
    """Distills ``teacher`` into ``student`` (a lowbit.nn model, trained in place).

    Loss per batch (Hinton et al. 2015), averaged over the batch::

        alpha * T^2 * KL(p_teacher^T || softmax(student / T)) + (1 - alpha) * CE(student, y)
        + hint_weight * sum over hints of MSE(projection(student hidden), teacher hidden)

    Train with :meth:`fit` (data in memory or memory-mapped) or :meth:`fit_stream` (data and
    precomputed soft targets in chunks).

    Parameters
    ----------
    teacher : callable or list
        A lowbit model (float or with QuantizedLinear layers), any callable ``x -> logits`` (a
        torch model wrapped in a function, say), or a list of them, optionally as
        ``(teacher, weight)`` pairs: the softened distributions are averaged with those
        weights (normalized to sum 1).
    student : lowbit.nn.Layer
        The lowbit.nn model to train (Sequential/MLP), with trainable parameters.
    temperature : float, default 4.0
        T > 0 (stable up to T = 20 and logits of 1e4: log-sum-exp in float64).
    alpha : float, default 0.9
        The weight of the soft term, in [0, 1]; with alpha = 1 labels are optional (transfer
        on unlabeled data).
    hints : list of tuple of (int, int), optional
        (student_layer_index, teacher_layer_index) pairs (FitNets): the student's hidden
        activation ``hidden[i]`` (output of ``layers[i]``) passes through a learned linear
        projection (``self.projections``, created at the first fit) and is matched by MSE to
        the teacher's ``hidden[j]``. Hints need one teacher that is a lowbit.nn Sequential,
        and a student that is one.
    hint_weight : float or sequence of float, default 1.0
        The weight of the hint losses: a number, or one per pair; >= 0.
    teacher_weights : sequence of float, optional
        One weight per teacher, >= 0 and not all zero (overrides the weights of pairs).
    seed : int, default 0
        Seed of the hint projections' initialization, >= 0.

    Attributes
    ----------
    teachers : list of callable
        The teachers.
    teacher_weights : list of float
        Their weights, summing to 1.
    student : lowbit.nn.Layer
        The student, trained in place.
    temperature : float
        T.
    alpha : float
        The weight of the soft term.
    hints : list of tuple of (int, int)
        The hint pairs, as non-negative layer indices.
    hint_weights : list of float
        One weight per hint.
    projections : list of lowbit.nn.Linear
        The hint projections (empty before the first fit).

    Raises
    ------
    TypeError
        If a teacher is not callable, ``student`` is not a lowbit.nn model, a hint is not a
        pair of integers, or a number has the wrong type.
    ValueError
        If the teacher list is empty, the teacher weights are all zero or not one per teacher,
        ``student`` has no trainable parameters, a number is out of range, hints are given
        without a lowbit.nn Sequential teacher and student, a hint index is out of range, or
        ``hint_weight`` is not one per hint.
    """

    def __init__(self, teacher, student, *, temperature=4.0, alpha=0.9, hints=None, hint_weight=1.0,
                 teacher_weights=None, seed=0):
        self.teachers, self.teacher_weights = _normalize_teachers(teacher, teacher_weights)
        check_model(student, "student")
        self.student = student
        self.temperature = as_number(temperature, "temperature", 0.0, lo_open=True)
        self.alpha = as_number(alpha, "alpha", 0.0, 1.0)
        self.seed = as_seed(seed)
        self.hints = self._check_hints(hints)
        if isinstance(hint_weight, (list, tuple, np.ndarray)):
            hw = [as_number(w, f"hint_weight[{i}]", 0.0) for i, w in enumerate(hint_weight)]
            if len(hw) != len(self.hints):
                raise ValueError(f"hint_weight must be a number or one per hint ({len(self.hints)}), got {len(hw)}")
        else:
            hw = [as_number(hint_weight, "hint_weight", 0.0)] * len(self.hints)
        self.hint_weights = hw
        self.projections: list = []

    @property
    def teacher(self):
        """The teacher (the first one when several)."""
        return self.teachers[0]

    def _check_hints(self, hints) -> list:
        if hints is None:
            return []
        try:
            pairs = [tuple(p) for p in hints]
        except TypeError:
            raise TypeError("hints must be a list of (student_layer_index, teacher_layer_index) pairs") from None
        if not pairs:
            return []
        if len(self.teachers) != 1 or not isinstance(self.teachers[0], Sequential):
            raise ValueError("hints need exactly one teacher that is a lowbit.nn Sequential/MLP (its "
                             "hidden activations are matched)")
        if not isinstance(self.student, Sequential):
            raise ValueError("hints need a student that is a lowbit.nn Sequential/MLP")
        out = []
        ns, nt = len(self.student), len(self.teachers[0])
        for k, p in enumerate(pairs):
            if len(p) != 2 or not all(isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool) for v in p):
                raise TypeError(f"hints[{k}] must be a pair of integer layer indices, got {p!r}")
            s, t = int(p[0]), int(p[1])
            if not -ns <= s < ns:
                raise ValueError(f"hints[{k}]: student layer index {s} is out of range (the student has {ns} layers)")
            if not -nt <= t < nt:
                raise ValueError(f"hints[{k}]: teacher layer index {t} is out of range (the teacher has {nt} layers)")
            out.append((s % ns, t % nt))
        return out

    # --- teachers' soft targets -------------------------------------------------------------
    def _probs(self, xb, n_classes=None, *, hidden=False):
        """(p (float64, at T), log p or None, teacher hidden or None) for a batch."""
        T = self.temperature
        if hidden:
            z, th = self.teachers[0].forward(xb, return_hidden=True)
            z = _teacher_logits(lambda _: z, xb, 0, n_classes)
            lp = log_softmax(z.astype(np.float64) / T)
            return np.exp(lp), lp, th
        p, lp = teacher_probs_batch(self.teachers, self.teacher_weights, T, xb, n_classes)
        return p, lp, None

    def teacher_probs(self, x, *, batch_size: int = 4096) -> np.ndarray:
        """The teachers' softened distribution at the distillation temperature.

        The weighted average over teachers, computed in chunks of ``batch_size`` rows.

        Parameters
        ----------
        x : array_like of float, shape (n, features)
            The inputs, finite.
        batch_size : int, default 4096
            Rows per teacher call, >= 1.

        Returns
        -------
        numpy.ndarray
            float32 ``(n, classes)``.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point array or ``batch_size`` not an integer.
        ValueError
            If ``x`` is not 2-D or holds NaN/Inf, ``batch_size`` < 1, or a teacher returns
            something other than finite logits ``(rows, classes)``.
        """
        return self.soft_targets(x, batch_size=batch_size)

    def soft_targets(self, x, path=None, *, batch_size: int = 4096) -> np.ndarray:
        """Precompute the soft targets (teacher probabilities at T), so the teachers run once.

        They are computed in chunks of ``batch_size`` rows. With ``path``, they are streamed
        into a .npy file (never all in memory; ``x`` may be a np.memmap) and returned as a
        read-only memory map; pass the path or the array to ``fit(soft_targets=...)`` or use
        :func:`chunks_from_files` for :meth:`fit_stream`.

        Parameters
        ----------
        x : array_like of float, shape (n, features)
            The inputs (a numpy array or np.memmap of any float dtype), finite.
        path : str or os.PathLike, optional
            A .npy file to write the soft targets to (None: kept in memory).
        batch_size : int, default 4096
            Rows per teacher call, >= 1.

        Returns
        -------
        numpy.ndarray
            float32 ``(n, classes)``: an array, or a read-only memory map of ``path``.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point array or ``batch_size`` not an integer.
        ValueError
            If ``x`` is not 2-D or holds NaN/Inf, ``batch_size`` < 1, or a teacher returns
            something other than finite logits ``(rows, classes)``.
        """
        from lowbit._checks import as_int

        batch_size = as_int(batch_size, "batch_size", 1)
        xa = np.asarray(x) if isinstance(x, np.ndarray) else x
        if not isinstance(xa, np.ndarray):
            xa = as_float(x, "x")
        if xa.dtype.kind != "f":
            raise TypeError(f"x must be a floating-point array, got dtype {xa.dtype}")
        if xa.ndim != 2:
            raise ValueError(f"x must be 2-D (n, features), got shape {xa.shape}")
        n = xa.shape[0]
        out = None
        for s in range(0, max(n, 1), batch_size):
            xb = np.asarray(xa[s:s + batch_size], dtype=np.float32)
            if xb.shape[0] == 0 and n > 0:
                break
            _check_finite(xb, "x")
            p, _, _ = self._probs(xb)
            if out is None:
                c = p.shape[1]
                if path is not None:
                    out = np.lib.format.open_memmap(os.fspath(path), mode="w+", dtype=np.float32, shape=(n, c))
                else:
                    out = np.empty((n, c), np.float32)
            out[s:s + xb.shape[0]] = p
        if path is not None:
            out.flush()
            del out
            return np.load(os.fspath(path), mmap_mode="r", allow_pickle=False)
        return out

    # --- training -----------------------------------------------------------------------------
    def _ensure_projections(self, x1: np.ndarray) -> None:
        """Creates the hint projections (student width -> teacher width) from one forward."""
        if not self.hints or len(self.projections) == len(self.hints):
            return
        _, sh = self.student.forward(x1, return_hidden=True)
        _, th = self.teachers[0].forward(x1, return_hidden=True)
        self.projections = []
        for k, (si, ti) in enumerate(self.hints):
            a, b = np.asarray(sh[si]), np.asarray(th[ti])
            if a.ndim != 2 or b.ndim != 2:
                raise ValueError(f"hints[{k}]: hidden activations must be 2-D (batch, features)")
            self.projections.append(Linear(a.shape[1], b.shape[1], seed=sub_seed(self.seed, 100, k)))

    _HINT_CACHE_BYTES = 1 << 30

    def _hint_cache(self, x):
        """With hints and data in memory: the teacher's log-probabilities at T and the hidden
        activations the hints use, computed once in chunks (inference is deterministic), so the
        teacher does not run on every batch. None when x is memory-mapped or the cache would
        exceed 1 GiB (the teacher then runs per batch)."""
        if isinstance(x, np.memmap):
            return None
        t = self.teachers[0]
        x1 = np.asarray(x[:1], dtype=np.float32)
        z1, h1 = t.forward(x1, return_hidden=True)
        layers = sorted({ti for _, ti in self.hints})
        width = z1.shape[-1] + sum(np.asarray(h1[ti]).shape[-1] for ti in layers)
        if x.shape[0] * width * 8 > self._HINT_CACHE_BYTES:
            return None
        lps, hs = [], {ti: [] for ti in layers}
        for s in range(0, x.shape[0], 4096):
            xb = np.asarray(x[s:s + 4096], dtype=np.float32)
            z, h = t.forward(xb, return_hidden=True)
            z = _teacher_logits(lambda _: z, xb, 0, self.student.out_features)
            lps.append(log_softmax(z.astype(np.float64) / self.temperature))
            for ti in layers:
                hs[ti].append(np.array(h[ti], dtype=np.float32))
        return np.concatenate(lps), {ti: np.concatenate(v) for ti, v in hs.items()}

    def _trainables(self):
        params, grads = self.student.parameters(), self.student.gradients()
        for p in self.projections:
            params, grads = params + p.parameters(), grads + p.gradients()
        return params, grads

    def _step(self, xb, yb, pb, log_pb, th, drop_rng, n_classes, plogp=None):
        """One forward/backward of the student on a batch; returns History sums."""
        T, a = self.temperature, self.alpha
        z, sh = self.student.forward(xb, train=True, rng=drop_rng, return_hidden=True)
        if z.ndim != 2 or z.shape[1] != pb.shape[1]:
            raise ValueError(f"the student returns {z.shape[-1]} classes but the soft targets have {pb.shape[1]}")
        loss, soft, hard, g = _kd(z, pb, log_pb, yb, T, a, plogp)
        hidden_grads = {}
        hint_total = 0.0
        for (si, ti), proj, w in zip(self.hints, self.projections, self.hint_weights):
            ph = proj.forward(sh[si], train=True)
            lh, gh = mse_loss(ph, np.asarray(th[ti], ph.dtype))
            hint_total += w * lh
            d = proj.backward(gh * ph.dtype.type(w))
            hidden_grads[si] = d.copy() if si not in hidden_grads else hidden_grads[si] + d
        self.student.backward(g, need_input_grad=False, hidden_grads=hidden_grads or None)
        pred = z.argmax(axis=1)
        target = yb if yb is not None else pb.argmax(axis=1)
        nb = z.shape[0]
        out = {"loss": (loss + hint_total) * nb, "correct": float(np.sum(pred == target)), "count": nb,
               "soft_loss": soft * nb, "hard_loss": hard * nb}
        if self.hints:
            out["hint_loss"] = hint_total * nb
        return out

    def _prepare(self, x, y, validation_data, common):
        epochs, batch_size, lr, seed = check_common(**common)
        dtype = self.student.dtype
        x = as_float(x, "x", dtype) if not isinstance(x, np.memmap) else x
        if x.dtype.kind != "f":
            raise TypeError(f"x must be a floating-point array, got dtype {x.dtype}")
        if x.ndim != 2:
            raise ValueError(f"x must be 2-D (n, features), got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError("x must hold at least one row")
        n_in = self.student.in_features
        if n_in is not None and x.shape[1] != n_in:
            raise ValueError(f"x must have {n_in} columns (the student's in_features), got {x.shape[1]}")
        n_classes = self.student.out_features
        if y is None:
            if self.alpha < 1.0:
                raise ValueError("y (labels) is required when alpha < 1 (the hard loss has weight 1 - alpha)")
        else:
            y = as_labels(y, "y", x.shape[0], n_classes)
        val = check_validation(validation_data, dtype, x.shape[1], n_classes)
        return x, y, val, epochs, batch_size, lr, seed, n_classes

    def fit(self, x, y=None, *, epochs, batch_size=64, lr=1e-3, seed=0, progress=False, soft_targets=None,
            validation_data=None, early_stopping=None, min_delta=0.0, restore_best=True, optimizer="adam",
            weight_decay=0.0, momentum=0.9, schedule=None, min_lr=0.0, callback=None, threads=None,
            resume=None) -> History:
        """Train the student (in place) on data in memory or memory-mapped.

        The History holds soft_loss, hard_loss and, with hints, hint_loss per epoch besides
        loss/accuracy/val_*. ``accuracy`` counts agreement with ``y``, or with the teacher's
        top class when y is None. The arguments after ``soft_targets`` are those of
        :func:`lowbit.nn.fit`; the validation loss is the student's cross-entropy on the hard
        labels.

        Parameters
        ----------
        x : array_like of float, shape (n, features)
            The inputs (an array or a np.memmap, read batch by batch), at least one row,
            finite.
        y : array_like of int, shape (n,), optional
            The class labels; needed unless ``alpha == 1``.
        epochs : int
            Passes over the data, >= 0.
        batch_size : int, default 64
            Rows per mini-batch (the last of an epoch may be smaller), >= 1.
        lr : float, default 1e-3
            The base learning rate, >= 0.
        seed : int, default 0
            Seed of the shuffling and the dropout masks (the run is deterministic for it), >= 0.
        progress : bool, default False
            Show a progress bar.
        soft_targets : array_like or str or os.PathLike, optional
            Precomputed teacher probabilities at T (from :meth:`soft_targets`): an array, a
            np.memmap, or the path of a .npy file (memory-mapped, read batch by batch). When
            omitted, the teachers run once over ``x`` before training (their inference output
            is deterministic); with hints, the hinted hidden activations are kept from that
            pass too (up to 1 GiB; beyond that, or for a memory-mapped ``x``, the teacher runs
            per batch). Not with hints.
        validation_data : tuple of (array_like, array_like), optional
            ``(x_val, y_val)``: records val_loss/val_accuracy per epoch, the student's
            cross-entropy on the hard labels (inference mode).
        early_stopping : int, optional
            Stop after this many epochs without a val_loss improvement of more than
            ``min_delta`` (needs ``validation_data``).
        min_delta : float, default 0.0
            The smallest val_loss decrease that counts as an improvement.
        restore_best : bool, default True
            With early stopping, put back the weights of the best epoch.
        optimizer : {"adam", "adamw", "sgd"} or lowbit.nn.Optimizer, default "adam"
            As in :func:`lowbit.nn.fit` ("adam": ``weight_decay`` decoupled; "sgd": with
            ``momentum``, ``weight_decay`` is L2).
        weight_decay : float, default 0.0
            Weight decay, >= 0.
        momentum : float, default 0.9
            SGD's momentum, in [0, 1).
        schedule : {None, "constant", "cosine"}, default None
            "cosine" decays the rate per step from ``lr`` to ``min_lr`` over the run.
        min_lr : float, default 0.0
            The final rate of the cosine schedule.
        callback : callable, optional
            ``callback(epoch, history)`` runs after each epoch; returning True stops training.
        threads : int, optional
            Limit numpy's BLAS to this many threads while training (None leaves it alone).
        resume : lowbit.nn.History, optional
            The History of an interrupted run of this distiller, to continue it exactly (as
            :func:`lowbit.nn.fit`'s ``resume``: pass the run's saved student, optimizer and
            History, with the other arguments of the first call).

        Returns
        -------
        lowbit.nn.History
            The per-epoch record of the run.

        Raises
        ------
        TypeError
            If an argument has the wrong type (e.g. non-float data, non-integer labels).
        ValueError
            If an argument is out of range, shapes do not match the student, data holds NaN/Inf,
            labels are missing while ``alpha < 1``, soft targets are not probabilities,
            ``early_stopping`` is given without ``validation_data``, or ``soft_targets`` are
            given with hints.
        """
        common = dict(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, schedule=schedule,
                      progress=progress)
        x, y, val, epochs, batch_size, lr, seed, n_classes = self._prepare(x, y, validation_data, common)
        n = x.shape[0]
        if not isinstance(x, np.memmap):
            _check_finite(x, "x")
        cached = None
        if soft_targets is not None:
            if self.hints:
                raise ValueError("hints need the teacher's hidden activations on every batch; they cannot "
                                 "be used with precomputed soft_targets")
            if isinstance(soft_targets, (str, os.PathLike)):
                soft_targets = np.load(os.fspath(soft_targets), mmap_mode="r", allow_pickle=False)
            if not isinstance(soft_targets, np.ndarray):
                soft_targets = as_float(soft_targets, "soft_targets")
            if soft_targets.ndim != 2 or soft_targets.shape[0] != n:
                raise ValueError(f"soft_targets must have shape ({n}, classes) (one row per row of x), "
                                 f"got {soft_targets.shape}")
            if n_classes is not None and soft_targets.shape[1] != n_classes:
                raise ValueError(f"soft_targets have {soft_targets.shape[1]} classes but the student has {n_classes}")
            soft = soft_targets
        elif not self.hints:
            soft = self.soft_targets(x)
            if n_classes is not None and soft.shape[1] != n_classes:
                raise ValueError(f"the teacher returns {soft.shape[1]} classes but the student has {n_classes}")
        else:
            soft = None
            self._ensure_projections(np.asarray(x[:1], dtype=np.float32))
            cached = self._hint_cache(x)
        if soft is not None and not isinstance(soft, np.memmap):  # in memory: check once
            soft = check_probs(soft, "soft_targets", soft.shape)
            plogp = _teacher_terms(soft, None)
        elif cached is not None:
            soft, plogp = np.exp(cached[0]), _teacher_terms(np.exp(cached[0]), cached[0])
        opt = make_optimizer(optimizer, lr, weight_decay=as_number(weight_decay, "weight_decay", 0.0),
                             momentum=as_number(momentum, "momentum", 0.0, 1.0, hi_open=True))
        shuffle_rng = np.random.default_rng(sub_seed(seed, 0))
        drop_rng = np.random.default_rng(sub_seed(seed, 1))
        dtype = self.student.dtype

        def batches(epoch):
            for idx in shuffled_batches(n, batch_size, shuffle_rng):
                yield (idx,)

        lazy = isinstance(x, np.memmap) or isinstance(soft, np.memmap)

        def step(idx):
            if lazy:  # memory maps are read fastest in increasing row order
                idx = np.sort(idx)
            xb = np.asarray(x[idx], dtype=dtype)
            if isinstance(x, np.memmap):
                _check_finite(xb, "x")
            yb = None if y is None else y[idx]
            if soft is None:  # hints without a cache: the teacher runs on the batch
                pb, lpb, th = self._probs(xb, n_classes, hidden=True)
                return self._step(xb, yb, pb, lpb, th, drop_rng, n_classes)
            if isinstance(soft, np.memmap):  # checked batch by batch
                pb = check_probs(soft[idx], "soft_targets", (len(idx), soft.shape[1]))
                return self._step(xb, yb, pb, None, None, drop_rng, n_classes)
            th = None if cached is None else {ti: h[idx] for ti, h in cached[1].items()}
            return self._step(xb, yb, soft[idx], None, th, drop_rng, n_classes, plogp[idx])

        steps_per_epoch = -(-n // batch_size)
        rngs = {"shuffle": shuffle_rng, "dropout": drop_rng}
        history = History() if resume is None else check_resume(resume, opt, steps_per_epoch, rngs,
                                                                self._trainables()[0])
        validate = None if val is None else (lambda: evaluate(self.student, val[0], val[1]))
        return run_epochs(history, epochs=epochs, batches=batches, step=step, trainables=self._trainables,
                          optimizer=opt, lr=lr, schedule=schedule, min_lr=as_number(min_lr, "min_lr", 0.0),
                          total_steps=epochs * (-(-n // batch_size)), validate=validate,
                          early_stopping=early_stopping, min_delta=as_number(min_delta, "min_delta", 0.0),
                          restore_best=bool(restore_best), progress=bool(progress), desc="distill",
                          callback=callback, threads=threads, rngs=rngs, resume=resume is not None)

    def fit_stream(self, chunks, *, epochs, batch_size=64, lr=1e-3, seed=0, progress=False, n_samples=None,
                   validation_data=None, early_stopping=None, min_delta=0.0, restore_best=True,
                   optimizer="adam", weight_decay=0.0, momentum=0.9, schedule=None, min_lr=0.0,
                   callback=None, threads=None) -> History:
        """Train the student from data and precomputed soft targets that arrive in chunks.

        For example files larger than memory (see :func:`chunks_from_files`) or a teacher run
        elsewhere. Rows are shuffled within each chunk; a batch never spans two chunks. Hints
        are not available (they need the teacher's hidden activations). The other arguments are
        those of :meth:`fit`.

        Parameters
        ----------
        chunks : callable or list of tuple
            A callable returning an iterable of ``(x_chunk, y_chunk, soft_chunk)`` (called once
            per epoch; y_chunk may be None when alpha == 1), or a list of such tuples (visited
            in a shuffled order each epoch).
        epochs : int
            Passes over the data, >= 0.
        batch_size : int, default 64
            Rows per mini-batch (the last of an epoch may be smaller), >= 1.
        lr : float, default 1e-3
            The base learning rate, >= 0.
        seed : int, default 0
            Seed of the shuffling and the dropout masks (the run is deterministic for it), >= 0.
        progress : bool, default False
            Show a progress bar.
        n_samples : int, optional
            Rows per epoch: sets the length of the cosine schedule; when it is omitted and
            ``schedule="cosine"``, the chunks are iterated once to count the rows.
        validation_data : tuple of (array_like, array_like), optional
            ``(x_val, y_val)``: records val_loss/val_accuracy per epoch, the student's
            cross-entropy on the hard labels (inference mode).
        early_stopping : int, optional
            Stop after this many epochs without a val_loss improvement of more than
            ``min_delta`` (needs ``validation_data``).
        min_delta : float, default 0.0
            The smallest val_loss decrease that counts as an improvement.
        restore_best : bool, default True
            With early stopping, put back the weights of the best epoch.
        optimizer : {"adam", "adamw", "sgd"} or lowbit.nn.Optimizer, default "adam"
            As in :func:`lowbit.nn.fit` ("adam": ``weight_decay`` decoupled; "sgd": with
            ``momentum``, ``weight_decay`` is L2).
        weight_decay : float, default 0.0
            Weight decay, >= 0.
        momentum : float, default 0.9
            SGD's momentum, in [0, 1).
        schedule : {None, "constant", "cosine"}, default None
            "cosine" decays the rate per step from ``lr`` to ``min_lr`` over the run.
        min_lr : float, default 0.0
            The final rate of the cosine schedule.
        callback : callable, optional
            ``callback(epoch, history)`` runs after each epoch; returning True stops training.
        threads : int, optional
            Limit numpy's BLAS to this many threads while training (None leaves it alone).

        Returns
        -------
        lowbit.nn.History
            The per-epoch record of the run.

        Raises
        ------
        TypeError
            If an argument has the wrong type (e.g. non-float data, non-integer labels).
        ValueError
            If an argument is out of range, shapes do not match the student, data holds NaN/Inf,
            labels are missing while ``alpha < 1``, soft targets are not probabilities,
            ``early_stopping`` is given without ``validation_data``, or the distiller has
            hints.
        """
        if self.hints:
            raise ValueError("hints need the teacher's hidden activations; fit_stream only has soft targets")
        epochs, batch_size, lr, seed = check_common(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                                    schedule=schedule, progress=progress)
        if callable(chunks):
            source = chunks
        else:
            try:
                chunk_list = list(chunks)
            except TypeError:
                raise TypeError("chunks must be a callable returning an iterable of (x, y, soft_targets) "
                                "chunks, or a list of such tuples") from None
            source = None
        dtype = self.student.dtype
        n_in, n_classes = self.student.in_features, self.student.out_features
        val = check_validation(validation_data, dtype, n_in, n_classes)
        shuffle_rng = np.random.default_rng(sub_seed(seed, 0))
        drop_rng = np.random.default_rng(sub_seed(seed, 1))

        def epoch_chunks():
            if source is not None:
                yield from source()
            else:
                for i in shuffle_rng.permutation(len(chunk_list)):
                    yield chunk_list[i]

        def check_chunk(k, ch):
            try:
                xc, yc, pc = ch
            except (TypeError, ValueError):
                raise TypeError(f"chunk {k} must be a tuple (x, y, soft_targets)") from None
            xc = as_float(xc, f"chunk {k} x", dtype)
            if xc.ndim != 2 or (n_in is not None and xc.shape[1] != n_in):
                raise ValueError(f"chunk {k} x must have shape (rows, {n_in}), got {xc.shape}")
            _check_finite(xc, f"chunk {k} x")
            if yc is None:
                if self.alpha < 1.0:
                    raise ValueError(f"chunk {k} has no labels, which alpha < 1 needs")
            else:
                yc = as_labels(yc, f"chunk {k} y", xc.shape[0], n_classes)
            pc = check_probs(pc, f"chunk {k} soft_targets", (xc.shape[0], n_classes or np.shape(pc)[-1]))
            return xc, yc, pc

        if n_samples is None and schedule == "cosine":
            n_samples = sum(len(ch[0]) for ch in epoch_chunks())
        from lowbit._checks import as_int

        steps = epochs * (-(-as_int(n_samples, "n_samples", 1) // batch_size)) if n_samples is not None else 1

        def batches(epoch):
            for k, ch in enumerate(epoch_chunks()):
                xc, yc, pc = check_chunk(k, ch)
                for idx in shuffled_batches(xc.shape[0], batch_size, shuffle_rng):
                    yield (xc[idx], None if yc is None else yc[idx], pc[idx])

        def step(xb, yb, pb):
            return self._step(xb, yb, pb, None, None, drop_rng, n_classes)

        opt = make_optimizer(optimizer, lr, weight_decay=as_number(weight_decay, "weight_decay", 0.0),
                             momentum=as_number(momentum, "momentum", 0.0, 1.0, hi_open=True))
        validate = None if val is None else (lambda: evaluate(self.student, val[0], val[1]))
        return run_epochs(History(), epochs=epochs, batches=batches, step=step, trainables=self._trainables,
                          optimizer=opt, lr=lr, schedule=schedule, min_lr=as_number(min_lr, "min_lr", 0.0),
                          total_steps=steps, validate=validate, early_stopping=early_stopping,
                          min_delta=as_number(min_delta, "min_delta", 0.0), restore_best=bool(restore_best),
                          progress=bool(progress), desc="distill", callback=callback, threads=threads)

    def __repr__(self) -> str:
        return (f"Distiller(teachers={len(self.teachers)}, temperature={self.temperature}, alpha={self.alpha}, "
                f"hints={self.hints})")


def chunks_from_files(x_path, soft_path, y_path=None, *, chunk_size: int = 65536):
    """A ``chunks`` callable for :meth:`Distiller.fit_stream` reading .npy files.

    The files are read through memory maps, ``chunk_size`` rows at a time: only one chunk is in
    memory. Files are opened with allow_pickle=False.

    Parameters
    ----------
    x_path : str or os.PathLike
        The inputs, ``(n, features)``.
    soft_path : str or os.PathLike
        The soft targets, ``(n, classes)`` (e.g. from :meth:`Distiller.soft_targets`).
    y_path : str or os.PathLike, optional
        The labels, ``(n,)`` (None: no labels).
    chunk_size : int, default 65536
        Rows per chunk, >= 1.

    Returns
    -------
    callable
        A function returning a generator of ``(x_chunk, y_chunk or None, soft_chunk)``
        tuples; it raises ValueError when the files hold different numbers of rows.

    Raises
    ------
    TypeError
        If ``chunk_size`` is not an integer or a path is not a str or os.PathLike.
    ValueError
        If ``chunk_size`` < 1.
    """
    from lowbit._checks import as_int

    chunk_size = as_int(chunk_size, "chunk_size", 1)
    paths = [os.fspath(p) if p is not None else None for p in (x_path, soft_path, y_path)]

    def gen():
        x = np.load(paths[0], mmap_mode="r", allow_pickle=False)
        p = np.load(paths[1], mmap_mode="r", allow_pickle=False)
        y = None if paths[2] is None else np.load(paths[2], mmap_mode="r", allow_pickle=False)
        if p.shape[0] != x.shape[0] or (y is not None and y.shape[0] != x.shape[0]):
            raise ValueError(f"the files hold different numbers of rows: x {x.shape[0]}, soft targets "
                             f"{p.shape[0]}" + ("" if y is None else f", labels {y.shape[0]}"))
        for s in range(0, x.shape[0], chunk_size):
            yield (np.array(x[s:s + chunk_size]), None if y is None else np.array(y[s:s + chunk_size]),
                   np.array(p[s:s + chunk_size]))

    return gen
