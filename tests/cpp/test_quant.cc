// Every quantization kernel of every kernel set this CPU runs, against the scalar reference,
// bit for bit; and the drivers against a direct computation.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "harness.h"
#include "kernels/scalar/quant_ref.h"
#include "lowbit/quant.h"
#include "lowbit/runtime.h"

using namespace lowbit;

namespace {

std::vector<float> random_floats(size_t n, std::mt19937& rng, float spread) {
  std::normal_distribution<float> d(0.0f, spread);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  // Exact ties for round-half-even, zeros of both signs, and a few large values.
  for (size_t i = 0; i < n; i += 7) v[i] = std::floor(v[i]) + 0.5f;
  if (n > 3) v[3] = -0.0f;
  if (n > 5) v[5] = spread * 1e4f;
  return v;
}

const std::vector<size_t> kLengths = {0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000, 4099};

bool bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}

template <typename F>
void for_each_simd(F f) {
  const KernelTable* ref = kernel_table("scalar");
  for (const auto& isa : supported_isas())
    if (isa != "scalar") f(*ref, *kernel_table(isa));
}

}  // namespace

TEST(rminmax_matches_scalar) {
  std::mt19937 rng(1);
  for_each_simd([&](const KernelTable& r, const KernelTable& k) {
    for (size_t n : kLengths) {
      if (n == 0) continue;
      auto x = random_floats(n, rng, 3.0f);
      float a0, a1, b0, b1;
      bool fa = r.f32_rminmax(x.data(), n, &a0, &a1), fb = k.f32_rminmax(x.data(), n, &b0, &b1);
      CHECK(fa && fb && a0 == b0 && a1 == b1, "%s n=%zu", k.isa, n);
      for (float bad : {NAN, INFINITY, -INFINITY}) {
        x[n / 2] = bad;
        CHECK(!k.f32_rminmax(x.data(), n, &b0, &b1), "%s missed %f at n=%zu", k.isa, bad, n);
      }
    }
  });
}

TEST(cminmax_matches_scalar) {
  std::mt19937 rng(2);
  for_each_simd([&](const KernelTable& r, const KernelTable& k) {
    for (size_t n : kLengths) {
      auto x = random_floats(n, rng, 1.0f), y = random_floats(n, rng, 1.0f);
      std::vector<float> mn1(n, INFINITY), mx1(n, -INFINITY), mn2 = mn1, mx2 = mx1;
      r.f32_cminmax(x.data(), n, mn1.data(), mx1.data());
      r.f32_cminmax(y.data(), n, mn1.data(), mx1.data());
      k.f32_cminmax(x.data(), n, mn2.data(), mx2.data());
      bool ok = k.f32_cminmax(y.data(), n, mn2.data(), mx2.data());
      CHECK(ok && mn1 == mn2 && mx1 == mx2, "%s n=%zu", k.isa, n);
      if (n) {
        y[n - 1] = NAN;
        CHECK(!k.f32_cminmax(y.data(), n, mn2.data(), mx2.data()), "%s NaN n=%zu", k.isa, n);
      }
    }
  });
}

TEST(quantize_matches_scalar) {
  std::mt19937 rng(3);
  const float ranges[][2] = {{-127, 127}, {-128, 127}, {0, 255}, {-7, 7}, {0, 15}, {-1, 1}};
  const float scales[] = {1.0f, 0.01f, 3.7e-3f, 1e-30f, 1e30f, 0.5f};
  for_each_simd([&](const KernelTable& r, const KernelTable& k) {
    for (size_t n : kLengths)
      for (auto& qr : ranges)
        for (float s : scales) {
          auto x = random_floats(n, rng, 100.0f * s);
          const float zp = qr[0] >= 0 ? std::floor((qr[0] + qr[1]) / 2) : 0.0f;
          std::vector<uint8_t> a(n), b(n);
          r.f32_q8_quantize(x.data(), n, s, zp, qr[0], qr[1], a.data());
          bool ok = k.f32_q8_quantize(x.data(), n, s, zp, qr[0], qr[1], b.data());
          CHECK(ok && a == b, "%s n=%zu scale=%g", k.isa, n, s);
          std::vector<float> sv(n), zv(n);
          for (size_t i = 0; i < n; i++) {
            sv[i] = s * (1.0f + 0.1f * float(i % 5));
            zv[i] = qr[0] >= 0 ? float(i % 17) : 0.0f;
          }
          r.f32_q8_cquantize(x.data(), n, sv.data(), zv.data(), qr[0], qr[1], a.data());
          ok = k.f32_q8_cquantize(x.data(), n, sv.data(), zv.data(), qr[0], qr[1], b.data());
          CHECK(ok && a == b, "%s cquantize n=%zu scale=%g", k.isa, n, s);
          if (n) {
            x[n - 1] = INFINITY;
            CHECK(!k.f32_q8_quantize(x.data(), n, s, zp, qr[0], qr[1], b.data()), "%s inf", k.isa);
          }
        }
  });
}

TEST(dequantize_matches_scalar) {
  std::mt19937 rng(4);
  for_each_simd([&](const KernelTable& r, const KernelTable& k) {
    for (size_t n : kLengths) {
      std::vector<uint8_t> q(n);
      for (auto& v : q) v = static_cast<uint8_t>(rng());
      std::vector<float> a(n), b(n), sv(n), zv(n);
      for (size_t i = 0; i < n; i++) {
        sv[i] = 0.013f * float(1 + i % 7);
        zv[i] = float(i % 200);
      }
      r.qu8_f32_dequantize(q.data(), n, 0.037f, 131.0f, a.data());
      k.qu8_f32_dequantize(q.data(), n, 0.037f, 131.0f, b.data());
      CHECK(bits_equal(a, b), "%s qu8 n=%zu", k.isa, n);
      auto* s8 = reinterpret_cast<const int8_t*>(q.data());
      r.qs8_f32_dequantize(s8, n, 1e-3f, 0.0f, a.data());
      k.qs8_f32_dequantize(s8, n, 1e-3f, 0.0f, b.data());
      CHECK(bits_equal(a, b), "%s qs8 n=%zu", k.isa, n);
      r.qu8_f32_cdequantize(q.data(), n, sv.data(), zv.data(), a.data());
      k.qu8_f32_cdequantize(q.data(), n, sv.data(), zv.data(), b.data());
      CHECK(bits_equal(a, b), "%s cqu8 n=%zu", k.isa, n);
      r.qs8_f32_cdequantize(s8, n, sv.data(), zv.data(), a.data());
      k.qs8_f32_cdequantize(s8, n, sv.data(), zv.data(), b.data());
      CHECK(bits_equal(a, b), "%s cqs8 n=%zu", k.isa, n);
    }
  });
}

TEST(rounding_is_half_to_even) {
  for (const auto& isa : supported_isas()) {
    const KernelTable& k = *kernel_table(isa);
    const float x[8] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, 300.0f};
    const int8_t want[8] = {0, 2, 2, 0, -2, -2, 126, 127};
    uint8_t q[8];
    k.f32_q8_quantize(x, 8, 1.0f, 0.0f, -127.0f, 127.0f, q);
    for (int i = 0; i < 8; i++) CHECK(int8_t(q[i]) == want[i], "%s x=%g got %d", k.isa, x[i], int8_t(q[i]));
  }
}

TEST(drivers_same_on_every_isa_and_thread_count) {
  std::mt19937 rng(5);
  const Shape3 shapes[] = {{1, 1, 100000}, {1, 37, 300}, {1, 300, 1}, {513, 65, 1}, {3, 5, 70000}, {7, 3, 9}};
  for (const Shape3& s : shapes)
    for (bool sym : {true, false})
      for (int bits : {8, 4, 2}) {
        auto x = random_floats(s.size(), rng, 2.0f);
        std::vector<uint8_t> c0(s.size()), c1(s.size());
        std::vector<float> s0(s.channels), s1(s.channels), d0(s.size()), d1(s.size());
        std::vector<int32_t> z0(s.channels), z1(s.channels);
        set_isa("scalar");
        set_num_threads(1);
        CHECK(quantize_dynamic(x.data(), s, bits, sym, c0.data(), s0.data(), z0.data()), "finite");
        dequantize(c0.data(), sym, s, s0.data(), z0.data(), d0.data());
        for (const auto& isa : supported_isas())
          for (int t : {1, 2, 3}) {
            set_isa(isa);
            set_num_threads(t);
            quantize_dynamic(x.data(), s, bits, sym, c1.data(), s1.data(), z1.data());
            dequantize(c1.data(), sym, s, s1.data(), z1.data(), d1.data());
            CHECK(c0 == c1 && s0 == s1 && z0 == z1 && d0 == d1, "%s threads=%d", isa.c_str(), t);
          }
      }
  set_isa(supported_isas().back());
  set_num_threads(2);
}

TEST(constant_channels_round_trip_exactly) {
  for (bool sym : {true, false})
    for (float v : {0.0f, 0.1f, -0.3f, 1e-38f, 3e38f, -3e38f}) {
      std::vector<float> x(40, v);
      std::vector<uint8_t> c(40);
      float s;
      int32_t z;
      std::vector<float> d(40);
      CHECK(quantize_dynamic(x.data(), {1, 1, 40}, 8, sym, c.data(), &s, &z), "finite");
      dequantize(c.data(), sym, {1, 1, 40}, &s, &z, d.data());
      CHECK(d == x, "v=%g sym=%d got %g", v, int(sym), d[0]);
    }
}
