"""pytest-benchmark: per-channel int8 quantize / dequantize against numpy and torch.

The same tools, inputs and checks as ``lowbit bench quant`` (lowbit_bench.quant): building the
cases checks every peer against lowbit first. ``extra_info`` holds GB/s of float32 data (input
for quantize, output for dequantize) at the median time.

    pytest bench/test_bench_quant.py --benchmark-disable   # smoke: every tool once, small weight
    pytest bench/test_bench_quant.py                       # the (4096, 4096) weight
"""
from __future__ import annotations

import re
import warnings

import pytest

pytest.importorskip("pytest_benchmark")


def _id(name: str) -> str:
    """A test id without spaces or brackets: 'ORT MatMulInteger u8s8' -> 'ORT-MatMulInteger-u8s8'."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", name).strip("-")


from lowbit_bench import quant  # noqa: E402


@pytest.fixture(scope="module")
def cases(quant_shape):
    """(weight, {name: fn}) with every peer already checked against lowbit."""
    w = quant.make_weight(quant_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's quantized tensors are deprecated
        c = quant.build_cases(w)
    return w, dict(c.quantize + c.dequantize)


def _run(benchmark, group: str, fn, nbytes: int):
    benchmark.group = group
    benchmark.extra_info["bytes"] = nbytes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark(fn)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["GB/s"] = round(nbytes / stats.stats.median / 1e9, 2)


@pytest.mark.parametrize("name", quant.QUANTIZE_TOOLS, ids=_id)
def test_quantize(benchmark, cases, bench_threads, name):
    """Per-channel (axis 0) symmetric int8 quantize, ranges included (GB/s of float input)."""
    w, fns = cases
    if name not in fns:
        pytest.skip(f"{name}: torch is not installed")
    _run(benchmark, f"quantize {w.shape[0]}x{w.shape[1]} {bench_threads}T", fns[name], w.nbytes)


@pytest.mark.parametrize("name", quant.DEQUANTIZE_TOOLS, ids=_id)
def test_dequantize(benchmark, cases, bench_threads, name):
    """Per-channel int8 -> float32 dequantize (GB/s of float output)."""
    w, fns = cases
    if name not in fns:
        pytest.skip(f"{name}: torch is not installed")
    _run(benchmark, f"dequantize {w.shape[0]}x{w.shape[1]} {bench_threads}T", fns[name], w.nbytes)
