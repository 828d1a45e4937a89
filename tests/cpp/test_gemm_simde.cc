// The VNNI GEMM micro-kernels called directly: hand-built GemmTile calls over a whole matrix, B
// packed in each kernel's own format (lowbit::pack_b with its nr, kr), against an int64 reference
// of the GemmTile contract (lowbit/kernels.h), byte for byte, with the scalar kernel run the same
// way as a check of the reference. Every epilogue kind, partial panels (nc < nr), every tile
// height from 1 to mr, depths with tails, narrow, full-range and extreme values (255 x -128 and
// 255 x 127 over K = 65,793, where the sum just fits, and past it, where int32 wraps: vpdpbusd
// does not saturate), zero-point terms that wrap, and nothing written outside the tile.
//
// This CPU may lack AVX-512 VNNI and AVX-VNNI: the two kernels also run as built against SIMDe
// with AVX2 flags only (tests/cpp/simde_gemm__*.cc, compiled by cmake/kernels.cmake when SIMDe's
// headers are found), on any AVX2 host; the native builds run where the CPU has them.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "harness.h"
#include "lowbit/gemm.h"
#include "lowbit/runtime.h"

using namespace lowbit;

#if defined(LOWBIT_TEST_SIMDE)
namespace lowbit {
namespace kernels {
void u8s8_epi_gemm__avx512vnni_simde(const GemmTile&);
void u8s8_epi_gemm__avxvnni_simde(const GemmTile&);
}  // namespace kernels
}  // namespace lowbit
#endif

namespace {

struct Kernel {
  std::string name;
  gemm_fn fn;
  int mr, nr, kr;
};

bool cpu_has(const char* f) {
  const auto& fs = cpu_features();
  return std::find(fs.begin(), fs.end(), f) != fs.end();
}

// The formats of the dispatch entries (csrc/runtime/dispatch.cc): A as u8 for both.
constexpr int kVnni512MR = 6, kVnni512NR = 48, kVnniAvxMR = 6, kVnniAvxNR = 16, kKR = 4;

// The kernels this host runs, the scalar one first (it checks the reference).
std::vector<Kernel> kernels_under_test() {
  std::vector<Kernel> ks = {{"scalar", kernels::u8s8_epi_gemm__scalar, 4, 16, 4}};
#if defined(LOWBIT_HAVE_X86)
#if defined(LOWBIT_TEST_SIMDE)
  if (cpu_has("avx2") && cpu_has("fma")) {  // the SIMDe builds' instructions
    ks.push_back({"avx512vnni (SIMDe)", kernels::u8s8_epi_gemm__avx512vnni_simde, kVnni512MR,
                  kVnni512NR, kKR});
    ks.push_back({"avxvnni (SIMDe)", kernels::u8s8_epi_gemm__avxvnni_simde, kVnniAvxMR, kVnniAvxNR,
                  kKR});
  }
#endif
  for (const char* isa : {"avx512vnni", "avxvnni"})
    if (const KernelTable* kt = kernel_table(isa))  // this CPU has the instructions
      ks.push_back({isa, kt->gemm.fn, kt->gemm.mr, kt->gemm.nr, kt->gemm.kr});
#endif
  return ks;
}

void note_coverage(const std::vector<Kernel>& ks) {
  static bool said = false;
  if (said) return;
  said = true;
  std::printf("  VNNI GEMM kernels tested here:");
  for (size_t i = 1; i < ks.size(); i++) std::printf(" %s;", ks[i].name.c_str());
  if (ks.size() == 1) std::printf(" none");
#if !defined(LOWBIT_TEST_SIMDE) && defined(LOWBIT_HAVE_X86)
  std::printf(" (SIMDe headers not found at configure time: install libsimde-dev to test them on "
              "CPUs without the instructions)");
#endif
  std::printf("\n");
}

// One GEMM as the driver would cut it: operands, zero-point terms and the epilogue.
struct Problem {
  size_t M = 0, K = 0, N = 0;
  std::vector<uint8_t> a;  // M x K
  std::vector<int8_t> b;   // K x N
  std::vector<int32_t> row_add, row_mul;  // M
  // Per-column arrays, N entries followed by garbage up to a multiple of every nr (the kernels
  // may read nr entries from a panel's start; what they read past N must not matter).
  std::vector<int32_t> colsum, bias_i32;
  std::vector<float> a_scale, b_scale, bias, q_scale;
  GemmOut kind = GemmOut::s32;
  size_t a_scale_step = 0;
  bool use_bias = false, relu = false, use_bias_i32 = false;
  float q_lo = 0, q_hi = 0;
  int32_t q_zp = 0;
  size_t ldo = 0;  // > N: the columns past N must stay untouched
  size_t elem() const { return kind == GemmOut::q8 ? 1 : 4; }
};

constexpr size_t kColPad = 48;  // a multiple of every nr above
constexpr uint8_t kCanary = 0xCD;

size_t padded_cols(size_t N) { return (N + kColPad - 1) / kColPad * kColPad; }

// Values: 0 full range, 1 u7 x s7, 2 all 255 x -128, 3 all 255 x 127, 4 each of A in {0, 255}
// and of B in {-128, 127}, 5 tiny (A in [0, 3], B in [-3, 3]: round-half-even ties in q8).
void fill_operands(Problem& p, int values, std::mt19937& rng) {
  p.a.resize(p.M * p.K);
  p.b.resize(p.K * p.N);
  for (auto& v : p.a) {
    const uint32_t r = rng();
    v = values == 0 ? uint8_t(r) : values == 1 ? uint8_t(r % 128) : values == 2 || values == 3 ? 255
        : values == 4 ? (r & 1 ? 255 : 0) : uint8_t(r % 4);
  }
  for (auto& v : p.b) {
    const uint32_t r = rng();
    v = values == 0 ? int8_t(r) : values == 1 ? int8_t(int(r % 128) - 64) : values == 2 ? -128
        : values == 3 ? 127 : values == 4 ? (r & 1 ? 127 : -128) : int8_t(int(r % 7) - 3);
  }
}

// Zero-point terms: 0 none, 1 as the driver makes them for random zero points, 2 random int32
// (row_add + row_mul * colsum wraps).
void fill_zero_terms(Problem& p, int zterms, std::mt19937& rng) {
  const size_t np = padded_cols(p.N);
  p.row_add.assign(p.M, 0);
  p.row_mul.assign(p.M, 0);
  p.colsum.assign(np, 0);
  for (size_t j = p.N; j < np; j++) p.colsum[j] = static_cast<int32_t>(rng());  // garbage
  if (zterms == 0) return;
  if (zterms == 2) {
    for (auto& v : p.row_add) v = static_cast<int32_t>(rng());
    for (auto& v : p.row_mul) v = static_cast<int32_t>(rng());
    for (size_t j = 0; j < p.N; j++) p.colsum[j] = static_cast<int32_t>(rng());
    return;
  }
  const uint32_t zb = rng() % 5, K = static_cast<uint32_t>(p.K);
  for (size_t j = 0; j < p.N; j++) {
    int32_t s = 0;
    for (size_t k = 0; k < p.K; k++) s += p.b[k * p.N + j];
    p.colsum[j] = s;
  }
  for (size_t m = 0; m < p.M; m++) {
    const uint32_t za = rng() % 256;
    uint32_t rs = 0;
    for (size_t k = 0; k < p.K; k++) rs += p.a[m * p.K + k];
    p.row_add[m] = static_cast<int32_t>(K * za * zb - zb * rs);
    p.row_mul[m] = static_cast<int32_t>(0u - za);
  }
}

// v(r, j) = sum_k A B + row_add + row_mul * colsum, wrapping int32 (the contract).
std::vector<int32_t> raw_values(const Problem& p) {
  std::vector<int32_t> v(p.M * p.N);
  for (size_t m = 0; m < p.M; m++)
    for (size_t n = 0; n < p.N; n++) {
      int64_t s = 0;
      for (size_t k = 0; k < p.K; k++) s += int64_t(p.a[m * p.K + k]) * p.b[k * p.N + n];
      const uint32_t u = static_cast<uint32_t>(s) + static_cast<uint32_t>(p.row_add[m]) +
                         static_cast<uint32_t>(p.row_mul[m]) * static_cast<uint32_t>(p.colsum[n]);
      v[m * p.N + n] = static_cast<int32_t>(u);
    }
  return v;
}

// The epilogue written out from lowbit/kernels.h; the output rows with their canary tails.
std::vector<uint8_t> expected(const Problem& p) {
  const std::vector<int32_t> v = raw_values(p);
  std::vector<uint8_t> out(p.M * p.ldo * p.elem(), kCanary);
  for (size_t m = 0; m < p.M; m++)
    for (size_t n = 0; n < p.N; n++) {
      const int32_t x = v[m * p.N + n];
      uint8_t* dst = out.data() + (m * p.ldo + n) * p.elem();
      if (p.kind == GemmOut::s32) {
        std::memcpy(dst, &x, 4);
      } else if (p.kind == GemmOut::f32) {
        const float s = p.a_scale[m * p.a_scale_step] * p.b_scale[n];
        float y = static_cast<float>(x) * s;
        if (p.use_bias) y = y + p.bias[n];
        if (p.relu) y = y > 0.0f ? y : 0.0f;
        std::memcpy(dst, &y, 4);
      } else {
        const uint32_t xb = static_cast<uint32_t>(x) +
                            static_cast<uint32_t>(p.use_bias_i32 ? p.bias_i32[n] : 0);
        float y = static_cast<float>(static_cast<int32_t>(xb)) * p.q_scale[n];
        y = std::min(std::max(y, p.q_lo), p.q_hi);
        *dst = static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(y)) + p.q_zp);
      }
    }
  return out;
}

// Runs kernel k over the whole problem as the driver does: A packed with K padded to kp (and
// rows lda > kp bytes apart, garbage between), B packed in k's format, row strips of `height`
// (<= k.mr) rows over every panel.
std::vector<uint8_t> run(const Kernel& k, const Problem& p, size_t height) {
  const size_t kr = static_cast<size_t>(k.kr), nr = static_cast<size_t>(k.nr);
  const size_t kp = (p.K + kr - 1) / kr * kr, lda = kp + 4 + p.K % 7;
  std::vector<uint8_t> apack(p.M * lda + 64, 0xA5);
  for (size_t m = 0; m < p.M; m++) {
    std::memcpy(apack.data() + m * lda, p.a.data() + m * p.K, p.K);
    std::fill(apack.data() + m * lda + p.K, apack.data() + m * lda + kp, uint8_t(0));
  }
  const PackedB pb = pack_b(p.b.data(), p.K, p.N, static_cast<ptrdiff_t>(p.N), 1, k.nr, k.kr);
  std::vector<uint8_t> out(p.M * p.ldo * p.elem(), kCanary);
  for (size_t r0 = 0; r0 < p.M; r0 += height)
    for (size_t panel = 0; panel < pb.panels; panel++) {
      const size_t n0 = panel * nr;
      GemmTile t{};
      t.mr = std::min(height, p.M - r0);
      t.nc = std::min(nr, p.N - n0);
      t.kp = kp;
      t.a = apack.data() + r0 * lda;
      t.lda = lda;
      t.b = pb.data.data() + panel * pb.kp * nr;
      t.row_add = p.row_add.data() + r0;
      t.row_mul = p.row_mul.data() + r0;
      t.colsum = p.colsum.data() + n0;
      t.out_kind = p.kind;
      if (p.kind == GemmOut::f32) {
        t.a_scale = p.a_scale.data() + r0 * p.a_scale_step;
        t.a_scale_step = p.a_scale_step;
        t.b_scale = p.b_scale.data() + n0;
        t.bias = p.use_bias ? p.bias.data() + n0 : nullptr;
        t.relu = p.relu;
      } else if (p.kind == GemmOut::q8) {
        t.bias_i32 = p.use_bias_i32 ? p.bias_i32.data() + n0 : nullptr;
        t.q_scale = p.q_scale.data() + n0;
        t.q_lo = p.q_lo;
        t.q_hi = p.q_hi;
        t.q_zp = p.q_zp;
      }
      t.out = out.data() + (r0 * p.ldo + n0) * p.elem();
      t.ldo = p.ldo;
      k.fn(t);
    }
  return out;
}

// The first difference, for the failure message.
std::string first_diff(const Problem& p, const std::vector<uint8_t>& got,
                       const std::vector<uint8_t>& want) {
  for (size_t i = 0; i < got.size(); i++)
    if (got[i] != want[i]) {
      const size_t e = i / p.elem(), m = e / p.ldo, n = e % p.ldo;
      char buf[160];
      std::snprintf(buf, sizeof buf, "first difference at row %zu column %zu%s", m, n,
                    n >= p.N ? " (outside the matrix)" : "");
      return buf;
    }
  return "";
}

// Checks every kernel on p with every strip height in `heights` (clamped to the kernel's mr).
bool check_all(const std::vector<Kernel>& ks, const Problem& p, const std::vector<size_t>& heights,
               std::string& where) {
  const std::vector<uint8_t> want = expected(p);
  for (const auto& k : ks)
    for (size_t h : heights) {
      const size_t height = std::min(h, static_cast<size_t>(k.mr));
      const std::vector<uint8_t> got = run(k, p, height);
      if (got != want) {
        where = k.name + " strip height " + std::to_string(height) + ": " + first_diff(p, got, want);
        return false;
      }
    }
  return true;
}

std::vector<size_t> all_heights(const std::vector<Kernel>& ks) {
  int mr = 1;
  for (const auto& k : ks) mr = std::max(mr, k.mr);
  std::vector<size_t> h;
  for (int i = 1; i <= mr; i++) h.push_back(static_cast<size_t>(i));
  return h;
}

void set_s32(Problem& p) {
  p.kind = GemmOut::s32;
  p.ldo = p.N + 3;
}

}  // namespace

// The dispatch selects the VNNI sets only on CPUs with the instructions (and the OS state).
TEST(gemm_vnni_sets_need_their_features) {
  const auto isas = supported_isas();
  auto supported = [&](const char* isa) {
    return std::find(isas.begin(), isas.end(), isa) != isas.end();
  };
  if (supported("avx512vnni"))
    for (const char* f : {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vnni"})
      CHECK(cpu_has(f), "avx512vnni selected without %s", f);
  if (supported("avxvnni")) CHECK(cpu_has("avxvnni") && cpu_has("avx2"), "avxvnni without avxvnni");
  CHECK(supported("avx512vnni") == (kernel_table("avx512vnni") != nullptr), "kernel_table");
  CHECK(!set_isa(cpu_has("avx512vnni") ? "no-such-set" : "avx512vnni"), "set_isa of a set this CPU lacks");
#if defined(LOWBIT_TEST_SIMDE)
  // The SIMDe builds' formats are the dispatch entries' (visible where the CPU has the set).
  if (const KernelTable* kt = kernel_table("avx512vnni"))
    CHECK(kt->gemm.mr == kVnni512MR && kt->gemm.nr == kVnni512NR && kt->gemm.kr == kKR &&
              kt->gemm.apack == APack::u8, "avx512vnni entry");
  if (const KernelTable* kt = kernel_table("avxvnni"))
    CHECK(kt->gemm.mr == kVnniAvxMR && kt->gemm.nr == kVnniAvxNR && kt->gemm.kr == kKR &&
              kt->gemm.apack == APack::u8, "avxvnni entry");
#endif
}

// int32 output over shapes: every tile height, partial panels of each block count, K tails.
TEST(gemm_vnni_kernels_shapes) {
  const auto ks = kernels_under_test();
  note_coverage(ks);
  const auto heights = all_heights(ks);
  std::mt19937 rng(21);
  std::string where;
  for (size_t N : {1, 5, 16, 17, 31, 32, 33, 47, 48, 49, 64, 97})
    for (size_t K : {1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 33, 64, 127, 300}) {
      Problem p;
      p.M = 13;
      p.K = K;
      p.N = N;
      fill_operands(p, 0, rng);
      fill_zero_terms(p, K % 3 == 0 ? 2 : 1, rng);
      set_s32(p);
      CHECK(check_all(ks, p, heights, where), "N=%zu K=%zu %s", N, K, where.c_str());
    }
  // narrow and mixed-extreme values, a few shapes
  for (int values : {1, 4, 5})
    for (size_t N : {7, 48, 50})
      for (size_t K : {3, 64, 129}) {
        Problem p;
        p.M = 7;
        p.K = K;
        p.N = N;
        fill_operands(p, values, rng);
        fill_zero_terms(p, 1, rng);
        set_s32(p);
        CHECK(check_all(ks, p, heights, where), "values=%d N=%zu K=%zu %s", values, N, K,
              where.c_str());
      }
}

// Float (scale, bias, ReLU) and 8-bit requantize epilogues.
TEST(gemm_vnni_kernels_epilogues) {
  const auto ks = kernels_under_test();
  std::mt19937 rng(22);
  std::uniform_real_distribution<float> uni(0.001f, 0.02f);
  std::string where;
  const std::vector<size_t> heights = {1, 4, 6};
  for (int values : {0, 1, 5})
    for (size_t N : {7, 16, 37, 48, 50})
      for (size_t K : {5, 64, 300}) {
        Problem p;
        p.M = 13;
        p.K = K;
        p.N = N;
        fill_operands(p, values, rng);
        fill_zero_terms(p, values == 5 ? 0 : 1, rng);
        const size_t np = padded_cols(N);
        p.a_scale.resize(p.M);
        p.b_scale.resize(np);
        p.bias.resize(np);
        p.q_scale.resize(np);
        p.bias_i32.resize(np);
        for (auto& v : p.a_scale) v = uni(rng);
        for (auto& v : p.b_scale) v = uni(rng);
        for (auto& v : p.bias) v = uni(rng) * 1000.0f - 10.0f;
        for (auto& v : p.bias_i32) v = static_cast<int32_t>(rng() % 20001) - 10000;
        // q8 scales: values spread over about [-300, 300] (clamped at both ends), or 1/2 on
        // every third column (exact ties for round-half-even)
        const std::vector<int32_t> raw = raw_values(p);
        for (size_t n = 0; n < N; n++) {
          int64_t mx = 1;
          for (size_t m = 0; m < p.M; m++) mx = std::max<int64_t>(mx, std::abs(int64_t(raw[m * N + n])));
          p.q_scale[n] = n % 3 == 0 ? 0.5f : static_cast<float>(300.0 / double(mx));
        }
        for (size_t j = N; j < np; j++)  // garbage past N
          p.b_scale[j] = p.bias[j] = p.q_scale[j] = std::nanf("");
        for (int step : {0, 1})
          for (bool bias : {false, true})
            for (bool relu : {false, true}) {
              p.kind = GemmOut::f32;
              p.ldo = N + 2;
              p.a_scale_step = static_cast<size_t>(step);
              p.use_bias = bias;
              p.relu = relu;
              CHECK(check_all(ks, p, heights, where), "f32 values=%d N=%zu K=%zu step=%d bias=%d relu=%d %s",
                    values, N, K, step, bias, relu, where.c_str());
            }
        // (qmin, qmax, zero point): uint8, int8 (stored as its byte), and ReLU raising qmin
        const int32_t ranges[][3] = {{0, 255, 100}, {-128, 127, -3}, {100, 255, 100}, {0, 255, 0}};
        for (auto& rg : ranges)
          for (bool bias : {false, true}) {
            p.kind = GemmOut::q8;
            p.ldo = N + 5;
            p.use_bias_i32 = bias;
            p.q_zp = rg[2];
            p.q_lo = static_cast<float>(rg[0] - rg[2]);
            p.q_hi = static_cast<float>(rg[1] - rg[2]);
            CHECK(check_all(ks, p, heights, where), "q8 values=%d N=%zu K=%zu range=[%d,%d] zp=%d bias=%d %s",
                  values, N, K, rg[0], rg[1], rg[2], bias, where.c_str());
          }
      }
}

// The largest products over long depths: 255 x -128 (and x 127) summed over K = 65,793 just
// fits int32; longer, the exact int32 sum wraps (vpdpbusd adds without saturation).
TEST(gemm_vnni_kernels_extremes) {
  const auto ks = kernels_under_test();
  std::mt19937 rng(23);
  std::string where;
  for (int values : {2, 3, 4})
    for (size_t K : {65793, 70001}) {
      Problem p;
      p.M = 7;
      p.K = K;
      p.N = 53;
      fill_operands(p, values, rng);
      fill_zero_terms(p, 0, rng);
      set_s32(p);
      CHECK(check_all(ks, p, {6}, where), "values=%d K=%zu %s", values, K, where.c_str());
      if (values == 2 && K == 65793) {  // the sum is -2^31 + 128: check the reference itself
        const auto v = raw_values(p);
        CHECK(v[0] == -2147483520, "reference %d", v[0]);
      }
    }
}
