// What the k-means drivers (kmeans_1d.cc, kmeans_nd.cc, product_quantize.cc, kmeans_common.cc)
// share: work split into pieces, the checks and starts both dimensionalities use, and the N-D core
// that product quantization runs per subspace.
//
// Determinism: random numbers come from splitmix64 (core/rng.h, the same on every platform);
// parallel work is cut into pieces whose boundaries do not depend on the thread count, and
// partial sums are added in piece order, so 1 and N threads give identical results; kernels match
// their scalar references bit for bit, so every kernel set gives identical results too.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "lowbit/kmeans.h"
#include "lowbit/runtime.h"

namespace lowbit {
namespace internal {

constexpr size_t kPiece = 1 << 16;  // values per parallel piece (even: 4-bit codes split cleanly)

inline size_t pieces_of(size_t n, size_t piece) { return (n + piece - 1) / piece; }

// Runs fn(piece index, begin, end) over pieces of `piece` items, in parallel when worth it.
template <typename Fn>
void for_pieces(size_t n, size_t piece, size_t work_per_item, const Fn& fn) {
  const size_t np = pieces_of(n, piece);
  if (np == 0) return;
  auto run = [&](size_t p) { fn(p, p * piece, std::min(n, (p + 1) * piece)); };
  if (np == 1 || n * work_per_item < (1u << 16)) {
    for (size_t p = 0; p < np; p++) run(p);
  } else {
    parallel_for(np, run);
  }
}

// Min and max of x; false if any value is NaN or Inf.
bool value_range(const float* x, size_t n, float* mn, float* mx);

// k values evenly from mn to mx (the `linear` start).
std::vector<float> linear_init(float mn, float mx, size_t k);

// Number of distinct rows of x (n rows of d floats; -0 == +0), counting stops at `enough`.
size_t distinct_rows(const float* x, size_t n, size_t d, size_t enough);

// Extreme magnitudes would overflow (or underflow) the float scores: such data is scaled by a
// power of two (exact) for the clustering. Returns the exponent e (x was multiplied by 2^-e).
int scale_exponent(float maxabs);

// What kmeans_core returns.
struct NdOutcome {
  std::vector<float> centroids;
  std::vector<double> history;
  double inertia = 0.0;
  size_t train = 0;
};

// Lloyd on a training set of x (all n points, or a sample of max_points of them), from `init`
// (kmeanspp, linear or random), then the final assignment of all n points into idx
// (kmeans_nd.cc).
NdOutcome kmeans_core(const float* all, size_t n, size_t d, size_t k, int iters, KmeansInit init,
                      Rng& rng, size_t max_points, uint32_t* idx);

}  // namespace internal
}  // namespace lowbit
