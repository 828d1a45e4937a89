// u8 x s8 GEMM micro-kernel for AVX-VNNI, the VEX-encoded 256-bit vpdpbusd of CPUs without
// AVX-512 (Intel Alder Lake and later client cores; where AVX-512 VNNI exists too the dispatch
// runs gemm__avx512vnni.cc). Contract in lowbit/kernels.h; scalar twin ../scalar/gemm__scalar.cc.
// Exact for every input: vpdpbusd multiplies unsigned A bytes by signed B bytes and adds each
// lane's 4 products into its int32 accumulator without saturation.
//
// Tile 6 rows x 16 columns (MLAS's AVX-VNNI shape): 12 ymm accumulators live across the whole
// depth (vpdpbusd: latency 5, 2 per cycle in llvm-mca's Golden Cove model); with 2 B vectors
// and the broadcast A value they fill 15 of the 16 registers. B format (GemmKernel entry:
// nr = 16, kr = 4, A as u8): a k-group is 64 bytes, columns 0-7 then 8-15, 4 bytes each. Per
// k-step: 2 B loads, per row one vpbroadcastd of its 4 A bytes and 2 vpdpbusd. The epilogue
// (epilogue__avx2.h) runs on the accumulators in registers.
//
// Each row's step is one asm statement (row_dpbusd_ymm in simd_x86.h; GCC 12 moves the
// intrinsics' accumulators between registers). The same source builds against SIMDe with AVX2
// flags for the tests (simd_x86.h). bench/mca_report.py checks the compiled loop and has the
// llvm-mca figures (docs/gemm-mca.md).
#include "epilogue__avx2.h"
#include "lowbit/kernels.h"
#include "simd_x86.h"

namespace lowbit {
namespace kernels {
namespace {

constexpr int kNR = 16, kKR = 4;
constexpr size_t kGroup = kNR * kKR;  // bytes of B per k-group

#define LB_ROW(c0, c1, ap) row_dpbusd_ymm(c0, c1, ap, b0, b1)

template <int MR>
void tile(const GemmTile& t) {
  // row r's k-group at a + r * lda (offsets past MR unused)
  const uint8_t* a = static_cast<const uint8_t*>(t.a);
  const size_t l1 = t.lda, l2 = 2 * l1, l3 = 3 * l1, l4 = 4 * l1, l5 = 5 * l1;
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const int8_t* b = t.b;
  for (const uint8_t* const a_end = a + t.kp; a < a_end; a += kKR, b += kGroup) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
    LB_ROW(c00, c01, a);
    if (MR > 1) LB_ROW(c10, c11, a + l1);
    if (MR > 2) LB_ROW(c20, c21, a + l2);
    if (MR > 3) LB_ROW(c30, c31, a + l3);
    if (MR > 4) LB_ROW(c40, c41, a + l4);
    if (MR > 5) LB_ROW(c50, c51, a + l5);
  }
  epilogue_row_avx2(t, 0, c00, c01);
  if (MR > 1) epilogue_row_avx2(t, 1, c10, c11);
  if (MR > 2) epilogue_row_avx2(t, 2, c20, c21);
  if (MR > 3) epilogue_row_avx2(t, 3, c30, c31);
  if (MR > 4) epilogue_row_avx2(t, 4, c40, c41);
  if (MR > 5) epilogue_row_avx2(t, 5, c50, c51);
}
#undef LB_ROW

}  // namespace

void LB_KERNEL(u8s8_epi_gemm__avxvnni)(const GemmTile& t) {
  switch (t.mr) {
    case 1: return tile<1>(t);
    case 2: return tile<2>(t);
    case 3: return tile<3>(t);
    case 4: return tile<4>(t);
    case 5: return tile<5>(t);
    default: return tile<6>(t);
  }
}

}  // namespace kernels
}  // namespace lowbit
