// Scalar reference for the u8 x s8 -> s32 GEMM micro-kernel (contract in lowbit/kernels.h).
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {

void gemm_u8s8s32__scalar(size_t mr, size_t kp, const void* a_, size_t lda, const int8_t* b,
                          int32_t* c, size_t ldc) {
  const uint8_t* a = static_cast<const uint8_t*>(a_);
  for (size_t r = 0; r < mr; r++) {
    uint32_t acc[kNR] = {0};  // unsigned: wrapping arithmetic is defined, as in the SIMD kernels
    for (size_t g = 0; g < kp / kKG; g++) {
      const int8_t* bg = b + g * kNR * kKG;
      const uint8_t* ag = a + r * lda + g * kKG;
      for (int j = 0; j < kNR; j++)
        for (int k = 0; k < kKG; k++)
          acc[j] += static_cast<uint32_t>(int32_t(ag[k]) * int32_t(bg[j * kKG + k]));
    }
    for (int j = 0; j < kNR; j++) c[r * ldc + j] = static_cast<int32_t>(acc[j]);
  }
}

}  // namespace kernels
}  // namespace lowbit
