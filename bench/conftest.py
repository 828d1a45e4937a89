"""Options and fixtures of the pytest-benchmark files in bench/.

``pytest bench --benchmark-disable`` runs every comparison once on small shapes (a smoke test,
well under a minute); ``pytest bench`` benchmarks the full shapes of ``lowbit bench``.
Options: ``--bench-threads 1,2`` (thread counts), ``--bench-quick`` (small shapes even when
benchmarking), ``--bench-full`` (full shapes even with --benchmark-disable).
"""
from __future__ import annotations

import pytest

from lowbit_bench import common, gemm, quant

#: shapes used when the benchmarks only run once (--benchmark-disable) or with --bench-quick;
#: K = 200 and N = 96 / 33 exercise the kernels' tails
SMOKE_GEMM_SHAPES = [(1, 256, 256), (17, 200, 96), (64, 512, 512), (3, 64, 33)]
SMOKE_QUANT_SHAPE = (256, 1000)


def pytest_addoption(parser):
    group = parser.getgroup("lowbit bench")
    group.addoption("--bench-threads", default="1,2",
                    help="thread counts for lowbit and every peer, comma-separated (default 1,2)")
    group.addoption("--bench-quick", action="store_true",
                    help="small shapes even when benchmarking")
    group.addoption("--bench-full", action="store_true",
                    help="the full lowbit-bench shapes even with --benchmark-disable")


def small_shapes(config) -> bool:
    """Small shapes when the benchmarks are disabled (smoke run) or --bench-quick is given."""
    if config.getoption("bench_full"):
        return False
    if config.getoption("bench_quick"):
        return True
    return bool(config.getoption("benchmark_disable", default=False))


def pytest_generate_tests(metafunc):
    config = metafunc.config
    small = small_shapes(config)
    if "gemm_shape" in metafunc.fixturenames:
        shapes = SMOKE_GEMM_SHAPES if small else gemm.SHAPES
        metafunc.parametrize("gemm_shape", shapes, ids=gemm.shape_name, scope="module")
    if "quant_shape" in metafunc.fixturenames:
        shape = SMOKE_QUANT_SHAPE if small else quant.SHAPE
        metafunc.parametrize("quant_shape", [shape], ids=gemm.shape_name, scope="module")
    if "threads" in metafunc.fixturenames:
        threads = common.parse_threads(config.getoption("bench_threads"))
        metafunc.parametrize("threads", threads, ids=lambda t: f"{t}T", scope="module")


@pytest.fixture
def bench_threads(threads):
    """Sets ``threads`` for lowbit, torch and numpy's BLAS (ONNX Runtime sessions take it when
    built) and runs torch without autograd, as deployed; yields the thread count."""
    with common.Threads(threads), common.inference_mode():
        yield threads
