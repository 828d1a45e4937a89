// u8 x s8 -> s32 GEMM micro-kernel for AVX-512 VNNI (contract in lowbit/kernels.h, oracle
// ../scalar/gemm_u8s8s32__scalar.cc). vpdpbusd multiplies unsigned A bytes by signed B bytes and
// adds groups of 4 into int32 lanes without saturation: exact, wrapping like the reference.
// Tile: up to 8 rows x 16 columns. A k-group of B is two zmm (columns 0-7, 8-15), each lane one
// column's 4 bytes; A's 8 bytes are broadcast to every 64-bit lane, so each column gets two
// partial sums in adjacent lanes, added at the end.
#include <immintrin.h>

#include <cstring>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

template <int MR>
void tile(size_t kp, const uint8_t* a, size_t lda, const int8_t* b, int32_t* c, size_t ldc) {
  __m512i acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (size_t g = 0; g < kp / kKG; g++) {
    const __m512i b0 = _mm512_loadu_si512(b + g * kNR * kKG);
    const __m512i b1 = _mm512_loadu_si512(b + g * kNR * kKG + 64);
    for (int r = 0; r < MR; r++) {
      long long a8;
      std::memcpy(&a8, a + r * lda + g * kKG, 8);
      const __m512i av = _mm512_set1_epi64(a8);
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, b1);
    }
  }
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int r = 0; r < MR; r++) {
    __m512i lo = _mm512_permutex2var_epi32(acc[r][0], even, acc[r][1]);
    __m512i hi = _mm512_permutex2var_epi32(acc[r][0], odd, acc[r][1]);
    _mm512_storeu_si512(c + r * ldc, _mm512_add_epi32(lo, hi));
  }
}

}  // namespace

void gemm_u8s8s32__avx512vnni(size_t mr, size_t kp, const void* a_, size_t lda, const int8_t* b,
                              int32_t* c, size_t ldc) {
  const uint8_t* a = static_cast<const uint8_t*>(a_);
  switch (mr) {
    case 1: return tile<1>(kp, a, lda, b, c, ldc);
    case 2: return tile<2>(kp, a, lda, b, c, ldc);
    case 3: return tile<3>(kp, a, lda, b, c, ldc);
    case 4: return tile<4>(kp, a, lda, b, c, ldc);
    case 5: return tile<5>(kp, a, lda, b, c, ldc);
    case 6: return tile<6>(kp, a, lda, b, c, ldc);
    case 7: return tile<7>(kp, a, lda, b, c, ldc);
    default: return tile<8>(kp, a, lda, b, c, ldc);
  }
}

}  // namespace kernels
}  // namespace lowbit
