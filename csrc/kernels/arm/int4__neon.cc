// Plain NEON (armv8-a) tile of 4-bit weights in groups: each column quarter's 16 products
// (vmull_s8, int16: at most 15 * 128) are added pairwise into int32 (vpadalq_s16), and the pairs
// of a column are added at the group's end (vpaddq_s32). Shared tile: int4__neon.h.
#include "int4__neon.h"

namespace lowbit {
namespace kernels {
namespace {

struct PairStep {
  // pairs[2c] holds columns 4c, 4c+1 as [k01, k23] pairs; pairs[2c + 1] columns 4c+2, 4c+3
  struct Acc {
    int32x4_t pairs[8];
  };
  static void zero(Acc& a) {
    for (auto& p : a.pairs) p = vdupq_n_s32(0);
  }
  static void add(Acc& a, const int8x16_t q[4], int8x16_t x) {
    for (int c = 0; c < 4; c++) {
      a.pairs[2 * c] = vpadalq_s16(a.pairs[2 * c], vmull_s8(vget_low_s8(q[c]), vget_low_s8(x)));
      a.pairs[2 * c + 1] = vpadalq_s16(a.pairs[2 * c + 1], vmull_high_s8(q[c], x));
    }
  }
  static int32x4_t cols(const Acc& a, int c) { return vpaddq_s32(a.pairs[2 * c], a.pairs[2 * c + 1]); }
};

}  // namespace

void s8q4_f32_gemm__neon(const Int4Tile& t) { q4_rows_neon<PairStep>(t); }

}  // namespace kernels
}  // namespace lowbit
