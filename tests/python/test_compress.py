"""Binary weights, pruning and low-rank factorisation, alone and composed with quantization."""
import numpy as np
import pytest

import lowbit
from lowbit import compress as C


def _w(shape=(24, 40), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------ binary

def test_binarize_is_sign_times_mean_abs():
    w = _w()
    w[0, 0] = 0.0
    b = lowbit.binarize(w)
    sign = np.where(w >= 0, 1.0, -1.0)
    alpha = np.abs(w.astype(np.float64)).mean(axis=1)
    np.testing.assert_allclose(b.dequantize(), sign * alpha[:, None], rtol=1e-6)
    np.testing.assert_array_equal(b.signs(), sign.astype(np.int8))
    assert b.nbytes == 24 * 40 // 8 + 24 * 4
    bt = lowbit.binarize(w, per_channel=False)
    assert bt.alpha.shape == () and bt.alpha == pytest.approx(np.abs(w).mean(), rel=1e-6)


def test_binary_alpha_is_least_squares_optimal():
    w = _w((4, 100), 1)
    b = lowbit.binarize(w)
    s = b.signs().astype(np.float64)
    for r in range(4):
        best = (w[r] * s[r]).sum() / (s[r] ** 2).sum()  # argmin_a ||w - a s||^2
        assert b.alpha[r] == pytest.approx(best, rel=1e-6)


def test_binary_linear_int8_path_is_exact_integer_gemm():
    rng = np.random.default_rng(2)
    w, bias = _w((16, 32), 2), rng.standard_normal(16).astype(np.float32)
    x = rng.standard_normal((5, 32)).astype(np.float32)
    layer = lowbit.BinaryLinear(w, bias)
    y = layer(x)
    # reference: the same per-row uint8 quantization of x, then float64 math
    s = layer.weight_b.signs().astype(np.float64)
    ref = np.empty((5, 16))
    for r in range(5):
        q = lowbit.quantize(x[r:r + 1], symmetric=False)
        xq = (q.int_repr().astype(np.float64) - int(q.zero_point)) * float(q.scale)
        ref[r] = (xq @ s.T)[0] * layer.weight_b.alpha + bias
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    yf = lowbit.BinaryLinear(w, bias, quantize_input=False)(x)
    np.testing.assert_allclose(yf, x @ layer.weight_b.dequantize().T + bias, rtol=1e-5, atol=1e-5)
    assert lowbit.sqnr(yf, y) > 30
    assert layer(x.reshape(5, 1, 32)).shape == (5, 1, 16)
    assert layer(np.zeros((0, 32), np.float32)).shape == (0, 16)
    with pytest.raises(ValueError, match="x must have shape"):
        layer(np.ones((2, 31), np.float32))


# ------------------------------------------------------------------ pruning

def brute_prune(w, k):
    flat = w.ravel().copy()
    order = sorted(range(flat.size), key=lambda i: (abs(flat[i]), i))
    for i in order[:k]:
        flat[i] = 0
    return flat.reshape(w.shape)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_prune_magnitude_matches_brute_force(sparsity):
    w = np.round(_w((10, 12), 3), 1)  # rounding makes ties
    got = lowbit.prune_magnitude(w, sparsity)
    k = round(sparsity * w.size)
    np.testing.assert_array_equal(got, brute_prune(w, k))
    assert (got == 0).sum() >= k
    rows = lowbit.prune_magnitude(w, sparsity, per_row=True)
    for r in range(10):
        np.testing.assert_array_equal(rows[r], brute_prune(w[r:r + 1], round(sparsity * 12))[0])


def test_prune_rows_zeroes_smallest_norm_rows():
    w = _w((8, 20), 4)
    w[3] *= 0.01
    w[6] *= 0.1
    got = lowbit.prune_rows(w, 0.25)
    assert np.all(got[3] == 0) and np.all(got[6] == 0)
    keep = [i for i in range(8) if i not in (3, 6)]
    np.testing.assert_array_equal(got[keep], w[keep])
    assert lowbit.prune_rows(w, 1.0).any()  # at least one row stays
    np.testing.assert_array_equal(C.rows_to_keep(w, 0.25), keep)


def test_pruning_composes_with_quantization():
    w = _w((32, 64), 5)
    p = lowbit.prune_magnitude(w, 0.5)
    layer = lowbit.QuantizedLinear(p)
    deq = layer.weight_q.dequantize()
    assert np.all(deq[p == 0] == 0)  # zeros survive quantization exactly
    x = np.random.default_rng(5).standard_normal((4, 64)).astype(np.float32)
    assert lowbit.sqnr(x @ p.T, layer(x)) > 30


# ------------------------------------------------------------------ low rank

@pytest.mark.parametrize("rank", [1, 5, 24])
def test_low_rank_is_truncated_svd(rank):
    w = _w((24, 40), 6)
    w1, w2 = lowbit.low_rank(w, rank)
    assert w1.shape == (rank, 40) and w2.shape == (24, rank)
    s = np.linalg.svd(w.astype(np.float64), compute_uv=False)
    err = np.linalg.norm(w.astype(np.float64) - w2.astype(np.float64) @ w1)
    assert err == pytest.approx(np.sqrt((s[rank:] ** 2).sum()), rel=1e-4, abs=1e-4)


def test_low_rank_energy_and_low_rank_data():
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((30, 3)) @ rng.standard_normal((3, 50))).astype(np.float32)
    w1, w2 = lowbit.low_rank(w, energy=0.999999)
    assert w1.shape[0] == 3
    np.testing.assert_allclose(w2 @ w1, w, atol=1e-4)
    with pytest.raises(ValueError, match="exactly one"):
        lowbit.low_rank(w)
    with pytest.raises(ValueError, match="rank"):
        lowbit.low_rank(w, 31)


def test_low_rank_composes_with_quantization():
    rng = np.random.default_rng(8)
    w = (rng.standard_normal((64, 8)) @ rng.standard_normal((8, 96))).astype(np.float32)
    w = w + 0.01 * rng.standard_normal(w.shape).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    w1, w2 = lowbit.low_rank(w, 8)
    first, second = lowbit.QuantizedLinear(w1), lowbit.QuantizedLinear(w2, b)
    x = rng.standard_normal((16, 96)).astype(np.float32)
    assert lowbit.sqnr(x @ w.T + b, second(first(x))) > 25
    assert first.nbytes + second.nbytes < lowbit.QuantizedLinear(w, b).nbytes / 2  # packing pads tiles


# ------------------------------------------------------------------ bad input

def test_bad_inputs_and_no_mutation():
    w = _w()
    before = w.copy()
    lowbit.binarize(w), lowbit.prune_magnitude(w, 0.5), lowbit.prune_rows(w, 0.5), lowbit.low_rank(w, 3)
    np.testing.assert_array_equal(w, before)
    with pytest.raises(ValueError, match="sparsity"):
        lowbit.prune_magnitude(w, 1.5)
    with pytest.raises(TypeError, match="sparsity"):
        lowbit.prune_rows(w, "half")
    with pytest.raises(ValueError, match="weight must be 2-D"):
        lowbit.binarize(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="weight"):
        lowbit.low_rank(np.ones((3, 3), np.int64), 1)
    with pytest.raises(ValueError, match="non-finite"):
        lowbit.prune_magnitude(np.array([np.nan], np.float32), 0.5)
    with pytest.raises(ValueError, match="signs"):
        C.BinaryTensor.from_signs(np.array([[0, 1]]), np.ones(1, np.float32))


# ------------------------------------------------------------------ on models

def test_low_rank_layers_are_two_linears():
    from lowbit import nn

    rng = np.random.default_rng(9)
    w, b = _w((20, 30), 9), rng.standard_normal(20).astype(np.float32)
    first, second = lowbit.models.low_rank_layers(w, b, 20)  # full rank: exact
    assert isinstance(first, lowbit.models.Linear) and first.bias is None and second.bias is not None
    x = rng.standard_normal((4, 30)).astype(np.float32)
    np.testing.assert_allclose(second(first(x)), x @ w.T + b, rtol=1e-4, atol=1e-4)
    q = lowbit.quantize_model(nn.Sequential(lowbit.models.low_rank_layers(w, b, 10)), x)
    assert isinstance(q.layers[0], lowbit.QuantizedLinear)


def test_prune_hidden_units_shrinks_the_model():
    from lowbit import nn

    m = nn.MLP([10, 16, 12, 4], seed=1)
    m.layers[0].weight[[2, 5, 7, 11]] *= 1e-3  # four weak hidden units in the first layer
    p = lowbit.models.prune_hidden_units(m, 0.25)
    assert p.layers[0].weight.shape == (12, 10) and p.layers[0].bias.shape == (12,)
    assert p.layers[2].weight.shape == (9, 12) and p.layers[4].weight.shape == (4, 9)
    keep = [i for i in range(16) if i not in (2, 5, 7, 11)]
    np.testing.assert_array_equal(p.layers[0].weight, m.layers[0].weight[keep])
    w2 = m.layers[2].weight[:, keep]  # the next layer loses the matching columns, then its rows
    np.testing.assert_array_equal(p.layers[2].weight, w2[C.rows_to_keep(w2, 0.25)])
    assert m.layers[0].weight.shape == (16, 10)  # the original is untouched
    x = np.random.default_rng(2).standard_normal((5, 10)).astype(np.float32)
    assert lowbit.quantize_model(p, x)(x).shape == (5, 4)  # composes with quantization
