// NEON (armv8-a) codebook kernels (decode lookups and the codebook GEMMs of CodebookLinear);
// contracts in lowbit/kernels.h, oracle in ../scalar/codebook__scalar.cc (tails are handed to it,
// so they match by construction).
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "kernels/tiles.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

inline void copy_row(float* dst, const float* src, size_t d) {
  switch (d) {
    case 2:
      vst1_f32(dst, vld1_f32(src));
      return;
    case 4:
      vst1q_f32(dst, vld1q_f32(src));
      return;
    case 8:
      vst1q_f32(dst, vld1q_f32(src));
      vst1q_f32(dst + 4, vld1q_f32(src + 4));
      return;
    default:
      std::memcpy(dst, src, d * sizeof(float));
  }
}

// ---- codebook GEMMs ---------------------------------------------------------------------------
// A lane takes at most 8 units x 16 products before it is widened into int64 (vpadalq):
// 4-bit codes: |x|, |w| <= 127; dense int16: 8 units x 8 products of |x|, |w| <= 4095.
constexpr size_t kChunkUnits = 8;

// x[0..7] . w[0..7] (int16) into four int32 lanes.
inline int32x4_t mla8(int32x4_t acc, const int16_t* x, int16x8_t w) {
  const int16x8_t xv = vld1q_s16(x);
  acc = vmlal_s16(acc, vget_low_s16(xv), vget_low_s16(w));
  return vmlal_high_s16(acc, xv, w);
}

// x[0..15] . w[0..15] (int8): 16-bit products (|p| <= 127^2), pairwise into int32 lanes.
inline int32x4_t dot16(int32x4_t acc, int8x16_t x, int8x16_t w) {
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x), vget_low_s8(w)));
  return vpadalq_s16(acc, vmull_high_s8(x, w));
}

template <int MR, int NR>
void cb4_tile(size_t kp, const int8_t* x, size_t ldx, const uint8_t* w, size_t ldw, int8x16_t table,
              int64_t* y, size_t ldy) {
  const uint8x16_t mask = vdupq_n_u8(0x0F);
  int64x2_t total[MR][NR];
  for (int r = 0; r < MR; r++)
    for (int c = 0; c < NR; c++) total[r][c] = vdupq_n_s64(0);
  const size_t units = kp / 64;
  for (size_t u0 = 0; u0 < units; u0 += kChunkUnits) {
    const size_t u1 = std::min(units, u0 + kChunkUnits);
    int32x4_t acc[MR][NR];
    for (int r = 0; r < MR; r++)
      for (int c = 0; c < NR; c++) acc[r][c] = vdupq_n_s32(0);
    for (size_t u = u0; u < u1; u++)
      for (int c = 0; c < NR; c++) {
        const uint8_t* b = w + c * ldw + u * 32;
        const uint8x16_t q0 = vld1q_u8(b), q1 = vld1q_u8(b + 16);
        // Low nibbles: weights 0-15 and 16-31; high nibbles: 32-47 and 48-63.
        const int8x16_t w0 = vqtbl1q_s8(table, vandq_u8(q0, mask));
        const int8x16_t w1 = vqtbl1q_s8(table, vandq_u8(q1, mask));
        const int8x16_t w2 = vqtbl1q_s8(table, vshrq_n_u8(q0, 4));
        const int8x16_t w3 = vqtbl1q_s8(table, vshrq_n_u8(q1, 4));
        for (int r = 0; r < MR; r++) {
          const int8_t* xr = x + r * ldx + u * 64;
          int32x4_t a = acc[r][c];
          a = dot16(a, vld1q_s8(xr), w0);
          a = dot16(a, vld1q_s8(xr + 16), w1);
          a = dot16(a, vld1q_s8(xr + 32), w2);
          acc[r][c] = dot16(a, vld1q_s8(xr + 48), w3);
        }
      }
    for (int r = 0; r < MR; r++)
      for (int c = 0; c < NR; c++) total[r][c] = vpadalq_s32(total[r][c], acc[r][c]);
  }
  for (int r = 0; r < MR; r++)
    for (int c = 0; c < NR; c++) y[r * ldy + c] = vaddvq_s64(total[r][c]);
}

// Weight sources of s16_tile: unit(c, u, w) sets the 8 vectors of 8 int16 weights of unit u
// (weights 64u .. 64u + 63, chunk q in x's layout) of row c; rows(c) is the source from row c on.
struct DenseWeights {
  const int16_t* w;
  size_t ldw;
  void unit(int c, size_t u, int16x8_t* out) const {
    const int16_t* wc = w + c * ldw + u * 64;
    for (int q = 0; q < 8; q++) out[q] = vld1q_s16(wc + 8 * q);
  }
  DenseWeights rows(size_t c) const { return {w + c * ldw, ldw}; }
};

// 4-bit codes into an int16 table: a table lookup per byte plane, zipped into int16 weights.
// The 8-weight chunks come out as those of x's swapped layout: chunk q of the unit is w[q].
inline void decode_s16_unit(const uint8_t* b, uint8x16_t tlo, uint8x16_t thi, int16x8_t w[8]) {
  const uint8x16_t mask = vdupq_n_u8(0x0F);
  const uint8x16_t q0 = vld1q_u8(b), q1 = vld1q_u8(b + 16);
  const uint8x16_t idx[4] = {vandq_u8(q0, mask), vandq_u8(q1, mask), vshrq_n_u8(q0, 4),
                             vshrq_n_u8(q1, 4)};
  // Bytes 0-7 / 8-15 of q0 hold weights 0-7 / 8-15, found in x's chunks 0 / 2; q1's weights
  // 16-23 / 24-31 in chunks 1 / 3 (low nibbles; high nibbles: +32, chunks + 4).
  static const int chunk[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};
  for (int h = 0; h < 4; h++) {
    const uint8x16_t lo = vqtbl1q_u8(tlo, idx[h]), hi = vqtbl1q_u8(thi, idx[h]);
    w[chunk[h][0]] = vreinterpretq_s16_u8(vzip1q_u8(lo, hi));
    w[chunk[h][1]] = vreinterpretq_s16_u8(vzip2q_u8(lo, hi));
  }
}

struct Cb4Weights {
  const uint8_t* w;
  size_t ldw;
  uint8x16_t tlo, thi;  // low and high bytes of the 16 entries
  void unit(int c, size_t u, int16x8_t* out) const {
    decode_s16_unit(w + c * ldw + u * 32, tlo, thi, out);
  }
  Cb4Weights rows(size_t c) const { return {w + c * ldw, ldw, tlo, thi}; }
};

// int16 activations x int16 weights from `wt`, summed in int32 lanes per chunk of units and in
// int64 across chunks.
template <int MR, int NR, typename W>
void s16_tile(size_t kp, const int16_t* x, size_t ldx, const W& wt, int64_t* y, size_t ldy) {
  int64x2_t total[MR][NR];
  for (int r = 0; r < MR; r++)
    for (int c = 0; c < NR; c++) total[r][c] = vdupq_n_s64(0);
  const size_t units = kp / 64;
  for (size_t u0 = 0; u0 < units; u0 += kChunkUnits) {
    const size_t u1 = std::min(units, u0 + kChunkUnits);
    int32x4_t acc[MR][NR][2];
    for (int r = 0; r < MR; r++)
      for (int c = 0; c < NR; c++) acc[r][c][0] = acc[r][c][1] = vdupq_n_s32(0);
    for (size_t u = u0; u < u1; u++)
      for (int c = 0; c < NR; c++) {
        int16x8_t wv[8];
        wt.unit(c, u, wv);
        for (int r = 0; r < MR; r++) {
          const int16_t* xr = x + r * ldx + u * 64;
          for (int q = 0; q < 8; q += 2) {
            acc[r][c][0] = mla8(acc[r][c][0], xr + 8 * q, wv[q]);
            acc[r][c][1] = mla8(acc[r][c][1], xr + 8 * q + 8, wv[q + 1]);
          }
        }
      }
    for (int r = 0; r < MR; r++)
      for (int c = 0; c < NR; c++) {
        total[r][c] = vpadalq_s32(total[r][c], acc[r][c][0]);
        total[r][c] = vpadalq_s32(total[r][c], acc[r][c][1]);
      }
  }
  for (int r = 0; r < MR; r++)
    for (int c = 0; c < NR; c++) y[r * ldy + c] = vaddvq_s64(total[r][c]);
}

struct Cb4Tiles {
  size_t kp, ldx, ldw, ldy;
  const int8_t* x;
  const uint8_t* w;
  int64_t* y;
  int8x16_t table;
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

void u4_f32_lookup__neon(const uint8_t* codes, size_t n, const float* table, size_t d, float* out,
                         int) {
  if (d != 1) {
    for (size_t i = 0; i < n; i++)
      copy_row(out + i * d, table + ((codes[i / 2] >> ((i & 1) * 4)) & 15u) * d, d);
    return;
  }
  // The 16 floats as four byte planes; a table lookup per plane, then vst4 interleaves the
  // planes back into floats.
  uint8_t planes[4][16];
  for (int e = 0; e < 16; e++) {
    uint32_t u;
    std::memcpy(&u, table + e, 4);
    for (int p = 0; p < 4; p++) planes[p][e] = static_cast<uint8_t>(u >> (8 * p));
  }
  const uint8x16_t p0 = vld1q_u8(planes[0]), p1 = vld1q_u8(planes[1]);
  const uint8x16_t p2 = vld1q_u8(planes[2]), p3 = vld1q_u8(planes[3]);
  const uint8x8_t mask = vdup_n_u8(0x0F);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const uint8x8_t b = vld1_u8(codes + i / 2);
    const uint8x8x2_t z = vzip_u8(vand_u8(b, mask), vshr_n_u8(b, 4));  // codes in element order
    const uint8x16_t idx = vcombine_u8(z.val[0], z.val[1]);
    uint8x16x4_t v;
    v.val[0] = vqtbl1q_u8(p0, idx);
    v.val[1] = vqtbl1q_u8(p1, idx);
    v.val[2] = vqtbl1q_u8(p2, idx);
    v.val[3] = vqtbl1q_u8(p3, idx);
    vst4q_u8(reinterpret_cast<uint8_t*>(out + i), v);
  }
  if (i < n) u4_f32_lookup__scalar(codes + i / 2, n - i, table, 1, out + i, 0);
}

void u8_f32_lookup__neon(const uint8_t* codes, size_t n, const float* table, size_t d, float* out,
                         int) {
  if (d != 1) {
    for (size_t i = 0; i < n; i++) copy_row(out + i * d, table + codes[i] * d, d);
    return;
  }
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {  // no gather: four loads, one store
    const float v[4] = {table[codes[i]], table[codes[i + 1]], table[codes[i + 2]],
                        table[codes[i + 3]]};
    vst1q_f32(out + i, vld1q_f32(v));
  }
  if (i < n) u8_f32_lookup__scalar(codes + i, n - i, table, 1, out + i, 0);
}

void u16_f32_lookup__neon(const uint16_t* codes, size_t n, const float* table, size_t d,
                          float* out, int) {
  if (d != 1) {
    for (size_t i = 0; i < n; i++) copy_row(out + i * d, table + size_t(codes[i]) * d, d);
    return;
  }
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float v[4] = {table[codes[i]], table[codes[i + 1]], table[codes[i + 2]],
                        table[codes[i + 3]]};
    vst1q_f32(out + i, vld1q_f32(v));
  }
  if (i < n) u16_f32_lookup__scalar(codes + i, n - i, table, 1, out + i, 0);
}

void s8cb4_s64_gemm__neon(size_t mr, size_t nr, size_t kp, const int8_t* x, size_t ldx,
                          const uint8_t* w, size_t ldw, const int8_t* table, int64_t* y,
                          size_t ldy) {
  for_tiles(mr, nr, Cb4Tiles{kp, ldx, ldw, ldy, x, w, y, vld1q_s8(table)});
}

void s16s16_s64_gemm__neon(size_t mr, size_t nr, size_t kp, const int16_t* x, size_t ldx,
                           const int16_t* w, size_t ldw, int64_t* y, size_t ldy) {
  for_tiles(mr, nr, S16Tiles<DenseWeights>{kp, ldx, ldy, x, y, {w, ldw}});
}

void s16cb4_s64_gemm__neon(size_t mr, size_t nr, size_t kp, const int16_t* x, size_t ldx,
                           const uint8_t* w, size_t ldw, const int16_t* table, int64_t* y,
                           size_t ldy) {
  uint8_t lo[16], hi[16];
  for (int e = 0; e < 16; e++) {
    const uint16_t v = static_cast<uint16_t>(table[e]);
    lo[e] = static_cast<uint8_t>(v & 0xFF);
    hi[e] = static_cast<uint8_t>(v >> 8);
  }
  for_tiles(mr, nr, S16Tiles<Cb4Weights>{kp, ldx, ldy, x, y, {w, ldw, vld1q_u8(lo), vld1q_u8(hi)}});
}

}  // namespace kernels
}  // namespace lowbit
