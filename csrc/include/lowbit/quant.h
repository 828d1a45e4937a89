// Linear quantization of float32 tensors (the C++ core behind lowbit.quantize).
//
// A tensor is seen as (outer, C, inner), contiguous: C channels, each channel the `outer` runs of
// `inner` values at [o, c, :]. Per-tensor quantization is C = 1. Codes are bytes: int8 when
// symmetric, uint8 when not. real = scale * (q - zero_point).
#pragma once
#include <cstddef>
#include <cstdint>

#include "lowbit/runtime.h"

namespace lowbit {

struct Shape3 {
  size_t outer, channels, inner;
  size_t size() const { return outer * channels * inner; }
};

// The code range: symmetric computed -> narrow signed [-(2^(b-1)-1), 2^(b-1)-1];
// static symmetric -> full signed [-2^(b-1), 2^(b-1)-1]; asymmetric -> [0, 2^b - 1].
void code_range(int bits, bool symmetric, bool narrow, int* qmin, int* qmax);

// Parameters of one channel from its min and max (finite), as API.md defines them:
// symmetric: scale = max|x| / qmax, zero point 0; asymmetric (ONNX DynamicQuantizeLinear): range
// widened to include 0, scale = (hi - lo) / (2^b - 1), zp = saturate(round(-lo / scale)).
// A constant channel v gets scale |v| (1 when v == 0), so it dequantizes exactly.
void choose_params(float mn, float mx, int bits, bool symmetric, float* scale, int32_t* zp);

// Computes min/max per channel, the parameters, and the codes. Returns false (outputs undefined)
// if x holds NaN or Inf.
bool quantize_dynamic(const float* x, Shape3 s, int bits, bool symmetric, uint8_t* codes,
                      float* scale, int32_t* zp);

// Codes for given parameters (one per channel): q = clamp(rne(x / scale) + zp, qmin, qmax).
// Returns false if x holds NaN or Inf.
bool quantize_static(const float* x, Shape3 s, const float* scale, const int32_t* zp, int qmin,
                     int qmax, uint8_t* codes);

// out = (q - zp) * scale with one (scale, zp) per channel; codes int8 if is_signed else uint8.
void dequantize(const uint8_t* codes, bool is_signed, Shape3 s, const float* scale,
                const int32_t* zp, float* out);

// Runs fn(begin, end) over [0, n) in pieces of at least `grain` items, in parallel.
void parallel_range(size_t n, size_t grain, FunctionRef<void(size_t, size_t)> fn);

}  // namespace lowbit
