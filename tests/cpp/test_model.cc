// The runtime model: results equal the library's layers, every corruption is refused, and the
// forward pass allocates nothing.
#include <atomic>
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

}  // namespace

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
  os.kind = OutputStage::Kind::float32;
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
  extra[4] = 2;
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
