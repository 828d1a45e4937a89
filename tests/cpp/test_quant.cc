// Every quantization kernel of every kernel set this CPU runs, against the scalar reference,
// bit for bit; and the drivers against a direct computation.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "harness.h"
#include "kernel_sets.h"
#include "lowbit/quant.h"
#include "lowbit/runtime.h"

using namespace lowbit;
using lbtest::for_each_simd;
using lbtest::gaussian;

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

}  // namespace

TEST(minmax_matches_scalar) {
  std::mt19937 rng(1);
  for_each_simd([&](const KernelTable& r, const KernelTable& k) {
    for (size_t n : kLengths) {
      if (n == 0) continue;
      auto x = random_floats(n, rng, 3.0f);
      float a0, a1, b0, b1;
      bool fa = r.f32_f32_minmax(x.data(), n, &a0, &a1), fb = k.f32_f32_minmax(x.data(), n, &b0, &b1);
      CHECK(fa && fb && a0 == b0 && a1 == b1, "%s n=%zu", k.isa, n);
      for (float bad : {NAN, INFINITY, -INFINITY}) {
        x[n / 2] = bad;
        CHECK(!k.f32_f32_minmax(x.data(), n, &b0, &b1), "%s missed %f at n=%zu", k.isa, bad, n);
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
      r.f32_f32_cminmax(x.data(), n, mn1.data(), mx1.data());
      r.f32_f32_cminmax(y.data(), n, mn1.data(), mx1.data());
      k.f32_f32_cminmax(x.data(), n, mn2.data(), mx2.data());
      bool ok = k.f32_f32_cminmax(y.data(), n, mn2.data(), mx2.data());
      CHECK(ok && mn1 == mn2 && mx1 == mx2, "%s n=%zu", k.isa, n);
      if (n) {
        y[n - 1] = NAN;
        CHECK(!k.f32_f32_cminmax(y.data(), n, mn2.data(), mx2.data()), "%s NaN n=%zu", k.isa, n);
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

// s4 (lowbit/kernels.h): byte j of each 32 holds value j + 8 (low nibble) and value 32 + j + 8
// (high nibble) of its block of 64; every set unpacks it as the scalar oracle does, with no write
// past n values.
TEST(s4_unpack_matches_scalar_and_layout) {
  std::mt19937 rng(13);
  for (size_t n : {0, 64, 128, 192, 256, 320, 4160}) {
    std::vector<uint8_t> in(n / 2);
    for (auto& v : in) v = static_cast<uint8_t>(rng());
    std::vector<int8_t> want(n + 64, 99);
    kernel_table("scalar")->s4_s8_unpack(in.data(), n, want.data());
    bool layout = true;
    for (size_t blk = 0; blk < n / 64; blk++)
      for (size_t j = 0; j < 32; j++) {
        layout = layout && want[blk * 64 + j] == (in[blk * 32 + j] & 15) - 8;
        layout = layout && want[blk * 64 + 32 + j] == (in[blk * 32 + j] >> 4) - 8;
      }
    CHECK(layout, "scalar layout n=%zu", n);
    for_each_simd([&](const KernelTable&, const KernelTable& k) {
      std::vector<int8_t> got(n + 64, 99);
      k.s4_s8_unpack(in.data(), n, got.data());
      CHECK(got == want, "%s n=%zu", k.isa, n);
    });
  }
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

// The parameters rule of lowbit/quant.h, on the cases its comment names (written out here, not
// computed with the library's code).
TEST(choose_params_follows_the_documented_rule) {
  struct Case {
    float mn, mx;
    int bits;
    bool sym;
    float scale;
    int32_t zp;
  };
  const float ulp = std::ldexp(1.0f, -149);  // the smallest subnormal
  const Case cases[] = {
      {-1.0f, 3.0f, 8, false, 4.0f / 255.0f, 64},   // ONNX: rne(1 / (4/255)) = rne(63.75)
      {-1.0f, 3.0f, 8, true, 3.0f / 127.0f, 0},
      {1.0f, 3.0f, 8, false, 3.0f / 255.0f, 0},     // widened to include 0
      {-3.0f, -1.0f, 8, false, 3.0f / 255.0f, 255},
      {0.0f, 0.0f, 8, true, 1.0f, 0},               // all zero
      {0.0f, 0.0f, 4, false, 1.0f, 0},
      {0.25f, 0.25f, 8, false, 0.25f, 0},           // constant: exact round trip
      {-0.25f, -0.25f, 8, false, 0.25f, 1},
      {-0.25f, -0.25f, 2, true, 0.25f, 0},
      {0.0f, ulp, 8, true, ulp, 0},                 // ulp / 127 underflows: the range itself
      {-ulp, 20 * ulp, 4, false, 2 * ulp, 0},       // 21 ulps / 15 -> 1 ulp covers 15 < 21: 2 ulps
  };
  for (const Case& c : cases) {
    float s;
    int32_t z;
    choose_params(c.mn, c.mx, c.bits, c.sym, &s, &z);
    CHECK(s == c.scale && z == c.zp, "[%g, %g] bits=%d sym=%d: got (%g, %d), want (%g, %d)", c.mn,
          c.mx, c.bits, int(c.sym), s, z, c.scale, c.zp);
  }
  // hi - lo overflows float32: the scale comes from the double difference, rounded once
  float s;
  int32_t z;
  choose_params(-3e38f, 3e38f, 8, false, &s, &z);
  CHECK(s == static_cast<float>((3e38 + 3e38) / 255) || s == static_cast<float>(
        (double(3e38f) - double(-3e38f)) / 255), "overflow scale %g", s);
  CHECK(std::isfinite(s) && z >= 127 && z <= 128, "overflow zp %d", z);
}

TEST(choose_params_array_form_matches_and_refuses_bad_ranges) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (bool sym : {true, false}) {
    std::vector<float> mn(300), mx(300), s(300);
    std::vector<int32_t> z(300);
    for (size_t i = 0; i < mn.size(); i++) {
      const int e = int(i % 60) * 4 - 140;  // subnormal to huge; every 9th channel constant
      const float a = std::ldexp(d(rng), e), b = i % 9 ? std::ldexp(d(rng), e) : a;
      mn[i] = std::min(a, b);
      mx[i] = std::max(a, b);
    }
    CHECK(choose_params(mn.data(), mx.data(), mn.size(), 5, sym, s.data(), z.data()), "finite");
    for (size_t i = 0; i < mn.size(); i++) {
      float s1;
      int32_t z1;
      choose_params(mn[i], mx[i], 5, sym, &s1, &z1);
      CHECK(s[i] == s1 && z[i] == z1 && s1 > 0 && std::isfinite(s1), "channel %zu", i);
    }
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      mx[5] = bad;
      CHECK(!choose_params(mn.data(), mx.data(), mn.size(), 5, sym, s.data(), z.data()), "%g", bad);
    }
    mn[5] = 2.0f;
    mx[5] = 1.0f;
    CHECK(!choose_params(mn.data(), mx.data(), mn.size(), 5, sym, s.data(), z.data()), "mn > mx");
  }
}

TEST(packed_codes_layout_and_round_trip) {
  const int8_t two[6] = {1, -1, 0, -2, 1, 1};  // 01 11 00 10 | 01 01, lowest bits first
  uint8_t packed[2], back[6];
  pack_codes(reinterpret_cast<const uint8_t*>(two), 6, 4, packed);
  CHECK(packed[0] == 0x8D && packed[1] == 0x05, "2-bit layout %02x %02x", packed[0], packed[1]);
  unpack_codes(packed, 6, 4, true, back);
  CHECK(std::memcmp(back, two, 6) == 0, "2-bit signed round trip");
  std::mt19937 rng(8);
  for (int per : {2, 4})
    for (bool is_signed : {true, false})
      for (size_t n : kLengths) {
        const int w = 8 / per;
        std::vector<uint8_t> c(n), p((n + per - 1) / per, 0xAA), u(n);
        for (auto& v : c) {
          int q = int(rng() % (1u << w));
          if (is_signed) q -= 1 << (w - 1);
          v = static_cast<uint8_t>(q);
        }
        pack_codes(c.data(), n, per, p.data());
        unpack_codes(p.data(), n, per, is_signed, u.data());
        CHECK(u == c, "per=%d signed=%d n=%zu", per, int(is_signed), n);
        if (n % per) CHECK((p.back() >> (w * (n % per))) == 0, "unused slots are 0 (n=%zu)", n);
      }
}
