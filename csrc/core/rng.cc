// Sampling without replacement (see rng.h).
#include "core/rng.h"

#include <algorithm>
#include <unordered_set>

namespace lowbit {
namespace internal {

std::vector<size_t> sample_indices(size_t n, size_t m, Rng& rng) {
  std::vector<size_t> out;
  out.reserve(m);
  if (m * 64 >= n) {
    std::vector<uint64_t> bits((n + 63) / 64, 0);
    auto test_set = [&](size_t i) {
      const uint64_t bit = uint64_t(1) << (i % 64);
      const bool was = bits[i / 64] & bit;
      bits[i / 64] |= bit;
      return was;
    };
    for (size_t j = n - m; j < n; j++)
      if (test_set(rng.below(j + 1))) test_set(j);
    for (size_t w = 0; w < bits.size(); w++)
      for (uint64_t v = bits[w]; v; v &= v - 1) out.push_back(w * 64 + static_cast<size_t>(__builtin_ctzll(v)));
    return out;
  }
  std::unordered_set<size_t> chosen;
  chosen.reserve(m * 2);
  for (size_t j = n - m; j < n; j++) {
    const size_t t = rng.below(j + 1);
    if (!chosen.insert(t).second) chosen.insert(j);
  }
  out.assign(chosen.begin(), chosen.end());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace internal
}  // namespace lowbit
