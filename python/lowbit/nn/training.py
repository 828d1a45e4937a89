"""Training loops: History, lowbit.nn.fit (hard labels), and the epoch engine lowbit.distill reuses."""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from .. import io as _io
from ._util import as_float, as_labels, as_number, as_seed, sub_seed
from .functional import _cross_entropy
from .layers import Layer
from .optim import SCHEDULES, make_optimizer, learning_rate

__all__ = ["History", "fit", "evaluate"]


class History:
    """Per-epoch training record, returned by :func:`lowbit.nn.fit` and the Distiller.

    Lists (one entry per epoch run): ``loss`` and ``accuracy`` (mean over the epoch's training
    batches, in training mode, i.e. with dropout), ``val_loss`` and ``val_accuracy`` (when
    validation data is given; cross-entropy on the hard labels, inference mode), ``lr`` (the rate
    at the epoch's last step), ``time`` (seconds). Distillation adds ``soft_loss``, ``hard_loss``
    and ``hint_loss``. ``best_epoch`` is the 0-based epoch of the lowest ``val_loss`` (None
    without validation); ``stopped_early`` tells whether early stopping ended the run.

    A History also keeps what ``fit(..., resume=history)`` needs to continue its run exactly
    after its last epoch: the step count, the states of the shuffling and dropout generators and
    the early-stopping counters (and best weights, with ``restore_best``). Save it with
    ``lowbit.save`` next to the model and the optimizer (e.g. from a ``callback``) to checkpoint a
    run.
    """

    # (The per-epoch lists, declared for the docs; __init__ makes them.)
    #: Mean training loss of each epoch, over its training batches, in training mode (with
    #: dropout).
    loss: list[float]
    #: Mean training accuracy of each epoch, over its training batches, in training mode.
    accuracy: list[float]
    #: Validation loss of each epoch: cross-entropy on the hard labels, in inference mode
    #: (empty without validation data).
    val_loss: list[float]
    #: Validation accuracy of each epoch, in inference mode (empty without validation data).
    val_accuracy: list[float]
    #: The learning rate at each epoch's last step.
    lr: list[float]
    #: The seconds each epoch took.
    time: list[float]

    _KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")

    def __init__(self):
        for k in self._KEYS:
            setattr(self, k, [])
        #: The 0-based epoch of the lowest ``val_loss`` (None without validation).
        self.best_epoch: int | None = None
        #: Whether early stopping ended the run.
        self.stopped_early = False
        self._loop: dict | None = None  # the training loop's state after the last epoch (resume)

    def _copy(self) -> "History":
        new = History.__new__(History)
        new.__dict__ = {k: (list(v) if isinstance(v, list) else v) for k, v in vars(self).items()}
        loop = getattr(self, "_loop", None)
        if loop is not None and loop.get("best_weights") is not None:
            new._loop = dict(loop, best_weights=[w.copy() for w in loop["best_weights"]])
        return new

    @property
    def epochs(self) -> int:
        """The number of epochs recorded (the length of ``loss``)."""
        return len(self.loss)

    def as_dict(self) -> dict:
        """The per-epoch records as a dict.

        Returns
        -------
        dict
            Every non-empty per-epoch list (a copy), by name.
        """
        return {k: list(v) for k, v in vars(self).items() if isinstance(v, list) and v}

    def plot(self, path, *, title: str | None = None) -> None:
        """Write a PNG with the loss curves (left) and accuracy curves (right).

        Needs matplotlib (an optional dependency). A dotted line marks ``best_epoch``.

        Parameters
        ----------
        path : str or path-like or file-like
            Where to write the PNG.
        title : str, optional
            A title above the plots.

        Raises
        ------
        ImportError
            If matplotlib is missing (the message says how to install it).
        ValueError
            If the History is empty (no epoch recorded).
        """
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("History.plot needs matplotlib, an optional dependency of lowbit: "
                              "pip install matplotlib") from None
        if self.epochs == 0:
            raise ValueError("this History is empty: nothing to plot (train for at least one epoch)")
        fig = Figure(figsize=(10, 4))
        ax1, ax2 = fig.subplots(1, 2)
        ep = np.arange(1, self.epochs + 1)
        for key, ax in (("loss", ax1), ("val_loss", ax1), ("soft_loss", ax1), ("hard_loss", ax1),
                        ("hint_loss", ax1), ("accuracy", ax2), ("val_accuracy", ax2)):
            v = getattr(self, key, None)
            if v:
                ax.plot(ep[:len(v)], v, label=key)
        if self.best_epoch is not None:
            for ax in (ax1, ax2):
                ax.axvline(self.best_epoch + 1, color="gray", linestyle=":", linewidth=1)
        ax1.set_xlabel("epoch"), ax1.set_ylabel("loss"), ax1.legend()
        ax2.set_xlabel("epoch"), ax2.set_ylabel("accuracy"), ax2.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, format="png")

    def __repr__(self) -> str:
        if not self.epochs:
            return "History(epochs=0)"
        s = f"History(epochs={self.epochs}, loss={self.loss[-1]:.4f}, accuracy={self.accuracy[-1]:.4f}"
        if self.val_loss:
            s += f", val_loss={self.val_loss[-1]:.4f}, val_accuracy={self.val_accuracy[-1]:.4f}"
        return s + ")"


class _Progress:
    """A progress bar over epochs: tqdm when installed, else one line per epoch on stderr."""

    def __init__(self, enabled: bool, total: int, desc: str, initial: int = 0):
        self.enabled, self.total, self.desc = enabled, total, desc
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=total, initial=min(initial, total), desc=desc, unit="epoch", leave=True)
            except ImportError:
                self.bar = None

    def update(self, epoch: int, metrics: dict) -> None:
        if not self.enabled:
            return
        txt = {k: f"{v:.4f}" for k, v in metrics.items() if v is not None}
        if self.bar is not None:
            self.bar.set_postfix(txt, refresh=False)
            self.bar.update(1)
        else:
            fields = " ".join(f"{k}={v}" for k, v in txt.items())
            print(f"{self.desc} epoch {epoch + 1}/{self.total} {fields}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_model(model, name: str = "model") -> None:
    if not isinstance(model, Layer):
        hint = ("; it is inference-only (e.g. from lowbit.load_model): lowbit.nn.trainable(model) "
                "gives a trainable copy" if hasattr(model, "layers") else "")
        raise TypeError(f"{name} must be a lowbit.nn model (Sequential/MLP or another lowbit.nn.Layer) "
                        f"to be trained, got {type(model).__name__}{hint}")
    if not model.parameters():
        raise ValueError(f"{name} has no trainable parameters")


def check_resume(resume, optimizer, steps_per_epoch: int, rng_names, params) -> History:
    """A copy of ``resume`` (the History of an interrupted run) checked to be continuable by this
    call: same number of steps per epoch, the run's optimizer (same step count), its generators."""
    if not isinstance(resume, History):
        raise TypeError(f"resume must be the History of the run to continue, got {type(resume).__name__}")
    loop = getattr(resume, "_loop", None)
    if loop is None:
        raise ValueError("resume: this History holds no training state to resume from (it ran no epoch, "
                         "or was not made by lowbit.nn.fit)")
    if resume.stopped_early:
        raise ValueError("resume: that run ended by early stopping (its best weights were put back): "
                         "there is nothing to continue")
    if set(loop["rngs"]) != set(rng_names):
        raise ValueError(f"resume: this History was made by another training loop (generators "
                         f"{sorted(loop['rngs'])}, this one uses {sorted(rng_names)})")
    if loop["step"] != resume.epochs * steps_per_epoch:
        raise ValueError(f"resume: the run took {loop['step']} steps in {resume.epochs} epochs, but x and "
                         f"batch_size give {steps_per_epoch} steps per epoch: pass the same data and batch_size")
    if optimizer.t != loop["step"]:
        raise ValueError(f"resume: the optimizer has taken {optimizer.t} steps, the run {loop['step']}: pass "
                         "the run's Optimizer instance as saved with it (lowbit.save), not a new one")
    bw = loop["best_weights"]
    if bw is not None and [(w.shape, w.dtype) for w in bw] != [(p.shape, p.dtype) for p in params]:
        raise ValueError("resume: the History's best weights do not fit the model's parameters")
    return resume._copy()


def check_common(*, epochs, batch_size, lr, seed, schedule, progress):
    """Validated (epochs, batch_size, lr, seed) for fit-like functions."""
    from lowbit._checks import as_int

    epochs = as_int(epochs, "epochs", 0)
    batch_size = as_int(batch_size, "batch_size", 1)
    lr = as_number(lr, "lr", 0.0)
    seed = as_seed(seed)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be None, 'constant' or 'cosine', got {schedule!r}")
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True or False, got {type(progress).__name__}")
    return epochs, batch_size, lr, seed


def check_validation(validation_data, dtype, n_features, n_classes):
    if validation_data is None:
        return None
    try:
        xv, yv = validation_data
    except (TypeError, ValueError):
        raise TypeError("validation_data must be a pair (x_val, y_val)") from None
    xv = as_float(xv, "validation_data[0]", dtype)
    if xv.ndim != 2 or (n_features is not None and xv.shape[1] != n_features):
        raise ValueError(f"validation_data[0] must have shape (n, {n_features}), got {xv.shape}")
    _check_finite(xv, "validation_data[0]")
    yv = as_labels(yv, "validation_data[1]", xv.shape[0], n_classes)
    return xv, yv


def _check_finite(a, name):
    from lowbit._checks import check_finite

    check_finite(a, name)


def evaluate(model, x, y, *, batch_size: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a classifier on labelled data, in inference mode.

    Parameters
    ----------
    model : callable
        Any callable ``x -> logits`` of shape ``(batch, classes)``.
    x : array_like of float, shape (n, features)
        The inputs (converted to float32).
    y : array_like of int, shape (n,)
        The class labels.
    batch_size : int, default 1024
        The model is called on chunks of this many rows.

    Returns
    -------
    loss : float
        The mean cross-entropy.
    accuracy : float
        The fraction of rows whose largest logit is at the label.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point array or ``y`` not an integer array.
    ValueError
        If ``y`` does not have one label per row, the model does not return 2-D logits, or a
        label is not smaller than the number of logits.
    """
    x = as_float(x, "x", np.float32)
    y = as_labels(y, "y", x.shape[0])
    loss = correct = 0.0
    for s in range(0, x.shape[0], batch_size):
        z = np.asarray(model(x[s:s + batch_size]))
        if z.ndim != 2:
            raise ValueError(f"the model must return 2-D logits (batch, classes), got shape {z.shape}")
        yb = y[s:s + batch_size]
        if yb.size and yb.max() >= z.shape[1]:
            raise ValueError(f"y holds label {int(yb.max())} but the model has {z.shape[1]} outputs")
        l, _ = _cross_entropy(z, yb)
        loss += l * len(yb)
        correct += float(np.sum(z.argmax(axis=1) == yb))
    n = max(x.shape[0], 1)
    return loss / n, correct / n


def blas_threads(threads):
    """A context limiting numpy's BLAS to ``threads`` threads (threadpoolctl), or a no-op for None.

    Small training matrices gain little from several BLAS threads, and on a busy machine spinning
    BLAS threads can make training many times slower; ``fit(..., threads=1)`` avoids that. Without
    threadpoolctl the setting is ignored with a warning."""
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    from lowbit._checks import as_int

    threads = as_int(threads, "threads", 1, 1024)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import warnings

        warnings.warn("threads= needs threadpoolctl (pip install threadpoolctl); numpy's BLAS keeps "
                      "its thread count", RuntimeWarning, stacklevel=3)
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def run_epochs(history: History, *, threads=None, **kw) -> History:
    """The epoch loop shared by fit and Distiller.fit (see _run_epochs), with numpy's BLAS limited
    to ``threads`` threads when given. With ``resume=True`` it continues ``history`` (checked by
    check_resume) from its saved loop state; ``rngs`` ({name: numpy Generator}) are the generators
    the training draws from, whose states every epoch records in ``history`` for that."""
    with blas_threads(threads):
        return _run_epochs(history, **kw)


def _run_epochs(history: History, *, epochs: int, batches, step, trainables, optimizer, lr: float,
                schedule, min_lr: float, total_steps: int, validate=None, early_stopping=None,
                min_delta: float = 0.0, restore_best: bool = True, progress: bool = False,
                desc: str = "fit", callback=None, rngs=None, resume: bool = False) -> History:
    """batches(epoch) yields the arguments of one training step; step(*args) runs forward and
    backward and returns a dict with "loss" (sum over the batch), "correct" and "count" (and other
    sums to average into History); trainables() returns (params, grads) for the optimizer;
    validate() returns (val_loss, val_accuracy).
    """
    if early_stopping is not None:
        from lowbit._checks import as_int

        early_stopping = as_int(early_stopping, "early_stopping", 1)
        if validate is None:
            raise ValueError("early_stopping needs validation_data (it watches the validation loss)")
    best = math.inf
    best_weights = None
    wait = 0
    t_step = 0
    rngs = dict(rngs or {})
    start = 0
    if resume:  # continue the loop where history's last epoch left it
        loop = history._loop
        start, t_step, best, wait = history.epochs, loop["step"], loop["best"], loop["wait"]
        best_weights = loop["best_weights"]
        for name, g in rngs.items():
            g.bit_generator.state = loop["rngs"][name]
    bar = _Progress(progress, epochs, desc, initial=start)
    try:
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            sums: dict = {}
            cur = lr
            for args in batches(epoch):
                cur = learning_rate(lr, schedule, t_step, total_steps, min_lr=min_lr)
                out = step(*args)
                params, grads = trainables()
                optimizer.step(params, grads, lr=cur)
                t_step += 1
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v
            count = max(sums.get("count", 0.0), 1.0)
            mean_loss = sums.get("loss", 0.0) / count
            if not math.isfinite(mean_loss):
                raise ValueError(f"training diverged: the loss is {mean_loss} at epoch {epoch + 1}; "
                                 f"lower lr (now {lr}) or check the inputs")
            history.loss.append(mean_loss)
            history.accuracy.append(sums.get("correct", 0.0) / count)
            for k, v in sums.items():
                if k not in ("loss", "correct", "count"):
                    if not hasattr(history, k):
                        setattr(history, k, [])
                    getattr(history, k).append(v / count)
            history.lr.append(cur)
            metrics = {"loss": mean_loss, "acc": history.accuracy[-1]}
            stop = False
            if validate is not None:
                vl, va = validate()
                history.val_loss.append(vl)
                history.val_accuracy.append(va)
                metrics.update(val_loss=vl, val_acc=va)
                if vl < best - min_delta:
                    best, wait = vl, 0
                    history.best_epoch = epoch
                    if restore_best and early_stopping is not None:
                        best_weights = [p.copy() for p in trainables()[0]]
                else:
                    wait += 1
                    if early_stopping is not None and wait >= early_stopping:
                        stop = True
                        history.stopped_early = True
            history.time.append(time.perf_counter() - t0)
            history._loop = {"step": t_step, "rngs": {k: g.bit_generator.state for k, g in rngs.items()},
                             "best": best, "wait": wait, "best_weights": best_weights}
            bar.update(epoch, metrics)
            if callback is not None and callback(epoch, history):
                stop = True
            if stop:
                break
    finally:
        bar.close()
    if best_weights is not None and history.stopped_early:
        for p, w in zip(trainables()[0], best_weights):
            np.copyto(p, w)
    return history


def shuffled_batches(n: int, batch_size: int, rng: np.random.Generator, shuffle: bool = True):
    """Index arrays of one epoch's mini-batches (the last one may be smaller)."""
    order = rng.permutation(n) if shuffle else np.arange(n)
    return [order[s:s + batch_size] for s in range(0, n, batch_size)]


def fit(model, x, y, *, epochs, batch_size=64, lr=1e-3, seed=0, progress=False,
        optimizer="adam", weight_decay=0.0, momentum=0.9, schedule=None, min_lr=0.0,
        validation_data=None, early_stopping=None, min_delta=0.0, restore_best=True,
        shuffle=True, callback=None, threads=None, resume=None) -> History:
    """Train a lowbit.nn model in place on hard labels with softmax cross-entropy.

    Shuffled mini-batches of ``batch_size`` rows (the last may be smaller), ``epochs`` passes.
    Deterministic for a given ``seed`` (shuffling and dropout masks derive from it).

    Parameters
    ----------
    model : lowbit.nn.Sequential
        The model (a Sequential/MLP, or another lowbit.nn layer with parameters), trained in
        place.
    x : array_like of float, shape (n, features)
        The inputs (converted to the model's dtype), finite, at least one row.
    y : array_like of int, shape (n,)
        The class labels, each in ``0..out_features-1`` of the model.
    epochs : int
        Passes over the data, >= 0 (with ``resume``: of the whole run).
    batch_size : int, default 64
        Rows per mini-batch, >= 1.
    lr : float, default 1e-3
        The base learning rate, >= 0.
    seed : int, default 0
        Seed of the shuffling and the dropout masks, >= 0.
    progress : bool, default False
        Show a progress bar over epochs (tqdm when installed, else one line per epoch on
        stderr).
    optimizer : {"adam", "adamw", "sgd"} or lowbit.nn.Optimizer, default "adam"
        "adam" (``weight_decay`` is decoupled, AdamW; "adamw" is the same), "sgd" (with
        ``momentum``; ``weight_decay`` is L2) or an Optimizer instance, used with its own
        settings (each step's learning rate still comes from ``lr`` and ``schedule``).
    weight_decay : float, default 0.0
        Weight decay of a named optimizer, >= 0.
    momentum : float, default 0.9
        Momentum of "sgd", in [0, 1).
    schedule : {None, "constant", "cosine"}, default None
        "cosine" decays the rate per step from ``lr`` to ``min_lr`` over the run (see
        :func:`lowbit.nn.learning_rate`); None and "constant" keep ``lr``.
    min_lr : float, default 0.0
        The rate cosine decay ends at, >= 0.
    validation_data : tuple, optional
        ``(x_val, y_val)``: records ``val_loss``/``val_accuracy`` per epoch.
    early_stopping : int, optional
        Stop after this many epochs (>= 1) without a ``val_loss`` improvement of more than
        ``min_delta``; needs ``validation_data``.
    min_delta : float, default 0.0
        The improvement early stopping asks for, >= 0.
    restore_best : bool, default True
        When early stopping ends the run, put back the weights of the best epoch.
    shuffle : bool, default True
        Shuffle the rows every epoch (False: batches in order).
    callback : callable, optional
        ``callback(epoch, history)`` runs after each epoch; returning True stops training.
    threads : int, optional
        Limit numpy's BLAS to this many threads (1..1024) while training (threadpoolctl;
        without it the setting is ignored with a RuntimeWarning); None leaves it alone. One
        thread is usually fastest for small models.
    resume : History, optional
        The History of an interrupted run, to continue it (see the notes).

    Returns
    -------
    History
        The run's record: a new History (``resume`` is not modified).

    Raises
    ------
    TypeError
        If ``model`` is not a lowbit.nn model, ``x`` is not a floating-point array, ``y`` not
        an integer array, ``validation_data`` not a pair, ``resume`` not a History, or another
        argument has the wrong type.
    ValueError
        If ``model`` has no parameters, ``x`` is not a finite non-empty 2-D array of the
        model's width, a label is out of range, a setting is out of range or unknown,
        ``early_stopping`` is given without ``validation_data``, ``resume`` cannot be
        continued by this call, or training diverged (the loss is not finite).

    Notes
    -----
    Checkpoint a run by saving the model, the Optimizer instance it trains with and the
    History together, e.g. from the callback:
    ``lowbit.save({"model": model, "optimizer": opt, "history": history}, path)``; then
    ``ck = lowbit.load(path)`` and ``fit(ck["model"], x, y, optimizer=ck["optimizer"],
    resume=ck["history"], ...)`` with the other arguments of the first call (``epochs`` counts
    the whole run: the epochs in the history are not run again). The run ends exactly as the
    uninterrupted one would have: same weights, History, shuffling, dropout masks, learning
    rates and early stopping.
    """
    check_model(model)
    epochs, batch_size, lr, seed = check_common(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                                schedule=schedule, progress=progress)
    dtype = model.dtype
    x = as_float(x, "x", dtype)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (n, features), got shape {x.shape}")
    n_in = getattr(model, "in_features", None)
    if n_in is not None and x.shape[1] != n_in:
        raise ValueError(f"x must have {n_in} columns (the model's in_features), got {x.shape[1]}")
    _check_finite(x, "x")
    n_classes = getattr(model, "out_features", None)
    y = as_labels(y, "y", x.shape[0], n_classes)
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one row")
    val = check_validation(validation_data, dtype, x.shape[1], n_classes)
    opt = make_optimizer(optimizer, lr, weight_decay=as_number(weight_decay, "weight_decay", 0.0),
                         momentum=as_number(momentum, "momentum", 0.0, 1.0, hi_open=True))
    min_lr = as_number(min_lr, "min_lr", 0.0)
    shuffle_rng = np.random.default_rng(sub_seed(seed, 0))
    drop_rng = np.random.default_rng(sub_seed(seed, 1))
    n = x.shape[0]
    steps_per_epoch = -(-n // batch_size)
    rngs = {"shuffle": shuffle_rng, "dropout": drop_rng}
    history = History() if resume is None else check_resume(resume, opt, steps_per_epoch, rngs,
                                                            model.parameters())

    def batches(epoch):
        for idx in shuffled_batches(n, batch_size, shuffle_rng, shuffle):
            yield (idx,)

    def step(idx):
        yb = y[idx]
        z = model.forward(x[idx], train=True, rng=drop_rng)
        loss, g = _cross_entropy(z, yb)
        model.backward(g, need_input_grad=False)
        return {"loss": loss * len(idx), "correct": float(np.sum(z.argmax(axis=1) == yb)), "count": len(idx)}

    def trainables():
        return model.parameters(), model.gradients()

    validate = None if val is None else (lambda: evaluate(model, val[0], val[1]))
    return run_epochs(history, epochs=epochs, batches=batches, step=step, trainables=trainables,
                      optimizer=opt, lr=lr, schedule=schedule, min_lr=min_lr,
                      total_steps=epochs * steps_per_epoch, validate=validate,
                      early_stopping=early_stopping, min_delta=as_number(min_delta, "min_delta", 0.0),
                      restore_best=bool(restore_best), progress=bool(progress), desc="fit",
                      callback=callback, threads=threads, rngs=rngs, resume=resume is not None)


# --------------------------------------------------------------------------- file format

def _is_record(name, v) -> bool:
    """Whether attribute `name` = `v` of a History is a per-epoch record (a list of numbers)."""
    return (isinstance(name, str) and name.isidentifier() and not name.startswith("_")
            and name not in ("best_epoch", "stopped_early") and (name in History._KEYS or not hasattr(History, name))
            and isinstance(v, list) and all(isinstance(x, (int, float, np.integer, np.floating))
                                            and not isinstance(x, (bool, np.bool_)) for x in v))


def _history_to(h: History) -> dict:
    lists = {k: list(v) for k, v in vars(h).items() if isinstance(v, list)}
    other = sorted(k for k in vars(h) if k not in ("best_epoch", "stopped_early", "_loop")
                   and not (k in lists and _is_record(k, lists[k])))
    if other:  # (pickling then falls back to Python's own)
        raise TypeError(f"a History holding attributes other than per-epoch lists of numbers ({other}) "
                        "is not savable")
    return {"lists": lists, "best_epoch": h.best_epoch, "stopped_early": h.stopped_early,
            "resume": getattr(h, "_loop", None)}


def _rng_state(st, what: str) -> dict:
    """A PCG64 generator state (numpy's bit_generator.state), checked by setting it."""
    ok = (isinstance(st, dict) and set(st) == {"bit_generator", "state", "has_uint32", "uinteger"}
          and st["bit_generator"] == "PCG64" and isinstance(st["state"], dict)
          and set(st["state"]) == {"state", "inc"}
          and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**128 for v in st["state"].values())
          and st["state"]["inc"] % 2 == 1 and st["has_uint32"] in (0, 1) and not isinstance(st["has_uint32"], bool)
          and isinstance(st["uinteger"], int) and not isinstance(st["uinteger"], bool) and 0 <= st["uinteger"] < 2**32)
    if ok:
        g = np.random.PCG64()
        try:
            g.state = st
            ok = g.state == st
        except (TypeError, ValueError, OverflowError):
            ok = False
    if not ok:
        raise ValueError(f"{what} is not a PCG64 generator state")
    return st


def _history_from(s: dict) -> History:
    what = "History"
    if set(s) != {"lists", "best_epoch", "stopped_early", "resume"}:
        raise ValueError(f"{what}: expected the entries lists, best_epoch, stopped_early, resume; got {sorted(s)}")
    lists = _io.need(s, "lists", dict, what)
    h = History()
    n = len(_io.need(lists, "loss", list, what))
    for name, v in lists.items():
        if not _is_record(name, v) or len(v) not in (0, n):
            raise ValueError(f"{what}: {name!r} must be a per-epoch record, a list of {n} numbers or empty")
        setattr(h, name, [float(x) for x in v])
    be = s["best_epoch"]
    if be is not None and (not isinstance(be, int) or isinstance(be, bool) or not 0 <= be < n):
        raise ValueError(f"{what}: best_epoch must be None or an epoch in 0..{n - 1}, got {be!r}")
    h.best_epoch, h.stopped_early = be, _io.need(s, "stopped_early", bool, what)
    loop = s["resume"]
    if loop is not None:
        w = f"{what} (resume state)"
        if not isinstance(loop, dict) or set(loop) != {"step", "rngs", "best", "wait", "best_weights"}:
            raise ValueError(f"{w}: expected the entries step, rngs, best, wait, best_weights")
        step, wait = _io.need(loop, "step", int, w), _io.need(loop, "wait", int, w)
        best = _io.need(loop, "best", (int, float), w)
        if step < 0 or not 0 <= wait <= n or math.isnan(best):
            raise ValueError(f"{w}: step {step}, wait {wait} or best {best} out of range")
        rngs = {k: _rng_state(v, f"{w}: rngs[{k!r}]") for k, v in _io.need(loop, "rngs", dict, w).items()}
        bw = loop["best_weights"]
        if bw is not None and (not isinstance(bw, list) or not all(
                isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) for a in bw)):
            raise ValueError(f"{w}: best_weights must be None or a list of float arrays")
        h._loop = {"step": step, "rngs": rngs, "best": float(best), "wait": wait, "best_weights": bw}
    return h


_io.register("nn.History", History, _history_to, _history_from)
