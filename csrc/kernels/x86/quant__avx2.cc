// AVX2 quantization kernels; contracts in lowbit/kernels.h, oracle in ../scalar/quant__scalar.cc.
//
// Tails: the last n % block elements are copied into a padded block and run through the body's
// own vector code (padding that cannot change a result: 0 for values and zero points, 1 for
// scales, a value of the tail for min/max), so a tail computes exactly what the body computes and
// no kernel shares code with its scalar oracle.
#include <immintrin.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

// All-ones lanes where |x| > FLT_MAX or x is NaN.
inline __m256 nonfinite(__m256 x) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  return _mm256_cmp_ps(_mm256_and_ps(x, abs_mask), _mm256_set1_ps(FLT_MAX), _CMP_NLE_UQ);
}

inline float hmin(__m256 v) {
  __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_min_ps(m, _mm_movehl_ps(m, m));
  m = _mm_min_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// clamp(rne(x / s) + zp) as int32 lanes (exact: the value is integral and in range).
inline __m256i q8(__m256 x, __m256 s, __m256 zp, __m256 lo, __m256 hi) {
  __m256 v = _mm256_round_ps(_mm256_div_ps(x, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, zp), lo), hi);
  return _mm256_cvttps_epi32(v);
}

// Four vectors of int32 codes in [-128, 255] -> 32 bytes (low 8 bits of each), in order.
inline void store32(uint8_t* out, __m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ff = _mm256_set1_epi16(0xff);
  __m256i ab = _mm256_and_si256(_mm256_packs_epi32(a, b), ff);
  __m256i cd = _mm256_and_si256(_mm256_packs_epi32(c, d), ff);
  __m256i abcd = _mm256_packus_epi16(ab, cd);
  abcd = _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), abcd);
}

template <typename T>
inline __m256 load8_codes(const T* q) {
  __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q));
  __m256i i = std::is_signed<T>::value ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
  return _mm256_cvtepi32_ps(i);
}

// The first r < N elements of src into a block of N, the rest `pad`.
template <size_t N, typename T>
inline void pad_block(T (&dst)[N], const T* src, size_t r, T pad) {
  std::memcpy(dst, src, r * sizeof(T));
  for (size_t j = r; j < N; j++) dst[j] = pad;
}

template <typename T>
inline void dequantize16(const T* q, __m256 s, __m256 z, float* out) {
  _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_sub_ps(load8_codes(q), z), s));
  _mm256_storeu_ps(out + 8, _mm256_mul_ps(_mm256_sub_ps(load8_codes(q + 8), z), s));
}

template <typename T>
void dequantize(const T* q, size_t n, float scale, float zp, float* out) {
  const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zp);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) dequantize16(q + i, s, z, out + i);
  if (const size_t r = n - i) {
    T bq[16];
    float bo[16];
    pad_block(bq, q + i, r, T(0));
    dequantize16(bq, s, z, bo);
    std::memcpy(out + i, bo, r * sizeof(float));
  }
}

template <typename T>
inline void cdequantize8(const T* q, const float* scale, const float* zp, float* out) {
  __m256 v = _mm256_sub_ps(load8_codes(q), _mm256_loadu_ps(zp));
  _mm256_storeu_ps(out, _mm256_mul_ps(v, _mm256_loadu_ps(scale)));
}

template <typename T>
void cdequantize(const T* q, size_t n, const float* scale, const float* zp, float* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) cdequantize8(q + i, scale + i, zp + i, out + i);
  if (const size_t r = n - i) {
    T bq[8];
    float bs[8], bz[8], bo[8];
    pad_block(bq, q + i, r, T(0));
    pad_block(bs, scale + i, r, 1.0f);
    pad_block(bz, zp + i, r, 0.0f);
    cdequantize8(bq, bs, bz, bo);
    std::memcpy(out + i, bo, r * sizeof(float));
  }
}

// 32 codes of x with one scale and zero point; returns the lanes where x is not finite.
inline __m256 quantize32(const float* x, __m256 s, __m256 z, __m256 lo, __m256 hi, uint8_t* out) {
  __m256 a = _mm256_loadu_ps(x), b = _mm256_loadu_ps(x + 8);
  __m256 c = _mm256_loadu_ps(x + 16), d = _mm256_loadu_ps(x + 24);
  store32(out, q8(a, s, z, lo, hi), q8(b, s, z, lo, hi), q8(c, s, z, lo, hi), q8(d, s, z, lo, hi));
  return _mm256_or_ps(_mm256_or_ps(nonfinite(a), nonfinite(b)),
                      _mm256_or_ps(nonfinite(c), nonfinite(d)));
}

inline __m256 cquantize32(const float* x, const float* scale, const float* zp, __m256 lo,
                          __m256 hi, uint8_t* out) {
  __m256i q[4];
  __m256 bad = _mm256_setzero_ps();
  for (int j = 0; j < 4; j++) {
    __m256 v = _mm256_loadu_ps(x + 8 * j);
    bad = _mm256_or_ps(bad, nonfinite(v));
    q[j] = q8(v, _mm256_loadu_ps(scale + 8 * j), _mm256_loadu_ps(zp + 8 * j), lo, hi);
  }
  store32(out, q[0], q[1], q[2], q[3]);
  return bad;
}

}  // namespace

bool f32_f32_minmax__avx2(const float* x, size_t n, float* mn, float* mx) {
  __m256 lo0 = _mm256_set1_ps(INFINITY), lo1 = lo0, hi0 = _mm256_set1_ps(-INFINITY), hi1 = hi0;
  __m256 bad = _mm256_setzero_ps();
  auto block = [&](const float* p) {
    __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    lo0 = _mm256_min_ps(lo0, a);
    hi0 = _mm256_max_ps(hi0, a);
    lo1 = _mm256_min_ps(lo1, b);
    hi1 = _mm256_max_ps(hi1, b);
    bad = _mm256_or_ps(bad, _mm256_or_ps(nonfinite(a), nonfinite(b)));
  };
  size_t i = 0;
  for (; i + 16 <= n; i += 16) block(x + i);
  if (const size_t r = n - i) {
    float bx[16];
    pad_block(bx, x + i, r, x[i]);
    block(bx);
  }
  *mn = hmin(_mm256_min_ps(lo0, lo1));
  *mx = hmax(_mm256_max_ps(hi0, hi1));
  return _mm256_movemask_ps(bad) == 0;
}

bool f32_f32_cminmax__avx2(const float* x, size_t n, float* mn, float* mx) {
  __m256 bad = _mm256_setzero_ps();
  auto block = [&](const float* p, float* pmn, float* pmx) {
    __m256 v = _mm256_loadu_ps(p);
    _mm256_storeu_ps(pmn, _mm256_min_ps(v, _mm256_loadu_ps(pmn)));
    _mm256_storeu_ps(pmx, _mm256_max_ps(v, _mm256_loadu_ps(pmx)));
    bad = _mm256_or_ps(bad, nonfinite(v));
  };
  size_t i = 0;
  for (; i + 8 <= n; i += 8) block(x + i, mn + i, mx + i);
  if (const size_t r = n - i) {
    float bx[8], bmn[8], bmx[8];
    pad_block(bx, x + i, r, 0.0f);
    pad_block(bmn, mn + i, r, 0.0f);
    pad_block(bmx, mx + i, r, 0.0f);
    block(bx, bmn, bmx);
    std::memcpy(mn + i, bmn, r * sizeof(float));
    std::memcpy(mx + i, bmx, r * sizeof(float));
  }
  return _mm256_movemask_ps(bad) == 0;
}

bool f32_q8_quantize__avx2(const float* x, size_t n, float scale, float zp, float qmin,
                           float qmax, uint8_t* out) {
  const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zp);
  const __m256 lo = _mm256_set1_ps(qmin), hi = _mm256_set1_ps(qmax);
  __m256 bad = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) bad = _mm256_or_ps(bad, quantize32(x + i, s, z, lo, hi, out + i));
  if (const size_t r = n - i) {
    float bx[32];
    uint8_t bo[32];
    pad_block(bx, x + i, r, 0.0f);
    bad = _mm256_or_ps(bad, quantize32(bx, s, z, lo, hi, bo));
    std::memcpy(out + i, bo, r);
  }
  return _mm256_movemask_ps(bad) == 0;
}

bool f32_q8_cquantize__avx2(const float* x, size_t n, const float* scale, const float* zp,
                            float qmin, float qmax, uint8_t* out) {
  const __m256 lo = _mm256_set1_ps(qmin), hi = _mm256_set1_ps(qmax);
  __m256 bad = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    bad = _mm256_or_ps(bad, cquantize32(x + i, scale + i, zp + i, lo, hi, out + i));
  if (const size_t r = n - i) {
    float bx[32], bs[32], bz[32];
    uint8_t bo[32];
    pad_block(bx, x + i, r, 0.0f);
    pad_block(bs, scale + i, r, 1.0f);
    pad_block(bz, zp + i, r, 0.0f);
    bad = _mm256_or_ps(bad, cquantize32(bx, bs, bz, lo, hi, bo));
    std::memcpy(out + i, bo, r);
  }
  return _mm256_movemask_ps(bad) == 0;
}

void qs8_f32_dequantize__avx2(const int8_t* q, size_t n, float scale, float zp, float* out) {
  dequantize(q, n, scale, zp, out);
}
void qu8_f32_dequantize__avx2(const uint8_t* q, size_t n, float scale, float zp, float* out) {
  dequantize(q, n, scale, zp, out);
}
void qs8_f32_cdequantize__avx2(const int8_t* q, size_t n, const float* scale, const float* zp,
                               float* out) {
  cdequantize(q, n, scale, zp, out);
}
void qu8_f32_cdequantize__avx2(const uint8_t* q, size_t n, const float* scale, const float* zp,
                               float* out) {
  cdequantize(q, n, scale, zp, out);
}

}  // namespace kernels
}  // namespace lowbit
