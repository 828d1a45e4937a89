// The runtime model: parsing (every field checked), the execution plan (static int8 chains on
// codes), buffer planning, and the forward pass.
#include "lowbit/model.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <new>

#include "byte_reader.h"
#include "lowbit/quant.h"

namespace lowbit {

uint32_t crc32(const uint8_t* data, size_t size) {
  static const auto table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; i++) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

namespace {

constexpr uint32_t kVersion = 2;  // reads 1 and 2
constexpr uint32_t kLinear = 1, kRelu = 2, kCodebook = 3;
constexpr uint32_t kMaxDim = 1u << 20;  // features per layer, at most

using Reader = ByteReader;

bool fail(std::string* error, const std::string& msg) {
  if (error) *error = msg;
  return false;
}

// A codebook layer (kind 3) after its kind, every field checked (codes below k); null and a
// message in *error if anything is wrong.
std::shared_ptr<const CodebookLinearPlan> read_codebook(Reader* r, uint32_t i, size_t width,
                                                        std::string* error) {
  const std::string where = "codebook layer " + std::to_string(i) + ": ";
  uint32_t K, N, k, dim, flags;
  if (!r->u32(&K) || !r->u32(&N) || !r->u32(&k) || !r->u32(&dim) || !r->u32(&flags))
    return fail(error, where + "truncated header"), nullptr;
  if (K != width || N == 0 || N > kMaxDim || k < 2 || k > 65536 || dim == 0 || K % dim ||
      (flags & ~3u))
    return fail(error, where + "bad shape, k, dim or flags"), nullptr;
  const uint64_t nc = static_cast<uint64_t>(k) * dim;
  if (4 * nc > r->left) return fail(error, where + "truncated centroids"), nullptr;
  std::vector<float> centroids(static_cast<size_t>(nc));
  r->take(centroids.data(), 4 * centroids.size());
  for (float c : centroids)
    if (!std::isfinite(c)) return fail(error, where + "bad centroid"), nullptr;
  const int bits = codebook_bits(k);
  const uint64_t groups = static_cast<uint64_t>(N) * (K / dim);
  const uint64_t code_bytes = bits == 4 ? (groups + 1) / 2 : groups * (bits / 8);
  if (code_bytes > r->left) return fail(error, where + "truncated codes"), nullptr;
  std::vector<uint8_t> codes8;  // unpacked, k <= 256
  std::vector<uint16_t> codes16;
  uint32_t max_code = 0;
  if (bits == 16) {
    codes16.resize(static_cast<size_t>(groups));
    r->take(codes16.data(), 2 * codes16.size());
    for (uint16_t c : codes16) max_code = std::max<uint32_t>(max_code, c);
  } else {
    codes8.resize(static_cast<size_t>(code_bytes));
    r->take(codes8.data(), codes8.size());
    if (bits == 4) {
      std::vector<uint8_t> packed(std::move(codes8));
      codes8.resize(static_cast<size_t>(groups));
      for (size_t g = 0; g < codes8.size(); g++) codes8[g] = (packed[g / 2] >> (4 * (g & 1))) & 15;
    }
    for (uint8_t c : codes8) max_code = std::max<uint32_t>(max_code, c);
  }
  if (groups && max_code >= k) return fail(error, where + "code out of range"), nullptr;
  std::vector<float> bias;
  if (flags & 1) {
    bias.resize(N);
    if (!r->take(bias.data(), 4ull * N)) return fail(error, where + "truncated bias"), nullptr;
    for (float b : bias)
      if (!std::isfinite(b)) return fail(error, where + "bad bias"), nullptr;
  }
  const void* codes = bits == 16 ? static_cast<const void*>(codes16.data()) : codes8.data();
  return std::make_shared<const CodebookLinearPlan>(
      centroids.data(), k, dim, codes, N, K, bias.empty() ? nullptr : bias.data(), flags & 2);
}

}  // namespace

size_t Model::weight_bytes() const {
  size_t n = 0;
  for (const Layer& L : layers_) {
    if (L.w) n += L.w->nbytes() + (L.w_scale.size() + L.bias.size()) * sizeof(float);
    if (L.codebook) n += L.codebook->nbytes();
  }
  return n;
}

bool Model::load(const uint8_t* data, size_t size, size_t max_batch, std::string* error) {
  try {
    if (!load_checked(data, size, max_batch, error)) return false;
    // Plan every thread-local buffer the kernels keep: one forward at the largest batch.
    std::vector<float> x(max_batch * in_, 0.0f), y(max_batch * out_);
    forward(x.data(), max_batch, y.data());
    return true;
  } catch (const std::bad_alloc&) {  // a valid file whose buffers (x max_batch) do not fit
    *this = Model();
    return fail(error, "not enough memory for this model at max_batch " + std::to_string(max_batch));
  }
}

bool Model::build(std::vector<Layer> layers, size_t in_features, size_t max_batch,
                  std::string* error) {
  try {
    return build_checked(std::move(layers), in_features, max_batch, error);
  } catch (const std::bad_alloc&) {
    *this = Model();
    return fail(error, "not enough memory for this model at max_batch " + std::to_string(max_batch));
  }
}

bool Model::load_checked(const uint8_t* data, size_t size, size_t max_batch, std::string* error) {
  *this = Model();
  if (size < 24 || std::memcmp(data, "LBRT", 4) != 0)
    return fail(error, "not a lowbit runtime file (bad magic or too short)");
  uint32_t stored_crc;
  std::memcpy(&stored_crc, data + size - 4, 4);
  if (crc32(data, size - 4) != stored_crc) return fail(error, "checksum mismatch: corrupt or truncated file");
  Reader r{data + 4, size - 8};
  uint32_t version, n_layers, in, out;
  r.u32(&version);
  if (version < 1 || version > kVersion)
    return fail(error, "unsupported version " + std::to_string(version) + " (this runtime reads 1 and 2)");
  r.u32(&n_layers);
  r.u32(&in);
  r.u32(&out);
  if (n_layers == 0 || n_layers > 4096) return fail(error, "bad layer count");
  if (in == 0 || out == 0 || in > kMaxDim || out > kMaxDim) return fail(error, "bad model dimensions");
  if (max_batch == 0 || max_batch > (1u << 20)) return fail(error, "max_batch must be in 1..2^20");
  std::vector<Layer> layers;
  size_t width = in;
  for (uint32_t i = 0; i < n_layers; i++) {
    Layer L;
    uint32_t kind;
    if (!r.u32(&kind)) return fail(error, "truncated layer header");
    L.kind = static_cast<int>(kind);
    if (kind == kRelu) {
      layers.push_back(std::move(L));
      continue;
    }
    if (kind == kCodebook && version >= 2) {
      L.codebook = read_codebook(&r, i, width, error);
      if (!L.codebook) return false;
      width = L.codebook->out_features();
      layers.push_back(std::move(L));
      continue;
    }
    if (kind != kLinear) return fail(error, "unknown layer kind " + std::to_string(kind));
    uint32_t K, N, flags;
    if (!r.u32(&K) || !r.u32(&N) || !r.u32(&flags) || !r.f32(&L.act_scale) ||
        !r.take(&L.act_zp, 4))
      return fail(error, "truncated linear layer");
    if (K != width || N == 0 || N > kMaxDim || (flags & ~7u))
      return fail(error, "linear layer " + std::to_string(i) + ": bad shape or flags");
    L.static_act = flags & 2;
    L.act_bits = flags & 4 ? 7 : 8;
    if (L.static_act && (!(L.act_scale > 0.0f) || !std::isfinite(L.act_scale) || L.act_zp < 0 ||
                         L.act_zp > (1 << L.act_bits) - 1))
      return fail(error, "linear layer " + std::to_string(i) + ": bad activation parameters");
    L.w_scale.resize(N);
    if (!r.take(L.w_scale.data(), 4ull * N)) return fail(error, "truncated weight scales");
    for (float s : L.w_scale)
      if (!(s > 0.0f) || !std::isfinite(s)) return fail(error, "bad weight scale");
    if (static_cast<uint64_t>(N) * K > r.left) return fail(error, "truncated weights");
    std::vector<int8_t> codes(static_cast<size_t>(N) * K);
    r.take(codes.data(), codes.size());
    // B = W^T; weights of 4 bits or fewer (every code in [-8, 7]) held two a byte, losslessly
    const ptrdiff_t rs = 1, cs = static_cast<ptrdiff_t>(K);
    L.w = std::make_shared<const PackedB>(s4_fits(codes.data(), K, N, rs, cs)
                                              ? pack_b_s4(codes.data(), K, N, rs, cs)
                                              : pack_b(codes.data(), K, N, rs, cs));
    if (flags & 1) {
      L.bias.resize(N);
      if (!r.take(L.bias.data(), 4ull * N)) return fail(error, "truncated bias");
      for (float b : L.bias)
        if (!std::isfinite(b)) return fail(error, "bad bias");
    }
    width = N;
    layers.push_back(std::move(L));
  }
  if (r.left != 0) return fail(error, "trailing bytes after the last layer");
  if (width != out) return fail(error, "layer shapes do not end at out_features");
  return build_checked(std::move(layers), in, max_batch, error);
}

bool Model::build_checked(std::vector<Layer> layers, size_t in, size_t max_batch,
                          std::string* error) {
  *this = Model();
  if (layers.empty() || layers.size() > 4096) return fail(error, "bad layer count");
  if (in == 0 || in > kMaxDim) return fail(error, "bad model dimensions");
  size_t width = in, widest = in;
  for (size_t i = 0; i < layers.size(); i++) {
    const Layer& L = layers[i];
    const std::string where = "layer " + std::to_string(i) + ": ";
    if (L.kind == static_cast<int>(kRelu)) continue;
    if (L.kind == static_cast<int>(kCodebook)) {
      if (!L.codebook) return fail(error, where + "no codebook plan");
      if (L.codebook->in_features() != width)
        return fail(error, where + "takes " + std::to_string(L.codebook->in_features()) +
                               " features but receives " + std::to_string(width));
      width = L.codebook->out_features();
    } else if (L.kind == static_cast<int>(kLinear)) {
      if (!L.w) return fail(error, where + "no weights");
      const size_t N = L.w->N;
      if (L.w->K != width)
        return fail(error, where + "takes " + std::to_string(L.w->K) + " features but receives " +
                               std::to_string(width));
      if (N == 0 || N > kMaxDim || L.w_scale.size() != N || (!L.bias.empty() && L.bias.size() != N))
        return fail(error, where + "bad shape");
      if (L.act_bits != 7 && L.act_bits != 8) return fail(error, where + "act_bits must be 7 or 8");
      if (L.static_act && (!(L.act_scale > 0.0f) || !std::isfinite(L.act_scale) || L.act_zp < 0 ||
                           L.act_zp > (1 << L.act_bits) - 1))
        return fail(error, where + "bad activation parameters");
      for (float s : L.w_scale)
        if (!(s > 0.0f) || !std::isfinite(s)) return fail(error, where + "bad weight scale");
      for (float b : L.bias)
        if (!std::isfinite(b)) return fail(error, where + "bad bias");
      width = N;
    } else {
      return fail(error, where + "unknown layer kind " + std::to_string(L.kind));
    }
    widest = std::max(widest, width);
  }
  layers_ = std::move(layers);
  in_ = in;
  out_ = width;
  widest_ = widest;
  plan();
  if (!reserve(max_batch, error)) {
    *this = Model();
    return false;
  }
  return true;
}

bool Model::reserve(size_t max_batch, std::string* error) {
  if (max_batch == 0 || max_batch > (1u << 20)) return fail(error, "max_batch must be in 1..2^20");
  // Up to 2^40 floats: wraps around a 32-bit size_t (an overflowed buffer), so refuse it there.
  if (static_cast<uint64_t>(max_batch) * widest_ > SIZE_MAX / sizeof(float))
    return fail(error, "max_batch x widest layer does not fit this platform's address space");
  try {
    const size_t n = max_batch * widest_;
    std::vector<float> b0(n, 0.0f), b1(n, 0.0f);
    std::vector<uint8_t> c0(n, 0), c1(n, 0);
    buf_[0].swap(b0);
    buf_[1].swap(b1);
    codes_[0].swap(c0);
    codes_[1].swap(c1);
  } catch (const std::bad_alloc&) {
    return fail(error, "not enough memory for this model at max_batch " + std::to_string(max_batch));
  }
  max_batch_ = max_batch;
  return true;
}

namespace {

// The requantize epilogue's parameters from a static layer A to the static layer B after it
// (lowbit.QuantizedLinear.forward_quantized's rule, in double, then rounded as numpy rounds);
// false if a multiplier is not a positive finite float32 (the link then goes through float).
bool requant_params(const Model::Layer& A, const Model::Layer& B, std::vector<float>* q_scale,
                    std::vector<int32_t>* bias_i32) {
  const size_t N = A.w->N;
  const double as = A.act_scale, bs = B.act_scale;
  q_scale->resize(N);
  for (size_t n = 0; n < N; n++) {
    const double m = as * static_cast<double>(A.w_scale[n]) / bs;
    if (!(m <= static_cast<double>(FLT_MAX))) return false;
    (*q_scale)[n] = static_cast<float>(m);
    if (!((*q_scale)[n] > 0.0f)) return false;
  }
  bias_i32->clear();
  if (!A.bias.empty()) {
    bias_i32->resize(N);
    for (size_t n = 0; n < N; n++) {
      double v = std::nearbyint(static_cast<double>(A.bias[n]) /
                                (as * static_cast<double>(A.w_scale[n])));
      v = std::min(std::max(v, -2147483648.0), 2147483647.0);
      (*bias_i32)[n] = static_cast<int32_t>(v);
    }
  }
  return true;
}

}  // namespace

void Model::plan() {
  steps_.clear();
  const size_t n = layers_.size();
  const int relu = static_cast<int>(kRelu);
  bool codes_in = false;  // the previous step wrote codes for the current layer
  for (size_t i = 0; i < n;) {
    const Layer& L = layers_[i];
    Step s;
    s.layer = i;
    size_t next = i + 1;
    if (L.kind == relu) {
      s.op = Step::kRelu;
      while (next < n && layers_[next].kind == relu) next++;  // idempotent
    } else if (L.kind == static_cast<int>(kCodebook)) {
      s.op = Step::kCodebook;
    } else if (!L.static_act) {
      s.op = Step::kDynamic;
    } else {
      s.op = Step::kStatic;
      s.in_codes = codes_in;
      while (next < n && layers_[next].kind == relu) {
        s.relu = true;
        next++;
      }
      if (next < n && layers_[next].kind == static_cast<int>(kLinear) && layers_[next].static_act) {
        const Layer& B = layers_[next];
        s.out_codes = requant_params(L, B, &s.q_scale, &s.bias_i32);
        s.out_zp = B.act_zp;
        s.qmax = (1 << B.act_bits) - 1;
        if (!s.out_codes) s.q_scale.clear(), s.bias_i32.clear();
      }
    }
    codes_in = s.op == Step::kStatic && s.out_codes;
    steps_.push_back(std::move(s));
    i = next;
  }
}

bool Model::forward(const float* x, size_t M, float* y) {
  if (M > max_batch_ || steps_.empty()) return false;
  const float* cur = x;          // the current float activations
  const uint8_t* codes = nullptr;  // or codes, after a step with out_codes
  int fb = 0, cb = 0;            // the float / code buffer the next step writes
  size_t width = in_;
  for (size_t k = 0; k < steps_.size(); k++) {
    const Step& s = steps_[k];
    const Layer& L = layers_[s.layer];
    float* dst = (k + 1 == steps_.size()) ? y : buf_[fb].data();
    switch (s.op) {
      case Step::kRelu:
        // As numpy.maximum(x, 0), which gives +0.0 for -0.0: the output matches Python bit for bit.
        for (size_t j = 0; j < M * width; j++) dst[j] = cur[j] > 0.0f ? cur[j] : 0.0f;
        break;
      case Step::kCodebook:
        if (!L.codebook->forward(cur, M, dst, &cb_ws_)) return false;
        width = L.codebook->out_features();
        break;
      case Step::kDynamic:
        if (!linear_dynamic(cur, M, *L.w, L.w_scale.data(), true,
                            L.bias.empty() ? nullptr : L.bias.data(), false, dst, L.act_bits))
          return false;
        width = L.w->N;
        break;
      case Step::kStatic: {
        const uint8_t* a = codes;
        if (!s.in_codes) {
          if (!quantize_static(cur, Shape3{1, 1, M * width}, &L.act_scale, &L.act_zp, 0,
                               (1 << L.act_bits) - 1, codes_[cb].data()))
            return false;
          a = codes_[cb].data();
          cb ^= 1;
        }
        OutputStage os;
        os.a_zp = L.act_zp;
        os.relu = s.relu;
        if (s.out_codes) {
          os.kind = GemmOut::q8;
          os.q_scale = s.q_scale.data();
          os.bias_i32 = s.bias_i32.empty() ? nullptr : s.bias_i32.data();
          os.out_zp = s.out_zp;
          os.qmin = 0;
          os.qmax = s.qmax;
          os.out = codes_[cb].data();
        } else {
          os.kind = GemmOut::f32;
          os.a_scale = &L.act_scale;
          os.b_scale = L.w_scale.data();
          os.b_scale_per_col = true;
          os.bias = L.bias.empty() ? nullptr : L.bias.data();
          os.out = dst;
        }
        os.ldo = L.w->N;
        gemm_u8s8(a, width, M, *L.w, os);
        width = L.w->N;
        if (s.out_codes) {
          codes = codes_[cb].data();
          cb ^= 1;
          continue;  // no float output
        }
        break;
      }
    }
    cur = dst;
    fb ^= 1;
  }
  return true;
}

}  // namespace lowbit
