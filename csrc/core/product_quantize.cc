// Product quantization (lowbit/kmeans.h): N-D k-means (kmeans_core, kmeans_nd.cc) on each
// subspace in turn, and the decode.
#include <cmath>
#include <cstring>

#include "core/kmeans_internal.h"

namespace lowbit {

using internal::distinct_rows;
using internal::for_pieces;
using internal::kmeans_core;
using internal::kPiece;
using internal::NdOutcome;
using internal::Rng;
using internal::scale_exponent;
using internal::value_range;

PqResult product_quantize(const float* x, size_t n, size_t D, size_t m, size_t k, int iters,
                          uint64_t seed, size_t max_points, void* codes) {
  PqResult res;
  const size_t dsub = D / m;
  float mn, mx;
  if (!value_range(x, n * D, &mn, &mx)) {
    res.nonfinite = true;
    return res;
  }
  if (n < k) {
    res.error = "k=" + std::to_string(k) + " (2**bits) is larger than the number of vectors (" +
                std::to_string(n) + ")";
    return res;
  }
  res.centroids.assign(m * k * dsub, 0.0f);
  res.inertia.assign(m, 0.0);
  // One subspace after the other; each k-means spreads its passes over the threads.
  for (size_t s = 0; s < m; s++) {
    std::vector<float> sub(n * dsub);
    for (size_t i = 0; i < n; i++)
      std::memcpy(&sub[i * dsub], x + i * D + s * dsub, dsub * sizeof(float));
    const size_t nd = distinct_rows(sub.data(), n, dsub, k);
    if (nd < k) {
      res.error = "subspace " + std::to_string(s) + " has " + std::to_string(nd) +
                  " distinct vectors, fewer than k=" + std::to_string(k) + " (2**bits)";
      return res;
    }
    float submax = 0.0f;
    for (float v : sub) submax = std::max(submax, std::fabs(v));
    const int e = scale_exponent(submax);
    if (e != 0)
      for (float& v : sub) v = std::ldexp(v, -e);
    Rng rng(seed * 0x100000001B3ull + s);
    std::vector<uint32_t> idx(n);
    NdOutcome o = kmeans_core(sub.data(), n, dsub, k, iters, KmeansInit::kmeanspp, rng, max_points,
                              idx.data());
    if (e != 0) {
      for (float& v : o.centroids) v = std::ldexp(v, e);
      o.inertia = std::ldexp(o.inertia, 2 * e);
    }
    std::memcpy(&res.centroids[s * k * dsub], o.centroids.data(), k * dsub * sizeof(float));
    res.inertia[s] = o.inertia;
    for (size_t i = 0; i < n; i++) {
      if (k <= 256) static_cast<uint8_t*>(codes)[i * m + s] = static_cast<uint8_t>(idx[i]);
      else static_cast<uint16_t*>(codes)[i * m + s] = static_cast<uint16_t>(idx[i]);
    }
  }
  return res;
}

void pq_decode(const void* codes, size_t n, size_t m, size_t k, size_t dsub,
               const float* centroids, float* out) {
  const size_t D = m * dsub;
  for_pieces(n, std::max<size_t>(1, kPiece / D), D, [&](size_t, size_t b, size_t e) {
    for (size_t i = b; i < e; i++)
      for (size_t s = 0; s < m; s++) {
        const size_t code = k <= 256 ? static_cast<const uint8_t*>(codes)[i * m + s]
                                     : static_cast<const uint16_t*>(codes)[i * m + s];
        std::memcpy(out + i * D + s * dsub, centroids + (s * k + code) * dsub, dsub * sizeof(float));
      }
  });
}

}  // namespace lowbit
