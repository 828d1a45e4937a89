// AVX-512 (F, BW, VL, DQ) quantization kernels; contracts in lowbit/kernels.h, oracle in
// ../scalar/quant__scalar.cc. Tails use masked loads and stores, so there is no scalar tail.
#include <immintrin.h>

#include <cfloat>
#include <cmath>
#include <type_traits>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

inline __mmask16 tail_mask(size_t left) {
  return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
}

// Lanes (within `m`) where x is NaN or +-Inf.
inline __mmask16 nonfinite(__mmask16 m, __m512 x) {
  __m512 a = _mm512_abs_ps(x);
  return _mm512_mask_cmp_ps_mask(m, a, _mm512_set1_ps(FLT_MAX), _CMP_NLE_UQ);
}

inline __m512i q8(__m512 x, __m512 s, __m512 zp, __m512 lo, __m512 hi) {
  __m512 v = _mm512_roundscale_ps(_mm512_div_ps(x, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, zp), lo), hi);
  return _mm512_cvttps_epi32(v);
}

template <typename T>
inline __m512 load16_codes(__mmask16 m, const T* q) {
  __m128i b = _mm_maskz_loadu_epi8(m, q);
  __m512i i = std::is_signed<T>::value ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
  return _mm512_cvtepi32_ps(i);
}

template <typename T>
void dequantize(const T* q, size_t n, float scale, float zp, float* out) {
  const __m512 s = _mm512_set1_ps(scale), z = _mm512_set1_ps(zp);
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_sub_ps(load16_codes(m, q + i), z), s));
  }
}

template <typename T>
void cdequantize(const T* q, size_t n, const float* scale, const float* zp, float* out) {
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 m = tail_mask(n - i);
    __m512 v = _mm512_sub_ps(load16_codes(m, q + i), _mm512_maskz_loadu_ps(m, zp + i));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, scale + i)));
  }
}

}  // namespace

bool f32_f32_minmax__avx512(const float* x, size_t n, float* mn, float* mx) {
  __m512 lo = _mm512_set1_ps(INFINITY), hi = _mm512_set1_ps(-INFINITY);
  __mmask16 bad = 0;
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 m = tail_mask(n - i);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    lo = _mm512_mask_min_ps(lo, m, lo, v);
    hi = _mm512_mask_max_ps(hi, m, hi, v);
    bad |= nonfinite(m, v);
  }
  *mn = _mm512_reduce_min_ps(lo);
  *mx = _mm512_reduce_max_ps(hi);
  return bad == 0;
}

bool f32_f32_cminmax__avx512(const float* x, size_t n, float* mn, float* mx) {
  __mmask16 bad = 0;
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 m = tail_mask(n - i);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(mn + i, m, _mm512_min_ps(v, _mm512_maskz_loadu_ps(m, mn + i)));
    _mm512_mask_storeu_ps(mx + i, m, _mm512_max_ps(v, _mm512_maskz_loadu_ps(m, mx + i)));
    bad |= nonfinite(m, v);
  }
  return bad == 0;
}

bool f32_q8_quantize__avx512(const float* x, size_t n, float scale, float zp, float qmin,
                             float qmax, uint8_t* out) {
  const __m512 s = _mm512_set1_ps(scale), z = _mm512_set1_ps(zp);
  const __m512 lo = _mm512_set1_ps(qmin), hi = _mm512_set1_ps(qmax);
  __mmask16 bad = 0;
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 m = tail_mask(n - i);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    bad |= nonfinite(m, v);
    _mm_mask_storeu_epi8(out + i, m, _mm512_cvtepi32_epi8(q8(v, s, z, lo, hi)));
  }
  return bad == 0;
}

bool f32_q8_cquantize__avx512(const float* x, size_t n, const float* scale, const float* zp,
                              float qmin, float qmax, uint8_t* out) {
  const __m512 lo = _mm512_set1_ps(qmin), hi = _mm512_set1_ps(qmax);
  __mmask16 bad = 0;
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 m = tail_mask(n - i);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    // Masked-off lanes divide 0 by scale 1: no spurious exceptions, results discarded.
    __m512 s = _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), m, scale + i);
    __m512 z = _mm512_maskz_loadu_ps(m, zp + i);
    bad |= nonfinite(m, v);
    _mm_mask_storeu_epi8(out + i, m, _mm512_cvtepi32_epi8(q8(v, s, z, lo, hi)));
  }
  return bad == 0;
}

void qs8_f32_dequantize__avx512(const int8_t* q, size_t n, float scale, float zp, float* out) {
  dequantize(q, n, scale, zp, out);
}
void qu8_f32_dequantize__avx512(const uint8_t* q, size_t n, float scale, float zp, float* out) {
  dequantize(q, n, scale, zp, out);
}
void qs8_f32_cdequantize__avx512(const int8_t* q, size_t n, const float* scale, const float* zp,
                                 float* out) {
  cdequantize(q, n, scale, zp, out);
}
void qu8_f32_cdequantize__avx512(const uint8_t* q, size_t n, const float* scale, const float* zp,
                                 float* out) {
  cdequantize(q, n, scale, zp, out);
}

// The AVX2 unpack: it moves 32 bytes per 64 values and is bound by memory, not by the vector
// width; one tested version instead of a zmm one no CI host could run.
void s4_s8_unpack__avx512(const uint8_t* in, size_t n, int8_t* out) { s4_s8_unpack__avx2(in, n, out); }

}  // namespace kernels
}  // namespace lowbit
