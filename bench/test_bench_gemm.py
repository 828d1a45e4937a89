"""pytest-benchmark: int8 GEMM and QuantizedLinear against numpy, ONNX Runtime and torch.

The same tools, inputs and checks as ``lowbit bench gemm`` (lowbit_bench.gemm); each test
checks its tool against lowbit before timing it. Groups put the tools of one shape and thread
count side by side; ``extra_info`` holds GOP/s (2*M*N*K / median time).

    pytest bench/test_bench_gemm.py --benchmark-disable   # smoke: every tool once, small shapes
    pytest bench/test_bench_gemm.py                       # the lowbit-bench shapes
"""
from __future__ import annotations

import re
import warnings

import pytest

pytest.importorskip("pytest_benchmark")


def _id(name: str) -> str:
    """A test id without spaces or brackets: 'ORT MatMulInteger u8s8' -> 'ORT-MatMulInteger-u8s8'."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", name).strip("-")


import lowbit  # noqa: E402
from lowbit_bench import gemm  # noqa: E402


@pytest.fixture(scope="module")
def problem(gemm_shape):
    """(Problem, lowbit QuantizedLinear, packed b) of one shape, shared by its tests."""
    p = gemm.make_problem(*gemm_shape)
    return p, lowbit.QuantizedLinear(p.w, p.bias), lowbit.pack_int8(p.b)


@pytest.fixture(scope="module")
def overhead_problem():
    p = gemm.make_problem(*gemm.OVERHEAD_SHAPE)
    return p, lowbit.QuantizedLinear(p.w, p.bias), lowbit.pack_int8(p.b)


def _tools(name: str, problem, threads: int) -> dict:
    """lowbit's tool of the same kind and the tool ``name`` (skips the test if unavailable)."""
    p, layer, packed = problem
    ref = "lowbit QuantizedLinear" if name in gemm.FLOAT_TOOLS else "lowbit matmul_int8"
    rate = gemm.torch_int_mm_rate() if name == "torch._int_mm" else None
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation
        for n in dict.fromkeys([ref, name]):
            try:
                out[n] = gemm.make_tool(n, p, threads, layer=layer, packed=packed, torch_rate=rate)
            except gemm.Unavailable as e:
                pytest.skip(f"{n}: {e}")
    return out


def _run(benchmark, group: str, tool, ops: float):
    benchmark.group = group
    benchmark.extra_info["ops"] = ops
    result = benchmark(tool.call)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["GOP/s"] = round(ops / stats.stats.median / 1e9, 2)
    return result


@pytest.mark.parametrize("name", [gemm.NUMPY] + gemm.INT_TOOLS, ids=_id)
def test_int8_gemm(benchmark, problem, bench_threads, name):
    """Exact int32 GEMM: lowbit.matmul_int8 vs ORT MatMulInteger vs torch._int_mm (and numpy
    float32 as the float baseline)."""
    p = problem[0]
    tools = _tools(name, problem, bench_threads)
    if name != gemm.NUMPY:
        gemm.check_int(tools, p)
    _run(benchmark, f"int8 gemm {gemm.shape_name((p.m, p.k, p.n))} {bench_threads}T",
         tools[name], p.ops)


@pytest.mark.parametrize("name", [gemm.NUMPY] + gemm.FLOAT_TOOLS, ids=_id)
def test_quantized_linear(benchmark, problem, bench_threads, name):
    """Float in, float out with dynamic activation quantization: lowbit.QuantizedLinear vs ORT
    DynamicQuantizeMatMul vs torch's dynamic Linear (and numpy float32)."""
    p = problem[0]
    tools = _tools(name, problem, bench_threads)
    if name != gemm.NUMPY:
        gemm.check_float(tools, p)
    _run(benchmark, f"linear {gemm.shape_name((p.m, p.k, p.n))} {bench_threads}T",
         tools[name], p.ops)


@pytest.mark.parametrize("name", [gemm.NUMPY] + gemm.INT_TOOLS + gemm.FLOAT_TOOLS, ids=_id)
def test_call_overhead(benchmark, overhead_problem, bench_threads, name):
    """Per-call overhead from Python at the tiny shape 1 x 64 x 64."""
    p = overhead_problem[0]
    tools = _tools(name, overhead_problem, bench_threads)
    if name in gemm.INT_TOOLS:
        gemm.check_int(tools, p)
    elif name in gemm.FLOAT_TOOLS:
        gemm.check_float(tools, p)
    _run(benchmark, f"overhead {gemm.shape_name(gemm.OVERHEAD_SHAPE)} {bench_threads}T",
         tools[name], p.ops)
