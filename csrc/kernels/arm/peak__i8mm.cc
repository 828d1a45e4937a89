// Peak-throughput loop for AArch64 I8MM (contract in ../peak.h): usmmla .4s, a 2x8 uint8 block
// times an 8x2 int8 block into 2x2 int32 (32 u8 x s8 MACs, exact) -- lowbit's operand types with
// no flip; 16 accumulators.
#include <arm_neon.h>

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

}  // namespace

#define LB_PEAK_X16(M) \
  M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

uint64_t peak_u8s8_usmmla__i8mm(uint64_t iterations) {
  const uint8x16_t a = vdupq_n_u8(3);
  const int8x16_t b = vdupq_n_s8(-2);
#define LB_DECL(i) int32x4_t c##i = vdupq_n_s32(i);  // distinct: no chains merged
  LB_PEAK_X16(LB_DECL)
#undef LB_DECL
  for (uint64_t it = 0; it < iterations; it++) {
#define LB_STEP(i) c##i = vusmmlaq_s32(c##i, a, b);
    LB_PEAK_X16(LB_STEP)
#undef LB_STEP
  }
  int32x4_t sum = vdupq_n_s32(0);
#define LB_SUM(i) sum = vaddq_s32(sum, c##i);
  LB_PEAK_X16(LB_SUM)
#undef LB_SUM
  return checksum(sum);
}

}  // namespace kernels
}  // namespace lowbit
