// lowbit's C++ runtime: loads a quantized model written by lowbit.export_runtime and runs it with
// no Python and no allocation in the forward pass (every buffer is planned at load).
//
// File format (little-endian), version 2 (version 1: the same without layer kind 3; lowbit
// writes version 1 when a model has no codebook layer, so older runtimes still read it):
//   "LBRT" | u32 version | u32 n_layers | u32 in_features | u32 out_features | n_layers layers |
//   u32 CRC-32 (zlib's) of every byte before it
//   layer = u32 kind, then for kind 1 (int8 linear, y = x W^T + b):
//     u32 K (in) | u32 N (out) | u32 flags (1: bias, 2: static activations, 4: 7-bit activations) | f32 act_scale |
//     i32 act_zero_point | f32 w_scale[N] | i8 codes[N * K] (W, row-major) | f32 bias[N] if flag 1
//   kind 2 (ReLU) has no data.
//   kind 3 (codebook linear, W's groups of `dim` weights along a row replaced by centroids):
//     u32 K | u32 N | u32 k (2..65536) | u32 dim | u32 flags (1: bias, 2: 13-bit activations) |
//     f32 centroids[k * dim] | codes of the N * K / dim groups, row-major, in
//     codebook_code_bytes(N * K / dim, codebook_bits(k)) bytes (k <= 16: two a byte, low nibble
//     first; k <= 256: u8; else u16) | f32 bias[N] if flag 1
// An int8 linear layer's activations are quantized per row to uint8 (dynamic) unless flag 2 is
// set, then with the stored scale and zero point, exactly as lowbit.QuantizedLinear does; a
// codebook layer runs lowbit::CodebookLinearPlan, as lowbit.CodebookLinear does. An int8 linear
// layer whose codes all fit [-8, 7] (weights of 4 bits or fewer) is held two codes a byte.
//
// Execution (the one executor: lowbit.QuantizedModel runs this plan through the Python binding):
// chains of static int8 layers stay in integer codes. For a static layer A [-> ReLU...] followed
// by a static layer B, A's int32 accumulators are requantized in the GEMM epilogue straight to
// B's input codes: q = clamp(round_half_even(float(acc + bias_i32[n]) * m[n]) + B.zp, lo,
// 2^B.act_bits - 1), lo = B.zp after a ReLU else 0, with m[n] = float32(A.act_scale *
// A.w_scale[n] / B.act_scale) and bias_i32[n] = round_half_even(A.bias[n] / (A.act_scale *
// A.w_scale[n])) clamped to int32, both computed in double at load (the rule of
// lowbit.QuantizedLinear.forward_quantized); a link whose m[n] is not a positive finite float32
// goes through float instead. A static layer not followed by a static one dequantizes in its
// epilogue, the ReLUs after it fused there. Other layers run on floats, one at a time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/gemm.h"
#include "lowbit/codebook_linear.h"
#include "lowbit/kmeans.h"  // codebook_bits, codebook_code_bytes (the file format)

namespace lowbit {

class Model {
 public:
  // One layer as the file describes it: what load() parses, or what a caller that already holds
  // the layers (lowbit's Python binding) hands to build(), sharing their packed weights.
  struct Layer {
    int kind = 0;                      // 1 int8 linear, 2 ReLU, 3 codebook linear (the file's)
    std::shared_ptr<const PackedB> w;  // kind 1: B = W^T (K x N)
    std::vector<float> w_scale, bias;  // kind 1: N scales; N biases or none
    bool static_act = false;
    int act_bits = 8;                  // activation codes in [0, 2^act_bits - 1]
    float act_scale = 1.0f;            // static_act: the activations' scale and zero point
    int32_t act_zp = 0;
    std::shared_ptr<const CodebookLinearPlan> codebook;  // kind 3
  };

  // Parses `size` bytes. Returns false (and a message in *error) for anything that is not a
  // complete, uncorrupted file of a supported version, or when its buffers for `max_batch` rows
  // (at most per forward()) cannot be allocated. Never throws.
  bool load(const uint8_t* data, size_t size, size_t max_batch, std::string* error);
  // The model of `layers` on in_features inputs, checked as load() checks a file's layers and
  // planned the same way, with buffers for max_batch rows (no warm-up forward: the kernels'
  // thread-local scratch grows on the first calls). Never throws.
  bool build(std::vector<Layer> layers, size_t in_features, size_t max_batch, std::string* error);
  // Re-plans the buffers for up to max_batch rows (1..2^20). Returns false, the model unchanged,
  // if they cannot be allocated. Never throws.
  bool reserve(size_t max_batch, std::string* error);

  size_t in_features() const { return in_; }
  size_t out_features() const { return out_; }
  size_t max_batch() const { return max_batch_; }
  // Bytes of the model's own buffers per row of max_batch.
  size_t buffer_bytes_per_row() const { return widest_ * (2 * sizeof(float) + 2); }
  // Bytes the layers hold: packed weights with their column data, scales, biases, codebooks.
  size_t weight_bytes() const;

  // y (M x out_features) = the model applied to x (M x in_features), M <= max_batch. Returns
  // false if M is too large or x holds NaN/Inf. Allocates nothing after the first call with the
  // largest M (the first call is made by load()). Not reentrant: one call at a time per Model.
  bool forward(const float* x, size_t M, float* y);

 private:
  bool load_checked(const uint8_t* data, size_t size, size_t max_batch, std::string* error);
  bool build_checked(std::vector<Layer> layers, size_t in, size_t max_batch, std::string* error);
  // One step of the plan: a layer, or a static layer with its input/output in codes and the
  // ReLUs after it fused.
  struct Step {
    enum Op { kDynamic, kStatic, kCodebook, kRelu } op = kRelu;
    size_t layer = 0;               // index in layers_
    bool in_codes = false;          // kStatic: the input is the previous step's uint8 codes
    bool out_codes = false;         // kStatic: requantized to the next layer's codes (else f32)
    bool relu = false;              // kStatic: ReLU fused into the epilogue
    int32_t out_zp = 0, qmax = 255; // out_codes: the next layer's zero point and code range
    std::vector<float> q_scale;     // out_codes: the N multipliers
    std::vector<int32_t> bias_i32;  // out_codes and a bias: N
  };
  void plan();
  std::vector<Layer> layers_;
  std::vector<Step> steps_;
  size_t in_ = 0, out_ = 0, max_batch_ = 0, widest_ = 0;
  std::vector<float> buf_[2];     // ping-pong activations, max_batch x widest
  std::vector<uint8_t> codes_[2]; // ping-pong static activation codes, max_batch x widest
  CodebookLinearPlan::Workspace cb_ws_;  // codebook layers' scratch
};

// zlib's CRC-32 (the checksum of the file format).
uint32_t crc32(const uint8_t* data, size_t size);

}  // namespace lowbit
