// The one place that decides which kernels run: what this build compiled, intersected with what
// this CPU supports (cpu.cc), optionally narrowed by LOWBIT_ISA. Never widened.
#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "lowbit/runtime.h"

namespace lowbit {
namespace {

#define LOWBIT_QUANT_ENTRIES(isa)                                                              \
  kernels::f32_f32_minmax__##isa, kernels::f32_f32_cminmax__##isa,                            \
      kernels::f32_q8_quantize__##isa, kernels::f32_q8_cquantize__##isa,                       \
      kernels::qs8_f32_dequantize__##isa, kernels::qu8_f32_dequantize__##isa,                  \
      kernels::qs8_f32_cdequantize__##isa, kernels::qu8_f32_cdequantize__##isa,                 \
      kernels::s4_s8_unpack__##isa

#define LOWBIT_KMEANS_ENTRIES(isa)                                                             \
  kernels::f32_u32_kmeans_assign__##isa, kernels::f32_code_kmeans1d_assign__##isa

#define LOWBIT_CODEBOOK_ENTRIES(isa)                                                           \
  kernels::u4_f32_lookup__##isa, kernels::u8_f32_lookup__##isa,                               \
      kernels::u16_f32_lookup__##isa, kernels::s8cb4_s64_gemm__##isa,                          \
      kernels::s16s16_s64_gemm__##isa, kernels::s16cb4_s64_gemm__##isa

#define LOWBIT_TRANSFORMER_ENTRIES(isa)                                                        \
  kernels::f32_f32_layernorm__##isa, kernels::f32_f32_gelu__##isa,                             \
      kernels::f32_f32_softmax__##isa, kernels::f32_f32_vecmat__##isa,                         \
      kernels::f32_f32_hadamard__##isa

struct Entry {
  KernelTable table;
  std::vector<const char*> requires_features;
};

// GEMM entries: {kernel, mr, nr, kr, A format}; a set without a gemm7 or gemm4 kernel has kNone.
constexpr GemmKernel kNone = {nullptr, 0, 0, 0, APack::u8};
// The s4 kernels of the sets whose gemm takes panels of 16 columns in k-groups of 4.
constexpr GemmKernel kScalarGemm4 = {kernels::u8s4_epi_gemm__scalar, 4, 16, 4, APack::u8};
#if defined(LOWBIT_HAVE_X86)
constexpr GemmKernel kAvx2Gemm4 = {kernels::u8s4_epi_gemm__avx2, 2, 16, 4, APack::u8};
#endif

const std::vector<Entry>& all_tables() {
  static const std::vector<Entry> tables = {
      {{"scalar", LOWBIT_QUANT_ENTRIES(scalar), {kernels::u8s8_epi_gemm__scalar, 4, 16, 4, APack::u8},
        kNone, kScalarGemm4, kernels::s8q4_f32_gemm__scalar, 4, LOWBIT_KMEANS_ENTRIES(scalar), LOWBIT_CODEBOOK_ENTRIES(scalar), LOWBIT_TRANSFORMER_ENTRIES(scalar)},
       {}},
#if defined(LOWBIT_HAVE_X86)
      {{"avx2", LOWBIT_QUANT_ENTRIES(avx2), {kernels::u8s8_epi_gemm__avx2, 2, 16, 4, APack::s16},
        {kernels::u8s7_epi_gemm__avx2, 6, 16, 4, APack::u8}, kAvx2Gemm4, kernels::s8q4_f32_gemm__avx2, 2, LOWBIT_KMEANS_ENTRIES(avx2),
        LOWBIT_CODEBOOK_ENTRIES(avx2), LOWBIT_TRANSFORMER_ENTRIES(avx2)},
       {"avx2", "fma", "f16c"}},
      {{"avxvnni", LOWBIT_QUANT_ENTRIES(avx2), {kernels::u8s8_epi_gemm__avxvnni, 6, 16, 4, APack::u8},
        kNone, kAvx2Gemm4, kernels::s8q4_f32_gemm__avx2, 2, LOWBIT_KMEANS_ENTRIES(avx2), LOWBIT_CODEBOOK_ENTRIES(avx2), LOWBIT_TRANSFORMER_ENTRIES(avx2)},
       {"avx2", "fma", "f16c", "avxvnni"}},
      {{"avx512", LOWBIT_QUANT_ENTRIES(avx512), {kernels::u8s8_epi_gemm__avx2, 2, 16, 4, APack::s16},
        {kernels::u8s7_epi_gemm__avx2, 6, 16, 4, APack::u8}, kAvx2Gemm4, kernels::s8q4_f32_gemm__avx2, 2, LOWBIT_KMEANS_ENTRIES(avx512),
        LOWBIT_CODEBOOK_ENTRIES(avx512), LOWBIT_TRANSFORMER_ENTRIES(avx2)},
       {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq"}},
      {{"avx512vnni", LOWBIT_QUANT_ENTRIES(avx512),
        {kernels::u8s8_epi_gemm__avx512vnni, 6, 48, 4, APack::u8}, kNone, kNone, kernels::s8q4_f32_gemm__avx2, 2,
        LOWBIT_KMEANS_ENTRIES(avx512), LOWBIT_CODEBOOK_ENTRIES(avx512), LOWBIT_TRANSFORMER_ENTRIES(avx2)},
       {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vnni"}},
#endif
#if defined(LOWBIT_HAVE_ARM64)  // not on 32-bit ARM, which has "scalar" only (cmake/kernels.cmake)
      {{"neon", LOWBIT_QUANT_ENTRIES(neon), {kernels::u8s8_epi_gemm__neon, 4, 4, 16, APack::s8_flipped},
        kNone, kNone, kernels::s8q4_f32_gemm__neon, 2, LOWBIT_KMEANS_ENTRIES(neon), LOWBIT_CODEBOOK_ENTRIES(neon), LOWBIT_TRANSFORMER_ENTRIES(neon)},
       {"neon"}},
      {{"neondot", LOWBIT_QUANT_ENTRIES(neon), {kernels::u8s8_epi_gemm__neondot, 8, 12, 4, APack::s8_flipped},
        kNone, kNone, kernels::s8q4_f32_gemm__neondot, 2, LOWBIT_KMEANS_ENTRIES(neon), LOWBIT_CODEBOOK_ENTRIES(neon), LOWBIT_TRANSFORMER_ENTRIES(neon)},
       {"neon", "dotprod"}},
      {{"i8mm", LOWBIT_QUANT_ENTRIES(neon), {kernels::u8s8_epi_gemm__i8mm, 8, 12, 8, APack::u8},
        kNone, kNone, kernels::s8q4_f32_gemm__neondot, 2, LOWBIT_KMEANS_ENTRIES(neon), LOWBIT_CODEBOOK_ENTRIES(neon), LOWBIT_TRANSFORMER_ENTRIES(neon)},
       {"neon", "dotprod", "i8mm"}},
#endif
  };
  return tables;
}

bool cpu_has(const std::vector<const char*>& needed) {
  const auto& f = cpu_features();
  for (const char* n : needed)
    if (std::find(f.begin(), f.end(), n) == f.end()) return false;
  return true;
}

const KernelTable* initial_table() {
  const KernelTable* best = nullptr;
  for (const auto& e : all_tables())
    if (cpu_has(e.requires_features)) best = &e.table;
  if (const char* env = std::getenv("LOWBIT_ISA")) {
    if (const KernelTable* t = kernel_table(env)) best = t;  // a bad name is reported by Python
  }
  return best;
}

std::atomic<const KernelTable*>& active() {
  static std::atomic<const KernelTable*> table{initial_table()};
  return table;
}

}  // namespace

std::vector<std::string> supported_isas() {
  std::vector<std::string> out;
  for (const auto& e : all_tables())
    if (cpu_has(e.requires_features)) out.push_back(e.table.isa);
  return out;
}

const KernelTable* kernel_table(const std::string& isa) {
  for (const auto& e : all_tables())
    if (isa == e.table.isa && cpu_has(e.requires_features)) return &e.table;
  return nullptr;
}

const KernelTable& active_kernels() { return *active().load(std::memory_order_acquire); }
const char* active_isa() { return active_kernels().isa; }

bool set_isa(const std::string& isa) {
  const KernelTable* t = kernel_table(isa);
  if (!t) return false;
  active().store(t, std::memory_order_release);
  return true;
}

}  // namespace lowbit
