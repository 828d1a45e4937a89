"""Optimizers updating parameters in place, and learning-rate schedules.

An optimizer is called once per mini-batch with the current lists of parameters and gradients
(``model.parameters()``, ``model.gradients()``); its state (momentum, moments) is kept per
position in that list and allocated on the first step. Every update is done in place with
preallocated scratch buffers: no array is allocated per step.

Checkpoints: ``state_dict()`` / ``load_state_dict()`` give and restore an optimizer's settings,
step count and moments, and optimizers are savable (``lowbit.save``, pickling) as "nn.SGD" /
"nn.Adam", so a run saved with its model continues exactly where it stopped
(``lowbit.nn.fit(..., optimizer=loaded, resume=history)``).
"""
from __future__ import annotations

import math

import numpy as np

from .. import io as _io
from ._util import as_number

__all__ = ["Optimizer", "SGD", "Adam", "make_optimizer", "learning_rate"]


class Optimizer:
    """Base class of the optimizers: ``step(params, grads, lr=None)`` updates ``params`` in place.

    An optimizer is called once per mini-batch with the current lists of parameters and
    gradients (``model.parameters()``, ``model.gradients()``); its state (momentum, moments) is
    kept per position in that list and allocated on the first step. Every update is done in
    place with preallocated scratch buffers: no array is allocated per step.

    :meth:`state_dict` / :meth:`load_state_dict` give and restore an optimizer's settings, step
    count and moments, and optimizers are savable (``lowbit.save``, pickling) as "nn.SGD" /
    "nn.Adam", so a run saved with its model continues exactly where it stopped
    (``lowbit.nn.fit(..., optimizer=loaded, resume=history)``).

    Parameters
    ----------
    lr : float
        The learning rate, >= 0.

    Attributes
    ----------
    lr : float
        The learning rate of a step called without ``lr``.
    t : int
        The number of steps taken.

    Raises
    ------
    TypeError
        If ``lr`` is not a number.
    ValueError
        If ``lr`` is negative or not finite.
    """

    _moments: tuple = ()  # names of the per-parameter state arrays (kept across steps)
    _nonnegative: tuple = ()  # those of them that are never negative

    def __init__(self, lr: float):
        self.lr = as_number(lr, "lr", 0.0)
        self.t = 0  # steps taken
        self._state: list = []

    def _config(self) -> dict:
        """The settings, as the constructor's keyword arguments."""
        return {"lr": self.lr}

    def state_dict(self) -> dict:
        """The optimizer as plain data, to checkpoint a run.

        Returns
        -------
        dict
            Its settings (the constructor's arguments: ``lr``, ``momentum``, ``betas``...),
            ``t`` (steps taken) and ``state``, one dict of arrays (copies; SGD: ``buf``, Adam:
            ``m`` and ``v``) per parameter, in the order of the parameter list (empty before
            the first step).
        """
        sd = self._config()
        sd["t"] = self.t
        sd["state"] = [{n: s[n].copy() for n in self._moments} for s in self._state]
        return sd

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` gave, so that the next ``step`` continues exactly.

        The settings, the step count and copies of the moments are restored; the next step's
        parameter list must have the saved shapes and dtypes.

        Parameters
        ----------
        state : dict
            A state from :meth:`state_dict` of an optimizer of the same class.

        Raises
        ------
        ValueError
            If ``state`` is malformed (missing or extra entries, wrong types, settings out of
            range, moments that are not finite float arrays); the optimizer is then unchanged.
        """
        what = type(self).__name__
        if not isinstance(state, dict):
            raise ValueError(f"{what} state must be a dict, got {type(state).__name__}")
        cfg = self._config()
        want = set(cfg) | {"t", "state"}
        if set(state) != want:
            raise ValueError(f"{what} state must hold exactly {sorted(want)}, got {sorted(state)}")
        num = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
        for k, ref in cfg.items():
            v = state[k]
            ok = (isinstance(v, bool) if isinstance(ref, bool) else
                  isinstance(v, (tuple, list)) and len(v) == len(ref) and all(map(num, v))
                  if isinstance(ref, tuple) else num(v))
            if not ok:
                raise ValueError(f"{what} state: {k!r} has the wrong type or length: {v!r}")
        try:
            new = type(self)(**{k: state[k] for k in cfg})  # the constructor checks the ranges
        except (TypeError, ValueError) as e:
            raise ValueError(f"{what} state: {e}") from None
        t = _io.need(state, "t", int, what)
        moments = _io.need(state, "state", list, what)
        if t < 0:
            raise ValueError(f"{what} state: t must be >= 0, got {t}")
        kept = []
        for i, entry in enumerate(moments):
            if not isinstance(entry, dict) or set(entry) != set(self._moments):
                raise ValueError(f"{what} state: state[{i}] must be a dict of {list(self._moments)}")
            first = next(iter(entry.values()), None)
            arrays = {}
            for n, a in entry.items():
                if (not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64)
                        or a.shape != first.shape or a.dtype != first.dtype):
                    raise ValueError(f"{what} state: state[{i}][{n!r}] must be a float32/float64 array "
                                     f"like the other moments of that parameter")
                if not np.all(np.isfinite(a)) or (n in self._nonnegative and np.any(a < 0)):
                    raise ValueError(f"{what} state: state[{i}][{n!r}] holds "
                                     f"{'negative or ' if n in self._nonnegative else ''}non-finite values")
                arrays[n] = np.array(a, copy=True, order="C")
            if first is not None:  # (an optimizer without moments allocates its scratch at the next step)
                arrays["tmp"] = np.zeros_like(first)
                kept.append(arrays)
        vars(self).update({k: v for k, v in vars(new).items() if k not in ("t", "_state")})
        self.t, self._state = t, kept

    def reset(self) -> None:
        """Forgets the state (moments, step count)."""
        self.t = 0
        self._state = []

    def _states(self, params, grads, names: tuple) -> list:
        if len(params) != len(grads):
            raise ValueError(f"params and grads must have the same length, got {len(params)} and {len(grads)}")
        if len(self._state) != len(params) or any(
                s["tmp"].shape != p.shape or s["tmp"].dtype != p.dtype for s, p in zip(self._state, params)):
            if self._state:
                raise ValueError("the parameters changed shape or number since the optimizer's first "
                                 "step; call reset() or make a new optimizer")
            self._state = [{n: np.zeros_like(p) for n in names + ("tmp",)} for p in params]
        return self._state

    def step(self, params, grads, lr=None) -> None:  # pragma: no cover
        """Update the parameters in place from their gradients (implemented by subclasses).

        Parameters
        ----------
        params : list of numpy.ndarray
            The parameters (``model.parameters()``), updated in place.
        grads : list of numpy.ndarray
            Their gradients (``model.gradients()``), in the same order; not modified.
        lr : float, optional
            This step's learning rate (None: the optimizer's ``lr``).
        """
        raise NotImplementedError


class SGD(Optimizer):
    """SGD with momentum, in PyTorch's form.

    With weight decay ``wd``: ``g <- g + wd * p``; ``buf <- momentum * buf + g``;
    ``p <- p - lr * buf`` (Nesterov: ``p <- p - lr * (g + momentum * buf)``). With
    ``momentum=0``: ``p <- p - lr * g``.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate, >= 0.
    momentum : float, default 0.9
        In [0, 1).
    nesterov : bool, default False
        Nesterov momentum.
    weight_decay : float, default 0.0
        L2 weight decay ``wd``, >= 0.

    Attributes
    ----------
    momentum : float
        The momentum.
    nesterov : bool
        Whether the momentum is Nesterov's.
    weight_decay : float
        The weight decay.

    Raises
    ------
    TypeError
        If a number is not a number.
    ValueError
        If ``lr`` or ``weight_decay`` is negative or not finite, or ``momentum`` not in [0, 1).
    """

    _moments = ("buf",)

    def __init__(self, lr: float = 0.01, *, momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        self.momentum = as_number(momentum, "momentum", 0.0, 1.0, hi_open=True)
        self.nesterov = bool(nesterov)
        self.weight_decay = as_number(weight_decay, "weight_decay", 0.0)

    def _config(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def step(self, params, grads, lr=None) -> None:
        """One SGD step: update the parameters in place.

        Parameters
        ----------
        params : list of numpy.ndarray
            The parameters (``model.parameters()``), updated in place.
        grads : list of numpy.ndarray
            Their gradients (``model.gradients()``), in the same order; not modified.
        lr : float, optional
            This step's learning rate (None: the optimizer's ``lr``).

        Raises
        ------
        ValueError
            If ``params`` and ``grads`` differ in length, or the parameters changed shape or
            number since the first step (call :meth:`reset` or make a new optimizer).
        """
        lr = self.lr if lr is None else lr
        self.t += 1
        for p, g, s in zip(params, grads, self._states(params, grads, ("buf",))):
            tmp = s["tmp"]
            if self.weight_decay:
                np.multiply(p, self.weight_decay, out=tmp)
                tmp += g
                g = tmp
            if self.momentum:
                buf = s["buf"]
                buf *= self.momentum
                buf += g
                if self.nesterov:
                    np.multiply(buf, self.momentum, out=tmp)
                    tmp += g
                    upd = tmp
                else:
                    upd = buf
            else:
                upd = g
            np.multiply(upd, lr, out=tmp)
            p -= tmp


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, in place.

    ``weight_decay`` with ``decoupled=True`` (default) is AdamW's decoupled decay,
    ``p <- p * (1 - lr * wd)`` before the Adam step; ``decoupled=False`` is PyTorch Adam's L2
    form (``wd * p`` added to the gradient).

    Parameters
    ----------
    lr : float, default 1e-3
        The learning rate, >= 0.
    betas : tuple of float, default (0.9, 0.999)
        The decay rates of the first and second moments, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, > 0.
    weight_decay : float, default 0.0
        Weight decay ``wd``, >= 0.
    decoupled : bool, default True
        AdamW's decoupled decay (True) or L2 decay (False).

    Attributes
    ----------
    beta1, beta2 : float
        The ``betas``.
    eps : float
        The denominator's epsilon.
    weight_decay : float
        The weight decay.
    decoupled : bool
        Whether the decay is decoupled.

    Raises
    ------
    TypeError
        If ``betas`` is not a pair of numbers or another number is not a number.
    ValueError
        If ``lr`` or ``weight_decay`` is negative or not finite, a beta is not in [0, 1), or
        ``eps`` is not > 0.
    """

    _moments = ("m", "v")
    _nonnegative = ("v",)

    def __init__(self, lr: float = 1e-3, *, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = True):
        super().__init__(lr)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise TypeError(f"betas must be a pair of numbers, got {betas!r}") from None
        self.beta1 = as_number(b1, "betas[0]", 0.0, 1.0, hi_open=True)
        self.beta2 = as_number(b2, "betas[1]", 0.0, 1.0, hi_open=True)
        self.eps = as_number(eps, "eps", 0.0, lo_open=True)
        self.weight_decay = as_number(weight_decay, "weight_decay", 0.0)
        self.decoupled = bool(decoupled)

    def _config(self) -> dict:
        return {"lr": self.lr, "betas": (self.beta1, self.beta2), "eps": self.eps,
                "weight_decay": self.weight_decay, "decoupled": self.decoupled}

    def step(self, params, grads, lr=None) -> None:
        """One Adam step: update the parameters in place.

        Parameters
        ----------
        params : list of numpy.ndarray
            The parameters (``model.parameters()``), updated in place.
        grads : list of numpy.ndarray
            Their gradients (``model.gradients()``), in the same order; not modified.
        lr : float, optional
            This step's learning rate (None: the optimizer's ``lr``).

        Raises
        ------
        ValueError
            If ``params`` and ``grads`` differ in length, or the parameters changed shape or
            number since the first step (call :meth:`reset` or make a new optimizer).
        """
        lr = self.lr if lr is None else lr
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        bc1 = 1.0 - b1 ** self.t
        sbc2 = math.sqrt(1.0 - b2 ** self.t)
        # p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)  ==  p -= step * m / (sqrt(v) + eps*sqrt(bc2))
        step = lr * sbc2 / bc1
        eps = self.eps * sbc2
        for p, g, s in zip(params, grads, self._states(params, grads, ("m", "v"))):
            m, v, tmp = s["m"], s["v"], s["tmp"]
            if self.weight_decay:
                if self.decoupled:
                    p *= 1.0 - lr * self.weight_decay
                else:
                    np.multiply(p, self.weight_decay, out=tmp)
                    tmp += g
                    g = s.setdefault("g", np.empty_like(p))
                    np.copyto(g, tmp)
            # m += (1 - b1) * (g - m); v += (1 - b2) * (g*g - v)
            np.subtract(g, m, out=tmp)
            tmp *= 1.0 - b1
            m += tmp
            np.multiply(g, g, out=tmp)
            tmp -= v
            tmp *= 1.0 - b2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= step
            p -= tmp


def make_optimizer(optimizer, lr: float, *, weight_decay: float = 0.0, momentum: float = 0.9) -> Optimizer:
    """An Optimizer from a name or an Optimizer instance.

    Parameters
    ----------
    optimizer : str or Optimizer
        "adam", "adamw" (= adam, decoupled decay) or "sgd" (case-insensitive); or an Optimizer
        instance, returned as is with its own betas/momentum/decay (the learning rate of each
        step still comes from fit's ``lr`` and ``schedule``).
    lr : float
        The learning rate of a new optimizer.
    weight_decay : float, default 0.0
        The weight decay of a new optimizer.
    momentum : float, default 0.9
        The momentum of a new SGD.

    Returns
    -------
    Optimizer
        The optimizer.

    Raises
    ------
    TypeError
        If ``optimizer`` is neither a string nor an Optimizer.
    ValueError
        If the name is unknown, or a setting is out of range.
    """
    if isinstance(optimizer, Optimizer):
        return optimizer
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be 'adam', 'sgd' or an Optimizer, got {type(optimizer).__name__}")
    name = optimizer.lower()
    if name in ("adam", "adamw"):
        return Adam(lr, weight_decay=weight_decay)
    if name == "sgd":
        return SGD(lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam', 'adamw' or 'sgd', got {optimizer!r}")


SCHEDULES = (None, "constant", "cosine")


def learning_rate(base: float, schedule, step: int, total_steps: int, *, min_lr: float = 0.0) -> float:
    """The learning rate for a mini-batch of a run.

    Constant, or cosine decay from ``base`` to ``min_lr`` over the whole run, per step, like
    ``torch.optim.lr_scheduler.CosineAnnealingLR`` with ``T_max`` = total steps:
    ``min_lr + 0.5 * (base - min_lr) * (1 + cos(pi * min(step / max(total_steps, 1), 1)))``.

    Parameters
    ----------
    base : float
        The base learning rate.
    schedule : {None, "constant", "cosine"}
        The schedule (None is "constant").
    step : int
        The mini-batch, 0-based.
    total_steps : int
        The number of mini-batches of the run.
    min_lr : float, default 0.0
        The rate cosine decay ends at.

    Returns
    -------
    float
        The learning rate (``base`` for a constant schedule).

    Raises
    ------
    ValueError
        If ``schedule`` is unknown.
    """
    if schedule in (None, "constant"):
        return base
    if schedule == "cosine":
        frac = min(step / max(total_steps, 1), 1.0)
        return min_lr + 0.5 * (base - min_lr) * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"schedule must be None, 'constant' or 'cosine', got {schedule!r}")


def _optimizer_from(cls, state: dict) -> Optimizer:
    opt = cls()
    opt.load_state_dict(state)
    return opt


_io.register("nn.SGD", SGD, SGD.state_dict, lambda s: _optimizer_from(SGD, s))
_io.register("nn.Adam", Adam, Adam.state_dict, lambda s: _optimizer_from(Adam, s))
