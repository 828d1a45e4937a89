"""Peak resident memory of inference: float32 vs int8 (QuantizedLinear) vs codebook (k=16).

The parent process builds an MLP of ``layers`` float32 Linear layers ``(width, width)`` with ReLU
between them (default 4 x 4096 x 4096: 256 MiB of float weights) and saves each variant to a
temporary directory:

  * ``float32 (.npz)``: the weights and biases in an uncompressed ``.npz``, loaded with
    ``np.load(..., allow_pickle=False)``; the forward is numpy, ``relu(x @ W.T + b)``;
  * ``float32 (lowbit file)``: the same model as a ``lowbit.nn.Sequential`` of ``nn.Linear``,
    saved with ``lowbit.save`` -- the same weights through lowbit's loader (its load overhead);
  * ``int8 QuantizedLinear``: every Linear a ``lowbit.QuantizedLinear`` (per-channel int8
    weights, dynamic int8 activations), saved with ``lowbit.save``;
  * ``int4 QuantizedLinear``: the same with ``bits=4`` (per-channel 4-bit weights, held two a
    byte), saved with ``lowbit.save``;
  * ``codebook k=16``: every Linear a ``lowbit.CodebookLinear(k=16)`` (4-bit weight indices),
    saved with ``lowbit.save``;
  * ``torch qint8 dynamic`` (optional peer, when torch is installed): the int8 model's codes,
    scales and biases in an ``.npz``, built into ``torch.ao.nn.quantized.dynamic.Linear`` layers
    in the child (torch is imported before the baseline; its modules are never pickled).

Each variant is then measured in a fresh process (``python -m lowbit_bench.memory``), so the
float weights never exist in the int8 and codebook processes. The child imports numpy and lowbit
and reads the input batch; its VmRSS at that point is the *baseline*. Then (Linux /proc):

  1. the peak (VmHWM) is reset through ``/proc/self/clear_refs``, the model is loaded: *load
     peak* = VmHWM, *resident* = VmRSS after loading (and a ``gc.collect()``);
  2. for each batch size M (1 and ``batch``), the peak is reset again and the model runs a few
     forward passes: *inference peak* = VmHWM;
  3. *peak* = the highest VmHWM of the whole run (load included);
  4. *held* = VmRSS after ``malloc_trim(0)`` (glibc) at the end: what the model really holds,
     without the freed memory the allocator kept (which *resident* includes).

Every figure is reported in MiB, as the difference to the baseline (Δ), beside the weight bytes
the layers report (``nbytes``: float32 ``W.nbytes + b.nbytes``; ``QuantizedLinear.nbytes``;
``CodebookLinear.nbytes``; torch: its codes, scales and biases). Each child's output on the
batch is checked against the parent's in-memory model (torch: SQNR against the float model)
before anything is printed.
"""
from __future__ import annotations

import ctypes
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import lowbit
from lowbit import io as lowbit_io
from lowbit._checks import as_int

from . import common

WIDTH = 4096
LAYERS = 4
QUICK_WIDTH = 1024
BATCH = 64
CALLS = 2          # forward passes per batch size in a child
MAX_SAMPLES = 2    # children per variant (memory figures hardly vary; ``repeat`` caps it)
MiB = 2.0 ** 20

#: variant name in the table -> (file name in the temporary directory, how the child loads it)
VARIANTS = {
    "float32 (.npz)": ("float.npz", "npz"),
    "float32 (lowbit file)": ("float.lowbit", "lowbit"),
    "int8 QuantizedLinear": ("int8.lowbit", "lowbit"),
    "int4 QuantizedLinear": ("int4.lowbit", "lowbit"),
    "codebook k=16": ("codebook.lowbit", "lowbit"),
    "torch qint8 dynamic": ("torch_int8.npz", "torch"),
}
TORCH = "torch qint8 dynamic"
FLOAT = "float32 (.npz)"  # the reference of the ratios


# --------------------------------------------------------------------------------------------
# /proc/self/status
# --------------------------------------------------------------------------------------------
def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in bytes (Linux); an empty dict elsewhere."""
    out = {}
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return {}
    return out


def malloc_trim() -> bool:
    """Returns freed heap memory to the system (glibc ``malloc_trim(0)``); False elsewhere."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


def reset_peak() -> bool:
    """Resets VmHWM to the current VmRSS (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0).
    False when the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# the child: one variant in a fresh process
# --------------------------------------------------------------------------------------------
def _load_float_npz(path):
    """[(W, b), ...] from the .npz written by :func:`build_files` (no pickle)."""
    with np.load(path, allow_pickle=False) as z:
        n = len([k for k in z.files if k.startswith("w")])
        return [(z[f"w{i}"], z[f"b{i}"]) for i in range(n)]


def _float_forward(params, x):
    """relu(x @ W.T + b) for every layer but the last (no ReLU there), in numpy."""
    for i, (w, b) in enumerate(params):
        x = x @ w.T
        x += b
        if i + 1 < len(params):
            np.maximum(x, 0, out=x)
    return x


def _load_torch(path):
    """A torch.nn.Sequential of dynamic int8 Linear layers (ReLU between them) from the codes,
    per-channel scales and biases in the .npz written by :func:`build_files`. The codes are
    wrapped without a copy and packed by torch; no float weight is ever built."""
    import warnings

    import torch

    layers, nbytes = [], 0
    with np.load(path, allow_pickle=False) as z:
        n = len([k for k in z.files if k.startswith("q")])
        for i in range(n):
            codes, scale, bias = z[f"q{i}"], z[f"s{i}"], z[f"b{i}"]
            out_f, in_f = codes.shape
            nbytes += codes.nbytes + scale.nbytes + bias.nbytes
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao.nn.quantized warns about deprecation
                qw = torch._make_per_channel_quantized_tensor(
                    torch.from_numpy(codes), torch.from_numpy(scale.astype(np.float64)),
                    torch.zeros(out_f, dtype=torch.int64), 0)
                lin = torch.ao.nn.quantized.dynamic.Linear(in_f, out_f, dtype=torch.qint8)
                lin.set_weight_bias(qw, torch.from_numpy(bias))
            del qw, codes
            layers += [lin, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])

    def forward(a):
        with torch.inference_mode():
            return model(torch.from_numpy(a)).numpy()

    return model, forward, nbytes


def _weight_nbytes(model) -> int:
    """Bytes of the weights as the layers report them (``nbytes``; float: W and b)."""
    if isinstance(model, list):
        return int(sum(w.nbytes + b.nbytes for w, b in model))
    total = 0
    for layer in model.layers:
        if hasattr(layer, "nbytes"):
            total += int(layer.nbytes)
        elif getattr(layer, "weight", None) is not None:
            total += int(layer.weight.nbytes) + (0 if layer.bias is None else int(layer.bias.nbytes))
    return total


def child(spec: dict) -> dict:
    """Runs in the fresh process: measures one variant (see the module docstring) and returns
    the figures in bytes; writes the output for the largest batch to ``spec['out']``."""
    lowbit_io.registered_types()  # imports the modules lowbit.load needs: part of the baseline
    if spec["kind"] == "torch":
        import torch  # part of the baseline too

        torch.set_num_threads(spec["threads"])
        torch.ao.nn.quantized.dynamic.Linear  # noqa: B018 (imports the module)
    x = np.load(spec["input"], allow_pickle=False)
    batches = [x[:m].copy() for m in spec["batches"]]
    gc.collect()
    base = proc_status()
    can_reset = reset_peak()
    t0 = time.perf_counter()
    nbytes = None
    if spec["kind"] == "npz":
        model = _load_float_npz(spec["path"])
        forward = lambda a: _float_forward(model, a)  # noqa: E731
    elif spec["kind"] == "torch":
        model, forward, nbytes = _load_torch(spec["path"])
    else:
        model = lowbit.load(spec["path"])
        forward = model
    load_s = time.perf_counter() - t0
    load_peak = proc_status()["VmHWM"]
    gc.collect()
    resident = proc_status()["VmRSS"]
    peaks = [load_peak]
    infer = {}
    y = None
    for m, a in zip(spec["batches"], batches):
        if can_reset:
            reset_peak()
        for _ in range(spec["calls"]):
            y = forward(a)
        st = proc_status()
        peaks.append(st["VmHWM"])
        infer[str(m)] = st["VmHWM"] if can_reset else None
    np.save(spec["out"], np.asarray(y), allow_pickle=False)
    del y, a, batches
    gc.collect()
    held = proc_status()["VmRSS"] if malloc_trim() else None
    return {"baseline": base["VmRSS"], "baseline_hwm": base["VmHWM"], "load_peak": load_peak,
            "resident": resident, "infer": infer, "peak": max(peaks), "can_reset": can_reset,
            "held": held, "nbytes": _weight_nbytes(model) if nbytes is None else nbytes,
            "load_s": load_s,
            "threads": lowbit.get_num_threads(), "isa": lowbit.cpu_info()["isa"]}


def run_child(spec: dict, threads: int, timeout: float = 600.0) -> dict:
    """Measures one variant in a fresh ``python -m lowbit_bench.memory`` process with
    ``threads`` threads for lowbit and numpy's BLAS."""
    env = dict(os.environ)
    for k in ("LOWBIT_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    proc = subprocess.run([sys.executable, "-m", __name__, json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child for {spec['path']} failed with exit code "
                           f"{proc.returncode}:\n{proc.stderr[-2000:]}")
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"memory child for {spec['path']} printed no result:\n"
                           f"{proc.stdout[-1000:]}{proc.stderr[-1000:]}")
    return json.loads(lines[-1])


# --------------------------------------------------------------------------------------------
# the parent: models, files, checks, the table
# --------------------------------------------------------------------------------------------
def make_params(width: int, layers: int, seed: int = 0):
    """[(W (width, width) float32, b (width,) float32), ...], scaled so activations stay O(1)."""
    rng = np.random.default_rng(seed)
    params = []
    for _ in range(layers):
        w = rng.standard_normal((width, width), dtype=np.float32)
        w *= np.float32(np.sqrt(2.0 / width))
        b = rng.uniform(-0.1, 0.1, size=width).astype(np.float32)
        params.append((w, b))
    return params


def _sequential(layers):
    """A lowbit.nn.Sequential of the given Linear-like layers with ReLU between them."""
    seq = []
    for i, layer in enumerate(layers):
        seq.append(layer)
        if i + 1 < len(layers):
            seq.append(lowbit.nn.ReLU())
    return lowbit.nn.Sequential(seq)


def build_files(params, directory: str, x: np.ndarray) -> dict:
    """Writes every variant of the model to ``directory``; returns {variant: reference output
    of the parent's in-memory model on x} (torch's: the float model's)."""
    refs = {}
    np.savez(os.path.join(directory, VARIANTS[FLOAT][0]),
             **{f"w{i}": w for i, (w, _) in enumerate(params)},
             **{f"b{i}": b for i, (_, b) in enumerate(params)})
    refs[FLOAT] = _float_forward(params, x)
    makers = {
        "float32 (lowbit file)": lambda w, b: lowbit.nn.Linear.from_arrays(w, b),
        "int8 QuantizedLinear": lambda w, b: lowbit.QuantizedLinear(w, b),
        "int4 QuantizedLinear": lambda w, b: lowbit.QuantizedLinear(w, b, bits=4),
        "codebook k=16": lambda w, b: lowbit.CodebookLinear(w, b, k=16),
    }
    for name, make in makers.items():
        common.progress(f"[memory] building {name} ...")
        model = _sequential([make(w, b) for w, b in params])
        lowbit.save(model, os.path.join(directory, VARIANTS[name][0]))
        refs[name] = model(x)
        if name == "int8 QuantizedLinear":  # torch's int8 model: the same codes and scales
            qls = [layer for layer in model.layers if isinstance(layer, lowbit.QuantizedLinear)]
            np.savez(os.path.join(directory, VARIANTS[TORCH][0]),
                     **{f"q{i}": q.weight_q.int_repr() for i, q in enumerate(qls)},
                     **{f"s{i}": np.asarray(q.weight_q.scale, np.float32) for i, q in enumerate(qls)},
                     **{f"b{i}": q.bias for i, q in enumerate(qls)})
            refs[TORCH] = refs[FLOAT]
        del model
        gc.collect()
    return refs


def _check_output(name: str, got: np.ndarray, ref: np.ndarray) -> str:
    """The child's output must be the parent's (float: up to BLAS summation order); torch's
    int8 model (other activation quantization) must be within 25 dB SQNR of the float one."""
    if name == TORCH:
        db = lowbit.sqnr(ref, got) if got.shape == ref.shape else float("-inf")
        if not db > 25:
            raise AssertionError(f"{name}: SQNR {db:.1f} dB against the float model, expected > 25")
        return f"SQNR {db:.1f} dB vs float"
    if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-4, atol=1e-4):
        err = np.max(np.abs(got - ref)) if got.shape == ref.shape else "shape"
        raise AssertionError(f"{name}: the child's output differs from the parent's model ({err})")
    return "equal" if np.array_equal(got, ref) else "close"


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _mib(v) -> str:
    return "-" if v is None else f"{v / MiB:.1f}"


def _variant_names(variants) -> list[str]:
    """The variants to measure: all (torch's when torch is installed) or the given ones."""
    if variants is None:
        return [n for n in VARIANTS if n != TORCH or importlib.util.find_spec("torch")]
    names = [variants] if isinstance(variants, str) else list(variants)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or FLOAT not in names:
        raise ValueError(f"variants must be names from {list(VARIANTS)} including {FLOAT!r}, "
                         f"got {names}")
    return list(dict.fromkeys(names))


def measure(*, width=WIDTH, layers=LAYERS, batch=BATCH, samples=MAX_SAMPLES, threads=1,
            variants=None) -> dict:
    """Builds the model, writes its variants and measures each in ``samples`` fresh processes
    with ``threads`` threads. Returns ``{"results": {variant: [child figures (bytes)]},
    "names", "files" (file sizes), "checks" (notes), "batches", "width", "layers",
    "samples", "threads"}``; AssertionError when a child's output differs from the parent's."""
    width = as_int(width, "width", 1, 65536)
    layers = as_int(layers, "layers", 1, 1024)
    batch = as_int(batch, "batch", 1, 1 << 16)
    samples = as_int(samples, "samples", 1, 100)
    threads = as_int(threads, "threads", 1, 1024)
    names = _variant_names(variants)
    batches = sorted({1, batch})
    with tempfile.TemporaryDirectory(prefix="lowbit-bench-memory-") as d:
        common.progress(f"[memory] MLP {layers} x ({width}, {width}): writing the variants to {d} ...")
        x = np.random.default_rng(1).standard_normal((max(batches), width), dtype=np.float32)
        np.save(os.path.join(d, "x.npy"), x, allow_pickle=False)
        refs = build_files(make_params(width, layers), d, x)
        files = {n: os.path.getsize(os.path.join(d, VARIANTS[n][0])) for n in names}
        results = {n: [] for n in names}
        checks = []
        for s in range(samples):  # variants interleaved, as common.measure does for timings
            for name in list(names):
                common.progress(f"[memory] {name}, sample {s + 1}/{samples} ...")
                fname, kind = VARIANTS[name]
                out = os.path.join(d, "y.npy")
                spec = {"path": os.path.join(d, fname), "kind": kind, "threads": threads,
                        "input": os.path.join(d, "x.npy"), "batches": batches, "calls": CALLS,
                        "out": out}
                try:
                    r = run_child(spec, threads)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    if name != TORCH:
                        raise
                    checks.append(f"{name} left out: {str(e).strip().splitlines()[-1][:120]}")
                    names.remove(name)
                    del results[name]
                    continue
                verdict = _check_output(name, np.load(out, allow_pickle=False),
                                        refs[name][:batches[-1]])
                if s == 0:
                    checks.append(f"{name} {verdict}")
                results[name].append(r)
    return {"results": results, "names": names, "files": files, "checks": checks,
            "batches": batches, "width": width, "layers": layers, "samples": samples,
            "threads": threads}


def main(threads="1,2", repeat=7, quick=False, width=None, layers=None, batch=BATCH,
         variants=None) -> int:
    """Measures every variant in fresh processes and prints one table. Returns 0; a child whose
    output differs from the parent's model raises AssertionError.

    ``width``/``layers``: the MLP (default 4 x 4096; quick: 4 x 1024); ``batch``: the larger
    batch size (the other is 1); ``threads``: the largest count given is used;
    ``repeat``: children per variant, at most 2; ``variants``: a subset of :data:`VARIANTS`."""
    t = max(common.parse_threads(threads))
    samples = min(common.check_repeat(repeat), MAX_SAMPLES)
    if width is None:
        width = QUICK_WIDTH if quick else WIDTH
    if not proc_status():
        print("[memory] skipped: needs Linux /proc/self/status (VmRSS, VmHWM)", file=sys.stderr)
        return 0
    m = measure(width=width, layers=LAYERS if layers is None else layers, batch=batch,
                samples=samples, threads=t, variants=variants)
    with common.Threads(t):
        header = common.describe(t, peers=("numpy", "torch") if TORCH in m["names"] else ("numpy",))
    print(format_results(m, header))
    print()
    return 0


def summary(m: dict) -> dict:
    """{variant: {"nbytes", "held", "resident", "infer" (largest batch), "peak", "load"}}: the
    medians over the samples, in bytes, minus the baseline (nbytes as reported)."""
    out = {}
    for name in m["names"]:
        rs = m["results"][name]

        def med(key, sub=None):
            vals = [r[key] if sub is None else r[key].get(sub) for r in rs]
            return _median([None if v is None else v - r["baseline"] for v, r in zip(vals, rs)])

        out[name] = {"nbytes": rs[0]["nbytes"], "held": med("held"), "resident": med("resident"),
                     "infer": med("infer", str(m["batches"][-1])), "peak": med("peak"),
                     "load": med("load_peak")}
    return out


def format_results(m: dict, header) -> str:
    """The table (and the lines after it) from :func:`measure`'s figures."""
    results, names, batches = m["results"], m["names"], m["batches"]
    fig = summary(m)

    def med_minus_base(name, key, sub):
        return _median([r[key].get(sub) - r["baseline"] if r[key].get(sub) is not None else None
                        for r in results[name]])

    rows = []
    for name in names:
        rs, f = results[name], fig[name]
        peaks = [r["peak"] - r["baseline"] for r in rs]
        rows.append([name, _mib(m["files"][name]), _mib(f["nbytes"]),
                     _mib(_median([r["baseline"] for r in rs])),
                     _mib(f["load"]), _mib(f["resident"]), _mib(f["held"])]
                    + [_mib(med_minus_base(name, "infer", str(b))) for b in batches]
                    + [_mib(_median([r["peak"] for r in rs])), _mib(f["peak"]),
                       _mib(max(peaks) - min(peaks)), f"{_median([r['load_s'] for r in rs]):.2f}"]
                    + [common.fmt_ratio(fig[FLOAT][k], f[k])
                       for k in ("nbytes", "held", "infer", "peak")])
    can_reset = all(r["can_reset"] for rs in results.values() for r in rs)
    can_trim = all(r["held"] is not None for rs in results.values() for r in rs)
    lines = [f"== peak RSS of inference: MLP {m['layers']} x Linear({m['width']}, {m['width']}) "
             f"+ ReLU, batch {' and '.join(map(str, batches))}; float32 vs int8 vs codebook =="]
    lines += list(header)
    lines.append(
        f"memory: each variant in a fresh process (python -m {__name__}), {m['samples']} "
        "sample(s) each, medians, MiB; baseline = VmRSS after importing numpy + lowbit (+ torch "
        "for torch) and reading the input; Δ = minus the baseline; load peak, infer peak = VmHWM "
        f"while loading the file, during {CALLS} forward passes at batch M"
        + (" (VmHWM reset through /proc/self/clear_refs before each)" if can_reset else
           " (VmHWM could not be reset: no infer columns)")
        + "; resident = VmRSS after loading; held = VmRSS after malloc_trim(0) at the end"
        + ("" if can_trim else " (not glibc: no held column)")
        + "; peak = highest VmHWM of the run, load included; spread = max-min of peak Δ; "
        f"weights = the layers' nbytes; float/x = the {FLOAT} figure / this one")
    headers = (["variant", "file", "weights", "baseline", "load peak Δ", "resident Δ", "held Δ"]
               + [f"infer M={b} Δ" for b in batches]
               + ["peak", "peak Δ", "spread", "load s", "float/x weights", "float/x held",
                  f"float/x infer M={batches[-1]}", "float/x peak"])
    lines.append(common.format_table(headers, rows))
    lines.append("checks: each child's output on the batch against the parent's in-memory "
                 "model: " + "; ".join(m["checks"]))
    for name in names:
        f = fig[name]
        parts = [f"{label} Δ {f[key] / f['nbytes']:.2f}x" for label, key in
                 (("held", "held"), (f"infer M={batches[-1]}", "infer"), ("load peak", "load"))
                 if f[key] is not None and f["nbytes"]]
        lines.append(f"{name}: against its weights' nbytes: " + ", ".join(parts))
    return "\n".join(lines)


if __name__ == "__main__":  # the child process of run_child
    print(json.dumps(child(json.loads(sys.argv[1]))), flush=True)
