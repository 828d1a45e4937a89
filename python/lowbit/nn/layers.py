"""Trainable layers: lowbit.models' forward-only layers with hand-written backward passes,
float32 (float64 for gradient checks). Each class here subclasses the lowbit.models class of the
same name, so a trainable model is also an inference model (and is saved as its own "nn." type).

Every layer follows one small protocol:

- ``forward(x, train=False, rng=None) -> y``: ``train=True`` keeps what ``backward`` needs and
  enables dropout (``rng``, a ``numpy.random.Generator``, draws the masks). Outputs of a training
  forward live in buffers the layer reuses: they are valid until the next training forward.
- ``backward(grad, need_input_grad=True) -> grad_x``: ``grad`` is dLoss/dy of the last training
  forward; parameter gradients are *written* (not accumulated) to ``grad_<name>`` attributes;
  returns dLoss/dx (or None when ``need_input_grad`` is False). ``grad`` is never modified.
- ``layer(x)`` is inference (no dropout) and returns a fresh array; ``parameters()`` and
  ``gradients()`` list the trainable arrays and their gradients in the same order.

A Sequential may also hold any other callable ``x -> array`` (a lowbit.QuantizedLinear, say) for
inference; such a layer is skipped by ``parameters()`` and cannot pass gradients back.
"""
from __future__ import annotations

import math

import numpy as np

from .. import io as _io
from ..models import layers as _m
from ..models.layers import layers_of, register_layers
from .._checks import positive_int as _positive_int
from ._util import FLOAT_DTYPES, as_float, as_number, as_seed, sub_seed

__all__ = ["Layer", "Linear", "ReLU", "GELU", "Dropout", "LayerNorm", "Softmax", "Sequential", "MLP",
           "trainable"]


class Layer(_m.Layer):
    """Base class of lowbit.nn layers.

    Every layer follows one small protocol:

    - ``forward(x, train=False, rng=None) -> y``: ``train=True`` keeps what ``backward`` needs
      and enables dropout (``rng``, a ``numpy.random.Generator``, draws the masks). Outputs of
      a training forward live in buffers the layer reuses: they are valid until the next
      training forward.
    - ``backward(grad, need_input_grad=True) -> grad_x``: ``grad`` is dLoss/dy of the last
      training forward; parameter gradients are *written* (not accumulated) to
      ``grad_<name>`` attributes; returns dLoss/dx (or None when ``need_input_grad`` is
      False). ``grad`` is never modified.
    - ``layer(x)`` is inference (no dropout) and returns a fresh array; ``parameters()`` and
      ``gradients()`` list the trainable arrays and their gradients in the same order.

    Subclasses put the lowbit.models class first among their bases:
    ``class ReLU(models.ReLU, Layer)``.
    """

    # --- protocol -------------------------------------------------------------------------
    def forward(self, x, train: bool = False, rng=None) -> np.ndarray:  # pragma: no cover
        """The layer's output (implemented by subclasses).

        Parameters
        ----------
        x : array_like
            The input.
        train : bool, default False
            Keep what :meth:`backward` needs and enable dropout; the output then lives in a
            buffer the layer reuses, valid until the next training forward.
        rng : numpy.random.Generator, optional
            Draws dropout masks.

        Returns
        -------
        numpy.ndarray
            The output.
        """
        raise NotImplementedError

    def backward(self, grad, need_input_grad: bool = True):  # pragma: no cover
        """Back-propagate through the last training forward (implemented by subclasses).

        Parameter gradients are written (not accumulated) to ``grad_<name>`` attributes.

        Parameters
        ----------
        grad : array_like
            dLoss/dy of the last training forward (never modified).
        need_input_grad : bool, default True
            Compute dLoss/dx (False: return None).

        Returns
        -------
        numpy.ndarray or None
            dLoss/dx, or None when ``need_input_grad`` is False.
        """
        raise NotImplementedError

    def gradients(self) -> list:
        """The gradient arrays of the last backward, in the order of parameters()."""
        return [self._grad(n) for n in self._params]

    # --- helpers --------------------------------------------------------------------------
    def _grad(self, name: str) -> np.ndarray:
        """The gradient buffer of parameter `name`, (re)allocated to match the parameter."""
        p = getattr(self, name)
        g = self.__dict__.get("grad_" + name)
        if g is None or g.shape != p.shape or g.dtype != p.dtype:
            g = np.zeros_like(p)
            setattr(self, "grad_" + name, g)
        return g

    def _buffer(self, key: str, shape: tuple, dtype) -> np.ndarray:
        """A reusable scratch array for training passes."""
        b = self._cache.get(key)
        if b is None or b.shape != shape or b.dtype != dtype:
            b = np.empty(shape, dtype)
            self._cache[key] = b
        return b

    def _saved(self, key: str):
        try:
            return self._cache[key]
        except KeyError:
            raise RuntimeError(f"{type(self).__name__}.backward called without a training forward "
                               "(forward(x, train=True)) before it") from None


def _check_grad(grad, like: np.ndarray) -> np.ndarray:
    g = np.asarray(grad)
    if g.shape != like.shape:
        raise ValueError(f"grad must have the shape of the layer's output {like.shape}, got {g.shape}")
    return np.asarray(g, dtype=like.dtype)


class Linear(_m.Linear, Layer):
    """A trainable linear layer: y = x W^T + b.

    ``weight`` is ``(out_features, in_features)`` and ``bias`` ``(out_features,)``: the layout
    of torch.nn.Linear, initialized like it (uniform in +-1/sqrt(in_features)) from ``seed``.
    :meth:`from_arrays` makes one of given arrays.

    Parameters
    ----------
    in_features : int
        Length of the input rows, >= 1.
    out_features : int
        Length of the output rows, >= 1.
    bias : bool, default True
        False makes a layer without bias (``bias`` is then None).
    seed : int, default 0
        Seed of the initialization, >= 0.
    dtype : numpy.dtype, default numpy.float32
        float32 or float64 (for gradient checks).

    Attributes
    ----------
    weight : numpy.ndarray
        ``(out_features, in_features)``.
    bias : numpy.ndarray or None
        ``(out_features,)``, or None.
    grad_weight, grad_bias : numpy.ndarray
        The parameters' gradients of the last backward.

    Raises
    ------
    TypeError
        If an integer argument is not an integer or ``dtype`` is neither float32 nor float64.
    ValueError
        If a size is < 1 or ``seed`` is negative.
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, seed: int = 0,
                 dtype=np.float32):
        in_features = _positive_int(in_features, "in_features")
        out_features = _positive_int(out_features, "out_features")
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        rng = np.random.default_rng(as_seed(seed))
        bound = 1.0 / math.sqrt(in_features)
        w = rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype)
        super().__init__(w, rng.uniform(-bound, bound, out_features).astype(dtype) if bias else None)

    @classmethod
    def from_arrays(cls, weight, bias=None) -> "Linear":
        """A Linear holding copies of the arrays given.

        Parameters
        ----------
        weight : array_like of float, shape (out_features, in_features)
            The weight, non-empty (kept in float64 if float64, else float32).
        bias : array_like of float, shape (out_features,), optional
            The bias (None: no bias).

        Returns
        -------
        Linear
            The layer (of the class it is called on).

        Raises
        ------
        TypeError
            If ``weight`` or ``bias`` is not a floating-point array.
        ValueError
            If ``weight`` is not a non-empty 2-D array or ``bias`` has the wrong shape.
        """
        layer = cls.__new__(cls)  # no random initialization: the arrays given replace it
        _m.Linear.__init__(layer, weight, bias)
        return layer

    def forward(self, x, train=False, rng=None):
        """The product x W^T + b.

        Parameters
        ----------
        x : array_like
            The input.
        train : bool, default False
            Keep what :meth:`backward` needs; the output then lives in a buffer the layer
            reuses, valid until the next training forward.
        rng : numpy.random.Generator, optional
            Draws dropout masks (unused by this layer).

        Returns
        -------
        numpy.ndarray
            ``(..., out_features)``.

        Raises
        ------
        ValueError
            If the last axis of ``x`` is not ``in_features`` long, or ``x`` is not 2-D in
            training.
        """
        if not train:
            return _m.Linear.forward(self, x)
        x = self._input(x)
        if x.ndim != 2:
            raise ValueError(f"x must be 2-D (batch, {self.in_features}) for training, got {x.shape}")
        w = self._effective_weight(train)
        self._cache["x"] = x
        self._cache["w"] = w
        y = self._buffer("y", (x.shape[0], self.out_features), x.dtype)
        np.matmul(x, w.T, out=y)
        if self.bias is not None:
            y += self.bias
        return y

    def backward(self, grad, need_input_grad=True):
        """Write ``grad_weight`` (and ``grad_bias``) and return dLoss/dx.

        Parameters
        ----------
        grad : array_like
            dLoss/dy of the last training forward, of the output's shape (never modified).
        need_input_grad : bool, default True
            Compute dLoss/dx (False: return None).

        Returns
        -------
        numpy.ndarray or None
            dLoss/dx ``(batch, in_features)``, in a buffer the layer reuses; or None.

        Raises
        ------
        RuntimeError
            If no training forward came before.
        ValueError
            If ``grad`` does not have the shape of the output.
        """
        x, w = self._saved("x"), self._cache["w"]
        g = np.asarray(grad, dtype=x.dtype)
        if g.shape != (x.shape[0], self.out_features):
            raise ValueError(f"grad must have shape {(x.shape[0], self.out_features)}, got {g.shape}")
        gw = self._weight_grad_target(w)
        np.matmul(g.T, x, out=gw)
        self._finish_weight_grad(gw)
        if self.bias is not None:
            np.add.reduce(g, axis=0, out=self._grad("bias"))
        if not need_input_grad:
            return None
        dx = self._buffer("dx", x.shape, x.dtype)
        np.matmul(g, w, out=dx)
        return dx

    def _weight_grad_target(self, w: np.ndarray) -> np.ndarray:
        """Where backward writes dLoss/d(effective weight): here the weight's gradient itself
        (the straight-through estimator of fake quantization uses this too)."""
        return self._grad("weight")

    def _finish_weight_grad(self, gw: np.ndarray) -> None:
        """Turns dLoss/d(effective weight) into the parameters' gradients (subclasses)."""


class ReLU(_m.ReLU, Layer):
    """The rectifier: max(x, 0)."""

    def forward(self, x, train=False, rng=None):
        """max(x, 0), element by element.

        Parameters
        ----------
        x : array_like
            The input.
        train : bool, default False
            Keep what :meth:`backward` needs; the output then lives in a buffer the layer
            reuses, valid until the next training forward.
        rng : numpy.random.Generator, optional
            Draws dropout masks (unused by this layer).

        Returns
        -------
        numpy.ndarray
            An array of the shape of ``x``.
        """
        x = np.asarray(x)
        if not train:
            return np.maximum(x, 0)
        y = self._buffer("y", x.shape, x.dtype)
        np.maximum(x, 0, out=y)
        self._cache["out"] = y
        return y

    def backward(self, grad, need_input_grad=True):
        """dLoss/dx: ``grad`` where the output is positive, else 0.

        Parameters
        ----------
        grad : array_like
            dLoss/dy of the last training forward, of the output's shape (never modified).
        need_input_grad : bool, default True
            Compute dLoss/dx (False: return None).

        Returns
        -------
        numpy.ndarray or None
            dLoss/dx, in a buffer the layer reuses; or None.

        Raises
        ------
        RuntimeError
            If no training forward came before.
        ValueError
            If ``grad`` does not have the shape of the output.
        """
        y = self._saved("out")
        g = _check_grad(grad, y)
        if not need_input_grad:
            return None
        mask = self._buffer("mask", y.shape, np.bool_)
        np.greater(y, 0, out=mask)
        dx = self._buffer("dx", y.shape, y.dtype)
        np.multiply(g, mask, out=dx)
        return dx


class GELU(_m.GELU, Layer):
    __doc__ = _m.GELU.__doc__

    def forward(self, x, train=False, rng=None):
        """x * Phi(x), element by element.

        Parameters
        ----------
        x : array_like
            The input.
        train : bool, default False
            Keep what :meth:`backward` needs.
        rng : numpy.random.Generator, optional
            Draws dropout masks (unused by this layer).

        Returns
        -------
        numpy.ndarray
            A new array of the shape of ``x``.
        """
        x = np.asarray(x)
        cdf = self._cdf(x)
        if train:
            self._cache["x"], self._cache["cdf"] = x, cdf
        return x * cdf

    def backward(self, grad, need_input_grad=True):
        """dLoss/dx through the derivative of the GELU (of its tanh or erf form).

        Parameters
        ----------
        grad : array_like
            dLoss/dy of the last training forward, of the output's shape (never modified).
        need_input_grad : bool, default True
            Compute dLoss/dx (False: return None).

        Returns
        -------
        numpy.ndarray or None
            dLoss/dx, a new array; or None.

        Raises
        ------
        RuntimeError
            If no training forward came before.
        ValueError
            If ``grad`` does not have the shape of the output.
        """
        x, cdf = self._saved("x"), self._cache["cdf"]
        g = _check_grad(grad, x)
        if not need_input_grad:
            return None
        if self.approximate == "tanh":
            t = 2.0 * cdf - 1.0  # tanh(u)
            du = self._C * (1.0 + 3 * 0.044715 * x * x)
            d = cdf + 0.5 * x * (1.0 - t * t) * du
        else:
            d = cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return (g * d).astype(x.dtype, copy=False)


class Dropout(_m.Dropout, Layer):
    """Inverted dropout.

    In training each value is zeroed with probability ``p`` and the rest are scaled by
    1/(1-p); inference is the identity. Masks come from the ``rng`` passed to forward
    (:func:`lowbit.nn.fit` passes one derived from its seed), else from the layer's own
    generator.

    Parameters
    ----------
    p : float, default 0.5
        The drop probability, in [0, 1).
    seed : int, default 0
        Seed of the layer's own generator, >= 0.

    Raises
    ------
    TypeError
        If ``p`` is not a number or ``seed`` not an integer.
    ValueError
        If ``p`` is not in [0, 1) or ``seed`` is negative.
    """

    def __init__(self, p: float = 0.5, *, seed: int = 0):
        super().__init__(p)
        self._rng = np.random.default_rng(as_seed(seed))

    def forward(self, x, train=False, rng=None):
        """Dropout in training, the identity at inference.

        Parameters
        ----------
        x : array_like
            The input.
        train : bool, default False
            Drop values (and keep the mask for :meth:`backward`); the output then lives in a
            buffer the layer reuses, valid until the next training forward.
        rng : numpy.random.Generator, optional
            Draws the mask (None: the layer's own generator).

        Returns
        -------
        numpy.ndarray
            An array of the shape of ``x``: a copy of ``x`` at inference; in training with
            ``p == 0``, ``x`` itself.
        """
        x = np.asarray(x)
        if not train or self.p == 0.0:
            if train:
                self._cache["shape"] = x.shape
            return x.copy() if not train else x
        rng = self._rng if rng is None else rng
        dt = x.dtype if x.dtype in FLOAT_DTYPES else np.dtype(np.float32)
        u = self._buffer("u", x.shape, dt)
        rng.random(x.shape, dtype=dt, out=u)
        keep = self._buffer("keep", x.shape, np.bool_)
        np.greater_equal(u, self.p, out=keep)
        self._cache["keep_now"] = keep
        self._cache["shape"] = x.shape
        y = self._buffer("y", x.shape, x.dtype)
        np.multiply(x, keep, out=y)
        y *= x.dtype.type(1.0 / (1.0 - self.p))
        return y

    def backward(self, grad, need_input_grad=True):
        """dLoss/dx: ``grad`` through the mask of the last training forward, scaled by 1/(1-p).

        Parameters
        ----------
        grad : array_like
            dLoss/dy of the last training forward, of the output's shape (never modified).
        need_input_grad : bool, default True
            Compute dLoss/dx (False: return None).

        Returns
        -------
        numpy.ndarray or None
            dLoss/dx (``grad`` itself when ``p == 0``); or None.

        Raises
        ------
        RuntimeError
            If no training forward came before.
        ValueError
            If ``grad`` does not have the shape of the output.
        """
        shape = self._saved("shape")
        g = np.asarray(grad)
        if g.shape != shape:
            raise ValueError(f"grad must have the shape of the layer's output {shape}, got {g.shape}")
        if not need_input_grad:
            return None
        if self.p == 0.0:
            return g
        keep = self._cache["keep_now"]
        dx = self._buffer("dx", shape, g.dtype)
        np.multiply(g, keep, out=dx)
        dx *= g.dtype.type(1.0 / (1.0 - self.p))
        return dx


class LayerNorm(_m.LayerNorm, Layer):
    __doc__ = _m.LayerNorm.__doc__

    def forward(self, x, train=False, rng=None):
        """The normalized, scaled and shifted input.

        Parameters
        ----------
        x : array_like
            The input.
        train : bool, default False
            Keep what :meth:`backward` needs.
        rng : numpy.random.Generator, optional
            Draws dropout masks (unused by this layer).

        Returns
        -------
        numpy.ndarray
            A new array of the shape of ``x``.

        Raises
        ------
        ValueError
            If the last axis of ``x`` is not ``features`` long.
        """
        xhat, rstd = self._normalize(x)
        if train:
            self._cache["xhat"], self._cache["rstd"] = xhat, rstd
        return xhat * self.weight + self.bias

    def backward(self, grad, need_input_grad=True):
        """Write ``grad_weight`` and ``grad_bias`` and return dLoss/dx.

        Parameters
        ----------
        grad : array_like
            dLoss/dy of the last training forward, of the output's shape (never modified).
        need_input_grad : bool, default True
            Compute dLoss/dx (False: return None).

        Returns
        -------
        numpy.ndarray or None
            dLoss/dx, a new array; or None.

        Raises
        ------
        RuntimeError
            If no training forward came before.
        ValueError
            If ``grad`` does not have the shape of the output.
        """
        xhat, rstd = self._saved("xhat"), self._cache["rstd"]
        g = _check_grad(grad, xhat)
        lead = tuple(range(g.ndim - 1))
        np.copyto(self._grad("weight"), np.sum(g * xhat, axis=lead))
        np.copyto(self._grad("bias"), np.sum(g, axis=lead))
        if not need_input_grad:
            return None
        dxhat = g * self.weight
        return rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                       - xhat * np.mean(dxhat * xhat, axis=-1, keepdims=True))


class Softmax(_m.Softmax, Layer):
    __doc__ = _m.Softmax.__doc__

    def forward(self, x, train=False, rng=None):
        """softmax of the last axis.

        Parameters
        ----------
        x : array_like
            The input.
        train : bool, default False
            Keep what :meth:`backward` needs.
        rng : numpy.random.Generator, optional
            Draws dropout masks (unused by this layer).

        Returns
        -------
        numpy.ndarray
            A new array of the shape of ``x`` whose last axis sums to 1.
        """
        p = _m.Softmax.forward(self, x)
        if train:
            self._cache["p"] = p
        return p

    def backward(self, grad, need_input_grad=True):
        """dLoss/dx through the softmax's Jacobian.

        Parameters
        ----------
        grad : array_like
            dLoss/dy of the last training forward, of the output's shape (never modified).
        need_input_grad : bool, default True
            Compute dLoss/dx (False: return None).

        Returns
        -------
        numpy.ndarray or None
            dLoss/dx, a new array; or None.

        Raises
        ------
        RuntimeError
            If no training forward came before.
        ValueError
            If ``grad`` does not have the shape of the output.
        """
        p = self._saved("p")
        g = _check_grad(grad, p)
        if not need_input_grad:
            return None
        return p * (g - np.sum(g * p, axis=-1, keepdims=True))


class Sequential(_m.Sequential, Layer):
    """Layers applied in order, trainable.

    ``layers`` is a plain list: any entry may be replaced by another callable layer (e.g. a
    :class:`lowbit.QuantizedLinear`) for inference.

    - ``model(x)``: inference logits (in the model's dtype, normally float32; no dropout), for
      x of shape ``(..., in_features)``.
    - ``forward(x, train=False, rng=None, *, return_hidden=False)``: with ``return_hidden``
      returns ``(output, hidden)`` where ``hidden[i]`` is the output of ``layers[i]`` (so
      ``hidden[-1] is output``); the same list is kept as ``model.hidden`` after every forward.
    - ``backward(grad, need_input_grad=True, *, hidden_grads=None)``: back-propagates
      dLoss/doutput after a training forward, writing every layer's parameter gradients, and
      returns dLoss/dx (``need_input_grad=False`` skips it, and the layers before the first
      trainable one, as the trainers do); ``hidden_grads`` maps a layer index to an extra
      gradient with respect to that layer's output (used by hint losses).

    Parameters
    ----------
    layers : iterable of callable
        The layers: lowbit.nn layers, or any callable ``x -> array`` (inference-only).

    Attributes
    ----------
    layers : list
        The layers, in order.
    hidden : list of numpy.ndarray
        The output of every layer in the last forward.

    Raises
    ------
    TypeError
        If ``layers`` is not an iterable of callables (a single layer is refused too).
    """

    def gradients(self) -> list:
        """The gradient arrays of the last backward, in the order of :meth:`parameters`.

        Returns
        -------
        list of numpy.ndarray
            The ``grad_<name>`` arrays of the lowbit.nn layers (not copies).
        """
        return [g for layer in self.layers if isinstance(layer, Layer) for g in layer.gradients()]

    def get_weights(self) -> list:
        """Copies of parameters(), e.g. to restore later with set_weights."""
        return [p.copy() for p in self.parameters()]

    def set_weights(self, weights) -> None:
        """Copy arrays into the parameters, in place.

        Parameters
        ----------
        weights : iterable of array_like
            One array per parameter, of its shape (as from :meth:`get_weights`).

        Raises
        ------
        ValueError
            If the number of arrays or a shape does not match.
        """
        params = self.parameters()
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"weights must hold {len(params)} arrays, got {len(weights)}")
        for i, (p, w) in enumerate(zip(params, weights)):
            w = np.asarray(w)
            if w.shape != p.shape:
                raise ValueError(f"weights[{i}] must have shape {p.shape}, got {w.shape}")
            np.copyto(p, w)

    def forward(self, x, train=False, rng=None, *, return_hidden=False):
        """Apply the layers in order.

        Parameters
        ----------
        x : array_like of float, shape (..., in_features)
            The input (converted to the model's dtype); 2-D ``(batch, features)`` in training.
        train : bool, default False
            A training forward: the lowbit.nn layers keep what :meth:`backward` needs and
            dropout is on; other callables run as at inference.
        rng : numpy.random.Generator, optional
            Draws the dropout masks (None: each Dropout's own generator).
        return_hidden : bool, default False
            Also return every layer's output.

        Returns
        -------
        numpy.ndarray or tuple
            The output; with ``return_hidden``, ``(output, hidden)`` where ``hidden[i]`` is
            the output of ``layers[i]``. ``hidden`` is also kept as ``self.hidden``.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point array.
        ValueError
            If the last axis of ``x`` does not match ``in_features``, or ``x`` is not 2-D in
            training.
        """
        if not train:
            return _m.Sequential.forward(self, x, return_hidden=return_hidden)
        h, dtype = self._check_input(x), self.dtype
        if h.ndim != 2:
            raise ValueError(f"x must be 2-D (batch, features) for training, got shape {h.shape}")
        hidden = []
        for layer in self.layers:
            if isinstance(layer, Layer):
                h = layer.forward(h, train=True, rng=rng)
            else:
                h = np.asarray(layer(h))
                if h.dtype != dtype:
                    h = h.astype(dtype)
            hidden.append(h)
        self.hidden = hidden
        return (h, hidden) if return_hidden else h

    def backward(self, grad, need_input_grad=True, *, hidden_grads=None):
        """Back-propagate dLoss/doutput after a training forward.

        Every layer's parameter gradients are written (not accumulated).

        Parameters
        ----------
        grad : array_like
            dLoss/doutput of the last training forward.
        need_input_grad : bool, default True
            Compute dLoss/dx; False skips it, and the layers before the first trainable one
            (as the trainers do), and returns None.
        hidden_grads : dict of int to array_like, optional
            Maps a layer index (negative ones count from the end) to an extra gradient with
            respect to that layer's output (used by hint losses).

        Returns
        -------
        numpy.ndarray or None
            dLoss/dx, or None when ``need_input_grad`` is False.

        Raises
        ------
        ValueError
            If a key of ``hidden_grads`` is not a layer index, or a gradient has the wrong
            shape.
        TypeError
            If the gradient must pass through an inference-only layer.
        RuntimeError
            If no training forward came before.
        """
        n = len(self.layers)
        g = np.asarray(grad)
        extra = {}
        for k, v in (hidden_grads or {}).items():
            if not -n <= k < n:
                raise ValueError(f"hidden_grads key {k} is not a layer index (the model has {n} layers)")
            extra[k % n] = v
        trainable = [i for i, l in enumerate(self.layers) if isinstance(l, Layer) and l.parameters()]
        first = trainable[0] if trainable else n
        for i in range(n - 1, -1, -1):
            if i in extra:
                g = g + extra[i]
            if not need_input_grad and i < first:
                return None
            layer = self.layers[i]
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] ({type(layer).__name__}) is inference-only: it has no "
                                "backward, so gradients cannot pass through it to the layers before it")
            g = layer.backward(g, need_input_grad=need_input_grad or i > first)
        return g if need_input_grad else None

    def parameters(self) -> list:
        """The trainable arrays: those of the lowbit.nn layers (inference-only layers have none)."""
        return [p for layer in self.layers if isinstance(layer, Layer) for p in layer.parameters()]


_ACTIVATIONS = {"relu": ReLU, "gelu": GELU}


class MLP(Sequential):
    """A multi-layer perceptron.

    Every hidden Linear is followed by the activation and, when ``dropout > 0``, a Dropout.
    Layer i's weights are initialized from a seed derived from (``seed``, i).
    ``MLP([64, 32, 10])`` has layers [Linear, ReLU, Linear]; with dropout,
    [Linear, ReLU, Dropout, Linear]: hint indices refer to these positions.

    Parameters
    ----------
    sizes : sequence of int
        The widths ``[in, h1, ..., out]``, at least two, each >= 1.
    activation : {"relu", "gelu"}, default "relu"
        The activation after every hidden Linear ("gelu": its tanh form).
    dropout : float, default 0.0
        The drop probability of the Dropout after every activation, in [0, 1) (0: none).
    seed : int, default 0
        Seed of the initialization (and of the Dropout layers' generators), >= 0.

    Attributes
    ----------
    sizes : list of int
        The widths.
    activation : str
        The activation.
    dropout : float
        The drop probability.
    seed : int
        The seed.

    Raises
    ------
    TypeError
        If ``sizes`` is not a sequence of integers, or ``dropout``/``seed`` has the wrong type.
    ValueError
        If ``sizes`` holds fewer than 2 widths or one < 1, ``activation`` is unknown, or
        ``dropout``/``seed`` is out of range.
    """

    def __init__(self, sizes, *, activation: str = "relu", dropout: float = 0.0, seed: int = 0):
        try:
            sizes = [s for s in sizes]
        except TypeError:
            raise TypeError(f"sizes must be a list of layer widths [in, hidden..., out], got {type(sizes).__name__}") from None
        if len(sizes) < 2:
            raise ValueError(f"sizes must hold at least 2 widths [in, out], got {sizes}")
        sizes = [_positive_int(s, f"sizes[{i}]") for i, s in enumerate(sizes)]
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        dropout = as_number(dropout, "dropout", 0.0, 1.0, hi_open=True)
        seed = as_seed(seed)
        layers: list = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(a, b, seed=sub_seed(seed, i)))
            if i < len(sizes) - 2:
                layers.append(_ACTIVATIONS[activation]())
                if dropout > 0:
                    layers.append(Dropout(dropout, seed=sub_seed(seed, i, 1)))
        super().__init__(layers)
        self.sizes, self.activation, self.dropout, self.seed = sizes, activation, dropout, seed


# --------------------------------------------------------------------------- trainable copies

_TRAINABLE = {_m.Linear: Linear, _m.ReLU: ReLU, _m.GELU: GELU, _m.Dropout: Dropout,
              _m.LayerNorm: LayerNorm, _m.Softmax: Softmax}


def _trainable_layer(layer):
    if isinstance(layer, Layer):
        return layer.copy()
    if isinstance(layer, _m.Sequential):
        return trainable(layer)
    kind = _TRAINABLE.get(type(layer))
    if kind is Linear:
        return Linear.from_arrays(layer.weight, layer.bias)
    if kind is LayerNorm:
        new = LayerNorm(layer.features, layer.eps)
        new.weight, new.bias = layer.weight.copy(), layer.bias.copy()
        return new
    if kind is GELU:
        return GELU(approximate=layer.approximate)
    if kind is Dropout:
        return Dropout(layer.p)
    if kind is not None:
        return kind()
    return layer  # a quantized or foreign callable: kept as it is (inference-only)


def trainable(model) -> Sequential:
    """A trainable copy of a model.

    Its float layers become lowbit.nn layers holding copies of the arrays (nested Sequentials
    too); lowbit.nn layers are copied; other layers (quantized ones) are kept, inference-only.

    Parameters
    ----------
    model : lowbit.models.Sequential or list of layers
        The model, e.g. from :func:`lowbit.load_model`; it is not modified.

    Returns
    -------
    lowbit.nn.Sequential
        The trainable copy.

    Raises
    ------
    TypeError
        If ``model`` is neither a lowbit Sequential nor a list (or tuple) of layers.
    """
    if isinstance(model, (list, tuple)):
        model = _m.Sequential(model)
    if not isinstance(model, _m.Sequential):
        raise TypeError(f"model must be a lowbit Sequential or a list of layers, got {type(model).__name__}")
    return Sequential([_trainable_layer(layer) for layer in model.layers])


# --------------------------------------------------------------------------- file format

register_layers("nn.", {n: globals()[n] for n in __all__ if n not in ("Layer", "MLP", "trainable")})


def _mlp_from(s):
    need = _io.need
    m = MLP(need(s, "sizes", list, "MLP"), activation=need(s, "activation", str, "MLP"),
            dropout=need(s, "dropout", (int, float), "MLP"), seed=need(s, "seed", int, "MLP"))
    layers = layers_of(s, "MLP")
    if len(layers) != len(m.layers):
        raise ValueError("MLP: the layers do not match the sizes")
    m.layers = layers
    return m


_io.register("nn.MLP", MLP, lambda m: {"sizes": list(m.sizes), "activation": m.activation,
                                       "dropout": m.dropout, "seed": m.seed, "layers": list(m.layers)},
             _mlp_from)
