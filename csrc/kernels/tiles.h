// ISA-independent tile walking shared by the per-ISA codebook GEMM kernels. In an anonymous
// namespace: each kernel file compiles it with its own ISA flags and its own Tile types.
#pragma once
#include <cstddef>

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

}  // namespace
}  // namespace kernels
}  // namespace lowbit
