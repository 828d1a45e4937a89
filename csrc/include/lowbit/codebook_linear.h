// CodebookLinear's C++ core (lowbit.CodebookLinear, kind 3 layers of lowbit::Model): a linear
// layer whose weight is a k-means codebook (lowbit/kmeans.h makes it), run through the codebook
// GEMM kernels (lowbit/kernels.h) without building the float weight. Results are independent of
// the thread count and of the kernel set (the kernels match their scalar references bit for bit).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lowbit/parallel.h"

namespace lowbit {

// A linear layer y = x W^T + b whose weight W (out x in) is a codebook: k centroids of dim
// values, one code per group of dim consecutive weights of a row. The forward never builds the
// float weight: activations are quantized per row (symmetric, scale max|x| / qmax), the
// centroids once (one scale), products are summed exactly in integers, and
// y = acc * x_scale * w_scale + b. With k <= 16 and dim 1 the weights stay 4-bit codes that the
// kernel looks up in a register: s8cb4_s64_gemm with activations and centroids in int8 (qmax
// 127), or, when `precise`, s16cb4_s64_gemm in 13 bits (qmax 4095). Otherwise tiles of int16
// weights are decoded inside the multiply (s16s16_s64_gemm), in 13 bits. The forward runs on the
// int8 GEMM's task grid and threads (csrc/core/gemm_grid.h), each tile's exact sums turned into
// floats as soon as the kernel has made them.
//
// Per-row tables (the PerRow constructor; lowbit.CodebookLinear(per_row=True)): every output
// row c has its own table of k <= 256 entries, already quantized, and its own scale, so that
// y[., c] = acc * x_scale * row_scale[c] + b[c]. With k <= 16 the 4-bit path runs one kernel call
// per output row with that row's table (the kernels take one table a call); above, the row's
// int16 weights are decoded from its own table inside the multiply.
class CodebookLinearPlan {
 public:
  struct PerRow {};  // tag of the per-row constructor
  // codes: out * (in / dim) codes, uint8 when k <= 256 else uint16 (unpacked).
  CodebookLinearPlan(const float* centroids, size_t k, size_t dim, const void* codes, size_t out,
                     size_t in, const float* bias, bool precise);
  // Per-row tables: qtables holds out rows of k quantized entries (|q| <= 127 when k <= 16 and
  // not precise, else |q| <= kCbMaxQ; the caller checks), scales out floats, codes out * in
  // uint8 codes (< k, unpacked), dim 1.
  CodebookLinearPlan(PerRow, const int16_t* qtables, const float* scales, size_t k,
                     const uint8_t* codes, size_t out, size_t in, const float* bias, bool precise);
  // Scratch memory of forward(). A workspace that has served a call with M rows (at the
  // current thread count) serves every call with at most M rows without allocating.
  struct Workspace {
    std::vector<int8_t> x8;      // quantized activations (int8 path), M * kp
    std::vector<int16_t> x16;    // quantized activations (13-bit paths), M * kp
    std::vector<float> xs;       // activation scale of each row
    std::vector<int16_t> tiles;  // one decoded weight tile per worker (decoded-tile path)
    OnceFlags quantized;         // per row block of the grid: its activations are quantized
  };
  // x: M rows of `in` floats; y: M rows of `out`. Returns false if x holds NaN or Inf.
  bool forward(const float* x, size_t M, float* y, Workspace* ws) const;
  bool forward(const float* x, size_t M, float* y) const {
    Workspace ws;
    return forward(x, M, y, &ws);
  }
  size_t in_features() const { return in_; }
  size_t out_features() const { return out_; }
  size_t k() const { return k_; }
  size_t dim() const { return dim_; }
  bool nibbles() const { return nibbles_; }
  bool precise() const { return precise_; }
  bool per_row() const { return per_row_; }
  // Entries per table as held: 16 on the 4-bit path, else max(k, 16) * dim (one shared table)
  // or k (per row).
  size_t table_width() const { return tw_; }
  const std::vector<float>& row_scales() const { return row_scales_; }  // per_row only
  float weight_scale() const { return w_scale_; }
  // The quantized centroids the kernels use (per_row: out tables of table_width() entries).
  std::vector<int16_t> qcentroids() const;
  // The codes as given to the constructor (out * in / dim, uint8 when k <= 256 else uint16),
  // read back from the plan's own layout: the plan is the only copy a layer needs to keep.
  void codes(void* out) const;
  size_t nbytes() const;  // weights as stored + table(s) + scale(s) + bias + outliers
  // Outliers (lowbit.CodebookLinear(outliers=f)), dim 1 only: a sparse side matrix S in CSR by
  // output row (indptr: out + 1 offsets from 0 to nnz, non-decreasing; cols < in), holding those
  // weights exactly. The forward adds, per output, sum_j x[col_j] * (value_j - dense_j) in double
  // (dense_j the codebook's weight at that position, its table entry times its scale), in the
  // order of S, to the dense result before the bias. The caller checks the arrays.
  void set_outliers(const int32_t* indptr, const int32_t* cols, const float* values, size_t nnz);
  const std::vector<int32_t>& outlier_indptr() const { return sp_ptr_; }
  const std::vector<int32_t>& outlier_cols() const { return sp_col_; }
  const std::vector<float>& outlier_values() const { return sp_val_; }
  // The codebook's float weight at (row, col) (dim 1): table entry times scale.
  float dense_weight(size_t row, size_t col) const;

 private:
  template <typename Code>
  void decode_row(const Code* codes, size_t groups, const int16_t* table,
                  int16_t* dst) const;  // int16 weights of a row

  size_t in_, out_, kp_, dim_, k_;
  bool nibbles_, precise_, per_row_ = false;
  size_t tw_ = 16;
  float w_scale_ = 1.0f;
  std::vector<float> row_scales_;  // per_row_: one scale per output row
  std::vector<int8_t> qc8_;       // nibbles_ && !precise_: the 16-entry int8 table(s)
  std::vector<int16_t> qc_;       // otherwise: k * dim (at least 16) int16 centroids, or the
                                  // per-row tables (out * tw_)
  std::vector<uint8_t> packed_;   // nibbles_: out * kp / 2 bytes in the kernel's 4-bit layout
  std::vector<uint8_t> codes8_;   // otherwise: out * (in / dim) codes (k <= 256)
  std::vector<uint16_t> codes16_; //            (k > 256)
  std::vector<float> bias_;
  std::vector<int32_t> sp_ptr_, sp_col_;  // outliers: CSR by output row (empty: none)
  std::vector<float> sp_val_;
  std::vector<float> sp_delta_;  // per outlier: its exact value minus the dense weight there
};

// Packs one row of 4-bit codes (`in` codes, padded with code 0 to kp) into the layout of
// s8cb4_s64_gemm (lowbit/kernels.h); dst holds kp / 2 bytes. Exposed for the tests.
void pack_cb4_row(const uint8_t* codes, size_t in, size_t kp, uint8_t* dst);

}  // namespace lowbit
