// u8 x s8 GEMM micro-kernel for AVX-512 VNNI (contract in lowbit/kernels.h; scalar twin
// ../scalar/gemm__scalar.cc). Exact for every input: vpdpbusd multiplies unsigned A bytes by
// signed B bytes and adds each lane's 4 products into its int32 accumulator without saturation.
//
// Tile 6 rows x 48 columns (MLAS's shape), 18 zmm accumulators live across the whole depth:
// vpdpbusd has a latency of 4 cycles and issues 2 per cycle, so at least 8 independent chains are
// needed. B format (GemmKernel entry: nr = 48, kr = 4, A as u8): a k-group is 192 bytes, three
// blocks of 16 columns x 4 bytes. Per k-step: 3 B loads, per row one vpbroadcastd of its 4 A
// bytes (a separate broadcast: vpdpbusd's {1to16} memory form issues only 1.5 per cycle on
// Zen 5) and 3 vpdpbusd. A panel whose columns end before 32 or 16 (the last one) runs with 1 or
// 2 blocks only. The epilogue (epilogue__avx512.h) runs on the accumulators in registers.
//
// The accumulators are named variables, not an array (GCC 12 moved an array of them through
// the stack), and each row's step is one asm statement (row_dpbusd_zmm in simd_x86.h: with the
// intrinsics GCC 12 copies accumulators between registers on every k-step). The compiled loop
// has no copies and no stack references: bench/mca_report.py checks that and has the llvm-mca
// figures (docs/gemm-mca.md).
//
// The same source builds against SIMDe with AVX2 flags for the tests (simd_x86.h).
#include "epilogue__avx512.h"
#include "lowbit/kernels.h"
#include "simd_x86.h"

namespace lowbit {
namespace kernels {
namespace {

constexpr int kNR = 48, kKR = 4;
constexpr size_t kGroup = kNR * kKR;  // bytes of B per k-group

// One row of one k-step: its 4 A bytes broadcast, times the NB blocks of B (simd_x86.h).
#define LB_ROW(c0, c1, c2, ap) row_dpbusd_zmm<NB>(c0, c1, c2, ap, b0, b1, b2)

template <int MR, int NB>
void tile(const GemmTile& t) {
  // row r's k-group at a + r * lda (offsets past MR unused)
  const uint8_t* a = static_cast<const uint8_t*>(t.a);
  const size_t l1 = t.lda, l2 = 2 * l1, l3 = 3 * l1, l4 = 4 * l1, l5 = 5 * l1;
  __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
  __m512i c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
  __m512i c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
  const int8_t* b = t.b;
  for (const uint8_t* const a_end = a + t.kp; a < a_end; a += kKR, b += kGroup) {
    const __m512i b0 = _mm512_loadu_si512(b);
    const __m512i b1 = NB > 1 ? _mm512_loadu_si512(b + 64) : b0;
    const __m512i b2 = NB > 2 ? _mm512_loadu_si512(b + 128) : b0;
    LB_ROW(c00, c01, c02, a);
    if (MR > 1) LB_ROW(c10, c11, c12, a + l1);
    if (MR > 2) LB_ROW(c20, c21, c22, a + l2);
    if (MR > 3) LB_ROW(c30, c31, c32, a + l3);
    if (MR > 4) LB_ROW(c40, c41, c42, a + l4);
    if (MR > 5) LB_ROW(c50, c51, c52, a + l5);
  }
  epilogue_row_avx512<NB>(t, 0, c00, c01, c02);
  if (MR > 1) epilogue_row_avx512<NB>(t, 1, c10, c11, c12);
  if (MR > 2) epilogue_row_avx512<NB>(t, 2, c20, c21, c22);
  if (MR > 3) epilogue_row_avx512<NB>(t, 3, c30, c31, c32);
  if (MR > 4) epilogue_row_avx512<NB>(t, 4, c40, c41, c42);
  if (MR > 5) epilogue_row_avx512<NB>(t, 5, c50, c51, c52);
}
#undef LB_ROW

template <int NB>
void rows(const GemmTile& t) {
  switch (t.mr) {
    case 1: return tile<1, NB>(t);
    case 2: return tile<2, NB>(t);
    case 3: return tile<3, NB>(t);
    case 4: return tile<4, NB>(t);
    case 5: return tile<5, NB>(t);
    default: return tile<6, NB>(t);
  }
}

}  // namespace

void LB_KERNEL(u8s8_epi_gemm__avx512vnni)(const GemmTile& t) {
  if (t.nc > 32)
    rows<3>(t);
  else if (t.nc > 16)
    rows<2>(t);
  else
    rows<1>(t);
}

}  // namespace kernels
}  // namespace lowbit
