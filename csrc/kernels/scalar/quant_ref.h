// One element of each quantization kernel: the definition every ISA matches bit for bit.
// SIMD kernels use these for their tails, so a tail can never round differently.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>

namespace lowbit {
namespace ref {

inline bool is_finite(float x) { return std::fabs(x) <= FLT_MAX; }  // false for NaN and +-Inf

// clamp(round_half_even(x / scale) + zp, qmin, qmax) as a byte (low 8 bits of the int code).
// nearbyint rounds half to even in the default floating-point environment, which lowbit never
// changes; the clamp is done in float so out-of-range values never reach the int conversion.
inline uint8_t quantize1(float x, float scale, float zp, float qmin, float qmax) {
  float v = std::nearbyint(x / scale) + zp;
  v = v < qmin ? qmin : v;
  v = v > qmax ? qmax : v;
  return static_cast<uint8_t>(static_cast<int32_t>(v));
}

inline float dequantize1(float q, float scale, float zp) { return (q - zp) * scale; }

}  // namespace ref
}  // namespace lowbit
