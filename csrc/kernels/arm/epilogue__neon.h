// The GEMM epilogue on NEON registers (GemmTile in lowbit/kernels.h): 4 * NQ columns of one row,
// the raw dot products in NQ int32x4 vectors (columns 4q..4q+3 in vector q), to their only store.
// Included by the AArch64 GEMM kernels (gemm__neon.cc, gemm__neondot.cc, gemm__i8mm.cc), which
// instantiate their tile once per output kind K; the scalar twin is
// csrc/kernels/scalar/gemm__scalar.cc. The library is built with -ffp-contract=off, so the
// separate multiply and add below stay separate (no fmla), as the contract requires.
//
// Everything here is inlined into the tile after its k-loop, and nothing calls out (a variable
// memcpy would be a call, and the rows still waiting in registers would be saved around it):
// partial rows are stored lane by lane.
#pragma once
#include <arm_neon.h>

#include <cstring>

#include "lowbit/kernels.h"

// Full unrolling of the loops over rows and column quads: their vectors stay in registers.
#define LB_UNROLL _Pragma("GCC unroll 16")
#define LB_INLINE inline __attribute__((always_inline))

namespace lowbit {
namespace kernels {
namespace {

// Full rows only: a panel narrower than the tile goes through edge_tile_neon below.
LB_INLINE void store4(int32_t* o, int32x4_t v) { vst1q_s32(o, v); }
LB_INLINE void store4(float* o, int32x4_t v) { vst1q_f32(o, vreinterpretq_f32_s32(v)); }

// The low byte of each int32 lane of q[0..NQ): 4 * NQ bytes.
template <int NQ>
LB_INLINE void store_bytes(uint8_t* out, const int32x4_t (&q)[NQ]) {
  static_assert(NQ >= 1 && NQ <= 4, "at most 16 columns a row");
  // vmovn keeps the low half of each lane: int32 -> int16 -> int8 leaves the low byte.
  const int16x4_t h0 = vmovn_s32(q[0]);
  const int16x4_t h1 = NQ > 1 ? vmovn_s32(q[NQ > 1 ? 1 : 0]) : h0;
  const int16x4_t h2 = NQ > 2 ? vmovn_s32(q[NQ > 2 ? 2 : 0]) : h0;
  const int16x4_t h3 = NQ > 3 ? vmovn_s32(q[NQ > 3 ? 3 : 0]) : h0;
  const uint8x16_t v = vreinterpretq_u8_s8(
      vcombine_s8(vmovn_s16(vcombine_s16(h0, h1)), vmovn_s16(vcombine_s16(h2, h3))));
  if (NQ == 4) {
    vst1q_u8(out, v);
    return;
  }
  if (NQ >= 2) vst1_u8(out, vget_low_u8(v));
  if (NQ != 2) {
    const uint32_t w = vgetq_lane_u32(vreinterpretq_u32_u8(v), NQ == 1 ? 0 : 2);
    std::memcpy(out + (NQ == 1 ? 0 : 8), &w, 4);  // a constant size: one store, no call
  }
}

// Row r of a full-width tile (t.nc == 4 * NQ): v0..v(NQ-1) are its raw sums (columns 0-3,
// 4-7, ...).
template <GemmOut K, int NQ>
LB_INLINE void epilogue_row_neon(const GemmTile& t, size_t r, int32x4_t v0, int32x4_t v1 = int32x4_t(),
                              int32x4_t v2 = int32x4_t(), int32x4_t v3 = int32x4_t()) {
  static_assert(NQ >= 1 && NQ <= 4, "at most 16 columns a row");
  int32x4_t v[NQ];
  {
    const int32x4_t all[4] = {v0, v1, v2, v3};
    LB_UNROLL for (int i = 0; i < NQ; i++) v[i] = all[i];
  }
  // zero-point terms: v += row_add[r] + row_mul[r] * colsum[j] (wrapping int32, as mla is)
  const int32x4_t add = vdupq_n_s32(t.row_add[r]);
  const int32_t mul = t.row_mul[r];
  LB_UNROLL for (int i = 0; i < NQ; i++)
    v[i] = vaddq_s32(v[i], vmlaq_n_s32(add, vld1q_s32(t.colsum + 4 * i), mul));
  if (K == GemmOut::s32) {
    int32_t* o = static_cast<int32_t*>(t.out) + r * t.ldo;
    LB_UNROLL for (int i = 0; i < NQ; i++) store4(o + 4 * i, v[i]);
  } else if (K == GemmOut::f32) {
    const float sa = t.a_scale[r * t.a_scale_step];
    LB_UNROLL for (int i = 0; i < NQ; i++) {
      // float(v) * (a_scale * b_scale[j]), then + bias[j], then relu, each rounded on its own
      float32x4_t y = vmulq_f32(vcvtq_f32_s32(v[i]), vmulq_n_f32(vld1q_f32(t.b_scale + 4 * i), sa));
      if (t.bias) y = vaddq_f32(y, vld1q_f32(t.bias + 4 * i));
      v[i] = vreinterpretq_s32_f32(y);
      // y > 0 ? y : 0 as a mask: -0 and NaN become +0, as in the scalar kernel (fmax would
      // keep a NaN)
      if (t.relu) v[i] = vandq_s32(v[i], vreinterpretq_s32_u32(vcgtzq_f32(y)));
    }
    float* o = static_cast<float*>(t.out) + r * t.ldo;
    LB_UNROLL for (int i = 0; i < NQ; i++) store4(o + 4 * i, v[i]);
  } else {  // q8: ref::requantize1 (kernels/scalar/quant_ref.h), lane by lane
    const float32x4_t lo = vdupq_n_f32(t.q_lo), hi = vdupq_n_f32(t.q_hi);
    const int32x4_t zp = vdupq_n_s32(t.q_zp);
    LB_UNROLL for (int i = 0; i < NQ; i++) {
      if (t.bias_i32) v[i] = vaddq_s32(v[i], vld1q_s32(t.bias_i32 + 4 * i));
      float32x4_t y = vmulq_f32(vcvtq_f32_s32(v[i]), vld1q_f32(t.q_scale + 4 * i));
      y = vminq_f32(vmaxq_f32(y, lo), hi);
      v[i] = vaddq_s32(vcvtnq_s32_f32(y), zp);  // round to nearest, ties to even
    }
    store_bytes<NQ>(static_cast<uint8_t*>(t.out) + r * t.ldo, v);
  }
}

// A panel narrower than the tile (the last one, t.nc < NR): the tile's full rows go to a
// buffer, then their nc columns to the output, after the accumulators are done with.
template <int MR, int NR, typename Run>
inline void edge_tile_neon(const GemmTile& t, Run run) {
  alignas(16) int32_t buf[MR * NR];
  GemmTile u = t;
  u.out = buf;
  u.ldo = NR;
  u.nc = NR;
  run(u);
  const size_t elem = t.out_kind == GemmOut::q8 ? 1 : 4;
  for (size_t r = 0; r < t.mr; r++)
    std::memcpy(static_cast<char*>(t.out) + r * t.ldo * elem,
                reinterpret_cast<const char*>(buf) + r * NR * elem, t.nc * elem);
}

// The entry every NEON GEMM kernel shares: Tile::run<mr, kind>(t) for the call's row count
// (1..MR) and output kind, a full panel straight, a partial one through edge_tile_neon.
template <class Tile, int MR>
void neon_tile_rows(const GemmTile& t) {
  if constexpr (MR > 1)
    if (t.mr < MR) return neon_tile_rows<Tile, MR - 1>(t);
  switch (t.out_kind) {
    case GemmOut::s32: return Tile::template run<MR, GemmOut::s32>(t);
    case GemmOut::f32: return Tile::template run<MR, GemmOut::f32>(t);
    case GemmOut::q8: return Tile::template run<MR, GemmOut::q8>(t);
  }
}

template <class Tile, int MR, int NR>
void neon_gemm(const GemmTile& t) {
  if (t.nc == NR)
    neon_tile_rows<Tile, MR>(t);
  else
    edge_tile_neon<MR, NR>(t, neon_tile_rows<Tile, MR>);
}

}  // namespace
}  // namespace kernels
}  // namespace lowbit
