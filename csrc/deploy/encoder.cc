// The transformer encoder (lowbit/encoder.h): shape checks, the file format, and the forward pass
// (linear layers through the GEMM drivers, attention and the normalizations on the transformer
// kernels, each parallel over the thread pool).
#include "lowbit/encoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "byte_reader.h"
#include "lowbit/binary16.h"
#include "lowbit/model.h"  // crc32
#include "lowbit/parallel.h"
#include "lowbit/runtime.h"

namespace lowbit {

namespace {

constexpr uint32_t kVersion = 1;
constexpr uint32_t kInt8 = 1, kInt4 = 4;
constexpr size_t kMaxDim = 1u << 20;

bool fail(std::string* error, const std::string& msg) {
  if (error) *error = msg;
  return false;
}

bool all_finite(const std::vector<float>& v) {
  for (float f : v)
    if (!std::isfinite(f)) return false;
  return true;
}

// Rows [0, n) of a row-wise job, in parallel pieces.
template <typename F>
void for_rows(size_t n, F f) {
  parallel_range(n, 16, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) f(i);
  });
}

// Whether w holds a vocab x h table in exactly one form, with its sizes.
bool word_fits(const WordEmbeddings& w, size_t vocab, size_t h) {
  const size_t n = vocab * h;
  const bool f = w.kind == WordEmbeddings::kFloat, q8 = w.kind == WordEmbeddings::kInt8Rows,
             q4 = w.kind == WordEmbeddings::kInt4Groups;
  if (q4 && (w.group < 2 || w.group % 2 || h % w.group)) return false;
  const size_t groups = q4 ? n / w.group : 0;
  return (f || q8 || q4) && w.f32.size() == (f ? n : 0) && w.q8.size() == (q8 ? n : 0) &&
         w.row_scale.size() == (q8 ? vocab : 0) && w.q4.size() == (q4 ? n / 2 : 0) &&
         w.g_scale.size() == groups && w.g_zero.size() == groups;
}

}  // namespace

size_t EncoderLinear::nbytes() const {
  size_t n = (bias.size() + rot_signs.size()) * sizeof(float);
  if (w) n += w->nbytes() + w_scale.size() * sizeof(float);
  if (w4) n += w4->nbytes();
  return n;
}

bool EncoderLinear::forward(const float* x, size_t M, float* y, float* scratch) const {
  const float* b = bias.empty() ? nullptr : bias.data();
  if (!rot_signs.empty()) {
    const size_t K = in_features();
    const KernelTable& kt = active_kernels();
    for_rows(M, [&](size_t i) {
      std::memcpy(scratch + i * K, x + i * K, K * sizeof(float));
      kt.f32_f32_hadamard(scratch + i * K, K, rot_signs.data());
    });
    x = scratch;
  }
  if (w) return linear_dynamic(x, M, *w, w_scale.data(), true, b, false, y, act_bits);
  return int4_linear(x, M, *w4, b, y);
}

size_t WordEmbeddings::nbytes() const {
  return (f32.size() + row_scale.size()) * sizeof(float) + q8.size() + q4.size() +
         g_scale.size() * sizeof(uint16_t) + g_zero.size();
}

void WordEmbeddings::row(size_t id, size_t h, float* out) const {
  switch (kind) {
    case kFloat:
      std::memcpy(out, f32.data() + id * h, h * sizeof(float));
      return;
    case kInt8Rows: {
      const int8_t* q = q8.data() + id * h;
      const float s = row_scale[id];
      for (size_t k = 0; k < h; k++) out[k] = static_cast<float>(q[k]) * s;
      return;
    }
    case kInt4Groups: {
      const uint8_t* q = q4.data() + id * h / 2;
      const size_t g0 = id * (h / group);
      for (size_t k = 0; k < h; k++) {
        const int u = k % 2 ? q[k / 2] >> 4 : q[k / 2] & 15;
        const size_t g = g0 + k / group;
        out[k] = static_cast<float>(u - g_zero[g]) * half_to_float(g_scale[g]);
      }
      return;
    }
  }
}

size_t Encoder::weight_bytes() const {
  size_t n = word_.nbytes() + (position_.size() + type_.size() + 2 * cfg_.hidden) * sizeof(float);
  for (const EncoderLayer& L : layers_)
    n += L.qkv.nbytes() + L.out.nbytes() + L.ffn_in.nbytes() + L.ffn_out.nbytes() +
         4 * cfg_.hidden * sizeof(float);
  return n;
}

bool Encoder::build(const EncoderConfig& cfg, WordEmbeddings word, std::vector<float> position,
                    std::vector<float> type, std::vector<float> ln_gamma,
                    std::vector<float> ln_beta, std::vector<EncoderLayer> layers,
                    std::string* error) {
  *this = Encoder();
  cfg_ = cfg;
  word_ = std::move(word);
  position_ = std::move(position);
  type_ = std::move(type);
  ln_gamma_ = std::move(ln_gamma);
  ln_beta_ = std::move(ln_beta);
  layers_ = std::move(layers);
  if (build_checked(error)) return true;
  *this = Encoder();
  return false;
}

bool Encoder::build_checked(std::string* error) {
  const EncoderConfig& c = cfg_;
  const size_t h = c.hidden;
  if (c.vocab == 0 || c.max_positions == 0 || c.type_vocab == 0 || h == 0 || c.heads == 0 ||
      c.layers == 0 || c.intermediate == 0 || h > kMaxDim || c.intermediate > kMaxDim ||
      c.vocab > (1u << 24) || c.max_positions > (1u << 20) || c.type_vocab > 1024 ||
      c.layers > 1024 || h % c.heads != 0)
    return fail(error, "bad encoder configuration (sizes, or hidden not a multiple of heads)");
  if (!(c.eps > 0.0f) || !std::isfinite(c.eps) || (c.gelu != 0 && c.gelu != 1))
    return fail(error, "bad encoder configuration (eps or gelu form)");
  if (!word_fits(word_, c.vocab, h) || position_.size() != c.max_positions * h ||
      type_.size() != c.type_vocab * h || ln_gamma_.size() != h || ln_beta_.size() != h)
    return fail(error, "embedding tables do not match the configuration");
  for (float v : word_.row_scale)
    if (!(v >= 0.0f)) return fail(error, "bad word embedding scale");
  for (uint16_t v : word_.g_scale)
    if (v & 0x8000u || (v & 0x7c00u) == 0x7c00u) return fail(error, "bad word embedding scale");
  for (uint8_t v : word_.g_zero)
    if (v > 15) return fail(error, "bad word embedding zero point");
  if (!all_finite(word_.f32) || !all_finite(word_.row_scale) || !all_finite(position_) ||
      !all_finite(type_) || !all_finite(ln_gamma_) || !all_finite(ln_beta_))
    return fail(error, "non-finite embedding or LayerNorm parameter");
  if (layers_.size() != c.layers) return fail(error, "layer count does not match the configuration");
  for (size_t i = 0; i < layers_.size(); i++) {
    const EncoderLayer& L = layers_[i];
    const std::string where = "encoder layer " + std::to_string(i) + ": ";
    const EncoderLinear* lin[4] = {&L.qkv, &L.out, &L.ffn_in, &L.ffn_out};
    const size_t in[4] = {h, h, h, c.intermediate}, out[4] = {3 * h, h, c.intermediate, h};
    for (int j = 0; j < 4; j++) {
      const EncoderLinear& f = *lin[j];
      if (!f.w == !f.w4) return fail(error, where + "a linear layer needs int8 or int4 weights");
      if (f.in_features() != in[j] || f.out_features() != out[j])
        return fail(error, where + "a linear layer's shape does not match the configuration");
      if (f.w && (f.w_scale.size() != out[j] || (f.act_bits != 7 && f.act_bits != 8)))
        return fail(error, where + "bad int8 scales or activation bits");
      for (float s : f.w_scale)
        if (!(s > 0.0f) || !std::isfinite(s)) return fail(error, where + "bad weight scale");
      if ((!f.bias.empty() && f.bias.size() != out[j]) || !all_finite(f.bias))
        return fail(error, where + "bad bias");
      if (!f.rot_signs.empty() && (f.rot_signs.size() != in[j] || in[j] % kHadamardBlock))
        return fail(error, where + "rotation signs need in_features entries, a multiple of 128");
      for (float v : f.rot_signs)
        if (v != 1.0f && v != -1.0f) return fail(error, where + "rotation signs must be +-1");
    }
    for (const auto* v : {&L.ln1_gamma, &L.ln1_beta, &L.ln2_gamma, &L.ln2_beta})
      if (v->size() != h || !all_finite(*v)) return fail(error, where + "bad LayerNorm parameters");
  }
  return true;
}

void Encoder::attention(const size_t* start, size_t n_seqs, const uint8_t* key_valid) {
  const size_t h = cfg_.hidden, heads = cfg_.heads, d = h / heads, ld = 3 * h;
  const KernelTable& kt = active_kernels();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  size_t longest = 0;
  for (size_t s = 0; s < n_seqs; s++) longest = std::max(longest, start[s + 1] - start[s]);
  const size_t workers = static_cast<size_t>(num_threads());
  if (scratch_.size() < workers) scratch_.resize(workers);
  for (auto& s : scratch_)
    if (s.size() < longest * (2 * d + 1)) s.resize(longest * (2 * d + 1));
  parallel_for_workers(n_seqs * heads, workers, [&](size_t task, size_t worker) {
    const size_t s = task / heads, hd = task % heads, t0 = start[s], n = start[s + 1] - t0;
    float* kT = scratch_[worker].data();  // d x nk: the valid keys, transposed
    float* v = kT + d * longest;          // nk x d: their values
    float* p = v + d * longest;           // a row of scores
    size_t nk = 0;
    for (size_t j = 0; j < n; j++)
      nk += !key_valid || key_valid[t0 + j];
    const bool all = nk == 0 || nk == n;  // no valid key: attend to every token
    size_t col = 0;
    for (size_t j = 0; j < n; j++) {
      if (!all && !key_valid[t0 + j]) continue;
      const float* row = qkv_.data() + (t0 + j) * ld + hd * d;
      for (size_t t = 0; t < d; t++) kT[t * n + col] = row[h + t];
      std::memcpy(v + col * d, row + 2 * h, d * sizeof(float));
      col++;
    }
    for (size_t i = 0; i < n; i++) {
      kt.f32_f32_vecmat(qkv_.data() + (t0 + i) * ld + hd * d, d, kT, n, col, p);
      for (size_t j = 0; j < col; j++) p[j] = p[j] * scale;
      kt.f32_f32_softmax(p, col);
      kt.f32_f32_vecmat(p, col, v, d, d, ctx_.data() + (t0 + i) * h + hd * d);
    }
  });
}

bool Encoder::forward(const int32_t* ids, const int32_t* types, const size_t* start, size_t n_seqs,
                      const uint8_t* key_valid, float* out, std::string* error) {
  if (layers_.empty()) return fail(error, "the encoder is empty");
  const EncoderConfig& c = cfg_;
  const size_t h = c.hidden, f = c.intermediate;
  if (start[0] != 0) return fail(error, "the first sequence must start at token 0");
  for (size_t s = 0; s < n_seqs; s++) {
    if (start[s + 1] < start[s]) return fail(error, "sequence starts must not decrease");
    if (start[s + 1] - start[s] > c.max_positions)
      return fail(error, "a sequence is longer than max_positions (" +
                             std::to_string(c.max_positions) + ")");
  }
  const size_t n = start[n_seqs];
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || static_cast<size_t>(ids[i]) >= c.vocab)
      return fail(error, "token id " + std::to_string(ids[i]) + " is outside the vocabulary");
    if (types && (types[i] < 0 || static_cast<size_t>(types[i]) >= c.type_vocab))
      return fail(error, "token type " + std::to_string(types[i]) + " is outside 0.." +
                             std::to_string(c.type_vocab - 1));
  }
  if (n == 0) return true;
  try {
    rot_.resize(n * std::max(f, h));  // a rotated input of any linear layer
    qkv_.resize(n * 3 * h);
    ctx_.resize(n * h);
    tmp_.resize(n * h);
    ffn_.resize(n * f);
  } catch (const std::bad_alloc&) {
    return fail(error, "not enough memory for " + std::to_string(n) + " tokens");
  }
  const KernelTable& kt = active_kernels();
  float* x = out;  // the hidden states live in the output
  for_rows(n, [&](size_t i) {  // one region for every token: its sequence by binary search
    const size_t seq = static_cast<size_t>(std::upper_bound(start, start + n_seqs + 1, i) - start) - 1;
    const size_t pos = i - start[seq];
    const size_t id = static_cast<size_t>(ids[i]);
    const float* p = position_.data() + pos * h;
    const float* t = type_.data() + static_cast<size_t>(types ? types[i] : 0) * h;
    float* xi = x + i * h;
    word_.row(id, h, xi);
    for (size_t k = 0; k < h; k++) xi[k] = (xi[k] + t[k]) + p[k];
    kt.f32_f32_layernorm(xi, nullptr, h, ln_gamma_.data(), ln_beta_.data(), c.eps, xi);
  });
  const char* overflow = "non-finite activations (the model's weights overflow float32)";
  for (const EncoderLayer& L : layers_) {
    float* rot = rot_.data();
    if (!L.qkv.forward(x, n, qkv_.data(), rot)) return fail(error, overflow);
    attention(start, n_seqs, key_valid);
    if (!L.out.forward(ctx_.data(), n, tmp_.data(), rot)) return fail(error, overflow);
    for_rows(n, [&](size_t i) {
      kt.f32_f32_layernorm(tmp_.data() + i * h, x + i * h, h, L.ln1_gamma.data(),
                           L.ln1_beta.data(), c.eps, x + i * h);
    });
    if (!L.ffn_in.forward(x, n, ffn_.data(), rot)) return fail(error, overflow);
    for_rows(n, [&](size_t i) { kt.f32_f32_gelu(ffn_.data() + i * f, f, c.gelu, ffn_.data() + i * f); });
    if (!L.ffn_out.forward(ffn_.data(), n, tmp_.data(), rot)) return fail(error, overflow);
    for_rows(n, [&](size_t i) {
      kt.f32_f32_layernorm(tmp_.data() + i * h, x + i * h, h, L.ln2_gamma.data(),
                           L.ln2_beta.data(), c.eps, x + i * h);
    });
  }
  return true;
}

// ---- the file format ----------------------------------------------------------------------

namespace {

struct Writer {
  std::vector<uint8_t> b;
  void raw(const void* p, size_t n) {
    const uint8_t* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
  }
  void u32(uint64_t v) {
    const uint32_t x = static_cast<uint32_t>(v);
    raw(&x, 4);
  }
  void f32(float v) { raw(&v, 4); }
  void floats(const std::vector<float>& v) { raw(v.data(), v.size() * 4); }
};

using Reader = ByteReader;

void write_linear(Writer* w, const EncoderLinear& f) {
  const size_t K = f.in_features(), N = f.out_features();
  w->u32(f.w ? kInt8 : kInt4);
  w->u32(K);
  w->u32(N);
  w->u32((f.bias.empty() ? 0 : 1) | (f.w && f.act_bits == 7 ? 4 : 0) | (f.rot_signs.empty() ? 0 : 8));
  if (!f.rot_signs.empty()) w->floats(f.rot_signs);
  if (f.w) {
    w->floats(f.w_scale);
    std::vector<int8_t> b(K * N);  // K x N; the file holds W = B^T
    unpack_b(*f.w, b.data());
    std::vector<int8_t> wt(N * K);
    for (size_t k = 0; k < K; k++)
      for (size_t j = 0; j < N; j++) wt[j * K + k] = b[k * N + j];
    w->raw(wt.data(), wt.size());
  } else {
    const Int4Weights& q = *f.w4;
    const size_t g = q.ngroups;
    w->u32(q.group);
    std::vector<float> col(q.col_scale.begin(), q.col_scale.begin() + N);
    w->floats(col);
    std::vector<uint8_t> zero(N * g), u(N * K);
    std::vector<uint16_t> scale(N * g);
    for (size_t j = 0; j < N; j++)  // per panel of 16 columns, group-major
      for (size_t gi = 0; gi < g; gi++) {
        const size_t at = (j / 16) * g * 16 + gi * 16 + j % 16;
        zero[j * g + gi] = q.zero[at];
        scale[j * g + gi] = q.scale[at];
      }
    unpack_int4(q, u.data());
    w->raw(zero.data(), zero.size());
    w->raw(scale.data(), scale.size() * 2);
    w->raw(u.data(), u.size());
  }
  if (!f.bias.empty()) w->floats(f.bias);
}

// The word embeddings of kind `kind` for vocab x h; false with a message if truncated or unknown
// (the values are checked by build_checked).
bool read_words(Reader* r, size_t vocab, size_t h, size_t kind, WordEmbeddings* w, std::string* error) {
  const uint64_t n = static_cast<uint64_t>(vocab) * h;
  auto bytes = [&](auto* v, uint64_t count) {  // count elements into v, if the file has them
    if (count > r->left / sizeof((*v)[0])) return false;
    v->resize(static_cast<size_t>(count));
    return r->take(v->data(), v->size() * sizeof((*v)[0]));
  };
  bool ok;
  switch (kind) {
    case WordEmbeddings::kFloat:
      ok = r->floats(&w->f32, n);
      break;
    case WordEmbeddings::kInt8Rows:
      ok = r->floats(&w->row_scale, vocab) && bytes(&w->q8, n);
      break;
    case WordEmbeddings::kInt4Groups:
      if (!r->u32(&w->group)) return fail(error, "truncated embeddings");
      if (w->group < 2 || w->group % 2 || h % w->group) return fail(error, "bad word embedding group size");
      ok = bytes(&w->g_scale, n / w->group) && bytes(&w->g_zero, n / w->group) && bytes(&w->q4, n / 2);
      break;
    default:
      return fail(error, "bad word embedding kind");
  }
  w->kind = static_cast<WordEmbeddings::Kind>(kind);
  return ok ? true : fail(error, "truncated embeddings");
}

bool read_linear(Reader* r, EncoderLinear* f, std::string* error) {
  size_t kind, K, N, flags;
  if (!r->u32(&kind) || !r->u32(&K) || !r->u32(&N) || !r->u32(&flags))
    return fail(error, "truncated linear layer");
  if ((kind != kInt8 && kind != kInt4) || K == 0 || N == 0 || K > kMaxDim || N > kMaxDim ||
      (flags & ~13u) || (kind == kInt4 && (flags & 4)))
    return fail(error, "bad linear layer header");
  if ((flags & 8) && !r->floats(&f->rot_signs, K)) return fail(error, "truncated rotation signs");
  if (kind == kInt8) {
    f->act_bits = flags & 4 ? 7 : 8;
    if (!r->floats(&f->w_scale, N)) return fail(error, "truncated weight scales");
    if (static_cast<uint64_t>(N) * K > r->left) return fail(error, "truncated weights");
    std::vector<int8_t> codes(N * K);
    r->take(codes.data(), codes.size());
    const ptrdiff_t rs = 1, cs = static_cast<ptrdiff_t>(K);
    f->w = std::make_shared<const PackedB>(s4_fits(codes.data(), K, N, rs, cs)
                                               ? pack_b_s4(codes.data(), K, N, rs, cs)
                                               : pack_b(codes.data(), K, N, rs, cs));
  } else {
    size_t group;
    std::vector<float> col;
    if (!r->u32(&group) || !r->floats(&col, N)) return fail(error, "truncated int4 layer");
    if (group < 4 || group > 4096 || group % 4) return fail(error, "bad int4 group size");
    const size_t g = (K + group - 1) / group;
    if (static_cast<uint64_t>(N) * (g * 3 + K) > r->left) return fail(error, "truncated int4 layer");
    std::vector<uint8_t> zero(N * g), u(N * K);
    std::vector<uint16_t> scale(N * g);
    r->take(zero.data(), zero.size());
    r->take(scale.data(), scale.size() * 2);
    r->take(u.data(), u.size());
    for (uint8_t v : zero)
      if (v > 15) return fail(error, "int4 zero point out of range");
    for (uint8_t v : u)
      if (v > 15) return fail(error, "int4 code out of range");
    for (float s : col)
      if (!std::isfinite(s)) return fail(error, "bad int4 scale");
    for (uint16_t s : scale)
      if ((s & 0x7c00) == 0x7c00) return fail(error, "bad int4 scale");
    f->w4 = std::make_shared<const Int4Weights>(
        pack_int4(u.data(), zero.data(), scale.data(), col.data(), N, K, group));
  }
  if ((flags & 1) && !r->floats(&f->bias, N)) return fail(error, "truncated bias");
  return true;
}

}  // namespace

std::vector<uint8_t> Encoder::save() const {
  Writer w;
  w.raw("LBTE", 4);
  w.u32(kVersion);
  const EncoderConfig& c = cfg_;
  for (size_t v : {c.vocab, c.max_positions, c.type_vocab, c.hidden, c.heads, c.layers, c.intermediate})
    w.u32(v);
  w.f32(c.eps);
  w.u32(static_cast<uint32_t>(c.gelu));
  w.u32(word_.kind);
  switch (word_.kind) {
    case WordEmbeddings::kFloat:
      w.floats(word_.f32);
      break;
    case WordEmbeddings::kInt8Rows:
      w.floats(word_.row_scale);
      w.raw(word_.q8.data(), word_.q8.size());
      break;
    case WordEmbeddings::kInt4Groups:
      w.u32(word_.group);
      w.raw(word_.g_scale.data(), word_.g_scale.size() * sizeof(uint16_t));
      w.raw(word_.g_zero.data(), word_.g_zero.size());
      w.raw(word_.q4.data(), word_.q4.size());
      break;
  }
  for (const auto* v : {&position_, &type_, &ln_gamma_, &ln_beta_}) w.floats(*v);
  for (const EncoderLayer& L : layers_) {
    write_linear(&w, L.qkv);
    write_linear(&w, L.out);
    w.floats(L.ln1_gamma);
    w.floats(L.ln1_beta);
    write_linear(&w, L.ffn_in);
    write_linear(&w, L.ffn_out);
    w.floats(L.ln2_gamma);
    w.floats(L.ln2_beta);
  }
  w.u32(crc32(w.b.data(), w.b.size()));
  return std::move(w.b);
}

bool Encoder::load(const uint8_t* data, size_t size, std::string* error) {
  *this = Encoder();
  try {
    if (size < 52 || std::memcmp(data, "LBTE", 4) != 0)
      return fail(error, "not a lowbit encoder file (bad magic or too short)");
    uint32_t stored;
    std::memcpy(&stored, data + size - 4, 4);
    if (crc32(data, size - 4) != stored) return fail(error, "checksum mismatch: corrupt or truncated file");
    Reader r{data + 4, size - 8};
    size_t version, gelu, word_kind = 2;
    EncoderConfig c;
    r.u32(&version);
    if (version != kVersion)
      return fail(error, "unsupported encoder file version " + std::to_string(version) + " (this runtime reads 1)");
    r.u32(&c.vocab), r.u32(&c.max_positions), r.u32(&c.type_vocab), r.u32(&c.hidden);
    r.u32(&c.heads), r.u32(&c.layers), r.u32(&c.intermediate);
    r.take(&c.eps, 4);
    r.u32(&gelu);
    r.u32(&word_kind);
    c.gelu = gelu > 1 ? 2 : static_cast<int>(gelu);
    cfg_ = c;
    if (c.hidden == 0 || c.hidden > kMaxDim || c.vocab > (1u << 24) || c.max_positions > (1u << 20) ||
        c.type_vocab > 1024 || c.layers > 1024)
      return fail(error, "bad encoder configuration");
    const size_t h = c.hidden;
    const uint64_t h64 = h;
    if (!read_words(&r, c.vocab, h, word_kind, &word_, error)) return false;
    if (!r.floats(&position_, c.max_positions * h64) ||
        !r.floats(&type_, c.type_vocab * h64) || !r.floats(&ln_gamma_, h) || !r.floats(&ln_beta_, h))
      return fail(error, "truncated embeddings");
    layers_.resize(c.layers);
    for (EncoderLayer& L : layers_) {
      if (!read_linear(&r, &L.qkv, error) || !read_linear(&r, &L.out, error)) return false;
      if (!r.floats(&L.ln1_gamma, h) || !r.floats(&L.ln1_beta, h)) return fail(error, "truncated LayerNorm");
      if (!read_linear(&r, &L.ffn_in, error) || !read_linear(&r, &L.ffn_out, error)) return false;
      if (!r.floats(&L.ln2_gamma, h) || !r.floats(&L.ln2_beta, h)) return fail(error, "truncated LayerNorm");
    }
    if (r.left != 0) return fail(error, "trailing bytes after the last layer");
    if (!build_checked(error)) {
      *this = Encoder();
      return false;
    }
    return true;
  } catch (const std::bad_alloc&) {
    *this = Encoder();
    return fail(error, "not enough memory for this encoder");
  }
}

}  // namespace lowbit
