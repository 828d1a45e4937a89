// Peak-throughput loops for AArch64 NEON (contract in ../peak.h), 16 accumulators each:
//   peak_s8s8_smull__neon  smull / smull2 .8h (8 s8 x s8 products into int16, exact) then
//                          sadalp .4s (pairs added into the int32 accumulator): 8 MACs a step.
//                          A uint8 activation enters as a ^ 0x80 (APack::s8_flipped).
//   peak_f32_fmla__neon    fmla .4s: 4 fp32 MACs.
// The smull steps are inline asm: their products do not depend on the accumulator, so as
// intrinsics they would be hoisted out of the loop.
#include <arm_neon.h>

#include <cstring>

#include "kernels/peak.h"

namespace lowbit {
namespace kernels {
namespace {

uint64_t checksum(int32x4_t v) {
  uint32_t lanes[4];
  vst1q_u32(lanes, vreinterpretq_u32_s32(v));
  uint64_t s = 0;
  for (uint32_t x : lanes) s = s * 31 + x;
  return s;
}

uint64_t checksum(float32x4_t v) {
  float lanes[4];
  vst1q_f32(lanes, v);
  uint64_t s = 0;
  for (float x : lanes) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    s = s * 31 + bits;
  }
  return s;
}

}  // namespace

#define LB_PEAK_X16(M) \
  M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

uint64_t peak_s8s8_smull__neon(uint64_t iterations) {
  const int8x16_t a = vdupq_n_s8(3), b = vdupq_n_s8(-2);
#define LB_DECL(i) int32x4_t c##i = vdupq_n_s32(i);  // distinct: no chains merged
  LB_PEAK_X16(LB_DECL)
#undef LB_DECL
  for (uint64_t it = 0; it < iterations; it++) {
    // even accumulators take the low halves (smull), odd ones the high halves (smull2)
#define LB_STEP(i, mul)                                                                        \
  {                                                                                            \
    int16x8_t t;                                                                               \
    __asm__(mul "\n\tsadalp %[c].4s, %[t].8h"                                                  \
            : [c] "+w"(c##i), [t] "=&w"(t)                                                     \
            : [a] "w"(a), [b] "w"(b));                                                         \
  }
#define LB_PAIR(i, j)                                   \
  LB_STEP(i, "smull %[t].8h, %[a].8b, %[b].8b")         \
  LB_STEP(j, "smull2 %[t].8h, %[a].16b, %[b].16b")
    LB_PAIR(0, 1) LB_PAIR(2, 3) LB_PAIR(4, 5) LB_PAIR(6, 7)
    LB_PAIR(8, 9) LB_PAIR(10, 11) LB_PAIR(12, 13) LB_PAIR(14, 15)
#undef LB_PAIR
#undef LB_STEP
  }
  int32x4_t sum = vdupq_n_s32(0);
#define LB_SUM(i) sum = vaddq_s32(sum, c##i);
  LB_PEAK_X16(LB_SUM)
#undef LB_SUM
  return checksum(sum);
}

uint64_t peak_f32_fmla__neon(uint64_t iterations) {
  // c += a * b = 2^-10, from c = i (< 16): normal numbers for any iteration count, and no chain
  // starts at a fixed point (c + 2^-10 == c from 2^14 on; clang folds chains that start there).
  const float32x4_t a = vdupq_n_f32(1.0f / 32), b = vdupq_n_f32(1.0f / 32);
#define LB_DECL(i) float32x4_t c##i = vdupq_n_f32(static_cast<float>(i));  // distinct chains
  LB_PEAK_X16(LB_DECL)
#undef LB_DECL
  for (uint64_t it = 0; it < iterations; it++) {
#define LB_STEP(i) c##i = vfmaq_f32(c##i, a, b);
    LB_PEAK_X16(LB_STEP)
#undef LB_STEP
  }
  float32x4_t sum = vdupq_n_f32(0.0f);
#define LB_SUM(i) sum = vaddq_f32(sum, c##i);
  LB_PEAK_X16(LB_SUM)
#undef LB_SUM
  return checksum(sum);
}

}  // namespace kernels
}  // namespace lowbit
