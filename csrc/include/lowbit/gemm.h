// Integer GEMM: C = (A - a_zp) * (B - b_zp) with A uint8 (M x K), B int8 (K x N) packed once,
// int32 accumulation, and a fused output stage (int32, float dequantize + bias + ReLU, or
// requantize to 8 bits for chaining int8 layers) applied by the micro-kernels in registers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "lowbit/kernels.h"

namespace lowbit {

// B packed in one kernel's format (nr, kr; layout in lowbit/kernels.h), with what the epilogue
// needs: column sums (for A's zero point) and, per panel, whether its values fit s7.
// With s4 (every value in [-8, 7]: weights of 4 bits or fewer), each panel's kp * nr bytes are
// held two values a byte, as s4 (lowbit/kernels.h) padded to a multiple of 64 values. A kernel set's
// gemm4 kernel reads them as they are (for as many rows as its mr); for more rows the driver
// unpacks a column block's panels into a per-thread buffer that the other kernels read.
struct PackedB {
  size_t K = 0, N = 0;
  int nr = 0, kr = 0;           // the format
  size_t kp = 0, panels = 0;    // K padded to a multiple of kr; ceil(N / nr)
  bool s4 = false;
  std::vector<int8_t> data;     // panels * panel_bytes()
  // Values of a panel as the micro-kernels read it, and the bytes it takes in `data`.
  size_t panel_values() const { return kp * nr; }
  size_t panel_stride() const { return s4 ? (panel_values() + 63) / 64 * 64 : panel_values(); }
  size_t panel_bytes() const { return s4 ? panel_stride() / 2 : panel_values(); }
  std::vector<int32_t> colsum;  // panels * nr, zero past N
  std::vector<uint8_t> s7;      // panels: 1 if every value of the panel is in [-64, 63]
  bool all_s7 = false;
  size_t nbytes() const { return data.size() + colsum.size() * sizeof(int32_t) + s7.size(); }
  // Another format of the same B, made the first time a kernel set with that format runs it
  // (LOWBIT_ISA, set_isa, a file packed on another CPU); kept until B is destroyed.
  mutable std::shared_ptr<const PackedB> repacked;
};

// Packs B for the active kernel set (or for the format nr x kr); element (k, n) is
// b[k * row_stride + n * col_stride] (strides in elements).
PackedB pack_b(const int8_t* b, size_t K, size_t N, ptrdiff_t row_stride, ptrdiff_t col_stride);
// s4: hold the values two a byte; every value must be in [-8, 7] (s4_fits checks).
PackedB pack_b(const int8_t* b, size_t K, size_t N, ptrdiff_t row_stride, ptrdiff_t col_stride,
               int nr, int kr, bool s4 = false);
PackedB pack_b_s4(const int8_t* b, size_t K, size_t N, ptrdiff_t row_stride, ptrdiff_t col_stride);
bool s4_fits(const int8_t* b, size_t K, size_t N, ptrdiff_t row_stride, ptrdiff_t col_stride);
// The inverse: out is K x N row-major.
void unpack_b(const PackedB& pb, int8_t* out);

struct OutputStage {
  using Kind = GemmOut;
  Kind kind = Kind::s32;
  // Zero points: of A one per row (a_zp_row) or one for all (a_zp); of B one for all.
  int32_t a_zp = 0;
  const int32_t* a_zp_row = nullptr;
  int32_t b_zp = 0;
  // f32: y = float(acc) * (a_scale[m] * b_scale[n]) + bias[n], then max(y, 0) if relu.
  // a_scale has M entries if a_scale_per_row else 1; b_scale N if b_scale_per_col else 1.
  const float* a_scale = nullptr;
  bool a_scale_per_row = false;
  const float* b_scale = nullptr;
  bool b_scale_per_col = false;
  const float* bias = nullptr;  // N entries or null
  bool relu = false;
  // q8: q = clamp(round_half_even(float(acc + bias_i32[n]) * q_scale[n]) + out_zp, qmin, qmax),
  // (GemmTile's q8 in lowbit/kernels.h); bias_i32 N entries or null. Written as bytes (int8 or
  // uint8 by [qmin, qmax]). relu: qmin raised to out_zp.
  const float* q_scale = nullptr;  // N entries
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
// lowbit.quantize(bits=act_bits, symmetric=False) does per row; act_bits 8 or 7), multiplied
// with the packed weights, and dequantized with w_scale (one per column, or one for all if
// !per_col) and bias in the output stage. Returns false if x holds NaN or Inf.
bool linear_dynamic(const float* x, size_t M, const PackedB& w, const float* w_scale, bool per_col,
                    const float* bias, bool relu, float* out, int act_bits = 8);

}  // namespace lowbit
