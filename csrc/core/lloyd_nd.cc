// Lloyd's assignment steps for N-D k-means (lloyd_nd.h): a full pass of the dispatched
// kernel, and ListLloyd, which searches each point's neighbourhood only once the centroids
// settle.
#include "core/lloyd_nd.h"

#include <cmath>
#include <numeric>

#include "core/kmeans_internal.h"

namespace lowbit {
namespace internal {
namespace {

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

}  // namespace

PassResult assign_pass(const float* x, size_t m, size_t d, const std::vector<float>& c, size_t k,
                       uint32_t* idx) {
  const KernelTable& kt = active_kernels();
  const std::vector<float> hn = half_norms(c, k, d);
  const size_t piece = std::max<size_t>(4096, (2 * k * d + 31) / 32 * 32);
  const size_t np = pieces_of(m, piece);
  std::vector<double> psums(np * k * d, 0.0), psse(np, 0.0);
  std::vector<uint64_t> pcounts(np * k, 0);
  for_pieces(m, piece, k * d, [&](size_t p, size_t b, size_t e) {
    kt.f32_u32_kmeans_assign(x + b * d, e - b, d, c.data(), hn.data(), k, idx + b);
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

namespace {

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
      active_kernels().f32_u32_kmeans_assign(&xs_[b * d], n, d, c.data(), hn_.data(), k_, &next_[b]);
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
    kt.f32_u32_kmeans_assign(x, n, d, sub_c.data(), sub_hn.data(), kNeighbours, got.data());
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
      kt.f32_u32_kmeans_assign(far_rows.data(), far.size(), d, c.data(), hn_.data(), k, got.data());
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

}  // namespace

std::unique_ptr<LloydSteps> make_lloyd(const float* x, size_t m, size_t d, size_t k) {
  switch (d) {
    case 2: return std::make_unique<ListLloyd<2>>(x, m, d, k);
    case 4: return std::make_unique<ListLloyd<4>>(x, m, d, k);
    case 8: return std::make_unique<ListLloyd<8>>(x, m, d, k);
    default: return std::make_unique<ListLloyd<0>>(x, m, d, k);
  }
}

}  // namespace internal
}  // namespace lowbit
