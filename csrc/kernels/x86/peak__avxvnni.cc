// Peak-throughput loop for AVX-VNNI (contract in ../peak.h): vpdpbusd ymm in its VEX encoding
// (_mm256_dpbusd_avx_epi32; Alder Lake and later, Zen 5), 32 u8 x s8 MACs into int32, exact for
// every input. 12 accumulators: each vpdpbusd depends on its accumulator (latency 4-5 cycles).
// Inline asm: as an intrinsic GCC 12 copies the accumulators between registers every trip.
#include <immintrin.h>

#include "kernels/peak.h"

namespace lowbit {
namespace kernels {
namespace {

uint64_t checksum(__m256i v) {
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
  uint64_t s = 0;
  for (uint32_t x : lanes) s = s * 31 + x;
  return s;
}

}  // namespace

#define LB_PEAK_X12(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)

uint64_t peak_u8s8_dpbusd__avxvnni(uint64_t iterations) {
  const __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2);
#define LB_DECL(i) __m256i c##i = _mm256_set1_epi32(i);  // distinct: no chains merged
  LB_PEAK_X12(LB_DECL)
#undef LB_DECL
  for (uint64_t it = 0; it < iterations; it++) {
#define LB_STEP(i) \
  __asm__("%{vex%} vpdpbusd %[b], %[a], %[c]" : [c] "+x"(c##i) : [a] "x"(a), [b] "x"(b));
    LB_PEAK_X12(LB_STEP)
#undef LB_STEP
  }
  __m256i sum = _mm256_setzero_si256();
#define LB_SUM(i) sum = _mm256_add_epi32(sum, c##i);
  LB_PEAK_X12(LB_SUM)
#undef LB_SUM
  return checksum(sum);
}

}  // namespace kernels
}  // namespace lowbit
