// u8 x s8 -> s32 GEMM micro-kernel for NEON with the int8 matrix-multiply extension (usmmla;
// armv8.6-a / i8mm); contract in lowbit/kernels.h, oracle ../scalar/gemm_u8s8s32__scalar.cc.
// usmmla multiplies a 2x8 block of unsigned A by an 8x2 block of signed B into a 2x2 int32 tile:
// exact, no flip needed. A B vector is columns j, j + 1 (8 bytes each) as the packing lays them
// out; an A vector is two rows' 8 bytes. Up to 4 rows (2 row pairs) x 16 columns.
#include <arm_neon.h>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

template <int RP>  // row pairs
void tile(size_t mr, size_t kp, const uint8_t* a, size_t lda, const int8_t* b, int32_t* c,
          size_t ldc) {
  int32x4_t acc[RP][kNR / 2];
  for (int p = 0; p < RP; p++)
    for (int j = 0; j < kNR / 2; j++) acc[p][j] = vdupq_n_s32(0);
  const uint8x8_t zero = vdup_n_u8(0);
  for (size_t g = 0; g < kp / kKG; g++) {
    const int8_t* bg = b + g * kNR * kKG;
    uint8x16_t av[RP];
    for (int p = 0; p < RP; p++) {
      const size_t r0 = 2 * size_t(p), r1 = r0 + 1;
      const uint8x8_t lo = vld1_u8(a + r0 * lda + g * kKG);
      const uint8x8_t hi = r1 < mr ? vld1_u8(a + r1 * lda + g * kKG) : zero;  // no read past mr
      av[p] = vcombine_u8(lo, hi);
    }
    for (int j = 0; j < kNR / 2; j++) {
      const int8x16_t bv = vld1q_s8(bg + 16 * j);
      for (int p = 0; p < RP; p++) acc[p][j] = vusmmlaq_s32(acc[p][j], av[p], bv);
    }
  }
  // acc[p][j] = [r0 c2j, r0 c2j+1, r1 c2j, r1 c2j+1]
  for (int p = 0; p < RP; p++)
    for (int j = 0; j < kNR / 2; j += 2) {
      const int64x2_t x = vreinterpretq_s64_s32(acc[p][j]), y = vreinterpretq_s64_s32(acc[p][j + 1]);
      vst1q_s32(c + (2 * p) * ldc + 2 * j, vreinterpretq_s32_s64(vzip1q_s64(x, y)));
      if (2 * size_t(p) + 1 < mr)
        vst1q_s32(c + (2 * p + 1) * ldc + 2 * j, vreinterpretq_s32_s64(vzip2q_s64(x, y)));
    }
}

}  // namespace

void gemm_u8s8s32__i8mm(size_t mr, size_t kp, const void* a_, size_t lda, const int8_t* b,
                        int32_t* c, size_t ldc) {
  const uint8_t* a = static_cast<const uint8_t*>(a_);
  if (mr <= 2) return tile<1>(mr, kp, a, lda, b, c, ldc);
  tile<2>(mr, kp, a, lda, b, c, ldc);
}

}  // namespace kernels
}  // namespace lowbit
