// The GEMM epilogue on ymm registers (GemmTile in lowbit/kernels.h): 16 columns of one row, the
// raw dot products in two vectors (columns 0-7, 8-15), to their only store. Included by the
// AVX2-class kernel files (compiled with AVX2 flags); the scalar twin is in
// csrc/kernels/scalar/gemm__scalar.cc.
#pragma once
#include <immintrin.h>

#include <cstring>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

inline void epilogue_row_avx2(const GemmTile& t, size_t r, __m256i v0, __m256i v1) {
  // zero-point terms: v += row_add[r] + row_mul[r] * colsum[j] (wrapping)
  const __m256i add = _mm256_set1_epi32(t.row_add[r]);
  const __m256i mul = _mm256_set1_epi32(t.row_mul[r]);
  const __m256i* cs = reinterpret_cast<const __m256i*>(t.colsum);
  v0 = _mm256_add_epi32(v0, _mm256_add_epi32(add, _mm256_mullo_epi32(mul, _mm256_loadu_si256(cs))));
  v1 = _mm256_add_epi32(v1, _mm256_add_epi32(add, _mm256_mullo_epi32(mul, _mm256_loadu_si256(cs + 1))));
  const bool full = t.nc == 16;
  alignas(32) char tmp[64];
  switch (t.out_kind) {
    case GemmOut::s32: {
      int32_t* out = static_cast<int32_t*>(t.out) + r * t.ldo;
      __m256i* dst = full ? reinterpret_cast<__m256i*>(out) : reinterpret_cast<__m256i*>(tmp);
      _mm256_storeu_si256(dst, v0);
      _mm256_storeu_si256(dst + 1, v1);
      if (!full) std::memcpy(out, tmp, t.nc * 4);
      return;
    }
    case GemmOut::f32: {
      const __m256 sa = _mm256_set1_ps(t.a_scale[r * t.a_scale_step]);
      __m256 y0 = _mm256_mul_ps(_mm256_cvtepi32_ps(v0), _mm256_mul_ps(sa, _mm256_loadu_ps(t.b_scale)));
      __m256 y1 = _mm256_mul_ps(_mm256_cvtepi32_ps(v1), _mm256_mul_ps(sa, _mm256_loadu_ps(t.b_scale + 8)));
      if (t.bias) {
        y0 = _mm256_add_ps(y0, _mm256_loadu_ps(t.bias));
        y1 = _mm256_add_ps(y1, _mm256_loadu_ps(t.bias + 8));
      }
      if (t.relu) {  // max(y, +0) returns +0 for -0 and NaN, as y > 0 ? y : 0 does
        y0 = _mm256_max_ps(y0, _mm256_setzero_ps());
        y1 = _mm256_max_ps(y1, _mm256_setzero_ps());
      }
      float* out = static_cast<float*>(t.out) + r * t.ldo;
      float* dst = full ? out : reinterpret_cast<float*>(tmp);
      _mm256_storeu_ps(dst, y0);
      _mm256_storeu_ps(dst + 8, y1);
      if (!full) std::memcpy(out, tmp, t.nc * 4);
      return;
    }
    case GemmOut::q8: {  // ref::requantize1 (kernels/scalar/quant_ref.h), lane by lane
      if (t.bias_i32) {
        v0 = _mm256_add_epi32(v0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.bias_i32)));
        v1 = _mm256_add_epi32(v1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.bias_i32 + 8)));
      }
      const __m256 lo = _mm256_set1_ps(t.q_lo), hi = _mm256_set1_ps(t.q_hi);
      __m256 y0 = _mm256_mul_ps(_mm256_cvtepi32_ps(v0), _mm256_loadu_ps(t.q_scale));
      __m256 y1 = _mm256_mul_ps(_mm256_cvtepi32_ps(v1), _mm256_loadu_ps(t.q_scale + 8));
      y0 = _mm256_min_ps(_mm256_max_ps(y0, lo), hi);
      y1 = _mm256_min_ps(_mm256_max_ps(y1, lo), hi);
      const __m256i zp = _mm256_set1_epi32(t.q_zp);
      const __m256i q0 = _mm256_add_epi32(_mm256_cvtps_epi32(y0), zp);  // round half to even
      const __m256i q1 = _mm256_add_epi32(_mm256_cvtps_epi32(y1), zp);
      // q is in [-128, 255]: through int16 (no saturation), then the low byte of each
      const __m128i w0 = _mm_packs_epi32(_mm256_castsi256_si128(q0), _mm256_extracti128_si256(q0, 1));
      const __m128i w1 = _mm_packs_epi32(_mm256_castsi256_si128(q1), _mm256_extracti128_si256(q1, 1));
      const __m128i low = _mm_set1_epi16(0xFF);
      const __m128i bytes = _mm_packus_epi16(_mm_and_si128(w0, low), _mm_and_si128(w1, low));
      uint8_t* out = static_cast<uint8_t*>(t.out) + r * t.ldo;
      if (full)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out), bytes);
      else {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(tmp), bytes);
        std::memcpy(out, tmp, t.nc);
      }
      return;
    }
  }
}

}  // namespace
}  // namespace kernels
}  // namespace lowbit
