// lowbit::Encoder for Python (_core.Encoder): a quantized transformer encoder planned and run in
// C++, built from lowbit layers' packed weights or loaded from an encoder file.
#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "arrays.h"
#include "lowbit/encoder.h"
#include "lowbit/runtime.h"

namespace lowbit {
using py_arrays::in_array;

namespace {

struct PyEncoder {
  Encoder enc;
  std::mutex mu;  // one forward at a time: the buffers are the encoder's
};

std::vector<float> floats(const py::handle& h, size_t n, const char* name) {
  const auto a = py::cast<in_array<float>>(h);
  py_arrays::require_size(a, static_cast<py::ssize_t>(n), name);
  return std::vector<float>(a.data(), a.data() + n);
}

// ("int8", PackedB (K x N), w_scale (N), bias (N) or None, act_bits) or
// ("int4", Int4Weights, bias (N) or None), either followed by the rotation signs (K) or None
EncoderLinear linear_from(const py::handle& h) {
  const auto t = py::cast<py::tuple>(h);
  EncoderLinear f;
  const auto kind = t.size() ? py::cast<std::string>(t[0]) : std::string();
  py::handle bias, signs = py::none();
  if ((kind == "int8" && t.size() == 6) || (kind == "int4" && t.size() == 4)) signs = t[t.size() - 1];
  if (kind == "int8" && (t.size() == 5 || t.size() == 6)) {
    f.w = py::cast<std::shared_ptr<PackedB>>(t[1]);
    if (!f.w) throw py::value_error("int8 linear without weights");
    f.w_scale = floats(t[2], f.w->N, "w_scale");
    bias = t[3];
    f.act_bits = py::cast<int>(t[4]);
  } else if (kind == "int4" && (t.size() == 3 || t.size() == 4)) {
    f.w4 = py::cast<std::shared_ptr<Int4Weights>>(t[1]);
    if (!f.w4) throw py::value_error("int4 linear without weights");
    bias = t[2];
  } else {
    throw py::value_error("bad linear description '" + kind + "'");
  }
  if (!bias.is_none()) f.bias = floats(bias, f.out_features(), "bias");
  if (!signs.is_none()) f.rot_signs = floats(signs, f.in_features(), "rotation signs");
  return f;
}

}  // namespace

void register_encoder(py::module_& m) {
  py::class_<PyEncoder>(m, "Encoder", "lowbit::Encoder: a quantized transformer encoder in C++")
      .def(py::init([](const py::bytes& data) {
             const std::string bytes = data;
             auto e = std::make_unique<PyEncoder>();
             std::string err;
             bool ok;
             {
               py::gil_scoped_release release;
               ok = e->enc.load(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &err);
             }
             if (!ok) throw py::value_error(err);
             return e;
           }),
           py::arg("data"), "from the bytes of an encoder file")
      // config: dict of vocab, max_positions, type_vocab, hidden, heads, layers, intermediate,
      // eps, gelu; layers: per layer (qkv, out, ffn_in, ffn_out, ln1_gamma, ln1_beta, ln2_gamma,
      // ln2_beta), the linears as linear_from describes them
      .def_static(
          "from_parts",
          [](const py::dict& config, const py::handle& word, const py::handle& position,
             const py::handle& type, const py::handle& ln_gamma, const py::handle& ln_beta,
             const py::sequence& layers) {
            EncoderConfig c;
            auto get = [&](const char* k) { return py::cast<size_t>(config[k]); };
            c.vocab = get("vocab");
            c.max_positions = get("max_positions");
            c.type_vocab = get("type_vocab");
            c.hidden = get("hidden");
            c.heads = get("heads");
            c.layers = get("layers");
            c.intermediate = get("intermediate");
            c.eps = py::cast<float>(config["eps"]);
            c.gelu = py::cast<int>(config["gelu"]);
            const size_t h = c.hidden;
            std::vector<EncoderLayer> ls;
            for (const auto& lh : layers) {
              const auto t = py::cast<py::tuple>(lh);
              if (t.size() != 8) throw py::value_error("an encoder layer has 8 parts");
              EncoderLayer L;
              L.qkv = linear_from(t[0]);
              L.out = linear_from(t[1]);
              L.ffn_in = linear_from(t[2]);
              L.ffn_out = linear_from(t[3]);
              L.ln1_gamma = floats(t[4], h, "ln1_gamma");
              L.ln1_beta = floats(t[5], h, "ln1_beta");
              L.ln2_gamma = floats(t[6], h, "ln2_gamma");
              L.ln2_beta = floats(t[7], h, "ln2_beta");
              ls.push_back(std::move(L));
            }
            // word: float32 (vocab, hidden); (int8 codes (vocab, hidden), float32 scales
            // (vocab,)); or (group, packed 4-bit codes (vocab * hidden / 2,) uint8, binary16
            // scales as uint16 and zero points as uint8 (vocab * hidden / group,))
            WordEmbeddings wd;
            if (py::isinstance<py::tuple>(word)) {
              const auto t = py::cast<py::tuple>(word);
              if (t.size() == 2) {
                wd.kind = WordEmbeddings::kInt8Rows;
                const auto codes = py::cast<in_array<int8_t>>(t[0]);
                py_arrays::require_size(codes, static_cast<py::ssize_t>(c.vocab * h), "word codes");
                wd.q8.assign(codes.data(), codes.data() + codes.size());
                wd.row_scale = floats(t[1], c.vocab, "word scales");
              } else if (t.size() == 4) {
                wd.kind = WordEmbeddings::kInt4Groups;
                wd.group = py::cast<size_t>(t[0]);
                if (wd.group < 2 || wd.group % 2 || h % wd.group)
                  throw py::value_error("word group must be even and divide hidden");
                const size_t groups = c.vocab * h / wd.group;
                const auto codes = py::cast<in_array<uint8_t>>(t[1]);
                const auto scale = py::cast<in_array<uint16_t>>(t[2]);
                const auto zero = py::cast<in_array<uint8_t>>(t[3]);
                py_arrays::require_size(codes, static_cast<py::ssize_t>(c.vocab * h / 2), "word codes");
                py_arrays::require_size(scale, static_cast<py::ssize_t>(groups), "word scales");
                py_arrays::require_size(zero, static_cast<py::ssize_t>(groups), "word zero points");
                wd.q4.assign(codes.data(), codes.data() + codes.size());
                wd.g_scale.assign(scale.data(), scale.data() + scale.size());
                wd.g_zero.assign(zero.data(), zero.data() + zero.size());
              } else {
                throw py::value_error("word must be an array, (codes, scales) or (group, codes, scales, zeros)");
              }
            } else {
              wd.f32 = floats(word, c.vocab * h, "word");
            }
            auto e = std::make_unique<PyEncoder>();
            std::string err;
            if (!e->enc.build(c, std::move(wd), floats(position, c.max_positions * h, "position"),
                              floats(type, c.type_vocab * h, "type"), floats(ln_gamma, h, "ln_gamma"),
                              floats(ln_beta, h, "ln_beta"), std::move(ls), &err))
              throw py::value_error(err);
            return e;
          },
          py::arg("config"), py::arg("word"), py::arg("position"), py::arg("type"),
          py::arg("ln_gamma"), py::arg("ln_beta"), py::arg("layers"))
      .def("save", [](PyEncoder& e) {
        std::vector<uint8_t> b;
        {
          py::gil_scoped_release release;
          std::lock_guard<std::mutex> lock(e.mu);
          b = e.enc.save();
        }
        return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
      })
      .def_property_readonly("weight_bytes", [](PyEncoder& e) { return e.enc.weight_bytes(); })
      .def_property_readonly("config", [](PyEncoder& e) {
        const EncoderConfig& c = e.enc.config();
        py::dict d;
        d["vocab"] = c.vocab, d["max_positions"] = c.max_positions, d["type_vocab"] = c.type_vocab;
        d["hidden"] = c.hidden, d["heads"] = c.heads, d["layers"] = c.layers;
        d["intermediate"] = c.intermediate, d["eps"] = c.eps, d["gelu"] = c.gelu;
        return d;
      })
      // hidden states (n, hidden) of the tokens ids (n,) int32 in sequences [start[s],
      // start[s + 1]) (start (n_seqs + 1,) int64), types (n,) int32 or None, key_valid (n,) uint8
      // or None; ValueError with the encoder's message on bad input
      .def(
          "forward",
          [](PyEncoder& e, const in_array<int32_t>& ids, const std::optional<in_array<int32_t>>& types,
             const in_array<int64_t>& start, const std::optional<in_array<uint8_t>>& key_valid) {
            const size_t n = static_cast<size_t>(ids.size());
            if (start.ndim() != 1 || start.size() < 1) throw py::value_error("start must be 1-D, non-empty");
            if (types) py_arrays::require_size(*types, ids.size(), "types");
            if (key_valid) py_arrays::require_size(*key_valid, ids.size(), "key_valid");
            const size_t n_seqs = static_cast<size_t>(start.size()) - 1;
            std::vector<size_t> st(n_seqs + 1);
            for (size_t s = 0; s <= n_seqs; s++) {
              if (start.data()[s] < 0) throw py::value_error("start must not be negative");
              st[s] = static_cast<size_t>(start.data()[s]);
            }
            if (st[n_seqs] != n) throw py::value_error("start must end at the number of tokens");
            const size_t h = e.enc.config().hidden;
            py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(h)});
            std::string err;
            bool ok;
            {
              py::gil_scoped_release release;
              std::lock_guard<std::mutex> lock(e.mu);
              ok = e.enc.forward(ids.data(), types ? types->data() : nullptr, st.data(), n_seqs,
                                 key_valid ? key_valid->data() : nullptr, out.mutable_data(), &err);
            }
            if (!ok) throw py::value_error(err);
            return out;
          },
          py::arg("ids"), py::arg("types"), py::arg("start"), py::arg("key_valid"));

  // The transformer kernels one at a time (lowbit's float encoder and the tests): each row of x
  // (rows, n) float32.
  m.def("layernorm", [](const in_array<float>& x, const std::optional<in_array<float>>& r,
                        const in_array<float>& gamma, const in_array<float>& beta, float eps) {
    py_arrays::require_ndim(x, 2, "x");
    const size_t rows = x.shape(0), n = x.shape(1);
    if (r) py_arrays::require_size(*r, x.size(), "r");
    py_arrays::require_size(gamma, static_cast<py::ssize_t>(n), "gamma");
    py_arrays::require_size(beta, static_cast<py::ssize_t>(n), "beta");
    py::array_t<float> y({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(n)});
    const float* rp = r ? r->data() : nullptr;
    float* yp = y.mutable_data();
    {
      py::gil_scoped_release release;
      const KernelTable& kt = active_kernels();
      for (size_t i = 0; i < rows; i++)
        kt.f32_f32_layernorm(x.data() + i * n, rp ? rp + i * n : nullptr, n, gamma.data(), beta.data(), eps, yp + i * n);
    }
    return y;
  }, py::arg("x"), py::arg("r"), py::arg("gamma"), py::arg("beta"), py::arg("eps"));
  m.def("gelu", [](const in_array<float>& x, int form) {
    py::array_t<float> y(x.request().shape);
    float* yp = y.mutable_data();
    {
      py::gil_scoped_release release;
      active_kernels().f32_f32_gelu(x.data(), static_cast<size_t>(x.size()), form ? 1 : 0, yp);
    }
    return y;
  }, py::arg("x"), py::arg("form"));
  m.def("hadamard", [](const in_array<float>& x, const in_array<float>& signs) {
    py_arrays::require_ndim(x, 2, "x");
    const size_t rows = x.shape(0), n = x.shape(1);
    if (n % kHadamardBlock) throw py::value_error("x's rows must be a multiple of 128 long");
    py_arrays::require_size(signs, static_cast<py::ssize_t>(n), "signs");
    py::array_t<float> y({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(n)});
    float* yp = y.mutable_data();
    {
      py::gil_scoped_release release;
      std::copy(x.data(), x.data() + rows * n, yp);
      for (size_t i = 0; i < rows; i++) active_kernels().f32_f32_hadamard(yp + i * n, n, signs.data());
    }
    return y;
  }, py::arg("x"), py::arg("signs"));
  m.def("softmax", [](const in_array<float>& x) {
    py_arrays::require_ndim(x, 2, "x");
    const size_t rows = x.shape(0), n = x.shape(1);
    py::array_t<float> y({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(n)});
    float* yp = y.mutable_data();
    {
      py::gil_scoped_release release;
      std::copy(x.data(), x.data() + rows * n, yp);
      for (size_t i = 0; i < rows; i++) active_kernels().f32_f32_softmax(yp + i * n, n);
    }
    return y;
  }, py::arg("x"));
}

}  // namespace lowbit
