// The blocking and tasking shared by lowbit's GEMM drivers: the int8 GEMM (gemm.cc) and the
// codebook GEMMs of CodebookLinear (codebook_linear.cc). C is cut into row blocks x column
// blocks; each (row block, column block) is one task of the thread pool, taken dynamically. A's
// row blocks are prepared (packed, quantized) by the first task that needs one (OnceFlags,
// lowbit/parallel.h), so the threads start computing without waiting for all of A. The drivers
// differ only in what a task does with its block.
#pragma once
#include <algorithm>
#include <cstddef>

#include "lowbit/parallel.h"

namespace lowbit {
namespace internal {

struct GemmGrid {
  size_t M = 0, mb = 0, mblocks = 0;  // rows; rows per row block (a multiple of the strip); blocks
  size_t N = 0, nb = 0, nblocks = 0;  // column units (B panels, weight rows); units per block; blocks

  size_t tasks() const { return mblocks * nblocks; }
  // Tasks go column block by column block: the threads start on different row blocks (each
  // prepares its own) and share the B block they stream.
  size_t row_block(size_t task) const { return task % mblocks; }
  size_t col_block(size_t task) const { return task / mblocks; }
  size_t row_begin(size_t bi) const { return bi * mb; }
  size_t row_end(size_t bi) const { return std::min(M, (bi + 1) * mb); }
  size_t col_begin(size_t bj) const { return bj * nb; }
  size_t col_end(size_t bj) const { return std::min(N, (bj + 1) * nb); }
};

// The grid for M rows handled in strips of `strip` rows, a prepared row of A taking a_row_bytes,
// and N column units of unit_bytes of B each.
// Row blocks: prepared A blocks of at most about 256 KiB, as few as that allows and of equal size
// (multiples of the strip), so that B, which every row block streams once, is streamed as few
// times as possible; but at least one per thread when there are rows enough (4 strips each), so
// that the threads prepare A side by side instead of waiting for one of them. Column blocks: a B
// block of about 128 KiB stays in L2 beside the A block while the strips pass over it; halved
// until there are at least 2 tasks per thread when the shape allows.
inline GemmGrid make_gemm_grid(size_t M, size_t strip, size_t a_row_bytes, size_t N,
                               size_t unit_bytes, size_t threads) {
  GemmGrid g;
  g.M = M;
  g.N = N;
  const size_t max_rows = std::max<size_t>(strip, (256 << 10) / std::max<size_t>(1, a_row_bytes));
  const size_t want_blocks = std::max((M + max_rows - 1) / max_rows, std::min(threads, M / (4 * strip)));
  g.mb = ((M + want_blocks - 1) / want_blocks + strip - 1) / strip * strip;
  g.mblocks = (M + g.mb - 1) / g.mb;
  g.nb = std::max<size_t>(1, (128 << 10) / std::max<size_t>(1, unit_bytes));
  while (g.nb > 1 && g.mblocks * ((N + g.nb - 1) / g.nb) < 2 * threads) g.nb = (g.nb + 1) / 2;
  g.nblocks = (N + g.nb - 1) / g.nb;
  return g;
}

// How many threads can work on the grid's tasks at once: the size of per-worker scratch.
inline size_t grid_workers(const GemmGrid& g) {
  return std::max<size_t>(1, std::min(g.tasks(), static_cast<size_t>(num_threads())));
}

// Runs task(t, worker) for every task of the grid: over the thread pool when `parallel` (the
// caller's judgement that the work pays for waking threads), else in order on the caller
// (worker 0); worker < workers (parallel_for_workers).
template <typename Task>
void run_grid(const GemmGrid& g, bool parallel, size_t workers, const Task& task) {
  const size_t n = g.tasks();
  if (parallel && n > 1 && workers > 1) {
    parallel_for_workers(n, workers, task);
  } else {
    for (size_t t = 0; t < n; t++) task(t, size_t(0));
  }
}

}  // namespace internal
}  // namespace lowbit
