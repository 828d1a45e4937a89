// Lloyd's assignment steps for N-D k-means (kmeans_nd.cc): one pass of the kernel over all
// points, and the neighbour-list search that makes the steps after the first cheap
// (lloyd_nd.cc).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace lowbit {
namespace internal {

// Per-piece accumulation of one Lloyd pass: cluster sums (double), counts, error.
struct PassResult {
  std::vector<double> sums;
  std::vector<uint64_t> counts;
  double sse = 0.0;
};

// Lloyd's assignment steps over a training set (see ListLloyd).
class LloydSteps {
 public:
  virtual ~LloydSteps() = default;
  // One assignment step against the centroids c: the clusters' sums (of x) and counts and the
  // squared error of the new assignment.
  virtual PassResult step(const std::vector<float>& c) = 0;
  // Records that the centroids moved from old_c to new_c (call after each update).
  virtual void moved(const std::vector<float>& old_c, const std::vector<float>& new_c) = 0;
  // The exact squared distance of every point to its centroid in c (in the points' order).
  virtual void distances(const std::vector<float>& c, double* dist) const = 0;
  // The centroid of every point (in the points' order).
  virtual void assignment(uint32_t* idx) const = 0;
};

// The steps over the m points x (m x d) for k centroids.
std::unique_ptr<LloydSteps> make_lloyd(const float* x, size_t m, size_t d, size_t k);

// Assigns the m points of x to the centroids (the dispatched kernel), and accumulates the
// clusters' sums and counts and the squared error (exact distances, double).
PassResult assign_pass(const float* x, size_t m, size_t d, const std::vector<float>& c, size_t k,
                       uint32_t* idx);

}  // namespace internal
}  // namespace lowbit
