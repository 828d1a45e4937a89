"""CI check: the C++ runtime example reproduces lowbit's Python output bit for bit.

    python tests/runtime/check_runtime.py BUILD_DIR [--emulator "qemu-aarch64 -L /usr/aarch64-linux-gnu"]

Builds a quantized model (dynamic and static int8 layers, chains of static layers that pass
uint8 codes with and without ReLU and into 7-bit activations, codebook layers with 4-, 8- and
16-bit codes and both activation widths, ReLU) from digits-sized random weights, exports it with
lowbit.export_runtime, runs BUILD_DIR/lowbit_infer (under the emulator if given) on several
inputs, and compares every output byte with lowbit.deploy.runtime_reference (lowbit.QuantizedModel
on this machine's kernels).
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

import lowbit


def build_model(rng):
    from lowbit import nn

    def w(o, i):
        return rng.standard_normal((o, i)).astype(np.float32) * 0.2

    def b(o):
        return rng.standard_normal(o).astype(np.float32)

    layers = []
    calib = (rng.standard_normal((256, 64)) * 2).astype(np.float32)

    def static(o, i, bias, act_bits=8):
        """A static layer calibrated on what the layers so far give for calib."""
        h = lowbit.QuantizedModel(layers)(calib)
        lo, hi = min(float(h.min()), 0.0), max(float(h.max()), 0.0)
        scale = (hi - lo) / (2**act_bits - 1)
        return lowbit.QuantizedLinear(w(o, i), bias, act_scale=scale,
                                      act_zero_point=int(round(-lo / scale)), act_bits=act_bits)

    layers += [lowbit.QuantizedLinear(w(48, 64), b(48)), nn.ReLU(),
               lowbit.CodebookLinear(w(40, 48), b(40), k=16), nn.ReLU(),         # 4-bit codes, int8
               lowbit.QuantizedLinear(w(32, 40), None, act_scale=0.05, act_zero_point=0), nn.ReLU()]
    layers += [static(32, 32, b(32))]                  # codes -> codes through ReLU
    layers += [static(28, 32, b(28), act_bits=7), nn.ReLU()]  # codes -> 7-bit codes, no ReLU
    layers += [static(24, 28, None)]                   # 7-bit codes -> codes through ReLU
    layers += [lowbit.CodebookLinear(w(24, 24), None, k=300, activations="int16"),  # 16-bit codes
               lowbit.CodebookLinear(w(16, 24), b(16), k=64, dim=2),             # 8-bit codes, pairs
               lowbit.QuantizedLinear(w(10, 16), b(10), bits=4, per_channel=False)]
    return nn.Sequential(layers)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--emulator", default="")
    args = ap.parse_args()
    exe = shlex.split(args.emulator) + [os.path.join(args.build_dir, "lowbit_infer")]
    rng = np.random.default_rng(0)
    model = build_model(rng)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.lbrt")
        size = lowbit.export_runtime(model, path)
        for rows in (1, 7, 300):
            x = (rng.standard_normal((rows, 64)) * 2).astype(np.float32)
            np.save(os.path.join(tmp, "x.npy"), x)
            r = subprocess.run(exe + [path, os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"rows={rows}: runtime failed: {r.stderr.strip()}")
                failures += 1
                continue
            got = np.load(os.path.join(tmp, "y.npy"), allow_pickle=False)
            want = lowbit.deploy.runtime_reference(model, x)
            same = got.shape == want.shape and got.tobytes() == want.tobytes()
            print(f"rows={rows}: {'bit-exact' if same else 'DIFFERENT'} ({size} byte model, "
                  f"max |diff| {np.abs(got - want).max() if got.shape == want.shape else 'shape'})")
            failures += not same
    print(f"{3 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
