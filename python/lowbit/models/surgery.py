"""Structural compression of a whole model: hidden units pruned away, a Linear split in two
low-rank factors. (The tensor-level operations are in lowbit.compress.)"""
from __future__ import annotations

import numpy as np

from ..compress import as_fraction, low_rank, rows_to_keep
from .graph import ELEMENTWISE, is_linear, make_linear
from .layers import Sequential
from .loaders import as_model


def low_rank_layers(weight, bias=None, rank=None, *, energy=None) -> list:
    """A Linear layer split in two low-rank factors (truncated SVD, see :func:`lowbit.low_rank`).

    Parameters
    ----------
    weight : array_like of float, shape (out_features, in_features)
        The weight, non-empty and finite.
    bias : array_like of float, shape (out_features,), optional
        The bias (None: no bias).
    rank : int, optional
        The rank, 1 .. min(out_features, in_features).
    energy : float, optional
        In (0, 1]: the smallest rank keeping that fraction of sum(S^2). Give exactly one of
        ``rank`` and ``energy``.

    Returns
    -------
    list of lowbit.models.Linear
        ``[Linear(in -> rank, no bias), Linear(rank -> out, bias)]`` computing about
        x W^T + b, as :class:`lowbit.models.Linear` layers (so they run, save, and quantize
        like any other).

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If both or neither of ``rank`` and ``energy`` are given, one is out of its range,
        ``weight`` is not a non-empty finite 2-D array, or ``bias`` has the wrong shape.
    """
    w1, w2 = low_rank(weight, rank, energy=energy)
    return [make_linear(w1, None), make_linear(w2, bias)]


def prune_hidden_units(model, sparsity):
    """Structured pruning of a whole model: hidden units removed for real.

    ``sparsity`` of the hidden units of every Linear -> elementwise activation -> Linear pair
    are removed: the rows of smallest L2 norm of the first Linear (and its bias entries) and
    the matching columns of the next (at least one unit is kept). The last Linear's outputs
    are never removed; LayerNorm (or any other non-elementwise layer) between the two stops
    the pairing.

    Parameters
    ----------
    model : Sequential, list of layers or str
        The model (anything :func:`lowbit.models.as_model` accepts); it is not modified.
    sparsity : float
        The fraction of hidden units to remove, in [0, 1].

    Returns
    -------
    lowbit.models.Sequential
        A plain Sequential copy of the model with the smaller layers.

    Raises
    ------
    TypeError
        If ``sparsity`` is not a number, or ``model`` is not a model.
    ValueError
        If ``sparsity`` is not in [0, 1].
    """
    s = as_fraction(sparsity, "sparsity")
    out = Sequential(as_model(model).copy().layers)  # a plain Sequential: the sizes change
    layers = out.layers
    lin = [i for i, layer in enumerate(layers) if is_linear(layer)]
    for a, b in zip(lin, lin[1:]):
        if not all(type(layers[j]).__name__ in ELEMENTWISE for j in range(a + 1, b)):
            continue
        w, bias = np.asarray(layers[a].weight), layers[a].bias
        keep = rows_to_keep(w, s)
        layers[a] = make_linear(w[keep], None if bias is None else np.asarray(bias)[keep])
        nxt = layers[b]
        layers[b] = make_linear(np.asarray(nxt.weight)[:, keep], nxt.bias)
    return out
