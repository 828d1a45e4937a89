// u8 x s8 GEMM micro-kernels for AVX2 without VNNI (contract in lowbit/kernels.h; scalar twin
// ../scalar/gemm__scalar.cc). B format: panels of 16 columns, k-groups of 4 (64 bytes a group:
// column j's 4 bytes at 4j), shared by both kernels.
//
// u8s8_epi_gemm__avx2, exact for every input: vpmaddubsw would saturate (255 * 127 * 2 > 32767),
// so A comes as int16 (APack::s16) and B's bytes are sign-extended as they are loaded: per
// k-group, 16 bytes of B (4 columns x 4 k) widen to one int16 vector, vpmaddwd with the row's 4
// int16 values broadcast gives each column 2 partial sums in adjacent int32 lanes, added at the
// end. Tile 3 rows x 16 columns: 12 accumulators + 1 B + 1 A + 1 product of the 16 ymm.
//
// u8s7_epi_gemm__avx2, exact when A fits u7 or B fits s7 (GemmTile::narrow): vpmaddubsw of the
// row's 4 bytes broadcast with 8 columns' 4 bytes gives int16 pair sums of at most 255 * 64 * 2
// (or 127 * 128 * 2) = 32,640 in magnitude, no saturation; vpmaddwd with ones adds the pairs into
// int32 (one lane per column). When both fit (narrow == 3) a pair sum is at most 127 * 64 * 2 =
// 16,256, so two k-groups' vpmaddubsw results are added in int16 before one vpmaddwd: 3 multiply
// instructions per 64 MACs instead of 4. Tile 6 rows x 16 columns: 12 accumulators.
#include <immintrin.h>

#include "epilogue__avx2.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

constexpr size_t kGroup = 64;  // bytes of B per k-group (16 columns x 4)

// Sums the two adjacent partial sums of each column: acc[q] holds columns 4q..4q+3 as
// [c0 c0 c1 c1 | c2 c2 c3 c3]; returns columns 8h..8h+7 from acc[2h], acc[2h + 1].
inline __m256i fold_pairs(__m256i a, __m256i b) {
  const __m256i h = _mm256_hadd_epi32(a, b);  // [c0 c1 c4 c5 | c2 c3 c6 c7]
  return _mm256_permute4x64_epi64(h, 0xD8);   // [c0 c1 c2 c3 | c4 c5 c6 c7]
}

template <int MR>
void exact_tile(const GemmTile& t) {
  const int16_t* a = static_cast<const int16_t*>(t.a);
  const size_t lda = t.lda / 2;
  __m256i acc[MR][4];
  for (int r = 0; r < MR; r++)
    for (int q = 0; q < 4; q++) acc[r][q] = _mm256_setzero_si256();
  const int8_t* b = t.b;
  for (size_t k = 0; k < t.kp; k += 4, b += kGroup) {
    __m256i av[MR];
    for (int r = 0; r < MR; r++) {
      long long a4;
      __builtin_memcpy(&a4, a + r * lda + k, 8);
      av[r] = _mm256_set1_epi64x(a4);
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
      const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16 * q)));
      for (int r = 0; r < MR; r++) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(av[r], w));
    }
  }
  for (int r = 0; r < MR; r++)
    epilogue_row_avx2(t, r, fold_pairs(acc[r][0], acc[r][1]), fold_pairs(acc[r][2], acc[r][3]));
}

template <int MR, bool kBoth>
void narrow_tile(const GemmTile& t) {
  const uint8_t* a = static_cast<const uint8_t*>(t.a);
  const size_t lda = t.lda;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  const int8_t* b = t.b;
  size_t k = 0;
  if (kBoth) {  // two k-groups per step, summed in int16
    for (; k + 8 <= t.kp; k += 8, b += 2 * kGroup) {
      const __m256i b00 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
      const __m256i b01 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
      const __m256i b10 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kGroup));
      const __m256i b11 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kGroup + 32));
      for (int r = 0; r < MR; r++) {
        int a0, a1;
        __builtin_memcpy(&a0, a + r * lda + k, 4);
        __builtin_memcpy(&a1, a + r * lda + k + 4, 4);
        const __m256i x0 = _mm256_set1_epi32(a0), x1 = _mm256_set1_epi32(a1);
        const __m256i p0 = _mm256_add_epi16(_mm256_maddubs_epi16(x0, b00), _mm256_maddubs_epi16(x1, b10));
        const __m256i p1 = _mm256_add_epi16(_mm256_maddubs_epi16(x0, b01), _mm256_maddubs_epi16(x1, b11));
        acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(p0, ones));
        acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(p1, ones));
      }
    }
  }
  for (; k < t.kp; k += 4, b += kGroup) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
    for (int r = 0; r < MR; r++) {
      int a0;
      __builtin_memcpy(&a0, a + r * lda + k, 4);
      const __m256i x = _mm256_set1_epi32(a0);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(x, b0), ones));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(x, b1), ones));
    }
  }
  for (int r = 0; r < MR; r++) epilogue_row_avx2(t, r, acc[r][0], acc[r][1]);
}

template <bool kBoth>
void narrow_rows(const GemmTile& t) {
  switch (t.mr) {
    case 1: return narrow_tile<1, kBoth>(t);
    case 2: return narrow_tile<2, kBoth>(t);
    case 3: return narrow_tile<3, kBoth>(t);
    case 4: return narrow_tile<4, kBoth>(t);
    case 5: return narrow_tile<5, kBoth>(t);
    default: return narrow_tile<6, kBoth>(t);
  }
}

}  // namespace

void u8s8_epi_gemm__avx2(const GemmTile& t) {
  switch (t.mr) {
    case 1: return exact_tile<1>(t);
    case 2: return exact_tile<2>(t);
    default: return exact_tile<3>(t);
  }
}

void u8s7_epi_gemm__avx2(const GemmTile& t) {
  if (t.narrow == (kNarrowA | kNarrowB))
    narrow_rows<true>(t);
  else
    narrow_rows<false>(t);
}

}  // namespace kernels
}  // namespace lowbit
