"""`lowbit bench peak`: what one core of this CPU can do, the ceiling for the GEMM tables.

Each loop (C++, ``csrc/kernels/*/peak__<isa>.cc``; list in ``csrc/python/bind_peak.cc``) repeats
one multiply-accumulate instruction sequence into 12 (AVX2) or 16 (AVX-512, AArch64)
independent accumulators held in registers: no memory traffic, enough chains to hide the
instructions' latency, so its rate is the core's throughput for that sequence. Only loops whose
CPU features this machine has are run, on the calling thread (one core). GOP/s = 2 x MACs / s.

int8 loops (``kind``): ``int8`` is exact for lowbit's u8 x s8 (or s8 x s8) operands --
vpmaddubsw is exact when one operand fits 7 bits (lowbit's u8s7 kernel, and the GEMM benchmark's
0..127 activations), vpmaddwd on int16-widened bytes always (the u8s8 kernel);
``int8_narrow`` only when both fit 7 bits (two vpmaddubsw results added in int16). The clock is
measured too -- a chain of dependent 1-cycle adds -- to give ops per cycle, which can be compared
with the instruction tables of the microarchitecture.

:func:`measured_peaks` (cached per process) is what ``lowbit bench gemm`` divides by for its
"% of peak" column: ``"int8"`` is the best ``int8`` loop of the kernel set lowbit runs
(:data:`GEMM_LOOPS`), ``"fp32"`` the best fp32 FMA loop.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import lowbit
from lowbit import _core

from . import common

#: lowbit kernel set -> the loops its int8 GEMM is built from ("int8" = the best of them).
#: "avx512" (AVX-512 without VNNI) runs the AVX2 GEMM kernels; "i8mm" may use sdot too.
GEMM_LOOPS = {
    "avx2": ("avx2_maddubs", "avx2_madd"),
    "avx512": ("avx2_maddubs", "avx2_madd"),
    "avxvnni": ("avxvnni_dpbusd",),
    "avx512vnni": ("avx512vnni_dpbusd",),
    "neon": ("neon_smull",),
    "neondot": ("neondot_sdot", "neondot_udot"),
    "i8mm": ("i8mm_usmmla", "neondot_sdot", "neondot_udot"),
}

#: seconds one call of a loop lasts (the timer then runs several calls per sample)
CALL_SECONDS = 0.002
CLOCK = "clock"

_cache: dict = {}


@dataclass
class LoopResult:
    name: str
    isa: str
    kind: str            # "int8", "int8_narrow" or "fp32"
    instruction: str
    gops: float          # per core
    ops_per_cycle: float | None
    timing: common.Timing


@dataclass
class Peaks:
    """One measurement: every loop, the clock, and the loops behind the int8 figure."""

    loops: list[LoopResult]
    clock_ghz: float | None
    clock_timing: common.Timing | None
    isa: str                 # lowbit's kernel set at the time
    int8_loops: tuple        # the loops "int8" was taken from
    repeat: int
    min_sample: float

    def as_dict(self) -> dict[str, float]:
        """{"int8": GOP/s, "int8_<loop>": GOP/s..., "fp32": GOP/s, "fp32_<loop>": ...}."""
        out: dict[str, float] = {}
        ints = {r.name: r.gops for r in self.loops if r.kind.startswith("int8")}
        floats = {r.name: r.gops for r in self.loops if r.kind == "fp32"}
        chosen = [ints[n] for n in self.int8_loops if n in ints]
        if chosen:
            out["int8"] = max(chosen)
        out.update({f"int8_{n}": g for n, g in ints.items()})
        if floats:
            out["fp32"] = max(floats.values())
        out.update({f"fp32_{n}": g for n, g in floats.items()})
        return out


def loops() -> list[dict]:
    """The loops this CPU runs: dicts of name, isa, kind, instruction, ops_per_iteration."""
    return [dict(_core.peak_loop_info(n)) for n in _core.peak_loops()]


def int8_loops_for(isa: str, available) -> tuple:
    """The loops behind the "int8" peak for lowbit's kernel set ``isa``: :data:`GEMM_LOOPS`, or
    (scalar kernels, or a set not listed) every exact int8 loop this CPU runs."""
    have = {d["name"]: d for d in available}
    chosen = tuple(n for n in GEMM_LOOPS.get(isa, ()) if n in have)
    return chosen or tuple(n for n, d in have.items() if d["kind"] == "int8")


def _iterations(fn, seconds: float) -> int:
    """Trips of ``fn(trips)`` that last about ``seconds`` (the first calls also warm the core)."""
    n = 1000
    while True:
        t0 = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t0
        if dt >= seconds / 4 or n >= 1 << 40:
            return max(1, int(n * seconds / max(dt, 1e-9)))
        n *= 4


def measure(repeat: int = 7, quick: bool = False) -> Peaks:
    """Times every loop this CPU runs (and the clock) on the calling thread, interleaved, with
    :func:`common.measure`: a warm-up first, then the median of ``repeat`` samples, each >= 50 ms
    (20 ms when ``quick``), in the thread's CPU time (``time.thread_time``: time slices given to
    other processes do not count). Also fills the cache of :func:`measured_peaks`."""
    repeat = common.check_repeat(repeat)
    min_sample = 0.02 if quick else 0.05
    infos = loops()
    cases, iters = [], {}
    clock_chain = int(_core.peak_clock_chain)
    if _core.peak_clock(1) is not None:
        iters[CLOCK] = _iterations(_core.peak_clock, CALL_SECONDS)
        cases.append((CLOCK, lambda n=iters[CLOCK]: _core.peak_clock(n)))
    for d in infos:
        name = d["name"]
        iters[name] = _iterations(lambda n, name=name: _core.peak_run(name, n), CALL_SECONDS)
        cases.append((name, lambda name=name, n=iters[name]: _core.peak_run(name, n)))
    # One thread of lowbit's: measure() then settles 3 ms (not 0.2 s) before each sample; the
    # loops themselves always run on the calling thread. Samples are timed in this thread's CPU
    # time: on a shared machine the time other processes hold the core is not the core's speed.
    with common.Threads(1):
        res = common.measure(cases, repeat=repeat, min_sample=min_sample, warmup=0.05,
                             timer=time.thread_time)
    clock_ghz = None
    if CLOCK in res:
        clock_ghz = iters[CLOCK] * clock_chain / res[CLOCK].median / 1e9
    out = []
    for d in infos:
        t = res[d["name"]]
        gops = d["ops_per_iteration"] * iters[d["name"]] / t.median / 1e9
        out.append(LoopResult(d["name"], d["isa"], d["kind"], d["instruction"], gops,
                              gops / clock_ghz if clock_ghz else None, t))
    isa = lowbit.cpu_info()["isa"]
    peaks = Peaks(out, clock_ghz, res.get(CLOCK), isa, int8_loops_for(isa, infos), repeat,
                  min_sample)
    _cache["peaks"] = peaks
    return peaks


def measured_peaks(repeat: int = 5) -> dict[str, float]:
    """GOP/s per core, measured once per process (see :func:`measure`; later calls return the
    cached figures, also those of a ``lowbit bench peak`` run earlier in the process):
    ``{"int8": best exact int8 loop of lowbit's kernel set, "int8_<loop>": each integer loop,
    "fp32": best fp32 FMA loop, "fp32_<loop>": each}``."""
    peaks = _cache.get("peaks")
    if peaks is None or peaks.isa != lowbit.cpu_info()["isa"]:
        common.progress("[peak] measuring this core's int8 and fp32 peaks ...")
        peaks = measure(repeat=repeat, quick=True)
    return peaks.as_dict()


def describe_peak(peaks: dict[str, float] | None = None) -> str:
    """One line stating the measured int8 / fp32 peaks per core (for table headers)."""
    peaks = measured_peaks() if peaks is None else peaks
    p = _cache.get("peaks")
    loops_used = "/".join(p.int8_loops) if p is not None else "-"
    int8 = common.fmt_num(peaks.get("int8"))
    return (f"measured peak per core (`lowbit bench peak`): int8 "
            f"{int8} GOP/s ({loops_used}, lowbit isa {lowbit.cpu_info()['isa']}), fp32 "
            f"{common.fmt_num(peaks.get('fp32'))} GFLOP/s")


def _cpuinfo_mhz() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("cpu mhz"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def main(threads="1,2", repeat=7, quick=False) -> int:
    """Measures and prints the peak table; returns 0. ``threads`` does not apply: every loop
    runs on one thread (per-core figures)."""
    common.progress("[peak] timing the peak loops on one core ...")
    p = measure(repeat=repeat, quick=quick)
    info = lowbit.cpu_info()
    print("== peak: one core's int8 dot-product and fp32 FMA throughput; GOP/s = 2 x MACs / s ==")
    print(common.describe(1, peers=())[0])
    mhz = _cpuinfo_mhz()
    if p.clock_ghz:
        print(f"clock: {p.clock_ghz:.2f} GHz measured (a chain of {_core.peak_clock_chain} "
              "dependent register adds, 1 cycle each)"
              + (f"; /proc/cpuinfo says {mhz} MHz" if mhz else ""))
    print(f"timing: one thread (--threads does not apply), loops interleaved, median of "
          f"{p.repeat} samples (each >= {p.min_sample * 1e3:.0f} ms of the thread's CPU time: "
          "time other processes take is not counted); " + common.load_note())
    if not p.loops:
        print(f"no peak loops for {info['arch']} in this build (scalar kernels only)\n")
        return 0
    rows = []
    for r in p.loops:
        rows.append([r.name, r.isa, r.instruction, r.kind, f"{r.gops:.1f}",
                     "-" if r.ops_per_cycle is None else f"{r.ops_per_cycle:.1f}",
                     f"{r.timing.spread:.0%}"])
    print(common.format_table(["loop", "isa", "instruction", "kind", "GOP/s/core", "ops/cycle",
                               "noise"], rows, left=4))
    d = p.as_dict()
    print(f"int8 peak for lowbit's kernel set {info['isa']}: {common.fmt_num(d.get('int8'))} "
          f"GOP/s per core (best of {', '.join(p.int8_loops) or '-'}) -- the '% of peak' "
          "of `lowbit bench gemm`")
    if "fp32" in d:
        print(f"fp32 peak: {d['fp32']:.1f} GFLOP/s per core")
    print("kinds: int8 = exact for lowbit's operands (vpmaddubsw: one operand within 7 bits, as "
          "in lowbit's u8s7 kernel); int8_narrow = exact only when both fit 7 bits")
    timings = [r.timing for r in p.loops] + ([p.clock_timing] if p.clock_timing else [])
    print(common.noise_summary(timings))
    print()
    return 0 if all(math.isfinite(r.gops) and r.gops > 0 for r in p.loops) else 1


__all__ = ["GEMM_LOOPS", "Peaks", "LoopResult", "loops", "measure", "measured_peaks",
           "describe_peak", "int8_loops_for", "main"]
