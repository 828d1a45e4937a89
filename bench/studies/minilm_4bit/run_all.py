"""Run every recipe on all 36 encoder Linears of all-MiniLM-L6-v2 and print the results table.

usage: python run_all.py [substring ...]   (only experiments whose label contains a substring)
Results are appended to results.jsonl.
"""
import json
import sys
from functools import partial

import numpy as np

from common import run, setup
from ort_baseline import ort_quantize_weight
import quant as Q
from mixed import allocate, per_matrix_plan, allocation_v2, allocation_v3, per_matrix_plan_v3, allocation_v4, per_matrix_plan_v4, allocation
HAD_GPTQ = Q.rotated(Q.gptq_uniform)


def ort(W, H, bits=4, block_size=32, sym=False, algo="default", fp16_scales=True):
    """ORT MatMulNBits quantizer, exact numerics (scales are stored fp32 by ORT; with
    fp16_scales=True the bits are counted as if the scales were fp16, like our own recipes)."""
    Wq, bpw, _ = ort_quantize_weight(W, bits, block_size, sym, algo)
    if fp16_scales:
        n_groups = W.size // block_size
        bpw -= (16 * n_groups * (2 if algo == "hqq" else 1)) / W.size
    return Wq, bpw * W.size


E = []  # (label, method, hessian kind, kwargs)
def add(label, method, hkind="H", **kw):
    E.append((label, method, hkind, kw))

# ---------------- 4-bit budget ----------------
add("4b ORT MatMulNBits RTN g32 asym (fp32 scales as stored)", ort, fp16_scales=False)
add("4b ORT MatMulNBits RTN g32 asym (fp16 scales)", ort)
add("4b ORT MatMulNBits RTN g64 asym (fp16 scales)", ort, block_size=64)
add("4b ORT MatMulNBits RTN g32 sym (fp16 scales)", ort, sym=True)
add("4b ORT HQQ g64 (fp16 scale+zero)", ort, block_size=64, algo="hqq")
add("4b RTN g32 sym clip-search", Q.rtn, bits=4, group=32, sym=True, clip_search=True)
add("4b RTN g64 asym clip-search", Q.rtn, bits=4, group=64, clip_search=True)
add("4b GPTQ g32 sym act-order", Q.gptq_uniform, bits=4, group=32, sym=True)
add("4b GPTQ g64 asym act-order", Q.gptq_uniform, bits=4, group=64)
add("4b GPTQ g64 asym act-order, sentence-balanced H", Q.gptq_uniform, "Hs", bits=4, group=64)
add("4b GPTQ g64 asym act-order, mixed H", Q.gptq_uniform, "Hm", bits=4, group=64)
add("4b GPTQ g128 asym act-order", Q.gptq_uniform, bits=4, group=128)
add("4b kmeans/row unweighted fp16-cb", Q.kmeans_quant, bits=4, weighting="none")
add("4b kmeans/row act-weighted fp16-cb", Q.kmeans_quant, bits=4)
add("4b kmeans/row act-weighted int8-cb", Q.kmeans_quant, bits=4, cb_bits=8)
add("4b kmeans/row act-weighted int8-cb +0.5% outliers", Q.kmeans_quant, bits=4, cb_bits=8, outlier_frac=0.005)
add("4b GPTQ+codebook int8-cb", Q.gptq_codebook, bits=4, cb_bits=8)
add("4b GPTQ+codebook int8-cb +0.5% outliers", Q.gptq_codebook, bits=4, cb_bits=8, outlier_frac=0.005)
add("4b GPTQ g64 asym act-order +0.5% outliers, Hs", Q.gptq_uniform, "Hs", bits=4, group=64, outlier_frac=0.005)
add("4b Hadamard + GPTQ g64 asym, Hs", Q.rotated(Q.gptq_uniform), "Hs", bits=4, group=64)
add("4b Hadamard + RTN g64 asym", Q.rotated(Q.rtn), bits=4, group=64)
add("4b Hadamard + GPTQ g64 asym", Q.rotated(Q.gptq_uniform), bits=4, group=64)
add("4b Hadamard + GPTQ+codebook int8-cb", Q.rotated(Q.gptq_codebook), bits=4, cb_bits=8)
add("4b Hadamard + GPTQ g32 asym int8-scales, Hs", HAD_GPTQ, "Hs", bits=4, group=32, scale_bits=8)
add("4b MIXED GPTQ g64 asym act-order, 3-6 bits, budget 4.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan(allocate(4.5, min_bits=3)[0]))
add("4b MIXED-v2 GPTQ act-order, budget 4.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan(allocation_v2(4.5, 3)[0]))
add("4b MIXED-v2 Hadamard + GPTQ act-order, budget 4.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan(allocation_v2(4.5, 3)[0], method=HAD_GPTQ))
add("4b MIXED-v3 Hadamard + GPTQ act-order int8-scales, budget 4.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan_v3(allocation_v3(4.5)[0], HAD_GPTQ))
add("4b MIXED-v4 Hadamard + GPTQ act-order sym int8-scales, budget 4.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan_v4(allocation_v4(4.5)[0], HAD_GPTQ))
# final recipes: allocation from sensitivities measured on CALIBRATION sentences only
add("4b FINAL mixed-v2 (calib-sens) Hadamard + GPTQ act-order asym fp16-scales, budget 4.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan(allocation(4.5, "v2")[0], method=HAD_GPTQ))
add("4b FINAL mixed-v3 (calib-sens) Hadamard + GPTQ act-order asym int8-scales, budget 4.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan_v3(allocation(4.5, "v3")[0], HAD_GPTQ))
add("4b FINAL mixed-v2 (calib-sens) Hadamard seed 1 + GPTQ act-order asym fp16-scales, budget 4.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan(allocation(4.5, "v2")[0], method=Q.rotated(Q.gptq_uniform, seed=1)))
add("4b FINAL mixed-v2 (calib-sens) Hadamard + GPTQ act-order asym fp16-scales damp 0.1, budget 4.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan(allocation(4.5, "v2")[0], method=HAD_GPTQ, percdamp=0.1))
# ---------------- 3-bit budget ----------------
add("3b RTN g32 asym (ORT numerics)", Q.rtn, bits=3, group=32)
add("3b RTN g64 asym (ORT numerics)", Q.rtn, bits=3, group=64)
add("3b RTN g64 asym clip-search", Q.rtn, bits=3, group=64, clip_search=True)
add("3b GPTQ g32 sym act-order", Q.gptq_uniform, bits=3, group=32, sym=True)
add("3b GPTQ g64 asym act-order", Q.gptq_uniform, bits=3, group=64)
add("3b kmeans/row act-weighted fp16-cb", Q.kmeans_quant, bits=3)
add("3b kmeans/row act-weighted fp16-cb +0.5% outliers", Q.kmeans_quant, bits=3, outlier_frac=0.005)
add("3b GPTQ+codebook fp16-cb", Q.gptq_codebook, bits=3)
add("3b GPTQ+codebook fp16-cb +0.5% outliers", Q.gptq_codebook, bits=3, outlier_frac=0.005)
add("3b Hadamard + GPTQ g64 asym", Q.rotated(Q.gptq_uniform), bits=3, group=64)
add("3b Hadamard + GPTQ+codebook fp16-cb, Hs", Q.rotated(Q.gptq_codebook), "Hs", bits=3)
add("3b MIXED GPTQ g64 asym act-order, 3-6 bits, budget 3.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan(allocate(3.5, min_bits=3)[0]))
add("3b MIXED GPTQ g64 asym act-order, 2-6 bits, budget 3.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan(allocate(3.5, min_bits=2)[0]))
add("3b Hadamard + GPTQ g64 asym, Hs", HAD_GPTQ, "Hs", bits=3, group=64)
add("3b Hadamard + GPTQ g32 sym int8-scales, Hs", HAD_GPTQ, "Hs", bits=3, group=32, sym=True, scale_bits=8)
add("3b Hadamard + GPTQ g32 asym int8-scales, Hs", HAD_GPTQ, "Hs", bits=3, group=32, scale_bits=8)
add("3b MIXED-v2 Hadamard + GPTQ act-order, 3-6 bits, budget 3.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan(allocation_v2(3.5, 3)[0], method=HAD_GPTQ))
add("3b MIXED-v2 Hadamard + GPTQ act-order, 2-6 bits, budget 3.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan(allocation_v2(3.5, 2)[0], method=HAD_GPTQ))
add("3b MIXED-v3 Hadamard + GPTQ act-order int8-scales, budget 3.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan_v3(allocation_v3(3.5)[0], HAD_GPTQ))
add("3b MIXED-v4 Hadamard + GPTQ act-order sym int8-scales, budget 3.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan_v4(allocation_v4(3.5)[0], HAD_GPTQ))
add("3b MIXED-v4 Hadamard + GPTQ act-order sym int8-scales +clip-search, budget 3.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan_v4(allocation_v4(3.5)[0], HAD_GPTQ, clip_search=True))
add("3b MIXED-v3 Hadamard + GPTQ act-order int8-scales +clip-search, budget 3.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan_v3(allocation_v3(3.5)[0], HAD_GPTQ, clip_search=True))
add("3b FINAL mixed-v4 (calib-sens) Hadamard + GPTQ act-order sym int8-scales, budget 3.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan_v4(allocation(3.5, "v4")[0], HAD_GPTQ))
add("3b FINAL mixed-v4 (calib-sens) 2-stage Hadamard + GPTQ act-order sym int8-scales, budget 3.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan_v4(allocation(3.5, "v4")[0], Q.rotated(Q.gptq_uniform, stages=2)))
add("3b FINAL mixed-v4 (calib-sens) 2-stage Hadamard + GPTQ act-order sym int8-scales, budget 3.5, Hm", None, "Hm",
    per_matrix=per_matrix_plan_v4(allocation(3.5, "v4")[0], Q.rotated(Q.gptq_uniform, stages=2)))
add("3b FINAL mixed-v4 (calib-sens) 2-stage Hadamard + GPTQ act-order sym int8-scales damp 0.1, budget 3.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan_v4(allocation(3.5, "v4")[0], Q.rotated(Q.gptq_uniform, stages=2), percdamp=0.1))
add("3b FINAL mixed-v4 (calib-sens) 2-stage Hadamard seed 1 + GPTQ act-order sym int8-scales damp 0.1, budget 3.5, Hs", None, "Hs",
    per_matrix=per_matrix_plan_v4(allocation(3.5, "v4")[0], Q.rotated(Q.gptq_uniform, stages=2, seed=1), percdamp=0.1))
add("3b 2b-ORT MatMulNBits g32 asym (fp16 scales)", ort, bits=2, block_size=32)


def table(path="results.jsonl"):
    """Latest result per label, in the order of E."""
    res = {}
    for line in open(path):
        r = json.loads(line)
        res[r["label"]] = r
    print(f"{'method':72s} {'bpw':>6s} {'min':>7s} {'mean':>7s} {'quant s':>8s}  worst sentence")
    for label, *_ in E:
        if label in res:
            r = res[label]
            print(f"{label:72s} {r['bpw']:6.3f} {r['min']:7.4f} {r['mean']:7.4f} {r['secs']:8.1f}  {r['worst']!r}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--table"]:
        table()
        sys.exit(0)
    pats = sys.argv[1:]
    setup()
    with open("results.jsonl", "a") as f:
        for label, m, hk, kw in E:
            if pats and not any(p in label for p in pats):
                continue
            r = run(label, m, hk, **kw)
            f.write(json.dumps({k: v for k, v in r.items() if k != "cos"} | {"cos": list(map(float, r["cos"]))}) + "\n")
            f.flush()
    table()
