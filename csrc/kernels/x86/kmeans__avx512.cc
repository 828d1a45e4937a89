// AVX-512 (F, BW, VL, DQ) k-means kernels (the nearest-centroid assignments); contracts in
// lowbit/kernels.h, oracle in ../scalar/kmeans__scalar.cc (tails are handed to it, so they match
// by construction).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/tiles.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

// ---- assignment: 64 points a block, lanes = points (the reference's sequence per lane) -------
constexpr size_t kBlock = 64;

template <int D>  // D > 0: dimension known at compile time; 0: any d
void assign_block(const float* xs, size_t d, const float* c, const float* hn, size_t k,
                  uint32_t* idx) {
  constexpr int G = 4;  // groups of 16 points
  const size_t dd = D > 0 ? static_cast<size_t>(D) : d;
  __m512 b[G];
  __m512i i[G];
  for (int g = 0; g < G; g++) {
    b[g] = _mm512_set1_ps(INFINITY);
    i[g] = _mm512_setzero_si512();
  }
  __m512i jv = _mm512_setzero_si512();
  const __m512i one = _mm512_set1_epi32(1);
  for (size_t j = 0; j < k; j++) {
    const float* cj = c + j * dd;
    __m512 s[G];
    for (int g = 0; g < G; g++) s[g] = _mm512_set1_ps(hn[j]);
    for (size_t t = 0; t < dd; t++) {
      const __m512 cb = _mm512_set1_ps(cj[t]);
      const float* xt = xs + t * kBlock;
      for (int g = 0; g < G; g++)
        s[g] = _mm512_fnmadd_ps(_mm512_loadu_ps(xt + 16 * g), cb, s[g]);
    }
    for (int g = 0; g < G; g++) {
      const __mmask16 m = _mm512_cmp_ps_mask(s[g], b[g], _CMP_LT_OQ);
      b[g] = _mm512_mask_mov_ps(b[g], m, s[g]);
      i[g] = _mm512_mask_mov_epi32(i[g], m, jv);
    }
    jv = _mm512_add_epi32(jv, one);
  }
  for (int g = 0; g < G; g++) _mm512_storeu_si512(idx + 16 * g, i[g]);
}

// ---- 1-D assignment ---------------------------------------------------------------------------
struct Lut16 {
  __m512 lo, inv_w, top, zero;
  __m512i nt, ntm1, one;
  const float* t;
  const int* lut;
};

inline __m512i codes16(__m512 x, const Lut16& L) {
  __m512 v = _mm512_mul_ps(_mm512_sub_ps(x, L.lo), L.inv_w);
  // v > 0 ? v : 0, then v < top ? v : top: the reference's selects, NaN included.
  v = _mm512_mask_mov_ps(L.zero, _mm512_cmp_ps_mask(v, L.zero, _CMP_GT_OQ), v);
  v = _mm512_mask_mov_ps(L.top, _mm512_cmp_ps_mask(v, L.top, _CMP_LT_OQ), v);
  const __m512i e = _mm512_i32gather_epi32(_mm512_cvttps_epu32(v), L.lut, 4);
  __m512i c = _mm512_and_si512(e, _mm512_set1_epi32(0x7FFFFFFF));
  const __mmask16 flagged = _mm512_movepi32_mask(e);  // bit 31: the bin holds a threshold
  if (flagged == 0) return c;
  for (;;) {
    const __m512 tv = _mm512_i32gather_ps(_mm512_min_epu32(c, L.ntm1), L.t, 4);
    const __mmask16 step = flagged & _mm512_cmpgt_epi32_mask(L.nt, c) &
                           _mm512_cmp_ps_mask(x, tv, _CMP_GE_OQ);
    if (step == 0) return c;
    c = _mm512_mask_add_epi32(c, step, c, L.one);
  }
}

}  // namespace

void f32_u32_kmeans_assign__avx512(const float* x, size_t n, size_t d, const float* c,
                                   const float* hn, size_t k, uint32_t* idx) {
  assign_in_blocks<kBlock>(x, n, d, idx, [&](const float* xs, uint32_t* out) {
    switch (d) {
      case 2: assign_block<2>(xs, d, c, hn, k, out); break;
      case 4: assign_block<4>(xs, d, c, hn, k, out); break;
      case 8: assign_block<8>(xs, d, c, hn, k, out); break;
      default: assign_block<0>(xs, d, c, hn, k, out);
    }
  });
}

void f32_code_kmeans1d_assign__avx512(const float* x, size_t n, const Kmeans1dLut* lut, int bits,
                                      void* out) {
  Lut16 L;
  L.lo = _mm512_set1_ps(lut->lo);
  L.inv_w = _mm512_set1_ps(lut->inv_w);
  L.top = _mm512_set1_ps(static_cast<float>(lut->nbins - 1));
  L.zero = _mm512_setzero_ps();
  L.nt = _mm512_set1_epi32(static_cast<int>(lut->nt));
  L.ntm1 = _mm512_set1_epi32(static_cast<int>(lut->nt - 1));
  L.one = _mm512_set1_epi32(1);
  L.t = lut->t;
  L.lut = reinterpret_cast<const int*>(lut->lut);
  uint8_t* o8 = static_cast<uint8_t*>(out);
  uint16_t* o16 = static_cast<uint16_t*>(out);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i c = codes16(_mm512_loadu_ps(x + i), L);
    if (bits == 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o16 + i), _mm512_cvtepi32_epi16(c));
      continue;
    }
    const __m128i c8 = _mm512_cvtepi32_epi8(c);
    if (bits == 8) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o8 + i), c8);
    } else {  // pairs (a, b) -> a + 16 b, then bytes
      const __m128i pairs = _mm_maddubs_epi16(c8, _mm_set1_epi16(0x1001));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(o8 + i / 2), _mm_packus_epi16(pairs, pairs));
    }
  }
  if (i < n) {
    void* rest = bits == 4 ? static_cast<void*>(o8 + i / 2)
                 : bits == 8 ? static_cast<void*>(o8 + i) : static_cast<void*>(o16 + i);
    f32_code_kmeans1d_assign__scalar(x + i, n - i, lut, bits, rest);
  }
}

}  // namespace kernels
}  // namespace lowbit
