"""The benchmarks behind ``lowbit bench``: lowbit's kernels against the peers that are installed.

Each benchmark is a module of this package exposing
``main(threads="1,2", repeat=7, quick=False, **options) -> int`` (0 on success) that prints its
tables. :data:`REGISTRY` maps the names accepted by ``lowbit bench NAME...`` to those modules;
they are imported only when run, and a registered module that is not there yet is skipped with a
message. Peers (torch, onnxruntime, ...) are imported by the benchmarks themselves, never here.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback

#: name on the command line -> module of this package
REGISTRY = {
    "quant": "quant",    # quantize / dequantize vs numpy and torch
    "peak": "peak",      # one core's int8 dot-product and fp32 FMA peaks (the GEMM's ceiling)
    "gemm": "gemm",      # int8 GEMM and QuantizedLinear vs numpy, ONNX Runtime and torch
    "kmeans": "kmeans",  # k-means codebooks
    "train": "train",    # numpy training / distillation
    "nonlinear": "nonlinear",  # SQNR of nonlinear vs linear quantizers (no timing)
    "memory": "memory",  # peak RSS of inference, float vs int8 vs codebook (fresh processes)
    "fourbit": "fourbit",  # 4-bit layers vs lowbit int8 and ONNX Runtime's MatMulNBits
    "dask": "dask_soft",  # soft targets on 1- and 2-worker Dask clusters vs one process
    "models": "models",  # whole models: demo MLPs, MiniLM vs PyTorch / ONNX Runtime int8
}


def available() -> list[str]:
    """Registered benchmark names whose module exists (nothing is imported)."""
    return [name for name, mod in REGISTRY.items()
            if importlib.util.find_spec(f"{__name__}.{mod}") is not None]


def _load(name: str):
    """The module for ``name``, or None (with a message on stderr) if it is not there yet."""
    modname = f"{__name__}.{REGISTRY[name]}"
    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name == modname:
            print(f"[{name}] skipped: {modname} is not there yet", file=sys.stderr, flush=True)
            return None
        raise


def run(which=None, threads="1,2", repeat=7, quick=False, **options) -> int:
    """Runs the named benchmarks (all available ones when ``which`` is empty or None).

    ``threads``: thread counts ("1,2", an int or a list); ``repeat``: timed samples per tool
    (the median is reported); ``quick``: small shapes only. Further keyword ``options`` (for
    example ``peak=463.0`` GOP/s per thread for the GEMM table instead of the measured peak)
    go to the benchmarks whose ``main`` accepts them. Returns 0 when every benchmark ran and
    passed its checks, 2 on bad arguments, 1 otherwise.
    """
    from . import common

    if isinstance(which, str):
        which = [which]
    names = list(which) if which else list(REGISTRY)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        print(f"lowbit bench: unknown benchmark(s) {', '.join(map(repr, unknown))}; "
              f"known: {', '.join(REGISTRY)}", file=sys.stderr)
        return 2
    try:
        common.parse_threads(threads)
        common.check_repeat(repeat)
    except (TypeError, ValueError) as e:
        print(f"lowbit bench: {e}", file=sys.stderr)
        return 2

    rc = 0
    for name in dict.fromkeys(names):
        mod = _load(name)
        if mod is None:
            continue
        params = inspect.signature(mod.main).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        extra = {k: v for k, v in options.items() if takes_any or k in params}
        try:
            status = mod.main(threads=threads, repeat=repeat, quick=quick, **extra)
        except Exception:
            traceback.print_exc()
            print(f"[{name}] FAILED (see the traceback above)", file=sys.stderr, flush=True)
            status = 1
        rc = rc or (1 if status else 0)
    return rc


__all__ = ["REGISTRY", "available", "run"]
