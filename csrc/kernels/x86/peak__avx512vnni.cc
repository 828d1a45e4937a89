// Peak-throughput loop for AVX-512 VNNI (contract in ../peak.h): vpdpbusd zmm, 64 u8 x s8 MACs
// into int32, exact for every input; 16 accumulators (latency 4-5 cycles, up to 2 a cycle). The
// fp32 zmm FMA loop is in peak__avx512.cc (AVX-512F is enough for it). Inline asm: as an
// intrinsic GCC 12 copies the accumulators between registers (and the stack) every trip.
#include <immintrin.h>

#include "kernels/peak.h"

namespace lowbit {
namespace kernels {
namespace {

uint64_t checksum(__m512i v) {
  alignas(64) uint32_t lanes[16];
  _mm512_store_si512(lanes, v);
  uint64_t s = 0;
  for (uint32_t x : lanes) s = s * 31 + x;
  return s;
}

}  // namespace

#define LB_PEAK_X16(M) \
  M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

uint64_t peak_u8s8_dpbusd__avx512vnni(uint64_t iterations) {
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
#define LB_DECL(i) __m512i c##i = _mm512_set1_epi32(i);  // distinct: no chains merged
  LB_PEAK_X16(LB_DECL)
#undef LB_DECL
  for (uint64_t it = 0; it < iterations; it++) {
#define LB_STEP(i) __asm__("vpdpbusd %[b], %[a], %[c]" : [c] "+v"(c##i) : [a] "v"(a), [b] "v"(b));
    LB_PEAK_X16(LB_STEP)
#undef LB_STEP
  }
  __m512i sum = _mm512_setzero_si512();
#define LB_SUM(i) sum = _mm512_add_epi32(sum, c##i);
  LB_PEAK_X16(LB_SUM)
#undef LB_SUM
  return checksum(sum);
}

}  // namespace kernels
}  // namespace lowbit
