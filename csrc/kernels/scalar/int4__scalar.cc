// Scalar tile of 4-bit weights in groups (Int4Tile in lowbit/kernels.h): the fallback on every CPU
// and the oracle of the SIMD versions (../x86/int4__avx2.cc). It reads every value through the
// layout's definition, one at a time.
#include <cmath>
#include <cstring>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

constexpr size_t kNR = 16, kKR = 4;

// IEEE binary16 -> float32, exactly (every binary16 value is a float32 value).
float half_to_float(uint16_t h) {
  const float sign = (h & 0x8000u) ? -1.0f : 1.0f;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -24);  // zero, subnormal
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
}

// Code u of value (k, j) of the panel.
int nibble(const uint8_t* panel, size_t k, size_t j) {
  const size_t i = ((k / kKR) * kNR + j) * kKR + k % kKR;
  const uint8_t byte = panel[i / 64 * 32 + i % 32];
  return i % 64 < 32 ? byte & 15 : byte >> 4;
}

}  // namespace

void s8q4_f32_gemm__scalar(const Int4Tile& t) {
  for (size_t r = 0; r < t.mr; r++) {
    const int8_t* a = t.a + r * t.lda;
    for (size_t j = 0; j < t.nc; j++) {
      float y = 0.0f;
      for (size_t g = 0; g < t.ngroups; g++) {
        int32_t s = 0;
        for (size_t k = g * t.group; k < (g + 1) * t.group; k++) s += nibble(t.b, k, j) * a[k];
        const int32_t acc = s - int32_t(t.zero[g * kNR + j]) * t.asum[r * t.ngroups + g];
        y = std::fma(half_to_float(t.scale[g * kNR + j]), static_cast<float>(acc), y);
      }
      float o = y * (t.a_scale[r] * t.col_scale[j]);
      if (t.bias) o = o + t.bias[j];
      t.out[r * t.ldo + j] = o;
    }
  }
}

}  // namespace kernels
}  // namespace lowbit
