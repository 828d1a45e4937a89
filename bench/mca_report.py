#!/usr/bin/env python3
"""Static evidence for the GEMM micro-kernels (x86 and AArch64) on CPUs this machine may not have.

For each kernel file (csrc/kernels/x86/gemm__*.cc, and csrc/kernels/arm/gemm__*.cc cross-compiled
with Debian's aarch64-linux-gnu-g++) this script
  1. compiles it with GCC and the file's own flags (read from cmake/kernels.cmake) to assembly
     (-S), and assembles that into an object;
  2. finds the inner loop of each full tile (the innermost loop with the expected count of
     multiply instructions, see LOOPS and ARM_LOOPS below);
  3. checks the object's loop with objdump: vector register-to-register copies and stack
     references inside the loop (there should be none: the accumulators stay in registers; the
     AArch64 i8mm kernel's `mov vX.d[1], vY.d[0]` row-pair joins are intended and counted apart);
  4. runs llvm-mca (llvm-mca-22 by default; Debian package llvm-22) on the loop body for each CPU
     model, and reports cycles per k-step and the share of the dot-product peak: on x86 2
     multiply instructions (vpdpbusd, or vpmaddubsw / vpmaddwd for AVX2) issued per cycle; on
     AArch64 the issue rate the model itself gives the multiply instruction (sdot, usmmla,
     smull/smull2: 1 / its RThroughput);
  5. writes docs/gemm-mca.md: one table per architecture.

  python3 bench/mca_report.py                 # writes docs/gemm-mca.md
  python3 bench/mca_report.py --out -         # to stdout
  python3 bench/mca_report.py --mca llvm-mca-22 --cxx g++ --iterations 1000 --opt=-O3
  python3 bench/mca_report.py --arch x86      # one architecture only (--arch arm: AArch64 only)

The AArch64 files need the cross compiler and binutils (Debian: g++-aarch64-linux-gnu,
binutils-aarch64-linux-gnu); they are compiled at -O3 (--arm-opt), the Release build's level.

llvm-mca models the core only (L1 hits, no front-end limits beyond dispatch width): the figures
are upper bounds for loops whose operands stay in L1, as the micro-kernels' do. Its znver4 model
gives register vpdpbusd a throughput of one per 2 cycles where Zen 4/5 issue 2 per cycle
(measured on Zen 5: 0.5 cycles), so znver4 rows are listed for register and load pressure only.
LLVM has no Cortex-A76 scheduling model: -mcpu=cortex-a76 is scheduled with its Cortex-A57 model,
so the cortex-a76 rows are approximate.
"""
import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What to analyse: the loop of each kernel's full tile. `file` and its cmake flag group; `count`:
# the multiply instructions the loop must hold, as {mnemonic: n} (the innermost loop matching
# exactly); `ksteps`: k-groups of 4 per iteration; `macs`: int8 multiply-adds per iteration.
LOOPS = [
    dict(name="avx512vnni u8s8 6x48 (zmm)", file="gemm__avx512vnni.cc", group="avx512vnni",
         count={"vpdpbusd": 18}, ksteps=1, macs=6 * 48 * 4,
         models=["icelake-server", "sapphirerapids", "znver4*"]),
    dict(name="avxvnni u8s8 6x16 (ymm, VEX)", file="gemm__avxvnni.cc", group="avxvnni",
         count={"vpdpbusd": 12}, ksteps=1, macs=6 * 16 * 4,
         models=["icelake-server", "sapphirerapids", "alderlake", "znver4*"]),
    dict(name="avx2 u8s8 exact 2x16 (vpmaddwd, B widened in the loop)", file="gemm__avx2.cc",
         group="avx2", count={"vpmaddwd": 8, "vpmaddubsw": 0}, ksteps=1, macs=2 * 16 * 4,
         models=["icelake-server", "sapphirerapids", "znver3"]),
    dict(name="avx2 u8s7 6x16, one k-group a step (vpmaddubsw + vpmaddwd)", file="gemm__avx2.cc",
         group="avx2", count={"vpmaddubsw": 12, "vpmaddwd": 12}, ksteps=1, macs=6 * 16 * 4,
         models=["icelake-server", "sapphirerapids", "znver3"]),
    dict(name="avx2 u7s7 6x16, two k-groups a step (int16 sums)", file="gemm__avx2.cc",
         group="avx2", count={"vpmaddubsw": 24, "vpmaddwd": 12}, ksteps=2, macs=2 * 6 * 16 * 4,
         models=["icelake-server", "sapphirerapids", "znver3"]),
]
# Facts about the models, printed under the table.
NOTES = [
    "The icelake-server model issues zmm vpdpbusd on ports 0 and 5 (2 per cycle), the "
    "sapphirerapids model on port 0 only (1 per cycle, while its ymm form gets ports 0 and 1), "
    "so the same loop reads 50% there. That is the model's figure; whether Sapphire Rapids "
    "(two 512-bit FMA ports) issues 512-bit vpdpbusd on both is not something llvm-mca or this "
    "machine can settle.",
    "Ice Lake server has no AVX-VNNI (the VEX form): its avxvnni row only says what the model's "
    "ymm vpdpbusd would do. AVX-VNNI without AVX-512 is Intel's Alder Lake and later client "
    "cores (alderlake model); where AVX-512 VNNI exists too (Sapphire Rapids, Zen 4/5) the "
    "dispatch picks the zmm kernel.",
    "llvm-mca assumes L1 hits and an ideal front end; the loops read 3 (zmm) or 2 (ymm) B vectors "
    "and one 4-byte A value per row per k-step, all L1-resident in the driver's blocking.",
]
DOT = ("vpdpbusd", "vpmaddubsw", "vpmaddwd")  # the multiply instructions (2 per cycle at best)
PEAK_PER_CYCLE = 2.0

# AArch64 (csrc/kernels/arm/): the same fields; `ksteps` counts k in 4s here too, so a loop
# iteration (the kernel's step: 8 k for neondot and i8mm, 16 k for neon) is 2 or 4 k-steps.
# The i8mm count includes its 14 ldr (6 B vectors, 8 A rows): the 7-row tile's loop has the same
# 24 usmmla (its last row pair is one row) and one ldr less. `show`: further instructions whose
# model figures the table lists (not multiplies, not in the peak).
# `joins`: the `mov vX.d[1], vY.d[0]` (ins) the loop is meant to hold (i8mm: one per row pair,
# joining two rows' 8 bytes into usmmla's 2x8 operand); any other vector move is a copy.
# `absent`: models listed for the architecture whose core lacks the kernel's extension (not run).
ARM_MODELS = ["neoverse-n1", "neoverse-n2", "neoverse-v1", "neoverse-v2", "cortex-a76~"]
ARM_LOOPS = [
    dict(name="neondot u8s8 8x12 (sdot by element, 8 k a step)", file="gemm__neondot.cc",
         group="neondot", count={"sdot": 48}, ksteps=2, macs=8 * 12 * 8, models=ARM_MODELS),
    dict(name="i8mm u8s8 8x12 (usmmla, 8 k a step)", file="gemm__i8mm.cc", group="i8mm",
         count={"usmmla": 24, "ldr": 14}, joins=4, ksteps=2, macs=8 * 12 * 8, models=ARM_MODELS,
         absent={"neoverse-n1": "no i8mm on this core (armv8.2-a)",
                 "cortex-a76~": "no i8mm on this core (armv8.2-a)"}),
    dict(name="neon u8s8 4x4 (smull/smull2 + sadalp, 16 k a step)", file="gemm__neon.cc",
         group="neon", count={"smull": 16, "smull2": 16, "sadalp": 32}, show=("sadalp",), ksteps=4,
         macs=4 * 4 * 16, models=ARM_MODELS),
]
# int8 multiply-adds per multiply instruction: sdot 4 lanes x 4 bytes; usmmla a 2x8 by 8x2 block;
# smull / smull2 8 products (the sadalp that adds them into the accumulators is not counted).
ARM_MUL = {"sdot": 16, "usmmla": 32, "smull": 8, "smull2": 8}
ARM_NOTES = [
    "`~` cortex-a76: LLVM has no scheduling model of the Cortex-A76's own: `-mcpu=cortex-a76` "
    "gets the A76's instruction set (dotprod) but is scheduled with LLVM's Cortex-A57 model "
    "(llvm-mca lists its resources as A57Unit*: one load pipe L, the two ASIMD pipes W and X), so "
    "the cortex-a76 rows are approximate: what an A57-like core with sdot would do, not the "
    "A76's own pipes and latencies.",
    "neondot on neoverse-n1: the N1 model dispatches 3 micro-ops a cycle and counts each vector "
    "load (ldr q, ldr d) as 2, so the step's 48 sdot, 14 loads and 4 integer and branch "
    "instructions are 80 micro-ops, 26.7 cycles of dispatch against 24 for the two sdot pipes; "
    "llvm-mca flags no resource, the row is dispatch-bound.",
    "i8mm: the `mov vX.d[1], vY.d[0]` joining a row pair's two 8-byte loads is a vector "
    "micro-op on the pipes usmmla uses (V0-V3 on neoverse-v1/v2, V0/V1 on neoverse-n2): 24 "
    "usmmla + 4 joins = 28 vector micro-ops a step, 7 cycles on V1's 4 pipes and 14 on N2's 2 "
    "(6/7 of the usmmla peak). On neoverse-v2 the model's 6-wide dispatch binds first (46 "
    "micro-ops a step).",
    "neon (smull/smull2 + sadalp): every smull's products take one sadalp, on the vector pipes "
    "too. The neoverse-n1 model issues smull on V0 only and sadalp on V1 only (the A57 model: W "
    "and X), so a step's 32 of each take 32 cycles, the smull peak. The neoverse-n2 model issues "
    "smull on V0 or V1 (2 a cycle) but sadalp on V1 only: the 64 vector instructions fill both "
    "pipes for 32 cycles, 50% of the smull peak, a limit of the core's 2 pipes, not of the loop. "
    "The V1/V2 models have 2 pipes for each (16 cycles). This kernel is dispatched only on cores "
    "without dotprod (Cortex-A53/A57/A72/A73; csrc/runtime/dispatch.cc takes i8mm, then "
    "neondot, where the CPU has them): its rows here are for comparison.",
    "llvm-mca assumes L1 hits and an ideal front end; a step reads 6 B vectors (96 bytes) and "
    "8 bytes per row (neondot, i8mm) or 4 B vectors and 16 bytes per row (neon), all "
    "L1-resident in the driver's blocking.",
]


def cmake_flags():
    """{group: [flags]} from cmake/kernels.cmake's set_source_files_properties(${_group} ...)."""
    text = open(os.path.join(ROOT, "cmake", "kernels.cmake")).read()
    flags = {}
    for group, opts in re.findall(
            r'set_source_files_properties\(\$\{_(\w+)\}\s+PROPERTIES\s+COMPILE_OPTIONS\s+"([^"]*)"\)', text):
        out = []
        for o in opts.split(";"):
            m = re.match(r"\$<\$<CXX_COMPILER_ID:GNU>:(.*)>$", o)
            if m:
                o = m.group(1)
            if o and not o.startswith("$<"):
                out.append(o)
        flags[group] = out
    return flags


def compile_file(arch, path, flags, outdir, opt):
    """GCC to assembly (-S), and that assembly to an object (the object gcc -c would write)."""
    base = os.path.join(outdir, os.path.basename(path))
    common = [arch["cxx"], opt, "-std=gnu++17", "-ffp-contract=off"] + arch["defines"] + [
        "-I" + os.path.join(ROOT, "csrc", "include"), "-I" + os.path.join(ROOT, "csrc")] + flags
    subprocess.run(common + ["-S", "-o", base + ".s", path], check=True)
    subprocess.run([arch["cxx"], "-c", "-o", base + ".o", base + ".s"], check=True)
    return base + ".s", base + ".o"


def mnemonic(ins):
    ins = re.sub(r"^\{\w+\}\s*", "", ins.strip())  # {vex} prefix
    return ins.split()[0] if ins else ""


def innermost_loops(items, is_label, target_of):
    """items: [(key, text)] in order; loops = spans from a label to a later jump back to it."""
    pos = {}
    loops = []
    for i, (key, text) in enumerate(items):
        lab = is_label(key, text)
        if lab is not None:
            pos[lab] = i
        tgt = target_of(text)
        if tgt is not None and tgt in pos:
            loops.append((pos[tgt], i))
    return [(s, e) for (s, e) in loops
            if not any((s2, e2) != (s, e) and s <= s2 and e2 <= e for (s2, e2) in loops)]


def matches(body, count):
    m = [mnemonic(x) for x in body]
    return all(sum(x == k for x in m) == n for k, n in count.items())


# AArch64 branches that can close a loop (conditional and unconditional; not bl/br/ret)
ARM_BRANCH = r"(?:b|b\.?(?:eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)|cbn?z|tbn?z)"


def loops_in_asm(path, arch):
    """Innermost loops of a GCC .s file: lists of instruction lines (label to backward jump)."""
    items = []
    for line in open(path):
        if arch["key"] == "x86":
            s = line.split("#")[0].rstrip() if not line.lstrip().startswith("#") else ""
        else:  # AArch64: '#' starts immediates; comments are '//' and the #APP/#NO_APP lines
            s = "" if line.lstrip().startswith(("#", "//")) else line.split("//")[0].rstrip()
        if not s.strip():
            continue
        items.append((s.strip(), s.strip()))

    def is_label(key, text):
        m = re.match(r"^(\.?\w+):$", text)
        return m.group(1) if m else None

    if arch["key"] == "x86":
        jump = r"^j\w+\s+(\.L\w+)$"
    else:
        jump = r"^" + ARM_BRANCH + r"\s+(?:[\w#]+,\s*)*(\.L\w+)$"

    def target_of(text):
        m = re.match(jump, text)
        return m.group(1) if m else None

    # the instructions from the label to the backward jump (directives and labels dropped)
    return [[t for _, t in items[s + 1:e + 1] if not t.startswith(".")]
            for s, e in innermost_loops(items, is_label, target_of)]


def loops_in_object(path, arch):
    """Innermost loops of the object (objdump -d): lists of instruction texts."""
    dis = subprocess.run([arch["objdump"], "-d", "--no-show-raw-insn", path], check=True,
                         capture_output=True, text=True).stdout
    items = []
    for line in dis.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s*(.*\S)", line)
        if m:
            text = m.group(2)
            if arch["key"] != "x86":  # objdump's '// #0', '// b.any' remarks
                text = re.sub(r"\s*//.*$", "", text)
            items.append((int(m.group(1), 16), text))

    def is_label(key, text):
        return key

    if arch["key"] == "x86":
        jump = r"^j\w+\s+([0-9a-f]+)\s"
    else:
        jump = r"^" + ARM_BRANCH + r"\s+(?:[\w#]+,\s*)*([0-9a-f]+)\s+<"

    def target_of(text):
        m = re.match(jump, text)
        return int(m.group(1), 16) if m else None

    out = []
    for s, e in innermost_loops(items, is_label, target_of):
        out.append([t for _, t in items[s:e + 1]])
    return out


def same_loops(loops, normal):
    """Identical loops (a tile instantiated once per output kind) grouped: [(first index, count)]."""
    seen = {}
    for i, b in enumerate(loops):
        key = "\n".join(normal(x) for x in b)
        if key in seen:
            seen[key][1] += 1
        else:
            seen[key] = [i, 1]
    return [tuple(v) for v in seen.values()]


ARM_VREG = r"(?:v\d+(?:\.\w+)?(?:\[\d+\])?|[bhsdq]\d+)"


def check_object_loop(body, arch, joins_expected=0):
    """(vector register copies, stack references, intended joins) inside the loop."""
    if arch["key"] == "x86":
        copies = sum(bool(re.match(r"(\{\w+\}\s*)?vmov\w*\s+%[xyz]mm\d+,\s*%[xyz]mm\d+$", x))
                     for x in body)
        stack = sum(("(%rsp" in x or "(%rbp" in x) for x in body)
        return copies, stack, 0
    copies = joins = stack = 0
    for x in body:
        m = mnemonic(x)
        ops = [o.strip() for o in x.strip()[len(m):].split(",")]
        if "[sp" in x or "[x29" in x:
            stack += 1
        if m in ("mov", "ins") and len(ops) == 2 and re.match(r"v\d+\.d\[1\]$", ops[0]) \
                and re.match(r"v\d+\.d\[0\]$", ops[1]):
            joins += 1  # the high half of one register from the low half of another
        elif m in ("mov", "ins", "dup", "umov", "smov", "fmov") and \
                any(re.match(ARM_VREG + "$", o) for o in ops) and not ops[-1].startswith("#"):
            copies += 1  # mov vA.16b, vB.16b (= orr), element moves, to or from x/w registers
        elif m == "orr" and len(ops) == 3 and re.match(ARM_VREG + "$", ops[1]) and ops[1] == ops[2]:
            copies += 1
    if joins > joins_expected:  # more than the kernel means to have: copies like any other
        copies += joins - joins_expected
        joins = joins_expected
    return copies, stack, joins


def memory_operands(body, arch):
    if arch["key"] == "x86":
        return sum(bool(re.search(r"\(%r\w+", x)) and not mnemonic(x).startswith("lea") for x in body)
    return sum(bool(re.search(r"\[(?:x\d+|sp)\b", x)) for x in body)  # not v6.4b[0]


def fmt(x, nd=2):
    return ("%." + str(nd) + "f") % x


def run_mca(mca, cpu, body, iterations, mca_args=(), mul=DOT, show=()):
    src = "\n".join(body) + "\n"
    r = subprocess.run([mca] + list(mca_args) + ["-mcpu=" + cpu, "-iterations=%d" % iterations,
                                                 "-bottleneck-analysis"],
                       input=src, capture_output=True, text=True)
    if r.returncode != 0:
        return dict(error=(r.stderr.strip().splitlines() or ["llvm-mca failed"])[0])
    out = r.stdout
    get = lambda pat: float(re.search(pat, out).group(1))
    res = dict(cycles=get(r"Total Cycles:\s+(\d+)"), iters=get(r"Iterations:\s+(\d+)"),
               rthroughput=get(r"Block RThroughput:\s+([\d.]+)"), ipc=get(r"IPC:\s+([\d.]+)"),
               raw=out)
    # the model's reciprocal throughput of each multiply instruction (Instruction Info table:
    # "uOps  Latency  RThroughput  [flags]  mnemonic operands"), and their sum over the loop's
    # multiply instructions: the cycles an iteration takes if only the multiplies limit it
    rtp = {}
    res["mul_cycles"] = 0.0
    for m in re.finditer(r"^\s*\d+\s+(\d+)\s+([\d.]+)\s+[*U ]*\s(?:\{\w+\}\s*)?(\w+)\s", out, re.M):
        if m.group(3) in mul or m.group(3) in show:
            rtp.setdefault(m.group(3), set()).add((int(m.group(1)), float(m.group(2))))
        if m.group(3) in mul:
            res["mul_cycles"] += float(m.group(2))
    res["dot_model"] = "; ".join("%s lat %s, %s c" % (k, "/".join(str(l) for l in sorted({x[0] for x in v})),
                                                       "/".join(fmt(t) for t in sorted({x[1] for x in v})))
                                 for k, v in sorted(rtp.items()))
    # resource pressure per iteration, with the names of the resources
    names = dict(re.findall(r"^\[([\d.]+)\]\s+- (\S+)", out, re.M))
    res["resources"] = sorted(set(names.values()))
    m = re.search(r"Resource pressure per iteration:\n(.*)\n(.*)\n", out)
    ports = []
    if m:
        for idx, val in zip(re.findall(r"\[([\d.]+)\]", m.group(1)), m.group(2).split()):
            if val != "-" and float(val) > 0:
                ports.append("%s %s" % (names.get(idx, idx), val))
    res["ports"] = ", ".join(ports)
    # bottleneck analysis: "  - SPRPort00  [ 92.84% ]", "  - Register Dependencies [ 5.79% ]"
    hints = re.findall(r"^\s+- ([\w ]+?)\s*\[ ([\d.]+)% \]", out, re.M)
    res["limits"] = ", ".join("%s %.0f%%" % (k, float(v)) for k, v in hints if float(v) >= 5.0)
    if not res["limits"] and "No resource or data dependency bottlenecks" in out:
        # nothing flagged: say what dispatch alone needs (micro-ops per iteration / width)
        uops, width = get(r"Total uOps:\s+(\d+)") / res["iters"], get(r"Dispatch Width:\s+(\d+)")
        res["limits"] = "none flagged; dispatch %g micro-ops / %g a cycle = %s c" % (
            round(uops, 2), width, fmt(uops / width))
    return res


def analyse(arch, args, flags, tmp):
    """Compile, find, check and run llvm-mca on each loop of arch["loops"]: (rows, details)."""
    compiled = {}
    rows, details = [], []
    outdir = os.path.join(tmp, arch["key"])
    os.makedirs(outdir, exist_ok=True)
    normal = lambda x: re.sub(r"[0-9a-f]+ <[^>]*>", "<target>", x)
    for spec in arch["loops"]:
        path = os.path.join(ROOT, "csrc", "kernels", arch["dir"], spec["file"])
        file_flags = flags.get(spec["group"], [])
        if spec["file"] not in compiled:  # one compiler at a time
            compiled[spec["file"]] = compile_file(arch, path, file_flags, outdir, arch["opt"])
            # the Release build's level too, for the objdump check
            if arch["opt"] == "-O3":
                compiled[spec["file"] + " release"] = compiled[spec["file"]]
            else:
                sub = os.path.join(outdir, "release")
                os.makedirs(sub, exist_ok=True)
                compiled[spec["file"] + " release"] = compile_file(arch, path, file_flags, sub, "-O3")
        s_path, o_path = compiled[spec["file"]]
        joins = spec.get("joins", 0)
        release = [b for b in loops_in_object(compiled[spec["file"] + " release"][1], arch)
                   if matches(b, spec["count"])]
        asm_loops = [b for b in loops_in_asm(s_path, arch) if matches(b, spec["count"])]
        obj_loops = [b for b in loops_in_object(o_path, arch) if matches(b, spec["count"])]
        if not asm_loops or len(asm_loops) != len(obj_loops):
            rows.append((spec, None, None, "loop not found (counts %s)" % spec["count"]))
            continue
        # Identical loops (the tile instantiated once per output kind) are listed once, with
        # their number. Several different matches (a tail loop after an unrolled one): llvm-mca
        # on the shortest, the objdump check on each.
        groups = same_loops(obj_loops, normal)
        pick = min((i for i, _ in groups), key=lambda i: len(asm_loops[i]))
        body = asm_loops[pick]
        checks = [(i, n, (len(obj_loops[i]),) + check_object_loop(obj_loops[i], arch, joins))
                  for i, n in groups]
        checks_release = [(len(b),) + check_object_loop(b, arch, joins)[:2] for b in release]
        ndot = sum(mnemonic(x) in arch["mul"] for x in body)
        per = []
        for model in spec["models"]:
            if model in spec.get("absent", {}):
                per.append((model, dict(skip=spec["absent"][model])))
            else:
                per.append((model, run_mca(args.mca, model.rstrip("*~"), body, args.iterations,
                                           arch["mca_args"], arch["mul"], spec.get("show", ()))))
        rows.append((spec, dict(n=len(body), ndot=ndot, loads=memory_operands(body, arch),
                                checks=checks, pick=pick, checks_release=checks_release), per, None))
        details.append((spec, obj_loops[pick], per))
    return rows, details


def mca_table(w, arch, rows):
    w("| loop | model | cycles / iteration | cycles / k-step | multiply insns / k-step | % peak | "
      "MAC / cycle | the model's multiply instructions (latency, cycles each) | llvm-mca bottleneck |")
    w("|---|---|---:|---:|---:|---:|---:|---|---|")
    for spec, info, per, err in rows:
        if err:
            w("| %s | - | %s | | | | | | |" % (spec["name"], err))
            continue
        for model, res in per:
            if "skip" in res:
                w("| %s | %s | not run: %s | | | | | | |" % (spec["name"], model, res["skip"]))
                continue
            if "error" in res:
                w("| %s | %s | llvm-mca: %s | | | | | | |" % (spec["name"], model, res["error"]))
                continue
            cyc = res["cycles"] / res["iters"]
            per_k = cyc / spec["ksteps"]
            dot_k = info["ndot"] / spec["ksteps"]
            if arch.get("peak_per_cycle"):
                pct = 100.0 * (dot_k / arch["peak_per_cycle"]) / per_k
                dot_model = res["dot_model"]
            else:  # the model's own issue rate of the multiply instructions
                pct = 100.0 * res["mul_cycles"] / cyc
                dot_model = "%s; peak %s MAC/cycle" % (res["dot_model"],
                                                       fmt(spec["macs"] / res["mul_cycles"], 0))
            w("| %s | %s | %s | %s | %g | %s%% | %s | %s | %s |" % (
                spec["name"], model, fmt(cyc), fmt(per_k), dot_k, fmt(pct, 0), fmt(spec["macs"] / cyc, 1),
                dot_model, res["limits"] or "-"))


def objdump_table(w, arch, rows):
    w("| loop | instructions | multiply | memory operands | vector register copies | stack references |"
      " at -O3 (Release build): instructions, copies, stack references |")
    w("|---|---:|---:|---:|---:|---:|---|")
    for spec, info, per, err in rows:
        if err:
            continue
        order = sorted(info["checks"], key=lambda c: c[0] != info["pick"])
        for n, (i, same, (size, copies, stack, joins)) in enumerate(order):
            label = spec["name"] if n == 0 else spec["name"] + " (other loop)"
            if same > 1:
                label += " (x%d)" % same
            rel = "; ".join("%d, %d, %d" % c for c in sorted(info["checks_release"])) if n == 0 else ""
            cp = "%d" % copies
            if spec.get("joins"):
                cp += " (+ %d `mov vX.d[1], vY.d[0]` row-pair joins, intended%s)" % (
                    joins, "" if joins == spec["joins"] else "; %d expected" % spec["joins"])
            w("| %s | %d | %s | %s | %s | %d | %s |" % (label, size, info["ndot"] if n == 0 else "",
                                                      info["loads"] if n == 0 else "", cp, stack,
                                                      rel))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cxx", default=os.environ.get("CXX", "g++"))
    ap.add_argument("--mca", default="llvm-mca-22")
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--opt", default="-O2", help="x86 optimisation level (CMake's Release build: -O3)")
    ap.add_argument("--arm-cxx", default="aarch64-linux-gnu-g++")
    ap.add_argument("--arm-objdump", default="aarch64-linux-gnu-objdump")
    ap.add_argument("--arm-opt", default="-O3", help="AArch64 optimisation level")
    ap.add_argument("--arch", choices=("all", "x86", "arm"), default="all")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "gemm-mca.md"))
    args = ap.parse_args()
    archs = []
    if args.arch in ("all", "x86"):
        archs.append(dict(key="x86", title="x86", dir="x86", cxx=args.cxx, objdump="objdump",
                          opt=args.opt, defines=["-DNDEBUG", "-DLOWBIT_HAVE_X86=1"], mca_args=[],
                          loops=LOOPS, mul=DOT, peak_per_cycle=PEAK_PER_CYCLE, notes=NOTES))
    if args.arch in ("all", "arm"):
        archs.append(dict(key="arm", title="AArch64", dir="arm", cxx=args.arm_cxx,
                          objdump=args.arm_objdump, opt=args.arm_opt,
                          defines=["-DLOWBIT_HAVE_ARM64=1"], mca_args=["-mtriple=aarch64-linux-gnu"],
                          loops=ARM_LOOPS, mul=ARM_MUL, notes=ARM_NOTES))
    for tool in [args.mca] + [t for a in archs for t in (a["cxx"], a["objdump"])]:
        if not shutil.which(tool):
            sys.exit("missing %s (Debian: g++, llvm-22, binutils; for AArch64 g++-aarch64-linux-gnu "
                     "and binutils-aarch64-linux-gnu, or --arch x86)" % tool)
    for a in archs:
        a["cxx_version"] = subprocess.run([a["cxx"], "--version"], capture_output=True,
                                          text=True).stdout.splitlines()[0]
    mca_version = next((l.strip() for l in subprocess.run([args.mca, "--version"], capture_output=True,
                                                          text=True).stdout.splitlines()
                        if "version" in l.lower()), args.mca)
    flags = cmake_flags()
    tmp = tempfile.mkdtemp(prefix="lowbit-mca-")
    results = [(a,) + analyse(a, args, flags, tmp) for a in archs]
    for arch, rows, details in results:  # the cortex-a76 note holds only for LLVM's A57 model
        used = {r for _, _, per, _ in rows for model, res in (per or [])
                if model.startswith("cortex-a76") for r in res.get("resources", [])}
        if used and not all(r.startswith("A57") for r in used):
            arch["notes"] = ["`~` cortex-a76: LLVM's cortex-a76 model is approximate (resources: "
                             "%s)." % ", ".join(sorted(used))] + arch["notes"][1:]

    lines = []
    w = lines.append
    w("# GEMM inner loops under llvm-mca")
    w("")
    w("Generated by `python3 bench/mca_report.py` (%s, %s). Each kernel file is compiled with "
      "its flags from cmake/kernels.cmake; the inner loop of each full tile is taken from the "
      "assembly (the innermost loop with the listed multiply instructions) and given to llvm-mca "
      "(%d iterations). The same loop in the object file is checked with objdump for vector "
      "register copies and stack references. One table per architecture: %s." % (
          datetime.date.today().isoformat(), mca_version, args.iterations,
          ", ".join(a["title"] for a in archs)))
    w("")
    for arch, rows, details in results:
        w("## %s" % arch["title"])
        w("")
        if arch["key"] == "x86":
            w("Compiled with %s at `%s`. A k-step is one k-group of 4 (each row's 4 A bytes against "
              "the tile's columns). Peak: 2 multiply instructions (vpdpbusd; vpmaddubsw or vpmaddwd "
              "on AVX2) issued per cycle, the dot-product ports of all these cores; `%% peak` = "
              "(multiply instructions per k-step / 2) / (cycles per k-step). MAC/cycle counts int8 "
              "multiply-adds (zmm vpdpbusd: 64 each, so 128 per cycle at peak; ymm: 64 per cycle)."
              % (arch["cxx_version"], arch["opt"]))
            w("")
            w("`*` znver4: llvm-mca's model gives register vpdpbusd a throughput of one per 2 cycles "
              "(Zen 4/5 issue 2 per cycle; measured on Zen 5), so its cycles are not an estimate; the "
              "rows are there for register and load pressure only.")
        else:
            fl = lambda g: " ".join(flags.get(g, [])) or "nothing"
            w("Cross-compiled with %s: `%s %s -std=gnu++17 -ffp-contract=off -I csrc/include "
              "-I csrc %s`, plus each file's flags from cmake/kernels.cmake (gemm__neondot.cc `%s`, "
              "gemm__i8mm.cc `%s`, gemm__neon.cc %s); llvm-mca `%s -mcpu=<model>`."
              % (arch["cxx_version"], os.path.basename(arch["cxx"]), arch["opt"],
                 " ".join(arch["defines"]), fl("neondot"), fl("i8mm"),
                 "`%s`" % fl("neon") if flags.get("neon") else "nothing more",
                 " ".join(arch["mca_args"])))
            w("")
            w("An iteration is the kernel's step: 8 k for the neondot (two k-groups of 4) and i8mm "
              "(one k-group of 8) 8x12 tiles, 16 k for the plain NEON 4x4 tile. A k-step is 4 k, as "
              "in the x86 table, so an iteration is 2 or 4 k-steps. MAC/cycle counts int8 "
              "multiply-adds: sdot 16 each (4 lanes x 4 bytes), usmmla 32 (a 2x8 by 8x2 block), "
              "smull / smull2 8 (the sadalp adding their products into the accumulators is not a "
              "multiply).")
            w("")
            w("Peak: the multiply instructions (sdot, usmmla, smull + smull2) the core issues per "
              "cycle as llvm-mca's model states it, that is 1 / the RThroughput of its Instruction "
              "Info (the cycles-each column: 0.50 = 2 a cycle, 0.25 = 4); `% peak` = (sum of the "
              "loop's multiply instructions' RThroughput) / (cycles per iteration), and the column "
              "gives the peak MAC/cycle that makes. The peak is the model's, not the core's "
              "documentation: where the two differ the row says what llvm-mca's model would do.")
        w("")
        mca_table(w, arch, rows)
        w("")
        for note in arch["notes"]:
            w("- " + note)
        w("")
    w("## The compiled loops (GCC, objdump)")
    w("")
    w("Vector register-to-register copies and stack references inside each loop: none means "
      "every accumulator stays in its register across the whole depth. Where two loops match "
      "(a single-step tail loop after a two-step one), both are listed; llvm-mca analysed the "
      "first listed. The last column checks the same loops (all matches) as the Release build "
      "(-O3) compiles them.")
    for arch, rows, details in results:
        w("")
        if arch["key"] == "x86":
            w("x86 (objdump):")
        else:
            w("AArch64 (%s; %s the last column lists all its matches: the tiles are instantiated "
              "once per output kind, int32, float and requantized int8, and `(xN)` says N identical "
              "loops were found). Copies are `mov` / "
              "`orr` / `ins` / `dup` / `fmov` / `umov` involving a vector register; stack "
              "references are `[sp` or `[x29` operands. The i8mm kernel joins each row pair's two "
              "8-byte loads into usmmla's 2x8 operand with `mov vX.d[1], vY.d[0]` (ins), one per "
              "row pair by design; those are counted apart:" % (
                  os.path.basename(arch["objdump"]),
                  "the loops above are already the -O3 build, so" if arch["opt"] == "-O3"
                  else "the loops above are the `%s` build;" % arch["opt"]))
        w("")
        objdump_table(w, arch, rows)
    w("")
    for arch, rows, details in results:
        for spec, obj_body, per in details:
            w("### %s" % spec["name"])
            w("")
            own = " ".join(flags.get(spec["group"], []))
            w("`csrc/kernels/%s/%s`, %s:" % (arch["dir"], spec["file"],
                                            "flags `%s`" % own if own else "no flags of its own"))
            w("")
            w("```")
            w("\n".join(obj_body))
            w("```")
            w("")
            w("Resource pressure per iteration (the ports used, in cycles per loop iteration):")
            w("")
            for model, res in per:
                if "error" not in res and "skip" not in res and res["ports"]:
                    w("- %s: %s" % (model, res["ports"]))
            w("")
    text = "\n".join(lines) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        open(args.out, "w").write(text)
        print("wrote", os.path.relpath(args.out, ROOT))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
