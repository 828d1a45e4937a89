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

// ---- Quantization parameters: the one definition --------------------------------------------
// Every (scale, zero point) lowbit computes comes from choose_params: lowbit.quantize without
// scale=, QuantizedLinear's dynamic activations, lowbit.observers.range_to_qparams (for the
// observers' ranges), and lowbit.nn's fake quantization (Python: lowbit.quant.qparams, bound as
// _core.qparams). Inputs are a channel's min mn and max mx (finite, mn <= mx); every operation is
// one IEEE float32 operation rounded to nearest even, in the order written:
//
//   code range    symmetric: [-qmax, qmax], qmax = 2^(b-1) - 1 (narrow, zero point 0);
//                 asymmetric: [0, qmax], qmax = 2^b - 1 (uint).
//   constant      mn == mx = v (all-zero included): scale = |v|, or 1 when v == 0; zero point
//                 1 when asymmetric and v < 0, else 0. Every value then dequantizes exactly
//                 (v -> code 1 or -1, or code 0 with zero point 1).
//   symmetric     a = max(|mn|, |mx|); scale = a / qmax.
//   asymmetric    ONNX DynamicQuantizeLinear: lo = min(mn, 0), hi = max(mx, 0) (the range
//                 widened to include 0); scale = (hi - lo) / qmax; zero point =
//                 clamp(round_half_even(-lo / scale), 0, qmax) (ONNX's qmin - lo / scale with
//                 qmin = 0). When hi - lo overflows float32 (e.g. [-3e38, 3e38]) the scale is
//                 (double(hi) - double(lo)) / qmax rounded once to float32 instead.
//   subnormal     a scale that underflows to 0 becomes the range itself (a, or hi - lo); a
//                 subnormal scale (< 2^-126, few significant bits) is raised one ulp at a time
//                 until scale * qmax >= the range exactly, so no value of the channel saturates
//                 by more than half a step. Normal scales are never adjusted.
// Results: scale finite and > 0, zero point in the code range. Non-finite mn/mx (NaN, +-Inf) are
// outside the contract: the array form refuses them.
void choose_params(float mn, float mx, int bits, bool symmetric, float* scale, int32_t* zp);

// The same for n channels: (scale[i], zp[i]) from (mn[i], mx[i]). Returns false (outputs
// undefined) if some mn[i] or mx[i] is NaN or +-Inf, or mn[i] > mx[i].
bool choose_params(const float* mn, const float* mx, size_t n, int bits, bool symmetric,
                   float* scale, int32_t* zp);

// Packed codes (QTensor with bits <= 4): `per` = 2 or 4 codes per byte, code i in bits
// [w * (i % per), w * (i % per) + w) of byte i / per (w = 8 / per bits, first code lowest); the
// unused high slots of the last byte are 0. pack_codes keeps the low w bits of each code byte;
// unpack_codes writes n code bytes, sign-extended from w bits when is_signed.
void pack_codes(const uint8_t* codes, size_t n, int per, uint8_t* out);
void unpack_codes(const uint8_t* packed, size_t n, int per, bool is_signed, uint8_t* out);

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

}  // namespace lowbit
