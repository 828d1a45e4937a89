// 4-bit weights in groups (lowbit/int4_linear.h): the SIMD tiles equal the scalar oracle bit for
// bit, packing round-trips, and the layer equals a float64 reference within its rounding, the
// same on every kernel set and thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "harness.h"
#include "kernel_sets.h"
#include "lowbit/int4_linear.h"
#include "lowbit/runtime.h"

using namespace lowbit;
using lbtest::for_each_simd;

namespace {

// binary16 bits of a positive normal value in [2^-6, 2), rounded down (enough for test scales).
uint16_t to_half(float v) {
  int e;
  const float m = std::frexp(v, &e);  // v = m 2^e, m in [0.5, 1)
  const uint32_t mant = static_cast<uint32_t>((m * 2.0f - 1.0f) * 1024.0f);
  return static_cast<uint16_t>(((e - 1 + 15) << 10) | mant);
}
float from_half(uint16_t h) { return std::ldexp(float((h & 0x3FF) | 0x400), ((h >> 10) & 31) - 25); }

struct Layer {
  size_t N, K, group;
  std::vector<uint8_t> u, zero;
  std::vector<uint16_t> scale;
  std::vector<float> col_scale, bias;
};

Layer random_layer(size_t N, size_t K, size_t group, std::mt19937& rng, bool extreme = false) {
  Layer L{N, K, group, {}, {}, {}, {}, {}};
  const size_t G = (K + group - 1) / group;
  L.u.resize(N * K);
  L.zero.resize(N * G);
  L.scale.resize(N * G);
  L.col_scale.resize(N);
  L.bias.resize(N);
  for (auto& v : L.u) v = static_cast<uint8_t>(extreme ? 15 : rng() % 16);
  for (auto& v : L.zero) v = static_cast<uint8_t>(extreme ? 0 : rng() % 16);
  std::uniform_real_distribution<float> uni(0.05f, 1.0f);
  for (auto& v : L.scale) v = to_half(uni(rng));
  for (auto& v : L.col_scale) v = uni(rng) * 0.01f;
  for (auto& v : L.bias) v = uni(rng) - 0.5f;
  return L;
}

double dequantized(const Layer& L, size_t n, size_t k) {
  const size_t G = (L.K + L.group - 1) / L.group, g = k / L.group;
  return double(L.col_scale[n]) * from_half(L.scale[n * G + g]) * (double(L.u[n * L.K + k]) - L.zero[n * G + g]);
}

// x (M x K) W^T + bias in float64 with the dequantized weights and x unquantized.
std::vector<double> reference(const Layer& L, const std::vector<float>& x, size_t M) {
  std::vector<double> y(M * L.N);
  for (size_t m = 0; m < M; m++)
    for (size_t n = 0; n < L.N; n++) {
      double r = L.bias[n];
      for (size_t k = 0; k < L.K; k++) r += dequantized(L, n, k) * x[m * L.K + k];
      y[m * L.N + n] = r;
    }
  return y;
}

// How far the layer may be from the reference: x's int8 rounding, half a step of max|x| / 127 on
// every weight, plus float rounding.
std::vector<double> error_bounds(const Layer& L, const std::vector<float>& x, size_t M) {
  std::vector<double> b(M * L.N);
  for (size_t m = 0; m < M; m++) {
    double amax = 0;
    for (size_t k = 0; k < L.K; k++) amax = std::max(amax, double(std::fabs(x[m * L.K + k])));
    for (size_t n = 0; n < L.N; n++) {
      double mag = 0;
      for (size_t k = 0; k < L.K; k++) mag += std::fabs(dequantized(L, n, k));
      b[m * L.N + n] = mag * amax / 254.0 + 1e-4;
    }
  }
  return b;
}

}  // namespace

TEST(int4_tiles_match_scalar) {
  std::mt19937 rng(31);
  for (size_t group : {4, 8, 32, 64, 128, 256, 512})
    for (size_t G : {1, 3})
      for (size_t nc : {1, 9, 16})
        for (size_t mr : {1, 2, 3, 4})
          for (int extreme : {0, 1}) {
            const size_t kp = G * group;
            Layer L = random_layer(16, kp, group, rng, extreme);
            const Int4Weights w = pack_int4(L.u.data(), L.zero.data(), L.scale.data(),
                                            L.col_scale.data(), 16, kp, group);
            std::vector<int8_t> a(mr * kp);
            for (auto& v : a) v = static_cast<int8_t>(extreme ? -128 : int(rng() % 256) - 128);
            std::vector<int32_t> asum(mr * G, 0);
            for (size_t r = 0; r < mr; r++)
              for (size_t k = 0; k < kp; k++) asum[r * G + k / group] += a[r * kp + k];
            std::vector<float> as(mr, 0.013f);
            Int4Tile t{};
            t.mr = mr;
            t.nc = nc;
            t.kp = kp;
            t.group = group;
            t.ngroups = G;
            t.a = a.data();
            t.lda = kp;
            t.b = w.codes.data();
            t.zero = w.zero.data();
            t.scale = w.scale.data();
            t.asum = asum.data();
            t.a_scale = as.data();
            t.col_scale = w.col_scale.data();
            t.bias = extreme ? nullptr : L.bias.data();
            t.ldo = 16;
            std::vector<float> want(mr * 16, -7.0f);
            t.out = want.data();
            kernel_table("scalar")->s8q4_f32_gemm(t);
            // the oracle against the definition, in double (exact here: small integer sums)
            bool ok = true;
            for (size_t r = 0; r < mr && ok; r++)
              for (size_t j = 0; j < nc; j++) {
                double y = 0;
                for (size_t g = 0; g < G; g++) {
                  int64_t s = 0;
                  for (size_t k = g * group; k < (g + 1) * group; k++) s += int64_t(L.u[j * kp + k]) * a[r * kp + k];
                  y += double(from_half(L.scale[j * G + g])) * double(s - int64_t(L.zero[j * G + g]) * asum[r * G + g]);
                }
                y = y * (double(as[r]) * L.col_scale[j]) + (t.bias ? L.bias[j] : 0.0);
                ok = ok && std::fabs(y - want[r * 16 + j]) <= 1e-4 * (1 + std::fabs(y));
              }
            CHECK(ok, "scalar vs definition group=%zu G=%zu mr=%zu", group, G, mr);
            for_each_simd([&](const KernelTable&, const KernelTable& k) {
              std::vector<float> got(mr * 16, -7.0f);
              const size_t kmr = static_cast<size_t>(k.s8q4_f32_gemm_mr);
              for (size_t r = 0; r < mr; r += kmr) {  // tiles of at most the kernel's rows
                Int4Tile s = t;
                s.mr = std::min(kmr, mr - r);
                s.a = a.data() + r * kp;
                s.asum = asum.data() + r * G;
                s.a_scale = as.data() + r;
                s.out = got.data() + r * 16;
                k.s8q4_f32_gemm(s);
              }
              CHECK(std::memcmp(got.data(), want.data(), got.size() * 4) == 0,
                    "%s group=%zu G=%zu nc=%zu mr=%zu extreme=%d", k.isa, group, G, nc, mr, extreme);
            });
          }
}

TEST(int4_linear_packs_and_runs_on_every_isa_and_thread_count) {
  std::mt19937 rng(32);
  const size_t shapes[][4] = {{1, 37, 19, 8}, {5, 64, 33, 32}, {3, 300, 70, 64}, {9, 129, 48, 128}, {1, 1024, 256, 32}};
  for (auto& s : shapes) {
    const size_t M = s[0], K = s[1], N = s[2], group = s[3];
    Layer L = random_layer(N, K, group, rng);
    const Int4Weights w = pack_int4(L.u.data(), L.zero.data(), L.scale.data(), L.col_scale.data(), N, K, group);
    std::vector<uint8_t> back(N * K);
    unpack_int4(w, back.data());
    CHECK(back == L.u, "unpack %zux%zu", N, K);
    CHECK(w.nbytes() == w.panels * (w.kp * 8 + w.ngroups * 16 * 3 + 16 * 4), "nbytes");
    std::vector<float> x(M * K);
    for (auto& v : x) v = std::normal_distribution<float>(0, 1)(rng);
    std::vector<float> first;
    for (const auto& isa : supported_isas())
      for (int threads : {1, 2}) {
        set_isa(isa);
        set_num_threads(threads);
        std::vector<float> y(M * N, NAN);
        CHECK(int4_linear(x.data(), M, w, L.bias.data(), y.data()), "finite");
        if (first.empty()) {
          first = y;
          const std::vector<double> bound = error_bounds(L, x, M);
          const std::vector<double> want = reference(L, x, M);
          for (size_t i = 0; i < M * N; i++)
            CHECK(std::fabs(y[i] - want[i]) <= bound[i], "reference %zu: %g vs %g", i, y[i], want[i]);
        }
        CHECK(std::memcmp(y.data(), first.data(), y.size() * 4) == 0, "%s threads=%d M=%zu K=%zu N=%zu",
              isa.c_str(), threads, M, K, N);
      }
    std::vector<float> y(M * N);
    x[K / 2] = INFINITY;
    CHECK(!int4_linear(x.data(), M, w, nullptr, y.data()), "Inf refused");
  }
  set_isa(supported_isas().back());
  set_num_threads(2);
}
