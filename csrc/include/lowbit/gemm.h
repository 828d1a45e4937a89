// Integer GEMM: C = (A - a_zp) * (B - b_zp) with A uint8 (M x K), B int8 (K x N) packed once,
// int32 accumulation, and a fused output stage (int32, float dequantize + bias + ReLU, or
// requantize to 8 bits for chaining int8 layers).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lowbit/kernels.h"

namespace lowbit {

// B packed for the micro-kernels (layout in lowbit/kernels.h), plus its column sums.
struct PackedB {
  size_t K = 0, N = 0, kp = 0, panels = 0;
  std::vector<int8_t> data;     // panels * kp * kNR bytes
  std::vector<int32_t> colsum;  // sum over k of B[k][n], n < N
  size_t nbytes() const { return data.size() + colsum.size() * sizeof(int32_t); }
};

// Packs B; element (k, n) is b[k * row_stride + n * col_stride] (strides in elements).
PackedB pack_b(const int8_t* b, size_t K, size_t N, ptrdiff_t row_stride, ptrdiff_t col_stride);
// The inverse, for tests: out is K x N row-major.
void unpack_b(const PackedB& pb, int8_t* out);

// Fixed-point form of a positive real multiplier: m = m0 * 2^-(31 + shift), m0 in [2^30, 2^31).
// Returns false if m is not finite and positive or out of the range the requantizer handles.
bool quantize_multiplier(double m, int32_t* m0, int32_t* shift);

struct OutputStage {
  enum class Kind { int32, float32, requant8 };
  Kind kind = Kind::int32;
  // Zero points: of A one per row (a_zp_row) or one for all (a_zp); of B one for all.
  int32_t a_zp = 0;
  const int32_t* a_zp_row = nullptr;
  int32_t b_zp = 0;
  // float32: y = float(acc) * (a_scale[m] * b_scale[n]) + bias[n], then max(y, 0) if relu.
  // a_scale has M entries if a_scale_per_row else 1; b_scale N if b_scale_per_col else 1.
  const float* a_scale = nullptr;
  bool a_scale_per_row = false;
  const float* b_scale = nullptr;
  bool b_scale_per_col = false;
  const float* bias = nullptr;  // N entries or null
  bool relu = false;
  // requant8: q = clamp(round_half_away_from_zero(acc * m0[n] * 2^-(31 + shift[n])) + out_zp,
  // qmin, qmax), computed exactly in 64-bit integers; bias_i32 (N entries or null) is added to
  // acc first. Written as bytes (int8 or uint8 by [qmin, qmax]). relu: qmin raised to out_zp.
  const int32_t* m0 = nullptr;
  const int32_t* shift = nullptr;
  const int32_t* bias_i32 = nullptr;
  int32_t out_zp = 0, qmin = 0, qmax = 255;
  // Output, row-major with row stride ldo (elements): int32_t*, float* or uint8_t*.
  void* out = nullptr;
  size_t ldo = 0;
};

// Runs the GEMM on the active kernel set; A rows are lda bytes apart. Parallel over the pool.
void gemm_u8s8(const uint8_t* a, size_t lda, size_t M, const PackedB& b, const OutputStage& os);

// A float linear layer on int8 weights, activations quantized on the fly: each row of x (M x K,
// float32, contiguous) is quantized to uint8 with its own scale and zero point (as
// lowbit.quantize(symmetric=False) does per row), multiplied with the packed weights, and
// dequantized with w_scale (one per column, or one for all if !per_col) and bias in the output
// stage. Returns false if x holds NaN or Inf.
bool linear_dynamic(const float* x, size_t M, const PackedB& w, const float* w_scale, bool per_col,
                    const float* bias, bool relu, float* out);

}  // namespace lowbit
