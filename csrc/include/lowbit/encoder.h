// A BERT-family transformer encoder on lowbit's kernels (lowbit.models.Encoder once quantized,
// and lowbit_infer for an exported one): embeddings, then `layers` blocks of
//   qkv = Linear(x) (queries, keys and values in one weight) -> multi-head self-attention over the
//   tokens of the same sequence whose key is valid -> Linear -> LayerNorm(. + x) ->
//   Linear -> GELU -> Linear -> LayerNorm(. + x),
// giving the last hidden states. Linear layers are int8 (lowbit.QuantizedLinear's rule: activations
// quantized per row, weights per output channel) or 4-bit in groups (lowbit.Int4Linear's). Every
// token's row is computed on its own except in attention, so a token's output does not depend on
// the other sequences of the batch or on padding.
//
// Attention runs in float: scores = (q . k) * (1 / sqrt(head_dim)) over the valid keys, softmax,
// context = P V; LayerNorm, GELU and softmax are the transformer kernels of lowbit/kernels.h.
// A sequence with no valid key attends to all its tokens (as a -inf-free additive mask does).
//
// The word embeddings are float32, int8 codes with one float32 scale per row (a token's vector is
// scale * codes), or 4-bit codes in groups of `group` values along the row with a binary16 scale
// and a 4-bit zero point per group (scale * (codes - zero)); products in float32 as the embedding
// is gathered.
//
// File format (little-endian) "LBTE" | u32 version 1 | u32 vocab | u32 max_positions | u32
// type_vocab | u32 hidden | u32 heads | u32 layers | u32 intermediate | f32 eps | u32 gelu (0 erf, 1
// tanh) | u32 word kind (0 float32, 1 int8 per row, 2 4-bit groups) | kind 0: f32 word[vocab *
// hidden], kind 1: f32 word_scale[vocab] | i8 word_codes[vocab * hidden], kind 2: u32 group (even,
// divides hidden) | u16 scale (binary16, finite, >= 0)[vocab * hidden / group] | u8 zero (<= 15)
// [vocab * hidden / group] | u8 codes[vocab * hidden / 2] (two per byte, the first in the low
// nibble; row-major) | f32 position[max_positions * hidden] |
// f32 type[type_vocab * hidden] | f32 ln_gamma[hidden] | f32 ln_beta[hidden] | per layer: linear
// qkv (N = 3 hidden),
// linear out (hidden), f32 ln1_gamma, ln1_beta [hidden], linear ffn_in (intermediate), linear
// ffn_out (hidden), f32 ln2_gamma, ln2_beta [hidden] | u32 CRC-32 (zlib's) of every byte before it.
//   linear = u32 kind (1 int8, 4 int4) | u32 K | u32 N | u32 flags (1: bias, 4: 7-bit activations,
//     8: inputs rotated) | f32 signs[K] (+-1) if flag 8
//     kind 1: f32 w_scale[N] | i8 codes[N * K] (W, row-major)
//     kind 4: u32 group | f32 col_scale[N] | u8 zero[N * ceil(K / group)] | u16 scale (binary16)
//             [N * ceil(K / group)] | u8 codes[N * K] (values 0..15, row-major)
//     f32 bias[N] if flag 1.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/gemm.h"
#include "lowbit/int4_linear.h"

namespace lowbit {

struct EncoderConfig {
  size_t vocab = 0, max_positions = 0, type_vocab = 0, hidden = 0, heads = 0, layers = 0,
         intermediate = 0;
  float eps = 1e-12f;
  int gelu = 0;  // 0: erf form, 1: tanh form
};

// y = x W^T + b on quantized weights: int8 (w, w_scale per output) or 4-bit groups (w4). With
// rot_signs (K values +-1, K a multiple of 128), the weights are those of W R and each input row
// is rotated by R (the f32_f32_hadamard kernel) first, so y = (x R)(W R)^T + b.
struct EncoderLinear {
  std::shared_ptr<const PackedB> w;   // int8: B = W^T (K x N)
  std::vector<float> w_scale;         // int8: N
  int act_bits = 8;                   // int8: activation codes of 8 or 7 bits
  std::shared_ptr<const Int4Weights> w4;
  std::vector<float> bias;            // N or empty
  std::vector<float> rot_signs;       // K or empty
  size_t in_features() const { return w ? w->K : w4 ? w4->K : 0; }
  size_t out_features() const { return w ? w->N : w4 ? w4->N : 0; }
  size_t nbytes() const;
  // false if x holds NaN or Inf; scratch holds M x K floats when the inputs are rotated
  bool forward(const float* x, size_t M, float* y, float* scratch) const;
};

// The word embedding table (vocab x hidden, row-major) in one of the three forms above.
struct WordEmbeddings {
  enum Kind : uint32_t { kFloat = 0, kInt8Rows = 1, kInt4Groups = 2 };
  Kind kind = kFloat;
  std::vector<float> f32;          // kFloat: the table
  std::vector<int8_t> q8;          // kInt8Rows: the codes ...
  std::vector<float> row_scale;    // ... and one scale per row
  size_t group = 0;                // kInt4Groups: values per group ...
  std::vector<uint8_t> q4;         // ... the codes, two per byte, the first in the low nibble ...
  std::vector<uint16_t> g_scale;   // ... and per group a binary16 scale ...
  std::vector<uint8_t> g_zero;     // ... and a zero point
  size_t nbytes() const;
  // Row `id` (hidden values) into out, in float32.
  void row(size_t id, size_t hidden, float* out) const;
};

struct EncoderLayer {
  EncoderLinear qkv, out, ffn_in, ffn_out;
  std::vector<float> ln1_gamma, ln1_beta, ln2_gamma, ln2_beta;
};

class Encoder {
 public:
  // Checks every shape against cfg and takes the weights (the embedding tables are row-major
  // (rows, hidden)). Returns false with a message in *error if anything does not fit. Never
  // throws.
  bool build(const EncoderConfig& cfg, WordEmbeddings word, std::vector<float> position,
             std::vector<float> type, std::vector<float> ln_gamma, std::vector<float> ln_beta,
             std::vector<EncoderLayer> layers, std::string* error);
  // Parses a file ("LBTE", above); false with a message for anything that is not a complete,
  // uncorrupted file. Never throws.
  bool load(const uint8_t* data, size_t size, std::string* error);
  // The file's bytes.
  std::vector<uint8_t> save() const;

  const EncoderConfig& config() const { return cfg_; }
  size_t weight_bytes() const;

  // The last hidden states of n_seqs sequences held back to back: sequence s is tokens
  // [start[s], start[s + 1]) (start has n_seqs + 1 entries, start[0] = 0), token i has id ids[i]
  // (< vocab), type types[i] (< type_vocab; null: 0) and position i - start[s] (< max_positions);
  // its key takes part in attention if key_valid is null or key_valid[i] != 0. out gets
  // start[n_seqs] x hidden floats. Returns false with a message in *error on bad ids, types or
  // lengths, or non-finite activations (a model whose weights overflow). Not reentrant: one call at
  // a time per Encoder.
  bool forward(const int32_t* ids, const int32_t* types, const size_t* start, size_t n_seqs,
               const uint8_t* key_valid, float* out, std::string* error);

 private:
  bool build_checked(std::string* error);
  void attention(const size_t* start, size_t n_seqs, const uint8_t* key_valid);
  EncoderConfig cfg_;
  WordEmbeddings word_;
  std::vector<float> position_, type_, ln_gamma_, ln_beta_;
  std::vector<EncoderLayer> layers_;
  // activations, grown to the largest call: qkv (n x 3h), ctx (n x h), tmp (n x h), ffn (n x f)
  std::vector<float> qkv_, ctx_, tmp_, ffn_, rot_;  // rot_: rotated inputs (n x intermediate)
  std::vector<std::vector<float>> scratch_;  // per worker: K^T, V and a row of scores
};

}  // namespace lowbit
