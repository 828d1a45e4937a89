// u8 x s8 GEMM micro-kernel for AArch64 with the int8 matrix-multiply extension (usmmla;
// armv8.6-a / +i8mm, e.g. Neoverse-V1/V2/N2, Cortex-A710); contract in lowbit/kernels.h, scalar
// twin ../scalar/gemm__scalar.cc.
//
// usmmla multiplies a 2x8 block of unsigned bytes (two rows of A, 8 k each) by an 8x2 block of
// signed bytes (two columns of B) into a 2x2 int32 block: u8 x s8 exactly, A as it is
// (APack::u8). B format: panels of 12 columns, k-groups of 8 (96 bytes a group: column j's 8
// bytes at 8j, so a 16-byte vector is the 8x2 block of columns j, j + 1). Tile 8 rows x 12
// columns, as the peers' mmla kernels (MLAS SMMLA 8x8, ACL a64_interleaved_u8s8s32_mmla_8x12),
// with A's rows as they are packed (row-major): a row pair's 2x8 block is the two rows' 8 bytes
// loaded apart and joined in a register (ldr d, ldr d, mov .d[1]). Per k-group 4 row pairs x 6
// column pairs = 24 usmmla into 24 accumulators, beside the 6 B vectors and 2 A registers.
// The accumulators hold 2x2 blocks [r c, r c+1, r+1 c, r+1 c+1]: zip1/zip2 of two of them
// (.2d) give a row's 4 columns at the store.
#include <arm_neon.h>

#include "epilogue__neon.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

constexpr int kMR = 8, kNR = 12, kKR = 8;
constexpr size_t kGroup = kNR * kKR;  // bytes of B per k-group

// As in gemm__neondot.cc: one asm statement per row pair and step, with the accumulators pinned
// to v8-v31 (GCC 12 otherwise moves accumulators between registers, and hoists loads written as
// separate statements). A block is two 8-byte loads at [row base, k] and one ins (mov .d[1])
// joining them; a tile whose last row has no partner leaves zeros there (ldr d clears the high
// half). That is 3 micro-ops and one vector op a block: fewer than ldr + ld1 {.d}[1] (whose lane
// form takes no offset: an add, and the lane load is itself 2 micro-ops), which left the loop
// dispatch-bound on Neoverse-V2. The 2 A registers (x, t) leave no third for loading the next
// pair early, which only an in-order core (Cortex-A510) would want. A and B are only read.
#define LB_MMLA_OPS                                                                            \
  "usmmla %[c0].4s, %[x].16b, %[b0].16b\n\tusmmla %[c1].4s, %[x].16b, %[b1].16b\n\t"           \
  "usmmla %[c2].4s, %[x].16b, %[b2].16b\n\tusmmla %[c3].4s, %[x].16b, %[b3].16b\n\t"           \
  "usmmla %[c4].4s, %[x].16b, %[b4].16b\n\tusmmla %[c5].4s, %[x].16b, %[b5].16b"
#define LB_MMLA_ACC(p)                                                                          \
  [c0] "+w"(c##p##0), [c1] "+w"(c##p##1), [c2] "+w"(c##p##2), [c3] "+w"(c##p##3),               \
      [c4] "+w"(c##p##4), [c5] "+w"(c##p##5)
#define LB_MMLA_IN \
  [k] "r"(k), [b0] "w"(b0), [b1] "w"(b1), [b2] "w"(b2), [b3] "w"(b3), [b4] "w"(b4), [b5] "w"(b5)
// Row pair p.
#define LB_MMLA(p)                                                                              \
  if (MR > 2 * (p) + 1) {                                                                       \
    uint8x16_t x, t;                                                                            \
    __asm__("ldr %d[x], [%[e], %[k]]\n\tldr %d[t], [%[o], %[k]]\n\tmov %[x].d[1], %[t].d[0]\n\t" \
            LB_MMLA_OPS                                                                         \
            : LB_MMLA_ACC(p), [x] "=&w"(x), [t] "=&w"(t)                                        \
            : [e] "r"(a0 + (2 * (p)) * lda), [o] "r"(a0 + (2 * (p) + 1) * lda), LB_MMLA_IN);    \
  } else if (MR > 2 * (p)) {                                                                    \
    uint8x16_t x;                                                                               \
    __asm__("ldr %d[x], [%[e], %[k]]\n\t" LB_MMLA_OPS                                           \
            : LB_MMLA_ACC(p), [x] "=&w"(x)                                                      \
            : [e] "r"(a0 + (2 * (p)) * lda), LB_MMLA_IN);                                       \
  }

#define LB_ACC(name, reg) register int32x4_t name __asm__(reg) = vdupq_n_s32(0);

// Row pair p: row 2p from the low halves of its blocks, row 2p + 1 from the high halves.
#define LB_ZIP(f, x, y) vreinterpretq_s32_s64(f(vreinterpretq_s64_s32(x), vreinterpretq_s64_s32(y)))
#define LB_EPI(p)                                                                          \
  if (MR > 2 * (p))                                                                        \
    epilogue_row_neon<K, 3>(t, 2 * (p), LB_ZIP(vzip1q_s64, c##p##0, c##p##1),              \
                            LB_ZIP(vzip1q_s64, c##p##2, c##p##3),                          \
                            LB_ZIP(vzip1q_s64, c##p##4, c##p##5));                         \
  if (MR > 2 * (p) + 1)                                                                    \
    epilogue_row_neon<K, 3>(t, 2 * (p) + 1, LB_ZIP(vzip2q_s64, c##p##0, c##p##1),          \
                            LB_ZIP(vzip2q_s64, c##p##2, c##p##3),                          \
                            LB_ZIP(vzip2q_s64, c##p##4, c##p##5));

template <int MR, GemmOut K>
__attribute__((noinline)) void mmla_tile(const GemmTile& t) {
  const uint8_t* a0 = static_cast<const uint8_t*>(t.a);
  const size_t lda = t.lda;
  // The accumulators in fixed registers v8-v31, v0-v7 left for B and A.
  LB_ACC(c00, "v8") LB_ACC(c01, "v9") LB_ACC(c02, "v10") LB_ACC(c03, "v11") LB_ACC(c04, "v12")
  LB_ACC(c05, "v13") LB_ACC(c10, "v14") LB_ACC(c11, "v15") LB_ACC(c12, "v16") LB_ACC(c13, "v17")
  LB_ACC(c14, "v18") LB_ACC(c15, "v19") LB_ACC(c20, "v20") LB_ACC(c21, "v21") LB_ACC(c22, "v22")
  LB_ACC(c23, "v23") LB_ACC(c24, "v24") LB_ACC(c25, "v25") LB_ACC(c30, "v26") LB_ACC(c31, "v27")
  LB_ACC(c32, "v28") LB_ACC(c33, "v29") LB_ACC(c34, "v30") LB_ACC(c35, "v31")
  const int8_t* b = t.b;
  size_t k = 0;
  for (const int8_t* const b_end = b + t.kp / kKR * kGroup; b != b_end; k += kKR, b += kGroup) {
    // 6 ldr q (one micro-op each on Neoverse-V1/V2; GCC would pair them into ldp, or use ld1
    // {3 registers} for vld1q_s8_x3, both more micro-ops there)
    int8x16_t b0, b1, b2, b3, b4, b5;
    __asm__("ldr %q[b0], [%[b]]\n\tldr %q[b1], [%[b], #16]\n\tldr %q[b2], [%[b], #32]\n\t"
            "ldr %q[b3], [%[b], #48]\n\tldr %q[b4], [%[b], #64]\n\tldr %q[b5], [%[b], #80]"
            : [b0] "=w"(b0), [b1] "=w"(b1), [b2] "=w"(b2), [b3] "=w"(b3), [b4] "=w"(b4),
              [b5] "=w"(b5)
            : [b] "r"(b));
    LB_MMLA(0) LB_MMLA(1) LB_MMLA(2) LB_MMLA(3)
  }
  LB_EPI(0) LB_EPI(1) LB_EPI(2) LB_EPI(3)
}

#undef LB_MMLA_OPS
#undef LB_MMLA_ACC
#undef LB_MMLA_IN
#undef LB_MMLA
#undef LB_ACC
#undef LB_ZIP
#undef LB_EPI

// Tile::run<MR, K> for neon_gemm (epilogue__neon.h).
struct Tile {
  template <int MR, GemmOut K>
  static void run(const GemmTile& t) {
    mmla_tile<MR, K>(t);
  }
};

}  // namespace

void u8s8_epi_gemm__i8mm(const GemmTile& t) { neon_gemm<Tile, kMR, kNR>(t); }

}  // namespace kernels
}  // namespace lowbit
