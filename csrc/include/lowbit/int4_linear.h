// A linear layer on 4-bit weights in groups (lowbit.Int4Linear): y = x W^T + b with W (N x K)
// held as 4-bit codes u in [0, 15], W[n][k] = col_scale[n] * scale[n][g] * (u[n][k] - zero[n][g])
// for k in group g (group consecutive k), scale stored as IEEE binary16. Activations are quantized
// on the fly, each row to int8 symmetric (lowbit::choose_params, 8 bits, symmetric), and the
// kernels (s8q4_f32_gemm, Int4Tile in lowbit/kernels.h) sum each group in integers and the groups
// in float.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit {

struct Int4Weights {
  size_t K = 0, N = 0, group = 0;
  size_t ngroups = 0, kp = 0, panels = 0;  // ceil(K / group); ngroups * group; ceil(N / 16)
  // Per panel of 16 columns (zero columns past N): the codes as s4 bytes in the gemm layout
  // (nr 16, kr 4; kp * 8 bytes), the zero points and scales (ngroups * 16 each, group-major), and
  // col_scale (16).
  std::vector<uint8_t> codes, zero;
  std::vector<uint16_t> scale;
  std::vector<float> col_scale;
  size_t panel_bytes() const { return kp * 8; }
  size_t nbytes() const {
    return codes.size() + zero.size() + scale.size() * sizeof(uint16_t) + col_scale.size() * sizeof(float);
  }
};

// Packs u (N x K, row-major, values <= 15), zero (N x ngroups, <= 15), scale (N x ngroups,
// binary16 bits) and col_scale (N); group a multiple of 4.
Int4Weights pack_int4(const uint8_t* u, const uint8_t* zero, const uint16_t* scale,
                      const float* col_scale, size_t N, size_t K, size_t group);
// The codes back, N x K row-major.
void unpack_int4(const Int4Weights& w, uint8_t* u);

// out (M x N, row-major) = x (M x K, contiguous) W^T + bias (N or null). Returns false if x holds
// NaN or Inf (out is then undefined). Parallel over the thread pool.
bool int4_linear(const float* x, size_t M, const Int4Weights& w, const float* bias, float* out);

}  // namespace lowbit
