// 1-D k-means works on the sorted values with exact prefix sums (kmeans_1d.cc); this is that
// representation and its construction (a parallel radix sort, kmeans_1d_sorted.cc).
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

namespace lowbit {
namespace internal {


// The sorted values with prefix sums of (s - shift) in double (shift: the median, which keeps
// the sums small and S^2 / W free of cancellation). Prefix sums are kept every kBlk values;
// prefix(i) adds the rest of its block, always in the same order, so it is a deterministic
// function of i.
struct Sorted {
  static constexpr size_t kBlk = 64;
  std::vector<float> s;
  std::vector<double> Pb;  // Pb[j] = sum_{i < j * kBlk} (s[i] - shift)
  double shift = 0.0, t2 = 0.0;  // t2 = sum (s - shift)^2
  size_t n = 0, distinct = 0;

  double prefix(size_t i) const {
    double p = 0.0;
    for (size_t t = i / kBlk * kBlk; t < i; t++) p += static_cast<double>(s[t]) - shift;
    return Pb[i / kBlk] + p;
  }
  double sum(size_t a, size_t b) const { return prefix(b) - prefix(a); }
  // The first position whose value is >= v (galloping from `hint`).
  size_t lower_bound(float v, size_t hint) const {
    hint = std::min(hint, n);
    size_t lo, hi;
    if (hint < n && s[hint] < v) {  // answer is right of hint
      size_t step = 1;
      lo = hint + 1;
      hi = hint + 1;
      while (hi < n && s[hi] < v) {
        lo = hi + 1;
        hi = std::min(n, hi + step);
        step *= 2;
      }
    } else {  // answer is at or left of hint
      size_t step = 1;
      hi = hint;
      lo = hint;
      while (lo > 0 && !(s[lo - 1] < v)) {
        hi = lo - 1;
        lo = lo > step ? lo - step : 0;
        step *= 2;
      }
    }
    return static_cast<size_t>(std::lower_bound(s.begin() + lo, s.begin() + hi, v) - s.begin());
  }
};

// The sorted values of x (finite) and their prefix sums.
Sorted make_sorted(const float* x, size_t n);

}  // namespace internal
}  // namespace lowbit
