// The GEMM on every kernel set this CPU runs equals an int64 reference exactly.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "harness.h"
#include "lowbit/gemm.h"
#include "lowbit/runtime.h"

using namespace lowbit;

namespace {

std::vector<int32_t> reference(const std::vector<uint8_t>& a, const std::vector<int8_t>& b,
                               size_t M, size_t K, size_t N, int32_t za, int32_t zb) {
  std::vector<int32_t> c(M * N);
  for (size_t m = 0; m < M; m++)
    for (size_t n = 0; n < N; n++) {
      int64_t s = 0;
      for (size_t k = 0; k < K; k++) s += (int64_t(a[m * K + k]) - za) * (int64_t(b[k * N + n]) - zb);
      c[m * N + n] = static_cast<int32_t>(s);
    }
  return c;
}

// narrow: bit 0 draws A in [0, 127] (u7), bit 1 B in [-64, 63] (s7), the operands gemm7
// kernels take; kS4 draws B in [-8, 7] and packs it two values a byte.
constexpr int kS4 = 4;
bool run_case(size_t M, size_t K, size_t N, int32_t za, int32_t zb, std::mt19937& rng, int extreme,
              std::string& where, int narrow = 0) {
  std::vector<uint8_t> a(M * K);
  std::vector<int8_t> b(K * N);
  // extreme: 1 every B value the lowest, 2 the highest (B + 8 = 15 for s4: gemm4's largest sums)
  const int b_lo = narrow & kS4 ? -8 : narrow & 2 ? -64 : -128;
  for (auto& v : a) v = extreme ? (narrow & 1 ? 127 : 255) : static_cast<uint8_t>(rng() % (narrow & 1 ? 128 : 256));
  for (auto& v : b)
    v = static_cast<int8_t>(extreme == 1 ? b_lo : extreme == 2 ? -b_lo - 1 : int(rng() % (-2 * b_lo)) + b_lo);
  const auto want = reference(a, b, M, K, N, za, zb);
  const ptrdiff_t rs = static_cast<ptrdiff_t>(N);
  const PackedB pb = narrow & kS4 ? pack_b_s4(b.data(), K, N, rs, 1) : pack_b(b.data(), K, N, rs, 1);
  if (pb.s4 != bool(narrow & kS4) || pb.data.size() != pb.panels * pb.panel_bytes()) {
    where = "s4 layout";
    return false;
  }
  std::vector<int8_t> back(K * N);
  unpack_b(pb, back.data());
  if (back != b) {
    where = "pack/unpack";
    return false;
  }
  for (const auto& isa : supported_isas())
    for (int t : {1, 2}) {
      set_isa(isa);
      set_num_threads(t);
      std::vector<int32_t> got(M * N, 12345);
      OutputStage os;
      os.a_zp = za;
      os.b_zp = zb;
      os.out = got.data();
      os.ldo = N;
      gemm_u8s8(a.data(), K, M, pb, os);
      if (got != want) {
        where = isa + " threads=" + std::to_string(t);
        return false;
      }
    }
  return true;
}

}  // namespace

TEST(gemm_exact_on_tails) {
  std::mt19937 rng(7);
  std::string where;
  for (size_t M : {1, 2, 3, 4, 5, 7, 8, 9, 17})
    for (size_t N : {1, 15, 16, 17, 33})
      for (size_t K : {1, 3, 4, 8, 9, 31, 64, 67})
        for (int narrow : {0, 1, 2, 3}) {
          CHECK(run_case(M, K, N, 0, 0, rng, 0, where, narrow), "M=%zu K=%zu N=%zu narrow=%d %s", M,
                K, N, narrow, where.c_str());
          CHECK(run_case(M, K, N, 3, -5, rng, 0, where, narrow), "zp M=%zu K=%zu N=%zu narrow=%d %s",
                M, K, N, narrow, where.c_str());
        }
  set_isa(supported_isas().back());
}

// Weights of 4 bits held two a byte: the same exact results, tails and larger shapes.
TEST(gemm_s4_weights_exact) {
  std::mt19937 rng(12);
  std::string where;
  for (size_t M : {1, 2, 7, 9})
    for (size_t N : {1, 15, 16, 17, 49})
      for (size_t K : {1, 3, 8, 31, 67})
        for (int narrow : {kS4, kS4 | 1})
          CHECK(run_case(M, K, N, 5, -3, rng, 0, where, narrow), "M=%zu K=%zu N=%zu narrow=%d %s", M,
                K, N, narrow, where.c_str());
  const size_t shapes[][3] = {{64, 300, 70}, {200, 129, 257}, {1, 4096, 40}, {1, 384, 1536}};
  for (auto& s : shapes)
    CHECK(run_case(s[0], s[1], s[2], 128, 0, rng, 0, where, kS4), "M=%zu K=%zu N=%zu %s", s[0], s[1],
          s[2], where.c_str());
  for (size_t M : {1, 2, 3, 7})
    for (int extreme : {1, 2})
      CHECK(run_case(M, 65793, 17, 0, 0, rng, extreme, where, kS4), "extreme %d M=%zu %s", extreme, M,
            where.c_str());
  CHECK(s4_fits(std::vector<int8_t>{-8, 7, 0}.data(), 1, 3, 3, 1), "s4_fits in range");
  CHECK(!s4_fits(std::vector<int8_t>{-8, 8, 0}.data(), 1, 3, 3, 1), "s4_fits 8");
  CHECK(!s4_fits(std::vector<int8_t>{-9, 0, 0}.data(), 1, 3, 3, 1), "s4_fits -9");
  set_isa(supported_isas().back());
}

TEST(gemm_exact_on_larger_shapes) {
  std::mt19937 rng(8);
  std::string where;
  const size_t shapes[][3] = {{64, 300, 70}, {200, 129, 257}, {1, 4096, 40}, {33, 1000, 48}};
  for (auto& s : shapes)
    for (int narrow : {0, 1, 2, 3})
      CHECK(run_case(s[0], s[1], s[2], 128, 1, rng, 0, where, narrow), "M=%zu K=%zu N=%zu narrow=%d %s",
            s[0], s[1], s[2], narrow, where.c_str());
  set_isa(supported_isas().back());
}

TEST(gemm_extreme_values) {
  std::mt19937 rng(9);
  std::string where;
  // 255 x -128 along K = 65793 would be -2^31 - 128*... : the largest K whose sum fits is 65793.
  CHECK(run_case(3, 65793, 17, 0, 0, rng, 1, where), "%s", where.c_str());
  CHECK(run_case(2, 4096, 16, 0, 0, rng, 1, where), "%s", where.c_str());
  for (int narrow : {1, 2, 3})  // the largest products gemm7 kernels take, along a long K
    CHECK(run_case(7, 4099, 33, 0, 0, rng, 1, where, narrow), "narrow=%d %s", narrow, where.c_str());
  set_isa(supported_isas().back());
}


// The fused epilogues (float and 8-bit requantize) on every kernel set, against the formulas of
// lowbit/kernels.h written out here on an int64 reference product; B also held as s4 (kS4), read
// by gemm4 kernels up to 4 rows.
TEST(gemm_epilogues_exact) {
  std::mt19937 rng(10);
  std::uniform_real_distribution<float> uni(0.001f, 0.02f);
  for (size_t M : {1, 2, 4, 5, 13})
    for (size_t N : {7, 16, 37})
      for (size_t K : {5, 64, 300})
        for (int narrow : {0, 3, kS4}) {
          std::vector<uint8_t> a(M * K);
          std::vector<int8_t> b(K * N);
          for (auto& v : a) v = static_cast<uint8_t>(rng() % (narrow == 3 ? 128 : 256));
          const int b_lo = narrow == kS4 ? -8 : narrow ? -64 : -128;
          for (auto& v : b) v = static_cast<int8_t>(int(rng() % (-2 * b_lo)) + b_lo);
          std::vector<int32_t> zpr(M);
          std::vector<float> sa(M), sb(N), bias(N), qs(N);
          std::vector<int32_t> bias_i(N);
          for (auto& v : zpr) v = static_cast<int32_t>(rng() % 256);
          for (auto& v : sa) v = uni(rng);
          for (auto& v : sb) v = uni(rng);
          for (auto& v : bias) v = uni(rng) * 1000.0f - 10.0f;
          for (auto& v : qs) v = uni(rng) * 0.05f;
          for (auto& v : bias_i) v = static_cast<int32_t>(rng() % 20001) - 10000;
          const ptrdiff_t rs = static_cast<ptrdiff_t>(N);
          const PackedB pb = narrow == kS4 ? pack_b_s4(b.data(), K, N, rs, 1) : pack_b(b.data(), K, N, rs, 1);
          std::vector<int64_t> acc(M * N);
          for (size_t m = 0; m < M; m++)
            for (size_t n = 0; n < N; n++) {
              int64_t s = 0;
              for (size_t k = 0; k < K; k++) s += (int64_t(a[m * K + k]) - zpr[m]) * b[k * N + n];
              acc[m * N + n] = s;
            }
          for (bool relu : {false, true}) {
            std::vector<float> want_f(M * N);
            std::vector<uint8_t> want_q(M * N);
            const int32_t ozp = 100, qmin = 0, qmax = 255;
            const int32_t lo = relu ? ozp : qmin;
            for (size_t m = 0; m < M; m++)
              for (size_t n = 0; n < N; n++) {
                const int64_t v = acc[m * N + n];
                float y = static_cast<float>(static_cast<int32_t>(v)) * (sa[m] * sb[n]) + bias[n];
                want_f[m * N + n] = relu && !(y > 0.0f) ? 0.0f : y;
                float z = static_cast<float>(static_cast<int32_t>(v + bias_i[n])) * qs[n];
                z = std::fmin(std::fmax(z, float(lo - ozp)), float(qmax - ozp));
                want_q[m * N + n] = static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(z)) + ozp);
              }
            for (const auto& isa : supported_isas())
              for (int threads : {1, 2}) {
                set_isa(isa);
                set_num_threads(threads);
                std::vector<float> got_f(M * N, -1.0f);
                OutputStage os;
                os.kind = GemmOut::f32;
                os.a_zp_row = zpr.data();
                os.a_scale = sa.data();
                os.a_scale_per_row = true;
                os.b_scale = sb.data();
                os.b_scale_per_col = true;
                os.bias = bias.data();
                os.relu = relu;
                os.out = got_f.data();
                os.ldo = N;
                gemm_u8s8(a.data(), K, M, pb, os);
                CHECK(std::memcmp(got_f.data(), want_f.data(), 4 * M * N) == 0,
                      "f32 %s M=%zu K=%zu N=%zu relu=%d narrow=%d", isa.c_str(), M, K, N, relu, narrow);
                std::vector<uint8_t> got_q(M * N, 7);
                OutputStage oq;
                oq.kind = GemmOut::q8;
                oq.a_zp_row = zpr.data();
                oq.q_scale = qs.data();
                oq.bias_i32 = bias_i.data();
                oq.out_zp = ozp;
                oq.qmin = qmin;
                oq.qmax = qmax;
                oq.relu = relu;
                oq.out = got_q.data();
                oq.ldo = N;
                gemm_u8s8(a.data(), K, M, pb, oq);
                CHECK(got_q == want_q, "q8 %s M=%zu K=%zu N=%zu relu=%d narrow=%d", isa.c_str(), M, K,
                      N, relu, narrow);
              }
          }
        }
  set_isa(supported_isas().back());
  set_num_threads(2);
}

// A weight packed for one kernel set runs on another (LOWBIT_ISA, a file made on another CPU):
// it is repacked once into the running set's format, with the same results.
TEST(gemm_repacks_for_other_formats) {
  std::mt19937 rng(11);
  const size_t M = 9, K = 77, N = 41;
  std::vector<uint8_t> a(M * K);
  std::vector<int8_t> b(K * N);
  for (auto& v : a) v = static_cast<uint8_t>(rng());
  for (auto& v : b) v = static_cast<int8_t>(rng());
  const auto want = reference(a, b, M, K, N, 0, 0);
  std::vector<int8_t> b4(K * N);
  for (auto& v : b4) v = static_cast<int8_t>(int(rng() % 16) - 8);
  const auto want4 = reference(a, b4, M, K, N, 0, 0);
  for (int nr : {8, 12, 16, 48})
    for (int kr : {2, 4, 8}) {
      const PackedB pb = pack_b(b.data(), K, N, static_cast<ptrdiff_t>(N), 1, nr, kr);
      const PackedB pb4 = pack_b(b4.data(), K, N, static_cast<ptrdiff_t>(N), 1, nr, kr, true);
      std::vector<int8_t> back(K * N), back4(K * N);
      unpack_b(pb, back.data());
      unpack_b(pb4, back4.data());
      CHECK(back == b, "unpack nr=%d kr=%d", nr, kr);
      CHECK(back4 == b4, "unpack s4 nr=%d kr=%d", nr, kr);
      for (const auto& isa : supported_isas()) {
        set_isa(isa);
        for (const PackedB* packed : {&pb, &pb4}) {
          std::vector<int32_t> got(M * N);
          OutputStage os;
          os.out = got.data();
          os.ldo = N;
          gemm_u8s8(a.data(), K, M, *packed, os);
          CHECK(got == (packed == &pb ? want : want4), "%s from nr=%d kr=%d s4=%d", isa.c_str(), nr,
                kr, int(packed->s4));
        }
        CHECK(!pb4.repacked || pb4.repacked->s4, "s4 stays s4 when repacked");
      }
    }
  set_isa(supported_isas().back());
}
