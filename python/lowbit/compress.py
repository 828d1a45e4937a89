"""Weight compression beyond linear quantization: binary weights, pruning, low-rank factorisation.

Each works on float weight matrices (out_features, in_features) and returns float weights (or a
layer) that can be quantized afterwards, e.g. `QuantizedLinear(prune_magnitude(w, 0.5), b)`,
or low-rank factors each wrapped in a `QuantizedLinear`:

- `binarize(w)` -> `BinaryTensor`: sign(w) times one scale per output channel, alpha = mean |w|
  (XNOR-Net / BWN), 1 bit per weight. `BinaryLinear` runs it with int8 activations on lowbit's
  integer GEMM (the +-1 weights are exact int8 codes).
- `prune_magnitude(w, sparsity)`: the smallest |w| set to zero (globally or per row).
- `prune_rows(w, sparsity)`: structured pruning, whole output rows with the smallest L2 norm set
  to zero; `lowbit.models.prune_hidden_units(model, sparsity)` removes them from a model for real (the rows of
  one Linear and the matching columns of the next).
- `low_rank(w, rank)`: truncated SVD, W ~ W2 @ W1 with W1 (rank, in), W2 (out, rank);
  `lowbit.models.low_rank_layers(w, b, rank)` makes the two Linear layers.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import as_bias, as_bool, as_float32, as_int, as_weight, check_finite
from . import io as _io


def as_fraction(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(v).__name__}")
    v = float(v)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v}")
    return v


# --------------------------------------------------------------------------- binary weights

class BinaryTensor:
    """1-bit weights: value[o, i] = alpha[o] * sign[o, i] (sign(0) = +1).

    The signs are packed 8 per byte (np.packbits order, a set bit is +1); alpha is float32
    ``(out_features,)``, or ``()`` when made with ``per_channel=False``. :func:`binarize` and
    :meth:`from_signs` make one; the constructor wraps its arguments unchecked.

    Parameters
    ----------
    packed_bits : numpy.ndarray of uint8
        ``np.packbits`` of the flattened (row-major) array ``sign > 0``.
    shape : tuple of int
        The logical shape ``(out_features, in_features)``.
    alpha : array_like of float
        The scales: ``(out_features,)`` (one per output row) or ``()`` (one for the tensor).

    Attributes
    ----------
    shape : tuple of int
        The logical shape ``(out_features, in_features)``.
    alpha : numpy.ndarray
        float32 scales, ``(out_features,)`` or ``()``.
    """

    __slots__ = ("shape", "alpha", "_bits")

    def __init__(self, packed_bits: np.ndarray, shape, alpha):
        self.shape = tuple(int(s) for s in shape)
        self.alpha = np.asarray(alpha, np.float32)
        self._bits = packed_bits

    @property
    def nbytes(self) -> int:
        """Bytes stored: the packed signs + alpha."""
        return int(self._bits.nbytes + self.alpha.nbytes)

    def signs(self) -> np.ndarray:
        """The signs, unpacked.

        Returns
        -------
        numpy.ndarray
            int8 array of +1/-1 of ``shape``.
        """
        n = int(math.prod(self.shape))
        b = np.unpackbits(self._bits, count=n).reshape(self.shape)
        return (b.astype(np.int8) * 2 - 1).astype(np.int8)

    def dequantize(self) -> np.ndarray:
        """The float weights the bits represent.

        Returns
        -------
        numpy.ndarray
            float32 array of ``shape``: ``alpha[o] * sign[o, i]``.
        """
        alpha = self.alpha[:, None] if self.alpha.ndim else self.alpha
        return (self.signs().astype(np.float32) * alpha).astype(np.float32)

    @classmethod
    def from_signs(cls, signs, alpha) -> "BinaryTensor":
        """A BinaryTensor of given signs and scales.

        Parameters
        ----------
        signs : array_like of int, shape (out_features, in_features)
            A 2-D integer array of +1/-1.
        alpha : array_like of float
            The finite scales: a scalar or ``(out_features,)``.

        Returns
        -------
        BinaryTensor
            The signs, packed, with their scales.

        Raises
        ------
        TypeError
            If ``alpha`` is not a floating-point array.
        ValueError
            If ``signs`` is not a 2-D integer array of +1/-1, or ``alpha`` has the wrong
            shape or holds NaN/Inf.
        """
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
    """Binary weights: sign(w) (0 -> +1) times a scale alpha.

    alpha = mean ``|w|`` per output row (or over the whole tensor), the alpha minimizing
    ``||w - alpha sign(w)||^2`` (XNOR-Net / BWN); 1 bit per weight.

    Parameters
    ----------
    weight : array_like of float, shape (out_features, in_features)
        The float weight, non-empty and finite.
    per_channel : bool, default True
        One alpha per output row (True) or one for the whole tensor (False).

    Returns
    -------
    BinaryTensor
        The packed signs and alpha (``(out_features,)`` or ``()``).

    Raises
    ------
    TypeError
        If ``weight`` is not a floating-point array or ``per_channel`` is not a bool.
    ValueError
        If ``weight`` is not a non-empty 2-D array or holds NaN/Inf.
    """
    w = as_weight(weight)
    per_channel = as_bool(per_channel, "per_channel")
    alpha = np.abs(w.astype(np.float64)).mean(axis=1 if per_channel else None).astype(np.float32)
    return BinaryTensor(np.packbits((w >= 0).reshape(-1)), w.shape, alpha)


class BinaryLinear:
    """A drop-in linear layer with 1-bit weights: y = alpha * (x @ sign(W)^T) + b.

    With ``quantize_input=True`` (default) each row of x is quantized to uint8 (asymmetric, as
    ONNX DynamicQuantizeLinear) and multiplied with the +-1 weights by
    :func:`lowbit.matmul_int8`, exactly in int32; otherwise x stays float. ``layer(x)`` for
    float x of shape ``(..., in_features)`` returns float32 ``(..., out_features)``.

    Parameters
    ----------
    weight : array_like of float or BinaryTensor
        A float weight ``(out_features, in_features)``, binarized here with :func:`binarize`,
        or an already binarized one.
    bias : array_like of float, shape (out_features,), optional
        The bias (None: no bias).
    per_channel : bool, default True
        One alpha per output row, else one for the whole weight (ignored when ``weight`` is
        a :class:`BinaryTensor`).
    quantize_input : bool, default True
        Quantize the activations to uint8 and multiply in integers (else in float).

    Attributes
    ----------
    weight_b : BinaryTensor
        The 1-bit weight.
    in_features : int
        Length of the input rows.
    out_features : int
        Length of the output rows.
    bias : numpy.ndarray or None
        float32 ``(out_features,)``, or None.
    quantize_input : bool
        Whether activations are quantized.

    Raises
    ------
    TypeError
        If ``weight`` or ``bias`` is not a floating-point array, or a flag is not a bool.
    ValueError
        If ``weight`` is not a non-empty finite 2-D array, or ``bias`` has the wrong shape or
        holds NaN/Inf.
    """

    def __init__(self, weight, bias=None, *, per_channel=True, quantize_input=True):
        self.weight_b = weight if isinstance(weight, BinaryTensor) else binarize(weight, per_channel=per_channel)
        self.out_features, self.in_features = self.weight_b.shape
        self.quantize_input = as_bool(quantize_input, "quantize_input")
        self._signs_t = np.ascontiguousarray(self.weight_b.signs().T)  # (in, out) int8
        self._packed = None
        self.bias = as_bias(bias, self.out_features)

    @property
    def nbytes(self) -> int:
        """Bytes of the weight: the packed signs, alpha and the bias."""
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
    """Magnitude pruning: the smallest entries of a weight set to zero.

    ``round(sparsity * n)`` of the smallest-magnitude entries are set to 0, n counted over the
    whole tensor or over each row (``per_row=True``). Ties are broken by position (the earlier
    one is pruned first), so exactly that many entries become zero.

    Parameters
    ----------
    weight : array_like of float
        The weight, finite (any shape; rows are along the first axis).
    sparsity : float
        The fraction of entries to zero, in [0, 1].
    per_row : bool, default False
        Count and prune in each row (the first axis) separately, else over the whole tensor.

    Returns
    -------
    numpy.ndarray
        A float32 copy of ``weight`` with the pruned entries zero.

    Raises
    ------
    TypeError
        If ``weight`` is not a floating-point array, ``sparsity`` is not a number or
        ``per_row`` not a bool.
    ValueError
        If ``weight`` holds NaN/Inf, ``sparsity`` is not in [0, 1], or ``per_row=True`` with
        a 0-d weight.
    """
    w = as_float32(weight, "weight")
    check_finite(w, "weight")
    s = as_fraction(sparsity, "sparsity")
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
    s = as_fraction(sparsity, "sparsity")
    n_drop = min(int(round(s * norms.size)), norms.size - 1)
    drop = np.argsort(norms, kind="stable")[:n_drop]
    return np.setdiff1d(np.arange(norms.size), drop)


def prune_rows(weight, sparsity) -> np.ndarray:
    """Structured pruning: whole output rows of smallest L2 norm set to zero.

    ``round(sparsity * out_features)`` rows (ties by position) are zeroed; at least one row is
    kept. :func:`lowbit.models.prune_hidden_units` removes such rows from a model for real.

    Parameters
    ----------
    weight : array_like of float, shape (out_features, in_features)
        The weight, non-empty and finite.
    sparsity : float
        The fraction of rows to zero, in [0, 1].

    Returns
    -------
    numpy.ndarray
        A float32 copy of ``weight`` with the pruned rows zero.

    Raises
    ------
    TypeError
        If ``weight`` is not a floating-point array or ``sparsity`` is not a number.
    ValueError
        If ``weight`` is not a non-empty 2-D array, holds NaN/Inf, or ``sparsity`` is not
        in [0, 1].
    """
    w = as_weight(weight)
    keep = rows_to_keep(w, sparsity)
    out = np.zeros_like(w)
    out[keep] = w[keep]
    return out


# --------------------------------------------------------------------------- low rank

def low_rank(weight, rank=None, *, energy=None) -> tuple[np.ndarray, np.ndarray]:
    """Truncated SVD: W ~ W2 @ W1.

    W1 = sqrt(S_r) V_r^T ``(rank, in)``, W2 = U_r sqrt(S_r) ``(out, rank)``: the best rank-r
    approximation in Frobenius norm (Eckart-Young). Give exactly one of ``rank`` and ``energy``.
    :func:`lowbit.models.low_rank_layers` makes the two Linear layers.

    Parameters
    ----------
    weight : array_like of float, shape (out_features, in_features)
        The weight, non-empty and finite.
    rank : int, optional
        The rank r, 1 .. min(out_features, in_features).
    energy : float, optional
        In (0, 1]: take the smallest rank keeping that fraction of sum(S^2).

    Returns
    -------
    w1 : numpy.ndarray
        float32 ``(r, in_features)``.
    w2 : numpy.ndarray
        float32 ``(out_features, r)``.

    Raises
    ------
    TypeError
        If ``weight`` is not a floating-point array, ``rank`` is not an integer or ``energy``
        not a number.
    ValueError
        If both or neither of ``rank`` and ``energy`` are given, one is out of its range, or
        ``weight`` is not a non-empty finite 2-D array.
    """
    w = as_weight(weight)
    full = min(w.shape)
    if (rank is None) == (energy is None):
        raise ValueError("give exactly one of rank and energy")
    u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    if rank is not None:
        r = as_int(rank, "rank", 1, full)
    else:
        e = as_fraction(energy, "energy")
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


# --------------------------------------------------------------------------- file format

def _register() -> None:
    """BinaryTensor and BinaryLinear in lowbit.save / lowbit.load."""
    def bt_from(s):
        signs = _io.need_array(s, "signs", "BinaryTensor", dtype=np.int8)
        return BinaryTensor.from_signs(signs, _io.need_array(s, "alpha", "BinaryTensor",
                                                                  dtype=np.float32))

    _io.register("BinaryTensor", BinaryTensor,
             lambda t: {"signs": t.signs(), "alpha": t.alpha}, bt_from)

    def bl_from(s):
        wb = _io.need(s, "weight_b", BinaryTensor, "BinaryLinear")
        return BinaryLinear(wb, s.get("bias"),
                                     quantize_input=_io.need(s, "quantize_input", bool, "BinaryLinear"))

    _io.register("BinaryLinear", BinaryLinear,
             lambda m: {"weight_b": m.weight_b, "bias": m.bias, "quantize_input": m.quantize_input},
             bl_from)


_register()
