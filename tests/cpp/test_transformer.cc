// Transformer kernels (LayerNorm, GELU, softmax, vecmat) of every kernel set this CPU runs against
// the scalar references, bit for bit, and the references against double-precision formulas; the
// encoder's file round trip, its independence of batching and padding, and its refusals.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "harness.h"
#include "kernel_sets.h"
#include "lowbit/encoder.h"
#include "lowbit/runtime.h"

using namespace lowbit;
using lbtest::for_each_simd;
using lbtest::gaussian;

namespace {

const std::vector<size_t> kLengths = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, 384, 1536};

bool same(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

double gelu_ref(double x, int form) {
  if (form == 0) return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
  const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
  return 0.5 * x * (1.0 + std::tanh(u));
}

}  // namespace

TEST(transformer_kernels_match_scalar) {
  std::mt19937 rng(21);
  const KernelTable& ref = *kernel_table("scalar");
  for_each_simd([&](const KernelTable&, const KernelTable& s) {
    for (size_t n : kLengths) {
      auto x = gaussian(n, rng), r = gaussian(n, rng), g = gaussian(n, rng), b = gaussian(n, rng);
      for (auto& v : x) v = v * 4.0f + 1.5f;
      x[0] = 30.0f;  // GELU and softmax far out, and a large LayerNorm outlier
      for (bool with_r : {false, true}) {
        std::vector<float> a(n), c(n);
        ref.f32_f32_layernorm(x.data(), with_r ? r.data() : nullptr, n, g.data(), b.data(), 1e-12f, a.data());
        s.f32_f32_layernorm(x.data(), with_r ? r.data() : nullptr, n, g.data(), b.data(), 1e-12f, c.data());
        CHECK(same(a, c), "%s layernorm n=%zu r=%d", s.isa, n, with_r);
        std::vector<float> in_place = x;  // y = x
        s.f32_f32_layernorm(in_place.data(), with_r ? r.data() : nullptr, n, g.data(), b.data(), 1e-12f, in_place.data());
        CHECK(same(a, in_place), "%s layernorm in place n=%zu", s.isa, n);
      }
      for (int form : {0, 1}) {
        std::vector<float> a(n), c(n);
        ref.f32_f32_gelu(x.data(), n, form, a.data());
        s.f32_f32_gelu(x.data(), n, form, c.data());
        CHECK(same(a, c), "%s gelu form %d n=%zu", s.isa, form, n);
      }
      std::vector<float> a = x, c = x;
      ref.f32_f32_softmax(a.data(), n);
      s.f32_f32_softmax(c.data(), n);
      CHECK(same(a, c), "%s softmax n=%zu", s.isa, n);
      for (size_t cols : {1, 5, 8, 23, 32, 33, 64, 100}) {
        auto m = gaussian(n * (cols + 3), rng);
        std::vector<float> o1(cols), o2(cols);
        ref.f32_f32_vecmat(x.data(), n, m.data(), cols + 3, cols, o1.data());
        s.f32_f32_vecmat(x.data(), n, m.data(), cols + 3, cols, o2.data());
        CHECK(same(o1, o2), "%s vecmat n=%zu cols=%zu", s.isa, n, cols);
      }
    }
  });
}

TEST(hadamard_rotation_matches_scalar_and_is_orthogonal) {
  std::mt19937 rng(8);
  const KernelTable& ref = *kernel_table("scalar");
  for (size_t n : {128, 384, 1536}) {
    auto x = gaussian(n, rng), y = gaussian(n, rng);
    std::vector<float> signs(n), ones(n, 1.0f);
    for (auto& s : signs) s = rng() & 1 ? 1.0f : -1.0f;
    std::vector<float> a = x, b = y;
    ref.f32_f32_hadamard(a.data(), n, signs.data());
    ref.f32_f32_hadamard(b.data(), n, signs.data());
    double dot0 = 0, dot1 = 0;
    for (size_t i = 0; i < n; i++) dot0 += double(x[i]) * y[i], dot1 += double(a[i]) * b[i];
    CHECK(std::fabs(dot0 - dot1) < 1e-4 * n, "rotation changes x . y: %g vs %g", dot0, dot1);
    std::vector<float> back = a;  // H H = 128 I: the unsigned transform twice undoes it
    ref.f32_f32_hadamard(back.data(), n, ones.data());
    for (size_t i = 0; i < n; i++) CHECK(std::fabs(back[i] * signs[i] - x[i]) < 1e-5f, "inverse n=%zu i=%zu", n, i);
    for_each_simd([&](const KernelTable&, const KernelTable& s) {
      std::vector<float> c = x;
      s.f32_f32_hadamard(c.data(), n, signs.data());
      CHECK(same(a, c), "%s hadamard n=%zu", s.isa, n);
    });
  }
}

TEST(transformer_references_are_accurate) {
  const KernelTable& k = *kernel_table("scalar");
  double worst_gelu = 0, worst_soft = 0, worst_ln = 0;
  std::vector<float> x;
  for (int i = -4000; i <= 4000; i++) x.push_back(i * 0.0025f);  // [-10, 10]
  for (int form : {0, 1}) {
    std::vector<float> y(x.size());
    k.f32_f32_gelu(x.data(), x.size(), form, y.data());
    for (size_t i = 0; i < x.size(); i++)
      worst_gelu = std::max(worst_gelu, std::fabs(y[i] - gelu_ref(x[i], form)) / (1e-3 + std::fabs(gelu_ref(x[i], form))));
  }
  std::mt19937 rng(3);
  for (size_t n : kLengths) {
    auto v = gaussian(n, rng);
    for (auto& e : v) e *= 8.0f;
    std::vector<float> p = v;
    k.f32_f32_softmax(p.data(), n);
    double m = v[0], s = 0;
    for (float e : v) m = std::max<double>(m, e);
    for (float e : v) s += std::exp(e - m);
    for (size_t i = 0; i < n; i++) worst_soft = std::max(worst_soft, std::fabs(p[i] - std::exp(v[i] - m) / s));
    std::vector<float> one(n, 1.0f), zero(n, 0.0f), y(n);
    k.f32_f32_layernorm(v.data(), nullptr, n, one.data(), zero.data(), 1e-5f, y.data());
    double mean = 0, var = 0;
    for (float e : v) mean += e;
    mean /= n;
    for (float e : v) var += (e - mean) * (e - mean);
    var /= n;
    for (size_t i = 0; i < n; i++)
      worst_ln = std::max(worst_ln, std::fabs(y[i] - (v[i] - mean) / std::sqrt(var + 1e-5)));
  }
  CHECK(worst_gelu < 2e-6, "gelu relative error %g", worst_gelu);
  CHECK(worst_soft < 1e-6, "softmax error %g", worst_soft);
  CHECK(worst_ln < 1e-4, "layernorm error %g", worst_ln);
}

namespace {

EncoderLinear int8_linear(size_t K, size_t N, std::mt19937& rng, bool small = false) {
  std::vector<int8_t> w(K * N);  // B = W^T, K x N
  for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % (small ? 16 : 255)) - (small ? 8 : 127));
  EncoderLinear f;
  f.w = std::make_shared<const PackedB>(small ? pack_b_s4(w.data(), K, N, ptrdiff_t(N), 1)
                                              : pack_b(w.data(), K, N, ptrdiff_t(N), 1));
  f.w_scale.assign(N, 0.02f / std::sqrt(static_cast<float>(K)) * (small ? 16.0f : 1.0f));
  f.bias = gaussian(N, rng);
  return f;
}

// words: 0 float32, 1 int8 per row, 2 4-bit groups of 6, 3 `given`
bool tiny_encoder(std::mt19937& rng, int gelu, int words, Encoder* e, std::string* err,
                  const WordEmbeddings* given = nullptr) {
  EncoderConfig c;
  c.vocab = 50, c.max_positions = 16, c.type_vocab = 2, c.hidden = 24, c.heads = 3, c.layers = 2;
  c.intermediate = 40, c.gelu = gelu;
  std::vector<EncoderLayer> layers(c.layers);
  for (EncoderLayer& L : layers) {
    L.qkv = int8_linear(24, 72, rng);
    L.out = int8_linear(24, 24, rng, true);  // held two a byte
    L.ffn_in = int8_linear(24, 40, rng);
    L.ffn_in.act_bits = 7;
    std::vector<uint8_t> u(24 * 40), z(24 * 5);
    std::vector<uint16_t> sc(24 * 5, 0x2000);  // binary16 0.0078125
    for (auto& v : u) v = rng() % 16;
    for (auto& v : z) v = rng() % 16;
    std::vector<float> col(24, 1.0f);
    L.ffn_out.w4 = std::make_shared<const Int4Weights>(pack_int4(u.data(), z.data(), sc.data(), col.data(), 24, 40, 8));
    for (auto* v : {&L.ln1_gamma, &L.ln2_gamma}) v->assign(24, 1.0f);
    L.ln1_beta = gaussian(24, rng);
    L.ln2_beta = gaussian(24, rng);
  }
  WordEmbeddings w;
  if (words == 3) {
    w = *given;
  } else if (words == 0) {
    w.f32 = gaussian(50 * 24, rng);
  } else if (words == 1) {
    w.kind = WordEmbeddings::kInt8Rows;
    w.q8.resize(50 * 24);
    for (auto& v : w.q8) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
    w.row_scale.assign(50, 0.01f);
  } else {
    w.kind = WordEmbeddings::kInt4Groups;
    w.group = 6;
    w.q4.resize(50 * 24 / 2);
    for (auto& v : w.q4) v = static_cast<uint8_t>(rng());
    w.g_zero.resize(50 * 4);
    for (auto& v : w.g_zero) v = rng() % 16;
    w.g_scale.assign(50 * 4, 0x2400);  // binary16 0.015625
  }
  return e->build(c, std::move(w), gaussian(16 * 24, rng), gaussian(2 * 24, rng),
                  std::vector<float>(24, 1.0f), gaussian(24, rng), std::move(layers), err);
}

}  // namespace

TEST(encoder_int4_word_embeddings_are_scale_times_code_minus_zero) {
  WordEmbeddings q;  // 50 x 24 in groups of 6, every code and zero point drawn
  q.kind = WordEmbeddings::kInt4Groups;
  q.group = 6;
  std::mt19937 draw(11);
  q.q4.resize(50 * 12);
  for (auto& v : q.q4) v = static_cast<uint8_t>(draw());
  q.g_zero.resize(50 * 4);
  for (auto& v : q.g_zero) v = draw() % 16;
  q.g_scale.resize(50 * 4);
  const uint16_t halves[4] = {0x2400, 0x3c00, 0x0001, 0x3555};  // 2^-6, 1, 2^-24, ~0.333
  for (auto& v : q.g_scale) v = halves[draw() % 4];
  WordEmbeddings f;  // the same table in float, decoded here from the format's definition
  f.f32.resize(50 * 24);
  for (size_t i = 0; i < 50 * 24; i++) {
    const int u = (q.q4[i / 2] >> (4 * (i % 2))) & 15, z = q.g_zero[i / 6];
    const uint16_t hb = q.g_scale[i / 6];
    const double s = hb == 0x2400 ? 0.015625 : hb == 0x3c00 ? 1.0 : hb == 0x0001 ? std::ldexp(1.0, -24)
                                                                           : 1365.0 / 4096.0;
    f.f32[i] = static_cast<float>((u - z) * s);  // exact: a 5-bit integer times an 11-bit scale
  }
  std::mt19937 r1(3), r2(3);
  Encoder a, b;
  std::string err;
  CHECK(tiny_encoder(r1, 0, 3, &a, &err, &q), "%s", err.c_str());
  CHECK(tiny_encoder(r2, 0, 3, &b, &err, &f), "%s", err.c_str());
  std::vector<int32_t> ids(50);
  for (int32_t i = 0; i < 50; i++) ids[i] = i;
  const size_t start[5] = {0, 16, 32, 48, 50};
  std::vector<float> ya(50 * 24), yb(50 * 24);
  CHECK(a.forward(ids.data(), nullptr, start, 4, nullptr, ya.data(), &err), "%s", err.c_str());
  CHECK(b.forward(ids.data(), nullptr, start, 4, nullptr, yb.data(), &err), "%s", err.c_str());
  CHECK(same(ya, yb), "4-bit word embeddings differ from their float values");
  WordEmbeddings bad = q;
  bad.g_zero[7] = 16;
  CHECK(!tiny_encoder(r1, 0, 3, &a, &err, &bad) && err.find("zero") != std::string::npos, "zero point 16 accepted");
  bad = q;
  bad.g_scale[3] = 0x7c00;  // +inf
  CHECK(!tiny_encoder(r1, 0, 3, &a, &err, &bad) && err.find("scale") != std::string::npos, "infinite scale accepted");
  bad = q;
  bad.group = 5;
  CHECK(!tiny_encoder(r1, 0, 3, &a, &err, &bad), "odd group accepted");
}

TEST(encoder_file_round_trip_and_batch_independence) {
  std::mt19937 rng(5);
  for (int words : {0, 1, 2}) {
    const int gelu = words == 1;  // the tanh form with int8 word embeddings
    Encoder e, f;
    std::string err;
    CHECK(tiny_encoder(rng, gelu, words, &e, &err), "build: %s", err.c_str());
    const std::vector<uint8_t> bytes = e.save();
    CHECK(f.load(bytes.data(), bytes.size(), &err), "load: %s", err.c_str());
    CHECK(f.save() == bytes, "save(load(bytes)) == bytes");
    // three sequences of 5, 1 and 9 tokens; the second run pads the first to 9 with invalid keys
    std::vector<int32_t> ids(15), types(15);
    for (auto& v : ids) v = rng() % 50;
    for (auto& v : types) v = rng() % 2;
    const size_t start[4] = {0, 5, 6, 15};
    std::vector<float> a(15 * 24), b(15 * 24), one(9 * 24);
    CHECK(e.forward(ids.data(), types.data(), start, 3, nullptr, a.data(), &err), "%s", err.c_str());
    CHECK(f.forward(ids.data(), types.data(), start, 3, nullptr, b.data(), &err), "%s", err.c_str());
    CHECK(same(a, b), "loaded encoder differs");
    for (float v : a) CHECK(std::isfinite(v), "non-finite output");
    const size_t one_start[2] = {0, 9};  // the last sequence alone
    CHECK(e.forward(ids.data() + 6, types.data() + 6, one_start, 1, nullptr, one.data(), &err), "%s", err.c_str());
    CHECK(std::memcmp(one.data(), a.data() + 6 * 24, one.size() * 4) == 0, "depends on the batch");
    std::vector<int32_t> pid(9, 0), ptype(9, 0);
    std::vector<uint8_t> valid(9, 0);
    for (size_t i = 0; i < 5; i++) pid[i] = ids[i], ptype[i] = types[i], valid[i] = 1;
    std::vector<float> padded(9 * 24);
    CHECK(e.forward(pid.data(), ptype.data(), one_start, 1, valid.data(), padded.data(), &err), "%s", err.c_str());
    CHECK(std::memcmp(padded.data(), a.data(), 5 * 24 * 4) == 0, "depends on padding");
    const int before = num_threads();
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      CHECK(e.forward(ids.data(), types.data(), start, 3, nullptr, b.data(), &err), "%s", err.c_str());
      CHECK(same(a, b), "depends on the thread count (%d)", threads);
    }
    set_num_threads(before);
    // refusals: a token outside the vocabulary, a sequence too long, a corrupt file
    ids[3] = 50;
    CHECK(!e.forward(ids.data(), nullptr, start, 3, nullptr, b.data(), &err) &&
              err.find("vocabulary") != std::string::npos, "bad id accepted");
    ids[3] = 1;
    std::vector<int32_t> many(17, 1);  // 17 tokens, max_positions 16
    const size_t too_long[2] = {0, 17};
    std::vector<float> big(17 * 24);
    CHECK(!e.forward(many.data(), nullptr, too_long, 1, nullptr, big.data(), &err), "too long accepted");
    for (size_t cut : {size_t(0), size_t(10), bytes.size() / 2, bytes.size() - 1}) {
      Encoder g;
      CHECK(!g.load(bytes.data(), cut, &err), "truncated file (%zu bytes) accepted", cut);
    }
    std::vector<uint8_t> bad = bytes;
    bad[bad.size() / 3] ^= 1;
    Encoder g;
    CHECK(!g.load(bad.data(), bad.size(), &err) && err.find("checksum") != std::string::npos, "corrupt file accepted");
  }
}
