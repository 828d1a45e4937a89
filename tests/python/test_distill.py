"""lowbit.distill: the KD loss against a direct numpy computation, T^2 scaling, numerical
stability, teachers of every kind (lowbit, quantized, callables, torch, several with weights),
determinism, precomputed and streamed soft targets, hints (FitNets) with a gradient check,
quantization-aware distillation (int8 inference vs the fake-quant forward) and codebook
fine-tuning, and bad input."""
import numpy as np
import pytest

import lowbit
from lowbit import distill, nn

RNG = np.random.default_rng(77)


def softmax64(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def kd_reference(s, t, y, T, alpha):
    """Hinton et al.'s loss written out directly in float64."""
    p = softmax64(np.asarray(t, np.float64) / T)
    q = softmax64(np.asarray(s, np.float64) / T)
    kl = np.sum(p * (np.log(p) - np.log(q)), axis=1).mean()
    ce = -np.mean(np.log(softmax64(s)[np.arange(len(y)), y]))
    return alpha * T * T * kl + (1 - alpha) * ce


@pytest.fixture(scope="module")
def digits():
    sk = pytest.importorskip("sklearn.datasets")
    d = sk.load_digits()
    x = (d.data / 16).astype(np.float32)
    return x[:600], d.target[:600], x[600:900], d.target[600:900]


@pytest.fixture(scope="module")
def teacher(digits):
    x, y, _, _ = digits
    t = nn.MLP([64, 64, 10], seed=0)
    nn.fit(t, x, y, epochs=15, lr=1e-2)
    return t


# --- the loss -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("T,alpha", [(1.0, 0.5), (4.0, 0.9), (4.0, 0.5), (20.0, 0.0), (7.5, 1.0)])
def test_kd_loss_equals_direct_numpy(T, alpha):
    s, t = RNG.standard_normal((6, 5)) * 3, RNG.standard_normal((6, 5)) * 3
    y = RNG.integers(0, 5, 6)
    loss, g = distill.kd_loss(s, y, teacher_logits=t, temperature=T, alpha=alpha)
    assert loss == pytest.approx(kd_reference(s, t, y, T, alpha), rel=1e-10)
    # the gradient has the closed form alpha*T*(q - p)/n + (1-alpha)*(softmax(s) - onehot)/n
    p, q = softmax64(t / T), softmax64(s / T)
    want = alpha * T * (q - p) / 6 + (1 - alpha) * (softmax64(s) - np.eye(5)[y]) / 6
    np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-14)
    # teacher probabilities instead of logits: the same loss and gradient
    loss2, g2 = distill.kd_loss(s, y, teacher_probs=p, temperature=T, alpha=alpha)
    assert loss2 == pytest.approx(loss, rel=1e-9)
    np.testing.assert_allclose(g2, g, rtol=1e-12)


def test_t_squared_keeps_the_soft_gradient_scale():
    """Hinton et al.: softened gradients scale as 1/T^2, so the loss is multiplied by T^2. With
    it the soft gradient's size barely changes from T=5 to T=20; without it, it would shrink 16x."""
    s, t = RNG.standard_normal((8, 10)), RNG.standard_normal((8, 10))
    norms = {T: np.linalg.norm(distill.kd_loss(s, teacher_logits=t, temperature=T, alpha=1.0)[1])
             for T in (5.0, 10.0, 20.0)}
    assert 0.85 < norms[20.0] / norms[5.0] < 1.15
    assert 0.9 < norms[20.0] / norms[10.0] < 1.1
    loss_T, _ = distill.kd_loss(s, teacher_logits=t, temperature=3.0, alpha=1.0)
    p, q = softmax64(t / 3), softmax64(s / 3)
    assert loss_T == pytest.approx(9.0 * np.sum(p * np.log(p / q), 1).mean(), rel=1e-10)


@pytest.mark.parametrize("T", [1.0, 20.0])
def test_kd_loss_is_stable_for_huge_logits(T):
    s = (RNG.standard_normal((5, 10)) * 1e4).astype(np.float32)
    t = (RNG.standard_normal((5, 10)) * 1e4).astype(np.float32)
    y = RNG.integers(0, 10, 5)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # (underflow to 0 is fine)
        loss, g = distill.kd_loss(s, y, teacher_logits=t, temperature=T, alpha=0.7)
        loss_shift, g_shift = distill.kd_loss(s + np.float32(1e4), y, teacher_logits=t - np.float32(1e4),
                                              temperature=T, alpha=0.7)
    assert np.isfinite(loss) and np.all(np.isfinite(g)) and g.dtype == np.float32
    # softmax is shift-invariant: adding 1e4 to every logit changes nothing (up to float32 rounding of the inputs)
    assert loss_shift == pytest.approx(loss, rel=1e-3)
    # against the definition with logsumexp written independently (np.logaddexp) and 0 log 0 = 0
    s64, t64 = s.astype(np.float64), t.astype(np.float64)
    lp = t64 / T - np.logaddexp.reduce(t64 / T, axis=1, keepdims=True)
    lq = s64 / T - np.logaddexp.reduce(s64 / T, axis=1, keepdims=True)
    p = np.exp(lp)
    kl = np.sum(np.where(p > 0, p * (lp - lq), 0.0), axis=1).mean()
    ce = -np.mean((s64 - np.logaddexp.reduce(s64, axis=1, keepdims=True))[np.arange(5), y])
    assert loss == pytest.approx(0.7 * T * T * kl + 0.3 * ce, rel=1e-9)


# --- teachers -----------------------------------------------------------------------------------------
def test_multi_teacher_weighted_average(digits):
    x = digits[0][:50]
    t1, t2 = nn.MLP([64, 16, 10], seed=1), nn.MLP([64, 16, 10], seed=2)
    s = nn.MLP([64, 8, 10], seed=3)
    T = 3.0
    p1, p2 = softmax64(t1(x) / T), softmax64(t2(x) / T)
    d = distill.Distiller([(t1, 1.0), (t2, 3.0)], s, temperature=T)
    np.testing.assert_allclose(d.teacher_probs(x), 0.25 * p1 + 0.75 * p2, rtol=1e-5, atol=1e-7)
    d2 = distill.Distiller([t1, t2], s, temperature=T, teacher_weights=[1, 3])
    np.testing.assert_allclose(d2.teacher_probs(x), d.teacher_probs(x), rtol=1e-6)
    d3 = distill.Distiller([t1, t2], s, temperature=T)
    np.testing.assert_allclose(d3.teacher_probs(x), 0.5 * (p1 + p2), rtol=1e-5, atol=1e-7)


def test_teachers_of_every_kind(digits, teacher):
    x, y = digits[0][:200], digits[1][:200]
    T = 4.0
    want = softmax64(teacher(x) / T)
    q_teacher = nn.quantize_dynamic(teacher)  # a model made of QuantizedLinear layers
    kinds = {
        "lowbit": teacher,
        "callable": lambda v: teacher(v) * 1.0,
        "quantized": q_teacher,
        "mixed": nn.Sequential([lowbit.QuantizedLinear(teacher.layers[0].weight, teacher.layers[0].bias),
                                nn.ReLU(), teacher.layers[2]]),
    }
    for name, t in kinds.items():
        d = distill.Distiller(t, nn.MLP([64, 8, 10], seed=0), temperature=T)
        p = d.teacher_probs(x)
        tol = 1e-5 if name in ("lowbit", "callable") else 2e-2  # int8 teachers: quantization error
        assert np.abs(p - want).max() < tol, name
        h = d.fit(x, y, epochs=2, batch_size=32)
        assert h.epochs == 2 and np.isfinite(h.loss[-1])


def test_torch_teacher_wrapped_in_a_function(digits, teacher):
    torch = pytest.importorskip("torch")
    x, y = digits[0][:100], digits[1][:100]
    tm = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        for tl, ll in zip((tm[0], tm[2]), (teacher.layers[0], teacher.layers[2])):
            tl.weight.copy_(torch.from_numpy(ll.weight))
            tl.bias.copy_(torch.from_numpy(ll.bias))

    def torch_teacher(v):
        with torch.no_grad():
            return tm(torch.from_numpy(v)).numpy()

    d = distill.Distiller(torch_teacher, nn.MLP([64, 8, 10]), temperature=4.0)
    np.testing.assert_allclose(d.teacher_probs(x), softmax64(teacher(x) / 4.0), atol=1e-5)
    assert d.fit(x, y, epochs=1).epochs == 1


# --- training -----------------------------------------------------------------------------------------
def test_distillation_learns_and_is_deterministic(digits, teacher):
    x, y, xv, yv = digits
    runs = []
    for seed in (5, 5, 6):
        s = nn.MLP([64, 16, 10], seed=1)
        h = distill.Distiller(teacher, s, temperature=4.0, alpha=0.5).fit(
            x, y, epochs=6, lr=1e-2, seed=seed, validation_data=(xv, yv), schedule="cosine")
        runs.append((s, h))
    (s1, h1), (s2, h2), (s3, _) = runs
    assert h1.val_accuracy[-1] > 0.7 and h1.loss[-1] < h1.loss[0]
    assert h1.loss == h2.loss and h1.soft_loss == h2.soft_loss
    for a, b in zip(s1.parameters(), s2.parameters()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(s1.parameters(), s3.parameters()))
    assert len(h1.soft_loss) == len(h1.hard_loss) == 6
    # the reported loss is the KD loss of the batches: alpha*soft + (1-alpha)*hard
    np.testing.assert_allclose(h1.loss, 0.5 * np.array(h1.soft_loss) + 0.5 * np.array(h1.hard_loss), rtol=1e-9)


def test_early_stopping_unlabeled_transfer_and_plot(digits, teacher, tmp_path):
    x, y, xv, yv = digits
    s = nn.MLP([64, 16, 10], seed=1)
    h = distill.Distiller(teacher, s, alpha=1.0).fit(x, None, epochs=4, lr=1e-2)  # no labels at alpha=1
    assert h.accuracy[-1] > 0.5  # agreement with the teacher's top class
    with pytest.raises(ValueError, match="y \\(labels\\) is required"):
        distill.Distiller(teacher, s, alpha=0.5).fit(x, None, epochs=1)
    h = distill.Distiller(teacher, nn.MLP([64, 16, 10], seed=1)).fit(
        x, y, epochs=40, lr=3e-2, validation_data=(xv, (yv + 3) % 10), early_stopping=2)
    assert h.stopped_early and h.epochs < 40
    pytest.importorskip("matplotlib")
    h.plot(tmp_path / "kd.png")
    assert (tmp_path / "kd.png").stat().st_size > 1000


def test_precomputed_soft_targets_file_and_streamed_chunks(digits, teacher, tmp_path):
    x, y = digits[0], digits[1]
    d = distill.Distiller(teacher, nn.MLP([64, 16, 10], seed=1), temperature=4.0, alpha=0.5)
    soft = d.soft_targets(x)
    path = tmp_path / "soft.npy"
    mm = d.soft_targets(x, path, batch_size=128)  # streamed into a .npy, chunk by chunk
    assert isinstance(mm, np.memmap)
    np.testing.assert_allclose(np.asarray(mm), soft, rtol=1e-5, atol=1e-7)  # other batch sizes: BLAS rounding
    np.testing.assert_allclose(soft, softmax64(teacher(x) / 4.0), atol=1e-6)

    def run(**kw):
        s = nn.MLP([64, 16, 10], seed=1)
        h = distill.Distiller(teacher, s, temperature=4.0, alpha=0.5).fit(x, y, epochs=3, seed=1, **kw)
        return s, h

    s0, h0 = run()
    s1, h1 = run(soft_targets=soft)
    s2, h2 = run(soft_targets=path)  # memory-mapped, read batch by batch
    assert h1.loss == h0.loss
    np.testing.assert_allclose(h2.loss, h0.loss, rtol=1e-4)
    # a teacher run elsewhere: files streamed in chunks, one chunk in memory at a time
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    chunks = distill.chunks_from_files(tmp_path / "x.npy", path, tmp_path / "y.npy", chunk_size=256)
    assert [len(c[0]) for c in chunks()] == [256, 256, 88]
    s3 = nn.MLP([64, 16, 10], seed=1)
    d3 = distill.Distiller(teacher, s3, temperature=4.0, alpha=0.5)
    h3 = d3.fit_stream(chunks, epochs=4, lr=3e-3, schedule="cosine")
    assert h3.epochs == 4 and h3.loss[-1] < h3.loss[0]
    h4 = distill.Distiller(teacher, nn.MLP([64, 16, 10], seed=1), alpha=0.5).fit_stream(
        [(x[:300], y[:300], soft[:300]), (x[300:], y[300:], soft[300:])], epochs=2)
    assert h4.epochs == 2
    with pytest.raises(ValueError, match="rows must sum to 1"):
        d3.fit(x, y, epochs=1, soft_targets=soft * 2)
    with pytest.raises(ValueError, match="soft_targets must have shape"):
        d3.fit(x, y, epochs=1, soft_targets=soft[:10])


# --- hints ----------------------------------------------------------------------------------------------
def test_hint_gradients_match_finite_differences():
    t = nn.MLP([5, 7, 6, 3], seed=0).astype(np.float64)
    s = nn.MLP([5, 4, 3], seed=1).astype(np.float64)
    d = distill.Distiller(t, s, temperature=2.0, alpha=0.7, hints=[(1, 3), (0, 1)], hint_weight=[0.5, 2.0])
    x = RNG.standard_normal((6, 5))
    y = RNG.integers(0, 3, 6)
    d._ensure_projections(x[:1])
    for p in d.projections:
        p.astype(np.float64)
    pb, lpb, th = d._probs(x, 3, hidden=True)

    def loss():
        return d._step(x, y, pb, lpb, th, None, 3)["loss"] / 6

    loss()
    params, grads = d._trainables()
    grads = [g.copy() for g in grads]
    from test_nn import assert_close_grad, numgrad

    for p, g in zip(params, grads):
        assert_close_grad(g, numgrad(loss, p), tol=1e-5)


def test_hints_train_the_projection_and_reduce_the_hint_loss(digits, teacher):
    x, y = digits[0], digits[1]
    s = nn.MLP([64, 16, 10], seed=1)
    d = distill.Distiller(teacher, s, alpha=0.5, hints=[(1, 1)], hint_weight=1.0)
    h = d.fit(x, y, epochs=5, lr=3e-3)
    assert len(d.projections) == 1 and d.projections[0].weight.shape == (64, 16)
    assert h.hint_loss[-1] < h.hint_loss[0]
    with pytest.raises(ValueError, match="out of range"):
        distill.Distiller(teacher, s, hints=[(5, 1)])
    with pytest.raises(ValueError, match="exactly one teacher"):
        distill.Distiller(lambda v: teacher(v), s, hints=[(1, 1)])
    with pytest.raises(ValueError, match="cannot be used with precomputed"):
        d.fit(x, y, epochs=1, soft_targets=d.soft_targets(x))


# --- quantization-aware distillation ---------------------------------------------------------------
@pytest.mark.parametrize("act", ["dynamic", "static"])
def test_qat_student_int8_inference_matches_fake_quant_forward(digits, teacher, act):
    """The converted int8 model (QuantizedLinear) computes the fake-quant forward with integer
    arithmetic. Tolerance, and why: the first layer sees the same input codes (the fake
    quantization reproduces lowbit.quantize bit for bit), so its outputs differ only by float32
    summation order, bounded by 1e-5 * (|x_q| @ |w_q|^T). The second layer re-quantizes the hidden
    activations: a hidden value within that float error of a rounding boundary may get the
    neighboring code (rare), which moves a logit by at most one activation step s_x times |w_q|.
    The bound below adds exactly those terms; predictions must agree on >= 99% of rows."""
    x, y, xv, _ = digits
    student = nn.prepare_qat(nn.MLP([64, 32, 10], seed=2), act=act)
    h = distill.Distiller(teacher, student, temperature=4.0, alpha=0.5).fit(x, y, epochs=8, lr=3e-3)
    assert h.accuracy[-1] > 0.7
    int8 = distill.convert_qat(student)
    assert type(int8.layers[0]).__name__ == "QuantizedLinear"
    fq, out = student(xv), int8(xv)
    l0, l2 = student.layers[0], student.layers[2]
    w0, w2 = nn.fake_quantize_weight(l0.weight)[0], nn.fake_quantize_weight(l2.weight)[0]

    def act_q(v, layer):
        if act == "dynamic":
            d, codes, s, _ = nn.fake_quantize_rows(v)
            return d, codes, np.broadcast_to(s[:, None], v.shape)
        d, _ = nn.fake_quantize_static(v, layer.act_scale, layer.act_zero_point)
        codes = np.clip(np.rint(v / np.float32(layer.act_scale)) + layer.act_zero_point, 0, 255)
        return d, codes, np.full(v.shape, layer.act_scale, np.float32)

    x0q, _, _ = act_q(xv, l0)
    h_fq = np.maximum(x0q @ w0.T + l0.bias, 0)
    h_int = np.maximum(int8.layers[0](xv), 0)
    assert np.all(np.abs(h_fq - h_int) <= 1e-5 * (np.abs(x0q) @ np.abs(w0).T) + 1e-6)
    d_fq, c_fq, s_fq = act_q(h_fq, l2)
    _, c_int, _ = act_q(h_int, l2)
    flipped = c_fq != c_int
    assert flipped.mean() < 1e-3
    bound = (1e-5 * (np.abs(d_fq) @ np.abs(w2).T) + 1e-5
             + (flipped * s_fq * np.abs(c_fq - c_int)) @ np.abs(w2).T)
    assert np.all(np.abs(out - fq) <= bound)
    assert (out.argmax(1) == fq.argmax(1)).mean() >= 0.99


def test_codebook_fine_tuning_by_distillation(digits, teacher):
    x, y, xv, yv = digits
    student = nn.MLP([64, 32, 10], seed=2)
    nn.fit(student, x, y, epochs=10, lr=3e-3)
    cb = distill.prepare_codebook(student, k=8)
    acc0 = (cb(xv).argmax(1) == yv).mean()
    distill.Distiller(teacher, cb, alpha=0.5).fit(x, y, epochs=5, lr=1e-3)
    acc1 = (cb(xv).argmax(1) == yv).mean()
    assert acc1 >= acc0 - 0.02
    for i in (0, 2):
        assert len(np.unique(cb.layers[i].weight)) <= 8


# --- bad input --------------------------------------------------------------------------------------------
def test_bad_input(digits, teacher):
    x, y = digits[0][:64], digits[1][:64]
    s = nn.MLP([64, 8, 10])
    with pytest.raises(ValueError, match="temperature"):
        distill.Distiller(teacher, s, temperature=0)
    with pytest.raises(ValueError, match="alpha"):
        distill.Distiller(teacher, s, alpha=1.5)
    with pytest.raises(TypeError, match="teacher must be"):
        distill.Distiller(3, s)
    with pytest.raises(ValueError, match="empty"):
        distill.Distiller([], s)
    with pytest.raises(TypeError, match="student"):
        distill.Distiller(teacher, lambda v: v)
    with pytest.raises(ValueError, match="teacher_weights"):
        distill.Distiller([teacher, teacher], s, teacher_weights=[1.0])
    with pytest.raises(ValueError, match="must not all be zero"):
        distill.Distiller([(teacher, 0.0)], s)
    with pytest.raises(ValueError, match="classes"):
        distill.Distiller(nn.MLP([64, 8, 7]), s).fit(x, y, epochs=1)
    with pytest.raises(ValueError, match="non-finite"):
        distill.Distiller(lambda v: np.full((len(v), 10), np.nan, np.float32), s).fit(x, y, epochs=1)
    with pytest.raises(ValueError, match="x must have 64 columns"):
        distill.Distiller(teacher, s).fit(x[:, :10], y, epochs=1)
    with pytest.raises(TypeError, match="hints\\[0\\]"):
        distill.Distiller(teacher, s, hints=[(1.0, 1)])
    with pytest.raises(ValueError, match="teacher_probs"):
        distill.kd_loss(np.zeros((2, 3)), [0, 1], teacher_probs=np.ones((2, 3)), temperature=2.0, alpha=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        distill.kd_loss(np.zeros((2, 3)), [0, 1], temperature=2.0)
