"""`lowbit demo`: the end-to-end job on scikit-learn's bundled digits.

Trains a teacher MLP, distills a small student from it, quantizes both to int8 (QuantizedLinear)
and to a 4-bit codebook (CodebookLinear), and prints one table: accuracy, size, compression and
latency per batch against the numpy float32 models. Writes a PNG of the training curves.
"""
from __future__ import annotations

import os
import time

import numpy as np

import lowbit
from lowbit import nn
from lowbit.distill import Distiller

TEACHER = [64, 512, 512, 10]
STUDENT = [64, 32, 10]


def load_digits_split(seed: int = 0):
    """digits, inputs / 16, train_test_split(test_size=0.3, stratify=y, random_state=seed)."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("lowbit demo needs scikit-learn for its bundled digits data: "
                         "pip install scikit-learn") from None
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return train_test_split(x, d.target, test_size=0.3, stratify=d.target, random_state=seed)


def model_bytes(model) -> int:
    """Bytes of a model's parameters: float arrays, or the packed sizes of compressed layers."""
    total = 0
    for layer in model.layers:
        if hasattr(layer, "nbytes") and not isinstance(layer, nn.Layer):
            total += int(layer.nbytes)
        else:
            total += sum(int(p.nbytes) for p in layer.parameters())
    return total


def latency(model, x, repeat: int = 21) -> float:
    """Median seconds of model(x)."""
    model(x)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model(x), axis=1) == y))


def compress(model, kind: str):
    """A copy of `model` with every Linear replaced: "int8" (QuantizedLinear), "int7"
    (QuantizedLinear with 7-bit weights and activations: exact and faster on AVX2 CPUs without
    VNNI) or "codebook4" (CodebookLinear, k = 16 shared weights per layer)."""
    out = model.copy()
    for i, layer in enumerate(model.layers):
        if isinstance(layer, nn.Linear):
            w, b = np.asarray(layer.weight, np.float32), np.asarray(layer.bias, np.float32)
            if kind == "int8":
                out.layers[i] = lowbit.QuantizedLinear(w, b)
            elif kind == "int7":
                out.layers[i] = lowbit.QuantizedLinear(w, b, bits=7, act_bits=7)
            else:
                out.layers[i] = lowbit.CodebookLinear(w, b, k=16)
    return out


def run_demo(quick: bool = False, seed: int = 0, curves: str = "lowbit_demo_curves.png",
             progress: bool = True, tradeoffs: str = "lowbit_demo_tradeoffs.png") -> int:
    t_start = time.perf_counter()
    xtr, xte, ytr, yte = load_digits_split()
    info = lowbit.cpu_info()
    print(f"lowbit {lowbit.__version__} demo on scikit-learn digits: {len(xtr)} train / {len(xte)} "
          f"test images, kernels: {info['isa']}, threads: {info['threads']}")
    # Budgets chosen on a validation split by bench/distill_digits.py (docs/distill_digits.md).
    ep_teacher, ep_hard, ep_kd = (5, 10, 10) if quick else (100, 100, 1000)
    common = dict(lr=3e-3, schedule="cosine", seed=seed, progress=progress, threads=1)

    print(f"1/4 training the teacher {TEACHER} ({ep_teacher} epochs)")
    teacher = nn.MLP(TEACHER, dropout=0.2, seed=seed)
    nn.fit(teacher, xtr, ytr, epochs=ep_teacher, **common)

    print(f"2/4 training the student {STUDENT} on hard labels ({ep_hard} epochs)")
    hard = nn.MLP(STUDENT, seed=seed)
    nn.fit(hard, xtr, ytr, epochs=ep_hard, **common)

    print(f"3/4 distilling the student from the teacher (T=4, alpha=0.5, {ep_kd} epochs)")
    student = nn.MLP(STUDENT, seed=seed)
    hist = Distiller(teacher, student, temperature=4.0, alpha=0.5).fit(
        xtr, ytr, epochs=ep_kd, validation_data=(xte, yte), **common)

    print("4/4 quantizing: int8 and 4-bit codebooks; timing on one thread each")
    with one_thread():
        rows = compare(teacher, student, hard, xte, yte)
    print()
    print(format_table(rows, len(xte)))
    try:
        hist.plot(curves, title="lowbit demo: distilling the student (digits)")
        print(f"\ntraining curves: {curves}")
    except ImportError as e:
        print(f"\n(no PNG of the training curves: {e})")
    try:
        plot_tradeoffs(rows, len(xte), tradeoffs)
        print(f"accuracy against size and latency: {tradeoffs}")
    except ImportError as e:
        print(f"(no PNG of the trade-offs: {e})")
    print("latency: median of 21 runs, numpy's BLAS and lowbit on one thread each; speed-up = float "
          "time / compressed time")
    print(f"finished in {time.perf_counter() - t_start:.1f} s")
    return 0


class one_thread:
    """numpy's BLAS and lowbit on one thread each, so the latencies compare like with like."""

    def __enter__(self):
        from lowbit.nn.training import blas_threads

        self._lowbit = lowbit.get_num_threads()
        self._blas = blas_threads(1)
        self._blas.__enter__()
        lowbit.set_num_threads(1)

    def __exit__(self, *exc):
        lowbit.set_num_threads(self._lowbit)
        self._blas.__exit__(*exc)


def compare(teacher, student, hard, xte, yte) -> list:
    """Rows of the demo table: each model in float32 and compressed."""
    rows = []
    batch = xte  # one batch: the whole test set
    for name, model in (("teacher", teacher), ("student (distilled)", student),
                        ("student (hard labels)", hard)):
        base_bytes, base_lat, base_one = model_bytes(model), latency(model, batch), latency(model, batch[:1])
        rows.append((name, "float32 (numpy)", accuracy(model, xte, yte), base_bytes, 1.0, base_lat, 1.0,
                     base_one, 1.0))
        kinds = ["int8", "int7", "codebook4"]
        for kind in kinds:
            if name.endswith("(hard labels)") and kind != "int8":
                continue
            q = compress(model, kind)
            b, lat, one = model_bytes(q), latency(q, batch), latency(q, batch[:1])
            label = {"int8": "int8 QuantizedLinear", "int7": "int8, 7-bit operands",
                     "codebook4": "4-bit codebook (k=16)"}[kind]
            rows.append((name, label, accuracy(q, xte, yte), b, base_bytes / b, lat, base_lat / lat,
                         one, base_one / one))
    return rows


def plot_tradeoffs(rows, batch: int, path) -> None:
    """A PNG of every variant's test accuracy against its size and its latency (batch and one
    image): the table as a picture, up and to the left is better. Needs matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the trade-off plot needs matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(13, 4.2))
    axes = fig.subplots(1, 3, sharey=True)
    markers = {"float32 (numpy)": "o", "int8 QuantizedLinear": "s", "int8, 7-bit operands": "D",
               "4-bit codebook (k=16)": "^"}
    colors = {}
    for name, ver, acc, size, _, lat, _, one, _ in rows:
        c = colors.setdefault(name, f"C{len(colors)}")
        for ax, x in zip(axes, (size / 1024, lat * 1e3, one * 1e3)):
            ax.scatter(x, 100 * acc, marker=markers.get(ver, "x"), color=c, s=60,
                       label=f"{name}: {ver}")
    for ax, xl in zip(axes, ("size (KiB, log)", f"latency, batch of {batch} (ms, log)",
                             "latency, 1 image (ms, log)")):
        ax.set_xscale("log")
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    fig.suptitle("lowbit demo on digits: accuracy against size and latency (up and left is better)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.savefig(os.fspath(path), dpi=100)


def format_table(rows, batch: int) -> str:
    head = ("model", "version", "test accuracy", "size (bytes)", "compression",
            f"latency, batch of {batch}", "speed-up", "latency, 1 image", "speed-up")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, ver, acc, size, ratio, lat, speed, one, speed_one in rows:
        lines.append(f"| {name} | {ver} | {100 * acc:.2f}% | {size:,} | {ratio:.2f}x | "
                     f"{lat * 1e3:.3f} ms | {speed:.2f}x | {one * 1e6:.1f} us | {speed_one:.2f}x |")
    return "\n".join(lines)
