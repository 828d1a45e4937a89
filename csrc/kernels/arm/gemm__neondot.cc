// u8 x s8 GEMM micro-kernel for AArch64 with the dot-product extension (sdot; armv8.2-a+dotprod,
// e.g. Cortex-A55/A76, Neoverse-N1); contract in lowbit/kernels.h, scalar twin
// ../scalar/gemm__scalar.cc.
//
// A comes as a ^ 0x80 = a - 128 (APack::s8_flipped; the driver adds 128 * colsum(B) back through
// row_mul), so sdot's int8 x int8 serves u8 x s8 exactly. B format: panels of 12 columns, k-groups
// of 4 (48 bytes a group: column j's 4 bytes at 4j, so a 16-byte vector is 4 columns' groups).
// Tile 8 rows x 12 columns by element, as the ARM peers' dot kernels (MLAS UDOT 8x8, ACL
// a64_interleaved_s8s32_dot_8x12), with A's rows as they are packed (row-major): a step covers
// two k-groups; one 8-byte load of a row holds both groups' 4 bytes (lanes 0 and 1 of .4b), and
// sdot multiplies each of the 6 B vectors (2 groups x 3 column quads) with them by element:
// 48 sdot a step into 24 accumulators, beside the 6 B vectors and 2 A registers (all 32). For
// in-order cores (Cortex-A55) nothing waits on a load: the A registers alternate, each row's
// bytes loaded while the previous row's are used, and the last row loads the next step's B as
// its sdot free the registers.
#include <arm_neon.h>

#include "epilogue__neon.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

constexpr int kMR = 8, kNR = 12, kKR = 4;
constexpr size_t kGroup = kNR * kKR;  // bytes of B per k-group

// GCC 12 moves accumulators between registers every step when the step is written with
// intrinsics (all 32 registers are taken); each row's step is therefore one asm statement and
// the accumulators are pinned to v8-v31, so the loop compiles to exactly these instructions
// (checked with objdump). Row r, two k-groups: 6 sdot by element with its 8 bytes at k (in x),
// and, first, the load of the next row's 8 bytes into the other A register (n): an in-order
// core (Cortex-A55) then does not wait for a load, and out-of-order ones do not mind. Rows are
// addressed as [row base, k]. A and B are only read (no "m" operands, which would cost an
// address computation per row and step).
#define LB_DOT2_OPS                                                                            \
  "sdot %[c0].4s, %[b0].16b, %[x].4b[0]\n\tsdot %[c1].4s, %[b1].16b, %[x].4b[0]\n\t"           \
  "sdot %[c2].4s, %[b2].16b, %[x].4b[0]\n\tsdot %[c0].4s, %[b3].16b, %[x].4b[1]\n\t"           \
  "sdot %[c1].4s, %[b4].16b, %[x].4b[1]\n\tsdot %[c2].4s, %[b5].16b, %[x].4b[1]"
#define LB_DOT2_IN \
  [k] "r"(k), [b0] "w"(b0), [b1] "w"(b1), [b2] "w"(b2), [b3] "w"(b3), [b4] "w"(b4), [b5] "w"(b5)
#define LB_DOT2_ACC(r) [c0] "+w"(c##r##0), [c1] "+w"(c##r##1), [c2] "+w"(c##r##2)
// The last row of the tile (r = MR - 1 >= 1), when another step follows, loads that step's
// B vectors as its sdot free them (so an in-order core has them in time; B is otherwise read
// at the top of the step).
#define LB_DOT2_RELOAD_OPS                                                                     \
  "sdot %[c0].4s, %[b0].16b, %[x].4b[0]\n\tldr %q[b0], [%[bn]]\n\t"                           \
  "sdot %[c1].4s, %[b1].16b, %[x].4b[0]\n\tldr %q[b1], [%[bn], #16]\n\t"                      \
  "sdot %[c2].4s, %[b2].16b, %[x].4b[0]\n\tldr %q[b2], [%[bn], #32]\n\t"                      \
  "sdot %[c0].4s, %[b3].16b, %[x].4b[1]\n\tldr %q[b3], [%[bn], #48]\n\t"                      \
  "sdot %[c1].4s, %[b4].16b, %[x].4b[1]\n\tldr %q[b4], [%[bn], #64]\n\t"                      \
  "sdot %[c2].4s, %[b5].16b, %[x].4b[1]\n\tldr %q[b5], [%[bn], #80]"
#define LB_DOT2(r, CUR, NXT)                                                                   \
  if (MR > r + 1)                                                                              \
    __asm__("ldr %d[n], [%[an], %[k]]\n\t" LB_DOT2_OPS                                         \
            : LB_DOT2_ACC(r), [n] "=&w"(NXT)                                                   \
            : [x] "w"(CUR), [an] "r"(a##r + lda), LB_DOT2_IN);                                 \
  else if (MR == r + 1 && b + 2 * kGroup != b_end)                                             \
    __asm__(LB_DOT2_RELOAD_OPS                                                                 \
            : LB_DOT2_ACC(r), [b0] "+&w"(b0), [b1] "+&w"(b1), [b2] "+&w"(b2), [b3] "+&w"(b3),   \
              [b4] "+&w"(b4), [b5] "+&w"(b5)                                                   \
            : [x] "w"(CUR), [bn] "r"(b + 2 * kGroup));                                         \
  else if (MR == r + 1)                                                                        \
    __asm__(LB_DOT2_OPS : LB_DOT2_ACC(r) : [x] "w"(CUR), LB_DOT2_IN);
// Row 0 loads its own bytes first.
#define LB_DOT2_FIRST(NXT)                                                                     \
  {                                                                                            \
    int8x8_t x;                                                                                \
    if (MR > 1)                                                                                \
      __asm__("ldr %d[x], [%[a0], %[k]]\n\tldr %d[n], [%[an], %[k]]\n\t" LB_DOT2_OPS           \
              : LB_DOT2_ACC(0), [n] "=&w"(NXT), [x] "=&w"(x)                                   \
              : [a0] "r"(a0), [an] "r"(a0 + lda), LB_DOT2_IN);                                 \
    else                                                                                       \
      __asm__("ldr %d[x], [%[a0], %[k]]\n\t" LB_DOT2_OPS                                       \
              : LB_DOT2_ACC(0), [x] "=&w"(x)                                                   \
              : [a0] "r"(a0), LB_DOT2_IN);                                                     \
  }

// Row r, one k-group (the last of an odd number): its 4 bytes at k, 3 sdot.
#define LB_DOT1(r)                                                                             \
  if (MR > r) {                                                                                \
    int8x8_t x;                                                                                \
    __asm__("ldr %s[x], [%[a], %[k]]\n\t"                                                      \
            "sdot %[c0].4s, %[b0].16b, %[x].4b[0]\n\t"                                         \
            "sdot %[c1].4s, %[b1].16b, %[x].4b[0]\n\t"                                         \
            "sdot %[c2].4s, %[b2].16b, %[x].4b[0]"                                             \
            : LB_DOT2_ACC(r), [x] "=&w"(x)                                                     \
            : [a] "r"(a##r), [k] "r"(k), [b0] "w"(b0), [b1] "w"(b1), [b2] "w"(b2));            \
  }

#define LB_ACC(name, reg) register int32x4_t name __asm__(reg) = vdupq_n_s32(0);
#define LB_ROWS(STEP) STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7)

#define LB_EPI(r) \
  if (MR > r) epilogue_row_neon<K, 3>(t, r, c##r##0, c##r##1, c##r##2);

template <int MR, GemmOut K>
__attribute__((noinline)) void dot_tile(const GemmTile& t) {
  // row bases (rows past MR are not read)
  const int8_t* a0 = static_cast<const int8_t*>(t.a);
  const size_t lda = t.lda;
  const int8_t *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda, *a4 = a3 + lda, *a5 = a4 + lda,
               *a6 = a5 + lda, *a7 = a6 + lda;
  // The accumulators in fixed registers v8-v31 (for the asm statements; GCC otherwise rotates
  // some through other registers with moves every step), v0-v7 left for B and A.
  LB_ACC(c00, "v8") LB_ACC(c01, "v9") LB_ACC(c02, "v10") LB_ACC(c10, "v11") LB_ACC(c11, "v12")
  LB_ACC(c12, "v13") LB_ACC(c20, "v14") LB_ACC(c21, "v15") LB_ACC(c22, "v16") LB_ACC(c30, "v17")
  LB_ACC(c31, "v18") LB_ACC(c32, "v19") LB_ACC(c40, "v20") LB_ACC(c41, "v21") LB_ACC(c42, "v22")
  LB_ACC(c50, "v23") LB_ACC(c51, "v24") LB_ACC(c52, "v25") LB_ACC(c60, "v26") LB_ACC(c61, "v27")
  LB_ACC(c62, "v28") LB_ACC(c70, "v29") LB_ACC(c71, "v30") LB_ACC(c72, "v31")
  const int8_t* b = t.b;
  const int8_t* const b_end = b + t.kp / (2 * kKR) * (2 * kGroup);
  size_t k = 0;
  int8x16_t b0, b1, b2, b3, b4, b5;  // the step's B vectors: 2 groups x 3 column quads
  // The first step's B (and a 1-row tile's every step). (Not vld1q_s8_x3: GCC 12 passes its
  // 3-register result through the stack.)
#define LB_LOAD_B                                                         \
  b0 = vld1q_s8(b), b1 = vld1q_s8(b + 16), b2 = vld1q_s8(b + 32);         \
  b3 = vld1q_s8(b + 48), b4 = vld1q_s8(b + 64), b5 = vld1q_s8(b + 80);
  if (MR > 1 && b != b_end) {  // then the last row loads the next step's
    LB_LOAD_B
  }
  for (; b != b_end; k += 2 * kKR, b += 2 * kGroup) {
    if (MR == 1) {
      LB_LOAD_B
    }
    int8x8_t xa, xb;  // each row loads the next one's bytes
    LB_DOT2_FIRST(xb) LB_DOT2(1, xb, xa) LB_DOT2(2, xa, xb) LB_DOT2(3, xb, xa)
    LB_DOT2(4, xa, xb) LB_DOT2(5, xb, xa) LB_DOT2(6, xa, xb) LB_DOT2(7, xb, xa)
  }
  if (k < t.kp) {
    b0 = vld1q_s8(b), b1 = vld1q_s8(b + 16), b2 = vld1q_s8(b + 32);
    LB_ROWS(LB_DOT1)
  }
  LB_ROWS(LB_EPI)
}

#undef LB_DOT2
#undef LB_DOT2_OPS
#undef LB_DOT2_IN
#undef LB_DOT2_ACC
#undef LB_DOT2_FIRST
#undef LB_DOT2_RELOAD_OPS
#undef LB_LOAD_B
#undef LB_DOT1
#undef LB_ROWS
#undef LB_ACC
#undef LB_EPI

// Tile::run<MR, K> for neon_gemm (epilogue__neon.h).
struct Tile {
  template <int MR, GemmOut K>
  static void run(const GemmTile& t) {
    dot_tile<MR, K>(t);
  }
};

}  // namespace

void u8s8_epi_gemm__neondot(const GemmTile& t) { neon_gemm<Tile, kMR, kNR>(t); }

}  // namespace kernels
}  // namespace lowbit
