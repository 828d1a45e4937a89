// AVX2 quantization kernels; contracts in lowbit/kernels.h, oracle in ../scalar/quant__scalar.cc.
//
// Tails (the last n % block elements) run one element at a time through the scalar SSE forms of
// the body's instructions (divss / roundss / addss / maxss / minss / cvttss2si for q8, ...):
// the same IEEE operations on one lane, so a tail computes exactly what the body computes, and
// no kernel shares code with its scalar oracle.
#include <immintrin.h>

#include <cfloat>
#include <cmath>
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

// ---- one-lane forms of the body's steps, for the tails ----
inline bool nonfinite1(float x) {
  const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  return _mm_movemask_ps(_mm_cmp_ss(_mm_and_ps(_mm_set_ss(x), abs_mask), _mm_set_ss(FLT_MAX),
                                    _CMP_NLE_UQ)) & 1;
}

inline uint8_t q8_1(float x, float s, float zp, float lo, float hi) {
  __m128 v = _mm_div_ss(_mm_set_ss(x), _mm_set_ss(s));
  v = _mm_round_ss(v, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm_min_ss(_mm_max_ss(_mm_add_ss(v, _mm_set_ss(zp)), _mm_set_ss(lo)), _mm_set_ss(hi));
  return static_cast<uint8_t>(_mm_cvttss_si32(v));
}

template <typename T>
inline float dequantize1(T q, float s, float zp) {
  const __m128 v = _mm_cvtsi32_ss(_mm_setzero_ps(), q);
  return _mm_cvtss_f32(_mm_mul_ss(_mm_sub_ss(v, _mm_set_ss(zp)), _mm_set_ss(s)));
}

// minps(a, x) / maxps(a, x) on one lane, as Intel defines them (x when either is NaN or both
// are zeros); GCC emits minss / maxss for exactly these expressions.
inline float min1(float a, float x) { return a < x ? a : x; }
inline float max1(float a, float x) { return a > x ? a : x; }

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

template <typename T>
void dequantize(const T* q, size_t n, float scale, float zp, float* out) {
  const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zp);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_sub_ps(load8_codes(q + i), z), s));
    _mm256_storeu_ps(out + i + 8, _mm256_mul_ps(_mm256_sub_ps(load8_codes(q + i + 8), z), s));
  }
  for (; i < n; i++) out[i] = dequantize1(q[i], scale, zp);
}

template <typename T>
void cdequantize(const T* q, size_t n, const float* scale, const float* zp, float* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_sub_ps(load8_codes(q + i), _mm256_loadu_ps(zp + i));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(v, _mm256_loadu_ps(scale + i)));
  }
  for (; i < n; i++) out[i] = dequantize1(q[i], scale[i], zp[i]);
}

}  // namespace

bool f32_f32_minmax__avx2(const float* x, size_t n, float* mn, float* mx) {
  __m256 lo0 = _mm256_set1_ps(INFINITY), lo1 = lo0, hi0 = _mm256_set1_ps(-INFINITY), hi1 = hi0;
  __m256 bad = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    lo0 = _mm256_min_ps(lo0, a);
    hi0 = _mm256_max_ps(hi0, a);
    lo1 = _mm256_min_ps(lo1, b);
    hi1 = _mm256_max_ps(hi1, b);
    bad = _mm256_or_ps(bad, _mm256_or_ps(nonfinite(a), nonfinite(b)));
  }
  float lo = hmin(_mm256_min_ps(lo0, lo1)), hi = hmax(_mm256_max_ps(hi0, hi1));
  bool finite = _mm256_movemask_ps(bad) == 0;
  for (; i < n; i++) {
    finite &= !nonfinite1(x[i]);
    lo = min1(lo, x[i]);
    hi = max1(hi, x[i]);
  }
  *mn = lo;
  *mx = hi;
  return finite;
}

bool f32_f32_cminmax__avx2(const float* x, size_t n, float* mn, float* mx) {
  __m256 bad = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(mn + i, _mm256_min_ps(v, _mm256_loadu_ps(mn + i)));
    _mm256_storeu_ps(mx + i, _mm256_max_ps(v, _mm256_loadu_ps(mx + i)));
    bad = _mm256_or_ps(bad, nonfinite(v));
  }
  bool finite = _mm256_movemask_ps(bad) == 0;
  for (; i < n; i++) {
    finite &= !nonfinite1(x[i]);
    mn[i] = min1(x[i], mn[i]);
    mx[i] = max1(x[i], mx[i]);
  }
  return finite;
}

bool f32_q8_quantize__avx2(const float* x, size_t n, float scale, float zp, float qmin,
                           float qmax, uint8_t* out) {
  const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zp);
  const __m256 lo = _mm256_set1_ps(qmin), hi = _mm256_set1_ps(qmax);
  __m256 bad = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    __m256 c = _mm256_loadu_ps(x + i + 16), d = _mm256_loadu_ps(x + i + 24);
    bad = _mm256_or_ps(_mm256_or_ps(bad, _mm256_or_ps(nonfinite(a), nonfinite(b))),
                       _mm256_or_ps(nonfinite(c), nonfinite(d)));
    store32(out + i, q8(a, s, z, lo, hi), q8(b, s, z, lo, hi), q8(c, s, z, lo, hi),
            q8(d, s, z, lo, hi));
  }
  bool finite = _mm256_movemask_ps(bad) == 0;
  for (; i < n; i++) {
    finite &= !nonfinite1(x[i]);
    out[i] = q8_1(x[i], scale, zp, qmin, qmax);
  }
  return finite;
}

bool f32_q8_cquantize__avx2(const float* x, size_t n, const float* scale, const float* zp,
                            float qmin, float qmax, uint8_t* out) {
  const __m256 lo = _mm256_set1_ps(qmin), hi = _mm256_set1_ps(qmax);
  __m256 bad = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i q[4];
    for (int j = 0; j < 4; j++) {
      __m256 v = _mm256_loadu_ps(x + i + 8 * j);
      bad = _mm256_or_ps(bad, nonfinite(v));
      q[j] = q8(v, _mm256_loadu_ps(scale + i + 8 * j), _mm256_loadu_ps(zp + i + 8 * j), lo, hi);
    }
    store32(out + i, q[0], q[1], q[2], q[3]);
  }
  bool finite = _mm256_movemask_ps(bad) == 0;
  for (; i < n; i++) {
    finite &= !nonfinite1(x[i]);
    out[i] = q8_1(x[i], scale[i], zp[i], qmin, qmax);
  }
  return finite;
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

// One block (64 values, 32 bytes) per step: its low nibbles are values 0-31, its high ones 32-63.
void s4_s8_unpack__avx2(const uint8_t* in, size_t n, int8_t* out) {
  const __m256i mask = _mm256_set1_epi8(0x0F), bias = _mm256_set1_epi8(8);
  for (size_t i = 0; i < n; i += 64, in += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in));
    const __m256i lo = _mm256_sub_epi8(_mm256_and_si256(v, mask), bias);
    const __m256i hi = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(v, 4), mask), bias);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 32), hi);
  }
}

}  // namespace kernels
}  // namespace lowbit
