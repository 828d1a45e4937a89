// u8 x s8 -> s32 GEMM micro-kernel for AVX2 without VNNI (contract in lowbit/kernels.h, oracle
// ../scalar/gemm_u8s8s32__scalar.cc).
//
// vpmaddubsw would saturate (255 * 127 * 2 > 32767), so this kernel stays exact by widening: A
// comes packed as int16 (APack::s16), B bytes are sign-extended on load, and vpmaddwd sums pairs
// of int16 products into int32 lanes, which never saturates for these operands.
// Tile: up to 3 rows x 8 columns per pass, two passes per 16-column panel. Each pass streams one
// 64-byte line per k-group (8 columns x 8 k) and keeps 4 accumulators per row, whose lanes hold
// 4 partial sums of one column each; a horizontal reduction at the end makes the 8 outputs.
#include <immintrin.h>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

template <int MR>
void tile(size_t kp, const int16_t* a, size_t lda, const int8_t* b, int32_t* c, size_t ldc) {
  __m256i acc[MR][4];
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < 4; j++) acc[r][j] = _mm256_setzero_si256();
  for (size_t g = 0; g < kp / kKG; g++) {
    const int8_t* bg = b + g * kNR * kKG;
    __m256i bw[4];
    for (int j = 0; j < 4; j++)  // columns 2j, 2j + 1: 16 bytes -> 16 int16
      bw[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bg + 16 * j)));
    for (int r = 0; r < MR; r++) {
      const __m256i av = _mm256_broadcastsi128_si256(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + r * lda + g * kKG)));
      for (int j = 0; j < 4; j++) acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(av, bw[j]));
    }
  }
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int r = 0; r < MR; r++) {
    // acc[j] = [c(2j) partials x4 | c(2j+1) partials x4]
    __m256i h01 = _mm256_hadd_epi32(acc[r][0], acc[r][1]);
    __m256i h23 = _mm256_hadd_epi32(acc[r][2], acc[r][3]);
    __m256i h = _mm256_hadd_epi32(h01, h23);  // [c0 c2 c4 c6 | c1 c3 c5 c7]
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc), _mm256_permutevar8x32_epi32(h, order));
  }
}

template <int MR>
void panel(size_t kp, const int16_t* a, size_t lda, const int8_t* b, int32_t* c, size_t ldc) {
  tile<MR>(kp, a, lda, b, c, ldc);                   // columns 0..7: bytes 0..63 of each group
  tile<MR>(kp, a, lda, b + 8 * kKG, c + 8, ldc);     // columns 8..15: bytes 64..127
}

}  // namespace

void gemm_u8s8s32__avx2(size_t mr, size_t kp, const void* a_, size_t lda, const int8_t* b,
                        int32_t* c, size_t ldc) {
  const int16_t* a = static_cast<const int16_t*>(a_);
  switch (mr) {
    case 1: return panel<1>(kp, a, lda, b, c, ldc);
    case 2: return panel<2>(kp, a, lda, b, c, ldc);
    default: return panel<3>(kp, a, lda, b, c, ldc);
  }
}

}  // namespace kernels
}  // namespace lowbit
