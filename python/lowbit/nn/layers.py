"""Layers with hand-written forward and backward passes, float32 (float64 for gradient checks).

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

import copy
import math
import numbers

import numpy as np

from ._util import FLOAT_DTYPES, as_float, as_number, as_seed, sub_seed

__all__ = ["Layer", "Linear", "ReLU", "GELU", "Dropout", "LayerNorm", "Softmax", "Sequential", "MLP"]


class Layer:
    """Base class of lowbit.nn layers (see the module docstring for the protocol)."""

    _params: tuple = ()  # names of trainable array attributes

    def __init__(self):
        self._cache: dict = {}

    # --- protocol -------------------------------------------------------------------------
    def forward(self, x, train: bool = False, rng=None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def backward(self, grad, need_input_grad: bool = True):  # pragma: no cover
        raise NotImplementedError

    def __call__(self, x) -> np.ndarray:
        """Inference: a fresh array, no dropout."""
        if not self._params:  # parameter-free layers keep float64 input as float64
            x = as_float(x, "x", None)
            if x.dtype not in FLOAT_DTYPES:
                x = x.astype(np.float32)
            return self.forward(x, train=False)
        return self.forward(as_float(x, "x", self.dtype), train=False)

    def parameters(self) -> list:
        """The trainable arrays (updated in place by the optimizers)."""
        return [getattr(self, n) for n in self._params]

    def gradients(self) -> list:
        """The gradient arrays of the last backward, in the order of parameters()."""
        return [self._grad(n) for n in self._params]

    # --- helpers --------------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """The dtype the layer computes in: that of its parameters (float32 unless astype'd)."""
        for n in self._params:
            return getattr(self, n).dtype
        return self._cache.get("dtype", np.dtype(np.float32))

    def astype(self, dtype) -> "Layer":
        """Converts parameters (in place) to float32 or float64 and returns self. float64 exists
        for finite-difference gradient checks; training and inference use float32."""
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        for n in self._params:
            setattr(self, n, np.ascontiguousarray(getattr(self, n), dtype=dtype))
        self._cache = {"dtype": dtype}
        return self

    def copy(self) -> "Layer":
        """An independent deep copy (parameters copied, training caches dropped)."""
        new = type(self).__new__(type(self))  # not copy.copy: that pickles through lowbit.io
        new.__dict__ = {k: (copy.deepcopy(v) if k != "_cache" else {}) for k, v in self.__dict__.items()}
        if "dtype" in self._cache:
            new._cache["dtype"] = self._cache["dtype"]
        return new

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

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _check_grad(grad, like: np.ndarray) -> np.ndarray:
    g = np.asarray(grad)
    if g.shape != like.shape:
        raise ValueError(f"grad must have the shape of the layer's output {like.shape}, got {g.shape}")
    return np.asarray(g, dtype=like.dtype)


class Linear(Layer):
    """y = x W^T + b, with ``weight`` (out_features, in_features) and ``bias`` (out_features,):
    the layout of torch.nn.Linear, initialized like it (uniform in +-1/sqrt(in_features)) from
    ``seed``. ``bias=False`` makes a layer without bias (``bias`` is then None)."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, seed: int = 0,
                 dtype=np.float32):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        seed = as_seed(seed)
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(dtype)
        self.bias = rng.uniform(-bound, bound, self.out_features).astype(dtype) if bias else None
        self._params = ("weight", "bias") if bias else ("weight",)

    @classmethod
    def from_arrays(cls, weight, bias=None) -> "Linear":
        """A Linear holding copies of `weight` (out, in) and `bias` (out,) or None."""
        w = as_float(weight, "weight", np.float64 if np.asarray(weight).dtype == np.float64 else np.float32)
        if w.ndim != 2 or w.size == 0:
            raise ValueError(f"weight must be a non-empty 2-D array (out_features, in_features), got shape {w.shape}")
        layer = cls(w.shape[1], w.shape[0], bias=bias is not None, dtype=w.dtype)
        layer.weight = w.copy()
        if bias is not None:
            b = as_float(bias, "bias", w.dtype)
            if b.shape != (w.shape[0],):
                raise ValueError(f"bias must have shape ({w.shape[0]},), got {b.shape}")
            layer.bias = b.copy()
        return layer

    def _effective_weight(self, train: bool) -> np.ndarray:
        """The weight the product uses (fake-quantized / decoded in subclasses)."""
        return self.weight

    def _input(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {x.shape}")
        return x

    def forward(self, x, train=False, rng=None):
        x = self._input(x)
        w = self._effective_weight(train)
        if not train:
            y = x @ w.T
            if self.bias is not None:
                y += self.bias
            return y
        if x.ndim != 2:
            raise ValueError(f"x must be 2-D (batch, {self.in_features}) for training, got {x.shape}")
        self._cache["x"] = x
        self._cache["w"] = w
        y = self._buffer("y", (x.shape[0], self.out_features), x.dtype)
        np.matmul(x, w.T, out=y)
        if self.bias is not None:
            y += self.bias
        return y

    def backward(self, grad, need_input_grad=True):
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

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(in_features={self.in_features}, out_features={self.out_features}"
                f"{'' if self.bias is not None else ', bias=False'})")


class ReLU(Layer):
    """max(x, 0)."""

    def forward(self, x, train=False, rng=None):
        x = np.asarray(x)
        if not train:
            return np.maximum(x, 0)
        y = self._buffer("y", x.shape, x.dtype)
        np.maximum(x, 0, out=y)
        self._cache["out"] = y
        return y

    def backward(self, grad, need_input_grad=True):
        y = self._saved("out")
        g = _check_grad(grad, y)
        if not need_input_grad:
            return None
        mask = self._buffer("mask", y.shape, np.bool_)
        np.greater(y, 0, out=mask)
        dx = self._buffer("dx", y.shape, y.dtype)
        np.multiply(g, mask, out=dx)
        return dx


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf  # optional; exact to float64 rounding
        return erf(x)
    except ImportError:
        return np.vectorize(math.erf, otypes=[x.dtype])(x)


class GELU(Layer):
    """x * Phi(x). ``approximate="tanh"`` (default, fast) uses
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), like torch.nn.GELU(approximate="tanh");
    ``approximate="none"`` is the exact erf form (scipy.special.erf if installed, else math.erf
    element by element, slow)."""

    _C = math.sqrt(2.0 / math.pi)

    def __init__(self, approximate: str = "tanh"):
        super().__init__()
        if approximate not in ("tanh", "none"):
            raise ValueError(f"approximate must be 'tanh' or 'none', got {approximate!r}")
        self.approximate = approximate

    def _parts(self, x):
        if self.approximate == "tanh":
            u = self._C * (x + 0.044715 * x * x * x)
            cdf = 0.5 * (1.0 + np.tanh(u))
        else:
            cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
        return cdf.astype(x.dtype, copy=False)

    def forward(self, x, train=False, rng=None):
        x = np.asarray(x)
        cdf = self._parts(x)
        if train:
            self._cache["x"], self._cache["cdf"] = x, cdf
        return x * cdf

    def backward(self, grad, need_input_grad=True):
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

    def __repr__(self) -> str:
        return f"GELU(approximate={self.approximate!r})"


class Dropout(Layer):
    """Inverted dropout: in training each value is zeroed with probability ``p`` and the rest are
    scaled by 1/(1-p); inference is the identity. Masks come from the ``rng`` passed to forward
    (lowbit.nn.fit passes one derived from its seed), else from the layer's own generator."""

    def __init__(self, p: float = 0.5, *, seed: int = 0):
        super().__init__()
        self.p = as_number(p, "p", 0.0, 1.0, hi_open=True)
        self._rng = np.random.default_rng(as_seed(seed))

    def forward(self, x, train=False, rng=None):
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

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


class LayerNorm(Layer):
    """Normalizes the last axis to zero mean and unit variance (biased variance, ``eps`` inside the
    square root, like torch.nn.LayerNorm), then scales by ``weight`` and shifts by ``bias``
    (both (features,), initialized to 1 and 0)."""

    _params = ("weight", "bias")

    def __init__(self, features: int, eps: float = 1e-5, *, dtype=np.float32):
        super().__init__()
        self.features = _positive_int(features, "features")
        self.eps = as_number(eps, "eps", 0.0, lo_open=True)
        self.weight = np.ones(self.features, dtype)
        self.bias = np.zeros(self.features, dtype)

    def forward(self, x, train=False, rng=None):
        x = np.asarray(x, dtype=self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.features:
            raise ValueError(f"x must have shape (..., {self.features}), got {x.shape}")
        mu = x.mean(axis=-1, keepdims=True)
        xc = x - mu
        var = np.mean(xc * xc, axis=-1, keepdims=True)
        rstd = 1.0 / np.sqrt(var + self.eps)
        xhat = xc * rstd
        if train:
            self._cache["xhat"], self._cache["rstd"] = xhat, rstd
        return xhat * self.weight + self.bias

    def backward(self, grad, need_input_grad=True):
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

    def __repr__(self) -> str:
        return f"LayerNorm({self.features}, eps={self.eps})"


class Softmax(Layer):
    """softmax over the last axis (numerically stable). Meant as the last layer of an inference
    model that should return probabilities; for training, leave it out and let the loss take
    logits (the losses apply their own log-softmax)."""

    def forward(self, x, train=False, rng=None):
        x = np.asarray(x)
        z = x - x.max(axis=-1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=-1, keepdims=True)
        if train:
            self._cache["p"] = p
        return p

    def backward(self, grad, need_input_grad=True):
        p = self._saved("p")
        g = _check_grad(grad, p)
        if not need_input_grad:
            return None
        return p * (g - np.sum(g * p, axis=-1, keepdims=True))


def _positive_int(v, name: str) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {type(v).__name__}")
    if int(v) < 1:
        raise ValueError(f"{name} must be a positive integer, got {int(v)}")
    return int(v)


class Sequential(Layer):
    """Layers applied in order. ``layers`` is a plain list: any entry may be replaced by another
    callable layer (e.g. a lowbit.QuantizedLinear) for inference.

    - ``model(x)``: inference logits (float32, no dropout), for x of shape (..., in_features).
    - ``forward(x, train=False, *, return_hidden=False, rng=None)``: with ``return_hidden`` returns
      ``(output, hidden)`` where ``hidden[i]`` is the output of ``layers[i]`` (so
      ``hidden[-1] is output``); the same list is kept as ``model.hidden`` after every forward.
    - ``backward(grad, need_input_grad=True, *, hidden_grads=None)``: back-propagates
      dLoss/doutput after a training forward, writing every layer's parameter gradients, and
      returns dLoss/dx (``need_input_grad=False`` skips it, and the layers before the first
      trainable one, as the trainers do); ``hidden_grads`` maps a layer index to an extra gradient
      with respect to that layer's output (used by hint losses).
    """

    def __init__(self, layers):
        super().__init__()
        if isinstance(layers, Layer) or callable(layers) or isinstance(layers, (str, bytes)):
            raise TypeError("layers must be a list of layers")
        try:
            layers = list(layers)
        except TypeError:
            raise TypeError(f"layers must be a list of layers, got {type(layers).__name__}") from None
        for i, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(f"layers[{i}] must be a layer (a callable x -> array), got {type(layer).__name__}")
        self.layers = layers
        self.hidden: list = []

    # --- structure ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    @property
    def in_features(self) -> int | None:
        """Input width of the first layer that declares one (None if unknown)."""
        for layer in self.layers:
            n = getattr(layer, "in_features", None) or getattr(layer, "features", None)
            if n is not None:
                return int(n)
        return None

    @property
    def out_features(self) -> int | None:
        for layer in reversed(self.layers):
            n = getattr(layer, "out_features", None) or getattr(layer, "features", None)
            if n is not None:
                return int(n)
        return None

    @property
    def dtype(self) -> np.dtype:
        for layer in self.layers:
            if isinstance(layer, Layer) and layer.parameters():
                return layer.dtype
        return self._cache.get("dtype", np.dtype(np.float32))

    def parameters(self) -> list:
        return [p for layer in self.layers if isinstance(layer, Layer) for p in layer.parameters()]

    def gradients(self) -> list:
        return [g for layer in self.layers if isinstance(layer, Layer) for g in layer.gradients()]

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.parameters()))

    def get_weights(self) -> list:
        """Copies of parameters(), e.g. to restore later with set_weights."""
        return [p.copy() for p in self.parameters()]

    def set_weights(self, weights) -> None:
        """Copies `weights` (as from get_weights) into the parameters, in place."""
        params = self.parameters()
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"weights must hold {len(params)} arrays, got {len(weights)}")
        for i, (p, w) in enumerate(zip(params, weights)):
            w = np.asarray(w)
            if w.shape != p.shape:
                raise ValueError(f"weights[{i}] must have shape {p.shape}, got {w.shape}")
            np.copyto(p, w)

    def astype(self, dtype) -> "Sequential":
        for layer in self.layers:
            if isinstance(layer, Layer):
                layer.astype(dtype)
        self._cache = {"dtype": np.dtype(dtype)}
        return self

    def copy(self) -> "Sequential":
        """A deep copy; layers that are not lowbit.nn layers (e.g. QuantizedLinear, immutable)
        are shared, not copied."""
        new = type(self).__new__(type(self))  # not copy.copy: that pickles through lowbit.io
        new.__dict__ = {k: v for k, v in self.__dict__.items()}
        new.layers = [l.copy() if isinstance(l, Layer) else l for l in self.layers]
        new.hidden = []
        new._cache = {}
        return new

    # --- passes ---------------------------------------------------------------------------
    def __call__(self, x) -> np.ndarray:
        """Inference output (logits for a classifier), float32, no dropout."""
        return self.forward(x, train=False)

    def forward(self, x, train=False, rng=None, *, return_hidden=False):
        dtype = self.dtype
        h = as_float(x, "x", dtype)
        n_in = self.in_features
        if h.ndim == 0 or (n_in is not None and h.shape[-1] != n_in):
            raise ValueError(f"x must have shape (..., {n_in}), got {h.shape}")
        if train and h.ndim != 2:
            raise ValueError(f"x must be 2-D (batch, features) for training, got shape {h.shape}")
        hidden = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Layer):
                h = layer.forward(h, train=train, rng=rng)
            else:
                h = np.asarray(layer(h))
                if h.dtype != dtype:
                    h = h.astype(dtype)
            hidden.append(h)
        self.hidden = hidden
        return (h, hidden) if return_hidden else h

    def backward(self, grad, need_input_grad=True, *, hidden_grads=None):
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

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(l) for l in self.layers)
        return f"{type(self).__name__}([\n  {inner}\n])"


_ACTIVATIONS = {"relu": ReLU, "gelu": GELU}


class MLP(Sequential):
    """A multi-layer perceptron: ``sizes=[in, h1, ..., out]``; every hidden Linear is followed by
    the activation ("relu" or "gelu", tanh form) and, when ``dropout > 0``, a Dropout. Layer i's
    weights are initialized from a seed derived from (``seed``, i).

    ``MLP([64, 32, 10])`` has layers [Linear, ReLU, Linear]; with dropout,
    [Linear, ReLU, Dropout, Linear]: hint indices refer to these positions.
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
