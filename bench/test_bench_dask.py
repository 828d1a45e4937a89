"""Smoke test of `lowbit bench dask` (bench/lowbit_bench/dask_soft.py) on small shapes: the three
ways run and agree (no timing assertions)."""
from __future__ import annotations

import pytest

pytest.importorskip("distributed")
pytest.importorskip("threadpoolctl")

from lowbit_bench import dask_soft  # noqa: E402


def test_three_ways_run_and_agree():
    m = dask_soft.measure(rows=12_000, chunk=4096, repeat=1)
    assert m["checked"]  # both clusters' soft targets equal the one-process ones
    s = dask_soft.summary(m)
    for name in (dask_soft.ONE, dask_soft.W1, dask_soft.W2):
        assert len(m["timings"][name]) == 1 and s[name]["rows_s"] > 0 and s[name]["rows_cpu_s"] > 0
    assert s["2w/1w"] > 0 and s["2w/one"] > 0
