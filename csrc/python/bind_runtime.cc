#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "arrays.h"
#include "lowbit/model.h"
#include "lowbit/runtime.h"

namespace lowbit {
using py_arrays::in_array;

namespace {

// lowbit::Model for Python (lowbit.QuantizedModel's executor, and the tests' view of an exported
// file). One forward at a time per model (a mutex: the plan's buffers are the model's); the
// buffers grow to the largest batch seen, up to kBufferBudget bytes, and larger batches run in
// chunks of that many rows (every layer treats rows independently, so chunking changes nothing).
struct RuntimeModel {
  static constexpr size_t kBufferBudget = size_t(16) << 20;
  Model model;
  std::mutex mu;
  size_t chunk_rows() const {
    const size_t per_row = std::max<size_t>(model.buffer_bytes_per_row(), 1);
    return std::min<size_t>(std::max<size_t>(kBufferBudget / per_row, 64), size_t(1) << 20);
  }
};

std::vector<float> float_vector(const py::handle& h, size_t n, const char* name) {
  const auto a = py::cast<in_array<float>>(h);
  py_arrays::require_size(a, static_cast<py::ssize_t>(n), name);
  return std::vector<float>(a.data(), a.data() + n);
}

// A layer from its Python description: ("relu",), ("codebook", CodebookLinearPlan) or
// ("linear", PackedB (K x N), w_scale (N), bias (N) or None, static, act_scale, act_zero_point,
// act_bits).
Model::Layer layer_from(const py::handle& h) {
  const auto t = py::cast<py::tuple>(h);
  if (t.size() == 0) throw py::value_error("empty layer description");
  const auto kind = py::cast<std::string>(t[0]);
  Model::Layer L;
  if (kind == "relu" && t.size() == 1) {
    L.kind = 2;
  } else if (kind == "codebook" && t.size() == 2) {
    L.kind = 3;
    L.codebook = py::cast<std::shared_ptr<CodebookLinearPlan>>(t[1]);
  } else if (kind == "linear" && t.size() == 8) {
    L.kind = 1;
    L.w = py::cast<std::shared_ptr<PackedB>>(t[1]);
    if (!L.w) throw py::value_error("linear layer without weights");
    L.w_scale = float_vector(t[2], L.w->N, "w_scale");
    if (!t[3].is_none()) L.bias = float_vector(t[3], L.w->N, "bias");
    L.static_act = py::cast<bool>(t[4]);
    L.act_scale = py::cast<float>(t[5]);
    L.act_zp = py::cast<int32_t>(t[6]);
    L.act_bits = py::cast<int>(t[7]);
  } else {
    throw py::value_error("bad layer description '" + kind + "'");
  }
  return L;
}

}  // namespace

void register_runtime(py::module_& m) {
  m.def("cpu_arch", &cpu_arch);
  m.def("cpu_features", &cpu_features);
  m.def("cpu_note", &cpu_note, "What this build's kernels lack on this architecture, or ''");
  m.def("supported_isas", &supported_isas, "Kernel sets this build and CPU run, lowest first");
  m.def("active_isa", &active_isa);
  m.def("set_isa", &set_isa, py::arg("isa"), "Switch kernel set; False if not supported here");
  m.def("num_threads", &num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));

  py::class_<RuntimeModel>(m, "RuntimeModel",
                           "lowbit::Model: an exported model's layers, planned and run in C++")
      .def(py::init([](const py::bytes& data, size_t max_batch) {
             const std::string bytes = data;
             auto r = std::make_unique<RuntimeModel>();
             std::string err;
             bool ok;
             {
               py::gil_scoped_release release;
               ok = r->model.load(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                  max_batch, &err);
             }
             if (!ok) throw py::value_error(err);
             return r;
           }),
           py::arg("data"), py::arg("max_batch") = 1, "from the bytes of a runtime file")
      .def_static(
          "from_layers",
          [](const py::sequence& layers, size_t in_features, size_t max_batch) {
            std::vector<Model::Layer> ls;
            for (const auto& h : layers) ls.push_back(layer_from(h));
            auto r = std::make_unique<RuntimeModel>();
            std::string err;
            if (!r->model.build(std::move(ls), in_features, max_batch, &err))
              throw py::value_error(err);
            return r;
          },
          py::arg("layers"), py::arg("in_features"), py::arg("max_batch") = 1,
          "from layer descriptions, sharing their packed weights and codebook plans")
      .def_property_readonly("weight_bytes", [](const RuntimeModel& r) { return r.model.weight_bytes(); },
                             "bytes the layers hold (packed weights, scales, biases, codebooks)")
      .def_property_readonly("in_features", [](const RuntimeModel& r) { return r.model.in_features(); })
      .def_property_readonly("out_features", [](const RuntimeModel& r) { return r.model.out_features(); })
      .def_property_readonly("max_batch", [](RuntimeModel& r) {
        std::lock_guard<std::mutex> lock(r.mu);
        return r.model.max_batch();
      })
      // y (M, out) for x (M, in) float32, or None when x (or a layer's output) holds NaN/Inf.
      .def(
          "forward",
          [](RuntimeModel& r, const in_array<float>& x) -> py::object {
            py_arrays::require_ndim(x, 2, "x");
            const size_t K = r.model.in_features(), N = r.model.out_features();
            if (static_cast<size_t>(x.shape(1)) != K)
              throw py::value_error("x has " + std::to_string(x.shape(1)) + " features, expected " +
                                    std::to_string(K));
            const size_t M = x.shape(0);
            py::array_t<float> y({static_cast<py::ssize_t>(M), static_cast<py::ssize_t>(N)});
            const float* xp = x.data();
            float* yp = y.mutable_data();
            bool ok = true, grown = true;
            std::string err;
            if (M) {
              py::gil_scoped_release release;
              std::lock_guard<std::mutex> lock(r.mu);
              const size_t rows = std::min(M, r.chunk_rows());
              if (rows > r.model.max_batch()) grown = r.model.reserve(rows, &err);
              for (size_t m0 = 0; grown && ok && m0 < M; m0 += rows)
                ok = r.model.forward(xp + m0 * K, std::min(rows, M - m0), yp + m0 * N);
            }
            if (!grown) throw std::bad_alloc();
            if (!ok) return py::none();
            return std::move(y);
          },
          py::arg("x"));
}

}  // namespace lowbit
