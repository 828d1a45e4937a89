"""Smoke test of `lowbit bench memory` (python/lowbit/bench/memory.py) on a small MLP.

Children are real processes, so only sanity is checked (no sizes beyond orders, no timings).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc/self/status")

from lowbit_bench import memory  # noqa: E402

VARIANTS = ["float32 (.npz)", "int8 QuantizedLinear", "codebook k=16"]


@pytest.fixture(scope="module")
def measured():
    # 2 x (1024, 1024): 8 MiB of float32 weights, well above the noise of a fresh interpreter
    return memory.measure(width=1024, layers=2, batch=8, samples=1, threads=1, variants=VARIANTS)


def test_children_ran_and_matched(measured):
    assert measured["names"] == VARIANTS
    assert all(len(measured["results"][n]) == 1 for n in VARIANTS)
    # every child's output was checked against the parent's model (AssertionError otherwise)
    assert len(measured["checks"]) == len(VARIANTS)


def test_int8_and_codebook_take_less_memory_than_float(measured):
    s = memory.summary(measured)
    fl, q8, cb = (s[n] for n in VARIANTS)
    assert fl["nbytes"] == 2 * (1024 * 1024 + 1024) * 4
    assert q8["nbytes"] < fl["nbytes"] / 3 and cb["nbytes"] < q8["nbytes"]
    # the float child really holds its weights; the others hold less
    assert fl["resident"] > 0.9 * fl["nbytes"]
    assert q8["resident"] < fl["resident"] and cb["resident"] < fl["resident"]
    if fl["infer"] is not None:  # VmHWM could be reset
        assert q8["infer"] < fl["infer"] and cb["infer"] < fl["infer"]


def test_table(measured):
    text = memory.format_results(measured, ["header line"])
    assert text.startswith("== peak RSS of inference: MLP 2 x Linear(1024, 1024)")
    for name in VARIANTS:
        assert any(line.startswith(name) for line in text.splitlines())
    assert "float/x peak" in text


def test_bad_arguments():
    with pytest.raises(ValueError, match="variants"):
        memory.measure(width=64, layers=1, variants=["int8 QuantizedLinear"])  # no float reference
    with pytest.raises(ValueError, match="variants"):
        memory.measure(width=64, layers=1, variants=["float32 (.npz)", "fp4"])
    with pytest.raises(ValueError, match="width"):
        memory.measure(width=0)
    with pytest.raises(TypeError, match="layers"):
        memory.measure(width=64, layers=1.5)


def test_proc_status_reads_this_process():
    st = memory.proc_status()
    assert st["VmHWM"] >= st["VmRSS"] > 0
    big = np.ones(32 * 2**20 // 8)  # touch 32 MiB
    assert memory.proc_status()["VmHWM"] >= st["VmRSS"] + 16 * 2**20
    del big
