// CodebookLinear's C++ core (lowbit/codebook_linear.h): the plan (quantized centroids, codes in
// the kernels' layout) and the forward pass: the codebook GEMM kernels driven on the task grid of
// the int8 GEMM (core/gemm_grid.h), the float epilogue applied tile by tile.
#include "lowbit/codebook_linear.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "core/gemm_grid.h"
#include "lowbit/runtime.h"

namespace lowbit {

void pack_cb4_row(const uint8_t* codes, size_t in, size_t kp, uint8_t* dst) {
  std::memset(dst, 0, kp / 2);
  for (size_t i = 0; i < in; i++) {
    const size_t u = i / 64, w = i % 64;  // weight w of unit u: byte w % 32, nibble w / 32
    dst[u * 32 + w % 32] |= static_cast<uint8_t>((codes[i] & 15) << (4 * (w / 32)));
  }
}

namespace {

// Symmetric quantization of n values to |q| <= qmax: scale max|v| / qmax (1 for all zeros),
// q = round_half_even(v / scale). Returns false if v holds NaN or Inf.
template <typename Q>
bool quantize_sym(const float* v, size_t n, int qmax, Q* q, float* scale) {
  float mx = 0.0f;
  bool finite = true;
  for (size_t i = 0; i < n; i++) {
    finite &= std::isfinite(v[i]);
    mx = std::max(mx, std::fabs(v[i]));
  }
  if (!finite) return false;
  const float s = mx > 0.0f ? mx / static_cast<float>(qmax) : 1.0f;
  for (size_t i = 0; i < n; i++) {
    const float r = std::nearbyint(v[i] / s);
    q[i] = static_cast<Q>(std::min<float>(static_cast<float>(qmax), std::max<float>(-qmax, r)));
  }
  *scale = s;
  return true;
}

}  // namespace

CodebookLinearPlan::CodebookLinearPlan(const float* centroids, size_t k, size_t dim,
                                       const void* codes, size_t out, size_t in, const float* bias,
                                       bool precise)
    : in_(in), out_(out), kp_((in + 63) / 64 * 64), dim_(dim), k_(k), nibbles_(k <= 16 && dim == 1),
      precise_(precise || !nibbles_) {
  const size_t groups = in / dim;
  if (nibbles_ && !precise_) {
    qc8_.assign(16, 0);
    quantize_sym(centroids, k, 127, qc8_.data(), &w_scale_);
  } else {
    qc_.assign(std::max<size_t>(k, 16) * dim, 0);
    quantize_sym(centroids, k * dim, kCbMaxQ, qc_.data(), &w_scale_);
  }
  if (nibbles_) {
    packed_.assign(out * kp_ / 2, 0);
    const uint8_t* c8 = static_cast<const uint8_t*>(codes);
    for (size_t o = 0; o < out; o++) pack_cb4_row(c8 + o * in, in, kp_, &packed_[o * kp_ / 2]);
  } else {
    if (k <= 256)
      codes8_.assign(static_cast<const uint8_t*>(codes), static_cast<const uint8_t*>(codes) + out * groups);
    else
      codes16_.assign(static_cast<const uint16_t*>(codes), static_cast<const uint16_t*>(codes) + out * groups);
  }
  tw_ = nibbles_ ? 16 : std::max<size_t>(k, 16) * dim;
  if (bias) bias_.assign(bias, bias + out);
}

CodebookLinearPlan::CodebookLinearPlan(PerRow, const int16_t* qtables, const float* scales,
                                       size_t k, const uint8_t* codes, size_t out, size_t in,
                                       const float* bias, bool precise)
    : in_(in), out_(out), kp_((in + 63) / 64 * 64), dim_(1), k_(k), nibbles_(k <= 16),
      precise_(precise || !nibbles_), per_row_(true), tw_(k <= 16 ? 16 : k) {
  row_scales_.assign(scales, scales + out);
  if (nibbles_ && !precise_) {
    qc8_.assign(out * 16, 0);
    for (size_t o = 0; o < out; o++)
      for (size_t e = 0; e < k; e++) qc8_[o * 16 + e] = static_cast<int8_t>(qtables[o * k + e]);
  } else {
    qc_.assign(out * tw_, 0);
    for (size_t o = 0; o < out; o++)
      for (size_t e = 0; e < k; e++) qc_[o * tw_ + e] = qtables[o * k + e];
  }
  if (nibbles_) {
    packed_.assign(out * kp_ / 2, 0);
    for (size_t o = 0; o < out; o++) pack_cb4_row(codes + o * in, in, kp_, &packed_[o * kp_ / 2]);
  } else {
    codes8_.assign(codes, codes + out * in);
  }
  if (bias) bias_.assign(bias, bias + out);
}

std::vector<int16_t> CodebookLinearPlan::qcentroids() const {
  return qc8_.empty() ? qc_ : std::vector<int16_t>(qc8_.begin(), qc8_.end());
}

void CodebookLinearPlan::codes(void* out) const {
  if (!nibbles_) {
    if (codes16_.empty())
      std::memcpy(out, codes8_.data(), codes8_.size());
    else
      std::memcpy(out, codes16_.data(), codes16_.size() * sizeof(uint16_t));
    return;
  }
  uint8_t* o = static_cast<uint8_t*>(out);
  for (size_t r = 0; r < out_; r++) {  // the inverse of pack_cb4_row
    const uint8_t* row = packed_.data() + r * kp_ / 2;
    for (size_t i = 0; i < in_; i++) {
      const size_t u = i / 64, w = i % 64;
      o[r * in_ + i] = (row[u * 32 + w % 32] >> (4 * (w / 32))) & 15;
    }
  }
}

size_t CodebookLinearPlan::nbytes() const {
  return packed_.size() + codes8_.size() + codes16_.size() * 2 + qc8_.size() + qc_.size() * 2 +
         (per_row_ ? row_scales_.size() : 1) * sizeof(float) + bias_.size() * sizeof(float) +
         (sp_ptr_.size() + sp_col_.size()) * sizeof(int32_t) +
         (sp_val_.size() + sp_delta_.size()) * sizeof(float);
}

void CodebookLinearPlan::set_outliers(const int32_t* indptr, const int32_t* cols,
                                      const float* values, size_t nnz) {
  sp_ptr_.assign(indptr, indptr + out_ + 1);
  sp_col_.assign(cols, cols + nnz);
  sp_val_.assign(values, values + nnz);
  sp_delta_.resize(nnz);  // what each outlier adds to the dense product
  for (size_t o = 0; o < out_; o++)
    for (int32_t j = sp_ptr_[o]; j < sp_ptr_[o + 1]; j++)
      sp_delta_[j] = sp_val_[j] - dense_weight(o, static_cast<size_t>(sp_col_[j]));
}

float CodebookLinearPlan::dense_weight(size_t row, size_t col) const {
  size_t code;
  if (nibbles_) {
    const size_t u = col / 64, w = col % 64;
    code = (packed_[row * kp_ / 2 + u * 32 + w % 32] >> (4 * (w / 32))) & 15;
  } else {
    code = codes16_.empty() ? codes8_[row * in_ + col] : codes16_[row * in_ + col];
  }
  const size_t t = (per_row_ ? row * tw_ : 0) + code;
  const float q = qc8_.empty() ? static_cast<float>(qc_[t]) : static_cast<float>(qc8_[t]);
  return q * (per_row_ ? row_scales_[row] : w_scale_);
}

template <typename Code>
void CodebookLinearPlan::decode_row(const Code* codes, size_t groups, const int16_t* q,
                                    int16_t* dst) const {
  switch (dim_) {
    case 1:
      for (size_t g = 0; g < groups; g++) dst[g] = q[codes[g]];
      break;
    case 2:
      for (size_t g = 0; g < groups; g++) std::memcpy(dst + 2 * g, q + 2 * size_t(codes[g]), 4);
      break;
    case 4:
      for (size_t g = 0; g < groups; g++) std::memcpy(dst + 4 * g, q + 4 * size_t(codes[g]), 8);
      break;
    default:
      for (size_t g = 0; g < groups; g++)
        std::memcpy(dst + g * dim_, q + size_t(codes[g]) * dim_, dim_ * sizeof(int16_t));
  }
}

bool CodebookLinearPlan::forward(const float* x, size_t M, float* y, Workspace* ws) const {
  if (M == 0 || out_ == 0) return true;
  const KernelTable& kt = active_kernels();
  const bool int8_path = !precise_;
  // Kernel calls: strips of kStrip rows (the kernels' tiles are 2 or 4 rows high) x chunks of
  // output features, whose int64 sums (at most kStrip x 64, on the stack) become floats at once.
  // The decoded-tile path decodes a chunk of 16 weight rows (per worker, ws->tiles) and passes
  // every strip of the row block over it.
  constexpr size_t kStrip = 4, kMaxChunk = 64;
  const size_t chunk = nibbles_ ? kMaxChunk : 16;
  // The grid: a quantized activation row is kp int8 or int16; an output feature streams kp / 2
  // bytes of 4-bit codes, or kp int16 once decoded.
  const internal::GemmGrid grid =
      internal::make_gemm_grid(M, kStrip, int8_path ? kp_ : 2 * kp_, out_,
                               nibbles_ ? kp_ / 2 : 2 * kp_, static_cast<size_t>(num_threads()));
  const size_t workers = internal::grid_workers(grid);
  // resize() keeps the workspace's memory when it is large enough; every row is written whole
  // (padding included) before a kernel reads it.
  if (int8_path) {
    if (ws->x8.size() < M * kp_) ws->x8.resize(M * kp_);
  } else if (ws->x16.size() < M * kp_) {
    ws->x16.resize(M * kp_);
  }
  if (ws->xs.size() < M) ws->xs.resize(M);
  const bool sparse = !sp_val_.empty();
  const float* delta = sp_delta_.data();
  const size_t tile = nibbles_ ? 0 : chunk * kp_;
  if (ws->tiles.size() < workers * tile) ws->tiles.resize(workers * tile);
  ws->quantized.reset(grid.mblocks);
  int8_t* x8 = ws->x8.data();
  int16_t* x16 = ws->x16.data();
  float* xs = ws->xs.data();
  std::atomic<bool> finite{true};

  // Activations of row block bi: per row, symmetric, zero padded to kp: int8 for s8cb4_s64_gemm,
  // else int16 (for s16cb4_s64_gemm with the middle quarters of every 32 swapped). A row with
  // NaN or Inf gets zeros (the call fails; its kernels still read defined values).
  auto quantize_block = [&](size_t bi) {
    for (size_t r = grid.row_begin(bi); r < grid.row_end(bi); r++) {
      bool ok;
      if (int8_path) {
        int8_t* dst = x8 + r * kp_;
        ok = quantize_sym(x + r * in_, in_, 127, dst, &xs[r]);
        std::fill(dst + (ok ? in_ : 0), dst + kp_, int8_t{0});
      } else {
        int16_t* dst = x16 + r * kp_;
        ok = quantize_sym(x + r * in_, in_, kCbMaxQ, dst, &xs[r]);
        std::fill(dst + (ok ? in_ : 0), dst + kp_, int16_t{0});
        if (nibbles_)  // s16cb4_s64_gemm's order: swap values 8..15 and 16..23 of every 32
          for (size_t i = 0; i < kp_; i += 32) std::swap_ranges(dst + i + 8, dst + i + 16, dst + i + 16);
      }
      if (!ok) {
        xs[r] = 0.0f;
        finite.store(false, std::memory_order_relaxed);
      }
    }
  };

  // y = float(acc * (x_scale * w_scale)) + bias for rows [r, r + rn) x features [c, c + cn).
  const double wsc = w_scale_;
  auto epilogue = [&](const int64_t* acc, size_t r, size_t rn, size_t c, size_t cn) {
    for (size_t i = 0; i < rn; i++) {
      const double s = static_cast<double>(xs[r + i]) * wsc;
      float* yr = y + (r + i) * out_ + c;
      for (size_t j = 0; j < cn; j++) {
        // per_row_: the scale of output row c + j (the product in the same order as above)
        const double sj = per_row_ ? static_cast<double>(xs[r + i]) * row_scales_[c + j] : s;
        double d = static_cast<double>(acc[i * cn + j]) * sj;
        if (sparse) {
          const float* xr = x + (r + i) * in_;
          for (int32_t t = sp_ptr_[c + j]; t < sp_ptr_[c + j + 1]; t++)
            d += static_cast<double>(xr[sp_col_[t]]) * delta[t];
        }
        float v = static_cast<float>(d);
        if (!bias_.empty()) v += bias_[c + j];
        yr[j] = v;
      }
    }
  };

  const size_t groups = in_ / dim_;
  auto task = [&](size_t t, size_t worker) {
    const size_t bi = grid.row_block(t), bj = grid.col_block(t);
    ws->quantized.run_once(bi, [&] { quantize_block(bi); });
    if (!finite.load(std::memory_order_relaxed)) return;  // the call fails anyway
    const size_t m0 = grid.row_begin(bi), m1 = grid.row_end(bi);
    int16_t* tile_buf = ws->tiles.data() + worker * tile;
    for (size_t c = grid.col_begin(bj); c < grid.col_end(bj); c += chunk) {
      const size_t cn = std::min(chunk, grid.col_end(bj) - c);
      if (!nibbles_) {  // decode this chunk's weight rows to int16, zero padded to kp
        for (size_t o = 0; o < cn; o++) {
          int16_t* dst = tile_buf + o * kp_;
          const int16_t* table = qc_.data() + (per_row_ ? (c + o) * tw_ : 0);
          if (codes8_.empty())
            decode_row(codes16_.data() + (c + o) * groups, groups, table, dst);
          else
            decode_row(codes8_.data() + (c + o) * groups, groups, table, dst);
          std::fill(dst + in_, dst + kp_, int16_t{0});
        }
      }
      for (size_t r = m0; r < m1; r += kStrip) {
        const size_t rn = std::min(kStrip, m1 - r);
        int64_t acc[kStrip * kMaxChunk];
        if (nibbles_ && per_row_) {  // one call per output row, with that row's own table
          for (size_t o = 0; o < cn; o++) {
            const uint8_t* wr = packed_.data() + (c + o) * kp_ / 2;
            if (int8_path)
              kt.s8cb4_s64_gemm(rn, 1, kp_, x8 + r * kp_, kp_, wr, kp_ / 2,
                                qc8_.data() + (c + o) * 16, acc + o, cn);
            else
              kt.s16cb4_s64_gemm(rn, 1, kp_, x16 + r * kp_, kp_, wr, kp_ / 2,
                                 qc_.data() + (c + o) * 16, acc + o, cn);
          }
        } else if (nibbles_ && int8_path)
          kt.s8cb4_s64_gemm(rn, cn, kp_, x8 + r * kp_, kp_, packed_.data() + c * kp_ / 2, kp_ / 2,
                            qc8_.data(), acc, cn);
        else if (nibbles_)
          kt.s16cb4_s64_gemm(rn, cn, kp_, x16 + r * kp_, kp_, packed_.data() + c * kp_ / 2,
                             kp_ / 2, qc_.data(), acc, cn);
        else
          kt.s16s16_s64_gemm(rn, cn, kp_, x16 + r * kp_, kp_, tile_buf, kp_, acc, cn);
        epilogue(acc, r, rn, c, cn);
      }
    }
  };
  // Parallel from about 2e5 multiply-adds (the int8 GEMM waits for 2e6: its kernels are faster).
  const bool parallel = static_cast<double>(M) * out_ * kp_ >= 2e5;
  internal::run_grid(grid, parallel, workers, task);
  return finite.load();
}

}  // namespace lowbit
