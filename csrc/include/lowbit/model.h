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
// codebook layer runs lowbit::CodebookLinearPlan, as lowbit.CodebookLinear does.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/gemm.h"
#include "lowbit/kmeans.h"

namespace lowbit {

class Model {
 public:
  // Parses `size` bytes. Returns false (and a message in *error) for anything that is not a
  // complete, uncorrupted file of a supported version, or when its buffers for `max_batch` rows
  // (at most per forward()) cannot be allocated. Never throws.
  bool load(const uint8_t* data, size_t size, size_t max_batch, std::string* error);

  size_t in_features() const { return in_; }
  size_t out_features() const { return out_; }
  size_t max_batch() const { return max_batch_; }

  // y (M x out_features) = the model applied to x (M x in_features), M <= max_batch. Returns
  // false if M is too large or x holds NaN/Inf. Allocates nothing after the first call with the
  // largest M (the first call is made by load()).
  bool forward(const float* x, size_t M, float* y);

 private:
  bool load_checked(const uint8_t* data, size_t size, size_t max_batch, std::string* error);
  struct Layer {
    int kind = 0;
    PackedB w;
    std::vector<float> w_scale, bias;
    bool static_act = false;
    int act_bits = 8;  // activation codes in [0, 2^act_bits - 1]
    float act_scale = 1.0f;
    int32_t act_zp = 0;
    std::shared_ptr<const CodebookLinearPlan> codebook;  // kind 3
  };
  std::vector<Layer> layers_;
  size_t in_ = 0, out_ = 0, max_batch_ = 0, widest_ = 0;
  std::vector<float> buf_[2];    // ping-pong activations, max_batch x widest
  std::vector<uint8_t> codes_;   // static activation codes, max_batch x widest
  CodebookLinearPlan::Workspace cb_ws_;  // codebook layers' scratch, sized by load()
};

// zlib's CRC-32 (the checksum of the file format).
uint32_t crc32(const uint8_t* data, size_t size);

}  // namespace lowbit
