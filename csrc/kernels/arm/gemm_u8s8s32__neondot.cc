// u8 x s8 -> s32 GEMM micro-kernel for NEON with the dot-product extension (sdot; armv8.2-a,
// e.g. Neoverse-N1); contract in lowbit/kernels.h, oracle ../scalar/gemm_u8s8s32__scalar.cc.
// A comes as a - 128 (APack::s8_flipped; the driver adds 128 * colsum(B) back), so sdot's
// int8 x int8 fits. Up to 2 rows x 16 columns. A B vector holds columns j, j + 1 (8 bytes each);
// A's 8 bytes are duplicated into both halves, so lanes hold [cj p0, cj p1, cj+1 p0, cj+1 p1].
#include <arm_neon.h>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

template <int MR>
void tile(size_t kp, const int8_t* a, size_t lda, const int8_t* b, int32_t* c, size_t ldc) {
  int32x4_t acc[MR][kNR / 2];
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < kNR / 2; j++) acc[r][j] = vdupq_n_s32(0);
  for (size_t g = 0; g < kp / kKG; g++) {
    const int8_t* bg = b + g * kNR * kKG;
    int8x16_t av[MR];
    for (int r = 0; r < MR; r++) {
      const int8x8_t a8 = vld1_s8(a + r * lda + g * kKG);
      av[r] = vcombine_s8(a8, a8);
    }
    for (int j = 0; j < kNR / 2; j++) {
      const int8x16_t bv = vld1q_s8(bg + 16 * j);
      for (int r = 0; r < MR; r++) acc[r][j] = vdotq_s32(acc[r][j], av[r], bv);
    }
  }
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < kNR / 2; j += 2)
      vst1q_s32(c + r * ldc + 2 * j, vpaddq_s32(acc[r][j], acc[r][j + 1]));
}

}  // namespace

void gemm_u8s8s32__neondot(size_t mr, size_t kp, const void* a_, size_t lda, const int8_t* b,
                           int32_t* c, size_t ldc) {
  const int8_t* a = static_cast<const int8_t*>(a_);
  if (mr == 1) return tile<1>(kp, a, lda, b, c, ldc);
  tile<2>(kp, a, lda, b, c, ldc);
}

}  // namespace kernels
}  // namespace lowbit
