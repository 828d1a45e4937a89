// Peak-throughput loop for AVX-512F (contract in ../peak.h): vfmadd231ps zmm, 16 fp32 MACs,
// 16 accumulators (latency 4 cycles, up to 2 a cycle). On CPUs with one 512-bit FMA unit this
// runs at the AVX2 loop's rate.
#include <immintrin.h>

#include <cstring>

#include "kernels/peak.h"

namespace lowbit {
namespace kernels {
namespace {

uint64_t checksum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  uint64_t s = 0;
  for (float x : lanes) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    s = s * 31 + bits;
  }
  return s;
}

}  // namespace

#define LB_PEAK_X16(M) \
  M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

uint64_t peak_f32_fma__avx512(uint64_t iterations) {
  // c += a * b = 2^-10, from c = i (< 16): normal numbers for any iteration count, and no chain
  // starts at a fixed point (c + 2^-10 == c from 2^14 on; clang folds chains that start there).
  const __m512 a = _mm512_set1_ps(1.0f / 32), b = _mm512_set1_ps(1.0f / 32);
#define LB_DECL(i) __m512 c##i = _mm512_set1_ps(static_cast<float>(i));  // distinct chains
  LB_PEAK_X16(LB_DECL)
#undef LB_DECL
  for (uint64_t it = 0; it < iterations; it++) {
#define LB_STEP(i) c##i = _mm512_fmadd_ps(a, b, c##i);
    LB_PEAK_X16(LB_STEP)
#undef LB_STEP
  }
  __m512 sum = _mm512_setzero_ps();
#define LB_SUM(i) sum = _mm512_add_ps(sum, c##i);
  LB_PEAK_X16(LB_SUM)
#undef LB_SUM
  return checksum(sum);
}

}  // namespace kernels
}  // namespace lowbit
