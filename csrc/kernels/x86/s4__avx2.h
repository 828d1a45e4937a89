// s4 blocks (lowbit/kernels.h) on ymm registers, for the AVX2-class kernels that read 4-bit
// weights as they are held: gemm__avx2.cc (u8s4_epi_gemm) and int4__avx2.cc (s8q4_f32_gemm).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace lowbit {
namespace kernels {
namespace {

// The 64 nibbles of one 32-byte s4 block as bytes in [0, 15]: *lo = the low nibbles (values
// 0-31: in the gemm layout columns 0-7 of a k-group), *hi = the high ones (values 32-63: columns
// 8-15). A load, a vpsrlw and two vpand; mask is 0x0F in every byte.
inline void s4_nibbles_avx2(const uint8_t* block, __m256i mask, __m256i* lo, __m256i* hi) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block));
  *lo = _mm256_and_si256(v, mask);
  *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
}

}  // namespace
}  // namespace kernels
}  // namespace lowbit
