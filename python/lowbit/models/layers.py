"""Forward-only layers and Sequential: what a loaded or quantized model is made of.

These classes compute inference only (``layer(x)`` returns a fresh float array). lowbit.nn
subclasses each of them with the training pass (``forward(x, train=True)``, ``backward``,
gradients), so every lowbit.nn layer is also one of these; a model loaded from a file or a torch
module is made of these and becomes trainable with ``lowbit.nn.trainable(model)``.

A Sequential may hold any other callable ``x -> array`` (a lowbit.QuantizedLinear, say).
"""
from __future__ import annotations

import copy
import math

import numpy as np

from .. import io as _io
from .._checks import FLOAT_DTYPES, as_float, as_number, positive_int

__all__ = ["Layer", "Linear", "ReLU", "GELU", "Dropout", "LayerNorm", "Softmax", "Sequential"]


class Layer:
    """Base class of the forward-only layers.

    ``layer(x)`` is inference and returns a fresh array; ``parameters()`` lists the layer's
    arrays (what its size counts). Subclasses implement :meth:`forward`.
    """

    _params: tuple = ()  # names of the parameter array attributes

    def __init__(self):
        self._cache: dict = {}

    def forward(self, x) -> np.ndarray:  # pragma: no cover
        """The layer's computation (implemented by subclasses; ``layer(x)`` calls it).

        Parameters
        ----------
        x : numpy.ndarray
            The input, a float array (``layer(x)`` has converted it).

        Returns
        -------
        numpy.ndarray
            The output.
        """
        raise NotImplementedError

    def __call__(self, x) -> np.ndarray:
        """Inference: a fresh array, no dropout."""
        if not self._params:  # parameter-free layers keep float64 input as float64
            x = as_float(x, "x", None)
            if x.dtype not in FLOAT_DTYPES:
                x = x.astype(np.float32)
            return self.forward(x)
        return self.forward(as_float(x, "x", self.dtype))

    def parameters(self) -> list:
        """The layer's arrays (the trainable ones, for a lowbit.nn layer)."""
        return [getattr(self, n) for n in self._params]

    @property
    def nbytes(self) -> int:
        """Bytes of the parameter arrays."""
        return int(sum(p.nbytes for p in self.parameters()))

    @property
    def dtype(self) -> np.dtype:
        """The dtype the layer computes in: that of its parameters (float32 unless astype'd)."""
        for n in self._params:
            return getattr(self, n).dtype
        return self._cache.get("dtype", np.dtype(np.float32))

    def astype(self, dtype) -> "Layer":
        """Convert the parameters (in place) to float32 or float64.

        float64 exists for finite-difference gradient checks; training and inference use
        float32.

        Parameters
        ----------
        dtype : numpy.dtype or str or type
            float32 or float64.

        Returns
        -------
        Layer
            ``self``.

        Raises
        ------
        TypeError
            If ``dtype`` is neither float32 nor float64.
        """
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Linear(Layer):
    """A float linear layer: y = x W^T + b.

    The layout of torch.nn.Linear. Holds copies of the arrays given, in float64 if ``weight``
    is float64, else in float32.

    Parameters
    ----------
    weight : array_like of float, shape (out_features, in_features)
        The weight, non-empty.
    bias : array_like of float, shape (out_features,), optional
        The bias (None: no bias).

    Attributes
    ----------
    weight : numpy.ndarray
        ``(out_features, in_features)``.
    bias : numpy.ndarray or None
        ``(out_features,)``, or None.
    in_features : int
        Length of the input rows.
    out_features : int
        Length of the output rows.

    Raises
    ------
    TypeError
        If ``weight`` or ``bias`` is not a floating-point array.
    ValueError
        If ``weight`` is not a non-empty 2-D array or ``bias`` does not have shape
        ``(out_features,)``.
    """

    def __init__(self, weight, bias=None):
        super().__init__()
        w = as_float(weight, "weight", np.float64 if np.asarray(weight).dtype == np.float64 else np.float32)
        if w.ndim != 2 or w.size == 0:
            raise ValueError(f"weight must be a non-empty 2-D array (out_features, in_features), got shape {w.shape}")
        self.out_features, self.in_features = (int(s) for s in w.shape)
        self.weight = w.copy()
        self.bias = None
        if bias is not None:
            b = as_float(bias, "bias", w.dtype)
            if b.shape != (w.shape[0],):
                raise ValueError(f"bias must have shape ({w.shape[0]},), got {b.shape}")
            self.bias = b.copy()
        self._params = ("weight", "bias") if bias is not None else ("weight",)

    @classmethod
    def from_arrays(cls, weight, bias=None) -> "Linear":
        """A Linear holding copies of the arrays given.

        Parameters
        ----------
        weight : array_like of float, shape (out_features, in_features)
            The weight, non-empty.
        bias : array_like of float, shape (out_features,), optional
            The bias (None: no bias).

        Returns
        -------
        Linear
            The layer (of the class it is called on).
        """
        return cls(weight, bias)

    def _effective_weight(self, train: bool) -> np.ndarray:
        """The weight the product uses (fake-quantized / decoded in lowbit.nn subclasses)."""
        return self.weight

    def _input(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {x.shape}")
        return x

    def forward(self, x) -> np.ndarray:
        """The product x W^T + b.

        Parameters
        ----------
        x : array_like, shape (..., in_features)
            The input (converted to the weight's dtype).

        Returns
        -------
        numpy.ndarray
            ``(..., out_features)``.

        Raises
        ------
        ValueError
            If the last axis of ``x`` is not ``in_features`` long.
        """
        y = self._input(x) @ self._effective_weight(False).T
        if self.bias is not None:
            y += self.bias
        return y

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(in_features={self.in_features}, out_features={self.out_features}"
                f"{'' if self.bias is not None else ', bias=False'})")


class ReLU(Layer):
    """The rectifier: max(x, 0)."""

    def forward(self, x) -> np.ndarray:
        """max(x, 0), element by element.

        Parameters
        ----------
        x : array_like
            The input.

        Returns
        -------
        numpy.ndarray
            An array of the shape of ``x``.
        """
        return np.maximum(np.asarray(x), 0)


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf  # optional; exact to float64 rounding
        return erf(x)
    except ImportError:
        return np.vectorize(math.erf, otypes=[x.dtype])(x)


class GELU(Layer):
    """The Gaussian error linear unit: x * Phi(x).

    Parameters
    ----------
    approximate : {"tanh", "none"}, default "tanh"
        ``"tanh"`` (fast) uses 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), like
        torch.nn.GELU(approximate="tanh"); ``"none"`` is the exact erf form
        (scipy.special.erf if installed, else math.erf element by element, slow).

    Raises
    ------
    ValueError
        If ``approximate`` is neither ``"tanh"`` nor ``"none"``.
    """

    _C = math.sqrt(2.0 / math.pi)

    def __init__(self, approximate: str = "tanh"):
        super().__init__()
        if approximate not in ("tanh", "none"):
            raise ValueError(f"approximate must be 'tanh' or 'none', got {approximate!r}")
        self.approximate = approximate

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        if self.approximate == "tanh":
            cdf = 0.5 * (1.0 + np.tanh(self._C * (x + 0.044715 * x * x * x)))
        else:
            cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
        return cdf.astype(x.dtype, copy=False)

    def forward(self, x) -> np.ndarray:
        """x * Phi(x), element by element.

        Parameters
        ----------
        x : array_like of float
            The input.

        Returns
        -------
        numpy.ndarray
            An array of the shape and dtype of ``x``.
        """
        x = np.asarray(x)
        return x * self._cdf(x)

    def __repr__(self) -> str:
        return f"GELU(approximate={self.approximate!r})"


class Dropout(Layer):
    """Dropout: the identity at inference.

    Parameters
    ----------
    p : float, default 0.5
        The drop probability, in [0, 1); kept for training with :class:`lowbit.nn.Dropout` and
        for export.

    Raises
    ------
    TypeError
        If ``p`` is not a number.
    ValueError
        If ``p`` is not in [0, 1).
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = as_number(p, "p", 0.0, 1.0, hi_open=True)

    def forward(self, x) -> np.ndarray:
        """The identity.

        Parameters
        ----------
        x : array_like
            The input.

        Returns
        -------
        numpy.ndarray
            A copy of ``x``.
        """
        return np.array(x)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


class LayerNorm(Layer):
    """Layer normalization over the last axis.

    Normalizes the last axis to zero mean and unit variance (biased variance, ``eps`` inside
    the square root, like torch.nn.LayerNorm), then scales by ``weight`` and shifts by ``bias``
    (both ``(features,)``, initialized to 1 and 0).

    Parameters
    ----------
    features : int
        Length of the normalized (last) axis, >= 1.
    eps : float, default 1e-5
        Added to the variance, > 0.
    dtype : numpy.dtype, default numpy.float32
        The dtype of ``weight`` and ``bias``.

    Attributes
    ----------
    weight : numpy.ndarray
        The scale, ``(features,)``.
    bias : numpy.ndarray
        The shift, ``(features,)``.
    features : int
        Length of the normalized axis.
    eps : float
        Added to the variance.

    Raises
    ------
    TypeError
        If ``features`` is not an integer or ``eps`` not a number.
    ValueError
        If ``features`` < 1 or ``eps`` <= 0.
    """

    _params = ("weight", "bias")

    def __init__(self, features: int, eps: float = 1e-5, *, dtype=np.float32):
        super().__init__()
        self.features = positive_int(features, "features")
        self.eps = as_number(eps, "eps", 0.0, lo_open=True)
        self.weight = np.ones(self.features, dtype)
        self.bias = np.zeros(self.features, dtype)

    def _normalize(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(xhat, 1/std) of the last axis."""
        x = np.asarray(x, dtype=self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.features:
            raise ValueError(f"x must have shape (..., {self.features}), got {x.shape}")
        xc = x - x.mean(axis=-1, keepdims=True)
        rstd = 1.0 / np.sqrt(np.mean(xc * xc, axis=-1, keepdims=True) + self.eps)
        return xc * rstd, rstd

    def forward(self, x) -> np.ndarray:
        """The normalized, scaled and shifted input.

        Parameters
        ----------
        x : array_like, shape (..., features)
            The input (converted to the parameters' dtype).

        Returns
        -------
        numpy.ndarray
            An array of the shape of ``x``.

        Raises
        ------
        ValueError
            If the last axis of ``x`` is not ``features`` long.
        """
        return self._normalize(x)[0] * self.weight + self.bias

    def __repr__(self) -> str:
        return f"LayerNorm({self.features}, eps={self.eps})"


class Softmax(Layer):
    """softmax over the last axis (numerically stable).

    Meant as the last layer of an inference model that should return probabilities; for
    training, leave it out and let the loss take logits (the losses apply their own
    log-softmax).
    """

    def forward(self, x) -> np.ndarray:
        """softmax of the last axis.

        Parameters
        ----------
        x : array_like of float
            The input (logits).

        Returns
        -------
        numpy.ndarray
            An array of the shape of ``x`` whose last axis sums to 1.
        """
        x = np.asarray(x)
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


class Sequential(Layer):
    """Layers applied in order.

    ``layers`` is a plain list: any entry may be replaced by another callable layer (e.g. a
    :class:`lowbit.QuantizedLinear`).

    - ``model(x)``: the output (in the model's :attr:`dtype`, normally float32), for x of
      shape ``(..., in_features)``.
    - ``forward(x, *, return_hidden=False)``: with ``return_hidden`` returns
      ``(output, hidden)`` where ``hidden[i]`` is the output of ``layers[i]`` (so
      ``hidden[-1] is output``); the same list is kept as ``model.hidden`` after every forward.

    ``len(model)``, ``model[i]`` and iteration go through ``layers``.

    Parameters
    ----------
    layers : iterable of callable
        The layers: lowbit layers, or any callable ``x -> array``.

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
        """Output width of the last layer that declares one (None if unknown)."""
        for layer in reversed(self.layers):
            n = getattr(layer, "out_features", None) or getattr(layer, "features", None)
            if n is not None:
                return int(n)
        return None

    @property
    def dtype(self) -> np.dtype:
        """The dtype the model computes in: that of its first lowbit layer with parameters
        (normally float32), else the one given to astype, else float32."""
        for layer in self.layers:
            if isinstance(layer, Layer) and layer.parameters():
                return layer.dtype
        return self._cache.get("dtype", np.dtype(np.float32))

    def parameters(self) -> list:
        """The parameter arrays of the lowbit layers, in order.

        Returns
        -------
        list of numpy.ndarray
            The arrays themselves, not copies (other callables, e.g. QuantizedLinear,
            contribute none).
        """
        return [p for layer in self.layers if isinstance(layer, Layer) for p in layer.parameters()]

    @property
    def nbytes(self) -> int:
        """Bytes held by all layers: parameter arrays, or a quantized layer's own nbytes."""
        return int(sum(getattr(layer, "nbytes", 0) for layer in self.layers))

    def num_parameters(self) -> int:
        """The number of parameter values.

        Returns
        -------
        int
            The total size of :meth:`parameters`.
        """
        return int(sum(p.size for p in self.parameters()))

    def astype(self, dtype) -> "Sequential":
        """Convert the parameters of every lowbit layer (in place) to float32 or float64.

        Parameters
        ----------
        dtype : numpy.dtype or str or type
            float32 or float64.

        Returns
        -------
        Sequential
            ``self``.

        Raises
        ------
        TypeError
            If ``dtype`` is neither float32 nor float64 (checked by the lowbit layers held).
        """
        for layer in self.layers:
            if isinstance(layer, Layer):
                layer.astype(dtype)
        self._cache = {"dtype": np.dtype(dtype)}
        return self

    def copy(self) -> "Sequential":
        """A deep copy; layers that are not lowbit layers (e.g. QuantizedLinear, immutable) are
        shared, not copied."""
        new = type(self).__new__(type(self))  # not copy.copy: that pickles through lowbit.io
        new.__dict__ = {k: v for k, v in self.__dict__.items()}
        new.layers = [l.copy() if isinstance(l, Layer) else l for l in self.layers]
        new.hidden = []
        new._cache = {}
        return new

    def __call__(self, x) -> np.ndarray:
        """Inference output (logits for a classifier), in the model's dtype, no dropout."""
        return self.forward(x)

    def _check_input(self, x) -> np.ndarray:
        h = as_float(x, "x", self.dtype)
        n_in = self.in_features
        if h.ndim == 0 or (n_in is not None and h.shape[-1] != n_in):
            raise ValueError(f"x must have shape (..., {n_in}), got {h.shape}")
        return h

    def forward(self, x, *, return_hidden=False):
        """Apply the layers in order.

        Parameters
        ----------
        x : array_like of float, shape (..., in_features)
            The input (converted to the model's dtype).
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
            If the last axis of ``x`` does not match ``in_features``.
        """
        h, dtype, hidden = self._check_input(x), self.dtype, []
        for layer in self.layers:
            h = np.asarray(layer(h))
            if h.dtype != dtype:
                h = h.astype(dtype)
            hidden.append(h)
        self.hidden = hidden
        return (h, hidden) if return_hidden else h

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(l) for l in self.layers)
        return f"{type(self).__name__}([\n  {inner}\n])"


# --------------------------------------------------------------------------- file format

def _linear_to(layer) -> dict:
    # subclasses that train something else (fake quantization, shared weights) register their own
    return {"weight": np.asarray(layer._effective_weight(False)),
            "bias": None if layer.bias is None else np.asarray(layer.bias)}


def _linear_from(s, cls):
    w = _io.need_array(s, "weight", "Linear", kind="f")
    b = s.get("bias")
    if b is not None:
        b = _io.need_array(s, "bias", "Linear", kind="f", shape=(w.shape[0],) if w.ndim == 2 else None)
    return cls.from_arrays(w, b)


def _layernorm_from(s, cls):
    feats = _io.need(s, "features", int, "LayerNorm")
    ln = cls(feats, eps=_io.need(s, "eps", (int, float), "LayerNorm"))
    ln.weight = _io.need_array(s, "weight", "LayerNorm", kind="f", shape=(feats,))
    ln.bias = _io.need_array(s, "bias", "LayerNorm", kind="f", shape=(feats,))
    return ln


def layers_of(s: dict, what: str) -> list:
    """The "layers" list of a saved Sequential's state, checked."""
    layers = _io.need(s, "layers", list, what)
    for k, layer in enumerate(layers):
        if not callable(layer):
            raise ValueError(f"{what}: layers[{k}] is not a layer")
    return layers


def register_layers(prefix: str, classes: dict) -> None:
    """Registers one family of layer classes with lowbit.io under `prefix` + name: these
    (prefix "models.") or their lowbit.nn subclasses ("nn.", the names of files written before
    the forward-only classes existed). `classes` maps the names of __all__ to the classes."""
    need, c = _io.need, classes
    _io.register(prefix + "Linear", c["Linear"], _linear_to, lambda s: _linear_from(s, c["Linear"]))
    _io.register(prefix + "LayerNorm", c["LayerNorm"],
                 lambda m: {"features": m.features, "eps": m.eps, "weight": m.weight, "bias": m.bias},
                 lambda s: _layernorm_from(s, c["LayerNorm"]))
    _io.register(prefix + "ReLU", c["ReLU"], lambda m: {}, lambda s: c["ReLU"]())
    _io.register(prefix + "Softmax", c["Softmax"], lambda m: {}, lambda s: c["Softmax"]())
    _io.register(prefix + "GELU", c["GELU"], lambda m: {"approximate": m.approximate},
                 lambda s: c["GELU"](approximate=need(s, "approximate", str, "GELU")))
    _io.register(prefix + "Dropout", c["Dropout"], lambda m: {"p": m.p},
                 lambda s: c["Dropout"](need(s, "p", (int, float), "Dropout")))
    _io.register(prefix + "Sequential", c["Sequential"], lambda m: {"layers": list(m.layers)},
                 lambda s: c["Sequential"](layers_of(s, "Sequential")))


register_layers("models.", {n: globals()[n] for n in __all__ if n != "Layer"})
