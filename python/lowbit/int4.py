"""Int4Linear: a linear layer on 2- to 4-bit weights in groups, held packed two codes a byte.

Each output row of the weight is cut along ``in_features`` into groups of ``group_size`` weights,
and each group gets its own scale and zero point (asymmetric, by lowbit's one rule
:func:`lowbit.quant.qparams`), as ONNX Runtime's MatMulNBits and llama.cpp's Q4_1 do. What is held
per layer:

- the codes, 4 bits each (2- and 3-bit codes take a nibble too);
- per group a zero point (one byte) and a scale as IEEE binary16, relative to a float32 scale per
  output row (the row's largest group scale), so no group scale underflows binary16;
- the bias (float32).

So ``group_size=32`` holds 4.75 bits per weight, 64 holds 4.375 and 128 holds 4.19, plus 32 bits
per row (:attr:`Int4Linear.bits_per_weight` counts them all, and :attr:`Int4Linear.nbytes` is what
the layer holds in memory).

The forward pass quantizes each row of ``x`` to int8 (symmetric, per row), sums each group in
integers in the kernels (``s8q4_f32_gemm``: AVX2, and a scalar twin everywhere else) and the groups
in float32 with one fused multiply-add each; results are the same on every ISA and thread count.

Methods: ``"rtn"`` rounds each weight to the nearest code of its group; ``"gptq"`` (Frantar et al.,
"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers", ICLR 2023)
quantizes the input columns one at a time, largest Hessian diagonal first ("act-order"), and
spreads each column's error over the columns not yet quantized through the inverse Hessian
``H = 2 X^T X / n`` of the calibration inputs ``X`` (1 % dampening, blocks of 128 columns; the
groups' scales and zero points are round-to-nearest's, fixed before, so groups stay contiguous).
This implementation is numpy (float64, LAPACK for the inverse); it takes seconds for a
384 x 1536 layer. The accuracy study in ``bench/studies/minilm_4bit`` measured what it takes on
a whole transformer: GPTQ with act-order, a random Hadamard rotation of the inputs and bit widths
per matrix (the last not yet in lowbit).

``rotate=True`` (``in_features`` a multiple of 128) quantizes ``W R`` instead of ``W``, with
``R = diag(signs) blockdiag(H_128) / sqrt(128)`` (random signs, Walsh-Hadamard blocks of 128,
orthogonal), and rotates each input row by ``R`` before the product, so ``y = (x R)(W R)^T + b``
is the same layer with its outliers spread over each block ("incoherence processing", QuIP# and
QuaRot); GPTQ then sees the rotated calibration inputs. The signs are held with the layer.
"""
from __future__ import annotations

import numpy as np

from . import _core
from . import io as _io
from ._checks import as_bias, as_bool, as_float32, as_int, as_weight, check_finite
from .quant import qparams

METHODS = ("rtn", "gptq")
#: the rotation's block (``rotate=True`` needs ``in_features`` a multiple of it)
ROTATION_BLOCK = 128


def rotation_signs(n: int) -> np.ndarray:
    """The rotation's random signs for ``n`` inputs: float32 +-1, the same on every run (PCG64,
    seed 0x10B17)."""
    return np.where(np.random.Generator(np.random.PCG64(0x10B17)).random(n) < 0.5, -1.0, 1.0).astype(np.float32)


def _group_ranges(w: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each group of each row: (N, G) each (the last group may be shorter)."""
    n, k = w.shape
    g = -(-k // group)
    pad = np.pad(w, ((0, 0), (0, g * group - k)), mode="edge").reshape(n, g, group)
    return pad.min(axis=2), pad.max(axis=2)


def _relative_scales(scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row float32 scales, binary16 relative scales, and the effective float32 group scales
    ``col_scale * float32(relative)`` that the kernels apply."""
    col = scale.max(axis=1).astype(np.float32)
    col[col == 0] = 1.0
    rel = (scale / col[:, None]).astype(np.float16)
    eff = col[:, None] * rel.astype(np.float32)
    return col, rel, eff


def _codes(w: np.ndarray, eff: np.ndarray, zero: np.ndarray, bits: int) -> np.ndarray:
    """Round-to-nearest codes of w (N, k) for effective scales and zero points (N, k)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.rint(w / eff)
    q = np.where(eff > 0, q, 0)
    return np.clip(q + zero, 0, 2**bits - 1).astype(np.uint8)


def _expand(a: np.ndarray, group: int, k: int) -> np.ndarray:
    """(N, G) per-group values -> (N, k) per-weight values."""
    return np.repeat(a, group, axis=1)[:, :k]


def quantize_rtn(w: np.ndarray, bits: int, group: int):
    """Round-to-nearest: (codes (N, K) uint8, zero (N, G) uint8, relative scales (N, G) float16,
    row scales (N,) float32)."""
    mn, mx = _group_ranges(w, group)
    scale, zero = qparams(mn, mx, bits=bits, symmetric=False)
    col, rel, eff = _relative_scales(scale)
    k = w.shape[1]
    codes = _codes(w, _expand(eff, group, k), _expand(zero, group, k), bits)
    return codes, zero.astype(np.uint8), rel, col


def quantize_gptq(w: np.ndarray, x: np.ndarray, bits: int, group: int, *, damp: float = 0.01,
                  block: int = 128, act_order: bool = True):
    """GPTQ (see the module docstring): the same four arrays as :func:`quantize_rtn`.

    The groups' scales and zero points are those of round-to-nearest on the weights as given
    ("static groups"), so the groups stay contiguous whatever the order; with ``act_order`` the
    columns are quantized in order of decreasing Hessian diagonal (largest input energy first).
    """
    n, k = w.shape
    xd = x.astype(np.float64)
    h = 2.0 * (xd.T @ xd) / max(1, xd.shape[0])
    W = w.astype(np.float64).copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    W[:, dead] = 0.0
    h[np.diag_indices(k)] += damp * np.mean(np.diag(h))
    _, zero, rel, col = quantize_rtn(w, bits, group)
    eff = (col[:, None] * rel.astype(np.float32)).astype(np.float64)  # (N, G)
    zf = zero.astype(np.float64)
    perm = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(k)
    W, h = W[:, perm], h[np.ix_(perm, perm)]
    hinv = np.linalg.cholesky(np.linalg.inv(h)).T  # the upper Cholesky factor of H^-1
    codes = np.zeros((n, k), np.uint8)
    qmax = 2**bits - 1
    for b0 in range(0, k, block):
        b1 = min(k, b0 + block)
        wb = W[:, b0:b1].copy()
        err = np.zeros_like(wb)
        hb = hinv[b0:b1, b0:b1]
        for i in range(b1 - b0):
            c = int(perm[b0 + i])  # the column's place in the weight as given
            s, z = eff[:, c // group], zf[:, c // group]
            with np.errstate(divide="ignore", invalid="ignore"):
                q = np.where(s > 0, np.rint(wb[:, i] / s), 0.0)
            q = np.clip(q + z, 0, qmax)
            codes[:, c] = q
            e = (wb[:, i] - s * (q - z)) / hb[i, i]
            wb[:, i:] -= np.outer(e, hb[i, i:])
            err[:, i] = e
        W[:, b1:] -= err @ hinv[b0:b1, b1:]
    return codes, zero, rel, col


class Int4Linear:
    """A linear layer ``y = x W^T + b`` on 2- to 4-bit weights in groups, held packed.

    See :mod:`lowbit.int4` for what is held and how the forward pass computes.

    Parameters
    ----------
    weight : array_like of float, shape (out_features, in_features)
        The float weight (as ``torch.nn.Linear.weight``); non-empty and finite.
    bias : array_like of float, shape (out_features,), optional
        The bias (None: no bias).
    bits : int, default 4
        Bits per weight code, 2..4.
    group_size : int, default 32
        Weights per group along ``in_features``: a multiple of 4, 4..4096.
    method : {"rtn", "gptq"}, default "rtn"
        Round to nearest, or GPTQ's error feedback on ``calibration``.
    calibration : array_like of float, shape (n, in_features), optional
        The layer's inputs on calibration data (never the data you evaluate on); required by
        ``method="gptq"``, refused by ``"rtn"``.
    rotate : bool, default False
        Quantize the weight in a random Hadamard basis and rotate the inputs to match (see
        :mod:`lowbit.int4`); ``in_features`` must be a multiple of 128.

    Attributes
    ----------
    in_features, out_features : int
        The layer's sizes.
    bits : int
        Bits per code.
    group_size : int
        Weights per group.
    method : str
        How the codes were chosen.
    bias : numpy.ndarray or None
        The float32 bias.
    rotation : numpy.ndarray or None
        With ``rotate=True``, the rotation's float32 signs ``(in_features,)``; else None.

    Raises
    ------
    TypeError
        If ``weight``, ``bias`` or ``calibration`` is not a floating-point array, or another
        argument has the wrong type.
    ValueError
        If ``weight`` is not a non-empty finite 2-D array, ``bias`` has the wrong shape, ``bits``
        or ``group_size`` is out of range, ``method`` is unknown, or ``calibration`` is missing,
        of the wrong shape, non-finite, or given to ``"rtn"``.
    """

    def __init__(self, weight, bias=None, *, bits=4, group_size=32, method="rtn", calibration=None,
                 rotate=False):
        w = as_weight(weight)
        self.bits = as_int(bits, "bits", 2, 4)
        self.group_size = as_int(group_size, "group_size", 4, 4096)
        if self.group_size % 4:
            raise ValueError(f"group_size must be a multiple of 4, got {self.group_size}")
        if not isinstance(method, str) or method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method = method
        self.out_features, self.in_features = (int(s) for s in w.shape)
        self.bias = as_bias(bias, self.out_features)
        self.rotation = None
        if as_bool(rotate, "rotate"):
            if self.in_features % ROTATION_BLOCK:
                raise ValueError(f"rotate=True needs in_features a multiple of {ROTATION_BLOCK}, "
                                 f"got {self.in_features}")
            self.rotation = rotation_signs(self.in_features)
            w = self._rotate(np.ascontiguousarray(w, np.float32))
        if method == "rtn":
            if calibration is not None:
                raise ValueError("calibration is used by method='gptq' only; method='rtn' would ignore it")
            arrays = quantize_rtn(w, self.bits, self.group_size)
        else:
            if calibration is None:
                raise ValueError("method='gptq' needs calibration: layer inputs (n, in_features)")
            x = as_float32(calibration, "calibration")
            if x.ndim != 2 or x.shape[1] != self.in_features or x.shape[0] == 0:
                raise ValueError(f"calibration must have shape (n, {self.in_features}) with n > 0, "
                                 f"got {x.shape}")
            check_finite(x, "calibration")
            arrays = quantize_gptq(w, self._rotate(x), self.bits, self.group_size)
        self._set(*arrays)

    def _rotate(self, x: np.ndarray) -> np.ndarray:
        """Rows of x (2-D float32, contiguous) times R; x itself without a rotation."""
        return x if self.rotation is None else _core.hadamard(x, self.rotation)

    def _set(self, codes, zero, rel, col) -> None:
        self._w = _core.Int4Weights(np.ascontiguousarray(codes, np.uint8), np.ascontiguousarray(zero, np.uint8),
                                    np.ascontiguousarray(rel, np.float16).view(np.uint16),
                                    np.ascontiguousarray(col, np.float32), self.group_size)

    def arrays(self) -> dict:
        """The quantized weight as arrays.

        Returns
        -------
        dict
            ``codes`` (uint8 ``(out_features, in_features)``), ``zero_point`` (uint8
            ``(out_features, groups)``), ``scale`` (float16 ``(out_features, groups)``, relative
            to ``row_scale``) and ``row_scale`` (float32 ``(out_features,)``): weight ``[n, k]``
            is ``row_scale[n] * scale[n, g] * (codes[n, k] - zero_point[n, g])`` for
            ``g = k // group_size``.
        """
        codes, zero, scale, col = self._w.arrays()
        return {"codes": codes, "zero_point": zero, "scale": scale.view(np.float16), "row_scale": col}

    @property
    def weight(self) -> np.ndarray:
        """The dequantized weight, float32 ``(out_features, in_features)`` (a new array)."""
        a = self.arrays()
        k, g = self.in_features, self.group_size
        s = a["row_scale"][:, None] * _expand(a["scale"].astype(np.float32), g, k)
        w = (s * (a["codes"].astype(np.float32) - _expand(a["zero_point"], g, k))).astype(np.float32)
        if self.rotation is not None:  # W = (W R) R^T, R^T = blockdiag(H_128) / sqrt(128) diag(signs)
            w = _core.hadamard(w, np.ones(k, np.float32)) * self.rotation
        return w

    @property
    def nbytes(self) -> int:
        """Bytes held: the packed codes, zero points, scales, row scales and bias."""
        return int(self._w.nbytes + sum(a.nbytes for a in (self.bias, self.rotation) if a is not None))

    @property
    def bits_per_weight(self) -> float:
        """Bits held per weight, everything but the bias counted (codes, zero points, scales,
        row scales, and the padding of the kernels' layout)."""
        return 8.0 * self._w.nbytes / (self.out_features * self.in_features)

    def __call__(self, x) -> np.ndarray:
        """The layer's output.

        Parameters
        ----------
        x : array_like of float, shape (..., in_features)
            The input.

        Returns
        -------
        numpy.ndarray
            float32 of shape ``(..., out_features)``.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point array.
        ValueError
            If the last axis of ``x`` is not ``in_features`` or ``x`` holds NaN/Inf.
        """
        a = as_float32(x, "x")
        if a.ndim == 0 or a.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {a.shape}")
        x2 = self._rotate(np.ascontiguousarray(a.reshape(-1, self.in_features)))
        y = self._w.forward(x2, self.bias)
        if y is None:
            check_finite(a, "x")
        return y.reshape(a.shape[:-1] + (self.out_features,))

    def __repr__(self) -> str:
        return (f"Int4Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bits={self.bits}, group_size={self.group_size}, method={self.method!r}, "
                f"{'rotate=True, ' if self.rotation is not None else ''}bits_per_weight={self.bits_per_weight:.3f}, nbytes={self.nbytes})")


def _register() -> None:
    """Int4Linear in lowbit.save / lowbit.load (and pickle)."""
    def to_state(layer):
        a = layer.arrays()
        return {"codes": a["codes"], "zero_point": a["zero_point"], "scale": a["scale"].view(np.uint16),
                "row_scale": a["row_scale"], "bias": layer.bias, "bits": layer.bits,
                "group_size": layer.group_size, "method": layer.method, "rotation": layer.rotation}

    def from_state(s):
        what = "Int4Linear"
        codes = _io.need_array(s, "codes", what, dtype=np.uint8)
        if codes.ndim != 2 or codes.size == 0:
            raise ValueError(f"{what}: codes must be a non-empty 2-D array")
        n, k = codes.shape
        bits = _io.need(s, "bits", int, what)
        group = _io.need(s, "group_size", int, what)
        method = _io.need(s, "method", str, what)
        if not 2 <= bits <= 4 or not 4 <= group <= 4096 or group % 4 or method not in METHODS:
            raise ValueError(f"{what}: bits, group_size or method out of range")
        g = -(-k // group)
        zero = _io.need_array(s, "zero_point", what, dtype=np.uint8, shape=(n, g))
        scale = _io.need_array(s, "scale", what, dtype=np.uint16, shape=(n, g))
        col = _io.need_array(s, "row_scale", what, dtype=np.float32, shape=(n,))
        if codes.max() >= 2**bits or zero.max() >= 2**bits:
            raise ValueError(f"{what}: codes or zero points exceed {bits} bits")
        check_finite(col, f"{what}: row_scale")
        bias = s.get("bias")
        if bias is not None:
            bias = _io.need_array(s, "bias", what, dtype=np.float32, shape=(n,))
        rotation = s.get("rotation")  # absent in files written before rotate=
        if rotation is not None:
            rotation = _io.need_array(s, "rotation", what, dtype=np.float32, shape=(k,))
            if k % ROTATION_BLOCK or not np.all(np.abs(rotation) == 1):
                raise ValueError(f"{what}: rotation must hold +-1 for in_features a multiple of {ROTATION_BLOCK}")
        layer = Int4Linear.__new__(Int4Linear)
        layer.bits, layer.group_size, layer.method = bits, group, method
        layer.rotation = rotation
        layer.out_features, layer.in_features = n, k
        layer.bias = as_bias(bias, n)
        layer._set(codes, zero, scale.view(np.float16), col)
        return layer

    _io.register("Int4Linear", Int4Linear, to_state, from_state)


_register()
