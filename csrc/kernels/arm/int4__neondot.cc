// NEON dot-product (armv8.2-a+dotprod) tile of 4-bit weights in groups: one sdot per column
// quarter adds each column's 4 products of a k-group into its int32 lane. Shared tile:
// int4__neon.h.
#include "int4__neon.h"

namespace lowbit {
namespace kernels {
namespace {

struct DotStep {
  struct Acc {
    int32x4_t cols[4];
  };
  static void zero(Acc& a) {
    for (auto& c : a.cols) c = vdupq_n_s32(0);
  }
  static void add(Acc& a, const int8x16_t q[4], int8x16_t x) {
    for (int c = 0; c < 4; c++) a.cols[c] = vdotq_s32(a.cols[c], q[c], x);
  }
  static int32x4_t cols(const Acc& a, int c) { return a.cols[c]; }
};

}  // namespace

void s8q4_f32_gemm__neondot(const Int4Tile& t) { q4_rows_neon<DotStep>(t); }

}  // namespace kernels
}  // namespace lowbit
