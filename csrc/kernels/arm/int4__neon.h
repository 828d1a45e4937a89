// The NEON tile of 4-bit weights in groups (Int4Tile in lowbit/kernels.h; oracle
// ../scalar/int4__scalar.cc), shared by int4__neon.cc and int4__neondot.cc, which differ in how a
// k-group's products are summed (Step). A k-group's 64 codes are one 32-byte s4 block: two
// 16-byte loads, whose low nibbles are columns 0-3 and 4-7 and high nibbles columns 8-11 and
// 12-15 (4 k each), multiplied with the row's 4 activations broadcast. At a group's end: minus
// zero * asum, to float, and one fused multiply-add with the group's scales.
#pragma once
#include <arm_neon.h>

#include <cstring>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

// The 4 column quarters of a k-group's block (codes as bytes in [0, 15]).
inline void q4_quarters(const uint8_t* b, int8x16_t q[4]) {
  const uint8x16_t v0 = vld1q_u8(b), v1 = vld1q_u8(b + 16), m = vdupq_n_u8(0x0F);
  q[0] = vreinterpretq_s8_u8(vandq_u8(v0, m));
  q[1] = vreinterpretq_s8_u8(vandq_u8(v1, m));
  q[2] = vreinterpretq_s8_u8(vshrq_n_u8(v0, 4));
  q[3] = vreinterpretq_s8_u8(vshrq_n_u8(v1, 4));
}

inline int8x16_t q4_bcast4(const int8_t* a) {
  int32_t v;
  std::memcpy(&v, a, 4);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

// Step::Acc holds one row's running sums of a group; Step::add(acc, q, x) adds a k-group;
// Step::cols(acc, c) gives columns 4c..4c+3 as int32.
template <typename Step, int MR>
void q4_tile_neon(const Int4Tile& t) {
  float32x4_t y[MR][4];
  for (int r = 0; r < MR; r++)
    for (int c = 0; c < 4; c++) y[r][c] = vdupq_n_f32(0.0f);
  const uint8_t* b = t.b;
  for (size_t g = 0; g < t.ngroups; g++) {
    typename Step::Acc acc[MR];
    for (int r = 0; r < MR; r++) Step::zero(acc[r]);
    for (size_t k = g * t.group; k < (g + 1) * t.group; k += 4, b += 32) {
      int8x16_t q[4];
      q4_quarters(b, q);
      for (int r = 0; r < MR; r++) Step::add(acc[r], q, q4_bcast4(t.a + r * t.lda + k));
    }
    const uint8x16_t zb = vld1q_u8(t.zero + g * 16);
    const uint16x8_t zl = vmovl_u8(vget_low_u8(zb)), zh = vmovl_u8(vget_high_u8(zb));
    const int32x4_t z[4] = {vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(zl))),
                            vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(zl))),
                            vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(zh))),
                            vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(zh)))};
    float32x4_t sc[4];
    for (int c = 0; c < 4; c++)
      sc[c] = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(t.scale + g * 16 + 4 * c)));
    for (int r = 0; r < MR; r++) {
      const int32x4_t as = vdupq_n_s32(t.asum[r * t.ngroups + g]);
      for (int c = 0; c < 4; c++) {
        const int32x4_t v = vmlsq_s32(Step::cols(acc[r], c), z[c], as);
        y[r][c] = vfmaq_f32(y[r][c], sc[c], vcvtq_f32_s32(v));
      }
    }
  }
  for (int r = 0; r < MR; r++) {
    const float32x4_t sa = vdupq_n_f32(t.a_scale[r]);
    float o[16];
    for (int c = 0; c < 4; c++) {
      float32x4_t v = vmulq_f32(y[r][c], vmulq_f32(sa, vld1q_f32(t.col_scale + 4 * c)));
      if (t.bias) v = vaddq_f32(v, vld1q_f32(t.bias + 4 * c));
      vst1q_f32(o + 4 * c, v);
    }
    std::memcpy(t.out + r * t.ldo, o, t.nc * sizeof(float));
  }
}

// At most 2 rows (the NEON sets' mr in csrc/runtime/dispatch.cc).
template <typename Step>
void q4_rows_neon(const Int4Tile& t) {
  if (t.mr >= 2)
    q4_tile_neon<Step, 2>(t);
  else
    q4_tile_neon<Step, 1>(t);
}

}  // namespace
}  // namespace kernels
}  // namespace lowbit
