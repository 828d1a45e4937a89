// Codebook kernels (decode lookups, codebook GEMMs) of every kernel set this CPU runs against the
// scalar references, bit for bit (and against direct computations); CodebookLinearPlan gives
// identical results on every kernel set and thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "harness.h"
#include "kernel_sets.h"
#include "lowbit/codebook_linear.h"
#include "lowbit/runtime.h"

using namespace lowbit;
using lbtest::for_each_simd;
using lbtest::gaussian;

namespace {

const std::vector<size_t> kCounts = {0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000};

// The activations' rule, written out: symmetric per row, s = max|x| / qmax (1 if all zero),
// q = clamp(round_half_even(x / s)).
std::vector<int64_t> quantize_row_ref(const float* xr, size_t n, int qmax, float* s) {
  float mx = 0.0f;
  for (size_t i = 0; i < n; i++) mx = std::max(mx, std::fabs(xr[i]));
  *s = mx > 0.0f ? mx / float(qmax) : 1.0f;
  std::vector<int64_t> q(n);
  for (size_t i = 0; i < n; i++)
    q[i] = int64_t(std::min<float>(float(qmax), std::max<float>(-qmax, std::nearbyint(xr[i] / *s))));
  return q;
}

}  // namespace

TEST(lookups_match_scalar_and_table) {
  std::mt19937 rng(14);
  for_each_simd([&](const KernelTable& r, const KernelTable& s) {
    for (size_t d : {1, 2, 3, 4, 8, 16})
      for (size_t n : kCounts) {
        auto table = gaussian(65536 * std::min<size_t>(d, 2), rng);
        std::vector<uint8_t> c8(n), c4((n + 1) / 2);
        std::vector<uint16_t> c16(n);
        for (size_t i = 0; i < n; i++) {
          c8[i] = uint8_t(rng());
          c16[i] = uint16_t(rng() % (d <= 2 ? 65536 : 8192));
        }
        for (auto& v : c4) v = uint8_t(rng());
        std::vector<float> a(n * d + 1, 7.0f), b(n * d + 1, 7.0f);
        for (int flags : {0, kLookupStream})
          for (size_t off : {size_t(0), size_t(1)}) {  // streaming needs aligning: try both
            std::vector<float> bb(n * d + 2, 7.0f);
            float* bp = bb.data() + off;
            r.u4_f32_lookup(c4.data(), n, table.data(), d, a.data(), 0);
            s.u4_f32_lookup(c4.data(), n, table.data(), d, bp, flags);
            CHECK(std::memcmp(a.data(), bp, n * d * 4) == 0, "%s u4 d=%zu n=%zu", s.isa, d, n);
            for (size_t i = 0; i < n; i++)
              CHECK(bp[i * d] == table[((c4[i / 2] >> ((i & 1) * 4)) & 15) * d], "u4 value");
            r.u8_f32_lookup(c8.data(), n, table.data(), d, a.data(), 0);
            s.u8_f32_lookup(c8.data(), n, table.data(), d, bp, flags);
            CHECK(std::memcmp(a.data(), bp, n * d * 4) == 0, "%s u8 d=%zu n=%zu", s.isa, d, n);
            for (size_t i = 0; i < n; i++) CHECK(bp[i * d + d - 1] == table[c8[i] * d + d - 1], "u8 value");
            r.u16_f32_lookup(c16.data(), n, table.data(), d, a.data(), 0);
            s.u16_f32_lookup(c16.data(), n, table.data(), d, bp, flags);
            CHECK(std::memcmp(a.data(), bp, n * d * 4) == 0, "%s u16 d=%zu n=%zu", s.isa, d, n);
            CHECK(bp[n * d] == 7.0f && (off == 0 || bb[0] == 7.0f), "%s wrote out of bounds", s.isa);
            b.assign(bp, bp + n * d + 1);
          }
        CHECK(b[n * d] == 7.0f, "%s wrote past the end", s.isa);
      }
  });
}

TEST(codebook_gemm_exact) {
  std::mt19937 rng(15);
  for (const auto& isa : supported_isas()) {
    const KernelTable& k = *kernel_table(isa);
    for (size_t in : {1, 63, 64, 65, 600, 4100})
      for (size_t mr : {1, 3, 4, 5})
        for (size_t nr : {1, 2, 3, 5, 9}) {
          const size_t kp = (in + 63) / 64 * 64;
          // Extremes: every product at the bound (an overflow or a saturation would show).
          const bool extreme = in == 4100;
          std::vector<int8_t> x8(mr * kp, 0), table(16);
          std::vector<int16_t> x16(mr * kp, 0), x16s(mr * kp, 0), dense(nr * kp, 0), table16(16);
          std::vector<uint8_t> codes(nr * in), packed(nr * kp / 2);
          for (auto& v : table) v = int8_t(extreme ? -127 : int(rng() % 255) - 127);
          for (size_t r = 0; r < mr; r++)
            for (size_t i = 0; i < in; i++) {
              x8[r * kp + i] = int8_t(extreme ? (i % 2 ? 127 : -127) : int(rng() % 255) - 127);
              x16[r * kp + i] = int16_t(extreme ? -kCbMaxQ : int(rng() % 8191) - 4095);
            }
          if (extreme) table[5] = 127;
          for (auto& v : table16) v = int16_t(extreme ? kCbMaxQ : int(rng() % 8191) - 4095);
          for (size_t r = 0; r < mr; r++)  // x16 with the middle quarters of every 32 swapped
            for (size_t i = 0; i < kp; i++) {
              const size_t j = i % 32, pj = (j >= 8 && j < 16) ? j + 8 : (j >= 16 && j < 24) ? j - 8 : j;
              x16s[r * kp + i - j + pj] = x16[r * kp + i];
            }
          for (size_t c = 0; c < nr; c++) {
            for (size_t i = 0; i < in; i++) {
              codes[c * in + i] = uint8_t(extreme ? (i % 2 ? 0 : 5) : rng() % 16);
              dense[c * kp + i] = int16_t(extreme ? -kCbMaxQ : int(rng() % 8191) - 4095);
            }
            pack_cb4_row(&codes[c * in], in, kp, &packed[c * kp / 2]);
          }
          std::vector<int64_t> want8(mr * nr), want16(mr * nr), wantc(mr * nr);
          std::vector<int64_t> a(mr * nr, -1), b(mr * nr, -1), d(mr * nr, -1);
          for (size_t r = 0; r < mr; r++)
            for (size_t c = 0; c < nr; c++) {
              int64_t s8 = 0, s16 = 0, sc = 0;
              for (size_t i = 0; i < in; i++) {
                s8 += int64_t(x8[r * kp + i]) * table[codes[c * in + i]];
                s16 += int64_t(x16[r * kp + i]) * dense[c * kp + i];
                sc += int64_t(x16[r * kp + i]) * table16[codes[c * in + i]];
              }
              want8[r * nr + c] = s8;
              want16[r * nr + c] = s16;
              wantc[r * nr + c] = sc;
            }
          if (extreme) CHECK(want8[0] == -int64_t(in) * 127 * 127, "setup %lld", (long long)want8[0]);
          k.s8cb4_s64_gemm(mr, nr, kp, x8.data(), kp, packed.data(), kp / 2, table.data(), a.data(), nr);
          k.s16s16_s64_gemm(mr, nr, kp, x16.data(), kp, dense.data(), kp, b.data(), nr);
          CHECK(a == want8, "%s cb4 in=%zu mr=%zu nr=%zu", k.isa, in, mr, nr);
          CHECK(b == want16, "%s dense in=%zu mr=%zu nr=%zu", k.isa, in, mr, nr);
          k.s16cb4_s64_gemm(mr, nr, kp, x16s.data(), kp, packed.data(), kp / 2, table16.data(), d.data(), nr);
          CHECK(d == wantc, "%s cb4 int16 in=%zu mr=%zu nr=%zu", k.isa, in, mr, nr);
        }
  }
}

TEST(codebook_linear_same_on_every_isa) {
  std::mt19937 rng(18);
  for (size_t dim : {1, 2})
    for (size_t k : {16, 40})
      for (bool precise : {false, true}) {
        const size_t out = 37, in = 130, M = 6;
        auto cent = gaussian(k * dim, rng);
        std::vector<uint8_t> codes(out * in / dim);
        for (auto& c : codes) c = uint8_t(rng() % k);
        auto bias = gaussian(out, rng);
        CodebookLinearPlan plan(cent.data(), k, dim, codes.data(), out, in, bias.data(), precise);
        CHECK(plan.precise() == (precise || k > 16 || dim > 1), "precision");
        auto x = gaussian(M * in, rng);
        std::vector<float> y0(M * out), y1(M * out);
        set_isa("scalar");
        CHECK(plan.forward(x.data(), M, y0.data()), "finite");
        // Against the float product with the decoded weight: 8-bit activations and centroids
        // (the int8 4-bit path), else 13-bit.
        const double tol = plan.precise() ? 2e-3 : 2e-2;
        for (size_t r = 0; r < M; r++)
          for (size_t o = 0; o < out; o++) {
            double s = bias[o], mag = std::fabs(bias[o]);
            for (size_t i = 0; i < in; i++) {
              const double w = cent[codes[o * in / dim + i / dim] * dim + i % dim];
              s += double(x[r * in + i]) * w;
              mag += std::fabs(double(x[r * in + i]) * w);
            }
            CHECK(std::fabs(y0[r * out + o] - s) <= tol * mag + 1e-6, "y %g vs %g", y0[r * out + o], s);
          }
        for (const auto& isa : supported_isas())
          for (int t : {1, 2}) {
            set_isa(isa);
            set_num_threads(t);
            CHECK(plan.forward(x.data(), M, y1.data()), "finite");
            CHECK(y0 == y1, "%s threads=%d dim=%zu k=%zu precise=%d", isa.c_str(), t, dim, k, int(precise));
          }
        x[5] = NAN;
        CHECK(!plan.forward(x.data(), M, y1.data()), "NaN not reported");
      }
  set_isa(supported_isas().back());
  set_num_threads(2);
}

// The forward on the GEMM grid (several row and column blocks, per-worker decoded tiles, a
// workspace reused across sizes) against an integer reference written here: the activations
// quantized as the plan states (symmetric per row, round half to even), exact int64 sums with
// the plan's quantized centroids, y = float(acc * (x_scale * w_scale)) + bias. Bit for bit, on
// every kernel set and thread count.
TEST(codebook_linear_grid_matches_integer_reference) {
  std::mt19937 rng(19);
  struct Case { size_t k, dim; bool precise; size_t out, in; };
  const Case cases[] = {{16, 1, false, 200, 200}, {16, 1, true, 130, 100}, {300, 2, false, 70, 96},
                        {40, 1, false, 3, 70}};
  for (const Case& cs : cases) {
    auto cent = gaussian(cs.k * cs.dim, rng);
    const size_t groups = cs.in / cs.dim;
    std::vector<uint16_t> codes(cs.out * groups);
    for (auto& c : codes) c = uint16_t(rng() % cs.k);
    std::vector<uint8_t> codes8(codes.begin(), codes.end());
    const void* cp = cs.k > 256 ? static_cast<const void*>(codes.data()) : codes8.data();
    auto bias = gaussian(cs.out, rng);
    CodebookLinearPlan plan(cent.data(), cs.k, cs.dim, cp, cs.out, cs.in, bias.data(), cs.precise);
    const std::vector<int16_t> qc = plan.qcentroids();
    const int qmax = plan.precise() ? kCbMaxQ : 127;
    CodebookLinearPlan::Workspace ws;
    for (size_t M : {300, 1, 64, 5}) {  // the largest first: later calls reuse the workspace
      auto x = gaussian(M * cs.in, rng);
      x[0] = 0.0f;
      std::vector<float> want(M * cs.out), y(M * cs.out);
      for (size_t r = 0; r < M; r++) {
        const float* xr = &x[r * cs.in];
        float s;
        const std::vector<int64_t> q = quantize_row_ref(xr, cs.in, qmax, &s);
        const double scale = double(s) * double(plan.weight_scale());
        for (size_t o = 0; o < cs.out; o++) {
          int64_t acc = 0;
          for (size_t i = 0; i < cs.in; i++)
            acc += q[i] * qc[size_t(codes[o * groups + i / cs.dim]) * cs.dim + i % cs.dim];
          want[r * cs.out + o] = float(double(acc) * scale) + bias[o];
        }
      }
      for (const auto& isa : supported_isas())
        for (int t : {1, 2, 3}) {
          set_isa(isa);
          set_num_threads(t);
          std::fill(y.begin(), y.end(), -1.0f);
          CHECK(plan.forward(x.data(), M, y.data(), &ws), "finite");
          CHECK(std::memcmp(y.data(), want.data(), y.size() * 4) == 0,
                "%s threads=%d k=%zu dim=%zu precise=%d M=%zu", isa.c_str(), t, cs.k, cs.dim,
                int(cs.precise), M);
        }
      x[(M - 1) * cs.in + cs.in / 2] = INFINITY;  // in the last row block
      CHECK(!plan.forward(x.data(), M, y.data(), &ws), "Inf not reported (M=%zu)", M);
    }
  }
  set_isa(supported_isas().back());
  set_num_threads(2);
}

// Per-row tables (CodebookLinear(per_row=True)) and outliers in a sparse side matrix, against an
// integer reference written here: acc with each row's own table, y = float(double(acc) *
// (double(x_scale) * double(row_scale)) + sum_j double(x[col_j]) * delta_j) + bias, delta_j =
// value_j - table entry * row scale at that position (float). Bit for bit on every kernel set
// and thread count.
TEST(codebook_linear_per_row_and_outliers_match_reference) {
  std::mt19937 rng(20);
  struct Case { size_t k; bool precise; size_t out, in; bool sparse; };
  const Case cases[] = {{16, false, 150, 200, false}, {16, false, 70, 130, true},
                        {16, true, 33, 100, true}, {40, false, 21, 70, true}, {200, true, 9, 64, false}};
  for (const Case& cs : cases) {
    const int qmax = (cs.k <= 16 && !cs.precise) ? 127 : kCbMaxQ;
    std::vector<int16_t> qt(cs.out * cs.k);
    for (auto& q : qt) q = int16_t(int(rng() % (2 * qmax + 1)) - qmax);
    std::vector<float> scales(cs.out);
    for (auto& s : scales) s = std::exp(gaussian(1, rng)[0] * 3.0f) * 1e-3f;
    std::vector<uint8_t> codes(cs.out * cs.in);
    for (auto& c : codes) c = uint8_t(rng() % cs.k);
    auto bias = gaussian(cs.out, rng);
    CodebookLinearPlan plan(CodebookLinearPlan::PerRow{}, qt.data(), scales.data(), cs.k,
                            codes.data(), cs.out, cs.in, bias.data(), cs.precise);
    CHECK(plan.per_row() && plan.precise() == (cs.precise || cs.k > 16), "flags");
    std::vector<int32_t> ptr(cs.out + 1, 0), cols;
    std::vector<float> vals;
    if (cs.sparse) {
      for (size_t o = 0; o < cs.out; o++) {
        for (size_t i = 0; i < cs.in; i++)
          if (rng() % 50 == 0) {
            cols.push_back(int32_t(i));
            vals.push_back(gaussian(1, rng)[0] * 10.0f);
          }
        ptr[o + 1] = int32_t(cols.size());
      }
      plan.set_outliers(ptr.data(), cols.data(), vals.data(), vals.size());
    }
    CHECK(plan.nbytes() == (cs.k <= 16 ? cs.out * ((cs.in + 63) / 64 * 32) : cs.out * cs.in) +
                               cs.out * (cs.k <= 16 ? 16 * (cs.precise ? 2 : 1) : 2 * cs.k) +
                               8 * cs.out + (cs.sparse ? 4 * (cs.out + 1) + 12 * vals.size() : 0),
          "nbytes %zu", plan.nbytes());
    CodebookLinearPlan::Workspace ws;
    for (size_t M : {70, 1, 5}) {
      auto x = gaussian(M * cs.in, rng);
      std::vector<float> want(M * cs.out), y(M * cs.out);
      for (size_t r = 0; r < M; r++) {
        const float* xr = &x[r * cs.in];
        float s;
        const std::vector<int64_t> q = quantize_row_ref(xr, cs.in, qmax, &s);
        for (size_t o = 0; o < cs.out; o++) {
          int64_t acc = 0;
          for (size_t i = 0; i < cs.in; i++) acc += q[i] * qt[o * cs.k + codes[o * cs.in + i]];
          double d = double(acc) * (double(s) * double(scales[o]));
          if (cs.sparse)
            for (int32_t j = ptr[o]; j < ptr[o + 1]; j++) {
              const float dense = float(qt[o * cs.k + codes[o * cs.in + cols[j]]]) * scales[o];
              d += double(xr[cols[j]]) * double(vals[j] - dense);
            }
          want[r * cs.out + o] = float(d) + bias[o];
        }
      }
      for (const auto& isa : supported_isas())
        for (int t : {1, 2, 3}) {
          set_isa(isa);
          set_num_threads(t);
          CHECK(plan.forward(x.data(), M, y.data(), &ws), "finite");
          CHECK(std::memcmp(y.data(), want.data(), y.size() * 4) == 0,
                "%s threads=%d k=%zu precise=%d sparse=%d M=%zu", isa.c_str(), t, cs.k,
                int(cs.precise), int(cs.sparse), M);
        }
    }
  }
  set_isa(supported_isas().back());
  set_num_threads(2);
}
