"""Per-matrix sensitivity: quantize ONE Linear at a time (RTN int4 g32 asym, ORT numerics, and
RTN int3 g64) and measure min/mean cosine over the eval set and the cosine of 'Thanks!'."""
import json
import numpy as np
from common import setup
from model import linear_names
import quant as Q

h, st = setup()
rows = []
for name in linear_names():
    W = h.enc.lin[name][0]
    rec = {"name": name}
    for lab, (bits, g) in {"int4g32": (4, 32), "int3g64": (3, 64)}.items():
        r = h.evaluate({name: Q.rtn(W, None, bits, g)[0]})
        rec[lab] = (r["min"], r["mean"], r["worst"])
    rows.append(rec)
    print(name, {k: (round(v[0], 4), round(v[1], 4), v[2]) for k, v in rec.items() if k != "name"}, flush=True)
json.dump(rows, open("ablation.json", "w"), indent=1)
print("\nsorted by 1-min (int4 g32):")
for rec in sorted(rows, key=lambda r: r["int4g32"][0]):
    print(f"{rec['name']:8s} int4g32 1-min {1-rec['int4g32'][0]:.4f} 1-mean {1-rec['int4g32'][1]:.5f} | int3g64 1-min {1-rec['int3g64'][0]:.4f} 1-mean {1-rec['int3g64'][1]:.5f}")
