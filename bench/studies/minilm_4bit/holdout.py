"""Re-evaluate the baseline and the two recommended recipes on EVAL2, a second evaluation set
written after the recipes were chosen (the recipes were partly selected on EVAL)."""
from functools import partial
import numpy as np
import common
from harness import Harness
from data import EVAL2
import run_all as RA
import quant as Q

common._H = Harness(EVAL2)
common.calib_stats  # noqa
from harness import calib_stats
common._S = calib_stats()
want = ["4b ORT MatMulNBits RTN g32 asym (fp16 scales)",
        "4b FINAL mixed-v2 (calib-sens) Hadamard + GPTQ act-order asym fp16-scales, budget 4.5, Hs",
        "3b RTN g32 asym (ORT numerics)",
        "3b FINAL mixed-v4 (calib-sens) 2-stage Hadamard + GPTQ act-order sym int8-scales damp 0.1, budget 3.5, Hs"]
for label, m, hk, kw in RA.E:
    if label in want:
        common.run("EVAL2 | " + label, m, hk, **kw)
