// The x86 intrinsics of the VNNI GEMM kernels (gemm__avx512vnni.cc, gemm__avxvnni.cc): the
// compiler's own, or, when LOWBIT_SIMDE is defined, SIMDe's emulation of them, so that the same
// kernel source also builds with AVX2 flags only and runs on every AVX2 host (the native test
// binary compiles each of these files a second time that way: tests/cpp/simde_gemm__*.cc,
// cmake/kernels.cmake, tests/cpp/test_gemm_simde.cc).
//
// LB_KERNEL(name) names a kernel function: `name` natively, `name_simde` in the SIMDe build (the
// two builds of one file live in the same test binary).
//
// row_dpbusd_zmm<NB>(c0, c1, c2, a, b0, b1, b2) / row_dpbusd_ymm(c0, c1, a, b0, b1): one row of
// one k-step of the VNNI tiles: x = the row's 4 A bytes at `a` broadcast to every int32 lane (a
// vpbroadcastd of its own: vpdpbusd's {1to16} memory form issues only 1.5 per cycle on Zen 5),
// then c_i += the 4 products x (u8) * b_i (s8) of each lane, wrapping (vpdpbusd), for each
// block i < NB (zmm) or both (ymm, VEX encoded). Natively one asm statement: with the intrinsics
// (_mm512_dpbusd_epi32, _mm256_dpbusd_avx_epi32), and even with one asm statement per vpdpbusd,
// GCC 12 moves accumulators to another register and back on every k-step (39 zmm copies and a
// stack store per 18 vpdpbusd of the 6 x 48 tile with the intrinsics; 8 copies with one asm per
// instruction); with the row in one statement each accumulator stays in its register
// (bench/mca_report.py checks the compiled loops). The SIMDe build uses the intrinsics: the same
// instructions (AT&T operand order b, x, c, as GCC emits for the intrinsics). Nothing else
// differs between the builds.
#pragma once

#include <cstdint>
#include <cstring>

#if !defined(LOWBIT_SIMDE)

#include <immintrin.h>

#define LB_KERNEL(name) name

namespace lowbit {
namespace kernels {
namespace {

#define LB_A4 [a] "m"(*reinterpret_cast<const int32_t*>(a))

#if defined(__AVX512F__) && defined(__AVX512VNNI__)
template <int NB>
__attribute__((always_inline)) inline void row_dpbusd_zmm(__m512i& c0, __m512i& c1, __m512i& c2,
                                                          const uint8_t* a, __m512i b0, __m512i b1,
                                                          __m512i b2) {
  __m512i x;
  if (NB == 1)
    __asm__("vpbroadcastd %[a], %[x]\n\tvpdpbusd %[b0], %[x], %[c0]"
            : [c0] "+v"(c0), [x] "=&v"(x)
            : LB_A4, [b0] "v"(b0));
  else if (NB == 2)
    __asm__("vpbroadcastd %[a], %[x]\n\tvpdpbusd %[b0], %[x], %[c0]\n\t"
            "vpdpbusd %[b1], %[x], %[c1]"
            : [c0] "+v"(c0), [c1] "+v"(c1), [x] "=&v"(x)
            : LB_A4, [b0] "v"(b0), [b1] "v"(b1));
  else
    __asm__("vpbroadcastd %[a], %[x]\n\tvpdpbusd %[b0], %[x], %[c0]\n\t"
            "vpdpbusd %[b1], %[x], %[c1]\n\tvpdpbusd %[b2], %[x], %[c2]"
            : [c0] "+v"(c0), [c1] "+v"(c1), [c2] "+v"(c2), [x] "=&v"(x)
            : LB_A4, [b0] "v"(b0), [b1] "v"(b1), [b2] "v"(b2));
}
#endif

#if defined(__AVXVNNI__)
// {vex} (written %{vex%} in asm) asks for the VEX encoding: the assembler would otherwise emit
// AVX512-VNNI's EVEX form. Registers 0-15 only ("x"); the broadcast goes to ymm15, a clobber
// rather than an output operand: with 12 accumulators and 2 B vectors GCC 12 then keeps every
// accumulator in its register (with an output operand it copied one on each k-step).
__attribute__((always_inline)) inline void row_dpbusd_ymm(__m256i& c0, __m256i& c1,
                                                          const uint8_t* a, __m256i b0, __m256i b1) {
  __asm__("vpbroadcastd %[a], %%ymm15\n\t%{vex%} vpdpbusd %[b0], %%ymm15, %[c0]\n\t"
          "%{vex%} vpdpbusd %[b1], %%ymm15, %[c1]"
          : [c0] "+x"(c0), [c1] "+x"(c1)
          : LB_A4, [b0] "x"(b0), [b1] "x"(b1)
          : "xmm15");
}
#endif

#undef LB_A4

}  // namespace
}  // namespace kernels
}  // namespace lowbit

#else  // SIMDe, with the native names mapped onto it

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx2.h>
#include <simde/x86/avx512.h>

#define LB_KERNEL(name) name##_simde

// What SIMDe 0.7.4 lacks: without these the native names would fall through to GCC's own
// intrinsics, which need the AVX-512 target ("target specific option mismatch"). Only the SIMDe
// test build uses them; they favour plainness over speed. (SIMDe's portable int32 arithmetic
// overflows signed integers where the instructions wrap: cmake/kernels.cmake builds it with
// -fwrapv, which also keeps UBSan quiet about it.)
namespace lowbit {
namespace simde_shim {

inline simde__m512 cvtepi32_ps(simde__m512i a) {
  simde__m512i_private p = simde__m512i_to_private(a);
  simde__m512_private r;
  r.m256[0] = simde_mm256_cvtepi32_ps(p.m256i[0]);  // rounds as vcvtdq2ps (MXCSR: nearest even)
  r.m256[1] = simde_mm256_cvtepi32_ps(p.m256i[1]);
  return simde__m512_from_private(r);
}

inline simde__m512i cvtps_epi32(simde__m512 a) {
  simde__m512_private p = simde__m512_to_private(a);
  simde__m512i_private r;
  r.m256i[0] = simde_mm256_cvtps_epi32(p.m256[0]);
  r.m256i[1] = simde_mm256_cvtps_epi32(p.m256[1]);
  return simde__m512i_from_private(r);
}

// vpmovdb: the low byte of each int32 lane.
inline simde__m128i cvtepi32_epi8(simde__m512i a) {
  simde__m512i_private p = simde__m512i_to_private(a);
  uint8_t bytes[16];
  for (int i = 0; i < 16; i++) bytes[i] = static_cast<uint8_t>(static_cast<uint32_t>(p.i32[i]));
  return simde_mm_loadu_si128(bytes);
}

// Masked stores: only the lanes whose mask bit is set are written.
inline void mask_store_lanes(void* dst, simde__mmask16 k, const void* lanes, size_t lane_bytes) {
  for (size_t i = 0; i < 16; i++)
    if (k >> i & 1)
      std::memcpy(static_cast<char*>(dst) + lane_bytes * i,
                  static_cast<const char*>(lanes) + lane_bytes * i, lane_bytes);
}

inline void mask_storeu_epi32(void* dst, simde__mmask16 k, simde__m512i a) {
  int32_t lanes[16];
  simde_mm512_storeu_si512(lanes, a);
  mask_store_lanes(dst, k, lanes, 4);
}

inline void mask_storeu_ps(void* dst, simde__mmask16 k, simde__m512 a) {
  float lanes[16];
  simde_mm512_storeu_ps(lanes, a);
  mask_store_lanes(dst, k, lanes, 4);
}

inline void mask_storeu_epi8(void* dst, simde__mmask16 k, simde__m128i a) {
  uint8_t lanes[16];
  simde_mm_storeu_si128(lanes, a);
  mask_store_lanes(dst, k, lanes, 1);
}

}  // namespace simde_shim
}  // namespace lowbit

#undef _mm512_cvtepi32_ps
#undef _mm512_cvtps_epi32
#undef _mm512_cvtepi32_epi8
#undef _mm512_mask_storeu_epi32
#undef _mm512_mask_storeu_ps
#undef _mm_mask_storeu_epi8
#undef _mm256_dpbusd_avx_epi32
#define _mm512_cvtepi32_ps(a) ::lowbit::simde_shim::cvtepi32_ps(a)
#define _mm512_cvtps_epi32(a) ::lowbit::simde_shim::cvtps_epi32(a)
#define _mm512_cvtepi32_epi8(a) ::lowbit::simde_shim::cvtepi32_epi8(a)
#define _mm512_mask_storeu_epi32(p, k, a) ::lowbit::simde_shim::mask_storeu_epi32(p, k, a)
#define _mm512_mask_storeu_ps(p, k, a) ::lowbit::simde_shim::mask_storeu_ps(p, k, a)
#define _mm_mask_storeu_epi8(p, k, a) ::lowbit::simde_shim::mask_storeu_epi8(p, k, a)
// AVX-VNNI's VEX form computes what AVX512-VNNI's 256-bit form does.
#define _mm256_dpbusd_avx_epi32(src, a, b) simde_mm256_dpbusd_epi32(src, a, b)

namespace lowbit {
namespace kernels {
namespace {

inline int32_t load_a4(const uint8_t* a) {
  int32_t v;
  std::memcpy(&v, a, 4);
  return v;
}

template <int NB>
inline void row_dpbusd_zmm(__m512i& c0, __m512i& c1, __m512i& c2, const uint8_t* a, __m512i b0,
                           __m512i b1, __m512i b2) {
  const __m512i x = _mm512_set1_epi32(load_a4(a));
  c0 = _mm512_dpbusd_epi32(c0, x, b0);
  if (NB > 1) c1 = _mm512_dpbusd_epi32(c1, x, b1);
  if (NB > 2) c2 = _mm512_dpbusd_epi32(c2, x, b2);
}

inline void row_dpbusd_ymm(__m256i& c0, __m256i& c1, const uint8_t* a, __m256i b0, __m256i b1) {
  const __m256i x = _mm256_set1_epi32(load_a4(a));
  c0 = _mm256_dpbusd_avx_epi32(c0, x, b0);
  c1 = _mm256_dpbusd_avx_epi32(c1, x, b1);
}

}  // namespace
}  // namespace kernels
}  // namespace lowbit

#endif  // LOWBIT_SIMDE
