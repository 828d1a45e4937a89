// N-D k-means (vector quantization, lowbit/kmeans.h's kmeans_nd): a training sample, k-means++
// (or the linear / random start), Lloyd through lloyd_nd.h's steps, the final assignment of
// every point; kmeans_core is also what product_quantize.cc runs per subspace.
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/kmeans_internal.h"
#include "core/lloyd_nd.h"

namespace lowbit {
namespace internal {
namespace {

// k-means++ (D^2 sampling) on the m points; distances in float over a transposed copy so the
// loops vectorize, sampling through per-piece sums in double.
std::vector<float> kmeanspp_nd(const float* x, size_t m, size_t d, size_t k, Rng& rng) {
  constexpr size_t kP = 1024;
  std::vector<float> xt(d * m);
  for (size_t i = 0; i < m; i++)
    for (size_t t = 0; t < d; t++) xt[t * m + i] = x[i * d + t];
  std::vector<float> dist(m, INFINITY);
  const size_t np = pieces_of(m, kP);
  std::vector<double> psum(np);
  std::vector<float> c(k * d);
  auto add_centre = [&](size_t j, size_t p) {
    for (size_t t = 0; t < d; t++) c[j * d + t] = x[p * d + t];
    const float* cj = c.data() + j * d;
    for_pieces(m, kP, d, [&](size_t q, size_t b, size_t e) {
      float acc[kP];
      for (size_t i = b; i < e; i++) acc[i - b] = 0.0f;
      for (size_t t = 0; t < d; t++) {
        const float* xr = xt.data() + t * m;
        const float ct = cj[t];
        for (size_t i = b; i < e; i++) {
          const float v = xr[i] - ct;
          acc[i - b] += v * v;
        }
      }
      double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (size_t i = b; i < e; i++) {
        dist[i] = std::min(dist[i], acc[i - b]);
        part[(i - b) & 7] += dist[i];
      }
      psum[q] = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    });
  };
  add_centre(0, rng.below(m));
  for (size_t j = 1; j < k; j++) {
    double total = 0.0;
    for (double s : psum) total += s;
    size_t pick = m;
    if (total > 0) {
      double u = rng.uniform() * total;
      size_t q = 0;
      while (q + 1 < np && u >= psum[q]) u -= psum[q++];
      const size_t b = q * kP, e = std::min(m, b + kP);
      for (size_t i = b; i < e && pick == m; i++) {
        if (u < dist[i] || (i + 1 == e)) pick = i;
        else u -= dist[i];
      }
      if (dist[pick] == 0.0f) {  // rounding landed on a chosen point: take the farthest instead
        pick = static_cast<size_t>(std::max_element(dist.begin(), dist.end()) - dist.begin());
      }
    } else {
      pick = rng.below(m);
    }
    add_centre(j, pick);
  }
  return c;
}

}  // namespace

// Lloyd on x (m x d), then the final assignment of all points `all` (n x d) into idx.
NdOutcome kmeans_core(const float* all, size_t n, size_t d, size_t k, int iters, KmeansInit init,
                      Rng& rng, size_t max_points, uint32_t* idx) {
  // The training set: all points, or a sample that still has k distinct rows.
  std::vector<float> sample;
  const float* x = all;
  size_t m = n;
  if (max_points > 0 && n > max_points && max_points >= k) {
    const std::vector<size_t> pick = sample_indices(n, max_points, rng);
    sample.resize(pick.size() * d);
    for (size_t i = 0; i < pick.size(); i++)
      std::memcpy(&sample[i * d], all + pick[i] * d, d * sizeof(float));
    if (distinct_rows(sample.data(), pick.size(), d, k) >= k) {
      x = sample.data();
      m = pick.size();
    }
  }
  NdOutcome out;
  out.train = m;
  std::vector<float> c;
  if (init == KmeansInit::kmeanspp) {
    // Seeding on at most max(4096, 16 k) of the points: D^2 sampling costs O(points * k * d),
    // and Lloyd on the whole training set follows.
    const size_t ms = std::max<size_t>(4096, 16 * k);
    if (m > ms) {
      const std::vector<size_t> pick = sample_indices(m, ms, rng);
      std::vector<float> seeds(ms * d);
      for (size_t i = 0; i < ms; i++) std::memcpy(&seeds[i * d], x + pick[i] * d, d * sizeof(float));
      c = kmeanspp_nd(seeds.data(), ms, d, k, rng);
    } else {
      c = kmeanspp_nd(x, m, d, k, rng);
    }
  } else if (init == KmeansInit::random) {
    const std::vector<size_t> pick = sample_indices(m, k, rng);
    c.resize(k * d);
    for (size_t j = 0; j < k; j++) std::memcpy(&c[j * d], x + pick[j] * d, d * sizeof(float));
  } else {  // linear: evenly from the per-coordinate minimum to the maximum
    std::vector<float> mn(d, INFINITY), mx(d, -INFINITY);
    for (size_t i = 0; i < m; i++)
      for (size_t t = 0; t < d; t++) {
        mn[t] = std::min(mn[t], x[i * d + t]);
        mx[t] = std::max(mx[t], x[i * d + t]);
      }
    c.resize(k * d);
    for (size_t t = 0; t < d; t++) {
      const std::vector<float> line = linear_init(mn[t], mx[t], k);
      for (size_t j = 0; j < k; j++) c[j * d + t] = line[j];
    }
  }

  // Lloyd: assignment (mostly neighbour-list searches) + means; stops when the error stops
  // decreasing (a fixed point, up to rounding), so the recorded errors never increase.
  const std::unique_ptr<LloydSteps> lloyd = make_lloyd(x, m, d, k);
  double prev = INFINITY;
  PassResult r;
  bool current = false;  // r (and idx) hold the assignment of all points to c
  for (int it = 0; it < iters; it++) {
    r = lloyd->step(c);
    if (!(r.sse < prev)) {
      current = x == all;
      break;
    }
    prev = r.sse;
    out.history.push_back(r.sse);
    const std::vector<float> old_c = c;
    // Means; empty clusters take the points farthest from their centroids.
    std::vector<size_t> empty;
    for (size_t j = 0; j < k; j++) {
      if (r.counts[j] == 0) {
        empty.push_back(j);
        continue;
      }
      for (size_t t = 0; t < d; t++)
        c[j * d + t] = static_cast<float>(r.sums[j * d + t] / static_cast<double>(r.counts[j]));
    }
    if (!empty.empty()) {
      std::vector<double> dist(m);
      lloyd->distances(old_c, dist.data());
      std::vector<size_t> order(m);
      std::iota(order.begin(), order.end(), size_t(0));
      const size_t e = std::min(empty.size(), m);
      std::partial_sort(order.begin(), order.begin() + e, order.end(), [&](size_t p, size_t q) {
        return dist[p] > dist[q] || (dist[p] == dist[q] && p < q);
      });
      for (size_t q = 0; q < e; q++)
        std::memcpy(&c[empty[q] * d], x + order[q] * d, d * sizeof(float));
    }
    lloyd->moved(old_c, c);
  }
  // The assignment of every point to the trained centroids (and their sums and counts).
  if (x != all) {
    r = assign_pass(all, n, d, c, k, idx);
  } else {
    if (!current) r = lloyd->step(c);
    lloyd->assignment(idx);
  }
  // inertia of the returned codebook: the pass's error minus what moving to the means saves,
  // plus what rounding the means to float costs.
  double inertia = r.sse;
  for (size_t j = 0; j < k; j++) {
    if (r.counts[j] == 0) continue;
    const double w = static_cast<double>(r.counts[j]);
    for (size_t t = 0; t < d; t++) {
      const double mean = r.sums[j * d + t] / w;
      const float cf = static_cast<float>(mean);
      const double old = c[j * d + t];
      inertia += w * ((static_cast<double>(cf) - mean) * (cf - mean) - (old - mean) * (old - mean));
      c[j * d + t] = cf;
    }
  }
  out.inertia = std::max(inertia, 0.0);
  out.centroids = std::move(c);
  return out;
}

}  // namespace internal

namespace {

using internal::distinct_rows;
using internal::for_pieces;
using internal::kmeans_core;
using internal::kPiece;
using internal::NdOutcome;
using internal::Rng;
using internal::scale_exponent;
using internal::value_range;

// Codes [b, e) of idx written in `bits` format at their positions (b even for 4 bits).
void store_codes(const uint32_t* idx, size_t b, size_t e, int bits, void* out) {
  if (bits == 8) {
    uint8_t* o = static_cast<uint8_t*>(out);
    for (size_t i = b; i < e; i++) o[i] = static_cast<uint8_t>(idx[i]);
  } else if (bits == 16) {
    uint16_t* o = static_cast<uint16_t*>(out);
    for (size_t i = b; i < e; i++) o[i] = static_cast<uint16_t>(idx[i]);
  } else {
    uint8_t* o = static_cast<uint8_t*>(out);
    size_t i = b;
    for (; i + 2 <= e; i += 2) o[i / 2] = static_cast<uint8_t>(idx[i] | (idx[i + 1] << 4));
    if (i < e) o[i / 2] = static_cast<uint8_t>(idx[i]);
  }
}

// Checks shared by the d > 1 entry points; returns false with res->error / nonfinite set.
bool check_nd(const float* x, size_t n, size_t d, size_t k, float* maxabs, std::string* error,
              bool* nonfinite) {
  float mn, mx;
  if (!value_range(x, n * d, &mn, &mx)) {
    *nonfinite = true;
    return false;
  }
  *maxabs = std::max(std::fabs(mn), std::fabs(mx));
  if (n < k) {
    *error = "k=" + std::to_string(k) + " is larger than the number of points (" +
             std::to_string(n) + ")";
    return false;
  }
  const size_t nd = distinct_rows(x, n, d, k);
  if (nd < k) {
    *error = "k=" + std::to_string(k) + " is larger than the number of distinct " +
             (d == 1 ? std::string("values") : "points") + " (" + std::to_string(nd) + ")";
    return false;
  }
  return true;
}

}  // namespace

KmeansResult kmeans_nd(const float* x, size_t n, size_t d, size_t k, int iters, KmeansInit init,
                       uint64_t seed, size_t max_points, void* codes) {
  KmeansResult res;
  float maxabs;
  if (!check_nd(x, n, d, k, &maxabs, &res.error, &res.nonfinite)) return res;
  const int e = scale_exponent(maxabs);
  std::vector<float> scaled;
  if (e != 0) {
    scaled.resize(n * d);
    for (size_t i = 0; i < n * d; i++) scaled[i] = std::ldexp(x[i], -e);
    x = scaled.data();
  }
  Rng rng(seed);
  std::vector<uint32_t> idx(n);
  if (init == KmeansInit::automatic) init = KmeansInit::kmeanspp;
  NdOutcome o = kmeans_core(x, n, d, k, iters, init, rng, max_points, idx.data());
  const int bits = codebook_bits(k);
  for_pieces(n, kPiece, 1, [&](size_t, size_t b, size_t end) { store_codes(idx.data(), b, end, bits, codes); });
  if (e != 0) {
    for (float& v : o.centroids) v = std::ldexp(v, e);
    for (double& h : o.history) h = std::ldexp(h, 2 * e);
    o.inertia = std::ldexp(o.inertia, 2 * e);
  }
  res.centroids = std::move(o.centroids);
  res.history = std::move(o.history);
  res.inertia = o.inertia;
  res.train_points = o.train;
  return res;
}

}  // namespace lowbit
