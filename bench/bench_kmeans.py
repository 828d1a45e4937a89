"""pytest-benchmark: k-means codebooks against scikit-learn, faiss, ckwrap and numpy (issue 4).

The same tools and shapes as ``lowbit bench kmeans`` (lowbit_bench.kmeans): 1-D k-means
(scalar weight sharing), vector quantization, product quantization, decode of byte indices, and
CodebookLinear against QuantizedLinear and numpy float32. ``extra_info`` holds the quality
(``sqnr_db`` of the reconstruction or of the layer output against float) or the GB/s of decoded
output. Peers that are not installed are skipped; peer calls that take seconds (scikit-learn,
ckwrap, faiss on 1-D data) are timed in one round.

    pytest bench/bench_kmeans.py --benchmark-disable   # smoke: every tool once, small shapes
    pytest bench/bench_kmeans.py                       # the full shapes (minutes: the peers)
    pytest bench/bench_kmeans.py --bench-threads 1     # one thread count only
"""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

import lowbit  # noqa: E402
from lowbit_bench import common  # noqa: E402
from lowbit_bench import kmeans as kb  # noqa: E402


def _small(config) -> bool:
    """Small shapes for a smoke run (--benchmark-disable) or --bench-quick, as bench/conftest.py."""
    opt = lambda name: config.getoption(name, default=False)  # noqa: E731
    if opt("bench_full"):
        return False
    return bool(opt("bench_quick") or opt("benchmark_disable"))


@pytest.fixture(scope="module")
def sizes(request):
    cfg = dict(SIZES_1D=kb.SIZES_1D, VQ_N=kb.VQ_N, PQ_SHAPE=kb.PQ_SHAPE, DECODE_N=kb.DECODE_N,
               LINEAR_K=kb.LINEAR_K, LINEAR_N=kb.LINEAR_N)
    if _small(request.config):
        cfg.update(kb.QUICK)
    return cfg


@pytest.fixture
def peer_threads(threads):
    """lowbit, numpy's BLAS, faiss' and scikit-learn's OpenMP all at ``threads``."""
    with common.Threads(threads), kb._PeerThreads(threads):
        yield threads


def _run(benchmark, group: str, fn, slow: bool):
    benchmark.group = group
    if slow:
        return benchmark.pedantic(fn, rounds=1, iterations=1, warmup_rounds=0)
    return benchmark(fn)


def _tool(tools, name):
    found = dict(tools)
    if name not in found:
        pytest.skip(f"{name}: not installed")
    return found[name]


TOOLS_1D = [kb.LOWBIT_1D, "sklearn KMeans k-means++", "faiss.Kmeans (+assign)", "ckwrap (exact)"]


@pytest.mark.parametrize("k", kb.KS_1D)
@pytest.mark.parametrize("which", [0, -1], ids=["smaller", "larger"])
@pytest.mark.parametrize("tool", TOOLS_1D)
def test_kmeans_1d(benchmark, sizes, peer_threads, which, k, tool):
    """1-D k-means of n Gaussian values (n = 1M / 4M, or the smoke size)."""
    n = sizes["SIZES_1D"][which]
    if which == -1 and len(sizes["SIZES_1D"]) == 1:
        pytest.skip("one size only in this mode")
    if tool in kb.SINGLE_THREADED and peer_threads != 1:
        pytest.skip(f"{tool} is single-threaded")
    x = np.random.default_rng(n).standard_normal(n, dtype=np.float32)
    fn = _tool(kb.kmeans_1d_tools(x, k), tool)
    out = _run(benchmark, f"kmeans 1-D n={n} k={k} {peer_threads}T", fn, slow=tool != kb.LOWBIT_1D)
    benchmark.extra_info["sqnr_db"] = round(kb.sqnr(x, out), 4)


@pytest.mark.parametrize("d", kb.VQ_DIMS)
@pytest.mark.parametrize("tool", [kb.LOWBIT_VQ, "faiss.Kmeans train+assign"])
def test_vector_quantization(benchmark, sizes, peer_threads, d, tool):
    """k = 256 centroids of d-vectors."""
    x = np.random.default_rng(d).standard_normal((sizes["VQ_N"], d), dtype=np.float32)
    fn = _tool(kb.vq_tools(x, kb.VQ_K), tool)
    out = _run(benchmark, f"VQ n={sizes['VQ_N']} d={d} k={kb.VQ_K} {peer_threads}T", fn, slow=False)
    benchmark.extra_info["sqnr_db"] = round(kb.sqnr(x, out), 4)


@pytest.mark.parametrize("tool", [kb.LOWBIT_PQ, "faiss.ProductQuantizer"])
def test_product_quantization(benchmark, sizes, peer_threads, tool):
    n, d, m, bits = sizes["PQ_SHAPE"]
    x = np.random.default_rng(3).standard_normal((n, d), dtype=np.float32)
    fn = _tool(kb.pq_tools(x, m, bits), tool)
    out = _run(benchmark, f"PQ N={n} d={d} m={m} {bits}b {peer_threads}T", fn, slow=tool != kb.LOWBIT_PQ)
    benchmark.extra_info["sqnr_db"] = round(kb.sqnr(x, out), 4)


@pytest.mark.parametrize("k", [kb.DECODE_K, 16])
@pytest.mark.parametrize("tool", [kb.LOWBIT_DECODE, "lowbit decode(out=)", "numpy centroids[idx]",
                                  "numpy np.take(out=)"])
def test_decode(benchmark, sizes, peer_threads, k, tool):
    """Codes to float32 (GB/s of output); every tool checked against centroids[idx] first."""
    n = sizes["DECODE_N"]
    cases, want = kb.decode_tools(n, k)
    fn = dict(cases)[tool]
    assert np.array_equal(fn(), want)
    _run(benchmark, f"decode n={n} k={k} {peer_threads}T", fn, slow=False)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["GB/s"] = round(n * 4 / stats.stats.median / 1e9, 2)


@pytest.fixture(scope="module")
def layers(sizes):
    K, N = sizes["LINEAR_K"], sizes["LINEAR_N"]
    rng = np.random.default_rng(4)
    w = rng.standard_normal((N, K), dtype=np.float32) * np.float32(1 / math.sqrt(K))
    b = rng.standard_normal(N, dtype=np.float32)
    cl = lowbit.CodebookLinear(w, b, k=16)
    cl16 = lowbit.CodebookLinear.from_codebook(cl.codebook, b, activations="int16")
    return w, b, cl, cl16, lowbit.QuantizedLinear(w, b)


@pytest.mark.parametrize("M", kb.LINEAR_MS)
@pytest.mark.parametrize("tool", [kb.LOWBIT_LINEAR, kb.LOWBIT_LINEAR16, "lowbit QuantizedLinear (int8)",
                                  "numpy float32"])
def test_codebook_linear(benchmark, layers, peer_threads, M, tool):
    w, b, cl, cl16, ql = layers
    x = np.random.default_rng(6 + M).standard_normal((M, w.shape[1]), dtype=np.float32)
    fn = {kb.LOWBIT_LINEAR: lambda: cl(x), kb.LOWBIT_LINEAR16: lambda: cl16(x),
          "lowbit QuantizedLinear (int8)": lambda: ql(x), "numpy float32": lambda: x @ w.T + b}[tool]
    y = _run(benchmark, f"linear M={M} K=N={w.shape[1]} {peer_threads}T", fn, slow=False)
    benchmark.extra_info["sqnr_db_vs_float"] = round(kb.sqnr(x @ w.T + b, y), 2)
    if tool == kb.LOWBIT_LINEAR:  # against its own decoded weight: int8 activations and table
        assert kb.sqnr(x @ cl.weight().T + b, y) > 30
