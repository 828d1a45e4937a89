// u8 x s8 -> s32 GEMM micro-kernel for AVX2 without VNNI (contract in lowbit/kernels.h, oracle
// ../scalar/gemm_u8s8s32__scalar.cc).
//
// vpmaddubsw would saturate (255 * 127 * 2 > 32767), so this kernel stays exact by widening: A
// comes packed as int16 (APack::s16), B bytes are sign-extended on load, and vpmaddwd sums pairs
// of int16 products into int32 lanes, which never saturates for these operands.
// Tile: up to MR rows x 4 columns per pass, four passes per 16-column panel. Per k-group a pass
// loads 32 bytes of B (4 columns x 8 k) as two int16 vectors and keeps 2 accumulators per row,
// whose lanes hold 4 partial sums of one column each; a horizontal reduction makes the outputs.
// AVX2 has 16 ymm registers and no multiply-accumulate: MR = 5 keeps 10 accumulators + 2 B + 1 A
// + 1 product in registers (MR = 6 measured no faster). Per k-group and quarter: 10 vpmaddwd,
// 10 vpaddd, 2 vpmovsxbw; the multiplies (2 per cycle on Zen 3) bound it at 32 MACs a cycle.
#include <immintrin.h>

#include <algorithm>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

// Accumulates k-groups [0, ng) of one quarter (4 columns) into acc (MR x 2 vectors, in memory
// between calls).
template <int MR>
void quarter(size_t ng, const int16_t* a, size_t lda, const int8_t* b, __m256i* acc_io) {
  __m256i acc[MR][2];
  for (int r = 0; r < MR; r++) {
    acc[r][0] = _mm256_load_si256(acc_io + 2 * r);
    acc[r][1] = _mm256_load_si256(acc_io + 2 * r + 1);
  }
  for (size_t g = 0; g < ng; g++) {
    const int8_t* bg = b + g * kNR * kKG;
    const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bg)));
    const __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bg + 16)));
    for (int r = 0; r < MR; r++) {
      const __m256i av = _mm256_broadcastsi128_si256(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + r * lda + g * kKG)));
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, b0));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, b1));
    }
  }
  for (int r = 0; r < MR; r++) {
    _mm256_store_si256(acc_io + 2 * r, acc[r][0]);
    _mm256_store_si256(acc_io + 2 * r + 1, acc[r][1]);
  }
}

// K is walked in chunks of kChunk groups so that a chunk of the MR A rows and of the B panel
// (MR x 1 KiB + 8 KiB) stay in L1 while the four quarter passes re-read them.
constexpr size_t kChunk = 64;

template <int MR>
void panel(size_t kp, const int16_t* a, size_t lda, const int8_t* b, int32_t* c, size_t ldc) {
  alignas(32) __m256i acc[4][MR * 2];
  for (int q = 0; q < 4; q++)
    for (int i = 0; i < MR * 2; i++) acc[q][i] = _mm256_setzero_si256();
  const size_t groups = kp / kKG;
  for (size_t g0 = 0; g0 < groups; g0 += kChunk) {
    const size_t ng = std::min(kChunk, groups - g0);
    for (int q = 0; q < 4; q++)
      quarter<MR>(ng, a + g0 * kKG, lda, b + g0 * kNR * kKG + 32 * q, acc[q]);
  }
  for (int q = 0; q < 4; q++)
    for (int r = 0; r < MR; r++) {
      // acc = [c0 partials x4 | c1 partials x4], [c2 x4 | c3 x4]
      const __m256i h = _mm256_hadd_epi32(acc[q][2 * r], acc[q][2 * r + 1]);  // [c0 c0 c2 c2 | c1 c1 c3 c3]
      const __m128i s = _mm_hadd_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(c + r * ldc + 4 * q), _mm_shuffle_epi32(s, 0xD8));
    }
}

// One row (a GEMV, bound by streaming B): all 16 columns in one pass, so every byte of the
// panel is read exactly once; 8 accumulators, lanes as in quarter().
void row(size_t kp, const int16_t* a, const int8_t* b, int32_t* c) {
  __m256i acc[8];
  for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_si256();
  for (size_t g = 0; g < kp / kKG; g++) {
    const int8_t* bg = b + g * kNR * kKG;
    const __m256i av =
        _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + g * kKG)));
    for (int j = 0; j < 8; j++) {
      const __m256i bw =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bg + 16 * j)));
      acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(av, bw));
    }
  }
  for (int j = 0; j < 8; j += 2) {
    const __m256i h = _mm256_hadd_epi32(acc[j], acc[j + 1]);
    const __m128i s = _mm_hadd_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c + 2 * j), _mm_shuffle_epi32(s, 0xD8));
  }
}

}  // namespace

void gemm_u8s8s32__avx2(size_t mr, size_t kp, const void* a_, size_t lda, const int8_t* b,
                        int32_t* c, size_t ldc) {
  const int16_t* a = static_cast<const int16_t*>(a_);
  switch (mr) {
    case 1: return row(kp, a, b, c);
    case 2: return panel<2>(kp, a, lda, b, c, ldc);
    case 3: return panel<3>(kp, a, lda, b, c, ldc);
    case 4: return panel<4>(kp, a, lda, b, c, ldc);
    default: return panel<5>(kp, a, lda, b, c, ldc);
  }
}

}  // namespace kernels
}  // namespace lowbit
