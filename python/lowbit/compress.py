"""Weight compression beyond linear quantization: binary weights, pruning, low-rank factorisation.

Each works on float weight matrices (out_features, in_features) and returns float weights (or a
layer) that can be quantized afterwards, e.g. `QuantizedLinear(prune_magnitude(w, 0.5), b)`,
or low-rank factors each wrapped in a `QuantizedLinear`:

- `binarize(w)` -> `BinaryTensor`: sign(w) times one scale per output channel, alpha = mean |w|
  (XNOR-Net / BWN), 1 bit per weight. `BinaryLinear` runs it with int8 activations on lowbit's
  integer GEMM (the +-1 weights are exact int8 codes).
- `prune_magnitude(w, sparsity)`: the smallest |w| set to zero (globally or per row).
- `prune_rows(w, sparsity)`: structured pruning, whole output rows with the smallest L2 norm set
  to zero; `prune_hidden_units(model, sparsity)` removes them from a model for real (the rows of
  one Linear and the matching columns of the next).
- `low_rank(w, rank)`: truncated SVD, W ~ W2 @ W1 with W1 (rank, in), W2 (out, rank);
  `low_rank_layers(w, b, rank)` makes the two Linear layers.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import as_bias, as_bool, as_float32, as_int, as_weight, check_finite


def _fraction(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(v).__name__}")
    v = float(v)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v}")
    return v


# --------------------------------------------------------------------------- binary weights

class BinaryTensor:
    """1-bit weights: value[o, i] = alpha[o] * sign[o, i] (sign(0) = +1), signs packed 8 per
    byte (np.packbits order), alpha float32 (out_features,) or () when per_channel=False."""

    __slots__ = ("shape", "alpha", "_bits")

    def __init__(self, packed_bits: np.ndarray, shape, alpha):
        self.shape = tuple(int(s) for s in shape)
        self.alpha = np.asarray(alpha, np.float32)
        self._bits = packed_bits

    @property
    def nbytes(self) -> int:
        return int(self._bits.nbytes + self.alpha.nbytes)

    def signs(self) -> np.ndarray:
        """int8 +-1 of `shape`."""
        n = int(math.prod(self.shape))
        b = np.unpackbits(self._bits, count=n).reshape(self.shape)
        return (b.astype(np.int8) * 2 - 1).astype(np.int8)

    def dequantize(self) -> np.ndarray:
        alpha = self.alpha[:, None] if self.alpha.ndim else self.alpha
        return (self.signs().astype(np.float32) * alpha).astype(np.float32)

    @classmethod
    def from_signs(cls, signs, alpha) -> "BinaryTensor":
        s = np.asarray(signs)
        if s.ndim != 2 or s.dtype.kind not in "iu" or not np.all(np.abs(s.astype(np.int64)) == 1):
            raise ValueError("signs must be a 2-D integer array of +1/-1")
        a = as_float32(alpha, "alpha")
        if a.shape not in ((), (s.shape[0],)):
            raise ValueError(f"alpha must be a scalar or have shape ({s.shape[0]},), got {a.shape}")
        check_finite(a, "alpha")
        return cls(np.packbits((s > 0).reshape(-1)), s.shape, a)

    def __repr__(self) -> str:
        return f"BinaryTensor(shape={self.shape}, nbytes={self.nbytes})"


def binarize(weight, *, per_channel=True) -> BinaryTensor:
    """Binary weights: sign(w) (0 -> +1) times alpha = mean |w| per output row (or over the
    whole tensor), the alpha minimizing ||w - alpha sign(w)||^2."""
    w = as_weight(weight)
    per_channel = as_bool(per_channel, "per_channel")
    alpha = np.abs(w.astype(np.float64)).mean(axis=1 if per_channel else None).astype(np.float32)
    return BinaryTensor(np.packbits((w >= 0).reshape(-1)), w.shape, alpha)


class BinaryLinear:
    """A drop-in linear layer with 1-bit weights: y = alpha * (x @ sign(W)^T) + b.

    With quantize_input=True (default) each row of x is quantized to uint8 (asymmetric, as ONNX
    DynamicQuantizeLinear) and multiplied with the +-1 weights by lowbit.matmul_int8, exactly in
    int32; otherwise x stays float."""

    def __init__(self, weight, bias=None, *, per_channel=True, quantize_input=True):
        self.weight_b = weight if isinstance(weight, BinaryTensor) else binarize(weight, per_channel=per_channel)
        self.out_features, self.in_features = self.weight_b.shape
        self.quantize_input = as_bool(quantize_input, "quantize_input")
        self._signs_t = np.ascontiguousarray(self.weight_b.signs().T)  # (in, out) int8
        self._packed = None
        self.bias = as_bias(bias, self.out_features)

    @property
    def nbytes(self) -> int:
        return int(self.weight_b.nbytes + (0 if self.bias is None else self.bias.nbytes))

    def __call__(self, x) -> np.ndarray:
        from .linear import matmul_int8, pack_int8
        from .quant import quantize

        a = as_float32(x, "x")
        if a.ndim == 0 or a.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {a.shape}")
        check_finite(a, "x")
        lead = a.shape[:-1]
        x2 = a.reshape(-1, self.in_features)
        alpha = np.broadcast_to(self.weight_b.alpha, (self.out_features,)).astype(np.float32)
        if x2.shape[0] == 0:
            y = np.zeros((0, self.out_features), np.float32)
        elif self.quantize_input:
            if self._packed is None:
                self._packed = pack_int8(self._signs_t)
                self._colsum = self._signs_t.astype(np.int64).sum(axis=0)
            # Per-row dynamic activation parameters; (q - zp) @ S = q @ S - zp * colsum(S).
            q = quantize(x2, bits=8, axis=0, symmetric=False)
            acc = matmul_int8(q.int_repr(), self._packed).astype(np.int64)
            acc -= q.zero_point.astype(np.int64)[:, None] * self._colsum[None, :]
            y = acc.astype(np.float32) * q.scale[:, None] * alpha
        else:
            y = (x2 @ self._signs_t.astype(np.float32)) * alpha
        if self.bias is not None:
            y = y + self.bias
        return y.astype(np.float32).reshape(lead + (self.out_features,))

    def __repr__(self) -> str:
        return (f"BinaryLinear(in_features={self.in_features}, out_features={self.out_features}, "
                f"nbytes={self.nbytes})")


# --------------------------------------------------------------------------- pruning

def prune_magnitude(weight, sparsity, *, per_row=False) -> np.ndarray:
    """A copy of `weight` with round(sparsity * n) of its smallest-magnitude entries set to 0,
    n counted over the whole tensor or over each row (per_row=True). Ties are broken by position
    (the earlier one is pruned first), so exactly that many entries become zero."""
    w = as_float32(weight, "weight")
    check_finite(w, "weight")
    s = _fraction(sparsity, "sparsity")
    per_row = as_bool(per_row, "per_row")
    out = w.copy()
    if per_row:
        if w.ndim < 1:
            raise ValueError("per_row needs a weight of at least 1 dimension")
        rows = out.reshape(w.shape[0], -1)
        k = int(round(s * rows.shape[1]))
        if k:
            idx = np.argsort(np.abs(rows), axis=1, kind="stable")[:, :k]
            np.put_along_axis(rows, idx, 0.0, axis=1)
        return rows.reshape(w.shape)
    flat = out.reshape(-1)
    k = int(round(s * flat.size))
    if k:
        flat[np.argsort(np.abs(flat), kind="stable")[:k]] = 0.0
    return flat.reshape(w.shape)


def row_norms(weight) -> np.ndarray:
    """L2 norm of every output row, float64 (out_features,)."""
    w = as_weight(weight)
    return np.sqrt(np.sum(w.astype(np.float64) ** 2, axis=1))


def rows_to_keep(weight, sparsity) -> np.ndarray:
    """Sorted indices of the rows structured pruning keeps: all but the round(sparsity * out)
    rows of smallest L2 norm (ties by position), at least one."""
    norms = row_norms(weight)
    s = _fraction(sparsity, "sparsity")
    n_drop = min(int(round(s * norms.size)), norms.size - 1)
    drop = np.argsort(norms, kind="stable")[:n_drop]
    return np.setdiff1d(np.arange(norms.size), drop)


def prune_rows(weight, sparsity) -> np.ndarray:
    """A copy of `weight` with its round(sparsity * out_features) rows of smallest L2 norm set to
    zero (structured pruning; at least one row is kept)."""
    w = as_weight(weight)
    keep = rows_to_keep(w, sparsity)
    out = np.zeros_like(w)
    out[keep] = w[keep]
    return out


# --------------------------------------------------------------------------- low rank

def low_rank(weight, rank=None, *, energy=None) -> tuple[np.ndarray, np.ndarray]:
    """Truncated SVD W ~ W2 @ W1: W1 = sqrt(S_r) V_r^T (rank, in), W2 = U_r sqrt(S_r) (out, rank),
    float32. Give `rank` (1 .. min(out, in)), or `energy` in (0, 1] to take the smallest rank
    keeping that fraction of sum(S^2). The best rank-r approximation in Frobenius norm
    (Eckart-Young)."""
    w = as_weight(weight)
    full = min(w.shape)
    if (rank is None) == (energy is None):
        raise ValueError("give exactly one of rank and energy")
    u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    if rank is not None:
        r = as_int(rank, "rank", 1, full)
    else:
        e = _fraction(energy, "energy")
        if e == 0.0:
            raise ValueError("energy must be > 0")
        cum = np.cumsum(s ** 2)
        total = cum[-1]
        r = full if total == 0 else int(np.searchsorted(cum, e * total * (1 - 1e-12)) + 1)
        r = min(max(r, 1), full)
    root = np.sqrt(s[:r])
    w1 = (root[:, None] * vt[:r]).astype(np.float32)
    w2 = (u[:, :r] * root[None, :]).astype(np.float32)
    return w1, w2


def low_rank_layers(weight, bias=None, rank=None, *, energy=None) -> list:
    """[Linear(in -> rank, no bias), Linear(rank -> out, bias)] computing ~ x W^T + b, as
    lowbit.nn.Linear layers (so they run, save, and quantize like any other)."""
    from .models import make_linear

    w1, w2 = low_rank(weight, rank, energy=energy)
    return [make_linear(w1, None), make_linear(w2, bias)]


def prune_hidden_units(model, sparsity):
    """A Sequential copy of `model` (a Sequential-like model with .layers) with `sparsity` of the hidden units
    of every Linear -> elementwise activation -> Linear pair removed: the rows of smallest L2 norm
    of the first Linear (and its bias entries) and the matching columns of the next. The last
    Linear's outputs are never removed; LayerNorm between the two stops the pairing."""
    from . import nn
    from .models import ELEMENTWISE, clone_model, is_linear, make_linear

    s = _fraction(sparsity, "sparsity")
    out = nn.Sequential(clone_model(model).layers)  # a plain Sequential: the sizes change
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
