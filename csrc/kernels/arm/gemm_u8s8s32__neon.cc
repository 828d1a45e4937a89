// u8 x s8 -> s32 GEMM micro-kernel for plain NEON (armv8-a, e.g. Cortex-A53); contract in
// lowbit/kernels.h, oracle ../scalar/gemm_u8s8s32__scalar.cc.
// A comes as a - 128 (APack::s8_flipped; the driver adds 128 * colsum(B) back). smull multiplies
// int8 pairs into int16 (|p| <= 128 * 128 = 16384, exact) and sadalp adds neighbouring products
// into int32 lanes. One row x 16 columns: 16 accumulators, each 4 partial sums of one column.
#include <arm_neon.h>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {

void gemm_u8s8s32__neon(size_t mr, size_t kp, const void* a_, size_t lda, const int8_t* b,
                        int32_t* c, size_t ldc) {
  const int8_t* a = static_cast<const int8_t*>(a_);
  for (size_t r = 0; r < mr; r++) {
    int32x4_t acc[kNR];
    for (int j = 0; j < kNR; j++) acc[j] = vdupq_n_s32(0);
    for (size_t g = 0; g < kp / kKG; g++) {
      const int8x8_t av = vld1_s8(a + r * lda + g * kKG);
      const int8_t* bg = b + g * kNR * kKG;
      for (int j = 0; j < kNR; j += 2) {
        const int8x16_t bv = vld1q_s8(bg + j * kKG);  // columns j, j + 1
        acc[j] = vpadalq_s16(acc[j], vmull_s8(av, vget_low_s8(bv)));
        acc[j + 1] = vpadalq_s16(acc[j + 1], vmull_s8(av, vget_high_s8(bv)));
      }
    }
    for (int j = 0; j < kNR; j += 4) {
      int32x4_t s = vpaddq_s32(vpaddq_s32(acc[j], acc[j + 1]), vpaddq_s32(acc[j + 2], acc[j + 3]));
      vst1q_s32(c + r * ldc + j, s);
    }
  }
}

}  // namespace kernels
}  // namespace lowbit
