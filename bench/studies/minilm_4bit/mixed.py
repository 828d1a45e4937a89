"""Mixed bit widths across the 36 Linears under a bits-per-weight budget.

Sensitivity d_i comes from the per-matrix ablation (ablation.json: quantize only matrix i with RTN
int4 g32, damage = (1-min) + (1-mean) over the eval set). Assumed damage at b bits: d_i * 4^(4-b)
(error variance /4 per extra bit). Greedy: start every matrix at the lowest option and repeatedly
upgrade the matrix with the largest damage reduction per extra stored bit while within budget.
"""
import json
import numpy as np
from model import linear_names, load_weights
import quant as Q

OPTIONS = [(2, 64), (3, 64), (4, 64), (5, 64), (6, 64), (8, 64)]  # (bits, group), asym, fp16 scale


def opt_bpw(bits, group):
    return bits + (16 + bits) / group


def allocate(budget, options=OPTIONS, ablation="ablation.json", min_bits=2):
    abl = {r["name"]: r for r in json.load(open(ablation))}
    _, lin = load_weights()
    names = linear_names()
    size = {n: lin[n][0].size for n in names}
    d = {n: (1 - abl[n]["int4g32"][0]) + (1 - abl[n]["int4g32"][1]) for n in names}
    opts = [o for o in options if o[0] >= min_bits]
    level = {n: 0 for n in names}
    total_w = sum(size.values())
    used = sum(size[n] * opt_bpw(*opts[0]) for n in names)
    dmg = lambda n, o: d[n] * 4.0 ** (4 - o[0])
    while True:
        best, best_gain = None, 0
        for n in names:
            if level[n] + 1 >= len(opts):
                continue
            o0, o1 = opts[level[n]], opts[level[n] + 1]
            extra = size[n] * (opt_bpw(*o1) - opt_bpw(*o0))
            if used + extra > budget * total_w:
                continue
            gain = (dmg(n, o0) - dmg(n, o1)) / extra
            if gain > best_gain:
                best, best_gain = n, gain
        if best is None:
            break
        o0, o1 = opts[level[best]], opts[level[best] + 1]
        used += size[best] * (opt_bpw(*o1) - opt_bpw(*o0))
        level[best] += 1
    return {n: opts[level[n]] for n in names}, used / total_w


def per_matrix_plan(alloc, method=Q.gptq_uniform, **kw):
    return {n: (method, dict(bits=b, group=g, **kw)) for n, (b, g) in alloc.items()}


if __name__ == "__main__":
    for budget in (4.5, 3.5):
        a, bpw = allocate(budget)
        print(budget, "->", round(bpw, 4))
        for n in linear_names():
            print(" ", n, a[n])


# ---------------------------------------------------------------------------------------------
# allocation v2: per-matrix damage curves from measured RTN weight errors (H-weighted)
# ---------------------------------------------------------------------------------------------
OPTIONS2 = [(2, 32), (3, 128), (3, 64), (3, 32), (4, 128), (4, 64), (4, 32), (5, 64), (6, 64), (8, 64)]


def damage_curves(options=OPTIONS2, hkind="Hs", ablation="ablation.json"):
    """d_i(o) = ablation damage of matrix i (RTN int4 g32) * relerr_H(RTN o) / relerr_H(RTN int4 g32)."""
    from harness import calib_stats, hessian_for
    st = calib_stats()
    abl = {r["name"]: r for r in json.load(open(ablation))}
    _, lin = load_weights()
    curves = {}
    for n in linear_names():
        W = lin[n][0]
        H = hessian_for(st, n, hkind)

        def e(b, g):
            D = Q.rtn(W, None, b, g)[0] - W
            return np.einsum("ij,jk,ik->", D, H, D)

        ref = e(4, 32)
        d0 = (1 - abl[n]["int4g32"][0]) + (1 - abl[n]["int4g32"][1])
        curves[n] = [(opt_bpw(b, g), d0 * e(b, g) / ref, (b, g)) for b, g in options]
    return curves


def allocate2(budget, curves, size):
    """Greedy over each matrix's lower convex hull of (bpw, damage)."""
    hull = {}
    for n, pts in curves.items():
        pts = sorted(pts)
        h = []
        for p in pts:
            if h and p[1] >= h[-1][1]:
                continue  # dominated: more bits, no less damage
            while len(h) >= 2 and (h[-1][1] - h[-2][1]) * (p[0] - h[-2][0]) >= (p[1] - h[-2][1]) * (h[-1][0] - h[-2][0]):
                h.pop()
            h.append(p)
        hull[n] = h
    level = {n: 0 for n in curves}
    total = sum(size.values())
    used = sum(size[n] * hull[n][0][0] for n in curves)
    while True:
        best, bg = None, 0
        for n in curves:
            if level[n] + 1 >= len(hull[n]):
                continue
            a, b = hull[n][level[n]], hull[n][level[n] + 1]
            extra = size[n] * (b[0] - a[0])
            if used + extra > budget * total:
                continue
            g = (a[1] - b[1]) / extra
            if g > bg:
                best, bg = n, g
        if best is None:
            break
        a, b = hull[best][level[best]], hull[best][level[best] + 1]
        used += size[best] * (b[0] - a[0])
        level[best] += 1
    return {n: hull[n][level[n]][2] for n in curves}, used / total


def _cached_curves():
    """damage_curves() cached in damage_curves.json (plain JSON: loading it runs no code)."""
    import os
    cache = os.path.join(os.path.dirname(os.path.abspath(__file__)), "damage_curves.json")
    if not os.path.exists(cache):
        with open(cache, "w") as f:
            json.dump(damage_curves(), f)
    with open(cache) as f:
        return {n: [(b, d, tuple(o)) for b, d, o in c] for n, c in json.load(f).items()}


def allocation_v2(budget, min_bits=2):
    curves = {n: [p for p in c if p[2][0] >= min_bits] for n, c in _cached_curves().items()}
    _, lin = load_weights()
    size = {n: lin[n][0].size for n in linear_names()}
    return allocate2(budget, curves, size)


def allocation_v3(budget, min_bits=3, groups=(32, 64, 128)):
    """Like allocation_v2 but every option stores its group scales as int8 codes plus one fp16
    super-scale per row (quant.quant_scales), asym with integer zero points:
    bpw(b, g) = b + (8 + b) / g + 16 / in_features. Damage curves are reused from v2."""
    curves = _cached_curves()
    _, lin = load_weights()
    size = {n: lin[n][0].size for n in linear_names()}
    cols = {n: lin[n][0].shape[1] for n in linear_names()}
    c3 = {n: [(b + (8 + b) / g + 16 / cols[n], d, (b, g)) for _, d, (b, g) in c
              if b >= min_bits and g in groups] for n, c in curves.items()}
    return allocate2(budget, c3, size)


def per_matrix_plan_v3(alloc, method, **kw):
    return {n: (method, dict(bits=b, group=g, scale_bits=8, **kw)) for n, (b, g) in alloc.items()}


def allocation_v4(budget, min_bits=3, groups=(32, 64, 128)):
    """allocation_v3 with symmetric grids (ORT-style signed-extreme scale, no zero point; the
    Hadamard-rotated weights are near-symmetric): bpw(b, g) = b + 8 / g + 16 / in_features.
    Damage curves (measured for asym RTN) are reused as an approximation."""
    curves = _cached_curves()
    _, lin = load_weights()
    size = {n: lin[n][0].size for n in linear_names()}
    cols = {n: lin[n][0].shape[1] for n in linear_names()}
    c4 = {n: [(b + 8 / g + 16 / cols[n], d, (b, g)) for _, d, (b, g) in c
              if b >= min_bits and g in groups] for n, c in curves.items()}
    return allocate2(budget, c4, size)


def per_matrix_plan_v4(alloc, method, **kw):
    return {n: (method, dict(bits=b, group=g, sym=True, scale_bits=8, **kw)) for n, (b, g) in alloc.items()}


def _load_curves(ablation="ablation.json"):
    """The damage curves (built with ablation.json), rescaled to another ablation file
    (e.g. ablation_calib.json, sensitivity measured on calibration sentences only)."""
    curves = _cached_curves()
    if ablation == "ablation.json":
        return curves
    d = lambda f: {r["name"]: (1 - r["int4g32"][0]) + (1 - r["int4g32"][1]) for r in json.load(open(f))}
    old, new = d("ablation.json"), d(ablation)
    return {n: [(b, dm * new[n] / old[n], o) for b, dm, o in c] for n, c in curves.items()}


def allocation(budget, scheme="v2", ablation="ablation_calib.json", min_bits=3, groups=(32, 64, 128)):
    """scheme v2: fp16 scales, asym (b + (16+b)/g); v3: int8 scales asym (b + (8+b)/g + 16/C);
    v4: int8 scales sym (b + 8/g + 16/C)."""
    curves = _load_curves(ablation)
    _, lin = load_weights()
    size = {n: lin[n][0].size for n in linear_names()}
    cols = {n: lin[n][0].shape[1] for n in linear_names()}
    cost = {"v2": lambda b, g, C: b + (16 + b) / g,
            "v3": lambda b, g, C: b + (8 + b) / g + 16 / C,
            "v4": lambda b, g, C: b + 8 / g + 16 / C}[scheme]
    c = {n: [(cost(b, g, cols[n]), dm, (b, g)) for _, dm, (b, g) in cv if b >= min_bits and g in groups]
         for n, cv in curves.items()}
    return allocate2(budget, c, size)
