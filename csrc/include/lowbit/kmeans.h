// k-means codebooks (the C++ core behind lowbit.kmeans, lowbit.product_quantize and
// lowbit.CodebookLinear): scalar weight sharing (1-D), vector quantization, product quantization,
// decode, and the codebook GEMM. Every result is deterministic for a seed and independent of
// the thread count and of the kernel set (the kernels match their scalar references bit for bit).
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

// A linear layer y = x W^T + b whose weight W (out x in) is a codebook: k centroids of dim
// values, one code per group of dim consecutive weights of a row. The forward never builds the
// float weight: activations are quantized per row (symmetric, scale max|x| / qmax), the
// centroids once (one scale), products are summed exactly in integers, and
// y = acc * x_scale * w_scale + b. With k <= 16 and dim 1 the weights stay 4-bit codes that the
// kernel looks up in a register: gemm_s8cb4s64 with activations and centroids in int8 (qmax
// 127), or, when `precise`, gemm_s16cb4s64 in 13 bits (qmax 4095). Otherwise tiles of int16
// weights are decoded inside the multiply (gemm_s16s16s64), in 13 bits.
class CodebookLinearPlan {
 public:
  // codes: out * (in / dim) codes, uint8 when k <= 256 else uint16 (unpacked).
  CodebookLinearPlan(const float* centroids, size_t k, size_t dim, const void* codes, size_t out,
                     size_t in, const float* bias, bool precise);
  // Scratch memory of forward(). A workspace that has served a call with M rows (at the
  // current thread count) serves every call with at most M rows without allocating.
  struct Workspace {
    std::vector<int8_t> x8;      // quantized activations (int8 path), M * kp
    std::vector<int16_t> x16;    // quantized activations (13-bit paths), M * kp
    std::vector<float> xs;       // activation scale of each row
    std::vector<char> ok;        // row finite
    std::vector<int64_t> acc;    // exact sums, M * out
    std::vector<int16_t> tiles;  // one decoded weight tile per worker (decoded-tile path)
  };
  // x: M rows of `in` floats; y: M rows of `out`. Returns false if x holds NaN or Inf.
  bool forward(const float* x, size_t M, float* y, Workspace* ws) const;
  bool forward(const float* x, size_t M, float* y) const {
    Workspace ws;
    return forward(x, M, y, &ws);
  }
  size_t in_features() const { return in_; }
  size_t out_features() const { return out_; }
  size_t k() const { return k_; }
  size_t dim() const { return dim_; }
  bool nibbles() const { return nibbles_; }
  bool precise() const { return precise_; }
  float weight_scale() const { return w_scale_; }
  std::vector<int16_t> qcentroids() const;  // the quantized centroids the kernels use
  // The codes as given to the constructor (out * in / dim, uint8 when k <= 256 else uint16),
  // read back from the plan's own layout: the plan is the only copy a layer needs to keep.
  void codes(void* out) const;
  size_t nbytes() const;  // weights as stored + table + bias

 private:
  template <typename Code>
  void decode_row(const Code* codes, size_t groups, int16_t* dst) const;  // int16 weights of a row

  size_t in_, out_, kp_, dim_, k_;
  bool nibbles_, precise_;
  float w_scale_;
  std::vector<int8_t> qc8_;       // nibbles_ && !precise_: the 16-entry int8 table
  std::vector<int16_t> qc_;       // otherwise: k * dim (at least 16) int16 centroids
  std::vector<uint8_t> packed_;   // nibbles_: out * kp / 2 bytes in the kernel's 4-bit layout
  std::vector<uint8_t> codes8_;   // otherwise: out * (in / dim) codes (k <= 256)
  std::vector<uint16_t> codes16_; //            (k > 256)
  std::vector<float> bias_;
};

// Packs one row of 4-bit codes (`in` codes, padded with code 0 to kp) into the layout of
// gemm_s8cb4s64 (lowbit/kernels.h); dst holds kp / 2 bytes. Exposed for the tests.
void pack_cb4_row(const uint8_t* codes, size_t in, size_t kp, uint8_t* dst);

}  // namespace lowbit
