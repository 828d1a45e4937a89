// Helpers shared by the k-means drivers (kmeans_internal.h) and the codebook entry points of
// lowbit/kmeans.h that belong to no single algorithm: code widths and decoding.
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "core/kmeans_internal.h"

namespace lowbit {
namespace internal {

bool value_range(const float* x, size_t n, float* mn, float* mx) {
  const KernelTable& kt = active_kernels();
  const size_t np = pieces_of(n, kPiece);
  std::vector<float> pmn(np), pmx(np);
  std::vector<char> ok(np);
  for_pieces(n, kPiece, 1, [&](size_t p, size_t b, size_t e) {
    ok[p] = kt.f32_f32_minmax(x + b, e - b, &pmn[p], &pmx[p]);
  });
  *mn = INFINITY;
  *mx = -INFINITY;
  for (size_t p = 0; p < np; p++) {
    if (!ok[p]) return false;
    *mn = std::min(*mn, pmn[p]);
    *mx = std::max(*mx, pmx[p]);
  }
  return true;
}

std::vector<float> linear_init(float mn, float mx, size_t k) {
  std::vector<float> c(k);
  for (size_t j = 0; j < k; j++)
    c[j] = static_cast<float>(mn + (static_cast<double>(mx) - mn) * static_cast<double>(j) /
                                       static_cast<double>(k - 1));
  return c;
}

namespace {

// Rows that are equal as floats (-0 == +0) hash alike.
struct RowHash {
  const float* x;
  size_t d;
  size_t operator()(size_t i) const {
    uint64_t h = 1469598103934665603ull;
    for (size_t t = 0; t < d; t++) {
      const float v = x[i * d + t] == 0.0f ? 0.0f : x[i * d + t];
      uint32_t u;
      std::memcpy(&u, &v, 4);
      h = (h ^ u) * 1099511628211ull;
    }
    return static_cast<size_t>(h);
  }
};
struct RowEq {
  const float* x;
  size_t d;
  bool operator()(size_t a, size_t b) const {
    for (size_t t = 0; t < d; t++)
      if (!(x[a * d + t] == x[b * d + t])) return false;
    return true;
  }
};

}  // namespace

// Number of distinct rows, counting stops at `enough`.
size_t distinct_rows(const float* x, size_t n, size_t d, size_t enough) {
  std::unordered_set<size_t, RowHash, RowEq> seen(std::min<size_t>(n, 2 * enough), RowHash{x, d},
                                                 RowEq{x, d});
  for (size_t i = 0; i < n && seen.size() < enough; i++) seen.insert(i);
  return seen.size();
}

int scale_exponent(float maxabs) {
  if (maxabs > 0x1.0p40f || maxabs < 0x1.0p-40f) return std::ilogb(maxabs);
  return 0;
}

}  // namespace internal

using internal::for_pieces;
using internal::kPiece;

int codebook_bits(size_t k) { return k <= 16 ? 4 : k <= 256 ? 8 : 16; }

size_t codebook_code_bytes(size_t n, int bits) {
  return bits == 4 ? (n + 1) / 2 : bits == 8 ? n : 2 * n;
}

void codebook_decode(const void* codes, int bits, size_t n, const float* centroids, size_t k,
                     size_t d, float* out) {
  const KernelTable& kt = active_kernels();
  std::vector<float> table16;
  if (bits == 4 && k < 16) {  // the 4-bit kernels read 16 rows
    table16.assign(16 * d, 0.0f);
    std::memcpy(table16.data(), centroids, k * d * sizeof(float));
    centroids = table16.data();
  }
  // Outputs much larger than the caches are streamed past them.
  const int flags = n * d * sizeof(float) >= (size_t(8) << 20) ? kLookupStream : 0;
  const size_t piece = std::max<size_t>(2, kPiece / d / 2 * 2);
  for_pieces(n, piece, d, [&](size_t, size_t b, size_t e) {
    if (bits == 4)
      kt.u4_f32_lookup(static_cast<const uint8_t*>(codes) + b / 2, e - b, centroids, d, out + b * d, flags);
    else if (bits == 8)
      kt.u8_f32_lookup(static_cast<const uint8_t*>(codes) + b, e - b, centroids, d, out + b * d, flags);
    else
      kt.u16_f32_lookup(static_cast<const uint16_t*>(codes) + b, e - b, centroids, d, out + b * d, flags);
  });
}

}  // namespace lowbit
