"""Quantize / dequantize benchmark: lowbit vs the numpy expression vs torch, side by side.

A (4096, 4096) float32 weight (quick mode: (1024, 4096)), per-channel symmetric int8 along
axis 0, at each thread count:

quantize (GB/s of float32 input; the ranges -- absmax per row -- are included):
  * ``lowbit.quantize(w, axis=0)``
  * ``lowbit.quantize(w, axis=0, scale=s)`` with the scales given (no range pass)
  * the numpy expression: ``absmax per row / 127, w / scale, np.rint, np.clip, astype(int8)``
  * ``torch.quantize_per_channel`` with the scales computed in torch (``torch.aminmax`` per row),
    and with precomputed scales
  * plain numpy copies (``np.copyto`` into a preallocated array, and ``w.copy()``) as the
    memory-bandwidth reference

dequantize (GB/s of float32 output):
  * ``q.dequantize()`` (lowbit), the numpy expression ``(codes - zp) * scale`` in float32,
    torch's ``qtensor.dequantize()``, and the numpy copies again.

Before timing, every peer's codes and dequantized values are checked against lowbit's.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

import lowbit

from . import common

SHAPE = (4096, 4096)
QUICK_SHAPE = (1024, 4096)


def numpy_quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plain numpy per-row symmetric int8 quantization: (codes int8, scales float32)."""
    scale = np.abs(w).max(axis=1, keepdims=True) / np.float32(127)
    scale[scale == 0] = 1
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale


def numpy_dequantize(codes: np.ndarray, zp: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(codes - zp) * scale`` in float32; zp, scale are float32 columns (C, 1)."""
    return (codes.astype(np.float32) - zp) * scale


def _check_codes(name: str, codes: np.ndarray, ref: np.ndarray) -> str:
    """Codes must match lowbit's but for rare off-by-one ties (division vs. multiplication by the
    reciprocal): at most 1 apart and fewer than 1e-4 of them. Returns a short note."""
    diff = np.abs(codes.astype(np.int16) - ref.astype(np.int16))
    n_off = int(np.count_nonzero(diff))
    if diff.max(initial=0) > 1 or n_off > 1e-4 * ref.size:
        raise AssertionError(f"{name}: codes differ from lowbit's (max |diff| {diff.max()}, "
                             f"{n_off} of {ref.size} differ)")
    return f"{name}: codes equal" if n_off == 0 else f"{name}: {n_off} of {ref.size} codes off by 1"


def _torch_quant_cases(torch, w: np.ndarray, scale: np.ndarray):
    """torch closures: quantize with scales computed, with scales given; and a qtensor."""
    wt = torch.from_numpy(w)
    n = w.shape[0]
    zeros = torch.zeros(n, dtype=torch.int64)
    scales_given = torch.from_numpy(scale.astype(np.float64))

    def quantize_with_ranges():
        lo, hi = torch.aminmax(wt, dim=1)
        s = torch.maximum(hi, -lo).div_(127.0).double()
        s.masked_fill_(s == 0, 1.0)
        return torch.quantize_per_channel(wt, s, zeros, 0, torch.qint8)

    def quantize_scales_given():
        return torch.quantize_per_channel(wt, scales_given, zeros, 0, torch.qint8)

    return quantize_with_ranges, quantize_scales_given


def make_weight(shape, seed: int = 0) -> np.ndarray:
    """A float32 weight whose rows (channels) have ranges spread over two orders of magnitude."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape, dtype=np.float32)
    w *= rng.uniform(0.01, 2.0, size=(shape[0], 1)).astype(np.float32)
    return w


@dataclass
class Cases:
    """The timed closures for one weight: ``quantize`` and ``dequantize`` lists of (name, fn),
    and the notes of the checks that ran while building them."""

    quantize: list
    dequantize: list
    notes: list


#: the lowbit entries the ratios are computed against
LOWBIT_QUANTIZE = "lowbit.quantize(w, axis=0)"
LOWBIT_DEQUANTIZE = "lowbit q.dequantize()"
COPY_TO = "numpy copy: np.copyto(out, w)"
COPY = "numpy copy: w.copy()"
#: every quantize / dequantize entry, in table order (torch's are left out without torch)
QUANTIZE_TOOLS = [LOWBIT_QUANTIZE, "lowbit.quantize(w, axis=0, scale=s)", "numpy expression",
                  "torch.quantize_per_channel (+ranges)",
                  "torch.quantize_per_channel (scales given)", COPY_TO, COPY]
LOWBIT_DEQUANTIZE_OUT = "lowbit q.dequantize(out=buf)"
DEQUANTIZE_TOOLS = [LOWBIT_DEQUANTIZE, LOWBIT_DEQUANTIZE_OUT, "numpy (codes - zp) * scale",
                    "numpy (codes - zp) * scale, out=buf", "torch qtensor.dequantize()", COPY_TO, COPY]


def build_cases(w: np.ndarray) -> Cases:
    """Checks every peer against lowbit on ``w`` (AssertionError on a mismatch), then returns
    the closures to time."""
    q = lowbit.quantize(w, axis=0)
    lb_codes = q.int_repr()
    scale = np.asarray(q.scale, np.float32)
    scale_col = scale.reshape(-1, 1)
    zp_col = np.asarray(q.zero_point, np.float32).reshape(-1, 1)
    lb_deq = q.dequantize()
    notes = []
    np_codes, np_scale = numpy_quantize(w)
    if not np.allclose(np_scale.ravel(), scale, rtol=1e-6, atol=0):
        raise AssertionError("numpy scales differ from lowbit's")
    notes.append(_check_codes("numpy", np_codes, lb_codes))
    if not np.allclose(numpy_dequantize(lb_codes, zp_col, scale_col), lb_deq, rtol=1e-6, atol=0):
        raise AssertionError("numpy dequantize differs from lowbit's")
    q_given = lowbit.quantize(w, axis=0, scale=scale)
    notes.append(_check_codes("lowbit (scales given)", q_given.int_repr(), lb_codes))

    torch = common.optional_import("torch")
    tq_ranges = tq_given = tqt = None
    if torch is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's quantized tensors warn about deprecation
            tq_ranges, tq_given = _torch_quant_cases(torch, w, scale)
            t1 = tq_ranges()
            if not np.allclose(t1.q_per_channel_scales().numpy(), scale, rtol=1e-6, atol=0):
                raise AssertionError("torch scales differ from lowbit's")
            notes.append(_check_codes("torch", t1.int_repr().numpy(), lb_codes))
            tqt = tq_given()
            notes.append(_check_codes("torch (scales given)", tqt.int_repr().numpy(), lb_codes))
            # torch's dequantize of its own codes vs the same formula in numpy
            ref_deq = numpy_dequantize(tqt.int_repr().numpy(), zp_col, scale_col)
            if not np.allclose(tqt.dequantize().numpy(), ref_deq, rtol=1e-6, atol=0):
                raise AssertionError("torch dequantize differs from numpy's (codes - zp) * scale")
    else:
        notes.append(f"torch missing: {common.import_error('torch')}")

    dst = np.empty_like(w)
    deq_buf = np.empty_like(w)
    if not np.array_equal(q.dequantize(out=deq_buf), lb_deq):
        raise AssertionError("q.dequantize(out=...) differs from q.dequantize()")
    tmp = np.empty(w.shape, np.float32)

    def numpy_dequantize_out():  # the same expression, into preallocated arrays
        np.subtract(lb_codes, zp_col, out=tmp, dtype=np.float32)
        return np.multiply(tmp, scale_col, out=deq_buf)

    fns = {
        LOWBIT_QUANTIZE: lambda: lowbit.quantize(w, axis=0),
        "lowbit.quantize(w, axis=0, scale=s)": lambda: lowbit.quantize(w, axis=0, scale=scale),
        "numpy expression": lambda: numpy_quantize(w),
        "torch.quantize_per_channel (+ranges)": tq_ranges,
        "torch.quantize_per_channel (scales given)": tq_given,
        COPY_TO: lambda: np.copyto(dst, w),
        COPY: lambda: w.copy(),
        LOWBIT_DEQUANTIZE: q.dequantize,
        LOWBIT_DEQUANTIZE_OUT: lambda: q.dequantize(out=deq_buf),
        "numpy (codes - zp) * scale, out=buf": numpy_dequantize_out,
        "numpy (codes - zp) * scale": lambda: numpy_dequantize(lb_codes, zp_col, scale_col),
        "torch qtensor.dequantize()": None if tqt is None else tqt.dequantize,
    }
    return Cases([(n, fns[n]) for n in QUANTIZE_TOOLS if fns[n] is not None],
                 [(n, fns[n]) for n in DEQUANTIZE_TOOLS if fns[n] is not None], notes)


def main(threads="1,2", repeat=7, quick=False, shape=None) -> int:
    """Runs the quantize/dequantize comparison and prints one table per operation and thread
    count. Returns 0; a peer computing something different raises AssertionError."""
    thread_list = common.parse_threads(threads)
    repeat = common.check_repeat(repeat)
    shape = tuple(shape) if shape is not None else (QUICK_SHAPE if quick else SHAPE)
    min_sample = 0.02 if quick else 0.05
    w = make_weight(shape)
    gb = w.nbytes / 1e9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = build_cases(w)
    quant_cases, deq_cases, notes = cases.quantize, cases.dequantize, cases.notes

    results = {}
    for t in thread_list:
        common.progress(f"[quant] {shape[0]}x{shape[1]} float32, {t} thread(s) ...")
        with common.Threads(t), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[t] = (common.measure(quant_cases, repeat=repeat, min_sample=min_sample),
                          common.measure(deq_cases, repeat=repeat, min_sample=min_sample))
            header_lines = common.describe(t, peers=("numpy", "torch"))
        for title, timings, ref_name, what in (
                ("quantize per-channel int8 (axis 0, symmetric, ranges included)",
                 results[t][0], LOWBIT_QUANTIZE, "input"),
                ("dequantize per-channel int8 -> float32", results[t][1],
                 LOWBIT_DEQUANTIZE, "output")):
            ref = timings[ref_name].median
            rows = [(name, f"{tm.median * 1e3:.2f}", f"{gb / tm.median:.2f}",
                     f"{gb / min(tm.samples):.2f}", common.fmt_ratio(tm.median, ref),
                     f"{tm.spread:.1%}", f"{tm.iqr:.1%}")
                    for name, tm in timings.items()]
            print(f"== {title}: ({shape[0]}, {shape[1]}) float32, {w.nbytes / 2**20:.0f} MiB ==")
            print("\n".join(header_lines))
            print(f"timing: median of {repeat} samples (each >= {min_sample * 1e3:.0f} ms of calls), "
                  "tools interleaved; GB/s of float32 " + what + " (median; best = fastest sample)" +
                  f"; 'lowbit x' = peer time / {ref_name} time; noise = (max-min)/median, IQR/median; "
                  "numpy's elementwise expressions and copies run on one thread at any setting")
            print(common.format_table(
                ["tool", "ms", "GB/s", "best GB/s", "lowbit x", "noise", "IQR"], rows))
            print()
    print("checks before timing: " + "; ".join(notes))
    all_timings = [tm for pair in results.values() for d in pair for tm in d.values()]
    print(common.noise_summary(all_timings))
    if len(thread_list) > 1:
        t0, t1 = thread_list[0], thread_list[-1]
        for ref_name, idx in ((LOWBIT_QUANTIZE, 0), (LOWBIT_DEQUANTIZE, 1)):
            s = results[t0][idx][ref_name].median / results[t1][idx][ref_name].median
            print(f"{ref_name}: {t1} threads vs {t0}: {s:.2f}x")
    print()
    return 0
