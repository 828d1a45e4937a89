"""Model helpers shared by the model passes: which layers are Linear, their weights, names and sizes."""
from __future__ import annotations

import numpy as np

from .._checks import as_float32
from .layers import Layer, Linear

ELEMENTWISE = ("ReLU", "GELU", "Dropout", "Identity")  # layers that act on each value alone


# --------------------------------------------------------------------------- model helpers

def is_linear(layer) -> bool:
    """Whether a layer is a float Linear.

    Parameters
    ----------
    layer : object
        Any layer.

    Returns
    -------
    bool
        True for :class:`lowbit.models.Linear`, :class:`lowbit.nn.Linear` and their
        subclasses.
    """
    return isinstance(layer, Linear)


def make_linear(weight, bias=None):
    """A float32 :class:`lowbit.models.Linear` holding copies of the arrays given.

    Parameters
    ----------
    weight : array_like of float, shape (out_features, in_features)
        The weight, non-empty.
    bias : array_like of float, shape (out_features,), optional
        The bias (None: no bias).

    Returns
    -------
    lowbit.models.Linear
        The layer, in float32.

    Raises
    ------
    TypeError
        If ``weight`` or ``bias`` is not a floating-point array.
    ValueError
        If ``weight`` is not a non-empty 2-D array or ``bias`` has the wrong shape.
    """
    w = as_float32(weight, "weight")
    return Linear(w, None if bias is None else as_float32(bias, "bias"))


def linear_indices(model) -> list[int]:
    """Positions of the float Linear layers in a model.

    Parameters
    ----------
    model : Sequential
        A model with a ``layers`` list.

    Returns
    -------
    list of int
        The indices ``i`` of ``model.layers`` for which :func:`is_linear` holds, in order.
    """
    return [i for i, layer in enumerate(model.layers) if is_linear(layer)]


def weight_of(layer) -> np.ndarray:
    """The float weight a Linear layer's product uses.

    For a :mod:`lowbit.nn` Linear that trains something else (fake quantization, shared
    weights) this is the effective weight (fake-quantized / decoded), else ``layer.weight``.

    Parameters
    ----------
    layer : Linear
        A float Linear layer (see :func:`is_linear`).

    Returns
    -------
    numpy.ndarray
        float32 ``(out_features, in_features)``.
    """
    eff = getattr(layer, "_effective_weight", None)
    w = eff(False) if callable(eff) else layer.weight
    return np.asarray(w, np.float32)


def layer_name(model, i: int) -> str:
    layer = model.layers[i]
    shape = ""
    if hasattr(layer, "in_features") and hasattr(layer, "out_features"):
        shape = f" {layer.in_features}->{layer.out_features}"
    return f"{i}:{type(layer).__name__}{shape}"


def layer_nbytes(layer) -> int:
    """Bytes a layer holds in memory.

    Parameters
    ----------
    layer : object
        A lowbit layer or any callable layer.

    Returns
    -------
    int
        Its own ``nbytes`` (a quantized layer's packed weights, scales and bias as the kernels
        use them; a float layer's parameter arrays); 0 for a callable without ``nbytes``.
    """
    if isinstance(layer, Layer) or hasattr(layer, "nbytes"):
        return int(layer.nbytes)
    return 0


def model_nbytes(model) -> int:
    """Bytes all layers of a model hold in memory.

    Parameters
    ----------
    model : Sequential or list
        A model with a ``layers`` list, or an iterable of layers.

    Returns
    -------
    int
        The sum of :func:`layer_nbytes` over the layers.
    """
    layers = model.layers if hasattr(model, "layers") else list(model)
    return int(sum(layer_nbytes(layer) for layer in layers))
