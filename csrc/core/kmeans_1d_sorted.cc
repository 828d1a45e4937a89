// The sorted values of 1-D k-means (kmeans_1d_sorted.h): a radix sort of the float keys and
// the blockwise prefix sums, both split into pieces independent of the thread count.
#include "core/kmeans_1d_sorted.h"

#include <cstring>

#include "core/kmeans_internal.h"

namespace lowbit {
namespace internal {
namespace {

inline uint32_t float_key(float f) {  // order-preserving map of finite floats to uint32
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline float key_float(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Radix sort: one scatter on the top 11 bits of the keys (sign, exponent, 2 mantissa bits),
// then each bucket -- small enough to stay in cache -- on its low 21 bits (two LSD passes, or
// std::sort when short). The sorted sequence is unique, so the split over threads cannot
// change it.
std::vector<float> sort_values(const float* x, size_t n) {
  constexpr int kLowBits = 21;
  constexpr size_t kTop = 2048;
  std::vector<uint32_t> a(n), b(n);
  std::vector<float> out(n);
  const size_t np = pieces_of(n, kPiece);
  std::vector<uint32_t> hist(np * kTop, 0);
  for_pieces(n, kPiece, 2, [&](size_t p, size_t lo, size_t hi) {
    uint32_t* h = &hist[p * kTop];
    for (size_t i = lo; i < hi; i++) {
      const uint32_t key = float_key(x[i]);
      b[i] = key;
      h[key >> kLowBits]++;
    }
  });
  std::vector<size_t> start(kTop + 1, 0);
  size_t total = 0;
  for (size_t d = 0; d < kTop; d++) {
    start[d] = total;
    for (size_t p = 0; p < np; p++) {
      const uint32_t c = hist[p * kTop + d];
      hist[p * kTop + d] = static_cast<uint32_t>(total);
      total += c;
    }
  }
  start[kTop] = n;
  for_pieces(n, kPiece, 2, [&](size_t p, size_t lo, size_t hi) {
    uint32_t* h = &hist[p * kTop];
    for (size_t i = lo; i < hi; i++) a[h[b[i] >> kLowBits]++] = b[i];
  });
  std::vector<uint32_t> buckets;
  for (size_t d = 0; d < kTop; d++)
    if (start[d + 1] > start[d]) buckets.push_back(static_cast<uint32_t>(d));
  auto sort_bucket = [&](size_t q) {
    const size_t lo = start[buckets[q]], hi = start[buckets[q] + 1], len = hi - lo;
    uint32_t* A = a.data() + lo;
    uint32_t* B = b.data() + lo;
    if (len <= 512) {
      std::sort(A, A + len);
    } else {
      uint32_t h0[2048] = {}, h1[1024] = {};
      for (size_t i = 0; i < len; i++) {
        h0[A[i] & 2047]++;
        h1[(A[i] >> 11) & 1023]++;
      }
      uint32_t s0 = 0, s1 = 0;
      for (size_t d = 0; d < 2048; d++) { const uint32_t c = h0[d]; h0[d] = s0; s0 += c; }
      for (size_t d = 0; d < 1024; d++) { const uint32_t c = h1[d]; h1[d] = s1; s1 += c; }
      for (size_t i = 0; i < len; i++) B[h0[A[i] & 2047]++] = A[i];
      for (size_t i = 0; i < len; i++) A[h1[(B[i] >> 11) & 1023]++] = B[i];
    }
    for (size_t i = 0; i < len; i++) out[lo + i] = key_float(A[i]);
  };
  if (n < (1u << 16)) {
    for (size_t q = 0; q < buckets.size(); q++) sort_bucket(q);
  } else {
    parallel_for(buckets.size(), sort_bucket);
  }
  return out;
}

}  // namespace

Sorted make_sorted(const float* x, size_t n) {
  Sorted S;
  S.n = n;
  S.s = sort_values(x, n);
  S.shift = S.s[n / 2];
  const size_t nb = n / Sorted::kBlk + 1;
  std::vector<double> bsum(nb, 0.0), bsq(nb, 0.0);
  std::vector<size_t> bdist(nb, 0);
  // Block sums (in pieces of whole blocks, each block summed in order), then a running total.
  const size_t piece = kPiece / Sorted::kBlk * Sorted::kBlk;
  for_pieces(n, piece, 2, [&](size_t, size_t lo, size_t hi) {
    for (size_t b0 = lo; b0 < hi; b0 += Sorted::kBlk) {
      const size_t e = std::min(hi, b0 + Sorted::kBlk);
      double p = 0.0, q = 0.0;
      size_t dist = 0;
      for (size_t i = b0; i < e; i++) {
        const double v = static_cast<double>(S.s[i]) - S.shift;
        p += v;
        q += v * v;
        dist += (i == 0 || S.s[i] != S.s[i - 1]);
      }
      bsum[b0 / Sorted::kBlk] = p;
      bsq[b0 / Sorted::kBlk] = q;
      bdist[b0 / Sorted::kBlk] = dist;
    }
  });
  S.Pb.assign(nb + 1, 0.0);
  double p = 0.0, t2 = 0.0;
  size_t distinct = 0;
  for (size_t j = 0; j < nb; j++) {
    S.Pb[j] = p;
    p += bsum[j];
    t2 += bsq[j];
    distinct += bdist[j];
  }
  S.Pb[nb] = p;
  S.t2 = t2;
  S.distinct = distinct;
  return S;
}

}  // namespace internal
}  // namespace lowbit
