// AVX2 k-means kernels (the nearest-centroid assignments); contracts in lowbit/kernels.h, oracle
// in ../scalar/kmeans__scalar.cc (tails are handed to it, so they match by construction; the
// assignment pads its last block instead).
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

// ---- assignment -------------------------------------------------------------------------------
// 32 points a block, lanes = points: every lane runs the scalar reference's exact sequence of
// float operations for its point, so scores (and the first argmin) match it bit for bit.
constexpr size_t kBlock = 32;

// The index lanes: j where the score improved (mask m), else unchanged. One vblendvps instead
// of an and + max_epu32 pair (the same result, since j only grows): on Zen 3 the compare, min
// and multiplies share two pipes, and the kernel measured 7-9% faster for d = 4 and 8.
inline __m256i take_where(__m256i i, __m256i jv, __m256 m) {
  return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(i), _mm256_castsi256_ps(jv), m));
}

// The scan over all k centroids for G groups of 8 points (lanes), coordinate t of group g
// being x_at(t, g) (registers, or loads), dd coordinates (D > 0: D, known at compile time):
// per lane the index of the first lowest score. The small loops are unrolled by pragma: -O2
// leaves the nested ones rolled, and held coordinates then go through memory (measured 2x
// slower for d = 4).
template <int D, int G, typename XAt>
inline void scan(const XAt& x_at, size_t dd, const float* c, const float* hn, size_t k,
                 __m256i (&i)[G]) {
  __m256 b[G];
  #pragma GCC unroll 8
  for (int g = 0; g < G; g++) {
    b[g] = _mm256_set1_ps(INFINITY);
    i[g] = _mm256_setzero_si256();
  }
  __m256i jv = _mm256_setzero_si256();
  const __m256i one = _mm256_set1_epi32(1);
  for (size_t j = 0; j < k; j++) {
    const float* cj = c + j * dd;
    __m256 s[G];
    #pragma GCC unroll 8
    for (int g = 0; g < G; g++) s[g] = _mm256_broadcast_ss(hn + j);
    #pragma GCC unroll 8
    for (size_t t = 0; t < (D > 0 ? size_t(D) : dd); t++) {
      const __m256 cb = _mm256_broadcast_ss(cj + t);
      #pragma GCC unroll 8
      for (int g = 0; g < G; g++) s[g] = _mm256_fnmadd_ps(x_at(t, g), cb, s[g]);
    }
    #pragma GCC unroll 8
    for (int g = 0; g < G; g++) {
      const __m256 m = _mm256_cmp_ps(s[g], b[g], _CMP_LT_OQ);
      b[g] = _mm256_min_ps(s[g], b[g]);  // = s where s < b, else b (also for NaN s)
      i[g] = take_where(i[g], jv, m);
    }
    jv = _mm256_add_epi32(jv, one);
  }
}

// G groups of 8 points (lanes), rows of the transposed block kBlock floats apart. D > 0: the
// dimension known at compile time (for D <= 4 the points' coordinates stay in registers across
// all centroids); 0: any d.
template <int D, int G>
void assign_groups(const float* xs, size_t d, const float* c, const float* hn, size_t k,
                   uint32_t* idx) {
  __m256i i[G];
  if constexpr (D > 0 && D <= 4) {
    __m256 xr[D][G];
    #pragma GCC unroll 8
    for (int t = 0; t < D; t++) {
      #pragma GCC unroll 8
      for (int g = 0; g < G; g++) xr[t][g] = _mm256_loadu_ps(xs + t * kBlock + 8 * g);
    }
    scan<D, G>([&](size_t t, int g) { return xr[t][g]; }, D, c, hn, k, i);
  } else {
    const auto load = [&](size_t t, int g) { return _mm256_loadu_ps(xs + t * kBlock + 8 * g); };
    scan<D, G>(load, D > 0 ? size_t(D) : d, c, hn, k, i);
  }
  #pragma GCC unroll 8
  for (int g = 0; g < G; g++) _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + 8 * g), i[g]);
}

// d = 4 straight from the rows, 16 points at a time: each 8 (four registers of two points)
// are transposed in registers, which leaves the lanes holding points 0 2 4 6 1 3 5 7; the
// indices are put back in order before the store. Saves the block's scalar transposition
// (measured 7% of a k-means run).
void assign16_d4(const float* x, const float* c, const float* hn, size_t k, uint32_t* idx) {
  __m256 xr[4][2];
  for (int g = 0; g < 2; g++) {
    const float* p = x + 32 * g;
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    const __m256 e = _mm256_loadu_ps(p + 16), f = _mm256_loadu_ps(p + 24);
    const __m256 t0 = _mm256_unpacklo_ps(a, b), t1 = _mm256_unpackhi_ps(a, b);
    const __m256 t2 = _mm256_unpacklo_ps(e, f), t3 = _mm256_unpackhi_ps(e, f);
    xr[0][g] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    xr[1][g] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    xr[2][g] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    xr[3][g] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  }
  __m256i i[2];
  scan<4, 2>([&](size_t t, int g) { return xr[t][g]; }, 4, c, hn, k, i);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // point p sits in lane order[p]
  for (int g = 0; g < 2; g++)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + 8 * g),
                        _mm256_permutevar8x32_epi32(i[g], order));
}

void assign_d4(const float* x, size_t n, const float* c, const float* hn, size_t k,
               uint32_t* idx) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) assign16_d4(x + 4 * i, c, hn, k, idx + i);
  if (i < n) {  // the last points, padded with copies of the last one (lanes are independent)
    const size_t r = n - i;
    float xb[64];
    uint32_t ib[16];
    for (size_t p = 0; p < 16; p++) std::memcpy(xb + 4 * p, x + 4 * (i + std::min(p, r - 1)), 16);
    assign16_d4(xb, c, hn, k, ib);
    for (size_t p = 0; p < r; p++) idx[i + p] = ib[p];
  }
}

// One block of 32 points: two halves of two groups where the coordinates are held in
// registers (registers run out otherwise), else four groups at once.
template <int D>
void assign_block(const float* xs, size_t d, const float* c, const float* hn, size_t k,
                  uint32_t* idx) {
  if (D > 0 && D <= 4) {
    assign_groups<D, 2>(xs, d, c, hn, k, idx);
    assign_groups<D, 2>(xs + 16, d, c, hn, k, idx + 16);
  } else {
    assign_groups<D, 4>(xs, d, c, hn, k, idx);
  }
}

// ---- 1-D assignment ---------------------------------------------------------------------------
struct Lut8 {
  __m256 lo, inv_w, top, zero;
  __m256i nt, ntm1;
  const float* t;
  const int* lut;
};

inline __m256i codes8(__m256 x, const Lut8& L) {
  __m256 v = _mm256_mul_ps(_mm256_sub_ps(x, L.lo), L.inv_w);
  v = _mm256_min_ps(_mm256_max_ps(v, L.zero), L.top);  // same selects as the reference
  const __m256i e = _mm256_i32gather_epi32(L.lut, _mm256_cvttps_epi32(v), 4);
  __m256i c = _mm256_and_si256(e, _mm256_set1_epi32(0x7FFFFFFF));
  const __m256i flagged = _mm256_srai_epi32(e, 31);  // lanes whose bin holds a threshold
  if (_mm256_testz_si256(flagged, flagged)) return c;
  for (;;) {
    const __m256 tv = _mm256_i32gather_ps(L.t, _mm256_min_epu32(c, L.ntm1), 4);
    const __m256i step = _mm256_and_si256(
        _mm256_and_si256(flagged, _mm256_cmpgt_epi32(L.nt, c)),
        _mm256_castps_si256(_mm256_cmp_ps(x, tv, _CMP_GE_OQ)));
    if (_mm256_testz_si256(step, step)) return c;
    c = _mm256_sub_epi32(c, step);  // step lanes are -1
  }
}

}  // namespace

void f32_u32_kmeans_assign__avx2(const float* x, size_t n, size_t d, const float* c,
                                 const float* hn, size_t k, uint32_t* idx) {
  if (d == 4) return assign_d4(x, n, c, hn, k, idx);
  assign_in_blocks<kBlock>(x, n, d, idx, [&](const float* xs, uint32_t* out) {
    switch (d) {
      case 1: assign_block<1>(xs, d, c, hn, k, out); break;
      case 2: assign_block<2>(xs, d, c, hn, k, out); break;
      case 3: assign_block<3>(xs, d, c, hn, k, out); break;
      case 8: assign_block<8>(xs, d, c, hn, k, out); break;
      default: assign_block<0>(xs, d, c, hn, k, out);
    }
  });
}

void f32_code_kmeans1d_assign__avx2(const float* x, size_t n, const Kmeans1dLut* lut, int bits,
                                    void* out) {
  Lut8 L;
  L.lo = _mm256_set1_ps(lut->lo);
  L.inv_w = _mm256_set1_ps(lut->inv_w);
  L.top = _mm256_set1_ps(static_cast<float>(lut->nbins - 1));
  L.zero = _mm256_setzero_ps();
  L.nt = _mm256_set1_epi32(static_cast<int>(lut->nt));
  L.ntm1 = _mm256_set1_epi32(static_cast<int>(lut->nt - 1));
  L.t = lut->t;
  L.lut = reinterpret_cast<const int*>(lut->lut);
  uint8_t* o8 = static_cast<uint8_t*>(out);
  uint16_t* o16 = static_cast<uint16_t*>(out);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i c = codes8(_mm256_loadu_ps(x + i), L);
    const __m128i c16 = _mm_packus_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    if (bits == 16) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o16 + i), c16);
      continue;
    }
    const __m128i c8 = _mm_packus_epi16(c16, c16);
    if (bits == 8) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(o8 + i), c8);
    } else {  // pairs (a, b) -> a + 16 b, then bytes
      const __m128i pairs = _mm_maddubs_epi16(c8, _mm_set1_epi16(0x1001));
      const int packed = _mm_cvtsi128_si32(_mm_packus_epi16(pairs, pairs));
      std::memcpy(o8 + i / 2, &packed, 4);
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
