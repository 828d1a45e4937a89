// u8 x s8 GEMM micro-kernel for plain AArch64 NEON (armv8-a without the dot product, e.g.
// Cortex-A53/A57/A72/A73); contract in lowbit/kernels.h, scalar twin ../scalar/gemm__scalar.cc.
//
// A comes as a ^ 0x80 = a - 128 (APack::s8_flipped; the driver adds 128 * colsum(B) back through
// row_mul), so both operands are int8: smull / smull2 multiply 8 pairs into int16 exactly
// (|p| <= 128 * 128 = 16384; a pair sum could reach 32768 and overflow, so there is no smlal),
// and sadalp adds neighbouring products into the int32 accumulator. B format: panels of 4 columns,
// k-groups of 16 (64 bytes a group: column j's 16 bytes at 16j). Each accumulator is one
// (row, column) entry's 4 partial sums (k mod 16 in pairs), reduced with addp at the end, so no
// operand is ever broadcast: a row's 16 bytes (one load) times a column's 16 bytes is smull +
// smull2 + 2 sadalp, the multiplies and the pairwise adds going to different pipes on
// out-of-order cores (A72/A76: F0/V0 and F1/V1). Tile 4 rows x 4 columns: 16 accumulators,
// 4 B vectors, 2 A registers and 8 product registers.
#include <arm_neon.h>

#include "epilogue__neon.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

constexpr int kMR = 4, kNR = 4, kKR = 16;
constexpr size_t kGroup = kNR * kKR;  // bytes of B per k-group

// As in gemm__neondot.cc: one asm statement per row and step, the accumulators pinned to
// v16-v31 (GCC 12 otherwise moves them between registers), and each statement first loads the
// next row's 16 bytes into the other A register (n), so that an in-order core (Cortex-A53)
// does not wait for it (the last row loads the next step's B likewise); the 8 products of a
// row are all formed before they are added, which keeps 8 instructions between each smull and
// its sadalp. A and B are only read.
#define LB_ROW_OPS                                                                         \
  "smull %[t0].8h, %[x].8b, %[b0].8b\n\tsmull2 %[t1].8h, %[x].16b, %[b0].16b\n\t"          \
  "smull %[t2].8h, %[x].8b, %[b1].8b\n\tsmull2 %[t3].8h, %[x].16b, %[b1].16b\n\t"          \
  "smull %[t4].8h, %[x].8b, %[b2].8b\n\tsmull2 %[t5].8h, %[x].16b, %[b2].16b\n\t"          \
  "smull %[t6].8h, %[x].8b, %[b3].8b\n\tsmull2 %[t7].8h, %[x].16b, %[b3].16b\n\t"          \
  "sadalp %[c0].4s, %[t0].8h\n\tsadalp %[c1].4s, %[t2].8h\n\t"                             \
  "sadalp %[c2].4s, %[t4].8h\n\tsadalp %[c3].4s, %[t6].8h\n\t"                             \
  "sadalp %[c0].4s, %[t1].8h\n\tsadalp %[c1].4s, %[t3].8h\n\t"                             \
  "sadalp %[c2].4s, %[t5].8h\n\tsadalp %[c3].4s, %[t7].8h"
#define LB_ROW_OUT(r)                                                                      \
  [c0] "+w"(c##r##0), [c1] "+w"(c##r##1), [c2] "+w"(c##r##2), [c3] "+w"(c##r##3),          \
      [t0] "=&w"(t0), [t1] "=&w"(t1), [t2] "=&w"(t2), [t3] "=&w"(t3), [t4] "=&w"(t4),      \
      [t5] "=&w"(t5), [t6] "=&w"(t6), [t7] "=&w"(t7)
#define LB_ROW_IN [k] "r"(k), [b0] "w"(b0), [b1] "w"(b1), [b2] "w"(b2), [b3] "w"(b3)

// The last row of the tile (r = MR - 1 >= 1), when another step follows, loads that step's
// B vectors as its multiplies free them (so an in-order core has them in time).
#define LB_ROW_RELOAD_OPS                                                                  \
  "smull %[t0].8h, %[x].8b, %[b0].8b\n\tsmull2 %[t1].8h, %[x].16b, %[b0].16b\n\t"          \
  "ldr %q[b0], [%[bn]]\n\t"                                                                 \
  "smull %[t2].8h, %[x].8b, %[b1].8b\n\tsmull2 %[t3].8h, %[x].16b, %[b1].16b\n\t"          \
  "ldr %q[b1], [%[bn], #16]\n\t"                                                            \
  "smull %[t4].8h, %[x].8b, %[b2].8b\n\tsmull2 %[t5].8h, %[x].16b, %[b2].16b\n\t"          \
  "ldr %q[b2], [%[bn], #32]\n\t"                                                            \
  "smull %[t6].8h, %[x].8b, %[b3].8b\n\tsmull2 %[t7].8h, %[x].16b, %[b3].16b\n\t"          \
  "ldr %q[b3], [%[bn], #48]\n\t"                                                            \
  "sadalp %[c0].4s, %[t0].8h\n\tsadalp %[c1].4s, %[t2].8h\n\t"                             \
  "sadalp %[c2].4s, %[t4].8h\n\tsadalp %[c3].4s, %[t6].8h\n\t"                             \
  "sadalp %[c0].4s, %[t1].8h\n\tsadalp %[c1].4s, %[t3].8h\n\t"                             \
  "sadalp %[c2].4s, %[t5].8h\n\tsadalp %[c3].4s, %[t7].8h"

// Row r (its bytes in CUR), loading row r + 1's into NXT.
#define LB_ROW(r, CUR, NXT)                                                                 \
  if (MR > r + 1)                                                                           \
    __asm__("ldr %q[n], [%[e], %[k]]\n\t" LB_ROW_OPS                                        \
            : LB_ROW_OUT(r), [n] "=&w"(NXT)                                                 \
            : [x] "w"(CUR), [e] "r"(a0 + (r + 1) * lda), LB_ROW_IN);                        \
  else if (MR == r + 1 && b + kGroup != b_end)                                              \
    __asm__(LB_ROW_RELOAD_OPS                                                               \
            : LB_ROW_OUT(r), [b0] "+&w"(b0), [b1] "+&w"(b1), [b2] "+&w"(b2), [b3] "+&w"(b3)  \
            : [x] "w"(CUR), [bn] "r"(b + kGroup));                                          \
  else if (MR == r + 1)                                                                     \
    __asm__(LB_ROW_OPS : LB_ROW_OUT(r) : [x] "w"(CUR), LB_ROW_IN);
// Row 0 loads its own bytes first.
#define LB_ROW_FIRST(NXT)                                                                   \
  {                                                                                         \
    int8x16_t x;                                                                            \
    if (MR > 1)                                                                             \
      __asm__("ldr %q[x], [%[e0], %[k]]\n\tldr %q[n], [%[e], %[k]]\n\t" LB_ROW_OPS          \
              : LB_ROW_OUT(0), [x] "=&w"(x), [n] "=&w"(NXT)                                 \
              : [e0] "r"(a0), [e] "r"(a0 + lda), LB_ROW_IN);                                \
    else                                                                                    \
      __asm__("ldr %q[x], [%[e0], %[k]]\n\t" LB_ROW_OPS                                     \
              : LB_ROW_OUT(0), [x] "=&w"(x)                                                 \
              : [e0] "r"(a0), LB_ROW_IN);                                                   \
  }

#define LB_ACC(name, reg) register int32x4_t name __asm__(reg) = vdupq_n_s32(0);

// Row r: each accumulator's 4 partial sums added (addp twice) into its column's lane.
#define LB_EPI(r)                                                                           \
  if (MR > r)                                                                               \
    epilogue_row_neon<K, 1>(                                                                \
        t, r, vpaddq_s32(vpaddq_s32(c##r##0, c##r##1), vpaddq_s32(c##r##2, c##r##3)));

template <int MR, GemmOut K>
__attribute__((noinline)) void smull_tile(const GemmTile& t) {
  const int8_t* a0 = static_cast<const int8_t*>(t.a);
  const size_t lda = t.lda;
  // The accumulators in fixed registers v16-v31, v0-v15 left for B, A and the products.
  LB_ACC(c00, "v16") LB_ACC(c01, "v17") LB_ACC(c02, "v18") LB_ACC(c03, "v19")
  LB_ACC(c10, "v20") LB_ACC(c11, "v21") LB_ACC(c12, "v22") LB_ACC(c13, "v23")
  LB_ACC(c20, "v24") LB_ACC(c21, "v25") LB_ACC(c22, "v26") LB_ACC(c23, "v27")
  LB_ACC(c30, "v28") LB_ACC(c31, "v29") LB_ACC(c32, "v30") LB_ACC(c33, "v31")
  const int8_t* b = t.b;
  const int8_t* const b_end = b + t.kp / kKR * kGroup;
  size_t k = 0;
  int8x16_t b0, b1, b2, b3;  // the step's B vectors, one per column
#define LB_LOAD_B \
  b0 = vld1q_s8(b), b1 = vld1q_s8(b + 16), b2 = vld1q_s8(b + 32), b3 = vld1q_s8(b + 48);
  if (MR > 1 && b != b_end) {  // then the last row loads the next step's
    LB_LOAD_B
  }
  for (; b != b_end; k += kKR, b += kGroup) {
    if (MR == 1) {
      LB_LOAD_B
    }
    int8x16_t xa, xb;  // each row loads the next one's bytes
    int16x8_t t0, t1, t2, t3, t4, t5, t6, t7;
    LB_ROW_FIRST(xb) LB_ROW(1, xb, xa) LB_ROW(2, xa, xb) LB_ROW(3, xb, xa)
  }
  LB_EPI(0) LB_EPI(1) LB_EPI(2) LB_EPI(3)
}

#undef LB_ROW_OPS
#undef LB_ROW_OUT
#undef LB_ROW_IN
#undef LB_ROW
#undef LB_ROW_FIRST
#undef LB_ROW_RELOAD_OPS
#undef LB_LOAD_B
#undef LB_ACC
#undef LB_EPI

// Tile::run<MR, K> for neon_gemm (epilogue__neon.h).
struct Tile {
  template <int MR, GemmOut K>
  static void run(const GemmTile& t) {
    smull_tile<MR, K>(t);
  }
};

}  // namespace

void u8s8_epi_gemm__neon(const GemmTile& t) { neon_gemm<Tile, kMR, kNR>(t); }

}  // namespace kernels
}  // namespace lowbit
