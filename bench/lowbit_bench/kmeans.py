"""k-means codebooks benchmark: lowbit against scikit-learn, faiss, ckwrap and numpy, side by side.

Five comparisons, each at every thread count (1 and 2 by default), times and quality (SQNR in dB
of the reconstruction against the data, higher is better) in one table:

* 1-D k-means (scalar weight sharing) of Gaussian float32 weights, n = 1M and 4M, k = 16 and 256:
  ``lowbit.kmeans(x, k)`` against scikit-learn ``KMeans(k, init="k-means++", n_init=1)``,
  ``faiss.Kmeans(1, k)`` (train + assignment of every value) and ckwrap (Ckmeans.1d.dp, the
  exact optimum; single-threaded, and skipped when its k x n tables would not fit in memory).
* vector quantization, d = 4 and 8, k = 256 on 1M vectors: ``lowbit.kmeans(x, 256, dim=d)``
  (and with faiss' training sample, ``max_points_per_centroid=256``) against
  ``faiss.Kmeans(d, 256)`` (train, and train + assignment of every vector).
* product quantization, N = 262144, d = 64, m = 16, 8 bits: ``lowbit.product_quantize`` against
  ``faiss.ProductQuantizer`` (train + compute_codes).
* decode of 16M byte indices (k = 256) to float32: ``Codebook.decode()`` (and into a given
  ``out``) against numpy ``centroids[idx]`` and ``np.take(..., out=)``; 4-bit codes too.
* ``lowbit.CodebookLinear(k=16)`` (int8 activations, and ``activations="int16"``) against
  ``lowbit.QuantizedLinear`` and numpy float32 ``x @ W.T + b`` at M = 1, 8, 64 for K = N = 4096.

Peers that are not installed are skipped (their cells show ``-``). Slow peer calls (more than a
second) are timed once. Run it with ``lowbit bench kmeans`` or ``python -m lowbit_bench.kmeans``.
"""
from __future__ import annotations

import math
import os
import sys
import warnings

import numpy as np

import lowbit

from . import common

SIZES_1D = [1_000_000, 4_000_000]
KS_1D = [16, 256]
VQ_N, VQ_DIMS, VQ_K = 1_000_000, [4, 8], 256
PQ_SHAPE = (262144, 64, 16, 8)  # N, d, m, bits
DECODE_N, DECODE_K = 16 * 2**20, 256
LINEAR_K = LINEAR_N = 4096
LINEAR_MS = [1, 8, 64]

QUICK = dict(SIZES_1D=[20_000], VQ_N=20_000, PQ_SHAPE=(4096, 64, 16, 8), DECODE_N=2**20,
             LINEAR_K=1024, LINEAR_N=1024)

#: tools that are single-threaded whatever the setting: timed at the first thread count only
SINGLE_THREADED = {"ckwrap (exact)"}

#: the lowbit entry of each comparison, that the ratios are computed against
LOWBIT_1D = "lowbit.kmeans"
LOWBIT_VQ = "lowbit.kmeans(dim=d)"
LOWBIT_VQ256 = "lowbit.kmeans(dim=d, 256/centroid)"
LOWBIT_PQ = "lowbit.product_quantize"
LOWBIT_DECODE = "lowbit decode()"
LOWBIT_LINEAR = "lowbit CodebookLinear(k=16)"
LOWBIT_LINEAR16 = "lowbit CodebookLinear(k=16, activations='int16')"

SLOW = 1.0  # seconds: a call slower than this is timed once


def sqnr(ref: np.ndarray, approx: np.ndarray) -> float:
    return float(lowbit.sqnr(ref, approx))


def _gaussian(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _mem_available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class _PeerThreads:
    """faiss' OpenMP threads and every threadpoolctl pool (scikit-learn's OpenMP, BLAS) set to
    ``n`` for the block, next to lowbit's (common.Threads)."""

    def __init__(self, n: int):
        self.n = n
        self._faiss_saved = None
        self._limits = None

    def __enter__(self):
        faiss = common.optional_import("faiss")
        if faiss is not None:
            self._faiss_saved = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(self.n)
        tpc = common.optional_import("threadpoolctl")
        if tpc is not None:
            self._limits = tpc.threadpool_limits(limits=self.n)
        return self

    def __exit__(self, *exc):
        if self._limits is not None:
            self._limits.restore_original_limits()
        if self._faiss_saved is not None:
            common.optional_import("faiss").omp_set_num_threads(self._faiss_saved)


class _Keep:
    """Wraps a tool: calls it and keeps its last result (for the quality columns)."""

    def __init__(self, fn):
        self.fn, self.result = fn, None

    def __call__(self):
        self.result = self.fn()
        return self.result


# ---------------------------------------------------------------------------------------------
# the tools
# ---------------------------------------------------------------------------------------------
def kmeans_1d_tools(x: np.ndarray, k: int) -> list:
    """(name, fn returning the reconstruction of x) for every 1-D k-means tool available."""
    tools = [(LOWBIT_1D, lambda: lowbit.kmeans(x, k).decode())]
    cluster = common.optional_import("sklearn.cluster")
    if cluster is not None:
        def sk():
            km = cluster.KMeans(k, init="k-means++", n_init=1, random_state=0).fit(x.reshape(-1, 1))
            return km.cluster_centers_[km.labels_, 0].astype(np.float32)
        tools.append(("sklearn KMeans k-means++", sk))
    faiss = common.optional_import("faiss")
    if faiss is not None:
        def fa():
            km = faiss.Kmeans(1, k, niter=25, seed=1234)
            xs = x.reshape(-1, 1)
            km.train(xs)
            _, idx = km.index.search(xs, 1)
            return km.centroids[idx[:, 0], 0]
        tools.append(("faiss.Kmeans (+assign)", fa))
    ckwrap = common.optional_import("ckwrap")
    if ckwrap is not None:
        need = 18 * x.size * k  # its k x n tables, measured: 4.5 GB for n = 1M, k = 256
        avail = _mem_available()
        if avail is None or need < avail // 2:
            def ck():
                r = ckwrap.ckmeans(x.astype(np.float64), k)
                return np.asarray(r.centers, np.float32)[r.labels]
            tools.append(("ckwrap (exact)", ck))
        else:
            common.progress(f"[kmeans] ckwrap skipped at n={x.size}, k={k}: needs ~{need / 2**30:.0f} GiB")
    return tools


def vq_tools(x: np.ndarray, k: int) -> list:
    d = x.shape[1]
    tools = [(LOWBIT_VQ, lambda: lowbit.kmeans(x, k, dim=d).decode()),
             (LOWBIT_VQ256, lambda: lowbit.kmeans(x, k, dim=d, max_points_per_centroid=256).decode())]
    faiss = common.optional_import("faiss")
    if faiss is not None:
        def fa_train():
            km = faiss.Kmeans(d, k, niter=25, seed=1234)
            km.train(x)
            return None

        def fa_all():
            km = faiss.Kmeans(d, k, niter=25, seed=1234)
            km.train(x)
            _, idx = km.index.search(x, 1)
            return km.centroids[idx[:, 0]]
        tools += [("faiss.Kmeans train", fa_train), ("faiss.Kmeans train+assign", fa_all)]
    return tools


def pq_tools(x: np.ndarray, m: int, bits: int) -> list:
    tools = [(LOWBIT_PQ, lambda: lowbit.product_quantize(x, m, bits=bits).decode())]
    faiss = common.optional_import("faiss")
    if faiss is not None:
        def fa():
            pq = faiss.ProductQuantizer(x.shape[1], m, bits)
            pq.train(x)
            return pq.decode(pq.compute_codes(x))
        tools.append(("faiss.ProductQuantizer", fa))
    return tools


def decode_tools(n: int, k: int) -> tuple[list, np.ndarray]:
    """Decode cases for n codes of a k-centroid codebook; returns (cases, expected output)."""
    rng = np.random.default_rng(1)
    centroids = _gaussian((k, 1), seed=2)
    idx = rng.integers(0, k, n, dtype=np.uint8 if k <= 256 else np.uint16)
    if k <= 16:
        packed = (idx[0::2] | (idx[1::2] << 4)).astype(np.uint8)
        cb = lowbit.Codebook(centroids, packed, (n,))
    else:
        cb = lowbit.Codebook(centroids, idx, (n,))
    table = centroids[:, 0].copy()
    out = np.empty(n, np.float32)
    cases = [(f"{LOWBIT_DECODE}", cb.decode), ("lowbit decode(out=)", lambda: cb.decode(out=out)),
             ("numpy centroids[idx]", lambda: table[idx]),
             ("numpy np.take(out=)", lambda: np.take(table, idx, out=out))]
    return cases, table[idx]


# ---------------------------------------------------------------------------------------------
# the tables
# ---------------------------------------------------------------------------------------------
def _timed(tools, threads: int, repeat: int, min_sample: float, first: bool = True) -> dict:
    """{name: (Timing, result)} for the tools at a thread count (single-threaded tools only
    when ``first``)."""
    kept = [(name, _Keep(fn)) for name, fn in tools if first or name not in SINGLE_THREADED]
    with common.Threads(threads), _PeerThreads(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        timings = common.measure(kept, repeat=repeat, min_sample=min_sample, max_call=SLOW)
    return {name: (timings[name], keep.result) for name, keep in kept}


def _fmt_time(tm) -> str:
    s = tm.median
    text = f"{s:.3f}" if s < 10 else f"{s:.1f}"
    return text + ("*" if tm.single else "")


def _quality_table(title: str, cases: list, thread_list, repeat, min_sample, ref_name,
                   lines: list) -> list:
    """Times every (label, tools) case at every thread count; one row per tool with times per
    thread count, SQNR, and the time ratio against lowbit's entry. Returns the Timings."""
    headers = ["case", "tool"] + [f"{t}T s" for t in thread_list] + ["SQNR dB"] + \
        [f"vs lowbit {t}T" for t in thread_list]
    rows, all_timings = [], []
    for label, tools, ref in cases:
        per_t = {}
        for t in thread_list:
            common.progress(f"[kmeans] {title}: {label}, {t} thread(s) ...")
            per_t[t] = _timed(tools, t, repeat, min_sample, first=t == thread_list[0])
        for name, _ in tools:
            cells = [label, name]
            quality = None
            for t in thread_list:
                if name not in per_t[t]:
                    cells.append("-")
                    continue
                tm, result = per_t[t][name]
                all_timings.append(tm)
                cells.append(_fmt_time(tm))
                if result is not None and quality is None:
                    quality = sqnr(ref, result)
            cells.append("-" if quality is None else f"{quality:.3f}")
            for t in thread_list:
                cells.append(common.fmt_ratio(per_t[t][name][0].median, per_t[t][ref_name][0].median)
                             if name in per_t[t] else "-")
            rows.append(cells)
    lines.append(f"== {title} ==")
    lines.append(common.format_table(headers, rows, left=2))
    lines.append("")
    return all_timings


def main(threads=(1, 2), repeat=5, quick=False) -> int:
    """Runs the k-means comparisons and prints their tables (times in seconds, SQNR in dB,
    'vs lowbit' = the tool's time / lowbit's at the same thread count). Returns 0 when every
    check passed, 1 otherwise."""
    thread_list = common.parse_threads(threads)
    repeat = common.check_repeat(repeat)
    cfg = dict(SIZES_1D=SIZES_1D, VQ_N=VQ_N, PQ_SHAPE=PQ_SHAPE, DECODE_N=DECODE_N,
               LINEAR_K=LINEAR_K, LINEAR_N=LINEAR_N)
    if quick:
        cfg.update(QUICK)
    min_sample = 0.02 if quick else 0.05
    lines, all_timings, failures = [], [], []
    for name in ("sklearn.cluster", "faiss", "ckwrap", "threadpoolctl"):
        common.optional_import(name)
    info = lowbit.cpu_info()
    peers = []
    for mod, dist in (("sklearn.cluster", "scikit-learn"), ("faiss", "faiss-cpu"), ("ckwrap", "ckwrap")):
        ver = common.dist_version(dist)
        peers.append(f"{dist} {ver}" if ver and common.optional_import(mod) is not None else f"{dist}: missing")
    lines.append(f"lowbit {lowbit.__version__} k-means benchmark: isa {info['isa']} "
                 f"(supported: {', '.join(info.get('supported_isas', [info['isa']]))}), "
                 f"cpu {common.cpu_model()} [{' '.join(info['features'])}], {os.cpu_count()} cpus")
    lines.append("peers: " + "; ".join(peers) + f"; numpy {np.__version__}")
    if hasattr(common, "load_note"):
        lines.append(common.load_note())
    lines.append(f"threads: {', '.join(map(str, thread_list))} (lowbit, faiss' OpenMP, scikit-learn's "
                 f"OpenMP and BLAS set alike; ckwrap is single-threaded); times: median of {repeat} "
                 f"samples, '*' = one call (slower than {SLOW:.0f} s)")
    lines.append("")

    # 1-D k-means
    cases = []
    for n in cfg["SIZES_1D"]:
        x = _gaussian(n, seed=n)
        for k in KS_1D:
            cases.append((f"1-D n={n:,} k={k}", kmeans_1d_tools(x, k), x))
    all_timings += _quality_table("1-D k-means (scalar weight sharing), Gaussian float32", cases,
                                  thread_list, repeat, min_sample, LOWBIT_1D, lines)
    # vector quantization
    cases = []
    for d in VQ_DIMS:
        x = _gaussian((cfg["VQ_N"], d), seed=d)
        cases.append((f"VQ n={cfg['VQ_N']:,} d={d} k={VQ_K}", vq_tools(x, VQ_K), x))
    all_timings += _quality_table("vector quantization (Lloyd on a sample of 512 points per "
                                  "centroid for lowbit, 256 for faiss and the second lowbit row, "
                                  "then every vector)", cases, thread_list, repeat, min_sample,
                                  LOWBIT_VQ, lines)
    # product quantization
    n, d, m, bits = cfg["PQ_SHAPE"]
    x = _gaussian((n, d), seed=3)
    all_timings += _quality_table("product quantization", [(f"PQ N={n:,} d={d} m={m} {bits} bits",
                                                            pq_tools(x, m, bits), x)],
                                  thread_list, repeat, min_sample, LOWBIT_PQ, lines)
    # decode
    for k in (DECODE_K, 16):
        dcases, want = decode_tools(cfg["DECODE_N"], k)
        for name, fn in dcases:
            if not np.array_equal(fn(), want):
                failures.append(f"decode k={k}: {name} differs from centroids[idx]")
        gb = cfg["DECODE_N"] * 4 / 1e9
        headers = ["tool"] + [f"{t}T ms" for t in thread_list] + [f"{t}T GB/s" for t in thread_list]
        rows, results = [], {}
        for t in thread_list:
            common.progress(f"[kmeans] decode k={k}, {t} thread(s) ...")
            with common.Threads(t):
                results[t] = common.measure(dcases, repeat=repeat, min_sample=min_sample)
        for name, _ in dcases:
            tms = [results[t][name] for t in thread_list]
            all_timings += tms
            rows.append([name] + [f"{tm.median * 1e3:.2f}" for tm in tms] +
                        [f"{gb / tm.median:.1f}" for tm in tms])
        width = "byte" if k > 16 else "4-bit (packed)"
        lines.append(f"== decode of {cfg['DECODE_N']:,} {width} indices (k={k}) to float32: GB/s of output ==")
        lines.append("decode() allocates its output (fresh pages from the OS, as numpy's indexing does); "
                     "decode(out=) and np.take(out=) write into a reused array")
        lines.append(common.format_table(headers, rows))
        lines.append("")
    # CodebookLinear
    K, N = cfg["LINEAR_K"], cfg["LINEAR_N"]
    w = _gaussian((N, K), seed=4) * np.float32(1 / math.sqrt(K))
    b = _gaussian(N, seed=5)
    layer = lowbit.CodebookLinear(w, b, k=16)
    layer16 = lowbit.CodebookLinear.from_codebook(layer.codebook, b, activations="int16")
    ql = lowbit.QuantizedLinear(w, b)
    headers = ["M", "tool"] + [f"{t}T ms" for t in thread_list] + ["SQNR dB vs float"] + \
        [f"vs lowbit {t}T" for t in thread_list]
    rows = []
    for M in LINEAR_MS:
        xin = _gaussian((M, K), seed=6 + M)
        ref = xin @ w.T + b
        tools = [(LOWBIT_LINEAR, lambda: layer(xin)), (LOWBIT_LINEAR16, lambda: layer16(xin)),
                 ("lowbit QuantizedLinear (int8)", lambda: ql(xin)),
                 ("numpy float32 x @ W.T + b", lambda: xin @ w.T + b)]
        res = {}
        for t in thread_list:
            common.progress(f"[kmeans] CodebookLinear M={M}, {t} thread(s) ...")
            res[t] = _timed(tools, t, repeat, min_sample)
        decoded = xin @ layer.weight().T + b
        lb_vs_decoded = sqnr(decoded, res[thread_list[0]][LOWBIT_LINEAR][1])
        if lb_vs_decoded < 30:  # int8 activations and centroids
            failures.append(f"CodebookLinear M={M}: {lb_vs_decoded:.1f} dB against its decoded weight")
        for name, _ in tools:
            tms = [res[t][name][0] for t in thread_list]
            all_timings += tms
            rows.append([str(M), name] + [f"{tm.median * 1e3:.3f}" for tm in tms] +
                        [f"{sqnr(ref, res[thread_list[0]][name][1]):.2f}"] +
                        [common.fmt_ratio(res[t][name][0].median, res[t][LOWBIT_LINEAR][0].median)
                         for t in thread_list])
    lines.append(f"== CodebookLinear (k=16, 4-bit codes) vs QuantizedLinear and numpy float32, "
                 f"K = N = {K} ({layer.nbytes / 2**20:.1f} MiB vs {ql.nbytes / 2**20:.1f} MiB vs "
                 f"{w.nbytes / 2**20:.1f} MiB of weights) ==")
    lines.append("SQNR against the float layer x @ W.T + b; the codebook's own error (16 values) "
                 "dominates its column. CodebookLinear quantizes activations to int8 by default "
                 "(like QuantizedLinear), to 13 bits with activations='int16'")
    lines.append(common.format_table(headers, rows, left=2))
    lines.append("")

    print("\n".join(lines))
    print(common.noise_summary(all_timings))
    for f in failures:
        print("CHECK FAILED: " + f)
    print()
    return 1 if failures else 0


if __name__ == "__main__":  # python -m lowbit_bench.kmeans [--quick]
    sys.exit(main(quick="--quick" in sys.argv[1:]))
