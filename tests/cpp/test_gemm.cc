// The GEMM on every kernel set this CPU runs equals an int64 reference exactly.
#include <cmath>
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

bool run_case(size_t M, size_t K, size_t N, int32_t za, int32_t zb, std::mt19937& rng, int extreme,
              std::string& where) {
  std::vector<uint8_t> a(M * K);
  std::vector<int8_t> b(K * N);
  for (auto& v : a) v = extreme ? 255 : static_cast<uint8_t>(rng());
  for (auto& v : b) v = extreme ? -128 : static_cast<int8_t>(rng());
  const auto want = reference(a, b, M, K, N, za, zb);
  const PackedB pb = pack_b(b.data(), K, N, static_cast<ptrdiff_t>(N), 1);
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
      for (size_t K : {1, 3, 4, 8, 9, 31, 64, 67}) {
        CHECK(run_case(M, K, N, 0, 0, rng, 0, where), "M=%zu K=%zu N=%zu %s", M, K, N, where.c_str());
        CHECK(run_case(M, K, N, 3, -5, rng, 0, where), "zp M=%zu K=%zu N=%zu %s", M, K, N, where.c_str());
      }
  set_isa(supported_isas().back());
}

TEST(gemm_exact_on_larger_shapes) {
  std::mt19937 rng(8);
  std::string where;
  const size_t shapes[][3] = {{64, 300, 70}, {200, 129, 257}, {1, 4096, 40}, {33, 1000, 48}};
  for (auto& s : shapes)
    CHECK(run_case(s[0], s[1], s[2], 128, 1, rng, 0, where), "M=%zu K=%zu N=%zu %s", s[0], s[1], s[2], where.c_str());
  set_isa(supported_isas().back());
}

TEST(gemm_extreme_values) {
  std::mt19937 rng(9);
  std::string where;
  // 255 x -128 along K = 65793 would be -2^31 - 128*... : the largest K whose sum fits is 65793.
  CHECK(run_case(3, 65793, 17, 0, 0, rng, 1, where), "%s", where.c_str());
  CHECK(run_case(2, 4096, 16, 0, 0, rng, 1, where), "%s", where.c_str());
  set_isa(supported_isas().back());
}

TEST(requantize_multiplier) {
  int32_t m0, s;
  for (double m : {0.5, 0.25, 1e-5, 0.999999, 1.0, 3.7, 1e-9}) {
    CHECK(quantize_multiplier(m, &m0, &s), "m=%g", m);
    const double back = double(m0) * std::pow(2.0, -(31 + s));
    CHECK(std::fabs(back - m) <= m * 1e-9, "m=%g back=%g", m, back);
    CHECK(m0 >= (1 << 30), "m0=%d", m0);
  }
  CHECK(!quantize_multiplier(0.0, &m0, &s), "zero");
  CHECK(!quantize_multiplier(-1.0, &m0, &s), "negative");
}
