// Scalar references for the codebook kernels (decode lookups and the codebook GEMMs; contracts in
// lowbit/kernels.h): the fallback on CPUs without SIMD and the oracle every SIMD twin is tested
// against, bit for bit.
#include <cstring>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {

void u4_f32_lookup__scalar(const uint8_t* codes, size_t n, const float* table, size_t d,
                           float* out, int) {
  if (d == 1) {
    for (size_t i = 0; i < n; i++) out[i] = table[(codes[i / 2] >> ((i & 1) * 4)) & 15u];
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const unsigned code = (codes[i / 2] >> ((i & 1) * 4)) & 15u;
    std::memcpy(out + i * d, table + code * d, d * sizeof(float));
  }
}

void u8_f32_lookup__scalar(const uint8_t* codes, size_t n, const float* table, size_t d,
                           float* out, int) {
  if (d == 1) {
    for (size_t i = 0; i < n; i++) out[i] = table[codes[i]];
    return;
  }
  for (size_t i = 0; i < n; i++) std::memcpy(out + i * d, table + codes[i] * d, d * sizeof(float));
}

void u16_f32_lookup__scalar(const uint16_t* codes, size_t n, const float* table, size_t d,
                            float* out, int) {
  if (d == 1) {
    for (size_t i = 0; i < n; i++) out[i] = table[codes[i]];
    return;
  }
  for (size_t i = 0; i < n; i++) std::memcpy(out + i * d, table + codes[i] * d, d * sizeof(float));
}

void s8cb4_s64_gemm__scalar(size_t mr, size_t nr, size_t kp, const int8_t* x, size_t ldx,
                            const uint8_t* w, size_t ldw, const int8_t* table, int64_t* y,
                            size_t ldy) {
  for (size_t r = 0; r < mr; r++)
    for (size_t c = 0; c < nr; c++) {
      const int8_t* xr = x + r * ldx;
      const uint8_t* wc = w + c * ldw;
      int64_t acc = 0;
      for (size_t u = 0; u < kp / 64; u++)
        for (size_t j = 0; j < 32; j++) {
          const uint8_t b = wc[u * 32 + j];
          acc += int32_t(xr[u * 64 + j]) * table[b & 15] + int32_t(xr[u * 64 + 32 + j]) * table[b >> 4];
        }
      y[r * ldy + c] = acc;
    }
}

void s16s16_s64_gemm__scalar(size_t mr, size_t nr, size_t kp, const int16_t* x, size_t ldx,
                             const int16_t* w, size_t ldw, int64_t* y, size_t ldy) {
  for (size_t r = 0; r < mr; r++)
    for (size_t c = 0; c < nr; c++) {
      const int16_t* xr = x + r * ldx;
      const int16_t* wc = w + c * ldw;
      int64_t acc = 0;
      for (size_t i = 0; i < kp; i++) acc += static_cast<int64_t>(xr[i]) * wc[i];
      y[r * ldy + c] = acc;
    }
}

void s16cb4_s64_gemm__scalar(size_t mr, size_t nr, size_t kp, const int16_t* x, size_t ldx,
                             const uint8_t* w, size_t ldw, const int16_t* table, int64_t* y,
                             size_t ldy) {
  for (size_t r = 0; r < mr; r++)
    for (size_t c = 0; c < nr; c++) {
      const int16_t* xr = x + r * ldx;
      const uint8_t* wc = w + c * ldw;
      int64_t acc = 0;
      for (size_t u = 0; u < kp / 64; u++)
        for (size_t j = 0; j < 32; j++) {
          const uint8_t b = wc[u * 32 + j];
          // Activations j and 32 + j of the unit, where the swapped layout keeps them.
          const size_t pj = (j >= 8 && j < 16) ? j + 8 : (j >= 16 && j < 24) ? j - 8 : j;
          acc += int64_t(xr[u * 64 + pj]) * table[b & 15] + int64_t(xr[u * 64 + 32 + pj]) * table[b >> 4];
        }
      y[r * ldy + c] = acc;
    }
}

}  // namespace kernels
}  // namespace lowbit
