// One element of each quantization kernel and of the GEMMs' requantizing epilogue: the scalar
// definitions every ISA matches bit for bit. Only the scalar kernels (the oracle: quant__scalar.cc,
// gemm__scalar.cc) include this file; SIMD kernels state the same rules with their own
// instructions, tails included, and are tested against the scalar kernels.
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

// Requantization to 8-bit codes (GemmOut::q8, GemmTile in lowbit/kernels.h; ONNX Runtime's
// rule): v is the exact int32 sum, bias included; y = float(v) * m in float32 (one rounding each:
// the conversion, then the product, no fused multiply-add), clamped to [lo, hi] = [qmin - zp,
// qmax - zp] (whole numbers, so clamping before rounding equals clamping after and the int
// conversion cannot overflow), rounded half to even, plus zp; the code is the low byte. The SIMD
// epilogues (x86/epilogue__avx2.h, x86/epilogue__avx512.h, arm/epilogue__neon.h) compute exactly
// this per lane: cvtepi32_ps / vcvtq_f32_s32, mul, max then min, cvtps_epi32 (MXCSR's default
// round to nearest even) / vcvtnq_s32_f32, add zp, low byte.
inline uint8_t requantize1(int32_t v, float m, float lo, float hi, int32_t zp) {
  float y = static_cast<float>(v) * m;
  y = y < lo ? lo : y;
  y = y > hi ? hi : y;
  return static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(y)) + zp);
}

}  // namespace ref
}  // namespace lowbit
