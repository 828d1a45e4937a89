// The GEMM epilogue on zmm registers (GemmTile in lowbit/kernels.h): up to 3 blocks of 16 columns
// of one row, the raw dot products in one vector per block, to their only store. The last block
// (columns 16 (NB - 1) ..) is stored under a mask of its nc - 16 (NB - 1) columns; the others are
// full. Included by the AVX-512 kernel files after simd_x86.h (which maps these intrinsics onto
// SIMDe in the test build); the scalar twin is in csrc/kernels/scalar/gemm__scalar.cc.
#pragma once
#include "lowbit/kernels.h"
#include "simd_x86.h"

namespace lowbit {
namespace kernels {
namespace {

// One block of 16 columns: v += row_add + row_mul * colsum, then the output kind; j0 the block's
// first column; all 16 stored if `full`, else the columns of mask m. Out of line: inlined into
// the tiles, it made GCC 12 copy some of the 6 x 48 tile's accumulators between registers on
// every k-step of the loop before it.
__attribute__((noinline)) void epilogue_block_avx512(const GemmTile& t, size_t r, size_t j0,
                                                     __m512i v, bool full, __mmask16 m) {
  const __m512i add = _mm512_set1_epi32(t.row_add[r]);
  const __m512i mul = _mm512_set1_epi32(t.row_mul[r]);
  const __m512i cs = _mm512_loadu_si512(t.colsum + j0);
  v = _mm512_add_epi32(v, _mm512_add_epi32(add, _mm512_mullo_epi32(mul, cs)));
  switch (t.out_kind) {
    case GemmOut::s32: {
      int32_t* out = static_cast<int32_t*>(t.out) + r * t.ldo + j0;
      if (full)
        _mm512_storeu_si512(out, v);
      else
        _mm512_mask_storeu_epi32(out, m, v);
      return;
    }
    case GemmOut::f32: {
      const __m512 sa = _mm512_set1_ps(t.a_scale[r * t.a_scale_step]);
      const __m512 s = _mm512_mul_ps(sa, _mm512_loadu_ps(t.b_scale + j0));
      __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(v), s);
      if (t.bias) y = _mm512_add_ps(y, _mm512_loadu_ps(t.bias + j0));
      if (t.relu) y = _mm512_max_ps(y, _mm512_setzero_ps());  // +0 for -0 and NaN, as y > 0 ? y : 0
      float* out = static_cast<float*>(t.out) + r * t.ldo + j0;
      if (full)
        _mm512_storeu_ps(out, y);
      else
        _mm512_mask_storeu_ps(out, m, y);
      return;
    }
    case GemmOut::q8: {  // ref::requantize1 (kernels/scalar/quant_ref.h), lane by lane
      if (t.bias_i32) v = _mm512_add_epi32(v, _mm512_loadu_si512(t.bias_i32 + j0));
      __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_loadu_ps(t.q_scale + j0));
      y = _mm512_min_ps(_mm512_max_ps(y, _mm512_set1_ps(t.q_lo)), _mm512_set1_ps(t.q_hi));
      // round half to even (MXCSR), + zero point: q in [-128, 255]; its low byte (vpmovdb)
      const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(y), _mm512_set1_epi32(t.q_zp));
      const __m128i bytes = _mm512_cvtepi32_epi8(q);
      uint8_t* out = static_cast<uint8_t*>(t.out) + r * t.ldo + j0;
      if (full)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out), bytes);
      else
        _mm_mask_storeu_epi8(out, m, bytes);
      return;
    }
  }
}

// Row r of a tile of NB blocks: v0 columns 0-15, v1 16-31, v2 32-47 (blocks >= NB unused).
template <int NB>
inline void epilogue_row_avx512(const GemmTile& t, size_t r, __m512i v0, __m512i v1, __m512i v2) {
  const size_t last = t.nc - 16 * (NB - 1);  // 1 .. 16 columns in the last block
  const bool full = last == 16;
  const __mmask16 m = static_cast<__mmask16>((1u << last) - 1);
  if (NB == 1) return epilogue_block_avx512(t, r, 0, v0, full, m);
  epilogue_block_avx512(t, r, 0, v0, true, 0xFFFF);
  if (NB == 2) return epilogue_block_avx512(t, r, 16, v1, full, m);
  epilogue_block_avx512(t, r, 16, v1, true, 0xFFFF);
  epilogue_block_avx512(t, r, 32, v2, full, m);
}

}  // namespace
}  // namespace kernels
}  // namespace lowbit
