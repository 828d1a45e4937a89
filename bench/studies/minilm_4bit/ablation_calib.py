"""Per-matrix sensitivity measured on the CALIBRATION sentences (not the eval set), so that the
mixed-precision allocation never looks at evaluation data. RTN int4 g32 asym, one matrix at a time.
-> ablation_calib.json (same format as ablation.json, key int4g32 only)."""
import json
from harness import Harness
from data import CALIB
from model import linear_names
import quant as Q

# short + misc + a few medium calibration sentences (the min is driven by short inputs; keeps it fast)
h = Harness(CALIB[:40] + CALIB[-20:])
rows = []
for name in linear_names():
    r = h.evaluate({name: Q.rtn(h.enc.lin[name][0], None, 4, 32)[0]})
    rows.append({"name": name, "int4g32": (r["min"], r["mean"], r["worst"])})
    print(name, round(r["min"], 4), round(r["mean"], 5), r["worst"], flush=True)
json.dump(rows, open("ablation_calib.json", "w"), indent=1)
