// Peak-throughput loops behind `lowbit bench peak` (python/lowbit/bench/peak.py): the int8
// dot-product and fp32 FMA ceilings of one core, per ISA, to state a GEMM's GOP/s as a share of
// what the core can do.
//
// Every loop runs `iterations` trips of one body: the same multiply(-accumulate) instruction
// sequence into N >= 12 independent accumulators held in registers (latencies are 3-5 cycles,
// so 12 keep two or more pipes busy), operands in registers (avx2_maddubs2 reads one constant
// from L1), no stores. It returns a checksum of the accumulators so the compiler keeps the
// work; the accumulators start at distinct values so no compiler merges equal chains. Sequences
// whose multiplies do not depend on the accumulators (vpmaddubsw, smull) are inline asm: as
// intrinsics their products are loop invariant and would be hoisted; so is vpdpbusd (as an
// intrinsic GCC 12 copies the accumulators between registers every trip). Each file is compiled
// with its ISA's flags (cmake/kernels.cmake); csrc/python/bind_peak.cc lists the loops with
// their operation counts and runs only those whose features the CPU has (cpu_features()).
//
// Check the compiled loops with objdump after changing them (`objdump -d --no-show-raw-insn`
// on build/editable/CMakeFiles/lowbit_core.dir/csrc/kernels/x86/peak__avx2.cc.o, ...).
#pragma once
#include <cstdint>

namespace lowbit {
namespace kernels {

// Runs `iterations` trips of the loop body; returns a checksum of the accumulators.
using peak_fn = uint64_t (*)(uint64_t iterations);

// The multiply-accumulates per trip of each loop are stated below and in bind_peak.cc's table
// (1 MAC = 2 ops); AVX2 loops keep 12 accumulators (16 ymm registers: 12 + the operands), the
// AVX-512 and AArch64 ones 16 (32 vector registers).

// The clock (csrc/kernels/scalar/peak__scalar.cc): each trip is kPeakClockChain dependent
// integer adds (1 cycle latency on every x86-64 and AArch64 core), so cycles = trips *
// kPeakClockChain and GOP/s become ops per cycle. Inline asm for x86-64 and AArch64 only:
// peak_clock_available() is false elsewhere.
constexpr int kPeakClockChain = 32;
bool peak_clock_available();
uint64_t peak_clock__scalar(uint64_t iterations);

#if defined(LOWBIT_HAVE_X86)
// csrc/kernels/x86/peak__avx2.cc, 12 accumulators (ymm):
// vpmaddubsw, vpmaddwd(1), vpaddd: 12 x 32 MACs
uint64_t peak_u8s8_maddubs__avx2(uint64_t iterations);
// 2 vpmaddubsw, vpaddw, vpmaddwd(1), vpaddd: 12 x 64 MACs
uint64_t peak_u7s7_maddubs2__avx2(uint64_t iterations);
// vpmaddwd, vpaddd: 12 x 16 MACs
uint64_t peak_s16_madd__avx2(uint64_t iterations);
// vfmadd231ps ymm: 12 x 8 MACs
uint64_t peak_f32_fma__avx2(uint64_t iterations);
// csrc/kernels/x86/peak__avxvnni.cc (VEX vpdpbusd ymm): 12 x 32 MACs
uint64_t peak_u8s8_dpbusd__avxvnni(uint64_t iterations);
// csrc/kernels/x86/peak__avx512.cc (vfmadd231ps zmm): 16 x 16 MACs
uint64_t peak_f32_fma__avx512(uint64_t iterations);
// csrc/kernels/x86/peak__avx512vnni.cc (vpdpbusd zmm): 16 x 64 MACs
uint64_t peak_u8s8_dpbusd__avx512vnni(uint64_t iterations);
#endif

#if defined(LOWBIT_HAVE_ARM64)
// csrc/kernels/arm/peak__neon.cc, 16 accumulators:
uint64_t peak_s8s8_smull__neon(uint64_t iterations);  // smull/smull2 .8h, sadalp .4s: 16 x 8 MACs
uint64_t peak_f32_fmla__neon(uint64_t iterations);    // fmla .4s: 16 x 4 MACs
// csrc/kernels/arm/peak__neondot.cc: sdot / udot .4s by element, 16 x 16 MACs
uint64_t peak_s8s8_sdot__neondot(uint64_t iterations);
uint64_t peak_u8u8_udot__neondot(uint64_t iterations);
// csrc/kernels/arm/peak__i8mm.cc: usmmla .4s (2x8 u8 by 8x2 s8), 16 x 32 MACs
uint64_t peak_u8s8_usmmla__i8mm(uint64_t iterations);
#endif

}  // namespace kernels
}  // namespace lowbit
