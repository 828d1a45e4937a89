// k-means codebooks: the drivers around the dispatched kernels (lowbit/kernels.h).
//
// Determinism: random numbers come from splitmix64 (the same on every platform); parallel work is
// cut into pieces whose boundaries do not depend on the thread count, and partial sums are added
// in piece order, so 1 and N threads give identical results; kernels match their scalar
// references bit for bit, so every kernel set gives identical results too.
#include "lowbit/kmeans.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <unordered_set>

#include "lowbit/quant.h"  // parallel_range
#include "lowbit/runtime.h"

namespace lowbit {
namespace {

// ---- random numbers ------------------------------------------------------------------------
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

// ---- helpers -------------------------------------------------------------------------------
constexpr size_t kPiece = 1 << 16;  // values per parallel piece (even: 4-bit codes split cleanly)

size_t pieces_of(size_t n, size_t piece) { return (n + piece - 1) / piece; }

// Runs fn(piece index, begin, end) over pieces of `piece` items, in parallel when worth it.
template <typename Fn>
void for_pieces(size_t n, size_t piece, size_t work_per_item, const Fn& fn) {
  const size_t np = pieces_of(n, piece);
  if (np == 0) return;
  auto run = [&](size_t p) { fn(p, p * piece, std::min(n, (p + 1) * piece)); };
  if (np == 1 || n * work_per_item < (1u << 16)) {
    for (size_t p = 0; p < np; p++) run(p);
  } else {
    parallel_for(np, run);
  }
}

// Min and max of x; false if any value is NaN or Inf.
bool value_range(const float* x, size_t n, float* mn, float* mx) {
  const KernelTable& kt = active_kernels();
  const size_t np = pieces_of(n, kPiece);
  std::vector<float> pmn(np), pmx(np);
  std::vector<char> ok(np);
  for_pieces(n, kPiece, 1, [&](size_t p, size_t b, size_t e) {
    ok[p] = kt.f32_rminmax(x + b, e - b, &pmn[p], &pmx[p]);
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

// ================================================================================================
// 1-D: sorted values, exact prefix sums
// ================================================================================================

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

std::vector<float> linear_init(float mn, float mx, size_t k) {
  std::vector<float> c(k);
  for (size_t j = 0; j < k; j++)
    c[j] = static_cast<float>(mn + (static_cast<double>(mx) - mn) * static_cast<double>(j) /
                                       static_cast<double>(k - 1));
  return c;
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

// ================================================================================================
// d > 1
// ================================================================================================

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

// Number of distinct rows, counting stops at `enough`.
size_t distinct_rows(const float* x, size_t n, size_t d, size_t enough) {
  std::unordered_set<size_t, RowHash, RowEq> seen(std::min<size_t>(n, 2 * enough), RowHash{x, d},
                                                 RowEq{x, d});
  for (size_t i = 0; i < n && seen.size() < enough; i++) seen.insert(i);
  return seen.size();
}

// Per-piece accumulation of one Lloyd pass: cluster sums (double), counts, error.
struct PassResult {
  std::vector<double> sums;
  std::vector<uint64_t> counts;
  double sse = 0.0;
};

std::vector<float> half_norms(const std::vector<float>& c, size_t k, size_t d) {
  std::vector<float> hn(k);
  for (size_t j = 0; j < k; j++) {
    double s = 0.0;
    for (size_t t = 0; t < d; t++) s += static_cast<double>(c[j * d + t]) * c[j * d + t];
    hn[j] = static_cast<float>(0.5 * s);
  }
  return hn;
}

// Squared distance between two rows of d floats (D > 0: d = D, known at compile time), in double.
template <size_t D = 0>
inline double dist2(const float* a, const float* b, size_t d) {
  double s = 0.0;
  for (size_t t = 0; t < (D ? D : d); t++) {
    const double v = static_cast<double>(a[t]) - b[t];
    s += v * v;
  }
  return s;
}

// Adds points b..e of x (assigned to idx) to their clusters' sums s and counts; returns their
// squared error (D > 0: d = D known at compile time).
template <size_t D>
double accumulate(const float* x, size_t b, size_t e, size_t d, const float* c,
                  const uint32_t* idx, double* s, uint64_t* cnt) {
  double sse = 0.0;
  for (size_t i = b; i < e; i++) {
    const size_t j = idx[i];
    const float* xi = x + i * (D ? D : d);
    sse += dist2<D>(xi, c + j * (D ? D : d), d);
    for (size_t t = 0; t < (D ? D : d); t++) s[j * (D ? D : d) + t] += xi[t];
    cnt[j]++;
  }
  return sse;
}

// Assigns the m points of x to the centroids (the dispatched kernel), and accumulates the
// clusters' sums and counts and the squared error (exact distances, double).
PassResult assign_pass(const float* x, size_t m, size_t d, const std::vector<float>& c, size_t k,
                       uint32_t* idx) {
  const KernelTable& kt = active_kernels();
  const std::vector<float> hn = half_norms(c, k, d);
  const size_t piece = std::max<size_t>(4096, (2 * k * d + 31) / 32 * 32);
  const size_t np = pieces_of(m, piece);
  std::vector<double> psums(np * k * d, 0.0), psse(np, 0.0);
  std::vector<uint64_t> pcounts(np * k, 0);
  for_pieces(m, piece, k * d, [&](size_t p, size_t b, size_t e) {
    kt.f32_kmeans_assign(x + b * d, e - b, d, c.data(), hn.data(), k, idx + b);
    double* s = psums.data() + p * k * d;
    uint64_t* cnt = pcounts.data() + p * k;
    switch (d) {
      case 2: psse[p] = accumulate<2>(x, b, e, d, c.data(), idx, s, cnt); break;
      case 4: psse[p] = accumulate<4>(x, b, e, d, c.data(), idx, s, cnt); break;
      case 8: psse[p] = accumulate<8>(x, b, e, d, c.data(), idx, s, cnt); break;
      default: psse[p] = accumulate<0>(x, b, e, d, c.data(), idx, s, cnt);
    }
  });
  PassResult r;
  r.sums.assign(k * d, 0.0);
  r.counts.assign(k, 0);
  for (size_t p = 0; p < np; p++) {
    for (size_t q = 0; q < k * d; q++) r.sums[q] += psums[p * k * d + q];
    for (size_t j = 0; j < k; j++) r.counts[j] += pcounts[p * k + j];
    r.sse += psse[p];
  }
  return r;
}

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

// Lloyd's assignment steps over m points, exact but mostly without scanning every centroid:
//  * Neighbour lists: any centroid nearer to a point than its own, a = idx[i] at distance u, is
//    within 2u of c_a (triangle inequality). Each centroid's kNeighbours nearest centroids
//    (itself first) are listed with the distance R_a to the first one left out, so a point with
//    2u <= R_a needs to search only a's list: 1/8 of the work for k = 256. The lists are rebuilt
//    when the full scans grow and at least every kListSteps steps; in between, R_a shrinks by
//    how far a and the other centroids have moved since (so it stays a bound).
//  * The points are kept sorted by centroid, so that each centroid's points are one contiguous
//    block for the kernel (no gathering); the few with 2u > R_a, and every point in the first
//    step, go through the kernel over all centroids.
//  * The clusters' sums, counts and sums of squares (of x - mu, mu the points' mean, for
//    precision) are updated by the points that change cluster; the error follows from them.
// Distances computed in double get relative margins of 1e-9. Every step thus yields a nearest
// centroid per point (ties, up to rounding, may resolve otherwise than a full scan would). The
// kernels are bit-exact across ISAs and the decisions depend on nothing else, so the results
// are the same on every ISA and thread count. (Hamerly's bounds on top were tried: with
// k = 256 in 4-D at most a quarter of the points skipped the search per step, which did not
// pay for the bookkeeping.)
template <size_t D>  // D > 0: d = D known at compile time; 0: any d
class ListLloyd final : public LloydSteps {
 public:
  ListLloyd(const float* x, size_t m, size_t d, size_t k)
      : xs_(x, x + m * d), m_(m), d_(D ? D : d), k_(k), idx_(m), next_(m), pos_of_(m),
        start_(k + 1, 0), acc_(k, 0.0), mu_(d, 0.0), sums_(k * d), sq_(k), counts_(k) {
    std::iota(pos_of_.begin(), pos_of_.end(), size_t(0));
    for (size_t i = 0; i < m; i++)
      for (size_t t = 0; t < d; t++) mu_[t] += x[i * d + t];
    for (size_t t = 0; t < d; t++) mu_[t] /= static_cast<double>(std::max<size_t>(m, 1));
  }

  void moved(const std::vector<float>& old_c, const std::vector<float>& new_c) override {
    const size_t d = D ? D : d_;
    accmax_ = 0.0;
    for (size_t j = 0; j < k_; j++) {
      acc_[j] += std::sqrt(dist2<D>(&old_c[j * d], &new_c[j * d], d)) * (1.0 + 1e-9);
      accmax_ = std::max(accmax_, acc_[j]);
    }
    shrink_radii();
  }

  PassResult step(const std::vector<float>& c) override {
    const size_t d = D ? D : d_, k = k_;
    hn_ = half_norms(c, k, d);
    std::vector<std::vector<Move>> moves;
    const bool lists = started_ && use_lists();
    if (!started_) {
      scan_all(c);
      for (size_t i = 0; i < m_; i++) add(i, next_[i], 1.0);
      started_ = true;
    } else {
      if (lists && (nb_.empty() || last_scans_ > 2 * scans_after_build_ + 1024 ||
                    steps_since_lists_ >= kListSteps))
        neighbours(c);
      if (lists) {
        moves.resize(k);
        std::vector<size_t> scans(k);
        parallel_for(k, [&](size_t a) { scans[a] = search_list(c, a, &moves[a]); });
        last_scans_ = std::accumulate(scans.begin(), scans.end(), size_t(0));
        if (steps_since_lists_++ == 0) {
          scans_after_build_ = last_scans_;
          // Lists that leave most points to full scans even when fresh (high d: points lie far
          // from their centroid compared with the centroids' spacing) only add work: off.
          lists_off_ = last_scans_ > m_ / 2;
        }
      } else {
        scan_all(c);
        moves.resize(1);
        for (size_t i = 0; i < m_; i++)
          if (next_[i] != idx_[i]) moves[0].push_back({i, idx_[i], next_[i]});
      }
      for (const auto& v : moves)
        for (const Move& mv : v) {
          add(mv.i, mv.from, -1.0);
          add(mv.i, mv.to, 1.0);
        }
    }
    // idx_ = next_, the points stored by centroid if the next step searches lists.
    if (lists) resort(moves);
    else if (use_lists()) sort_by_cluster();
    else idx_.swap(next_);
    PassResult r;
    r.sums.resize(k * d);
    r.counts.assign(counts_.begin(), counts_.end());
    for (size_t j = 0; j < k; j++) {
      double e = sq_[j];  // sum |x - c_j|^2 = sum |x - mu|^2 - 2 (c_j - mu).S + n |c_j - mu|^2
      const double n = static_cast<double>(counts_[j]);
      for (size_t t = 0; t < d; t++) {
        const double s = sums_[j * d + t], cm = static_cast<double>(c[j * d + t]) - mu_[t];
        e += n * cm * cm - 2.0 * cm * s;
        r.sums[j * d + t] = s + n * mu_[t];
      }
      r.sse += std::max(e, 0.0);
    }
    return r;
  }

  void distances(const std::vector<float>& c, double* dist) const override {
    const size_t d = D ? D : d_;
    for (size_t i = 0; i < m_; i++) dist[pos_of_[i]] = dist2<D>(&xs_[i * d], &c[idx_[i] * d], d);
  }

  void assignment(uint32_t* idx) const override {
    for (size_t i = 0; i < m_; i++) idx[pos_of_[i]] = idx_[i];
  }

 private:
  static constexpr size_t kNeighbours = 32;
  static constexpr size_t kListSteps = 8;  // lists are rebuilt at least every kListSteps steps
  static constexpr size_t kChunk = 2048;   // points per task of full scans

  struct Move {
    size_t i;
    uint32_t from, to;
  };

  bool use_lists() const { return k_ >= 2 * kNeighbours && !lists_off_; }

  // next_ = the nearest centroid of every point, by the kernel over all centroids.
  void scan_all(const std::vector<float>& c) {
    const size_t d = D ? D : d_;
    parallel_for(pieces_of(m_, kChunk), [&](size_t q) {
      const size_t b = q * kChunk, n = std::min(m_, b + kChunk) - b;
      active_kernels().f32_kmeans_assign(&xs_[b * d], n, d, c.data(), hn_.data(), k_, &next_[b]);
    });
  }

  // next_ for centroid a's points (one block, as sorted): the kernel over a's list, then over
  // all centroids for the points too far from c_a for the list to be sure. Appends the points
  // that change centroid to `moves`; returns how many needed the full scan.
  size_t search_list(const std::vector<float>& c, size_t a, std::vector<Move>* moves) {
    const size_t d = D ? D : d_, k = k_;
    const size_t b = start_[a], n = start_[a + 1] - b;
    if (n == 0) return 0;
    thread_local std::vector<float> sub_c, sub_hn, far_rows;
    thread_local std::vector<uint32_t> got;
    thread_local std::vector<size_t> far;
    const uint32_t* list = nb_.data() + a * kNeighbours;
    sub_c.resize(kNeighbours * d);
    sub_hn.resize(kNeighbours);
    for (size_t r = 0; r < kNeighbours; r++) {
      for (size_t t = 0; t < d; t++) sub_c[r * d + t] = c[list[r] * d + t];
      sub_hn[r] = hn_[list[r]];
    }
    got.resize(n);
    const float* x = &xs_[b * d];
    const KernelTable& kt = active_kernels();
    kt.f32_kmeans_assign(x, n, d, sub_c.data(), sub_hn.data(), kNeighbours, got.data());
    far.clear();
    const float* ca = &c[a * d];
    for (size_t q = 0; q < n; q++) {
      if (4.0 * dist2<D>(x + q * d, ca, d) * (1.0 + 1e-9) <= radius2_[a]) next_[b + q] = list[got[q]];
      else far.push_back(q);
    }
    if (!far.empty()) {
      far_rows.resize(far.size() * d);
      for (size_t f = 0; f < far.size(); f++)
        for (size_t t = 0; t < d; t++) far_rows[f * d + t] = x[far[f] * d + t];
      got.resize(far.size());
      kt.f32_kmeans_assign(far_rows.data(), far.size(), d, c.data(), hn_.data(), k, got.data());
      for (size_t f = 0; f < far.size(); f++) next_[b + far[f]] = got[f];
    }
    for (size_t q = 0; q < n; q++)
      if (next_[b + q] != a) moves->push_back({b + q, static_cast<uint32_t>(a), next_[b + q]});
    return far.size();
  }

  // Adds (w = 1) or removes (w = -1) point i to or from cluster j's statistics.
  void add(size_t i, size_t j, double w) {
    const size_t d = D ? D : d_;
    double s2 = 0.0;
    for (size_t t = 0; t < d; t++) {
      const double v = static_cast<double>(xs_[i * d + t]) - mu_[t];
      sums_[j * d + t] += w * v;
      s2 += v * v;
    }
    sq_[j] += w * s2;
    counts_[j] += w > 0 ? 1 : -1;
  }

  // idx_ = next_, with the points stored by centroid (stable); start_: where each begins.
  void sort_by_cluster() {
    const size_t d = D ? D : d_;
    std::fill(start_.begin(), start_.end(), 0);
    for (size_t i = 0; i < m_; i++) start_[next_[i] + 1]++;
    for (size_t j = 0; j < k_; j++) start_[j + 1] += start_[j];
    std::vector<size_t> at(start_.begin(), start_.end() - 1);
    xs2_.resize(m_ * d);
    pos2_.resize(m_);
    for (size_t i = 0; i < m_; i++) {
      const uint32_t j = next_[i];
      const size_t q = at[j]++;
      for (size_t t = 0; t < (D ? D : d); t++) xs2_[q * d + t] = xs_[i * d + t];
      pos2_[q] = pos_of_[i];
      idx_[q] = j;
    }
    xs_.swap(xs2_);
    pos_of_.swap(pos2_);
  }

  // sort_by_cluster() when few points moved, all listed in `moves` (grouped by their old
  // centroid, in stored order): each centroid's block keeps the points that stay, in order,
  // followed by the ones that arrive, in their stored order. (A counting sort of every point
  // is bound by its chain of increments, several times slower.)
  void resort(const std::vector<std::vector<Move>>& moves) {
    const size_t d = D ? D : d_, k = k_;
    std::vector<size_t> fresh(k + 1, 0), stay(k);
    for (size_t j = 0; j < k; j++) fresh[j + 1] = start_[j + 1] - start_[j];
    for (const auto& v : moves)
      for (const Move& mv : v) {
        fresh[mv.from + 1]--;
        fresh[mv.to + 1]++;
      }
    for (size_t j = 0; j < k; j++) fresh[j + 1] += fresh[j];
    xs2_.resize(m_ * d);
    pos2_.resize(m_);
    parallel_for(k, [&](size_t j) {
      size_t q = fresh[j];
      for (size_t i = start_[j]; i < start_[j + 1]; i++) {
        if (next_[i] != j) continue;
        for (size_t t = 0; t < (D ? D : d); t++) xs2_[q * d + t] = xs_[i * d + t];
        pos2_[q++] = pos_of_[i];
      }
      stay[j] = q;
      std::fill(idx_.begin() + fresh[j], idx_.begin() + fresh[j + 1], static_cast<uint32_t>(j));
    });
    for (const auto& v : moves)
      for (const Move& mv : v) {
        const size_t q = stay[mv.to]++;
        for (size_t t = 0; t < (D ? D : d); t++) xs2_[q * d + t] = xs_[mv.i * d + t];
        pos2_[q] = pos_of_[mv.i];
      }
    start_ = fresh;
    xs_.swap(xs2_);
    pos_of_.swap(pos2_);
  }

  // The radii R_a, lowered by how far a and the other centroids moved since the lists were
  // built (radius2_: squared).
  void shrink_radii() {
    for (size_t a = 0; a < radius_.size(); a++) {
      const double r = std::max(radius_[a] - acc_[a] - accmax_, 0.0);
      radius2_[a] = r * r;
    }
  }

  // nb_: each centroid's kNeighbours nearest (itself first; ties by index); radius_: the
  // distance R_a to the next one, lowered by a relative 1e-9.
  void neighbours(const std::vector<float>& c) {
    const size_t k = k_, d = D ? D : d_;
    nb_.resize(k * kNeighbours);
    radius_.resize(k);
    radius2_.resize(k);
    parallel_for(k, [&](size_t a) {
      std::vector<std::pair<double, uint32_t>> all(k);
      for (size_t j = 0; j < k; j++)
        all[j] = {j == a ? -1.0 : dist2<D>(&c[a * d], &c[j * d], d), static_cast<uint32_t>(j)};
      std::nth_element(all.begin(), all.begin() + kNeighbours, all.end());
      std::sort(all.begin(), all.begin() + kNeighbours);
      for (size_t r = 0; r < kNeighbours; r++) nb_[a * kNeighbours + r] = all[r].second;
      radius_[a] = std::sqrt(all[kNeighbours].first) * (1.0 - 1e-9);
    });
    std::fill(acc_.begin(), acc_.end(), 0.0);
    accmax_ = 0.0;
    steps_since_lists_ = 0;
    shrink_radii();
  }

  std::vector<float> xs_, xs2_;  // the points, sorted by centroid while lists are used (xs2_: buffer)
  size_t m_, d_, k_;
  std::vector<uint32_t> idx_;          // per stored point: its centroid ...
  std::vector<uint32_t> next_;         // ... the step's new one ...
  std::vector<size_t> pos_of_, pos2_;  // ... and its index in x
  std::vector<size_t> start_;          // where each centroid's points begin
  std::vector<double> acc_;            // per centroid, its moves since the lists were built
  double accmax_ = 0.0;
  bool started_ = false;
  bool lists_off_ = false;  // the lists did not pay: full scans only
  size_t steps_since_lists_ = 0;
  size_t last_scans_ = 0;         // full scans in the last step
  size_t scans_after_build_ = 0;  // full scans in the first step after the last rebuild
  std::vector<double> mu_;         // the points' mean
  std::vector<double> sums_, sq_;  // per cluster: sum of x - mu, sum of |x - mu|^2
  std::vector<int64_t> counts_;
  std::vector<float> hn_;
  std::vector<uint32_t> nb_;
  std::vector<double> radius_, radius2_;
};

std::unique_ptr<LloydSteps> make_lloyd(const float* x, size_t m, size_t d, size_t k) {
  switch (d) {
    case 2: return std::make_unique<ListLloyd<2>>(x, m, d, k);
    case 4: return std::make_unique<ListLloyd<4>>(x, m, d, k);
    case 8: return std::make_unique<ListLloyd<8>>(x, m, d, k);
    default: return std::make_unique<ListLloyd<0>>(x, m, d, k);
  }
}

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

struct NdOutcome {
  std::vector<float> centroids;
  std::vector<double> history;
  double inertia = 0.0;
  size_t train = 0;
};

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

// Extreme magnitudes would overflow (or underflow) the float scores: such data is scaled by a
// power of two (exact) for the clustering. Returns the exponent e (x was multiplied by 2^-e).
int scale_exponent(float maxabs) {
  if (maxabs > 0x1.0p40f || maxabs < 0x1.0p-40f) return std::ilogb(maxabs);
  return 0;
}

}  // namespace

int codebook_bits(size_t k) { return k <= 16 ? 4 : k <= 256 ? 8 : 16; }

size_t codebook_code_bytes(size_t n, int bits) {
  return bits == 4 ? (n + 1) / 2 : bits == 8 ? n : 2 * n;
}

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
    kt.f32_kmeans1d_assign(x + b, e - b, &L.desc, bits, o);
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

// ---- CodebookLinear ------------------------------------------------------------------------

void pack_cb4_row(const uint8_t* codes, size_t in, size_t kp, uint8_t* dst) {
  std::memset(dst, 0, kp / 2);
  for (size_t i = 0; i < in; i++) {
    const size_t u = i / 64, w = i % 64;  // weight w of unit u: byte w % 32, nibble w / 32
    dst[u * 32 + w % 32] |= static_cast<uint8_t>((codes[i] & 15) << (4 * (w / 32)));
  }
}

namespace {

// Symmetric quantization of n values to |q| <= qmax: scale max|v| / qmax (1 for all zeros),
// q = round_half_even(v / scale). Returns false if v holds NaN or Inf.
template <typename Q>
bool quantize_sym(const float* v, size_t n, int qmax, Q* q, float* scale) {
  float mx = 0.0f;
  bool finite = true;
  for (size_t i = 0; i < n; i++) {
    finite &= std::isfinite(v[i]);
    mx = std::max(mx, std::fabs(v[i]));
  }
  if (!finite) return false;
  const float s = mx > 0.0f ? mx / static_cast<float>(qmax) : 1.0f;
  for (size_t i = 0; i < n; i++) {
    const float r = std::nearbyint(v[i] / s);
    q[i] = static_cast<Q>(std::min<float>(static_cast<float>(qmax), std::max<float>(-qmax, r)));
  }
  *scale = s;
  return true;
}

}  // namespace

CodebookLinearPlan::CodebookLinearPlan(const float* centroids, size_t k, size_t dim,
                                       const void* codes, size_t out, size_t in, const float* bias,
                                       bool precise)
    : in_(in), out_(out), kp_((in + 63) / 64 * 64), dim_(dim), k_(k), nibbles_(k <= 16 && dim == 1),
      precise_(precise || !nibbles_) {
  const size_t groups = in / dim;
  if (nibbles_ && !precise_) {
    qc8_.assign(16, 0);
    quantize_sym(centroids, k, 127, qc8_.data(), &w_scale_);
  } else {
    qc_.assign(std::max<size_t>(k, 16) * dim, 0);
    quantize_sym(centroids, k * dim, kCbMaxQ, qc_.data(), &w_scale_);
  }
  if (nibbles_) {
    packed_.assign(out * kp_ / 2, 0);
    const uint8_t* c8 = static_cast<const uint8_t*>(codes);
    for (size_t o = 0; o < out; o++) pack_cb4_row(c8 + o * in, in, kp_, &packed_[o * kp_ / 2]);
  } else {
    if (k <= 256)
      codes8_.assign(static_cast<const uint8_t*>(codes), static_cast<const uint8_t*>(codes) + out * groups);
    else
      codes16_.assign(static_cast<const uint16_t*>(codes), static_cast<const uint16_t*>(codes) + out * groups);
  }
  if (bias) bias_.assign(bias, bias + out);
}

std::vector<int16_t> CodebookLinearPlan::qcentroids() const {
  return qc8_.empty() ? qc_ : std::vector<int16_t>(qc8_.begin(), qc8_.end());
}

void CodebookLinearPlan::codes(void* out) const {
  if (!nibbles_) {
    if (codes16_.empty())
      std::memcpy(out, codes8_.data(), codes8_.size());
    else
      std::memcpy(out, codes16_.data(), codes16_.size() * sizeof(uint16_t));
    return;
  }
  uint8_t* o = static_cast<uint8_t*>(out);
  for (size_t r = 0; r < out_; r++) {  // the inverse of pack_cb4_row
    const uint8_t* row = packed_.data() + r * kp_ / 2;
    for (size_t i = 0; i < in_; i++) {
      const size_t u = i / 64, w = i % 64;
      o[r * in_ + i] = (row[u * 32 + w % 32] >> (4 * (w / 32))) & 15;
    }
  }
}

size_t CodebookLinearPlan::nbytes() const {
  return packed_.size() + codes8_.size() + codes16_.size() * 2 + qc8_.size() + qc_.size() * 2 +
         sizeof(float) + bias_.size() * sizeof(float);
}

template <typename Code>
void CodebookLinearPlan::decode_row(const Code* codes, size_t groups, int16_t* dst) const {
  const int16_t* q = qc_.data();
  switch (dim_) {
    case 1:
      for (size_t g = 0; g < groups; g++) dst[g] = q[codes[g]];
      break;
    case 2:
      for (size_t g = 0; g < groups; g++) std::memcpy(dst + 2 * g, q + 2 * size_t(codes[g]), 4);
      break;
    case 4:
      for (size_t g = 0; g < groups; g++) std::memcpy(dst + 4 * g, q + 4 * size_t(codes[g]), 8);
      break;
    default:
      for (size_t g = 0; g < groups; g++)
        std::memcpy(dst + g * dim_, q + size_t(codes[g]) * dim_, dim_ * sizeof(int16_t));
  }
}

bool CodebookLinearPlan::forward(const float* x, size_t M, float* y, Workspace* ws) const {
  if (M == 0 || out_ == 0) return true;
  const KernelTable& kt = active_kernels();
  // Activations: per row, symmetric, zero padded to kp: int8 for gemm_s8cb4s64, else int16
  // (for gemm_s16cb4s64 with the middle quarters of every 32 swapped). assign() and resize()
  // reuse the workspace's memory when it is large enough.
  const bool int8_path = !precise_;
  ws->x8.assign(int8_path ? M * kp_ : 0, 0);
  ws->x16.assign(int8_path ? 0 : M * kp_, 0);
  ws->xs.resize(M);
  ws->ok.assign(M, 1);
  int8_t* x8 = ws->x8.data();
  int16_t* x16 = ws->x16.data();
  float* xs = ws->xs.data();
  char* ok = ws->ok.data();
  for_pieces(M, std::max<size_t>(1, 8192 / std::max<size_t>(1, in_)), in_, [&](size_t, size_t b, size_t e) {
    for (size_t r = b; r < e; r++) {
      if (int8_path) {
        ok[r] = quantize_sym(x + r * in_, in_, 127, x8 + r * kp_, &xs[r]);
        continue;
      }
      int16_t* dst = x16 + r * kp_;
      ok[r] = quantize_sym(x + r * in_, in_, kCbMaxQ, dst, &xs[r]);
      if (nibbles_)  // gemm_s16cb4s64's order: swap values 8..15 and 16..23 of every 32
        for (size_t i = 0; i < kp_; i += 32) std::swap_ranges(dst + i + 8, dst + i + 16, dst + i + 16);
    }
  });
  for (size_t r = 0; r < M; r++)
    if (!ok[r]) return false;

  ws->acc.resize(M * out_);
  int64_t* acc = ws->acc.data();
  const size_t nb = nibbles_ ? 64 : 16;           // output rows per task
  const size_t mb = 64;                           // input rows per task
  const size_t ntn = (out_ + nb - 1) / nb, ntm = (M + mb - 1) / mb;
  const size_t ntasks = ntn * ntm;
  const size_t groups = in_ / dim_;
  const bool serial = static_cast<double>(M) * out_ * kp_ < 2e5 || ntasks == 1;
  // Tasks are split statically over `workers`; each worker decodes its tiles into its own
  // slice of ws->tiles (the decoded-tile path only).
  const size_t workers = serial ? 1 : std::min<size_t>(ntasks, static_cast<size_t>(num_threads()));
  const size_t tile = nibbles_ ? 0 : nb * kp_;
  ws->tiles.resize(workers * tile);
  auto task = [&](size_t t, int16_t* tile_buf) {
    const size_t m0 = (t / ntn) * mb, m1 = std::min(M, m0 + mb);
    const size_t o0 = (t % ntn) * nb, o1 = std::min(out_, o0 + nb);
    if (nibbles_ && int8_path) {
      kt.gemm_s8cb4s64(m1 - m0, o1 - o0, kp_, x8 + m0 * kp_, kp_, packed_.data() + o0 * kp_ / 2,
                       kp_ / 2, qc8_.data(), acc + m0 * out_ + o0, out_);
      return;
    }
    if (nibbles_) {
      kt.gemm_s16cb4s64(m1 - m0, o1 - o0, kp_, x16 + m0 * kp_, kp_, packed_.data() + o0 * kp_ / 2,
                        kp_ / 2, qc_.data(), acc + m0 * out_ + o0, out_);
      return;
    }
    // Decode this tile of weights to int16 (zero padded), then the dense kernel.
    std::fill(tile_buf, tile_buf + (o1 - o0) * kp_, int16_t{0});
    for (size_t o = o0; o < o1; o++) {
      int16_t* dst = tile_buf + (o - o0) * kp_;
      if (codes8_.empty())
        decode_row(codes16_.data() + o * groups, groups, dst);
      else
        decode_row(codes8_.data() + o * groups, groups, dst);
    }
    kt.gemm_s16s16s64(m1 - m0, o1 - o0, kp_, x16 + m0 * kp_, kp_, tile_buf, kp_,
                      acc + m0 * out_ + o0, out_);
  };
  auto worker = [&](size_t w) {
    int16_t* tile_buf = ws->tiles.data() + w * tile;
    for (size_t t = w * ntasks / workers; t < (w + 1) * ntasks / workers; t++) task(t, tile_buf);
  };
  if (workers == 1) {
    worker(0);
  } else {
    parallel_for(workers, worker);
  }
  const double wsc = w_scale_;
  for_pieces(M, std::max<size_t>(1, 8192 / out_), out_, [&](size_t, size_t b, size_t e) {
    for (size_t r = b; r < e; r++) {
      const double s = static_cast<double>(xs[r]) * wsc;
      for (size_t o = 0; o < out_; o++) {
        float v = static_cast<float>(static_cast<double>(acc[r * out_ + o]) * s);
        if (!bias_.empty()) v += bias_[o];
        y[r * out_ + o] = v;
      }
    }
  });
  return true;
}

}  // namespace lowbit
