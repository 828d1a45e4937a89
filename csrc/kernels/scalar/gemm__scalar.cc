// Scalar u8 x s8 GEMM with the fused epilogue, and its twin for B held as s4 (contracts in
// lowbit/kernels.h): the fallback on every CPU and the SIMD kernels' oracle. Tile: up to 4 rows x
// one panel of 16 columns, k-groups of 4 (GemmKernel entries in csrc/runtime/dispatch.cc).
#include <algorithm>
#include <cmath>

#include "kernels/scalar/quant_ref.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {
constexpr int kNR = 16, kKR = 4;

// Row r of the tile from its raw dot products acc[j] (wrapping uint32): the epilogue.
void epilogue_row(const GemmTile& t, size_t r, const uint32_t* acc) {
  for (size_t j = 0; j < t.nc; j++) {
    const int32_t v = static_cast<int32_t>(acc[j] + static_cast<uint32_t>(t.row_add[r]) +
                                           static_cast<uint32_t>(t.row_mul[r]) *
                                               static_cast<uint32_t>(t.colsum[j]));
    switch (t.out_kind) {
      case GemmOut::s32:
        static_cast<int32_t*>(t.out)[r * t.ldo + j] = v;
        break;
      case GemmOut::f32: {
        float y = static_cast<float>(v) * (t.a_scale[r * t.a_scale_step] * t.b_scale[j]);
        if (t.bias) y += t.bias[j];
        if (t.relu) y = y > 0.0f ? y : 0.0f;
        static_cast<float*>(t.out)[r * t.ldo + j] = y;
        break;
      }
      case GemmOut::q8: {
        const uint32_t vb = static_cast<uint32_t>(v) +
                            static_cast<uint32_t>(t.bias_i32 ? t.bias_i32[j] : 0);
        static_cast<uint8_t*>(t.out)[r * t.ldo + j] =
            ref::requantize1(static_cast<int32_t>(vb), t.q_scale[j], t.q_lo, t.q_hi, t.q_zp);
        break;
      }
    }
  }
}

}  // namespace

void u8s8_epi_gemm__scalar(const GemmTile& t) {
  const uint8_t* a = static_cast<const uint8_t*>(t.a);
  for (size_t r = 0; r < t.mr; r++) {
    uint32_t acc[kNR] = {0};  // unsigned: wrapping arithmetic is defined, as in the SIMD kernels
    const uint8_t* ar = a + r * t.lda;
    for (size_t g = 0; g < t.kp / kKR; g++) {
      const int8_t* bg = t.b + g * kNR * kKR;
      for (int j = 0; j < kNR; j++)
        for (int k = 0; k < kKR; k++)
          acc[j] += static_cast<uint32_t>(int32_t(ar[g * kKR + k]) * int32_t(bg[j * kKR + k]));
    }
    epilogue_row(t, r, acc);
  }
}

// B as s4: value i of the panel (index (g * kNR + j) * kKR + k, as above) is nibble i % 64 of
// its block of 64: the low nibble of byte i % 32 for i % 64 < 32, else the high one; the kernel
// multiplies with the nibble itself (B + 8).
void u8s4_epi_gemm__scalar(const GemmTile& t) {
  const uint8_t* a = static_cast<const uint8_t*>(t.a);
  const uint8_t* b = reinterpret_cast<const uint8_t*>(t.b);
  for (size_t r = 0; r < t.mr; r++) {
    uint32_t acc[kNR] = {0};
    const uint8_t* ar = a + r * t.lda;
    for (size_t g = 0; g < t.kp / kKR; g++)
      for (int j = 0; j < kNR; j++)
        for (int k = 0; k < kKR; k++) {
          const size_t i = (g * kNR + j) * kKR + k;
          const uint8_t byte = b[i / 64 * 32 + i % 32];
          const uint32_t u = i % 64 < 32 ? byte & 15u : byte >> 4;
          acc[j] += ar[g * kKR + k] * u;
        }
    epilogue_row(t, r, acc);
  }
}

}  // namespace kernels
}  // namespace lowbit
