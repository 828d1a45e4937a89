"""Quantize all 36 Linears with a method and evaluate."""
import time
import numpy as np
from model import linear_names
from harness import Harness, calib_stats, hessian_for

_H = None
_S = None


def setup():
    global _H, _S
    if _H is None:
        _H = Harness()
        _S = calib_stats()
    return _H, _S


def quantize_model(method, hkind="H", per_matrix=None, names=None, **kw):
    """method(W, H, **kw) -> (W_hat, bits). per_matrix: optional dict name -> (method, kw) overrides.
    Returns override dict, total bits, number of weights, seconds."""
    h, st = setup()
    t = time.time()
    ov, bits, n = {}, 0, 0
    for name in names or linear_names():
        W = h.enc.lin[name][0]
        m, k = (per_matrix or {}).get(name, (method, kw))
        Wq, b = m(W, hessian_for(st, name, hkind), **k)
        ov[name] = Wq
        bits += b
        n += W.size
    return ov, bits, n, time.time() - t


def run(label, method, hkind="H", per_matrix=None, **kw):
    h, _ = setup()
    ov, bits, n, secs = quantize_model(method, hkind, per_matrix, **kw)
    r = h.evaluate(ov)
    r.update(label=label, bpw=bits / n, secs=secs)
    print(f"{label:55s} bpw {r['bpw']:.3f}  min {r['min']:.4f}  mean {r['mean']:.4f}  quant {secs:6.1f}s  worst={r['worst']!r}", flush=True)
    return r
