// ISA-independent walking shared by the per-ISA kernels: tiles of the codebook GEMMs
// (codebook__<isa>.cc), blocks of points of the k-means assignment (kmeans__<isa>.cc). In an
// anonymous namespace: each kernel file compiles it with its own ISA flags and its own tile /
// block types.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

// Runs tile.run<MR, NR>(r, c) over the mr x nr block: 4 x 2 tiles (then 4 x 1) while four rows
// remain, 1 x 4 tiles (then 1 x 1) for the leftover rows.
template <typename Tile>
void for_tiles(size_t mr, size_t nr, const Tile& tile) {
  size_t r = 0;
  for (; r + 4 <= mr; r += 4) {
    size_t c = 0;
    for (; c + 2 <= nr; c += 2) tile.template run<4, 2>(r, c);
    for (; c < nr; c++) tile.template run<4, 1>(r, c);
  }
  for (; r < mr; r++) {
    size_t c = 0;
    for (; c + 4 <= nr; c += 4) tile.template run<1, 4>(r, c);
    for (; c < nr; c++) tile.template run<1, 1>(r, c);
  }
}

// The k-means assignment over blocks of kBlock points: each block is transposed to xs[t][p]
// (coordinate t of point p), so that an ISA's block(xs, idx) keeps points in vector lanes; the
// last n % kBlock points make one more block, padded with copies of the last point.
template <size_t kBlock, typename Block>
void assign_in_blocks(const float* x, size_t n, size_t d, uint32_t* idx, const Block& block) {
  thread_local std::vector<float> xs;
  xs.resize(d * kBlock);
  size_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    const float* xb = x + i * d;
    for (size_t p = 0; p < kBlock; p++)
      for (size_t t = 0; t < d; t++) xs[t * kBlock + p] = xb[p * d + t];
    block(xs.data(), idx + i);
  }
  if (i < n) {  // the last points, padded with copies of the last one (lanes are independent)
    const size_t r = n - i;
    const float* xb = x + i * d;
    for (size_t p = 0; p < kBlock; p++)
      for (size_t t = 0; t < d; t++) xs[t * kBlock + p] = xb[std::min(p, r - 1) * d + t];
    uint32_t ib[kBlock];
    block(xs.data(), ib);
    for (size_t p = 0; p < r; p++) idx[i + p] = ib[p];
  }
}

}  // namespace
}  // namespace kernels
}  // namespace lowbit
