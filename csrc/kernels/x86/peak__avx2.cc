// Peak-throughput loops for AVX2 + FMA (contract in ../peak.h): the int8 paths lowbit's AVX2 GEMM
// kernels are built from (gemm__avx2.cc), and fp32 FMA. 12 accumulators each (16 ymm registers).
//
//   peak_u8s8_maddubs__avx2   vpmaddubsw + vpmaddwd(ones) + vpaddd: 32 u8 x s8 MACs per chain step.
//                             vpmaddubsw saturates the int16 sum of two products, so this is exact
//                             when A fits u7 or B fits s7 (the u8s7 kernel).
//   peak_u7s7_maddubs2__avx2  2 vpmaddubsw + vpaddw + vpmaddwd(ones) + vpaddd: 64 MACs a step,
//                             exact when both fit 7 bits (the u8s7 kernel's int16 doubling).
//   peak_s16_madd__avx2       vpmaddwd + vpaddd: 16 int16 MACs, exact for every u8 x s8 input
//                             (A widened to int16: the u8s8 kernel).
//   peak_f32_fma__avx2        vfmadd231ps ymm: 8 fp32 MACs.
// The integer steps are inline asm: their multiplies do not depend on the accumulator, so as
// intrinsics they would be hoisted out of the loop (and shared by the 12 chains).
#include <immintrin.h>

#include <cstring>

#include "kernels/peak.h"

namespace lowbit {
namespace kernels {
namespace {

// The accumulators are 12 named variables (not an array), so that each stays in its register.
#define LB_PEAK_X12(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
// c<i> starts at i: different starting values keep the compiler from merging equal chains.
#define LB_PEAK_DECL_I(i) __m256i c##i = _mm256_set1_epi32(i);
#define LB_PEAK_DECL_F(i) __m256 c##i = _mm256_set1_ps(static_cast<float>(i));
#define LB_PEAK_SUM_I(i) sum = _mm256_add_epi32(sum, c##i);
#define LB_PEAK_SUM_F(i) sum = _mm256_add_ps(sum, c##i);

uint64_t checksum(__m256i v) {
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
  uint64_t s = 0;
  for (uint32_t x : lanes) s = s * 31 + x;
  return s;
}

uint64_t checksum(__m256 v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  uint64_t s = 0;
  for (float x : lanes) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    s = s * 31 + bits;
  }
  return s;
}

}  // namespace

uint64_t peak_u8s8_maddubs__avx2(uint64_t iterations) {
  const __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1);
  LB_PEAK_X12(LB_PEAK_DECL_I)
  for (uint64_t it = 0; it < iterations; it++) {
#define LB_STEP(i)                                                                             \
  {                                                                                            \
    __m256i t;                                                                                 \
    __asm__("vpmaddubsw %[b], %[a], %[t]\n\t"                                                  \
            "vpmaddwd %[one], %[t], %[t]\n\t"                                                  \
            "vpaddd %[t], %[c], %[c]"                                                          \
            : [c] "+x"(c##i), [t] "=&x"(t)                                                     \
            : [a] "x"(a), [b] "x"(b), [one] "x"(one));                                         \
  }
    LB_PEAK_X12(LB_STEP)
#undef LB_STEP
  }
  __m256i sum = _mm256_setzero_si256();
  LB_PEAK_X12(LB_PEAK_SUM_I)
  return checksum(sum);
}

uint64_t peak_u7s7_maddubs2__avx2(uint64_t iterations) {
  // 12 accumulators + a, b + 2 products fill the 16 registers: the ones come from memory (a
  // broadcast constant, as the kernels' epilogue constants do; one load a step, not a bottleneck).
  alignas(32) static const int16_t ones[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2);
  LB_PEAK_X12(LB_PEAK_DECL_I)
  for (uint64_t it = 0; it < iterations; it++) {
#define LB_STEP(i)                                                                             \
  {                                                                                            \
    __m256i t, u;                                                                              \
    __asm__("vpmaddubsw %[b], %[a], %[t]\n\t"                                                  \
            "vpmaddubsw %[a], %[b], %[u]\n\t"                                                  \
            "vpaddw %[u], %[t], %[t]\n\t"                                                      \
            "vpmaddwd %[one], %[t], %[t]\n\t"                                                  \
            "vpaddd %[t], %[c], %[c]"                                                          \
            : [c] "+x"(c##i), [t] "=&x"(t), [u] "=&x"(u)                                       \
            : [a] "x"(a), [b] "x"(b), [one] "m"(ones));                                        \
  }
    LB_PEAK_X12(LB_STEP)
#undef LB_STEP
  }
  __m256i sum = _mm256_setzero_si256();
  LB_PEAK_X12(LB_PEAK_SUM_I)
  return checksum(sum);
}

uint64_t peak_s16_madd__avx2(uint64_t iterations) {
  const __m256i a = _mm256_set1_epi16(255), b = _mm256_set1_epi16(-128);
  LB_PEAK_X12(LB_PEAK_DECL_I)
  for (uint64_t it = 0; it < iterations; it++) {
#define LB_STEP(i)                                                                             \
  {                                                                                            \
    __m256i t;                                                                                 \
    __asm__("vpmaddwd %[b], %[a], %[t]\n\t"                                                    \
            "vpaddd %[t], %[c], %[c]"                                                          \
            : [c] "+x"(c##i), [t] "=&x"(t)                                                     \
            : [a] "x"(a), [b] "x"(b));                                                         \
  }
    LB_PEAK_X12(LB_STEP)
#undef LB_STEP
  }
  __m256i sum = _mm256_setzero_si256();
  LB_PEAK_X12(LB_PEAK_SUM_I)
  return checksum(sum);
}

uint64_t peak_f32_fma__avx2(uint64_t iterations) {
  // c += a * b = 2^-10, from c = i (< 16): normal numbers for any iteration count, and no chain
  // starts at a fixed point (c + 2^-10 == c from 2^14 on; clang folds chains that start there).
  const __m256 a = _mm256_set1_ps(1.0f / 32), b = _mm256_set1_ps(1.0f / 32);
  LB_PEAK_X12(LB_PEAK_DECL_F)
  for (uint64_t it = 0; it < iterations; it++) {
#define LB_STEP(i) c##i = _mm256_fmadd_ps(a, b, c##i);
    LB_PEAK_X12(LB_STEP)
#undef LB_STEP
  }
  __m256 sum = _mm256_setzero_ps();
  LB_PEAK_X12(LB_PEAK_SUM_F)
  return checksum(sum);
}

}  // namespace kernels
}  // namespace lowbit
