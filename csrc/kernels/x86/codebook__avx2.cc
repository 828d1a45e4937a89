// AVX2 codebook kernels (decode lookups and the codebook GEMMs of CodebookLinear); contracts in
// lowbit/kernels.h, oracle in ../scalar/codebook__scalar.cc (tails are handed to it, so they
// match by construction).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/tiles.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

// ---- lookups ----------------------------------------------------------------------------------
inline void copy_row(float* dst, const float* src, size_t d) {
  switch (d) {
    case 2: {
      double v;
      std::memcpy(&v, src, 8);
      std::memcpy(dst, &v, 8);
      return;
    }
    case 4:
      _mm_storeu_ps(dst, _mm_loadu_ps(src));
      return;
    case 8:
      _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
      return;
    case 16:
      _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
      _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(src + 8));
      return;
    default:
      std::memcpy(dst, src, d * sizeof(float));
  }
}

// ---- codebook GEMMs ---------------------------------------------------------------------------
// Dense int16: int32 lanes take at most 8 units of 8 products (|x|, |w| <= 4095:
// 64 * 4095^2 < 2^31) before they are widened to int64.
constexpr size_t kChunkUnits = 8;

inline int64_t hsum_epi32(__m256i v) {
  const __m256i s = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)),
                                     _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)));
  const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  return _mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1);
}

// 4 vectors of 16 int16: x[0..63] of a unit.
inline __m256i dot_unit(const int16_t* x, __m256i w0, __m256i w1, __m256i w2, __m256i w3) {
  const __m256i a = _mm256_add_epi32(
      _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)), w0),
      _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 16)), w1));
  const __m256i b = _mm256_add_epi32(
      _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32)), w2),
      _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 48)), w3));
  return _mm256_add_epi32(a, b);
}

// 4-bit codes: the 16-entry int8 table is one vpshufb per 32 weights. Products x * w go through
// vpmaddubsw as |x| * (w with the sign of x): |pair| <= 2 * 127 * 127 fits int16 exactly; then
// vpmaddwd with ones widens to int32 (a lane takes 8 products a unit, far from 2^31 in 8 units).
template <int MR, int NR>
void cb4_tile(size_t kp, const int8_t* x, size_t ldx, const uint8_t* w, size_t ldw, __m256i table,
              int64_t* y, size_t ldy) {
  const __m256i m0f = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  int64_t total[MR][NR] = {};
  const size_t units = kp / 64;
  for (size_t u0 = 0; u0 < units; u0 += kChunkUnits) {
    const size_t u1 = std::min(units, u0 + kChunkUnits);
    __m256i acc[MR][NR];
    for (int r = 0; r < MR; r++)
      for (int c = 0; c < NR; c++) acc[r][c] = _mm256_setzero_si256();
    for (size_t u = u0; u < u1; u++) {
      __m256i wl[NR], wh[NR];  // weights 0-31 and 32-63 of the unit, per row
      for (int c = 0; c < NR; c++) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + c * ldw + u * 32));
        wl[c] = _mm256_shuffle_epi8(table, _mm256_and_si256(v, m0f));
        wh[c] = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), m0f));
      }
      for (int r = 0; r < MR; r++) {
        const int8_t* xr = x + r * ldx + u * 64;
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr));
        const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + 32));
        const __m256i a0 = _mm256_abs_epi8(x0), a1 = _mm256_abs_epi8(x1);
        for (int c = 0; c < NR; c++) {
          const __m256i p0 = _mm256_maddubs_epi16(a0, _mm256_sign_epi8(wl[c], x0));
          const __m256i p1 = _mm256_maddubs_epi16(a1, _mm256_sign_epi8(wh[c], x1));
          acc[r][c] = _mm256_add_epi32(
              acc[r][c], _mm256_add_epi32(_mm256_madd_epi16(p0, ones), _mm256_madd_epi16(p1, ones)));
        }
      }
    }
    for (int r = 0; r < MR; r++)
      for (int c = 0; c < NR; c++) total[r][c] += hsum_epi32(acc[r][c]);
  }
  for (int r = 0; r < MR; r++)
    for (int c = 0; c < NR; c++) y[r * ldy + c] = total[r][c];
}

// Weight sources of s16_tile: unit(c, u, w) sets the 4 vectors of 16 int16 weights of unit u
// (weights 64u .. 64u + 63) of row c; rows(c) is the source from row c on.
struct DenseWeights {
  const int16_t* w;
  size_t ldw;
  void unit(int c, size_t u, __m256i* out) const {
    const __m256i* p = reinterpret_cast<const __m256i*>(w + c * ldw + u * 64);
    for (int q = 0; q < 4; q++) out[q] = _mm256_loadu_si256(p + q);
  }
  DenseWeights rows(size_t c) const { return {w + c * ldw, ldw}; }
};

// 4-bit codes into an int16 table: two vpshufb give the low and high bytes of 32 weights,
// unpacking interleaves them into int16 lanes -- within 128-bit lanes, which is why x comes with
// the middle quarters of every 32 swapped.
struct Cb4Weights {
  const uint8_t* w;
  size_t ldw;
  __m256i tlo, thi;  // low and high bytes of the 16 entries, in both 128-bit lanes
  void unit(int c, size_t u, __m256i* out) const {
    const __m256i m0f = _mm256_set1_epi8(0x0F);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + c * ldw + u * 32));
    const __m256i lo = _mm256_and_si256(v, m0f);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m0f);
    const __m256i llo = _mm256_shuffle_epi8(tlo, lo), lhi = _mm256_shuffle_epi8(thi, lo);
    const __m256i hlo = _mm256_shuffle_epi8(tlo, hi), hhi = _mm256_shuffle_epi8(thi, hi);
    out[0] = _mm256_unpacklo_epi8(llo, lhi);
    out[1] = _mm256_unpackhi_epi8(llo, lhi);
    out[2] = _mm256_unpacklo_epi8(hlo, hhi);
    out[3] = _mm256_unpackhi_epi8(hlo, hhi);
  }
  Cb4Weights rows(size_t c) const { return {w + c * ldw, ldw, tlo, thi}; }
};

// int16 activations x int16 weights from `wt`, summed in int32 lanes per chunk of units and in
// int64 across chunks.
template <int MR, int NR, typename W>
void s16_tile(size_t kp, const int16_t* x, size_t ldx, const W& wt, int64_t* y, size_t ldy) {
  int64_t total[MR][NR] = {};
  const size_t units = kp / 64;
  for (size_t u0 = 0; u0 < units; u0 += kChunkUnits) {
    const size_t u1 = std::min(units, u0 + kChunkUnits);
    __m256i acc[MR][NR];
    for (int r = 0; r < MR; r++)
      for (int c = 0; c < NR; c++) acc[r][c] = _mm256_setzero_si256();
    for (size_t u = u0; u < u1; u++)
      for (int c = 0; c < NR; c++) {
        __m256i wv[4];
        wt.unit(c, u, wv);
        for (int r = 0; r < MR; r++) {
          const __m256i d = dot_unit(x + r * ldx + u * 64, wv[0], wv[1], wv[2], wv[3]);
          acc[r][c] = _mm256_add_epi32(acc[r][c], d);
        }
      }
    for (int r = 0; r < MR; r++)
      for (int c = 0; c < NR; c++) total[r][c] += hsum_epi32(acc[r][c]);
  }
  for (int r = 0; r < MR; r++)
    for (int c = 0; c < NR; c++) y[r * ldy + c] = total[r][c];
}

struct Cb4Tiles {
  size_t kp, ldx, ldw, ldy;
  const int8_t* x;
  const uint8_t* w;
  int64_t* y;
  __m256i table;
  template <int MR, int NR>
  void run(size_t r, size_t c) const {
    cb4_tile<MR, NR>(kp, x + r * ldx, ldx, w + c * ldw, ldw, table, y + r * ldy + c, ldy);
  }
};

template <typename W>
struct S16Tiles {
  size_t kp, ldx, ldy;
  const int16_t* x;
  int64_t* y;
  W wt;
  template <int MR, int NR>
  void run(size_t r, size_t c) const {
    s16_tile<MR, NR>(kp, x + r * ldx, ldx, wt.rows(c), y + r * ldy + c, ldy);
  }
};

}  // namespace

void u4_f32_lookup__avx2(const uint8_t* codes, size_t n, const float* table, size_t d, float* out,
                         int flags) {
  if (d != 1) {
    for (size_t i = 0; i < n; i++)
      copy_row(out + i * d, table + ((codes[i / 2] >> ((i & 1) * 4)) & 15u) * d, d);
    return;
  }
  // The 16-entry table lives in two registers; a 32-bit word holds the next 8 codes.
  const __m256 tlo = _mm256_loadu_ps(table), thi = _mm256_loadu_ps(table + 8);
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  auto eight = [&](size_t i) {
    int word;
    std::memcpy(&word, codes + i / 2, 4);
    const __m256i v = _mm256_srlv_epi32(_mm256_set1_epi32(word), shifts);  // permutes use bits 0-2
    const __m256 a = _mm256_permutevar8x32_ps(tlo, v), b = _mm256_permutevar8x32_ps(thi, v);
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(v, 28)));
  };
  size_t i = 0;
  if (flags & kLookupStream) {
    for (; i < n && (reinterpret_cast<uintptr_t>(out + i) & 31); i += 2)  // to a 32-byte boundary
      u4_f32_lookup__scalar(codes + i / 2, std::min<size_t>(2, n - i), table, 1, out + i, 0);
    for (; i + 8 <= n; i += 8) _mm256_stream_ps(out + i, eight(i));
    _mm_sfence();
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, eight(i));
  if (i < n) u4_f32_lookup__scalar(codes + i / 2, n - i, table, 1, out + i, 0);
}

// Byte and 16-bit codes: gathers are slower than scalar loads on common x86 cores (Zen 3: about
// half the speed), so the vector is assembled from eight table loads and written in one store.
// The codes come in 64-bit words and are taken apart in registers: that keeps the load ports
// for the table (eight byte loads instead measured ~15% slower, out of cache and in it).
inline __m256 eight_codes(const uint8_t* c, const float* table) {
  uint64_t w;
  std::memcpy(&w, c, 8);
  const size_t a0 = w & 255, a1 = (w >> 8) & 255;
  w >>= 16;
  const size_t a2 = w & 255, a3 = (w >> 8) & 255;
  w >>= 16;
  const size_t a4 = w & 255, a5 = (w >> 8) & 255;
  w >>= 16;
  const size_t a6 = w & 255, a7 = w >> 8;
  return _mm256_setr_ps(table[a0], table[a1], table[a2], table[a3], table[a4], table[a5],
                        table[a6], table[a7]);
}

inline __m256 eight_codes(const uint16_t* c, const float* table) {
  uint64_t w, v;
  std::memcpy(&w, c, 8);
  std::memcpy(&v, c + 4, 8);
  const size_t a0 = w & 0xFFFF, a1 = (w >> 16) & 0xFFFF;
  w >>= 32;
  const size_t a2 = w & 0xFFFF, a3 = w >> 16;
  const size_t a4 = v & 0xFFFF, a5 = (v >> 16) & 0xFFFF;
  v >>= 32;
  const size_t a6 = v & 0xFFFF, a7 = v >> 16;
  return _mm256_setr_ps(table[a0], table[a1], table[a2], table[a3], table[a4], table[a5],
                        table[a6], table[a7]);
}

// 16 values a step (two independent vectors in flight), then 8, then single values.
template <typename T>
void lookup_d1(const T* codes, size_t n, const float* table, float* out, int flags) {
  size_t i = 0;
  if (flags & kLookupStream) {
    for (; i < n && (reinterpret_cast<uintptr_t>(out + i) & 31); i++) out[i] = table[codes[i]];
    for (; i + 16 <= n; i += 16) {
      const __m256 a = eight_codes(codes + i, table), b = eight_codes(codes + i + 8, table);
      _mm256_stream_ps(out + i, a);
      _mm256_stream_ps(out + i + 8, b);
    }
    _mm_sfence();
  }
  for (; i + 16 <= n; i += 16) {
    const __m256 a = eight_codes(codes + i, table), b = eight_codes(codes + i + 8, table);
    _mm256_storeu_ps(out + i, a);
    _mm256_storeu_ps(out + i + 8, b);
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, eight_codes(codes + i, table));
  for (; i < n; i++) out[i] = table[codes[i]];
}

void u8_f32_lookup__avx2(const uint8_t* codes, size_t n, const float* table, size_t d, float* out,
                         int flags) {
  if (d == 1) return lookup_d1(codes, n, table, out, flags);
  for (size_t i = 0; i < n; i++) copy_row(out + i * d, table + codes[i] * d, d);
}

void u16_f32_lookup__avx2(const uint16_t* codes, size_t n, const float* table, size_t d,
                          float* out, int flags) {
  if (d == 1) return lookup_d1(codes, n, table, out, flags);
  for (size_t i = 0; i < n; i++) copy_row(out + i * d, table + size_t(codes[i]) * d, d);
}

void s8cb4_s64_gemm__avx2(size_t mr, size_t nr, size_t kp, const int8_t* x, size_t ldx,
                          const uint8_t* w, size_t ldw, const int8_t* table, int64_t* y,
                          size_t ldy) {
  // The table in both 128-bit lanes (vpshufb looks up within a lane).
  const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table)));
  const Cb4Tiles tile{kp, ldx, ldw, ldy, x, w, y, t};
  size_t r = 0;
  for (; r + 2 <= mr; r += 2) {  // 2 x 2 tiles keep everything in the 16 registers
    size_t c = 0;
    for (; c + 2 <= nr; c += 2) tile.run<2, 2>(r, c);
    for (; c < nr; c++) tile.run<2, 1>(r, c);
  }
  for (; r < mr; r++) {
    size_t c = 0;
    for (; c + 4 <= nr; c += 4) tile.run<1, 4>(r, c);
    for (; c < nr; c++) tile.run<1, 1>(r, c);
  }
}

void s16s16_s64_gemm__avx2(size_t mr, size_t nr, size_t kp, const int16_t* x, size_t ldx,
                           const int16_t* w, size_t ldw, int64_t* y, size_t ldy) {
  for_tiles(mr, nr, S16Tiles<DenseWeights>{kp, ldx, ldy, x, y, {w, ldw}});
}

void s16cb4_s64_gemm__avx2(size_t mr, size_t nr, size_t kp, const int16_t* x, size_t ldx,
                           const uint8_t* w, size_t ldw, const int16_t* table, int64_t* y,
                           size_t ldy) {
  // Byte planes of the 16 int16 entries, in both 128-bit lanes (vpshufb looks up within a lane).
  alignas(16) uint8_t lo[16], hi[16];
  for (int e = 0; e < 16; e++) {
    const uint16_t v = static_cast<uint16_t>(table[e]);
    lo[e] = static_cast<uint8_t>(v & 0xFF);
    hi[e] = static_cast<uint8_t>(v >> 8);
  }
  const __m256i tlo = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(lo)));
  const __m256i thi = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(hi)));
  for_tiles(mr, nr, S16Tiles<Cb4Weights>{kp, ldx, ldy, x, y, {w, ldw, tlo, thi}});
}

}  // namespace kernels
}  // namespace lowbit
