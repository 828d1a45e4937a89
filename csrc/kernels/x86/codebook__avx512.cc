// AVX-512 (F, BW, VL, DQ) codebook kernels (decode lookups and the codebook GEMMs); contracts in
// lowbit/kernels.h, oracle in ../scalar/codebook__scalar.cc (tails are handed to it, so they
// match by construction). The codebook GEMMs are the AVX2 ones: integer results are identical
// by definition.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

inline void copy_row(float* dst, const float* src, size_t d) {
  switch (d) {
    case 4:
      _mm_storeu_ps(dst, _mm_loadu_ps(src));
      return;
    case 8:
      _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
      return;
    case 16:
      _mm512_storeu_ps(dst, _mm512_loadu_ps(src));
      return;
    default:
      std::memcpy(dst, src, d * sizeof(float));
  }
}

}  // namespace

// Writes 16 floats a step with fn(i) -> __m512, streaming them (64-byte aligned) when asked;
// tail(i, m) handles single elements.
template <typename Step, typename Tail>
void write16(size_t n, float* out, int flags, Step fn, Tail tail) {
  size_t i = 0;
  if (flags & kLookupStream) {
    while (i < n && (reinterpret_cast<uintptr_t>(out + i) & 63)) {
      const size_t m = std::min<size_t>(2, n - i);  // pairs keep 4-bit codes byte aligned
      tail(i, m);
      i += m;
    }
    for (; i + 16 <= n; i += 16) _mm512_stream_ps(out + i, fn(i));
    _mm_sfence();
  }
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, fn(i));
  if (i < n) tail(i, n - i);
}

void u4_f32_lookup__avx512(const uint8_t* codes, size_t n, const float* table, size_t d,
                           float* out, int flags) {
  if (d != 1) {
    for (size_t i = 0; i < n; i++)
      copy_row(out + i * d, table + ((codes[i / 2] >> ((i & 1) * 4)) & 15u) * d, d);
    return;
  }
  // The whole 16-entry table is one register; 8 bytes hold the next 16 codes.
  const __m512 t = _mm512_loadu_ps(table);
  const __m512i shifts = _mm512_set4_epi32(4, 0, 4, 0);  // lanes 0, 1, 2, 3 = 0, 4, 0, 4
  write16(n, out, flags, [&](size_t i) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + i / 2));
    const __m512i v = _mm512_srlv_epi32(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, b)), shifts);
    return _mm512_permutexvar_ps(v, t);  // uses bits 0-3 of each lane
  }, [&](size_t i, size_t m) { u4_f32_lookup__scalar(codes + i / 2, m, table, 1, out + i, 0); });
}

void u8_f32_lookup__avx512(const uint8_t* codes, size_t n, const float* table, size_t d,
                           float* out, int flags) {
  if (d != 1) {
    for (size_t i = 0; i < n; i++) copy_row(out + i * d, table + codes[i] * d, d);
    return;
  }
  write16(n, out, flags, [&](size_t i) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i));
    return _mm512_i32gather_ps(_mm512_cvtepu8_epi32(b), table, 4);
  }, [&](size_t i, size_t m) { u8_f32_lookup__scalar(codes + i, m, table, 1, out + i, 0); });
}

void u16_f32_lookup__avx512(const uint16_t* codes, size_t n, const float* table, size_t d,
                            float* out, int flags) {
  if (d != 1) {
    for (size_t i = 0; i < n; i++) copy_row(out + i * d, table + size_t(codes[i]) * d, d);
    return;
  }
  write16(n, out, flags, [&](size_t i) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i));
    return _mm512_i32gather_ps(_mm512_cvtepu16_epi32(v), table, 4);
  }, [&](size_t i, size_t m) { u16_f32_lookup__scalar(codes + i, m, table, 1, out + i, 0); });
}

void s8cb4_s64_gemm__avx512(size_t mr, size_t nr, size_t kp, const int8_t* x, size_t ldx,
                            const uint8_t* w, size_t ldw, const int8_t* table, int64_t* y,
                            size_t ldy) {
  s8cb4_s64_gemm__avx2(mr, nr, kp, x, ldx, w, ldw, table, y, ldy);
}

void s16s16_s64_gemm__avx512(size_t mr, size_t nr, size_t kp, const int16_t* x, size_t ldx,
                             const int16_t* w, size_t ldw, int64_t* y, size_t ldy) {
  s16s16_s64_gemm__avx2(mr, nr, kp, x, ldx, w, ldw, y, ldy);
}

void s16cb4_s64_gemm__avx512(size_t mr, size_t nr, size_t kp, const int16_t* x, size_t ldx,
                             const uint8_t* w, size_t ldw, const int16_t* table, int64_t* y,
                             size_t ldy) {
  s16cb4_s64_gemm__avx2(mr, nr, kp, x, ldx, w, ldw, table, y, ldy);
}

}  // namespace kernels
}  // namespace lowbit
