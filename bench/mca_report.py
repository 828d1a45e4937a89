#!/usr/bin/env python3
"""Static evidence for the x86 GEMM micro-kernels on CPUs this machine may not have.

For each kernel file (csrc/kernels/x86/gemm__*.cc) this script
  1. compiles it with GCC and the file's own flags (read from cmake/kernels.cmake), to assembly
     (-S) and to an object (-c);
  2. finds the inner loop of each full tile (the innermost loop with the expected count of
     multiply instructions, see LOOPS below);
  3. checks the object's loop with objdump: vector register-to-register copies and stack
     references inside the loop (there should be none: the accumulators stay in registers);
  4. runs llvm-mca (llvm-mca-22 by default; Debian package llvm-22) on the loop body for each CPU
     model, and reports cycles per k-step and the share of the dot-product peak: 2 multiply
     instructions (vpdpbusd, or vpmaddubsw / vpmaddwd for AVX2) issued per cycle;
  5. writes docs/gemm-mca.md.

  python3 bench/mca_report.py                 # writes docs/gemm-mca.md
  python3 bench/mca_report.py --out -         # to stdout
  python3 bench/mca_report.py --mca llvm-mca-22 --cxx g++ --iterations 1000 --opt=-O3

llvm-mca models the core only (L1 hits, no front-end limits beyond dispatch width): the figures
are upper bounds for loops whose operands stay in L1, as the micro-kernels' do. Its znver4 model
gives register vpdpbusd a throughput of one per 2 cycles where Zen 4/5 issue 2 per cycle
(measured on Zen 5: 0.5 cycles), so znver4 rows are listed for register and load pressure only.
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


def compile_file(cxx, opt, path, flags, outdir):
    base = os.path.join(outdir, os.path.basename(path))
    common = [cxx, opt, "-std=gnu++17", "-ffp-contract=off", "-DNDEBUG", "-DLOWBIT_HAVE_X86=1",
              "-I" + os.path.join(ROOT, "csrc", "include"), "-I" + os.path.join(ROOT, "csrc")] + flags
    subprocess.run(common + ["-S", "-o", base + ".s", path], check=True)
    subprocess.run(common + ["-c", "-o", base + ".o", path], check=True)
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


def loops_in_asm(path):
    """Innermost loops of a GCC .s file: lists of instruction lines (label to backward jump)."""
    items = []
    for line in open(path):
        s = line.split("#")[0].rstrip() if not line.lstrip().startswith("#") else ""
        if not s.strip():
            continue
        items.append((s.strip(), s.strip()))

    def is_label(key, text):
        m = re.match(r"^(\.?\w+):$", text)
        return m.group(1) if m else None

    def target_of(text):
        m = re.match(r"^j\w+\s+(\.L\w+)$", text)
        return m.group(1) if m else None

    # the instructions from the label to the backward jump (directives and labels dropped)
    return [[t for _, t in items[s + 1:e + 1] if not t.startswith(".")]
            for s, e in innermost_loops(items, is_label, target_of)]


def loops_in_object(path):
    """Innermost loops of the object (objdump -d): lists of instruction texts."""
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], check=True,
                         capture_output=True, text=True).stdout
    items = []
    for line in dis.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s*(.*\S)", line)
        if m:
            items.append((int(m.group(1), 16), m.group(2)))
    addrs = {a: i for i, (a, _) in enumerate(items)}

    def is_label(key, text):
        return key

    def target_of(text):
        m = re.match(r"^j\w+\s+([0-9a-f]+)\s", text)
        return int(m.group(1), 16) if m else None

    out = []
    for s, e in innermost_loops(items, is_label, target_of):
        out.append([t for _, t in items[s:e + 1]])
    return out


def check_object_loop(body):
    """(vector register copies, stack references) inside the loop."""
    copies = sum(bool(re.match(r"(\{\w+\}\s*)?vmov\w*\s+%[xyz]mm\d+,\s*%[xyz]mm\d+$", x)) for x in body)
    stack = sum(("(%rsp" in x or "(%rbp" in x) for x in body)
    return copies, stack


def fmt(x, nd=2):
    return ("%." + str(nd) + "f") % x


def run_mca(mca, cpu, body, iterations):
    src = "\n".join(body) + "\n"
    r = subprocess.run([mca, "-mcpu=" + cpu, "-iterations=%d" % iterations, "-bottleneck-analysis"],
                       input=src, capture_output=True, text=True)
    if r.returncode != 0:
        return dict(error=(r.stderr.strip().splitlines() or ["llvm-mca failed"])[0])
    out = r.stdout
    get = lambda pat: float(re.search(pat, out).group(1))
    res = dict(cycles=get(r"Total Cycles:\s+(\d+)"), iters=get(r"Iterations:\s+(\d+)"),
               rthroughput=get(r"Block RThroughput:\s+([\d.]+)"), ipc=get(r"IPC:\s+([\d.]+)"),
               raw=out)
    # the model's reciprocal throughput of each multiply instruction (Instruction Info table:
    # "uOps  Latency  RThroughput  [flags]  mnemonic operands")
    rtp = {}
    for m in re.finditer(r"^\s*\d+\s+(\d+)\s+([\d.]+)\s+[*U ]*\s(?:\{\w+\}\s*)?(\w+)\s", out, re.M):
        if m.group(3) in DOT:
            rtp.setdefault(m.group(3), set()).add((int(m.group(1)), float(m.group(2))))
    res["dot_model"] = "; ".join("%s lat %s, %s c" % (k, "/".join(str(l) for l in sorted({x[0] for x in v})),
                                                       "/".join(fmt(t) for t in sorted({x[1] for x in v})))
                                 for k, v in sorted(rtp.items()))
    # resource pressure per iteration, with the names of the resources
    names = dict(re.findall(r"^\[([\d.]+)\]\s+- (\S+)", out, re.M))
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
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cxx", default=os.environ.get("CXX", "g++"))
    ap.add_argument("--mca", default="llvm-mca-22")
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--opt", default="-O2", help="optimisation level (CMake's Release build: -O3)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "gemm-mca.md"))
    args = ap.parse_args()
    for tool in (args.cxx, args.mca, "objdump"):
        if not shutil.which(tool):
            sys.exit("missing %s (Debian: g++, llvm-22, binutils)" % tool)
    cxx_version = subprocess.run([args.cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    mca_version = next((l.strip() for l in subprocess.run([args.mca, "--version"], capture_output=True,
                                                          text=True).stdout.splitlines()
                        if "version" in l.lower()), args.mca)
    flags = cmake_flags()
    tmp = tempfile.mkdtemp(prefix="lowbit-mca-")
    compiled = {}
    rows, details = [], []
    for spec in LOOPS:
        path = os.path.join(ROOT, "csrc", "kernels", "x86", spec["file"])
        if spec["file"] not in compiled:
            compiled[spec["file"]] = compile_file(args.cxx, args.opt, path, flags[spec["group"]], tmp)
            # the Release build's level too, for the objdump check
            sub = os.path.join(tmp, "release")
            os.makedirs(sub, exist_ok=True)
            compiled[spec["file"] + " release"] = compile_file(args.cxx, "-O3", path,
                                                               flags[spec["group"]], sub)
        s_path, o_path = compiled[spec["file"]]
        release = [b for b in loops_in_object(compiled[spec["file"] + " release"][1])
                   if matches(b, spec["count"])]
        asm_loops = [b for b in loops_in_asm(s_path) if matches(b, spec["count"])]
        obj_loops = [b for b in loops_in_object(o_path) if matches(b, spec["count"])]
        if not asm_loops or len(asm_loops) != len(obj_loops):
            rows.append((spec, None, None, "loop not found (counts %s)" % spec["count"]))
            continue
        # Several matches (a tail loop after an unrolled one): llvm-mca on the shortest, the
        # objdump check on each.
        pick = min(range(len(asm_loops)), key=lambda i: len(asm_loops[i]))
        body = asm_loops[pick]
        checks = [(len(b),) + check_object_loop(b) for b in obj_loops]
        checks_release = [(len(b),) + check_object_loop(b) for b in release]
        ndot = sum(mnemonic(x) in DOT for x in body)
        loads = sum(bool(re.search(r"\(%r\w+", x)) and not mnemonic(x).startswith("lea") for x in body)
        per = [(model, run_mca(args.mca, model.rstrip("*"), body, args.iterations))
               for model in spec["models"]]
        rows.append((spec, dict(n=len(body), ndot=ndot, loads=loads, checks=checks, pick=pick,
                                checks_release=checks_release), per, None))
        details.append((spec, obj_loops[pick], per))

    lines = []
    w = lines.append
    w("# x86 GEMM inner loops under llvm-mca")
    w("")
    w("Generated by `python3 bench/mca_report.py` (%s, %s, %s). Each kernel file is compiled with "
      "its flags from cmake/kernels.cmake (`%s`); the inner loop of each full tile is taken from "
      "the assembly (the innermost loop with the listed multiply instructions) and given to "
      "llvm-mca (%d iterations). The same loop in the object file is checked with objdump for "
      "vector register copies and stack references." % (datetime.date.today().isoformat(),
                                                         cxx_version, mca_version, args.opt,
                                                         args.iterations))
    w("")
    w("A k-step is one k-group of 4 (each row's 4 A bytes against the tile's columns). Peak: 2 "
      "multiply instructions (vpdpbusd; vpmaddubsw or vpmaddwd on AVX2) issued per cycle, the "
      "dot-product ports of all these cores; `% peak` = (multiply instructions per k-step / 2) / "
      "(cycles per k-step). MAC/cycle counts int8 multiply-adds (zmm vpdpbusd: 64 each, so 128 "
      "per cycle at peak; ymm: 64 per cycle).")
    w("")
    w("`*` znver4: llvm-mca's model gives register vpdpbusd a throughput of one per 2 cycles "
      "(Zen 4/5 issue 2 per cycle; measured on Zen 5), so its cycles are not an estimate; the rows "
      "are there for register and load pressure only.")
    w("")
    w("| loop | model | cycles / iteration | cycles / k-step | multiply insns / k-step | % peak | "
      "MAC / cycle | the model's multiply instructions (latency, cycles each) | llvm-mca bottleneck |")
    w("|---|---|---:|---:|---:|---:|---:|---|---|")
    for spec, info, per, err in rows:
        if err:
            w("| %s | - | %s | | | | | | |" % (spec["name"], err))
            continue
        for model, res in per:
            if "error" in res:
                w("| %s | %s | llvm-mca: %s | | | | | | |" % (spec["name"], model, res["error"]))
                continue
            cyc = res["cycles"] / res["iters"]
            per_k = cyc / spec["ksteps"]
            dot_k = info["ndot"] / spec["ksteps"]
            pct = 100.0 * (dot_k / PEAK_PER_CYCLE) / per_k
            w("| %s | %s | %s | %s | %g | %s%% | %s | %s | %s |" % (
                spec["name"], model, fmt(cyc), fmt(per_k), dot_k, fmt(pct, 0), fmt(spec["macs"] / cyc, 1),
                res["dot_model"], res["limits"] or "-"))
    w("")
    for note in NOTES:
        w("- " + note)
    w("")
    w("## The compiled loops (GCC, objdump)")
    w("")
    w("Vector register-to-register copies and stack references inside each loop: none means "
      "every accumulator stays in its register across the whole depth. Where two loops match "
      "(a single-step tail loop after a two-step one), both are listed; llvm-mca analysed the "
      "first listed. The last column checks the same loops (all matches) as the Release build "
      "(-O3) compiles them.")
    w("")
    w("| loop | instructions | multiply | memory operands | vector register copies | stack references |"
      " at -O3 (Release build): instructions, copies, stack references |")
    w("|---|---:|---:|---:|---:|---:|---|")
    for spec, info, per, err in rows:
        if err:
            continue
        order = [info["pick"]] + [i for i in range(len(info["checks"])) if i != info["pick"]]
        for n, i in enumerate(order):
            size, copies, stack = info["checks"][i]
            label = spec["name"] if n == 0 else spec["name"] + " (other loop)"
            rel = "; ".join("%d, %d, %d" % c for c in sorted(info["checks_release"])) if n == 0 else ""
            w("| %s | %d | %s | %s | %d | %d | %s |" % (label, size, info["ndot"] if n == 0 else "",
                                                      info["loads"] if n == 0 else "", copies, stack,
                                                      rel))
    w("")
    for spec, obj_body, per in details:
        w("### %s" % spec["name"])
        w("")
        w("`csrc/kernels/x86/%s`, flags `%s`:" % (spec["file"], " ".join(flags[spec["group"]])))
        w("")
        w("```")
        w("\n".join(obj_body))
        w("```")
        w("")
        w("Resource pressure per iteration (the ports used, in cycles per loop iteration):")
        w("")
        for model, res in per:
            if "error" not in res and res["ports"]:
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
