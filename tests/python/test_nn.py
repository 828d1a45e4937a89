"""lowbit.nn: finite-difference gradient checks (float64) for every layer and loss, the layer
contract (torch layout, hidden activations, foreign layers), fit (learning, determinism,
validation, early stopping, schedules), optimizers against direct formulas, quantization-aware
layers against lowbit.quantize / QuantizedLinear, codebook fine-tuning, and bad input."""
import sys

import numpy as np
import pytest

import lowbit
from lowbit import nn

RNG = np.random.default_rng(1234)


# --- finite differences ---------------------------------------------------------------------------
def numgrad(f, a, eps=1e-6):
    """Central differences of scalar f() with respect to every entry of array a (in place)."""
    g = np.zeros_like(a, dtype=np.float64)
    flat, gf = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gf[i] = (fp - fm) / (2 * eps)
    return g


def assert_close_grad(analytic, numeric, tol=1e-6):
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    scale = max(1.0, np.abs(numeric).max())
    err = np.abs(analytic - numeric).max() / scale
    assert err < tol, f"gradient mismatch: max relative error {err:.3g}"


def check_layer_grads(layer, x, *, rng_seed=0, tol=1e-6):
    """Checks dx and every parameter gradient of `layer` (float64) with R-weighted sum loss."""
    x = np.array(x, np.float64)
    y0 = layer.forward(x, train=True, rng=np.random.default_rng(rng_seed))
    r = np.random.default_rng(99).standard_normal(y0.shape)

    def loss():
        return float(np.sum(layer.forward(x, train=True, rng=np.random.default_rng(rng_seed)) * r))

    loss()
    dx = layer.backward(r, True).copy()
    grads = [g.copy() for g in layer.gradients()]
    assert_close_grad(dx, numgrad(loss, x), tol)
    for p, g in zip(layer.parameters(), grads):
        assert g.shape == p.shape
        assert_close_grad(g, numgrad(loss, p), tol)


@pytest.mark.parametrize("make", [
    lambda: nn.Linear(5, 4, seed=3),
    lambda: nn.Linear(5, 4, bias=False, seed=3),
    lambda: nn.ReLU(),
    lambda: nn.GELU(),
    lambda: nn.GELU(approximate="none"),
    lambda: nn.Dropout(0.4),
    lambda: nn.LayerNorm(5),
    lambda: nn.Softmax(),
], ids=["linear", "linear-nobias", "relu", "gelu-tanh", "gelu-erf", "dropout", "layernorm", "softmax"])
def test_layer_gradients_match_finite_differences(make):
    layer = make().astype(np.float64)
    x = RNG.standard_normal((3, 5))
    x[np.abs(x) < 0.05] += 0.2  # keep ReLU away from its kink
    if isinstance(layer, nn.LayerNorm):
        layer.weight[:] = RNG.standard_normal(5)
        layer.bias[:] = RNG.standard_normal(5)
    check_layer_grads(layer, x)


def test_sequential_gradients_match_finite_differences():
    model = nn.Sequential([nn.Linear(6, 8, seed=1), nn.LayerNorm(8), nn.GELU(), nn.Dropout(0.3),
                           nn.Linear(8, 7, seed=2), nn.ReLU(), nn.Linear(7, 4, seed=3)]).astype(np.float64)
    x = RNG.standard_normal((5, 6))
    check_layer_grads(model, x, tol=1e-5)


def test_hidden_grads_are_added_at_the_right_layer():
    model = nn.MLP([4, 6, 3], seed=0).astype(np.float64)
    x = RNG.standard_normal((3, 4))
    r_out, r_hid = RNG.standard_normal((3, 3)), RNG.standard_normal((3, 6))

    def loss():
        out, hid = model.forward(x, train=True, return_hidden=True)
        return float(np.sum(out * r_out) + np.sum(hid[1] * r_hid))

    loss()
    model.backward(r_out, hidden_grads={1: r_hid})
    grads = [g.copy() for g in model.gradients()]
    for p, g in zip(model.parameters(), grads):
        assert_close_grad(g, numgrad(loss, p))


@pytest.mark.parametrize("dim", [1, 2])
def test_shared_weight_linear_centroid_gradient_is_sum_of_weight_gradients(dim):
    k, out, inp = 4, 3, 6
    idx = RNG.integers(0, k, (out, inp // dim))
    layer = nn.SharedWeightLinear(RNG.standard_normal((k, dim)), idx, RNG.standard_normal(out)).astype(np.float64)
    x = RNG.standard_normal((5, inp))
    check_layer_grads(layer, x)
    # and explicitly: centroid gradient = bincount of the dense weight gradient
    g = RNG.standard_normal((5, out))
    layer.forward(x, train=True)
    layer.backward(g)
    dense = (g.T @ x).reshape(-1, dim)
    want = np.stack([np.bincount(idx.ravel(), weights=dense[:, j], minlength=k) for j in range(dim)], 1)
    np.testing.assert_allclose(layer.grad_centroids, want, rtol=1e-12, atol=1e-12)


def test_losses_match_finite_differences():
    z = RNG.standard_normal((4, 5)) * 3
    y = np.array([0, 3, 4, 1])
    assert_close_grad(nn.cross_entropy(z, y)[1], numgrad(lambda: nn.cross_entropy(z, y)[0], z))
    t = RNG.standard_normal((4, 5)) * 3
    for T, a in ((1.0, 0.5), (4.0, 0.9), (20.0, 1.0)):
        f = lambda: nn.kd_loss(z, y, teacher_logits=t, temperature=T, alpha=a)[0]  # noqa: E731
        assert_close_grad(nn.kd_loss(z, y, teacher_logits=t, temperature=T, alpha=a)[1], numgrad(f, z))
    target = RNG.standard_normal((4, 5))
    assert_close_grad(nn.mse_loss(z, target)[1], numgrad(lambda: nn.mse_loss(z, target)[0], z))


def test_cross_entropy_matches_direct_numpy():
    z = RNG.standard_normal((6, 4))
    y = RNG.integers(0, 4, 6)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    loss, g = nn.cross_entropy(z, y)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(6), y])), rel=1e-12)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(g, (p - onehot) / 6, rtol=1e-10)
    big = np.array([[1e4, 0, -1e4]], np.float32)  # no overflow
    loss, g = nn.cross_entropy(big, [1])
    assert np.isfinite(loss) and loss == pytest.approx(1e4) and np.all(np.isfinite(g))


def test_fake_quant_linear_ste_gradients():
    layer = nn.FakeQuantLinear(6, 4, seed=2).astype(np.float64)
    x = RNG.standard_normal((5, 6))
    g = RNG.standard_normal((5, 4))
    layer.forward(x, train=True)
    dx = layer.backward(g)
    wq = nn.fake_quantize_weight(layer.weight)[0]
    xq = nn.fake_quantize_rows(x)[0]
    # straight-through: the gradient of the quantized product, passed to W and x unchanged
    np.testing.assert_allclose(layer.grad_weight, g.T @ xq, rtol=1e-12)
    np.testing.assert_allclose(dx, g @ wq, rtol=1e-12)
    np.testing.assert_allclose(layer.grad_bias, g.sum(0), rtol=1e-12)
    # static activations: the range observed so far (narrowed here so that some inputs clip);
    # the gradient is zero where the input was clipped and straight-through elsewhere
    st = nn.FakeQuantLinear(6, 4, seed=2, act="static").astype(np.float64)
    st.forward(x, train=True)
    st.act_min, st.act_max = -0.5, 0.5
    st.forward(x, train=True)  # updates the observer, then quantizes with the updated range
    dx = st.backward(g)
    _, mask = nn.fake_quantize_static(x, st.act_scale, st.act_zero_point)
    assert 0 < mask.sum() < mask.size
    wq = nn.fake_quantize_weight(st.weight)[0]
    np.testing.assert_allclose(dx, (g @ wq) * mask, rtol=1e-12, atol=1e-15)


# --- layer contract ---------------------------------------------------------------------------------
def test_linear_layout_and_forward():
    layer = nn.Linear(7, 3, seed=5)
    assert layer.weight.shape == (3, 7) and layer.bias.shape == (3,)
    assert layer.weight.dtype == np.float32
    assert np.abs(layer.weight).max() <= 1 / np.sqrt(7)
    x = RNG.standard_normal((2, 4, 7)).astype(np.float32)
    np.testing.assert_allclose(layer(x), x @ layer.weight.T + layer.bias, rtol=1e-6)
    assert np.array_equal(nn.Linear(7, 3, seed=5).weight, layer.weight)
    assert not np.array_equal(nn.Linear(7, 3, seed=6).weight, layer.weight)


def test_mlp_matches_torch_forward_and_backward():
    torch = pytest.importorskip("torch")
    model = nn.MLP([5, 8, 3], seed=0)
    tm = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for tl, ll in zip((tm[0], tm[2]), (model.layers[0], model.layers[2])):
            tl.weight.copy_(torch.from_numpy(ll.weight))
            tl.bias.copy_(torch.from_numpy(ll.bias))
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    y = np.array([0, 2, 1, 2])
    np.testing.assert_allclose(model(x), tm(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    z = model.forward(x, train=True)
    model.backward(nn.cross_entropy(z, y)[1])
    loss = torch.nn.functional.cross_entropy(tm(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    np.testing.assert_allclose(model.layers[0].grad_weight, tm[0].weight.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.layers[2].grad_bias, tm[2].bias.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_hidden_activations_and_inference_mode():
    model = nn.MLP([4, 6, 5, 3], dropout=0.5, seed=0)
    assert [type(l).__name__ for l in model.layers] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU",
                                                        "Dropout", "Linear"]
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    out, hidden = model.forward(x, return_hidden=True)
    assert len(hidden) == len(model.layers) and hidden[-1] is out and model.hidden is hidden
    np.testing.assert_allclose(hidden[1], np.maximum(hidden[0], 0))
    np.testing.assert_array_equal(model(x), model(x))  # inference: no dropout
    assert model(x).dtype == np.float32
    a = model.forward(x, train=True, rng=np.random.default_rng(0)).copy()
    b = model.forward(x, train=True, rng=np.random.default_rng(1)).copy()
    assert not np.array_equal(a, b)  # training: dropout masks from the rng


def test_foreign_layers_for_inference():
    model = nn.MLP([8, 16, 4], seed=0)
    x = RNG.random((5, 8)).astype(np.float32)
    ref = model(x)
    q = lowbit.QuantizedLinear(model.layers[2].weight, model.layers[2].bias)
    model.layers[2] = q
    out = model(x)
    assert out.dtype == np.float32 and out.shape == (5, 4)
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max()
    assert len(model.parameters()) == 2  # the QuantizedLinear is not trainable
    # gradients cannot pass back through an inference-only layer ...
    z = model.forward(x, train=True)
    with pytest.raises(TypeError, match="inference-only"):
        model.backward(np.ones_like(z))
    # ... but a frozen first layer is fine: only the layers after it train
    frozen = nn.Sequential([lowbit.QuantizedLinear(RNG.standard_normal((6, 8)).astype(np.float32)), nn.ReLU(),
                            nn.Linear(6, 3, seed=1)])
    hist = nn.fit(frozen, x, np.array([0, 1, 2, 0, 1]), epochs=3, batch_size=2)
    assert len(hist.loss) == 3


def test_copy_get_set_weights_and_inputs_unchanged():
    model = nn.MLP([3, 4, 2], seed=0)
    clone = model.copy()
    clone.layers[0].weight[:] = 0
    assert np.any(model.layers[0].weight != 0)
    w = model.get_weights()
    clone.set_weights(w)
    np.testing.assert_array_equal(clone.layers[0].weight, model.layers[0].weight)
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    x0 = x.copy()
    model(x)
    model.forward(x, train=True)
    g = np.ones((4, 2), np.float32)
    model.backward(g)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, 1)


# --- fit ------------------------------------------------------------------------------------------------
def blobs(n=240, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 3
    y = rng.integers(0, k, n)
    x = (centers[y] + rng.standard_normal((n, d))).astype(np.float32)
    return x, y


def test_fit_learns_and_is_deterministic_per_seed():
    x, y = blobs()
    x0, y0 = x.copy(), y.copy()
    m1, m2, m3 = (nn.MLP([6, 16, 3], dropout=0.1, seed=0) for _ in range(3))
    h1 = nn.fit(m1, x, y, epochs=8, lr=1e-2, seed=3)
    h2 = nn.fit(m2, x, y, epochs=8, lr=1e-2, seed=3)
    nn.fit(m3, x, y, epochs=8, lr=1e-2, seed=4)
    assert h1.accuracy[-1] > 0.9 and h1.loss[-1] < h1.loss[0]
    assert h1.loss == h2.loss
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(m1.parameters(), m3.parameters()))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    assert (m1(x).argmax(1) == y).mean() > 0.9


def test_fit_validation_early_stopping_and_restore_best():
    x, y = blobs(200)
    xv, yv = blobs(100, seed=1)
    yv = (yv + 1) % 3  # validation labels that disagree: val_loss rises while training fits
    model = nn.MLP([6, 16, 3], seed=0)
    best_w = {}

    def cb(epoch, hist):
        if hist.best_epoch == epoch:
            best_w["w"] = model.get_weights()

    h = nn.fit(model, x, y, epochs=50, lr=1e-2, validation_data=(xv, yv), early_stopping=3, callback=cb)
    assert h.stopped_early and len(h.val_loss) < 50
    assert len(h.val_loss) == len(h.loss) == len(h.val_accuracy) == h.epochs
    assert h.best_epoch == int(np.argmin(h.val_loss))
    for a, b in zip(model.get_weights(), best_w["w"]):
        np.testing.assert_array_equal(a, b)


def test_fit_cosine_schedule_sgd_and_callback_stop():
    x, y = blobs(128)
    model = nn.MLP([6, 8, 3], seed=0)
    h = nn.fit(model, x, y, epochs=4, batch_size=32, lr=0.1, schedule="cosine", optimizer="sgd", momentum=0.9)
    assert h.lr[0] < 0.1 and h.lr[-1] < 0.01 and h.lr == sorted(h.lr, reverse=True)
    assert h.accuracy[-1] > 0.8
    assert nn.learning_rate(1.0, "cosine", 50, 100) == pytest.approx(0.5)
    h = nn.fit(model, x, y, epochs=10, callback=lambda e, hist: e == 1)
    assert h.epochs == 2


def test_fit_threads_limits_blas_only_while_training():
    tpc = pytest.importorskip("threadpoolctl")
    before = [i["num_threads"] for i in tpc.threadpool_info() if i["user_api"] == "blas"]
    seen = []
    x, y = blobs(64)

    def cb(epoch, hist):
        seen.extend(i["num_threads"] for i in tpc.threadpool_info() if i["user_api"] == "blas")

    nn.fit(nn.MLP([6, 4, 3]), x, y, epochs=1, threads=1, callback=cb)
    assert seen and all(n == 1 for n in seen)
    assert [i["num_threads"] for i in tpc.threadpool_info() if i["user_api"] == "blas"] == before
    with pytest.raises(ValueError, match="threads"):
        nn.fit(nn.MLP([6, 4, 3]), x, y, epochs=1, threads=0)


def test_history_plot(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    x, y = blobs(64)
    h = nn.fit(nn.MLP([6, 4, 3]), x, y, epochs=2, validation_data=(x, y))
    p = tmp_path / "h.png"
    h.plot(p)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="matplotlib"):
        h.plot(tmp_path / "x.png")


def test_progress_fallback_prints(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    x, y = blobs(32)
    nn.fit(nn.MLP([6, 4, 3]), x, y, epochs=2, progress=True)
    assert "epoch 2/2" in capsys.readouterr().err


# --- optimizers -------------------------------------------------------------------------------------
def test_adam_and_sgd_match_reference_formulas():
    p0 = RNG.standard_normal(10)
    grads = [RNG.standard_normal(10) for _ in range(3)]
    for wd, decoupled in ((0.0, True), (0.1, True), (0.1, False)):
        p = p0.copy()
        opt = nn.Adam(0.01, weight_decay=wd, decoupled=decoupled)
        rp, m, v = p0.copy(), np.zeros(10), np.zeros(10)
        for t, g in enumerate(grads, 1):
            opt.step([p], [g])
            ge = g + wd * rp if not decoupled else g
            if decoupled:
                rp = rp * (1 - 0.01 * wd)
            m = 0.9 * m + 0.1 * ge
            v = 0.999 * v + 0.001 * ge * ge
            rp = rp - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        np.testing.assert_allclose(p, rp, rtol=1e-10)
    p = p0.copy()
    opt = nn.SGD(0.1, momentum=0.9)
    rp, buf = p0.copy(), np.zeros(10)
    for g in grads:
        opt.step([p], [g])
        buf = 0.9 * buf + g
        rp = rp - 0.1 * buf
    np.testing.assert_allclose(p, rp, rtol=1e-12)


def test_adam_matches_torch():
    torch = pytest.importorskip("torch")
    p0 = RNG.standard_normal(8).astype(np.float32)
    grads = [RNG.standard_normal(8).astype(np.float32) for _ in range(4)]
    p = p0.copy()
    opt = nn.Adam(1e-2, weight_decay=0.01)
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    topt = torch.optim.AdamW([tp], lr=1e-2, weight_decay=0.01)
    for g in grads:
        opt.step([p], [g])
        tp.grad = torch.from_numpy(g)
        topt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-5, atol=1e-7)


# --- quantization-aware layers ------------------------------------------------------------------
def test_fake_quantization_matches_lowbit_quantize_exactly():
    w = RNG.standard_normal((16, 33)).astype(np.float32)
    w[3] = 0.0
    w[5] = -0.25  # constant row
    w.flat[::7] = np.round(w.flat[::7] * 8) / 8  # ties
    for bits in (8, 4):
        deq, codes, scale = nn.fake_quantize_weight(w, bits)
        q = lowbit.quantize(w, bits=bits, axis=0)
        np.testing.assert_array_equal(codes.astype(np.int8), q.int_repr())
        np.testing.assert_array_equal(scale, q.scale)
        np.testing.assert_array_equal(deq, q.dequantize())
    x = RNG.standard_normal((9, 33)).astype(np.float32) * 2
    x[2] = 0.0
    x[4] = 1.5
    x[6] = np.abs(x[6])
    deq, codes, scale, zp = nn.fake_quantize_rows(x)
    q = lowbit.quantize(x, axis=0, symmetric=False)
    np.testing.assert_array_equal(codes.astype(np.uint8), q.int_repr())
    np.testing.assert_array_equal(scale, q.scale)
    np.testing.assert_array_equal(zp.astype(np.int32), q.zero_point)
    np.testing.assert_array_equal(deq, q.dequantize())
    d, _ = nn.fake_quantize_static(x, 0.02, 100)
    q = lowbit.quantize(x, symmetric=False, scale=0.02, zero_point=100)
    np.testing.assert_array_equal(d, q.dequantize())


@pytest.mark.parametrize("act", ["dynamic", "static"])
def test_fake_quant_layer_matches_quantized_linear(act):
    """One layer, same input: QuantizedLinear (integer GEMM) equals the fake-quantized float
    forward up to float32 summation order: the codes are identical (checked above), so the only
    difference is sum((q-z)*s_x * w_q*s_w) in float vs float(sum((q-z)*w_q)) * s_x*s_w. The bound
    used, 1e-5 * (|x_q| @ |w_q|^T) + 1e-6, is ~K float32 rounding errors of the absolute sum."""
    layer = nn.FakeQuantLinear(48, 20, seed=0, act=act)
    x = RNG.standard_normal((33, 48)).astype(np.float32)
    if act == "static":
        layer.forward(x, train=True)
    fq = layer(x)
    q = layer.to_quantized()
    out = q(x)
    xq = nn.fake_quantize_rows(x)[0] if act == "dynamic" else nn.fake_quantize_static(
        x, layer.act_scale, layer.act_zero_point)[0]
    bound = 1e-5 * (np.abs(xq) @ np.abs(nn.fake_quantize_weight(layer.weight)[0]).T) + 1e-6
    assert np.all(np.abs(out - fq) <= bound)
    np.testing.assert_array_equal(q.weight_q.int_repr(), nn.fake_quantize_weight(layer.weight)[1].astype(np.int8))


def test_prepare_and_convert_qat_and_quantize_dynamic():
    model = nn.MLP([8, 16, 4], seed=0)
    qat = nn.prepare_qat(model)
    assert isinstance(qat.layers[0], nn.FakeQuantLinear) and type(model.layers[0]) is nn.Linear
    x = RNG.random((40, 8)).astype(np.float32)
    y = RNG.integers(0, 4, 40)
    nn.fit(qat, x, y, epochs=2, batch_size=8)
    conv = nn.convert_qat(qat)
    assert all(type(l).__name__ == "QuantizedLinear" for l in (conv.layers[0], conv.layers[2]))
    assert np.abs(conv(x) - qat(x)).max() < 1e-3 * max(1.0, np.abs(qat(x)).max())
    with pytest.raises(ValueError, match="FakeQuantLinear"):
        nn.convert_qat(model)
    ptq = nn.quantize_dynamic(model)
    assert type(ptq.layers[0]).__name__ == "QuantizedLinear" and type(model.layers[0]) is nn.Linear
    assert np.abs(ptq(x) - model(x)).max() < 0.05


def test_prepare_codebook_and_fine_tune():
    model = nn.MLP([8, 16, 4], seed=0)
    cb = nn.prepare_codebook(model, k=4)
    layer = cb.layers[0]
    assert isinstance(layer, nn.SharedWeightLinear) and layer.k == 4
    assert len(np.unique(layer.weight)) <= 4
    # a given codebook as (centroids, indices)
    c = np.array([-0.2, 0.0, 0.2], np.float32)
    idx = RNG.integers(0, 3, (16, 8))
    cb2 = nn.prepare_codebook(model, {0: (c, idx)}, k=4)
    np.testing.assert_array_equal(cb2.layers[0].weight, c[idx])
    x = RNG.random((64, 8)).astype(np.float32)
    y = RNG.integers(0, 4, 64)
    before = cb.layers[0].centroids.copy()
    nn.fit(cb, x, y, epochs=3, batch_size=16, lr=1e-2)
    assert not np.array_equal(before, cb.layers[0].centroids)
    assert len(np.unique(cb.layers[0].weight)) <= 4  # still k shared values
    lin = cb.layers[0].to_linear()
    np.testing.assert_array_equal(lin.weight, cb.layers[0].weight)
    if hasattr(lowbit, "kmeans"):  # a lowbit.Codebook works as a given codebook too
        book = lowbit.kmeans(model.layers[0].weight, 4, seed=0)
        cb3 = nn.prepare_codebook(model, {0: book})
        np.testing.assert_array_equal(cb3.layers[0].weight, book.decode())
    if hasattr(lowbit, "CodebookLinear"):  # conversion for inference: the same k shared values
        np.testing.assert_allclose(cb.layers[0].to_codebook_linear()(x), cb.layers[0](x), atol=1e-3)


# --- bad input ------------------------------------------------------------------------------------------
def test_bad_input_raises_named_errors():
    model = nn.MLP([4, 3, 2])
    x = np.zeros((5, 4), np.float32)
    y = np.zeros(5, np.int64)
    with pytest.raises(TypeError, match="sizes"):
        nn.MLP(4)
    with pytest.raises(ValueError, match="sizes"):
        nn.MLP([4])
    with pytest.raises(ValueError, match="activation"):
        nn.MLP([4, 2], activation="swish")
    with pytest.raises(ValueError, match="dropout"):
        nn.MLP([4, 3, 2], dropout=1.0)
    with pytest.raises(TypeError, match="in_features"):
        nn.Linear(4.0, 2)
    with pytest.raises(ValueError, match="x must have shape"):
        model(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        model(np.zeros((2, 4), np.int32))
    with pytest.raises(TypeError, match="epochs"):
        nn.fit(model, x, y, epochs=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        nn.fit(model, x, y, epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        nn.fit(model, x, y, epochs=1, lr=-1)
    with pytest.raises(ValueError, match="y must have shape"):
        nn.fit(model, x, y[:3], epochs=1)
    with pytest.raises(ValueError, match="label 7"):
        nn.fit(model, x, y + 7, epochs=1)
    with pytest.raises(TypeError, match="y must be an integer"):
        nn.fit(model, x, y.astype(np.float32), epochs=1)
    xn = x.copy()
    xn[1, 2] = np.nan
    with pytest.raises(ValueError, match="x holds 1 non-finite"):
        nn.fit(model, xn, y, epochs=1)
    with pytest.raises(ValueError, match="optimizer"):
        nn.fit(model, x, y, epochs=1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="schedule"):
        nn.fit(model, x, y, epochs=1, schedule="step")
    with pytest.raises(ValueError, match="early_stopping needs validation_data"):
        nn.fit(model, x, y, epochs=1, early_stopping=2)
    with pytest.raises(TypeError, match="validation_data"):
        nn.fit(model, x, y, epochs=1, validation_data=x)
    with pytest.raises(TypeError, match="model must be a lowbit.nn model"):
        nn.fit(lambda v: v, x, y, epochs=1)
    with pytest.raises(ValueError, match="diverged"), np.errstate(all="ignore"):
        nn.fit(nn.Sequential([nn.Linear(4, 2)]), x + 1, y, epochs=3, lr=1e38, optimizer="sgd")
    with pytest.raises(RuntimeError, match="training forward"):
        nn.Linear(2, 2).backward(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="indices must be in"):
        nn.SharedWeightLinear(np.zeros(2), np.full((2, 2), 5))
    with pytest.raises(ValueError, match="act must be"):
        nn.prepare_qat(model, act="per-tensor")
