// k-means codebooks (the C++ core behind lowbit.kmeans and lowbit.product_quantize): scalar weight
// sharing (1-D), vector quantization, product quantization and decode; the codebook linear layer
// that runs on such codebooks is in lowbit/codebook_linear.h. Every result is deterministic for a
// seed and independent of the thread count and of the kernel set (the kernels match their scalar
// references bit for bit).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

// How Lloyd starts. kmeanspp, linear (evenly from the minimum to the maximum, per coordinate)
// and random (k distinct random points) are honoured at every d: Lloyd runs from that start
// only. automatic: for d = 1, Lloyd from k-means++ and Lloyd from the optimal partition of a
// summary of the sorted values both run and the better is kept; for d > 1, k-means++.
enum class KmeansInit : int { kmeanspp = 0, linear = 1, random = 2, automatic = 3 };

// Index width of a codebook with k centroids: 4 (two codes a byte, low nibble first) for k <= 16,
// 8 for k <= 256, 16 above.
int codebook_bits(size_t k);
// Bytes of n codes of that width.
size_t codebook_code_bytes(size_t n, int bits);

struct KmeansResult {
  std::vector<float> centroids;  // k * d, row-major
  std::vector<double> history;   // objective (sum of squared errors) of each Lloyd step, never increasing
  double inertia = 0.0;          // sum of squared errors of the returned codebook on all of x
  size_t train_points = 0;       // points Lloyd ran on (all, or a sample when n is large)
  std::string error;             // non-empty: the input cannot be clustered (message for ValueError)
  bool nonfinite = false;        // x holds NaN or Inf (the caller reports where)
};

// Scalar weight sharing: n values, k centroids (2 <= k <= 65536). Works on the sorted values
// (exact prefix sums, O(k log n) per Lloyd step): at most `iters` Lloyd steps from `init`; with
// KmeansInit::automatic, Lloyd from k-means++ and Lloyd from the optimal partition of a summary
// of the sorted values (an exact dynamic program on up to max(1024, 8k) groups; for large k the
// asymptotically optimal companding start instead) are both run, and the one with the lower
// error is kept. Codes are written to `codes` (codebook_code_bytes(n, codebook_bits(k)) bytes).
KmeansResult kmeans_1d(const float* x, size_t n, size_t k, int iters, KmeansInit init,
                       uint64_t seed, void* codes);

// Vector quantization: n points of d floats. Lloyd on all points, or on a random sample of
// `max_points` of them when n is larger (0: no limit), its steps exact but searching mostly
// each centroid's nearest centroids only; then every point is assigned and the centroids are
// set to the means of their points. Empty clusters are re-seeded with the points farthest from
// their centroids. Codes as for kmeans_1d.
KmeansResult kmeans_nd(const float* x, size_t n, size_t d, size_t k, int iters, KmeansInit init,
                       uint64_t seed, size_t max_points, void* codes);

// Product quantization: rows of D = m * dsub floats, each of the m subspaces with its own
// codebook of k centroids (k-means++ on up to max_points vectors per subspace). codes: n x m,
// uint8 when k <= 256 else uint16; centroids: m * k * dsub.
struct PqResult {
  std::vector<float> centroids;
  std::vector<double> inertia;  // per subspace
  std::string error;
  bool nonfinite = false;
};
PqResult product_quantize(const float* x, size_t n, size_t D, size_t m, size_t k, int iters,
                          uint64_t seed, size_t max_points, void* codes);
void pq_decode(const void* codes, size_t n, size_t m, size_t k, size_t dsub,
               const float* centroids, float* out);

// out[i * d + t] = centroids[code(i) * d + t] for n codes of `bits` width (the codes must be
// smaller than k; a 4-bit table is padded to 16 rows here).
void codebook_decode(const void* codes, int bits, size_t n, const float* centroids, size_t k,
                     size_t d, float* out);

}  // namespace lowbit
