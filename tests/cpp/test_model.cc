// The runtime model: results equal the library's layers, every corruption is refused, and the
// forward pass allocates nothing.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "harness.h"
#include "lowbit/model.h"
#include "lowbit/quant.h"

using namespace lowbit;

// Counts heap allocations while `counting` is set (for the no-allocation test).
static std::atomic<bool> counting{false};
static std::atomic<long> allocations{0};
void* operator new(size_t n) {
  if (counting) allocations++;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace {

struct Writer {
  std::vector<uint8_t> b;
  void raw(const void* p, size_t n) {
    const uint8_t* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
  }
  void u32(uint32_t v) { raw(&v, 4); }
  void f32(float v) { raw(&v, 4); }
};

// in 10 -> linear 7 (dynamic, bias) -> relu -> linear 3 (static activations) -> out 3
std::vector<uint8_t> make_file(std::mt19937& rng, std::vector<int8_t>* w1, std::vector<int8_t>* w2) {
  Writer w;
  w.raw("LBRT", 4);
  w.u32(1), w.u32(3), w.u32(10), w.u32(3);
  w1->resize(7 * 10);
  w2->resize(3 * 7);
  for (auto& v : *w1) v = static_cast<int8_t>(int(rng() % 255) - 127);
  for (auto& v : *w2) v = static_cast<int8_t>(int(rng() % 255) - 127);
  w.u32(1), w.u32(10), w.u32(7), w.u32(1), w.f32(1.0f), w.u32(0);
  for (int i = 0; i < 7; i++) w.f32(0.01f * (i + 1));
  w.raw(w1->data(), w1->size());
  for (int i = 0; i < 7; i++) w.f32(0.1f * i - 0.3f);
  w.u32(2);
  w.u32(1), w.u32(7), w.u32(3), w.u32(2), w.f32(0.02f), w.u32(3);
  for (int i = 0; i < 3; i++) w.f32(0.05f);
  w.raw(w2->data(), w2->size());
  w.u32(crc32(w.b.data(), w.b.size()));
  return w.b;
}

// Version 2, codebook layers: in 12 -> codebook 9 (k=5, 4-bit codes, bias) -> relu ->
// codebook 8 (k=20, dim=3, 13-bit activations) -> codebook 4 (k=300, dim=2, 16-bit codes, bias).
struct CbSpec {
  uint32_t K, N, k, dim, flags;
};
const CbSpec kCb[3] = {{12, 9, 5, 1, 1}, {9, 8, 20, 3, 2}, {8, 4, 300, 2, 1}};

std::vector<uint8_t> make_codebook_file(std::mt19937& rng, std::vector<float> (&cent)[3],
                                        std::vector<uint16_t> (&codes)[3],
                                        std::vector<float> (&bias)[3]) {
  Writer w;
  w.raw("LBRT", 4);
  w.u32(2), w.u32(4), w.u32(12), w.u32(4);
  for (int l = 0; l < 3; l++) {
    const CbSpec& c = kCb[l];
    cent[l].resize(c.k * c.dim);
    for (auto& v : cent[l]) v = std::normal_distribution<float>(0, 0.3f)(rng);
    codes[l].resize(c.N * c.K / c.dim);
    for (auto& v : codes[l]) v = static_cast<uint16_t>(rng() % c.k);
    bias[l].assign(c.flags & 1 ? c.N : 0, 0.0f);
    for (auto& v : bias[l]) v = std::normal_distribution<float>(0, 1)(rng);
    w.u32(3), w.u32(c.K), w.u32(c.N), w.u32(c.k), w.u32(c.dim), w.u32(c.flags);
    w.raw(cent[l].data(), 4 * cent[l].size());
    const int bits = codebook_bits(c.k);
    std::vector<uint8_t> packed(codebook_code_bytes(codes[l].size(), bits), 0);
    for (size_t g = 0; g < codes[l].size(); g++) {
      if (bits == 4) packed[g / 2] |= static_cast<uint8_t>(codes[l][g] << (4 * (g & 1)));
      if (bits == 8) packed[g] = static_cast<uint8_t>(codes[l][g]);
      if (bits == 16) std::memcpy(&packed[2 * g], &codes[l][g], 2);
    }
    w.raw(packed.data(), packed.size());
    w.raw(bias[l].data(), 4 * bias[l].size());
    if (l == 0) w.u32(2);  // relu
  }
  w.u32(crc32(w.b.data(), w.b.size()));
  return w.b;
}

}  // namespace

TEST(model_codebook_layers_match_the_library) {
  std::mt19937 rng(5);
  std::vector<float> cent[3], bias[3];
  std::vector<uint16_t> codes[3];
  const auto file = make_codebook_file(rng, cent, codes, bias);
  Model m;
  std::string err;
  CHECK(m.load(file.data(), file.size(), 6, &err), "%s", err.c_str());
  std::vector<float> x(6 * 12), y(6 * 4);
  for (auto& v : x) v = std::normal_distribution<float>(0, 1)(rng);
  CHECK(m.forward(x.data(), 6, y.data()), "forward");
  // The same layers built directly (CodebookLinearPlan takes unpacked u8 / u16 codes).
  std::vector<float> h = x, want;
  for (int l = 0; l < 3; l++) {
    const CbSpec& c = kCb[l];
    std::vector<uint8_t> c8(codes[l].begin(), codes[l].end());
    const void* cp = c.k > 256 ? static_cast<const void*>(codes[l].data()) : c8.data();
    CodebookLinearPlan plan(cent[l].data(), c.k, c.dim, cp, c.N, c.K,
                            bias[l].empty() ? nullptr : bias[l].data(), c.flags & 2);
    want.assign(6 * c.N, 0.0f);
    CHECK(plan.forward(h.data(), 6, want.data()), "plan forward");
    if (l == 0)
      for (auto& v : want) v = v > 0 ? v : 0;
    h = want;
  }
  CHECK(std::memcmp(y.data(), want.data(), y.size() * 4) == 0, "bit-exact");
  // Allocation-free after load, for every batch size up to the planned one.
  allocations = 0;
  counting = true;
  for (size_t M : {1, 6, 2}) m.forward(x.data(), M, y.data());
  counting = false;
  CHECK(allocations == 0, "%ld allocations in forward", allocations.load());
  // A code >= k behind a valid checksum is refused (the layer would read past its table).
  auto bad = file;
  const size_t codes_at = 20 + 4 + 20 + 4 * 5;  // header, kind, layer header, 5 centroids
  bad[codes_at] = 0x77;                           // codes 7 and 7 with k = 5
  uint32_t cc = crc32(bad.data(), bad.size() - 4);
  std::memcpy(bad.data() + bad.size() - 4, &cc, 4);
  CHECK(!m.load(bad.data(), bad.size(), 6, &err) && err.find("code out of range") != std::string::npos,
        "%s", err.c_str());
  // Every truncation is refused.
  for (size_t n = 0; n < file.size(); n++) CHECK(!m.load(file.data(), n, 2, &err), "truncated to %zu", n);
}

extern "C" int lowbit_c_api_check(const unsigned char* file, size_t size, const char* path,
                                  const float* x, size_t rows, float* y);

TEST(c_api_from_c) {
  std::mt19937 rng(6);
  std::vector<float> cent[3], bias[3];
  std::vector<uint16_t> codes[3];
  const auto file = make_codebook_file(rng, cent, codes, bias);
  std::vector<float> x(5 * 12), y(5 * 4), want(5 * 4);
  for (auto& v : x) v = std::normal_distribution<float>(0, 1)(rng);
  const std::string path = "lowbit_c_api_check.lbrt";
  const int failed = lowbit_c_api_check(file.data(), file.size(), path.c_str(), x.data(), 5, y.data());
  std::remove(path.c_str());
  CHECK(failed == 0, "check %d of c_api_check.c failed", failed);
  Model m;
  CHECK(m.load(file.data(), file.size(), 5, nullptr) && m.forward(x.data(), 5, want.data()), "load");
  CHECK(std::memcmp(y.data(), want.data(), y.size() * 4) == 0, "C API output equals lowbit::Model's");
}

TEST(model_matches_library_layers) {
  std::mt19937 rng(1);
  std::vector<int8_t> w1, w2;
  auto file = make_file(rng, &w1, &w2);
  Model m;
  std::string err;
  CHECK(m.load(file.data(), file.size(), 5, &err), "%s", err.c_str());
  CHECK(m.in_features() == 10 && m.out_features() == 3, "shape");
  std::vector<float> x(5 * 10), y(5 * 3);
  for (auto& v : x) v = std::normal_distribution<float>(0, 1)(rng);
  CHECK(m.forward(x.data(), 5, y.data()), "forward");
  // The same computation by hand through the library.
  PackedB p1 = pack_b(w1.data(), 10, 7, 1, 10), p2 = pack_b(w2.data(), 7, 3, 1, 7);
  std::vector<float> s1(7), b1(7), h(5 * 7), want(5 * 3), s2(3, 0.05f);
  for (int i = 0; i < 7; i++) s1[i] = 0.01f * (i + 1), b1[i] = 0.1f * i - 0.3f;
  linear_dynamic(x.data(), 5, p1, s1.data(), true, b1.data(), false, h.data());
  for (auto& v : h) v = v > 0 ? v : 0;
  std::vector<uint8_t> codes(5 * 7);
  const float as = 0.02f;
  const int32_t az = 3;
  quantize_static(h.data(), Shape3{1, 1, 35}, &as, &az, 0, 255, codes.data());
  OutputStage os;
  os.kind = GemmOut::f32;
  os.a_zp = 3;
  os.a_scale = &as;
  os.b_scale = s2.data();
  os.b_scale_per_col = true;
  os.out = want.data();
  os.ldo = 3;
  gemm_u8s8(codes.data(), 7, 5, p2, os);
  CHECK(std::memcmp(y.data(), want.data(), y.size() * 4) == 0, "bit-exact");
  CHECK(!m.forward(x.data(), 6, y.data()), "batch over max_batch refused");
  x[3] = NAN;
  CHECK(!m.forward(x.data(), 5, y.data()), "NaN refused");
}

TEST(model_forward_allocates_nothing) {
  std::mt19937 rng(2);
  std::vector<int8_t> w1, w2;
  auto file = make_file(rng, &w1, &w2);
  Model m;
  CHECK(m.load(file.data(), file.size(), 64, nullptr), "load");
  std::vector<float> x(64 * 10, 0.5f), y(64 * 3);
  allocations = 0;
  counting = true;
  for (size_t M : {1, 7, 64, 3}) m.forward(x.data(), M, y.data());
  counting = false;
  CHECK(allocations == 0, "%ld allocations in forward", allocations.load());
}

TEST(model_refuses_every_corruption) {
  std::mt19937 rng(3);
  std::vector<int8_t> w1, w2;
  const auto good = make_file(rng, &w1, &w2);
  Model m;
  std::string err;
  for (size_t n = 0; n < good.size(); n++)  // every truncation
    CHECK(!m.load(good.data(), n, 4, &err), "truncated to %zu accepted", n);
  for (size_t i = 0; i < good.size(); i++)  // every single-byte flip
    for (uint8_t bit : {1, 0x80}) {
      auto bad = good;
      bad[i] ^= bit;
      CHECK(!m.load(bad.data(), bad.size(), 4, &err), "flip at %zu accepted", i);
    }
  auto extra = good;  // wrong version with a valid checksum
  extra[4] = 3;
  uint32_t c = crc32(extra.data(), extra.size() - 4);
  std::memcpy(extra.data() + extra.size() - 4, &c, 4);
  CHECK(!m.load(extra.data(), extra.size(), 4, &err) && err.find("version") != std::string::npos, "%s", err.c_str());
  // Random bytes, and random garbage behind a valid magic and checksum: refused, never a crash.
  for (int t = 0; t < 2000; t++) {
    std::vector<uint8_t> junk(rng() % 200 + 8);
    for (auto& v : junk) v = static_cast<uint8_t>(rng());
    if (t % 2) {
      std::memcpy(junk.data(), "LBRT\x01\0\0\0", 8);
      uint32_t cc = crc32(junk.data(), junk.size() - 4);
      std::memcpy(junk.data() + junk.size() - 4, &cc, 4);
    }
    m.load(junk.data(), junk.size(), 4, &err);
  }
  CHECK(m.load(good.data(), good.size(), 4, &err), "%s", err.c_str());
}
