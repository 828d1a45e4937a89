"""Weight-only quantizers (numpy prototypes).

Every public method has the signature
    quantize_weight(W, H, **params) -> (W_hat, bits_used)
W      : float weight [out, in] (PyTorch layout, y = x @ W.T)
H      : calibration second-moment matrix E[x x^T] of the Linear's input [in, in]
         (only its diagonal E[x_j^2] is used by the activation-aware k-means / clipping)
bits_used: total storage bits of the quantized tensor (divide by W.size for bits per weight).

Storage accounting (honest):
  uniform   : codes (b bits) + per-group scale (fp16) + per-group zero point (b bits, asym only)
  codebook  : codes (b bits) + per-row codebook (2^b entries x fp16, or int8 entries + fp16 scale
              + fp16 offset when cb_bits=8)
  outliers  : per kept weight fp16 value + 16-bit column index, plus a 32-bit row pointer per row (CSR)
  rotation  : free (random signs from a seed; Hadamard is implicit)
"""
import numpy as np

FP16 = 16


def fp16(x):
    return np.asarray(x, np.float64).astype(np.float16).astype(np.float64)


# ----------------------------------------------------------------------------------------------
# uniform (RTN) grid per group of `group` consecutive input columns
# ----------------------------------------------------------------------------------------------
def quant_scales(scale, scale_bits):
    """Double quantization of the per-group scales [R, G]: int`scale_bits` codes times one fp16
    super-scale per row (signed codes, since ORT-style symmetric scales may be negative)."""
    if scale_bits >= 16:
        return scale
    qm = 2 ** (scale_bits - 1) - 1
    S = fp16(np.abs(scale).max(-1, keepdims=True) / qm)
    S = np.where(S == 0, 1.0, S)
    q = np.round(scale / S)
    q = np.where(q == 0, np.sign(scale) + (scale == 0), q)  # never a zero scale
    return q * S


def uniform_params(Wg, bits, sym=False, shrink=1.0, ort_style=True, scale_bits=16):
    """Wg: [..., group]. Returns scale, zero (integer) with ORT MatMulNBits conventions:
    asym: range [min(0,min), max(0,max)] -> scale=(rmax-rmin)/(2^b-1), zp=round(-rmin/scale)
    sym : scale = max|w| / 2^(b-1) ... ORT uses absmax/ (2^(b-1)) with codes in [-2^(b-1), 2^(b-1)-1]
    """
    qmax = 2 ** bits - 1
    if sym:
        # ORT/MLAS symmetric: the signed extreme maps exactly to code 0 (-2^(b-1)), zp = 2^(b-1)
        idx = np.abs(Wg).argmax(-1)[..., None]
        ext = np.take_along_axis(Wg, idx, -1)[..., 0] * shrink
        scale = fp16(ext / -(2 ** (bits - 1)))
        scale = np.where(scale == 0, 1.0, scale)
        if scale_bits < 16:
            scale = quant_scales(scale, scale_bits)
        zero = np.full_like(scale, 2 ** (bits - 1))
        return scale, zero
    lo, hi = Wg.min(-1) * shrink, Wg.max(-1) * shrink
    if ort_style:
        lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
    scale = (hi - lo) / qmax
    scale = fp16(np.where(scale == 0, 1.0, scale))
    if scale_bits < 16:
        scale = quant_scales(scale, scale_bits)
    zero = np.clip(np.round(-lo / scale), 0, qmax)
    return scale, zero


def uniform_q(Wg, scale, zero, bits):
    qmax = 2 ** bits - 1
    q = np.clip(np.round(Wg / scale[..., None]) + zero[..., None], 0, qmax)
    return (q - zero[..., None]) * scale[..., None]


def uniform_bits(W, bits, group, sym, scale_bits=16):
    """codes + per-group scale (fp16, or int`scale_bits` + one fp16 super-scale per row)
    + per-group integer zero point (asym)."""
    n_groups = W.size // group
    extra = W.shape[0] * FP16 if scale_bits < 16 else 0
    return W.size * bits + n_groups * (scale_bits + (0 if sym else bits)) + extra


def rtn(W, H=None, bits=4, group=32, sym=False, clip_search=False, weighted=True):
    """Round-to-nearest per group (ORT MatMulNBits numerics when clip_search=False).
    clip_search: per group, try shrink factors in [0.5, 1] and keep the one with the lowest
    (E[x_j^2]-weighted if `weighted`) squared error."""
    R, C = W.shape
    Wg = W.reshape(R, C // group, group)
    if not clip_search:
        s, z = uniform_params(Wg, bits, sym)
        return uniform_q(Wg, s, z, bits).reshape(R, C), uniform_bits(W, bits, group, sym)
    d = np.diag(H).reshape(C // group, group) if (weighted and H is not None) else np.ones((C // group, group))
    best = None
    for shrink in np.linspace(1.0, 0.5, 26):
        s, z = uniform_params(Wg, bits, sym, shrink, ort_style=False)
        Q = uniform_q(Wg, s, z, bits)
        err = (((Q - Wg) ** 2) * d[None]).sum(-1)
        if best is None:
            best, bestQ = err, Q
        else:
            m = err < best
            best = np.where(m, err, best)
            bestQ = np.where(m[..., None], Q, bestQ)
    return bestQ.reshape(R, C), uniform_bits(W, bits, group, sym)


# ----------------------------------------------------------------------------------------------
# per-row non-uniform codebooks: activation-weighted k-means (SqueezeLLM style)
# ----------------------------------------------------------------------------------------------
def wkmeans_rows(W, wts, k, iters=40, mask=None):
    """Weighted 1-D k-means on every row of W independently.
    wts: [R, C] (or broadcastable) non-negative importance; mask: [R, C] bool, False = excluded.
    Returns codebooks [R, k] (sorted) and assignments [R, C]."""
    R, C = W.shape
    wts = np.broadcast_to(wts, W.shape).astype(np.float64)
    if mask is not None:
        wts = wts * mask
    # init: weighted quantiles per row
    order = np.argsort(W, 1)
    Ws = np.take_along_axis(W, order, 1)
    cw = np.cumsum(np.take_along_axis(wts, order, 1), 1)
    cw /= cw[:, -1:]
    targets = (np.arange(k) + 0.5) / k
    cb = np.stack([Ws[np.arange(R), np.minimum((cw < t).sum(1), C - 1)] for t in targets], 1)
    for _ in range(iters):
        a = nearest(W, cb) + np.arange(R)[:, None] * k  # flat (row, cluster) id
        num = np.bincount(a.ravel(), (wts * W).ravel(), R * k).reshape(R, k)
        den = np.bincount(a.ravel(), wts.ravel(), R * k).reshape(R, k)
        new = np.where(den > 0, num / np.maximum(den, 1e-300), cb)
        if np.allclose(new, cb, rtol=0, atol=1e-9):
            cb = new
            break
        cb = new
    cb = np.sort(cb, 1)
    return cb, nearest(W, cb)


def nearest(W, cb):
    """index of the nearest codebook entry (cb sorted per row) for every weight."""
    R, k = cb.shape
    mid = (cb[:, 1:] + cb[:, :-1]) / 2  # R, k-1
    if W.shape[1] == 1:
        return (W > mid).sum(-1, keepdims=True)
    return np.stack([np.searchsorted(mid[r], W[r]) for r in range(W.shape[0])])


def store_codebook(cb, cb_bits=16):
    """Round a codebook to its storage format; returns (cb_stored, bits per row)."""
    k = cb.shape[1]
    if cb_bits == 16:
        return fp16(cb), k * FP16
    # int8 entries with a per-row fp16 scale and fp16 offset (asymmetric, 2^cb_bits levels)
    lo, hi = cb.min(1, keepdims=True), cb.max(1, keepdims=True)
    s = fp16(np.maximum(hi - lo, 1e-12) / (2 ** cb_bits - 1))
    lo = fp16(lo)
    return lo + np.round((cb - lo) / s) * s, k * cb_bits + 2 * FP16


def select_outliers(W, H, frac):
    """Dense-and-sparse: mask of the `frac` most sensitive weights, sensitivity = w^2 * E[x_j^2]."""
    if frac <= 0:
        return np.zeros(W.shape, bool)
    sens = W ** 2 * np.diag(H)[None, :]
    n = int(round(frac * W.size))
    thr = np.partition(sens.ravel(), -n)[-n]
    return sens >= thr


def outlier_bits(mask):
    n = int(mask.sum())
    return 0 if n == 0 else n * (FP16 + 16) + mask.shape[0] * 32


def kmeans_quant(W, H, bits=4, weighting="act", outlier_frac=0.0, cb_bits=16, iters=40):
    """SqueezeLLM-style: per-output-row 2^bits codebook from E[x_j^2]-weighted k-means
    (weighting='act'), or unweighted ('none'); optional dense-and-sparse outliers kept in fp16."""
    out = select_outliers(W, H, outlier_frac)
    wts = np.diag(H)[None, :] if weighting == "act" else np.ones((1, W.shape[1]))
    cb, _ = wkmeans_rows(W, wts, 2 ** bits, iters=iters, mask=~out)
    cb, cb_row_bits = store_codebook(cb, cb_bits)
    Q = np.take_along_axis(cb, nearest(W, cb), 1)
    Q = np.where(out, fp16(W), Q)
    bits_used = W.size * bits + W.shape[0] * cb_row_bits + outlier_bits(out)
    return Q, bits_used


# ----------------------------------------------------------------------------------------------
# GPTQ (error feedback with the inverse Hessian), uniform or codebook grid
# ----------------------------------------------------------------------------------------------
def _gptq_core(W, H, quant_col, percdamp=0.01, actorder=True, blocksize=128, on_group_start=None,
               fixed=None):
    """Generic GPTQ loop. quant_col(j, w_col) -> quantized column for ORIGINAL column index j.
    on_group_start(j, W_current) is called before quantizing column j in natural order (used for
    dynamic group params when actorder=False). fixed: bool mask of weights kept exactly (outliers)."""
    W = W.astype(np.float64).copy()
    R, C = W.shape
    H = H.astype(np.float64).copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = np.argsort(-np.diag(H)) if actorder else np.arange(C)
    W = W[:, perm]
    H = H[perm][:, perm]
    fx = fixed[:, perm] if fixed is not None else None
    H[np.diag_indices(C)] += percdamp * np.mean(np.diag(H))
    L = np.linalg.cholesky(np.linalg.inv(H))
    Hinv = L.T  # upper Cholesky factor of H^-1
    Q = np.zeros_like(W)
    for i1 in range(0, C, blocksize):
        i2 = min(i1 + blocksize, C)
        W1 = W[:, i1:i2].copy()
        Err1 = np.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            j = perm[i1 + i]
            if on_group_start is not None:
                cur = W.copy()
                cur[:, i1:i2] = W1
                on_group_start(j, cur[:, np.argsort(perm)])
            w = W1[:, i]
            q = quant_col(j, w)
            if fx is not None:
                q = np.where(fx[:, i1 + i], fp16(w), q)
            Q[:, i1 + i] = q
            err = (w - q) / Hinv1[i, i]
            W1[:, i:] -= np.outer(err, Hinv1[i, i:])
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return Q[:, np.argsort(perm)]


def gptq_uniform(W, H, bits=4, group=32, sym=False, actorder=True, percdamp=0.01, clip_search=False,
                 outlier_frac=0.0, scale_bits=16):
    """GPTQ on a per-group uniform grid. With act-order the group params are 'static' (computed
    from the original W before GPTQ, so groups stay contiguous in storage: no g_idx needed).
    Without act-order they are computed when the group starts from the error-updated weights."""
    R, C = W.shape
    G = C // group
    scale = np.zeros((R, G))
    zero = np.zeros((R, G))

    def params_from(Wcur):
        Wg = Wcur.reshape(R, G, group)
        if clip_search:
            return clip_params(Wg, np.diag(H).reshape(G, group), bits, sym, scale_bits)
        return uniform_params(Wg, bits, sym, scale_bits=scale_bits)

    out = select_outliers(W, H, outlier_frac)
    if actorder:
        # outliers are kept exactly, so they do not widen the group range
        scale[:], zero[:] = params_from(np.where(out, 0.0, W))
        hook = None
    else:
        def hook(j, Wcur):
            if j % group == 0:
                g = j // group
                s, z = params_from(Wcur)
                scale[:, g], zero[:, g] = s[:, g], z[:, g]

    def quant_col(j, w):
        g = j // group
        return uniform_q(w[:, None], scale[:, g], zero[:, g], bits)[:, 0]

    Q = _gptq_core(W, H, quant_col, percdamp, actorder, on_group_start=hook,
                   fixed=out if outlier_frac > 0 else None)
    return Q, uniform_bits(W, bits, group, sym, scale_bits) + outlier_bits(out)


def clip_params(Wg, d, bits, sym, scale_bits=16, shrinks=np.linspace(1.0, 0.6, 21)):
    """MSE-optimal clipping: per group pick the range shrink factor minimising the
    E[x_j^2]-weighted squared rounding error; then double-quantize the scales (if scale_bits<16)
    and recompute the zero points."""
    best_err = bs = None
    for shrink in shrinks:
        s, z = uniform_params(Wg, bits, sym, shrink, ort_style=False)
        err = (((uniform_q(Wg, s, z, bits) - Wg) ** 2) * d[None]).sum(-1)
        if best_err is None:
            best_err, bs, bsh = err, s, np.full(err.shape, shrink)
        else:
            m = err < best_err
            best_err, bs, bsh = np.where(m, err, best_err), np.where(m, s, bs), np.where(m, shrink, bsh)
    s = quant_scales(bs, scale_bits) if scale_bits < 16 else bs
    if sym:
        return s, np.full_like(s, 2 ** (bits - 1))
    lo = Wg.min(-1) * bsh
    return s, np.clip(np.round(-lo / s), 0, 2 ** bits - 1)


def _params_like(Wg, Qg, bits, sym):
    """Search the shrink factor per group (clip search) and return its scale/zero."""
    best_err, bs, bz = None, None, None
    for shrink in np.linspace(1.0, 0.5, 26):
        s, z = uniform_params(Wg, bits, sym, shrink, ort_style=False)
        err = ((uniform_q(Wg, s, z, bits) - Qg) ** 2).sum(-1)
        if best_err is None:
            best_err, bs, bz = err, s, z
        else:
            m = err < best_err
            best_err, bs, bz = np.where(m, err, best_err), np.where(m, s, bs), np.where(m, z, bz)
    return bs, bz


def gptq_codebook(W, H, bits=4, actorder=True, percdamp=0.01, outlier_frac=0.0, cb_bits=16,
                  refit=False, rounds=2):
    """GPTQ with a per-row non-uniform grid: codebook from activation-weighted k-means, then GPTQ
    rounding onto it; optionally refit the codebook values to the GPTQ assignments by least squares
    in the H-metric (min_c (w - A c)^T H (w - A c) per row) and repeat."""
    out = select_outliers(W, H, outlier_frac)
    cb, _ = wkmeans_rows(W, np.diag(H)[None, :], 2 ** bits, mask=~out)
    cb, cb_row_bits = store_codebook(cb, cb_bits)
    k = cb.shape[1]
    Hd = H + percdamp * np.mean(np.diag(H)) * np.eye(H.shape[0])
    for r in range(rounds if refit else 1):
        cbs = cb

        def quant_col(j, w, cbs=cbs):
            idx = nearest(w[:, None], cbs)[:, 0]
            return cbs[np.arange(len(w)), idx]

        Q = _gptq_core(W, H, quant_col, percdamp, actorder, fixed=out)
        if not refit:
            break
        # refit codebook values to assignments (outliers excluded from A, their error is zero)
        A_idx = nearest(Q, cbs)
        new = cbs.copy()
        for i in range(W.shape[0]):
            keep = ~out[i]
            A = np.zeros((W.shape[1], k))
            A[np.nonzero(keep)[0], A_idx[i, keep]] = 1.0
            # target: the full row w (fixed outliers contribute w - w = 0 and do not enter A)
            resid_w = W[i] * keep
            M = A.T @ Hd @ A
            used = np.diag(M) > 0
            if used.sum() == 0:
                continue
            c = np.linalg.solve(M[np.ix_(used, used)], (A.T @ Hd @ resid_w)[used])
            new[i, used] = c
        new = np.sort(new, 1)
        cb, _ = store_codebook(new, cb_bits)
        # final pass with the refitted codebook happens in the next round
    Q = np.where(out, fp16(W), Q)
    return Q, W.size * bits + W.shape[0] * cb_row_bits + outlier_bits(out)


# ----------------------------------------------------------------------------------------------
# random Hadamard rotation of the input dimension (incoherence processing)
# ----------------------------------------------------------------------------------------------
def hadamard(n):
    Hm = np.array([[1.0]])
    while Hm.shape[0] < n:
        Hm = np.block([[Hm, Hm], [Hm, -Hm]])
    return Hm


def rotation(C, block=128, seed=0):
    """Orthogonal R = diag(random signs) @ blockdiag(H_block / sqrt(block)); x' = x R, W' = W R."""
    rng = np.random.default_rng(seed + C)
    Hb = hadamard(block) / np.sqrt(block)
    Rm = np.zeros((C, C))
    for s in range(0, C, block):
        Rm[s:s + block, s:s + block] = Hb
    return rng.choice([-1.0, 1.0], C)[:, None] * Rm


def rotation2(C, block=128, seed=0):
    """Two block-Hadamard stages with a stride permutation in between, so every output mixes all
    C inputs (C = 384 or 1536 are not powers of two): R = R1 @ P @ R2."""
    R1, R2 = rotation(C, block, seed), rotation(C, block, seed + 7919)
    nb = C // block
    perm = np.arange(C).reshape(nb, block).T.ravel()  # interleave the blocks
    return R1[:, perm] @ R2


def rotated(method, block=128, seed=0, stages=1):
    """Wrap a quantizer: quantize W R with Hessian R^T H R, return the equivalent un-rotated W_hat
    (= W'_hat R^T; at inference the activations are rotated online instead)."""
    def q(W, H, **kw):
        Rm = (rotation if stages == 1 else rotation2)(W.shape[1], block, seed)
        Qr, b = method(W @ Rm, Rm.T @ H @ Rm, **kw)
        return Qr @ Rm.T, b
    return q
