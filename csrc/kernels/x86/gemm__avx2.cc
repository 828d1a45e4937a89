// u8 x s8 GEMM micro-kernels for AVX2 without VNNI (contract in lowbit/kernels.h; scalar twin
// ../scalar/gemm__scalar.cc). B format: panels of 16 columns, k-groups of 4 (64 bytes a group:
// column j's 4 bytes at 4j), shared by both kernels.
//
// u8s8_epi_gemm__avx2, exact for every input: vpmaddubsw would saturate (255 * 127 * 2 > 32767),
// so A comes as int16 (APack::s16) and B's bytes are sign-extended as they are loaded: per
// k-group, 16 bytes of B (4 columns x 4 k) widen to one int16 vector, vpmaddwd with the row's 4
// int16 values broadcast gives each column 2 partial sums in adjacent int32 lanes, added at the
// end. Tile 2 rows x 16 columns: 8 accumulators + 4 widened B vectors + 1 product: each widened
// B vector serves both rows (3 rows would need 17 registers).
//
// u8s7_epi_gemm__avx2, exact when A fits u7 or B fits s7 (GemmTile::narrow): vpmaddubsw of the
// row's 4 bytes broadcast with 8 columns' 4 bytes gives int16 pair sums of at most 255 * 64 * 2
// (or 127 * 128 * 2) = 32,640 in magnitude, no saturation; vpmaddwd with ones adds the pairs into
// int32 (one lane per column). When both fit (narrow == 3) a pair sum is at most 127 * 64 * 2 =
// 16,256, so two k-groups' vpmaddubsw results are added in int16 before one vpmaddwd: 3 multiply
// instructions per 64 MACs instead of 4. Tile 6 rows x 16 columns: 12 accumulators.
//
// u8s4_epi_gemm__avx2, B held as s4 (half the bytes: the GEMV's stream): a k-group's 64 values
// are one 32-byte s4 block, whose low nibbles are columns 0-7 and high nibbles columns 8-15 in
// the layout above, so a load, two vpand and a vpsrlw give both column halves as bytes in
// [0, 15] (the nibbles u = B + 8; the driver corrects the sum). vpmaddubsw pair sums are then at
// most 255 * 15 * 2 = 7,650, so four k-groups add in int16 (30,600) before one vpmaddwd with
// ones. Tile 1 or 2 rows x 16 columns.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "epilogue__avx2.h"
#include "s4__avx2.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

constexpr size_t kGroup = 64;  // bytes of B per k-group (16 columns x 4)

// Sums the two adjacent partial sums of each column: acc[q] holds columns 4q..4q+3 as
// [c0 c0 c1 c1 | c2 c2 c3 c3]; returns columns 8h..8h+7 from acc[2h], acc[2h + 1].
inline __m256i fold_pairs(__m256i a, __m256i b) {
  const __m256i h = _mm256_hadd_epi32(a, b);  // [c0 c1 c4 c5 | c2 c3 c6 c7]
  return _mm256_permute4x64_epi64(h, 0xD8);   // [c0 c1 c2 c3 | c4 c5 c6 c7]
}

// GCC 12 keeps arrays of vector accumulators partly on the stack (and copies them around) in
// these loops; the accumulators are therefore named variables, and each multiply-add step is one
// asm statement, so the inner loops compile to exactly the instructions below (checked with
// objdump; bench/mca_report.py has the llvm-mca figures).

// One k-group of the exact kernel for two rows: B's 4 column quarters widened in turn, each
// multiplied with both rows' 4 int16 values broadcast.
#define LB_QUARTER(off, c0, c1)                                   \
  "vpmovsxbw " off "(%[b]), %[w]\n\t"                              \
  "vpmaddwd %[w], %[x0], %[t]\n\tvpaddd %[t], %[" c0 "], %[" c0 "]\n\t" \
  "vpmaddwd %[w], %[x1], %[t]\n\tvpaddd %[t], %[" c1 "], %[" c1 "]\n\t"

template <int MR>
void exact_tile(const GemmTile& t0) {
  const int16_t* a0 = static_cast<const int16_t*>(t0.a);
  const int16_t* a1 = a0 + t0.lda / 2;
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00;
  __m256i c10 = c00, c11 = c00, c12 = c00, c13 = c00;
  const int8_t* b = t0.b;
  for (size_t k = 0; k < t0.kp; k += 4, b += kGroup) {
    __m256i w, t, x0, x1;
    if (MR == 1) _mm_prefetch(reinterpret_cast<const char*>(b + 1024), _MM_HINT_T0);
    if (MR == 1)  // a GEMV: bound by streaming B, one row's multiplies only
      __asm__("vpbroadcastq %[a0], %[x0]\n\t"
              "vpmovsxbw (%[b]), %[w]\n\tvpmaddwd %[w], %[x0], %[t]\n\tvpaddd %[t], %[c00], %[c00]\n\t"
              "vpmovsxbw 16(%[b]), %[w]\n\tvpmaddwd %[w], %[x0], %[t]\n\tvpaddd %[t], %[c01], %[c01]\n\t"
              "vpmovsxbw 32(%[b]), %[w]\n\tvpmaddwd %[w], %[x0], %[t]\n\tvpaddd %[t], %[c02], %[c02]\n\t"
              "vpmovsxbw 48(%[b]), %[w]\n\tvpmaddwd %[w], %[x0], %[t]\n\tvpaddd %[t], %[c03], %[c03]"
              : [c00] "+x"(c00), [c01] "+x"(c01), [c02] "+x"(c02), [c03] "+x"(c03),
                [w] "=&x"(w), [t] "=&x"(t), [x0] "=&x"(x0)
              : [a0] "m"(*reinterpret_cast<const long long*>(a0 + k)), [b] "r"(b),
                "m"(*reinterpret_cast<const char(*)[kGroup]>(b)));
    else
    __asm__("vpbroadcastq %[a0], %[x0]\n\tvpbroadcastq %[a1], %[x1]\n\t"
            LB_QUARTER("0", "c00", "c10") LB_QUARTER("16", "c01", "c11")
            LB_QUARTER("32", "c02", "c12") LB_QUARTER("48", "c03", "c13")
            : [c00] "+x"(c00), [c01] "+x"(c01), [c02] "+x"(c02), [c03] "+x"(c03),
              [c10] "+x"(c10), [c11] "+x"(c11), [c12] "+x"(c12), [c13] "+x"(c13),
              [w] "=&x"(w), [t] "=&x"(t), [x0] "=&x"(x0), [x1] "=&x"(x1)
            : [a0] "m"(*reinterpret_cast<const long long*>(a0 + k)),
              [a1] "m"(*reinterpret_cast<const long long*>(a1 + k)), [b] "r"(b),
              "m"(*reinterpret_cast<const char(*)[kGroup]>(b)));
  }
  epilogue_row_avx2(t0, 0, fold_pairs(c00, c01), fold_pairs(c02, c03));
  if (MR > 1) epilogue_row_avx2(t0, 1, fold_pairs(c10, c11), fold_pairs(c12, c13));
}
#undef LB_QUARTER

// One row's step of the u7/s7 kernel: acc0 += vpmaddwd(vpmaddubsw(A's 4 bytes broadcast, B
// columns 0-7), ones), acc1 likewise with columns 8-15.
#define LB_UBS_STEP(acc0, acc1, aptr)                                                          \
  __asm__("vpbroadcastd %[a], %[x]\n\t"                                                        \
          "vpmaddubsw %[b0], %[x], %[t]\n\tvpmaddwd %[one], %[t], %[t]\n\t"                   \
          "vpaddd %[t], %[c0], %[c0]\n\t"                                                      \
          "vpmaddubsw %[b1], %[x], %[t]\n\tvpmaddwd %[one], %[t], %[t]\n\t"                   \
          "vpaddd %[t], %[c1], %[c1]"                                                          \
          : [c0] "+x"(acc0), [c1] "+x"(acc1), [x] "=&x"(x), [t] "=&x"(t)                     \
          : [a] "m"(*reinterpret_cast<const int*>(aptr)), [b0] "m"(*bv), [b1] "m"(*(bv + 1)), \
            [one] "x"(ones))

// The same over two k-groups (u7 x s7: int16 pair sums of two groups cannot overflow). A's bytes
// are broadcast again for the second column half instead of held: 12 accumulators + ones + 2
// scratch registers fill 15 of the 16.
#define LB_UBS_STEP2(acc0, acc1, aptr)                                                         \
  __asm__("vpbroadcastd %[a], %[t]\n\tvpbroadcastd %[a2], %[u]\n\t"                           \
          "vpmaddubsw %[b0], %[t], %[t]\n\tvpmaddubsw %[b2], %[u], %[u]\n\t"                  \
          "vpaddw %[u], %[t], %[t]\n\tvpmaddwd %[one], %[t], %[t]\n\t"                        \
          "vpaddd %[t], %[c0], %[c0]\n\t"                                                      \
          "vpbroadcastd %[a], %[t]\n\tvpbroadcastd %[a2], %[u]\n\t"                           \
          "vpmaddubsw %[b1], %[t], %[t]\n\tvpmaddubsw %[b3], %[u], %[u]\n\t"                  \
          "vpaddw %[u], %[t], %[t]\n\tvpmaddwd %[one], %[t], %[t]\n\t"                        \
          "vpaddd %[t], %[c1], %[c1]"                                                          \
          : [c0] "+x"(acc0), [c1] "+x"(acc1), [t] "=&x"(t), [u] "=&x"(u)                     \
          : [a] "m"(*reinterpret_cast<const int*>(aptr)),                                      \
            [a2] "m"(*reinterpret_cast<const int*>((aptr) + 4)), [b0] "m"(*bv),               \
            [b1] "m"(*(bv + 1)), [b2] "m"(*(bv + 2)), [b3] "m"(*(bv + 3)), [one] "x"(ones))

#define LB_ROWS(STEP)                                     \
  STEP(c00, c01, a + k);                                  \
  if (MR > 1) STEP(c10, c11, a + lda + k);                \
  if (MR > 2) STEP(c20, c21, a + 2 * lda + k);            \
  if (MR > 3) STEP(c30, c31, a + 3 * lda + k);            \
  if (MR > 4) STEP(c40, c41, a + 4 * lda + k);            \
  if (MR > 5) STEP(c50, c51, a + 5 * lda + k)

template <int MR, bool kBoth>
void narrow_tile(const GemmTile& t0) {
  const uint8_t* a = static_cast<const uint8_t*>(t0.a);
  const size_t lda = t0.lda;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const __m256i* bv = reinterpret_cast<const __m256i*>(t0.b);
  size_t k = 0;
  if (kBoth) {  // two k-groups per step, summed in int16
    for (; k + 8 <= t0.kp; k += 8, bv += 4) {
      __m256i t, u;
      if (MR == 1) _mm_prefetch(reinterpret_cast<const char*>(bv + 32), _MM_HINT_T0);
      LB_ROWS(LB_UBS_STEP2);
    }
  }
  for (; k < t0.kp; k += 4, bv += 2) {
    __m256i x, t;
    if (MR == 1) _mm_prefetch(reinterpret_cast<const char*>(bv + 32), _MM_HINT_T0);
    LB_ROWS(LB_UBS_STEP);
  }
  epilogue_row_avx2(t0, 0, c00, c01);
  if (MR > 1) epilogue_row_avx2(t0, 1, c10, c11);
  if (MR > 2) epilogue_row_avx2(t0, 2, c20, c21);
  if (MR > 3) epilogue_row_avx2(t0, 3, c30, c31);
  if (MR > 4) epilogue_row_avx2(t0, 4, c40, c41);
  if (MR > 5) epilogue_row_avx2(t0, 5, c50, c51);
}
#undef LB_ROWS
#undef LB_UBS_STEP
#undef LB_UBS_STEP2

template <bool kBoth>
void narrow_rows(const GemmTile& t) {
  switch (t.mr) {
    case 1: return narrow_tile<1, kBoth>(t);
    case 2: return narrow_tile<2, kBoth>(t);
    case 3: return narrow_tile<3, kBoth>(t);
    case 4: return narrow_tile<4, kBoth>(t);
    case 5: return narrow_tile<5, kBoth>(t);
    default: return narrow_tile<6, kBoth>(t);
  }
}

// One row's k-group of the s4 kernel: s0 += vpmaddubsw(A's 4 bytes broadcast, columns 0-7's
// nibbles), s1 likewise with columns 8-15, in int16 (one asm statement: see above).
#define LB_S4_STEP(s0, s1, aptr)                                                              \
  __asm__("vpbroadcastd %[a], %[x]\n\t"                                                        \
          "vpmaddubsw %[b0], %[x], %[t]\n\tvpaddw %[t], %[c0], %[c0]\n\t"                     \
          "vpmaddubsw %[b1], %[x], %[t]\n\tvpaddw %[t], %[c1], %[c1]"                           \
          : [c0] "+x"(s0), [c1] "+x"(s1), [x] "=&x"(x), [t] "=&x"(t)                         \
          : [a] "m"(*reinterpret_cast<const int*>(aptr)), [b0] "x"(b0), [b1] "x"(b1))

// acc0 += vpmaddwd(s0, ones), acc1 likewise: a row's four k-groups of int16 sums into its int32
// accumulators (s0, s1 are consumed).
#define LB_S4_FOLD(acc0, acc1, s0, s1)                                                          \
  __asm__("vpmaddwd %[one], %[t0], %[t0]\n\tvpaddd %[t0], %[c0], %[c0]\n\t"                   \
          "vpmaddwd %[one], %[t1], %[t1]\n\tvpaddd %[t1], %[c1], %[c1]"                         \
          : [c0] "+x"(acc0), [c1] "+x"(acc1), [t0] "+x"(s0), [t1] "+x"(s1)                      \
          : [one] "x"(ones))

template <int MR>
void s4_tile(const GemmTile& t) {
  const uint8_t* a0 = static_cast<const uint8_t*>(t.a);
  const uint8_t* a1 = a0 + t.lda;
  const __m256i mask = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00;
  const uint8_t* b = reinterpret_cast<const uint8_t*>(t.b);
  for (size_t k = 0; k < t.kp;) {
    // up to four k-groups summed in int16
    __m256i s00 = _mm256_setzero_si256(), s01 = s00, s10 = s00, s11 = s00;
    const size_t end = std::min(t.kp, k + 16);
    for (; k < end; k += 4, b += 32) {
      if (MR == 1) _mm_prefetch(reinterpret_cast<const char*>(b + 512), _MM_HINT_T0);
      __m256i b0, b1, x, t;
      s4_nibbles_avx2(b, mask, &b0, &b1);
      LB_S4_STEP(s00, s01, a0 + k);
      if (MR > 1) LB_S4_STEP(s10, s11, a1 + k);
    }
    LB_S4_FOLD(c00, c01, s00, s01);
    if (MR > 1) LB_S4_FOLD(c10, c11, s10, s11);
  }
  epilogue_row_avx2(t, 0, c00, c01);
  if (MR > 1) epilogue_row_avx2(t, 1, c10, c11);
}
#undef LB_S4_STEP
#undef LB_S4_FOLD

}  // namespace

void u8s8_epi_gemm__avx2(const GemmTile& t) {
  if (t.mr == 1)
    exact_tile<1>(t);
  else
    exact_tile<2>(t);
}

void u8s4_epi_gemm__avx2(const GemmTile& t) {
  if (t.mr == 1)
    s4_tile<1>(t);
  else
    s4_tile<2>(t);
}

void u8s7_epi_gemm__avx2(const GemmTile& t) {
  if (t.narrow == (kNarrowA | kNarrowB))
    narrow_rows<true>(t);
  else
    narrow_rows<false>(t);
}

}  // namespace kernels
}  // namespace lowbit
