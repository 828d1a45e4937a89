// k-means kernels of every kernel set this CPU runs against the scalar references, bit for bit
// (and against direct computations); the drivers give identical results on every kernel set and
// thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "harness.h"
#include "kernel_sets.h"
#include "lowbit/kmeans.h"
#include "lowbit/runtime.h"

using namespace lowbit;
using lbtest::for_each_simd;
using lbtest::gaussian;

namespace {

std::vector<float> half_norms(const std::vector<float>& c, size_t k, size_t d) {
  std::vector<float> hn(k);
  for (size_t j = 0; j < k; j++) {
    double s = 0;
    for (size_t t = 0; t < d; t++) s += double(c[j * d + t]) * c[j * d + t];
    hn[j] = float(0.5 * s);
  }
  return hn;
}

// The lookup table of the 1-D kernel, built the way the driver does (or deliberately weak).
struct Lut {
  std::vector<float> t;
  std::vector<uint32_t> lut;
  Kmeans1dLut desc;
};

Lut make_lut(std::vector<float> t, uint32_t nbins, bool zero_table) {
  Lut L;
  L.t = std::move(t);
  std::sort(L.t.begin(), L.t.end());
  const double range = double(L.t.back()) - L.t.front();
  L.desc.lo = L.t.front();
  L.desc.inv_w = range > 0 ? float(nbins / range) : 0.0f;
  L.desc.nbins = nbins;
  L.desc.nt = uint32_t(L.t.size());
  L.lut.assign(nbins, 0x80000000u);  // weak: start at 0 everywhere, always step
  if (!zero_table) {  // lut[g] = #{j : bin(t[j]) < g}, flagged where a threshold falls
    std::vector<uint32_t> cnt(nbins, 0);
    const float top = float(nbins - 1);
    for (float v : L.t) {
      float b = (v - L.desc.lo) * L.desc.inv_w;
      b = b > 0.0f ? b : 0.0f;
      b = b < top ? b : top;
      cnt[uint32_t(b)]++;
    }
    uint32_t acc = 0;
    for (uint32_t g = 0; g < nbins; g++) {
      L.lut[g] = acc | (cnt[g] ? 0x80000000u : 0u);
      acc += cnt[g];
    }
  }
  L.desc.t = L.t.data();
  L.desc.lut = L.lut.data();
  return L;
}

uint32_t code_of(const std::vector<uint8_t>& out, int bits, size_t i) {
  if (bits == 4) return (out[i / 2] >> ((i & 1) * 4)) & 15u;
  if (bits == 8) return out[i];
  uint16_t v;
  std::memcpy(&v, &out[2 * i], 2);
  return v;
}

const std::vector<size_t> kCounts = {0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000};

}  // namespace

TEST(kmeans_assign_matches_scalar) {
  std::mt19937 rng(11);
  for_each_simd([&](const KernelTable& r, const KernelTable& s) {
    for (size_t d : {1, 2, 3, 4, 5, 8, 16})
      for (size_t k : {1, 2, 3, 16, 17, 256})
        for (size_t n : {size_t(0), size_t(1), size_t(31), size_t(64), size_t(65), size_t(257)}) {
          auto x = gaussian(n * d, rng);
          auto c = gaussian(k * d, rng);
          if (k > 2) std::memcpy(&c[2 * d], &c[0], d * 4);  // equal centroids: the lower wins
          if (n > 3 && k > 1) std::memcpy(&x[3 * d], &c[d], d * 4);  // a point on a centroid
          for (size_t i = 0; i < n * d; i += 11) x[i] = -0.0f;
          const auto hn = half_norms(c, k, d);
          std::vector<uint32_t> a(n, 99), b(n, 77);
          r.f32_u32_kmeans_assign(x.data(), n, d, c.data(), hn.data(), k, a.data());
          s.f32_u32_kmeans_assign(x.data(), n, d, c.data(), hn.data(), k, b.data());
          CHECK(a == b, "%s d=%zu k=%zu n=%zu", s.isa, d, k, n);
          for (size_t i = 0; i < n; i++) CHECK(a[i] < k && (k <= 2 || a[i] != 2), "index range");
        }
  });
}

TEST(kmeans_assign_scalar_is_nearest) {
  // The scores are |c|^2/2 - x.c: the argmin is the nearest centroid up to rounding.
  std::mt19937 rng(12);
  const size_t n = 500, d = 3, k = 20;
  auto x = gaussian(n * d, rng), c = gaussian(k * d, rng);
  const auto hn = half_norms(c, k, d);
  std::vector<uint32_t> a(n);
  kernel_table("scalar")->f32_u32_kmeans_assign(x.data(), n, d, c.data(), hn.data(), k, a.data());
  for (size_t i = 0; i < n; i++) {
    double best = INFINITY;
    for (size_t j = 0; j < k; j++) {
      double s = 0;
      for (size_t t = 0; t < d; t++) s += std::pow(double(x[i * d + t]) - c[j * d + t], 2);
      best = std::min(best, s);
    }
    double got = 0;
    for (size_t t = 0; t < d; t++) got += std::pow(double(x[i * d + t]) - c[a[i] * d + t], 2);
    CHECK(got <= best + 1e-5, "point %zu: %g vs nearest %g", i, got, best);
  }
}

TEST(kmeans1d_assign_matches_scalar_and_counts) {
  std::mt19937 rng(13);
  for (const auto& isa : supported_isas()) {
    const KernelTable& s = *kernel_table(isa);
    const KernelTable& r = *kernel_table("scalar");
    for (size_t nt : {1, 2, 15, 255, 1000})
      for (bool weak : {false, true})
        for (int bits : {4, 8, 16}) {
          if ((bits == 4 && nt > 15) || (bits == 8 && nt > 255)) continue;
          auto t = gaussian(nt, rng);
          if (nt > 4) t[3] = t[2];  // a repeated threshold
          Lut L = make_lut(t, uint32_t(std::max<size_t>(16, 8 * nt)), weak);
          for (size_t n : kCounts) {
            auto x = gaussian(n, rng, 1.5f);
            for (size_t i = 0; i < n; i += 5) x[i] = L.t[i % nt];  // exactly on thresholds
            if (n > 7) x[7] = 1e30f, x[6] = -1e30f;
            const size_t bytes = codebook_code_bytes(n, bits) + 1;
            std::vector<uint8_t> a(bytes, 0xAB), b(bytes, 0xAB);
            r.f32_code_kmeans1d_assign(x.data(), n, &L.desc, bits, a.data());
            s.f32_code_kmeans1d_assign(x.data(), n, &L.desc, bits, b.data());
            CHECK(a == b, "%s nt=%zu bits=%d n=%zu weak=%d", s.isa, nt, bits, n, int(weak));
            for (size_t i = 0; i < n; i++) {
              const uint32_t want = uint32_t(std::upper_bound(L.t.begin(), L.t.end(), x[i]) - L.t.begin());
              CHECK(code_of(b, bits, i) == want, "%s code of x=%g: %u, want %u", s.isa, x[i],
                    code_of(b, bits, i), want);
            }
            CHECK(b[bytes - 1] == 0xAB, "%s wrote past the end", s.isa);
          }
        }
  }
}

TEST(kmeans_drivers_same_on_every_isa_and_thread_count) {
  std::mt19937 rng(16);
  struct Case { size_t n, d, k; KmeansInit init; };
  const Case cases[] = {{5000, 1, 16, KmeansInit::kmeanspp}, {3000, 1, 256, KmeansInit::random},
                        {2000, 1, 300, KmeansInit::linear},  {4000, 2, 16, KmeansInit::kmeanspp},
                        {3000, 4, 64, KmeansInit::random},   {2500, 3, 20, KmeansInit::linear}};
  for (const Case& cs : cases) {
    auto x = gaussian(cs.n * cs.d, rng);
    const size_t bytes = codebook_code_bytes(cs.n, codebook_bits(cs.k));
    std::vector<uint8_t> c0(bytes), c1(bytes);
    auto run = [&](std::vector<uint8_t>& codes) {
      return cs.d == 1 ? kmeans_1d(x.data(), cs.n, cs.k, 25, cs.init, 7, codes.data())
                       : kmeans_nd(x.data(), cs.n, cs.d, cs.k, 25, cs.init, 7, 1000, codes.data());
    };
    set_isa("scalar");
    set_num_threads(1);
    const KmeansResult r0 = run(c0);
    CHECK(r0.error.empty() && !r0.nonfinite, "n=%zu d=%zu: %s", cs.n, cs.d, r0.error.c_str());
    for (size_t i = 1; i < r0.history.size(); i++)
      CHECK(r0.history[i] <= r0.history[i - 1], "objective increased at step %zu", i);
    std::vector<float> dec(cs.n * cs.d), dec1(cs.n * cs.d);
    codebook_decode(c0.data(), codebook_bits(cs.k), cs.n, r0.centroids.data(), cs.k, cs.d, dec.data());
    double sse = 0;
    for (size_t i = 0; i < cs.n * cs.d; i++) sse += std::pow(double(x[i]) - dec[i], 2);
    CHECK(std::fabs(sse - r0.inertia) <= 1e-6 * sse + 1e-9, "inertia %g vs decoded %g", r0.inertia, sse);
    for (const auto& isa : supported_isas())
      for (int t : {1, 2, 3}) {
        set_isa(isa);
        set_num_threads(t);
        const KmeansResult r1 = run(c1);
        CHECK(c0 == c1 && r0.centroids == r1.centroids && r0.history == r1.history,
              "%s threads=%d n=%zu d=%zu k=%zu", isa.c_str(), t, cs.n, cs.d, cs.k);
        codebook_decode(c1.data(), codebook_bits(cs.k), cs.n, r1.centroids.data(), cs.k, cs.d, dec1.data());
        CHECK(dec == dec1, "%s decode", isa.c_str());
      }
  }
  set_isa(supported_isas().back());
  set_num_threads(2);
}

TEST(kmeans_1d_matches_exact_dp_on_small_inputs) {
  std::mt19937 rng(17);
  for (int trial = 0; trial < 20; trial++) {
    const size_t n = 20 + rng() % 60, k = 2 + rng() % 8;
    auto x = gaussian(n, rng);
    for (size_t i = 0; i < n; i += 7) x[i] = x[0];  // repeats
    std::vector<double> s(x.begin(), x.end());
    std::sort(s.begin(), s.end());
    // O(k n^2) dynamic program over the sorted values.
    std::vector<double> P(n + 1, 0), Q(n + 1, 0);
    for (size_t i = 0; i < n; i++) P[i + 1] = P[i] + s[i], Q[i + 1] = Q[i] + s[i] * s[i];
    auto cost = [&](size_t a, size_t b) {
      const double w = double(b - a), m = (P[b] - P[a]) / w;
      return std::max(0.0, Q[b] - Q[a] - w * m * m);
    };
    std::vector<std::vector<double>> D(k + 1, std::vector<double>(n + 1, INFINITY));
    D[0][0] = 0;
    for (size_t j = 1; j <= k; j++)
      for (size_t i = j; i <= n; i++)
        for (size_t l = j - 1; l < i; l++) D[j][i] = std::min(D[j][i], D[j - 1][l] + cost(l, i));
    std::vector<uint8_t> codes(codebook_code_bytes(n, 4));
    const KmeansResult r = kmeans_1d(x.data(), n, k, 25, KmeansInit::automatic, trial, codes.data());
    if (!r.error.empty()) continue;  // fewer distinct values than k
    CHECK(r.inertia <= D[k][n] * (1 + 1e-6) + 1e-9, "n=%zu k=%zu: %g > optimum %g", n, k, r.inertia, D[k][n]);
  }
}

