// 1-D k-means (scalar weight sharing, lowbit/kmeans.h's kmeans_1d): Lloyd on the sorted values
// with exact prefix sums (kmeans_1d_sorted.h), O(k log n) per step, from k-means++ on a summary of
// the values and from the optimal partition of that summary (dynamic programming); the codes of
// every value come from the final thresholds through the dispatched kernel.
#include <cmath>
#include <cstring>

#include "core/kmeans_1d_sorted.h"
#include "core/kmeans_internal.h"

namespace lowbit {
namespace {

using internal::for_pieces;
using internal::kPiece;
using internal::linear_init;
using internal::make_sorted;
using internal::Rng;
using internal::sample_indices;
using internal::Sorted;
using internal::value_range;
using internal::wide_size;

// The threshold between two sorted centroids: the smallest float >= their midpoint, so that
// x >= t  <=>  x is at least as close to the upper centroid (ties go up).
float threshold(float a, float b) {
  const double mid = (static_cast<double>(a) + static_cast<double>(b)) * 0.5;
  float f = static_cast<float>(mid);
  if (static_cast<double>(f) < mid) f = std::nextafter(f, INFINITY);
  return f;
}

// A partition of the sorted values into k clusters [b[j], b[j+1]).
struct Partition1d {
  std::vector<size_t> b;     // k + 1 boundaries
  std::vector<float> t;      // k - 1 thresholds that produce b
  std::vector<float> c;      // centroids: the means of the clusters
  double sse = INFINITY;
  std::vector<double> history;
};

// Thresholds of centroids c and the partition they make (c is sorted here). Empty clusters are
// re-seeded, all at once, with the cluster end values farthest from their centroids (distinct,
// at a positive distance). Such a value is no centroid yet, and a centroid sitting on a value
// never loses it, so every round adds centroids on values and, with >= k distinct values,
// few rounds leave no cluster empty.
void partition_of(const Sorted& S, std::vector<float>& c, std::vector<float>& t,
                  std::vector<size_t>& b) {
  const size_t k = c.size();
  t.resize(k - 1);
  if (b.size() != k + 1) {
    b.assign(k + 1, 0);
    for (size_t j = 0; j <= k; j++) b[j] = S.n * j / k;
  }
  std::sort(c.begin(), c.end());
  struct Far {
    double dist;
    size_t pos;
  };
  std::vector<size_t> empty;
  std::vector<Far> far;
  for (size_t round = 0; round <= k; round++) {
    for (size_t j = 0; j + 1 < k; j++) t[j] = threshold(c[j], c[j + 1]);
    b[0] = 0;
    b[k] = S.n;
    for (size_t j = 1; j < k; j++) b[j] = S.lower_bound(t[j - 1], std::max(b[j], b[j - 1]));
    empty.clear();
    for (size_t j = 0; j < k; j++)
      if (b[j] == b[j + 1]) empty.push_back(j);
    if (empty.empty()) return;
    far.clear();
    for (size_t j = 0; j < k; j++) {
      if (b[j] == b[j + 1]) continue;
      // A value lies in one cluster only; the two ends differ unless the cluster has one value.
      const size_t lo = b[j], hi = b[j + 1] - 1;
      for (size_t pos : {lo, hi}) {
        const double dist = std::fabs(static_cast<double>(S.s[pos]) - c[j]);
        if (dist > 0 && (pos == lo || S.s[hi] != S.s[lo])) far.push_back(Far{dist, pos});
      }
    }
    const size_t used = std::min(empty.size(), far.size());
    std::partial_sort(far.begin(), far.begin() + used, far.end(), [](const Far& p, const Far& q) {
      return p.dist > q.dist || (p.dist == q.dist && p.pos < q.pos);
    });
    for (size_t q = 0; q < used; q++) c[empty[q]] = S.s[far[q].pos];
    if (used == 0) break;  // not reached with >= k distinct values
    std::sort(c.begin(), c.end());
  }
  // Not reached while there are >= k distinct values; kept as a safe exit: k distinct values
  // evenly spread over the distinct ones are centroids that leave no cluster empty.
  std::vector<float> u;
  for (size_t i = 0; i < S.n; i++)
    if (i == 0 || S.s[i] != S.s[i - 1]) u.push_back(S.s[i]);
  for (size_t j = 0; j < k; j++) c[j] = u[j * (u.size() - 1) / (k - 1)];
  for (size_t j = 0; j + 1 < k; j++) t[j] = threshold(c[j], c[j + 1]);
  for (size_t j = 1; j < k; j++) b[j] = S.lower_bound(t[j - 1], b[j - 1]);
}

// Means of the clusters of b and the sum of squared errors (to the exact means).
double means_of(const Sorted& S, const std::vector<size_t>& b, std::vector<float>& c) {
  const size_t k = b.size() - 1;
  c.resize(k);
  double sse = S.t2;
  for (size_t j = 0; j < k; j++) {
    const double w = static_cast<double>(b[j + 1] - b[j]);
    const double s = S.sum(b[j], b[j + 1]);
    sse -= s * s / w;
    c[j] = static_cast<float>(S.shift + s / w);
  }
  return std::max(sse, 0.0);
}

// Lloyd on the sorted values from centroids c0: at most `iters` steps, stopping at a fixed point
// or when the error stops decreasing.
Partition1d lloyd_1d(const Sorted& S, std::vector<float> c, int iters) {
  Partition1d cur;
  partition_of(S, c, cur.t, cur.b);
  cur.sse = means_of(S, cur.b, cur.c);
  cur.history.push_back(cur.sse);
  for (int it = 1; it < iters; it++) {
    Partition1d next;
    next.b = cur.b;
    std::vector<float> cc = cur.c;
    partition_of(S, cc, next.t, next.b);
    if (next.b == cur.b) break;
    next.sse = means_of(S, next.b, next.c);
    if (!(next.sse < cur.sse)) break;
    next.history = std::move(cur.history);
    next.history.push_back(next.sse);
    cur = std::move(next);
  }
  return cur;
}

// Groups of consecutive sorted values (never splitting equal values) that summarize the data
// for the dynamic program and the k-means++ start: every distinct value when there are at most
// `target` of them, else the cells of a companding quantizer with `target` levels (cell density
// proportional to p^(1/3), the high-resolution optimum), estimated from quantiles.
struct Compander {
  std::vector<double> q, m;  // quantile values and the cumulative p^(1/3) measure at each

  explicit Compander(const Sorted& S) {
    const size_t Q = std::min<size_t>(4096, S.n - 1);
    q.resize(Q + 1);
    m.resize(Q + 1);
    std::vector<size_t> pos(Q + 1);
    for (size_t i = 0; i <= Q; i++) {
      pos[i] = static_cast<size_t>((static_cast<wide_size>(S.n - 1) * i) / Q);
      q[i] = S.s[pos[i]];
    }
    m[0] = 0.0;
    for (size_t i = 0; i < Q; i++) {
      const double width = q[i + 1] - q[i];
      const double count = static_cast<double>(pos[i + 1] - pos[i]);
      m[i + 1] = m[i] + std::cbrt(width * width * count);
    }
  }
  double total() const { return m.back(); }
  // The value where the measure reaches u (0 <= u <= total()), interpolated in its segment.
  double at(double u, size_t* seg) const {
    size_t i = *seg;
    while (i + 2 < m.size() && m[i + 1] <= u) i++;
    *seg = i;
    const double len = m[i + 1] - m[i];
    const double f = len > 0 ? std::min(1.0, std::max(0.0, (u - m[i]) / len)) : 0.0;
    return q[i] + f * (q[i + 1] - q[i]);
  }
};

std::vector<size_t> make_groups(const Sorted& S, size_t target) {
  std::vector<size_t> g{0};
  if (S.distinct <= target) {
    for (size_t i = 1; i < S.n; i++)
      if (S.s[i] != S.s[i - 1]) g.push_back(i);
  } else {
    const Compander C(S);
    size_t seg = 0;
    for (size_t c = 1; c < target; c++) {
      const double edge = C.at(C.total() * static_cast<double>(c) / static_cast<double>(target), &seg);
      // First position with value >= edge (the values are floats, the edge a double).
      const size_t p = static_cast<size_t>(
          std::lower_bound(S.s.begin() + g.back(), S.s.end(), edge,
                           [](float v, double e) { return static_cast<double>(v) < e; }) -
          S.s.begin());
      if (p > g.back() && p < S.n) g.push_back(p);
    }
  }
  g.push_back(S.n);
  return g;
}

// The optimal partition into k clusters whose boundaries are group boundaries: maximizes
// sum_j S_j^2 / W_j (equivalently minimizes the error) by dynamic programming; each layer is
// solved by divide and conquer on the monotone optimal split (O(G log G) per layer).
std::vector<size_t> dp_partition(const Sorted& S, const std::vector<size_t>& g, size_t k) {
  const size_t G = g.size() - 1;
  std::vector<double> gs(G + 1), gw(G + 1);  // prefix sum and count at each group boundary
  for (size_t i = 0; i <= G; i++) {
    gs[i] = S.prefix(g[i]);
    gw[i] = static_cast<double>(g[i]);
  }
  std::vector<double> prev(G + 1, -INFINITY), cur(G + 1, -INFINITY), tmp(G + 1);
  std::vector<uint32_t> opt(k * (G + 1), 0);
  for (size_t i = 1; i + (k - 1) <= G; i++) prev[i] = gs[i] * gs[i] / gw[i];
  struct Seg { size_t lo, hi, jlo, jhi; };
  std::vector<Seg> stack;
  for (size_t l = 1; l < k; l++) {
    // Layer l: l + 1 clusters over the first i groups; the last layer needs i = G only.
    const size_t ilo = l + 1 == k ? G : l + 1, ihi = G - (k - 1 - l);
    std::fill(cur.begin(), cur.end(), -INFINITY);
    uint32_t* o = opt.data() + l * (G + 1);
    stack.assign(1, Seg{ilo, ihi, l, ihi - 1});
    while (!stack.empty()) {
      const Seg sg = stack.back();
      stack.pop_back();
      const size_t mid = sg.lo + (sg.hi - sg.lo) / 2;
      const size_t jend = std::min(mid - 1, sg.jhi);
      const double sm = gs[mid], wm = gw[mid];
      for (size_t j = sg.jlo; j <= jend; j++) {  // vectorizes: no branch
        const double sd = sm - gs[j];
        tmp[j] = prev[j] + sd * sd / (wm - gw[j]);
      }
      double best = -INFINITY;
      size_t bj = sg.jlo;
      for (size_t j = sg.jlo; j <= jend; j++)
        if (tmp[j] > best) {
          best = tmp[j];
          bj = j;
        }
      cur[mid] = best;
      o[mid] = static_cast<uint32_t>(bj);
      if (mid > sg.lo) stack.push_back(Seg{sg.lo, mid - 1, sg.jlo, bj});
      if (mid < sg.hi) stack.push_back(Seg{mid + 1, sg.hi, bj, sg.jhi});
    }
    std::swap(prev, cur);
  }
  std::vector<size_t> b(k + 1);
  b[k] = S.n;
  size_t i = G;
  for (size_t l = k - 1; l >= 1; l--) {
    i = opt[l * (G + 1) + i];
    b[l] = g[i];
  }
  b[0] = 0;
  return b;
}

// Fenwick tree of doubles for weighted sampling (k-means++).
struct Fenwick {
  std::vector<double> t;
  explicit Fenwick(size_t n) : t(n + 1, 0.0) {}
  void add(size_t i, double v) {
    for (i++; i < t.size(); i += i & (~i + 1)) t[i] += v;
  }
  // The smallest i with prefix(i + 1) > u.
  size_t find(double u) const {
    size_t pos = 0, step = 1;
    while (step * 2 < t.size()) step *= 2;
    for (; step; step /= 2)
      if (pos + step < t.size() && t[pos + step] <= u) {
        pos += step;
        u -= t[pos];
      }
    return std::min(pos, t.size() - 2);
  }
};

// k-means++ on the group summary (weights: counts; positions: group means; each chosen centre is
// a random value of the chosen group). Only groups between the new centre's neighbours can get
// closer, so each step touches a contiguous range.
std::vector<float> kmeanspp_1d(const Sorted& S, const std::vector<size_t>& g, size_t k, Rng& rng) {
  const size_t G = g.size() - 1;
  std::vector<double> mu(G), w(G), d2(G, INFINITY);
  for (size_t i = 0; i < G; i++) {
    w[i] = static_cast<double>(g[i + 1] - g[i]);
    mu[i] = S.shift + S.sum(g[i], g[i + 1]) / w[i];
  }
  Fenwick fw(G);
  std::vector<double> cur(G, 0.0);  // current weight in the tree
  std::vector<float> centres;       // sorted
  auto pick_value = [&](size_t grp) { return S.s[g[grp] + rng.below(g[grp + 1] - g[grp])]; };
  auto place = [&](float c) {
    const auto it = std::lower_bound(centres.begin(), centres.end(), c);
    const double left = it == centres.begin() ? -INFINITY : static_cast<double>(*(it - 1));
    const double right = it == centres.end() ? INFINITY : static_cast<double>(*it);
    centres.insert(it, c);
    // Groups with mean in (left, right) may move to c.
    size_t i = static_cast<size_t>(std::upper_bound(mu.begin(), mu.end(), left) - mu.begin());
    for (; i < G && mu[i] < right; i++) {
      const double dd = (mu[i] - c) * (mu[i] - c);
      if (dd < d2[i]) {
        d2[i] = dd;
        const double nw = w[i] * dd;
        fw.add(i, nw - cur[i]);
        cur[i] = nw;
      }
    }
  };
  place(pick_value(rng.below(G)));
  for (size_t j = 1; j < k; j++) {
    double total = 0.0;
    for (size_t step = fw.t.size() - 1; step; step -= step & (~step + 1)) total += fw.t[step];
    const size_t grp = total > 0 ? fw.find(rng.uniform() * total) : rng.below(G);
    place(pick_value(grp));
  }
  return centres;
}

// The lookup table of the 1-D assignment kernel for thresholds t.
struct Lut1d {
  std::vector<uint32_t> lut;
  Kmeans1dLut desc;
};

Lut1d make_lut(const std::vector<float>& t) {
  Lut1d L;
  const size_t nt = t.size();
  const uint32_t nbins = static_cast<uint32_t>(std::min<size_t>(1 << 20, std::max<size_t>(64, 32 * nt)));
  const double range = static_cast<double>(t.back()) - t.front();
  double inv = range > 0 ? nbins / range : 0.0;
  if (!(inv <= 1e30)) inv = 0.0;
  L.desc.t = t.data();
  L.desc.nt = static_cast<uint32_t>(nt);
  L.desc.lo = t.front();
  L.desc.inv_w = static_cast<float>(inv);
  L.desc.nbins = nbins;
  L.lut.assign(nbins, 0);
  // lut[g] = #{j : bin(t[j]) < g}, with bin() exactly as the kernels compute it, flagged when a
  // threshold falls in bin g (the only bins where steps can be needed).
  const float top = static_cast<float>(nbins - 1);
  std::vector<uint32_t> cnt(nbins, 0);
  for (float v : t) {
    float b = (v - L.desc.lo) * L.desc.inv_w;
    b = b > 0.0f ? b : 0.0f;
    b = b < top ? b : top;
    cnt[static_cast<uint32_t>(b)]++;
  }
  uint32_t acc = 0;
  for (uint32_t gi = 0; gi < nbins; gi++) {
    L.lut[gi] = acc | (cnt[gi] ? 0x80000000u : 0u);
    acc += cnt[gi];
  }
  L.desc.lut = L.lut.data();
  return L;
}

}  // namespace

KmeansResult kmeans_1d(const float* x, size_t n, size_t k, int iters, KmeansInit init,
                       uint64_t seed, void* codes) {
  KmeansResult res;
  float mn, mx;
  if (!value_range(x, n, &mn, &mx)) {
    res.nonfinite = true;
    return res;
  }
  Sorted S = make_sorted(x, n);
  if (S.distinct < k) {
    res.error = "k=" + std::to_string(k) + " is larger than the number of distinct values (" +
                std::to_string(S.distinct) + ")";
    return res;
  }
  Rng rng(seed);
  const size_t target = std::max<size_t>(1024, 8 * k);
  const std::vector<size_t> groups = make_groups(S, target);
  const size_t G = groups.size() - 1;

  // Candidate 1: Lloyd from the requested start (k-means++ for `automatic`); an explicit start
  // is honoured: it is the only candidate.
  std::vector<float> c0;
  if (init == KmeansInit::linear) {
    c0 = linear_init(mn, mx, k);
  } else if (init == KmeansInit::random) {
    for (size_t p : sample_indices(n, k, rng)) c0.push_back(S.s[p]);
  } else {
    c0 = kmeanspp_1d(S, groups, k, rng);
  }
  Partition1d best = lloyd_1d(S, c0, iters);

  // Candidate 2 (automatic only): the optimal partition of the group summary (when the DP is
  // affordable), else the companding quantizer; then Lloyd.
  if (init == KmeansInit::automatic) {
    std::vector<float> c1;
    const double dp_cost = static_cast<double>(k) * G * std::log2(static_cast<double>(G) + 1);
    if (G >= k && dp_cost <= 6e7) {
      means_of(S, dp_partition(S, groups, k), c1);
    } else {
      const Compander C(S);
      size_t seg = 0;
      for (size_t j = 0; j < k; j++)
        c1.push_back(static_cast<float>(C.at(C.total() * (j + 0.5) / static_cast<double>(k), &seg)));
    }
    Partition1d second = lloyd_1d(S, c1, iters);
    if (second.sse <= best.sse) best = std::move(second);
  }

  // Codes of every value: the thresholds of the final partition, through the kernel.
  const int bits = codebook_bits(k);
  const Lut1d L = make_lut(best.t);
  const KernelTable& kt = active_kernels();
  for_pieces(n, kPiece, 4, [&](size_t, size_t b, size_t e) {
    void* o = bits == 4 ? static_cast<void*>(static_cast<uint8_t*>(codes) + b / 2)
              : bits == 8 ? static_cast<void*>(static_cast<uint8_t*>(codes) + b)
                          : static_cast<void*>(static_cast<uint16_t*>(codes) + b);
    kt.f32_code_kmeans1d_assign(x + b, e - b, &L.desc, bits, o);
  });
  // The error of the float centroids: the exact-means error plus what rounding costs.
  double inertia = best.sse;
  for (size_t j = 0; j < k; j++) {
    const double w = static_cast<double>(best.b[j + 1] - best.b[j]);
    const double mean = S.shift + S.sum(best.b[j], best.b[j + 1]) / w;
    inertia += w * (best.c[j] - mean) * (best.c[j] - mean);
  }
  res.centroids = best.c;
  res.history = best.history;
  res.inertia = inertia;
  res.train_points = n;
  return res;
}

}  // namespace lowbit
