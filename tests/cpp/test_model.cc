// The runtime model: results equal the library's layers, every corruption is refused, and the
// forward pass allocates nothing.
#include <atomic>
#include <cmath>
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

// in 10 -> linear 7 (dynamic, bias) -> relu -> linear 3 (static activations) -> out 3; with
// four_bit the first layer's codes are in [-8, 7].
std::vector<uint8_t> make_file(std::mt19937& rng, std::vector<int8_t>* w1, std::vector<int8_t>* w2,
                               bool four_bit = false) {
  Writer w;
  w.raw("LBRT", 4);
  w.u32(1), w.u32(3), w.u32(10), w.u32(3);
  w1->resize(7 * 10);
  w2->resize(3 * 7);
  for (auto& v : *w1) v = static_cast<int8_t>(four_bit ? int(rng() % 16) - 8 : int(rng() % 255) - 127);
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

// Static chain, version 1: in 12 -> static 40 (scale 0.1, zp 128, bias) -> relu -> static 32
// (0.05, 0, bias) -> static 6 (7-bit codes: 0.08, 64) -> relu -> out 6.
struct ChainSpec {
  uint32_t K, N;
  float act_scale;
  int32_t act_zp;
  bool bias, act7;
};
const float kWScale[3] = {0.15f, 0.06f, 0.01f};
const ChainSpec kChain[3] = {{12, 40, 0.1f, 128, true, false},
                             {40, 32, 0.05f, 0, true, false},
                             {32, 6, 0.08f, 64, false, true}};

std::vector<uint8_t> make_chain_file(std::mt19937& rng, std::vector<Model::Layer>* layers,
                                     std::vector<std::vector<int8_t>>* weights) {
  Writer w;
  w.raw("LBRT", 4);
  w.u32(1), w.u32(5), w.u32(12), w.u32(6);
  layers->clear();
  weights->assign(3, {});
  for (int l = 0; l < 3; l++) {
    const ChainSpec& c = kChain[l];
    Model::Layer L;
    L.kind = 1;
    L.static_act = true;
    L.act_bits = c.act7 ? 7 : 8;
    L.act_scale = c.act_scale;
    L.act_zp = c.act_zp;
    auto& codes = (*weights)[l];
    codes.resize(c.N * c.K);
    for (auto& v : codes) v = static_cast<int8_t>(int(rng() % 7) - 3);
    for (uint32_t n = 0; n < c.N; n++) L.w_scale.push_back(kWScale[l] * (1 + (n % 8) / 8.0f));
    if (c.bias)
      for (uint32_t n = 0; n < c.N; n++) L.bias.push_back(0.1f * (n % 20) - 1.0f);
    w.u32(1), w.u32(c.K), w.u32(c.N), w.u32((c.bias ? 1 : 0) | 2 | (c.act7 ? 4 : 0));
    w.f32(c.act_scale), w.u32(static_cast<uint32_t>(c.act_zp));
    w.raw(L.w_scale.data(), 4 * c.N);
    w.raw(codes.data(), codes.size());
    w.raw(L.bias.data(), 4 * L.bias.size());
    L.w = std::make_shared<const PackedB>(pack_b(codes.data(), c.K, c.N, 1, c.K));
    layers->push_back(std::move(L));
    if (l != 1) {
      w.u32(2);
      Model::Layer R;
      R.kind = 2;
      layers->push_back(std::move(R));
    }
  }
  w.u32(crc32(w.b.data(), w.b.size()));
  return w.b;
}

// One chained static layer by the definition (lowbit/model.h), in scalar code: int32 sums, the
// multiplier and integer bias from double, q = clamp(rne(float(acc + bias) * m) + zp, lo, qmax).
std::vector<uint8_t> requant_oracle(const std::vector<uint8_t>& a, size_t M, const ChainSpec& c,
                                    const std::vector<int8_t>& w, const Model::Layer& L,
                                    const ChainSpec& next, bool relu) {
  std::vector<uint8_t> out(M * c.N);
  const int qmax = next.act7 ? 127 : 255, lo = relu ? next.act_zp : 0;
  for (size_t m = 0; m < M; m++)
    for (size_t n = 0; n < c.N; n++) {
      int32_t acc = 0;
      for (size_t k = 0; k < c.K; k++) acc += (a[m * c.K + k] - c.act_zp) * w[n * c.K + k];
      const double s = static_cast<double>(c.act_scale) * L.w_scale[n];
      const float mult = static_cast<float>(s / next.act_scale);
      const int32_t b = c.bias ? static_cast<int32_t>(std::nearbyint(L.bias[n] / s)) : 0;
      const float q = std::nearbyintf(static_cast<float>(acc + b) * mult) + next.act_zp;
      out[m * c.N + n] = static_cast<uint8_t>(std::min<float>(std::max<float>(q, lo), qmax));
    }
  return out;
}

}  // namespace

TEST(model_static_chain_runs_on_codes) {
  std::mt19937 rng(7);
  std::vector<Model::Layer> layers;
  std::vector<std::vector<int8_t>> w;
  const auto file = make_chain_file(rng, &layers, &w);
  const size_t M = 64;
  std::vector<float> x(M * 12), y(M * 6), want(M * 6);
  for (auto& v : x) v = std::normal_distribution<float>(0, 4)(rng);
  Model m;
  std::string err;
  CHECK(m.load(file.data(), file.size(), M, &err), "%s", err.c_str());
  CHECK(m.forward(x.data(), M, y.data()), "forward");
  // By the definition: quantize, two requantized links (the first through ReLU, the second into
  // 7-bit codes), then the last layer's float epilogue with the ReLU fused.
  std::vector<uint8_t> c0(M * 12);
  CHECK(quantize_static(x.data(), Shape3{1, 1, M * 12}, &kChain[0].act_scale, &kChain[0].act_zp,
                        0, 255, c0.data()), "quantize");
  const auto c1 = requant_oracle(c0, M, kChain[0], w[0], layers[0], kChain[1], true);
  const auto c2 = requant_oracle(c1, M, kChain[1], w[1], layers[2], kChain[2], false);
  size_t sat1 = 0, sat2 = 0, zero2 = 0;  // the data exercises the codes' range
  for (uint8_t v : c1) sat1 += v == 255;
  for (uint8_t v : c2) sat2 += v == 127, zero2 += v == 0;
  CHECK(sat1 < c1.size() / 4 && sat2 < c2.size() / 4 && zero2 < c2.size() / 4, "%zu %zu %zu", sat1,
        sat2, zero2);
  // The data tells this plan from one going through float between the layers (dequantize in the
  // epilogue, quantize again): the first two layers' codes differ somewhere.
  std::vector<uint8_t> f1(M * 40), f2(M * 32);
  for (int l = 0; l < 2; l++) {
    const ChainSpec& c = kChain[l];
    std::vector<float> h(M * c.N);
    OutputStage fs;
    fs.kind = GemmOut::f32;
    fs.a_zp = c.act_zp;
    fs.a_scale = &c.act_scale;
    fs.b_scale = layers[2 * l].w_scale.data();
    fs.b_scale_per_col = true;
    fs.bias = layers[2 * l].bias.data();
    fs.relu = l == 0;
    fs.out = h.data();
    fs.ldo = c.N;
    gemm_u8s8((l ? c1 : c0).data(), c.K, M, *layers[2 * l].w, fs);
    CHECK(quantize_static(h.data(), Shape3{1, 1, M * c.N}, &kChain[l + 1].act_scale,
                          &kChain[l + 1].act_zp, 0, l ? 127 : 255, (l ? f2 : f1).data()), "q");
  }
  CHECK(f1 != c1 && f2 != c2, "the test's data does not tell the chain from the float path");
  OutputStage os;
  os.kind = GemmOut::f32;
  os.a_zp = kChain[2].act_zp;
  os.a_scale = &kChain[2].act_scale;
  os.b_scale = layers[3].w_scale.data();
  os.b_scale_per_col = true;
  os.relu = true;
  os.out = want.data();
  os.ldo = 6;
  gemm_u8s8(c2.data(), 32, M, *layers[3].w, os);
  CHECK(std::memcmp(y.data(), want.data(), y.size() * 4) == 0, "bit-exact");
  // The same layers handed to build() (sharing the packed weights): the same plan and output.
  Model b;
  CHECK(b.build(layers, 12, 2, &err), "%s", err.c_str());
  CHECK(b.in_features() == 12 && b.out_features() == 6 && b.max_batch() == 2, "shape");
  std::vector<float> yb(M * 6);
  CHECK(!b.forward(x.data(), M, yb.data()), "batch over max_batch refused");
  for (size_t r = 0; r < M; r += 2)  // in chunks: rows are independent
    CHECK(b.forward(x.data() + r * 12, std::min<size_t>(2, M - r), yb.data() + r * 6), "chunk");
  CHECK(std::memcmp(yb.data(), want.data(), y.size() * 4) == 0, "build() bit-exact in chunks");
  CHECK(b.reserve(M, &err) && b.max_batch() == M, "%s", err.c_str());
  std::fill(yb.begin(), yb.end(), 0.0f);
  CHECK(b.forward(x.data(), M, yb.data()), "forward after reserve");
  CHECK(std::memcmp(yb.data(), want.data(), y.size() * 4) == 0, "reserve() bit-exact");
  CHECK(!b.reserve(0, &err) && b.max_batch() == M, "reserve(0) refused, model unchanged");
  // build() checks what load() checks.
  auto bad = layers;
  bad[2].act_zp = 256;
  CHECK(!b.build(bad, 12, 2, &err) && err.find("activation") != std::string::npos, "%s", err.c_str());
  bad = layers;
  CHECK(!b.build(bad, 11, 2, &err) && err.find("takes 12 features but receives 11") != std::string::npos,
        "%s", err.c_str());
  bad = layers;
  bad[0].w_scale.pop_back();
  CHECK(!b.build(bad, 12, 2, &err), "short w_scale accepted");
  // A link whose multiplier is not a finite float32 runs through float.
  bad = layers;
  bad[2].act_scale = 1e-38f;  // m = 0.1 * w_scale / 1e-38 > FLT_MAX
  CHECK(b.build(bad, 12, M, &err) && b.forward(x.data(), M, yb.data()), "%s", err.c_str());
}

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
 for (bool four_bit : {false, true}) {
  std::mt19937 rng(1);
  std::vector<int8_t> w1, w2;
  auto file = make_file(rng, &w1, &w2, four_bit);
  Model m;
  std::string err;
  CHECK(m.load(file.data(), file.size(), 5, &err), "%s", err.c_str());
  CHECK(m.in_features() == 10 && m.out_features() == 3, "shape");
  // the 4-bit layer held two codes a byte
  const PackedB q1 = pack_b(w1.data(), 10, 7, 1, 10), q2 = pack_b(w2.data(), 7, 3, 1, 7);
  const size_t first = four_bit ? pack_b_s4(w1.data(), 10, 7, 1, 10).nbytes() : q1.nbytes();
  CHECK(!four_bit || first < q1.nbytes(), "s4 smaller");
  CHECK(m.weight_bytes() == first + q2.nbytes() + 4 * (7 + 7 + 3), "weight_bytes %zu", m.weight_bytes());
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
