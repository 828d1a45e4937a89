// Where a weight lives in the packed layouts (lowbit/kernels.h), for the drivers that pack and
// unpack them: core/gemm.cc (PackedB, s4 or not) and core/int4_linear.cc (Int4Weights).
#pragma once
#include <cstddef>
#include <cstdint>

namespace lowbit {
namespace internal {

// Value (k, j) of a panel of nr columns in k-groups of kr: panel[(g * nr + j) * kr + t].
inline size_t panel_index(size_t k, size_t j, size_t nr, size_t kr) {
  return (k / kr * nr + j) * kr + k % kr;
}

// Value i of s4 bytes (blocks of 64 values in 32 bytes): nibble s4_shift(i) / 4 of byte s4_byte(i).
inline size_t s4_byte(size_t i) { return i / 64 * 32 + i % 32; }
inline int s4_shift(size_t i) { return i % 64 < 32 ? 0 : 4; }
inline unsigned s4_nibble(const uint8_t* bytes, size_t i) { return (bytes[s4_byte(i)] >> s4_shift(i)) & 15u; }

}  // namespace internal
}  // namespace lowbit
