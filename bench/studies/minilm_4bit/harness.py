"""Evaluation harness + calibration statistics.

evaluate(override) -> dict(min=, mean=, cos=per-sentence array)
calib_stats() -> {input_key: {"H": token-averaged E[x x^T], "Hs": sentence-balanced E[x x^T], "n": tokens}}
"""
import os
import random
from pathlib import Path

import numpy as np

from model import Encoder, Tokenizer, linear_names, INPUT_OF
from data import EVAL, CALIB

HERE = Path(__file__).resolve().parent
BATCH = 8


def _batches(tok, sents):
    order = sorted(range(len(sents)), key=lambda i: len(sents[i]))
    out = []
    for s in range(0, len(order), BATCH):
        idx = order[s:s + BATCH]
        ids, mask = tok([sents[i] for i in idx])
        out.append((idx, ids, mask))
    return out


class Harness:
    def __init__(self, sents=EVAL):
        self.tok = Tokenizer()
        self.enc = Encoder(np.float64)
        self.sents = list(sents)
        self.batches = _batches(self.tok, self.sents)
        self.ref = self.embed(None)

    @property
    def weights(self):
        """name -> float weight W[out, in]"""
        return {n: self.enc.lin[n][0] for n in linear_names()}

    def embed(self, override):
        out = np.zeros((len(self.sents), 384))
        for idx, ids, mask in self.batches:
            out[idx] = self.enc.encode(ids, mask, override)
        return out

    def evaluate(self, override):
        e = self.embed(override)
        cos = (e * self.ref).sum(1)
        return {"min": float(cos.min()), "mean": float(cos.mean()), "cos": cos,
                "worst": self.sents[int(cos.argmin())]}


def calib_sentences(n_concat=150, seed=0):
    """CALIB plus concatenations of 2-5 random CALIB sentences (more tokens for the 1536-dim Hessians)."""
    rng = random.Random(seed)
    out = list(CALIB)
    for _ in range(n_concat):
        out.append(" ".join(rng.sample(CALIB, rng.randint(2, 5))))
    return out


def calib_stats(cache=HERE / "calib_stats.npz"):
    if Path(cache).exists():
        z = np.load(cache)
        keys = sorted({k.rsplit("|", 1)[0] for k in z.files})
        return {k: {"H": z[k + "|H"], "Hs": z[k + "|Hs"], "n": int(z[k + "|n"])} for k in keys}
    tok, enc = Tokenizer(), Encoder(np.float64)
    stats = {}
    for idx, ids, mask in _batches(tok, calib_sentences()):
        cap = {}
        enc.encode(ids, mask, capture=cap)
        for key, mats in cap.items():
            st = stats.setdefault(key, {"H": 0.0, "Hs": 0.0, "n": 0, "ns": 0})
            for X in mats:  # one sentence: tokens x in
                G = X.T @ X
                st["H"] = st["H"] + G
                st["Hs"] = st["Hs"] + G / len(X)
                st["n"] += len(X)
                st["ns"] += 1
    res, flat = {}, {}
    for key, st in stats.items():
        res[key] = {"H": st["H"] / st["n"], "Hs": st["Hs"] / st["ns"], "n": st["n"]}
        for f in ("H", "Hs", "n"):
            flat[f"{key}|{f}"] = res[key][f]
    np.savez(cache, **flat)
    return res


def hessian_for(stats, name, kind="H"):
    """kind: 'H' token-averaged, 'Hs' sentence-balanced (each calibration sentence weighs the same),
    'Hm' = (H + Hs) / 2."""
    l, k = name.split(".")
    st = stats[f"{l}.{INPUT_OF[k]}"]
    if kind == "Hm":
        return (st["H"] + st["Hs"]) / 2
    return st[kind]


if __name__ == "__main__":
    import time
    t = time.time()
    h = Harness()
    print("ref built %.1fs" % (time.time() - t))
    t = time.time()
    print(h.evaluate(None)["min"], "%.1fs" % (time.time() - t))
    t = time.time()
    st = calib_stats()
    print("calib", {k: v["n"] for k, v in list(st.items())[:4]}, "%.1fs" % (time.time() - t))
