// Random numbers for the k-means drivers: splitmix64, the same sequence on every platform (and
// so the same clustering for a seed everywhere).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit {
namespace internal {

// High half of a 64x64-bit product, the same on every platform (32-bit targets have no __int128).
inline uint64_t mulhi64(uint64_t a, uint64_t b) {
#if defined(__SIZEOF_INT128__)
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#else
  const uint64_t al = a & 0xffffffffu, ah = a >> 32, bl = b & 0xffffffffu, bh = b >> 32;
  const uint64_t lh = al * bh, hl = ah * bl;
  const uint64_t mid = ((al * bl) >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
  return ah * bh + (lh >> 32) + (hl >> 32) + (mid >> 32);
#endif
}
// An unsigned type that holds any size_t * size_t product.
#if defined(__SIZEOF_INT128__)
using wide_size = unsigned __int128;
#else
using wide_size = uint64_t;
static_assert(sizeof(size_t) <= 4, "no 128-bit integer type for size_t products");
#endif

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed ^ 0x6A09E667F3BCC909ull) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) {  // uniform in [0, n), n >= 1 (multiply-high; bias < 2^-40 here)
    return static_cast<size_t>(mulhi64(next(), n));
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

// m distinct indices of [0, n), ascending (Floyd's algorithm; a bitmap when m is a sizeable
// fraction of n, a hash set otherwise).
std::vector<size_t> sample_indices(size_t n, size_t m, Rng& rng);

}  // namespace internal
}  // namespace lowbit
