// Bindings of the peak-throughput loops (csrc/kernels/peak.h) behind `lowbit bench peak`: the
// table of loops (name, kernel set, instruction, operations per trip, CPU features needed) and
// a runner. Only loops whose features this CPU has (cpu_features()) are listed or run.
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <vector>

#include "arrays.h"
#include "kernels/peak.h"
#include "lowbit/runtime.h"

namespace lowbit {
namespace {

struct PeakLoop {
  const char* name;         // as in `lowbit bench peak`
  const char* isa;          // the kernel set (dispatch.cc) whose GEMM is built from it
  const char* kind;         // "int8": exact u8 x s8 (or s8 x s8) products into int32;
                            // "int8_narrow": exact only when both operands fit 7 bits; "fp32"
  const char* instruction;  // what one step issues
  double ops;               // operations per trip: 2 x multiply-accumulates
  kernels::peak_fn run;
  std::vector<const char*> needs;  // cpu_features() entries
};

const std::vector<PeakLoop>& all_loops() {
  static const std::vector<PeakLoop> loops = {
#if defined(LOWBIT_HAVE_X86)
      {"avx2_maddubs", "avx2", "int8", "vpmaddubsw + vpmaddwd(1) + vpaddd ymm", 2.0 * 12 * 32,
       kernels::peak_u8s8_maddubs__avx2, {"avx2", "fma"}},
      {"avx2_maddubs2", "avx2", "int8_narrow",
       "2 vpmaddubsw + vpaddw + vpmaddwd(1) + vpaddd ymm", 2.0 * 12 * 64,
       kernels::peak_u7s7_maddubs2__avx2, {"avx2", "fma"}},
      {"avx2_madd", "avx2", "int8", "vpmaddwd + vpaddd ymm (int16)", 2.0 * 12 * 16,
       kernels::peak_s16_madd__avx2, {"avx2", "fma"}},
      {"avx2_fma", "avx2", "fp32", "vfmadd231ps ymm", 2.0 * 12 * 8, kernels::peak_f32_fma__avx2,
       {"avx2", "fma"}},
      {"avxvnni_dpbusd", "avxvnni", "int8", "vpdpbusd ymm (VEX)", 2.0 * 12 * 32,
       kernels::peak_u8s8_dpbusd__avxvnni, {"avx2", "fma", "avxvnni"}},
      {"avx512_fma", "avx512", "fp32", "vfmadd231ps zmm", 2.0 * 16 * 16,
       kernels::peak_f32_fma__avx512, {"avx512f"}},
      {"avx512vnni_dpbusd", "avx512vnni", "int8", "vpdpbusd zmm", 2.0 * 16 * 64,
       kernels::peak_u8s8_dpbusd__avx512vnni,
       {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vnni"}},
#endif
#if defined(LOWBIT_HAVE_ARM64)
      {"neon_smull", "neon", "int8", "smull/smull2 .8h + sadalp .4s", 2.0 * 16 * 8,
       kernels::peak_s8s8_smull__neon, {"neon"}},
      {"neon_fmla", "neon", "fp32", "fmla .4s", 2.0 * 16 * 4, kernels::peak_f32_fmla__neon,
       {"neon"}},
      {"neondot_sdot", "neondot", "int8", "sdot .4s, .16b, .4b[lane]", 2.0 * 16 * 16,
       kernels::peak_s8s8_sdot__neondot, {"neon", "dotprod"}},
      {"neondot_udot", "neondot", "int8", "udot .4s, .16b, .4b[lane]", 2.0 * 16 * 16,
       kernels::peak_u8u8_udot__neondot, {"neon", "dotprod"}},
      {"i8mm_usmmla", "i8mm", "int8", "usmmla .4s, .16b, .16b", 2.0 * 16 * 32,
       kernels::peak_u8s8_usmmla__i8mm, {"neon", "dotprod", "i8mm"}},
#endif
  };
  return loops;
}

bool runs_here(const PeakLoop& l) {
  const auto& f = cpu_features();
  return std::all_of(l.needs.begin(), l.needs.end(),
                     [&](const char* n) { return std::find(f.begin(), f.end(), n) != f.end(); });
}

const PeakLoop& find_loop(const std::string& name) {
  for (const auto& l : all_loops())
    if (name == l.name) {
      if (!runs_here(l))
        throw py::value_error("peak loop '" + name + "' needs CPU features this CPU lacks");
      return l;
    }
  throw py::value_error("unknown peak loop '" + name + "'");
}

}  // namespace

void register_peak(py::module_& m) {
  m.def(
      "peak_loops",
      [](bool runnable_only) {
        std::vector<std::string> out;
        for (const auto& l : all_loops())
          if (!runnable_only || runs_here(l)) out.emplace_back(l.name);
        return out;
      },
      py::arg("runnable_only") = true,
      "Names of the peak-throughput loops this CPU runs (lowbit bench peak); with "
      "runnable_only=False, every loop this build has");
  m.def(
      "peak_loop_info",
      [](const std::string& name) {
        const PeakLoop& l = find_loop(name);
        py::dict d;
        d["name"] = l.name;
        d["isa"] = l.isa;
        d["kind"] = l.kind;
        d["instruction"] = l.instruction;
        d["ops_per_iteration"] = l.ops;
        return d;
      },
      py::arg("name"), "isa, kind, instruction and ops_per_iteration (1 MAC = 2 ops) of a loop");
  m.def(
      "peak_run",
      [](const std::string& name, uint64_t iterations) {
        const PeakLoop& l = find_loop(name);
        py::gil_scoped_release nogil;
        return l.run(iterations);
      },
      py::arg("name"), py::arg("iterations"),
      "Runs a peak loop for `iterations` trips on the calling thread; returns its checksum");
  m.attr("peak_clock_chain") = kernels::kPeakClockChain;
  m.def(
      "peak_clock",
      [](uint64_t iterations) -> py::object {
        if (!kernels::peak_clock_available()) return py::none();
        uint64_t r;
        {
          py::gil_scoped_release nogil;
          r = kernels::peak_clock__scalar(iterations);
        }
        return py::int_(r);
      },
      py::arg("iterations"),
      "iterations x peak_clock_chain dependent 1-cycle adds (times the clock); None where "
      "not implemented");
}

}  // namespace lowbit
