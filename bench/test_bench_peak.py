"""Smoke test of `lowbit bench peak` (csrc/kernels/*/peak__*.cc, csrc/python/bind_peak.cc,
python/lowbit/bench/peak.py): every loop this CPU runs, with tiny iteration counts. No timings."""
from __future__ import annotations

import pytest

import lowbit
from lowbit import _core
from lowbit_bench import peak

INFO = lowbit.cpu_info()
# SIMD builds have peak loops from AVX2 + FMA (x86-64) or NEON (AArch64) on
HAS_LOOPS = ((INFO["arch"] == "x86_64" and {"avx2", "fma"} <= set(INFO["features"]))
             or (INFO["arch"] == "aarch64" and "neon" in INFO["features"]))
KINDS = {"int8", "int8_narrow", "fp32"}


def test_loops_listed():
    names = list(_core.peak_loops())
    assert len(names) == len(set(names))
    if HAS_LOOPS:
        assert names, "no peak loop on a CPU with SIMD kernels"
    for name in names:
        info = _core.peak_loop_info(name)
        assert info["name"] == name
        assert info["kind"] in KINDS
        assert info["ops_per_iteration"] > 0
        assert info["instruction"]
        assert info["isa"] in ("avx2", "avxvnni", "avx512", "avx512vnni", "neon", "neondot", "i8mm")


@pytest.mark.parametrize("name", list(_core.peak_loops()))
def test_run_returns_a_checksum(name):
    for n in (0, 1, 7):
        got = _core.peak_run(name, n)
        assert isinstance(got, int) and got >= 0
        assert _core.peak_run(name, n) == got  # deterministic: the same trips, the same sums
    assert _core.peak_run(name, 7) != _core.peak_run(name, 0)


def test_unknown_loop_and_clock():
    with pytest.raises(ValueError, match="unknown peak loop"):
        _core.peak_run("no_such_loop", 1)
    with pytest.raises(ValueError):
        _core.peak_loop_info("no_such_loop")
    clock = _core.peak_clock(3)
    if INFO["arch"] in ("x86_64", "aarch64"):
        assert isinstance(clock, int)
    assert _core.peak_clock_chain > 0


def test_int8_loops_for_lowbit_isa():
    available = peak.loops()
    chosen = peak.int8_loops_for(INFO["isa"], available)
    names = {d["name"] for d in available}
    assert set(chosen) <= names
    if HAS_LOOPS:
        assert chosen
    # every loop named for one of this architecture's kernel sets is one this build has
    built = set(_core.peak_loops(runnable_only=False))
    assert names <= built
    arch_isas = {"x86_64": ("avx2", "avxvnni", "avx512", "avx512vnni"),
                 "aarch64": ("neon", "neondot", "i8mm")}.get(INFO["arch"], ())
    for isa in arch_isas:
        assert set(peak.GEMM_LOOPS[isa]) <= built, isa

@pytest.mark.skipif(not HAS_LOOPS, reason="no peak loops in this build / on this CPU")
def test_measure_smoke():
    p = peak.measure(repeat=1, quick=True)
    d = p.as_dict()
    assert {"int8", "fp32"} <= set(d)
    assert all(v > 0 for v in d.values())
    assert d["int8"] == max(d[f"int8_{n}"] for n in p.int8_loops)
    assert peak.measured_peaks() == d  # cached
