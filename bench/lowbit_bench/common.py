"""Shared machinery of the `lowbit bench` suites: timing, thread control, peers, tables.

Timing
    :func:`measure` times several tools *interleaved* (A, B, C, A, B, C, ...; the order rotates
    each round) so that noise from the machine -- other processes, frequency changes -- hits every
    tool alike. Each tool is warmed up, then each sample runs enough calls to last at least
    ``min_sample`` seconds; the median over ``repeat`` samples is reported with its noise,
    ``(max - min) / median`` (and the interquartile range, ``IQR / median``). Before every sample
    the timer sleeps ``settle`` seconds so that spinning worker threads of the previous tool
    (OpenMP in torch, ONNX Runtime's pool) have parked and do not steal the cores.

Threads
    :class:`Threads` sets the thread count of every tool side by side: ``lowbit.set_num_threads``,
    ``torch.set_num_threads`` (when torch is imported), numpy's BLAS via threadpoolctl; ONNX
    Runtime sessions take theirs from :func:`ort_session_options` (intra_op = t, inter_op = 1).

Peers
    Optional tools (torch, onnxruntime, onnx, threadpoolctl) are never imported at module import
    time: :func:`optional_import` imports one when a benchmark needs it and records why it is
    missing otherwise; :func:`peer_versions` reads versions from the installed metadata without
    importing anything.
"""
from __future__ import annotations

import gc
import importlib
import importlib.metadata
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

import lowbit

#: Optional peers a benchmark may use, by import name -> distribution name.
PEERS = {
    "torch": "torch",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "threadpoolctl": "threadpoolctl",
}

#: Environment variables that change which OpenBLAS kernel numpy runs (see bench/README.md).
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                 "OMP_NUM_THREADS")

_import_errors: dict[str, str] = {}


# --------------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------------
def parse_threads(threads) -> list[int]:
    """Thread counts from ``"1,2"``, an int, or a sequence of ints; ValueError/TypeError otherwise."""
    if isinstance(threads, str):
        parts = [p.strip() for p in threads.split(",") if p.strip()]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"threads must be comma-separated positive integers like '1,2', "
                             f"got {threads!r}") from None
    elif isinstance(threads, (int, np.integer)) and not isinstance(threads, bool):
        values = [int(threads)]
    elif isinstance(threads, Iterable):
        values = []
        for v in threads:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"threads must hold integers, got {v!r}")
            values.append(int(v))
    else:
        raise TypeError(f"threads must be a string like '1,2', an int or a list of ints, "
                        f"got {type(threads).__name__}")
    if not values or any(v < 1 or v > 1024 for v in values):
        raise ValueError(f"threads must be one or more integers in 1..1024, got {threads!r}")
    return list(dict.fromkeys(values))  # unique, in the given order


def check_repeat(repeat) -> int:
    """``repeat`` as an int >= 1 (TypeError/ValueError naming it otherwise)."""
    if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)):
        raise TypeError(f"repeat must be an integer, got {type(repeat).__name__}")
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    return int(repeat)


# --------------------------------------------------------------------------------------------
# peers and the environment
# --------------------------------------------------------------------------------------------
def optional_import(name: str):
    """The module ``name`` or None when it cannot be imported (the reason is kept for reports)."""
    if name in sys.modules:
        return sys.modules[name]
    if name in _import_errors:
        return None
    try:
        return importlib.import_module(name)
    except Exception as e:  # ImportError, but also broken installs (OSError from a .so, ...)
        _import_errors[name] = f"{type(e).__name__}: {e}".splitlines()[0][:120]
        return None


def import_error(name: str) -> str | None:
    """Why :func:`optional_import` could not import ``name`` (None if it could or was not tried)."""
    return _import_errors.get(name)


def dist_version(dist: str) -> str | None:
    """Installed version of a distribution, read from its metadata (nothing is imported)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def peer_versions(names: Iterable[str] = PEERS) -> dict[str, str | None]:
    """``{import name: version or None}`` for the optional peers, without importing them."""
    return {n: dist_version(PEERS.get(n, n)) for n in names}


def blas_info() -> dict | None:
    """numpy's BLAS as threadpoolctl sees it: library, version, kernel (architecture), threads."""
    tpc = optional_import("threadpoolctl")
    if tpc is None:
        return None
    for lib in tpc.threadpool_info():
        if lib.get("user_api") == "blas":
            return {
                "library": lib.get("internal_api"),
                "version": lib.get("version"),
                "kernel": lib.get("architecture"),
                "threads": lib.get("num_threads"),
                "threading": lib.get("threading_layer"),
            }
    return None


#: (CPU implementer, CPU part) of /proc/cpuinfo on ARM -> core name (as lscpu names them)
ARM_PARTS = {
    (0x41, 0xd03): "Cortex-A53", (0x41, 0xd04): "Cortex-A35", (0x41, 0xd05): "Cortex-A55",
    (0x41, 0xd07): "Cortex-A57", (0x41, 0xd08): "Cortex-A72", (0x41, 0xd09): "Cortex-A73",
    (0x41, 0xd0a): "Cortex-A75", (0x41, 0xd0b): "Cortex-A76", (0x41, 0xd0c): "Neoverse-N1",
    (0x41, 0xd0d): "Cortex-A77", (0x41, 0xd40): "Neoverse-V1", (0x41, 0xd41): "Cortex-A78",
    (0x41, 0xd44): "Cortex-X1", (0x41, 0xd46): "Cortex-A510", (0x41, 0xd47): "Cortex-A710",
    (0x41, 0xd48): "Cortex-X2", (0x41, 0xd49): "Neoverse-N2", (0x41, 0xd4f): "Neoverse-V2",
    (0x41, 0xd80): "Cortex-A520", (0x41, 0xd81): "Cortex-A720", (0x41, 0xd82): "Cortex-X4",
}


def cpu_model() -> str:
    """The CPU's model name: /proc/cpuinfo's "model name" (x86) or "Hardware"; on ARM, where
    the kernel gives only implementer and part numbers, the core's name from those (the
    distinct cores, e.g. "Cortex-A76 + Cortex-A55"), after the board's devicetree model if any."""
    fields: dict[str, list[str]] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip().lower(), []).append(value.strip())
    except OSError:
        pass
    for key in ("model name", "hardware", "cpu model"):
        if fields.get(key):
            return fields[key][0]
    cores = []
    for imp, part in zip(fields.get("cpu implementer", []), fields.get("cpu part", [])):
        try:
            key = (int(imp, 0), int(part, 0))
        except ValueError:
            continue
        name = ARM_PARTS.get(key, f"implementer {key[0]:#x} part {key[1]:#05x}")
        if name not in cores:
            cores.append(name)
    board = ""
    try:
        with open("/sys/firmware/devicetree/base/model", "rb") as f:
            board = f.read().rstrip(b"\0").decode("utf-8", "replace").strip()
    except OSError:
        pass
    if cores:
        return f"{board} ({' + '.join(cores)})" if board else " + ".join(cores)
    return board or platform.processor() or platform.machine()


def load_note() -> str:
    """The 1-minute load average against the CPU count: other work on the machine adds noise."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return "load average: unknown"
    cpus = os.cpu_count() or 1
    busy = " -- the machine is busy, expect noise" if load > 0.5 * cpus + 1 else ""
    return f"load average {load:.2f} on {cpus} cpus (this benchmark included){busy}"


def openblas_env() -> dict[str, str]:
    """The OpenBLAS/OpenMP variables set in the environment (reported, never changed)."""
    return {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ}


def describe(threads: int | str | None = None,
             peers: Sequence[str] = ("numpy",) + tuple(PEERS)) -> list[str]:
    """Header lines every table starts with: lowbit's ISA, the CPU, threads, peers found/missing.

    ``threads`` is the count the table was measured with (call it inside :class:`Threads`); the
    counts each tool actually runs with are then read back (lowbit, torch when imported, numpy's
    BLAS) so a failed setting shows. A string such as ``"1,2"`` (a table with one column per
    count) is printed as is, without read-back.
    """
    info = lowbit.cpu_info()
    lines = [
        f"lowbit {lowbit.__version__}: isa {info['isa']} "
        f"(supported: {', '.join(info.get('supported_isas', [info['isa']]))}) | "
        f"cpu: {cpu_model()} [{info['arch']}: {' '.join(info['features']) or '-'}, "
        f"{os.cpu_count()} logical cpus]"
    ]
    tl = [f"lowbit {lowbit.get_num_threads()}"]
    found, missing = [], []
    for name in peers:
        if name == "numpy":
            blas = blas_info()
            extra = ""
            if blas:
                extra = f" ({blas['library']} {blas['version']}, kernel {blas['kernel']})"
                tl.append(f"numpy-BLAS {blas['threads']}")
            found.append(f"numpy {np.__version__}{extra}")
            continue
        if name == "threadpoolctl":
            continue  # a helper, not a peer: shows up through numpy's BLAS line
        ver = dist_version(PEERS.get(name, name))
        if ver is None or import_error(name):
            missing.append(name + (f" ({import_error(name)})" if import_error(name) else ""))
            continue
        found.append(f"{name} {ver}")
        if name == "torch" and "torch" in sys.modules:
            torch = sys.modules["torch"]
            tl.append(f"torch {torch.get_num_threads()}")
        if name == "onnxruntime" and threads is not None:
            tl.append(f"onnxruntime intra_op {threads}/inter_op 1")
    if isinstance(threads, str):
        lines.append(f"threads: {threads} (one column each; set alike for lowbit, numpy's BLAS"
                     f"{', torch' if 'torch' in peers else ''}"
                     f"{', onnxruntime intra_op (inter_op 1)' if 'onnxruntime' in peers else ''})")
    else:
        head = f"threads: {threads}" if threads is not None else "threads: -"
        lines.append(f"{head} ({', '.join(tl)})")
    lines.append(f"peers: {', '.join(found) or '-'}; missing: {', '.join(missing) or '-'}; "
                 + load_note())
    env = openblas_env()
    if env:
        lines.append("note: " + " ".join(f"{k}={v}" for k, v in env.items()) +
                     " set in the environment; numpy's BLAS may run a slower kernel "
                     "(see bench/README.md: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...)")
    return lines


# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------
class Threads:
    """Sets every tool's thread count at once; a context manager that restores them on exit.

    >>> with Threads(2):
    ...     ...  # lowbit, torch (if imported) and numpy's BLAS all use 2 threads here
    ONNX Runtime fixes its threads per session: build sessions with :func:`ort_session_options`.
    """

    def __init__(self, n: int):
        self.n = int(n)
        self._saved_lowbit = None
        self._saved_torch = None
        self._blas_limits = None

    def __enter__(self) -> "Threads":
        self._saved_lowbit = lowbit.get_num_threads()
        lowbit.set_num_threads(self.n)
        torch = sys.modules.get("torch")
        if torch is not None:
            self._saved_torch = torch.get_num_threads()
            torch.set_num_threads(self.n)
        tpc = optional_import("threadpoolctl")
        if tpc is not None:
            self._blas_limits = tpc.threadpool_limits(limits=self.n, user_api="blas")
        return self

    def __exit__(self, *exc) -> None:
        if self._blas_limits is not None:
            self._blas_limits.restore_original_limits()
        torch = sys.modules.get("torch")
        if torch is not None and self._saved_torch is not None:
            torch.set_num_threads(self._saved_torch)
        if self._saved_lowbit is not None:
            lowbit.set_num_threads(self._saved_lowbit)


def inference_mode():
    """``torch.inference_mode()`` when torch can be imported (torch's modules run without
    autograd bookkeeping, as in deployment), else a no-op context."""
    import contextlib

    torch = optional_import("torch")
    return torch.inference_mode() if torch is not None else contextlib.nullcontext()


def ort_session_options(threads: int):
    """ONNX Runtime SessionOptions for ``threads`` intra-op threads, 1 inter-op, sequential."""
    ort = optional_import("onnxruntime")
    if ort is None:
        raise ImportError(f"onnxruntime is not available: {import_error('onnxruntime')}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only
    return so


def ort_session(model, threads: int):
    """An ONNX Runtime CPU session for an in-memory ``onnx.ModelProto``."""
    ort = optional_import("onnxruntime")
    return ort.InferenceSession(model.SerializeToString(), ort_session_options(threads),
                                providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------
@dataclass
class Timing:
    """Seconds per call of one tool: ``repeat`` samples, each the mean over ``inner`` calls."""

    name: str
    samples: list[float] = field(default_factory=list)
    inner: int = 1
    single: bool = False  # True: one call only (slower than measure's max_call), not repeated

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """(max - min) / median of the samples."""
        return (max(self.samples) - min(self.samples)) / self.median

    @property
    def iqr(self) -> float:
        """Interquartile range / median of the samples (0 with fewer than 4 samples)."""
        if len(self.samples) < 4:
            return 0.0
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return (q[2] - q[0]) / self.median


def measure(cases: Sequence[tuple[str, Callable[[], object]]], *, repeat: int = 7,
            min_sample: float = 0.05, warmup: float = 0.02, settle: float | None = None,
            max_call: float | None = None,
            timer: Callable[[], float] = time.perf_counter) -> dict[str, Timing]:
    """Times ``cases`` (``(name, fn)`` pairs, fn called without arguments) interleaved.

    Every fn is called once (first-call set-up), then warmed up for ``warmup`` seconds, which
    also estimates its time per call; a sample then runs ``inner = ceil(min_sample / estimate)``
    calls. Round r runs the cases in an order rotated by r. A fn whose first call takes longer
    than ``max_call`` seconds is not repeated: its Timing holds that one call (``single``).
    Before each sample the machine is left idle for ``settle`` seconds, then fn runs untimed for
    ``warmup`` seconds again (after an idle pause the first tens of milliseconds of a
    multi-threaded call run slow here). With more than one thread, OpenBLAS, ONNX Runtime and OpenMP keep their worker
    threads spinning for up to ~0.1 s after a call; without the pause those spinning threads
    take the cores from whichever tool is timed next (measured here: lowbit's 2-thread GEMM at
    half speed right after a numpy matmul). So ``settle`` defaults to 0.2 s when lowbit runs
    more than one thread (the benchmarks set every tool's thread count alike), else 3 ms.
    ``timer`` times the samples (wall time; ``time.thread_time`` for single-threaded code that
    should not count the time other processes take the core). Returns ``{name: Timing}``.
    """
    if settle is None:
        settle = 0.2 if lowbit.get_num_threads() > 1 else 0.003
    names = [n for n, _ in cases]
    if len(set(names)) != len(names):
        raise ValueError(f"cases must have distinct names, got {names}")
    repeat = check_repeat(repeat)
    result: dict[str, Timing] = {}
    for name, fn in cases:
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        if max_call is not None and first > max_call:
            result[name] = Timing(name, samples=[first], single=True)
            continue
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= warmup:
                break
        result[name] = Timing(name, inner=max(1, math.ceil(min_sample / (elapsed / calls))))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    timed = [(n, f) for n, f in cases if not result[n].single]
    try:
        for r in range(repeat):
            k = r % max(1, len(timed))
            for name, fn in timed[k:] + timed[:k]:
                timing = result[name]
                if settle > 0:
                    time.sleep(settle)
                t0 = time.perf_counter()  # untimed calls for `warmup` s: caches, threads, clocks
                while True:
                    fn()
                    if time.perf_counter() - t0 >= warmup:
                        break
                t0 = timer()
                for _ in range(timing.inner):
                    fn()
                timing.samples.append((timer() - t0) / timing.inner)
    finally:
        if gc_was_enabled:
            gc.enable()
    return result


def noise_summary(timings: Iterable[Timing]) -> str:
    """One line: median and worst (max-min)/median and IQR/median over the given timings."""
    ts = [t for t in timings if not t.single]
    if not ts:
        return "noise: no timings"
    spreads = sorted(ts, key=lambda t: t.spread)
    worst = spreads[-1]
    med = statistics.median(t.spread for t in ts)
    return (f"noise over {len(ts)} timings: (max-min)/median median {med:.1%}, "
            f"worst {worst.spread:.1%} ({worst.name}); IQR/median median "
            f"{statistics.median(t.iqr for t in ts):.1%}, worst {max(t.iqr for t in ts):.1%}")


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------
def fmt_ratio(num: float | None, den: float | None) -> str:
    """``num/den`` as ``'1.23x'``, or ``'-'`` when either is missing."""
    if num is None or den is None or den == 0:
        return "-"
    return f"{num / den:.2f}x"


def fmt_num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                 left: int = 1) -> str:
    """A plain fixed-width table; the first ``left`` columns are left-aligned, the rest right."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def banner(title: str, threads: int | None, extra: Sequence[str] = ()) -> str:
    """A table's title followed by the :func:`describe` lines and any extra notes."""
    lines = [f"== {title} =="] + describe(threads) + list(extra)
    return "\n".join(lines)


def progress(msg: str) -> None:
    """A progress note on stderr (the tables go to stdout)."""
    print(msg, file=sys.stderr, flush=True)
