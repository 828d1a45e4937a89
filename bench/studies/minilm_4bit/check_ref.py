"""Verify the numpy encoder against sentence-transformers (torch) on the eval set."""
import os, time
os.environ["HF_HUB_OFFLINE"] = "1"
import numpy as np
from model import Encoder, Tokenizer, model_dir
from data import EVAL, CALIB

tok = Tokenizer(); enc = Encoder()
ids, mask = tok(EVAL)
t = time.time(); e = enc.encode(ids, mask); print("numpy encode %.3fs" % (time.time() - t))
from sentence_transformers import SentenceTransformer
st = SentenceTransformer(str(model_dir()), device="cpu")
r = st.encode(EVAL, normalize_embeddings=True, batch_size=64)
cos = (e * r).sum(1)
print("numpy vs sentence-transformers: min cos %.9f  max abs diff %.2e" % (cos.min(), np.abs(e - r).max()))
print("eval", len(EVAL), "calib", len(CALIB), "tokens eval", mask.sum(), "calib", tok(CALIB)[1].sum())
