"""Optimizers updating parameters in place, and learning-rate schedules.

An optimizer is called once per mini-batch with the current lists of parameters and gradients
(``model.parameters()``, ``model.gradients()``); its state (momentum, moments) is kept per
position in that list and allocated on the first step. Every update is done in place with
preallocated scratch buffers: no array is allocated per step.
"""
from __future__ import annotations

import math

import numpy as np

from ._util import as_number

__all__ = ["Optimizer", "SGD", "Adam", "make_optimizer", "learning_rate"]


class Optimizer:
    """Base class: ``step(params, grads, lr=None)`` updates ``params`` in place."""

    def __init__(self, lr: float):
        self.lr = as_number(lr, "lr", 0.0)
        self.t = 0  # steps taken
        self._state: list = []

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
        raise NotImplementedError


class SGD(Optimizer):
    """SGD with momentum (PyTorch's form): with weight decay wd, g <- g + wd * p;
    buf <- momentum * buf + g; p <- p - lr * buf (Nesterov: p <- p - lr * (g + momentum * buf))."""

    def __init__(self, lr: float = 0.01, *, momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        self.momentum = as_number(momentum, "momentum", 0.0, 1.0, hi_open=True)
        self.nesterov = bool(nesterov)
        self.weight_decay = as_number(weight_decay, "weight_decay", 0.0)

    def step(self, params, grads, lr=None) -> None:
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
    p <- p * (1 - lr * wd) before the Adam step; ``decoupled=False`` is PyTorch Adam's L2 form
    (wd * p added to the gradient).
    """

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

    def step(self, params, grads, lr=None) -> None:
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
    """An Optimizer from a name ("adam", "adamw" (= adam, decoupled decay), "sgd") or an
    Optimizer instance (returned as is, with its own betas/momentum/decay; the learning rate of
    each step still comes from fit's ``lr`` and ``schedule``)."""
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
    """The learning rate for mini-batch ``step`` (0-based) of ``total_steps``: constant, or
    cosine decay from ``base`` to ``min_lr`` over the whole run (per step, like
    torch.optim.lr_scheduler.CosineAnnealingLR with T_max = total steps)."""
    if schedule in (None, "constant"):
        return base
    if schedule == "cosine":
        frac = min(step / max(total_steps, 1), 1.0)
        return min_lr + 0.5 * (base - min_lr) * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"schedule must be None, 'constant' or 'cosine', got {schedule!r}")
