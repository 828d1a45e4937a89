"""`lowbit bench nonlinear`: SQNR of nonlinear quantizers (power-of-two, mu-law, tanh and sigmoid
companding) against linear quantization at the same bit count, on Gaussian and heavy-tailed
(Student-t, 3 degrees of freedom) weights, per output channel. Accuracy only: no timing."""
from __future__ import annotations

import numpy as np


def main(threads=(1,), repeat=1, quick=False) -> int:
    from lowbit.nonlinear import compare_sqnr

    n = 128 if quick else 512
    rng = np.random.default_rng(0)
    weights = {
        "Gaussian": rng.standard_normal((n, n)).astype(np.float32),
        "Student-t (3)": rng.standard_t(3, (n, n)).astype(np.float32),
    }
    print(f"== nonlinear vs linear quantization: SQNR (dB), ({n}, {n}) weights, per output channel ==")
    names = ["linear", "pow2", "mu-law", "tanh", "sigmoid"]
    print(f"{'weights':<15} {'bits':>4} " + " ".join(f"{m:>8}" for m in names) + "  best")
    for label, w in weights.items():
        for bits in (3, 4, 6, 8):
            r = compare_sqnr(w, bits=bits, axis=0)
            best = max(r, key=r.get)
            print(f"{label:<15} {bits:>4} " + " ".join(f"{r[m]:8.2f}" for m in names) + f"  {best}")
    return 0
