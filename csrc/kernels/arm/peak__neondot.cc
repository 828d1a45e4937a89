// Peak-throughput loops for AArch64 dot product (contract in ../peak.h): sdot / udot .4s by
// element (v.16b x v.4b[lane]: 4 columns x 4-byte groups of one broadcast row, the GEMM kernel's
// shape), 16 u8/s8 MACs into int32 a step, exact; 16 accumulators (latency 3-4 cycles, up to 4
// a cycle on the widest cores).
#include <arm_neon.h>

#include "kernels/peak.h"

namespace lowbit {
namespace kernels {
namespace {

uint64_t checksum(uint32x4_t v) {
  uint32_t lanes[4];
  vst1q_u32(lanes, v);
  uint64_t s = 0;
  for (uint32_t x : lanes) s = s * 31 + x;
  return s;
}

}  // namespace

#define LB_PEAK_X16(M) \
  M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

uint64_t peak_s8s8_sdot__neondot(uint64_t iterations) {
  const int8x16_t a = vdupq_n_s8(3), b = vdupq_n_s8(-2);
#define LB_DECL(i) int32x4_t c##i = vdupq_n_s32(i);  // distinct: no chains merged
  LB_PEAK_X16(LB_DECL)
#undef LB_DECL
  for (uint64_t it = 0; it < iterations; it++) {
#define LB_STEP(i) c##i = vdotq_laneq_s32(c##i, a, b, (i) % 4);
    LB_PEAK_X16(LB_STEP)
#undef LB_STEP
  }
  int32x4_t sum = vdupq_n_s32(0);
#define LB_SUM(i) sum = vaddq_s32(sum, c##i);
  LB_PEAK_X16(LB_SUM)
#undef LB_SUM
  return checksum(vreinterpretq_u32_s32(sum));
}

uint64_t peak_u8u8_udot__neondot(uint64_t iterations) {
  const uint8x16_t a = vdupq_n_u8(3), b = vdupq_n_u8(254);
#define LB_DECL(i) uint32x4_t c##i = vdupq_n_u32(i);  // distinct: no chains merged
  LB_PEAK_X16(LB_DECL)
#undef LB_DECL
  for (uint64_t it = 0; it < iterations; it++) {
#define LB_STEP(i) c##i = vdotq_laneq_u32(c##i, a, b, (i) % 4);
    LB_PEAK_X16(LB_STEP)
#undef LB_STEP
  }
  uint32x4_t sum = vdupq_n_u32(0);
#define LB_SUM(i) sum = vaddq_u32(sum, c##i);
  LB_PEAK_X16(LB_SUM)
#undef LB_SUM
  return checksum(sum);
}

}  // namespace kernels
}  // namespace lowbit
