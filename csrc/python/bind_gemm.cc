#include <cmath>
#include <memory>
#include <optional>
#include <vector>

#include <pybind11/stl.h>

#include "arrays.h"
#include "lowbit/gemm.h"

namespace lowbit {
using py_arrays::in_array;

namespace {

size_t check_a(const in_array<uint8_t>& a, const PackedB& b) {
  py_arrays::require_ndim(a, 2, "a");
  if (static_cast<size_t>(a.shape(1)) != b.K)
    throw py::value_error("a has " + std::to_string(a.shape(1)) + " columns, the packed matrix " +
                          std::to_string(b.K) + " rows");
  return static_cast<size_t>(a.shape(0));
}

const float* optional_vector(const std::optional<in_array<float>>& v, size_t n, const char* name) {
  if (!v) return nullptr;
  py_arrays::require_size(*v, static_cast<py::ssize_t>(n), name);
  return v->data();
}

// Runs the GEMM of a (M rows) and b with output stage `os` into a fresh (M, N) array of T, the
// GIL released while it runs.
template <typename T>
py::array_t<T> run_gemm(const in_array<uint8_t>& a, size_t M, const PackedB& b, OutputStage os) {
  py::array_t<T> out({static_cast<py::ssize_t>(M), static_cast<py::ssize_t>(b.N)});
  os.out = out.mutable_data();
  os.ldo = b.N;
  {
    py::gil_scoped_release release;
    gemm_u8s8(a.data(), b.K, M, b, os);
  }
  return out;
}

}  // namespace

void register_gemm(py::module_& m) {
  py::class_<PackedB, std::shared_ptr<PackedB>>(m, "PackedB",
                                                "int8 weights (K x N) packed for the GEMM kernels")
      .def(py::init([](py::array_t<int8_t> b, bool s4) {  // any strides: read through them
             if (b.ndim() != 2) throw py::value_error("b must have 2 dimensions");
             const auto* base = static_cast<const int8_t*>(b.data());
             const size_t K = b.shape(0), N = b.shape(1);
             const ptrdiff_t rs = b.strides(0), cs = b.strides(1);  // bytes == elements for int8
             py::gil_scoped_release release;
             if (!s4) return std::make_shared<PackedB>(pack_b(base, K, N, rs, cs));
             if (!s4_fits(base, K, N, rs, cs))
               throw py::value_error("b must hold values in [-8, 7] to be packed two a byte");
             return std::make_shared<PackedB>(pack_b_s4(base, K, N, rs, cs));
           }),
           py::arg("b"), py::arg("s4") = false)
      .def_property_readonly("s4", [](const PackedB& p) { return p.s4; })
      .def_property_readonly("K", [](const PackedB& p) { return p.K; })
      .def_property_readonly("N", [](const PackedB& p) { return p.N; })
      .def_property_readonly("nbytes", &PackedB::nbytes)
      .def_property_readonly("colsum", [](const PackedB& p) {
        return py::array_t<int32_t>(static_cast<py::ssize_t>(p.colsum.size()), p.colsum.data());
      })
      .def("unpack", [](const PackedB& p) {
        py::array_t<int8_t> out({static_cast<py::ssize_t>(p.K), static_cast<py::ssize_t>(p.N)});
        unpack_b(p, out.mutable_data());
        return out;
      });

  m.def(
      "gemm_int32",
      [](const in_array<uint8_t>& a, const PackedB& b, int32_t a_zp, int32_t b_zp) {
        const size_t M = check_a(a, b);
        OutputStage os;
        os.a_zp = a_zp;
        os.b_zp = b_zp;
        return run_gemm<int32_t>(a, M, b, os);
      },
      py::arg("a"), py::arg("b"), py::arg("a_zero_point") = 0, py::arg("b_zero_point") = 0);

  // matmul_int8's common case, checked here rather than in Python (a call at 1 x 64 x 64 is
  // mostly overhead): a C-contiguous uint8 (M, K) array with M, N > 0 and K within the exact
  // range, no zero points. Returns None for anything else; Python then takes the general path.
  m.def(
      "gemm_int32_fast",
      [](const py::handle& obj, const PackedB& b) -> py::object {
        if (!py::isinstance<py::array>(obj)) return py::none();
        auto a = py::reinterpret_borrow<py::array>(obj);
        if (a.ndim() != 2 || !a.dtype().is(py::dtype::of<uint8_t>()) ||
            !(a.flags() & py::array::c_style) || static_cast<size_t>(a.shape(1)) != b.K ||
            b.K > 65793 || a.shape(0) == 0 || b.N == 0)
          return py::none();
        const size_t M = static_cast<size_t>(a.shape(0));
        py::array_t<int32_t> out({static_cast<py::ssize_t>(M), static_cast<py::ssize_t>(b.N)});
        OutputStage os;
        os.out = out.mutable_data();
        os.ldo = b.N;
        const auto* ap = static_cast<const uint8_t*>(a.data());
        {
          py::gil_scoped_release release;
          gemm_u8s8(ap, b.K, M, b, os);
        }
        return std::move(out);
      },
      py::arg("a"), py::arg("b"));

  // float out = (a - a_zp[m]) (b) * a_scale[m] * b_scale[n] + bias[n]; a_scale/a_zp: M or 1.
  m.def(
      "gemm_f32",
      [](const in_array<uint8_t>& a, const PackedB& b, const in_array<float>& a_scale,
         const in_array<int32_t>& a_zp, const in_array<float>& b_scale,
         const std::optional<in_array<float>>& bias, bool relu) {
        const size_t M = check_a(a, b);
        const bool per_row = a_scale.size() != 1;
        if (per_row) py_arrays::require_size(a_scale, static_cast<py::ssize_t>(M), "a_scale");
        py_arrays::require_size(a_zp, per_row ? static_cast<py::ssize_t>(M) : 1, "a_zero_point");
        const bool per_col = b_scale.size() != 1;
        if (per_col) py_arrays::require_size(b_scale, static_cast<py::ssize_t>(b.N), "b_scale");
        OutputStage os;
        os.kind = GemmOut::f32;
        if (per_row) os.a_zp_row = a_zp.data(); else os.a_zp = a_zp.data()[0];
        os.a_scale = a_scale.data();
        os.a_scale_per_row = per_row;
        os.b_scale = b_scale.data();
        os.b_scale_per_col = per_col;
        os.bias = optional_vector(bias, b.N, "bias");
        os.relu = relu;
        return run_gemm<float>(a, M, b, os);
      },
      py::arg("a"), py::arg("b"), py::arg("a_scale"), py::arg("a_zero_point"), py::arg("b_scale"),
      py::arg("bias") = py::none(), py::arg("relu") = false);

  // 8-bit output for chaining: q = clamp(round_half_even(float(acc + bias_i32[n]) * scale[n])
  // + out_zp, qmin, qmax) (GemmTile's q8 in lowbit/kernels.h).
  m.def(
      "gemm_requant",
      [](const in_array<uint8_t>& a, const PackedB& b, int32_t a_zp, const in_array<float>& scale,
         const std::optional<in_array<int32_t>>& bias_i32, int32_t out_zp, int32_t qmin,
         int32_t qmax, bool relu) {
        const size_t M = check_a(a, b);
        py_arrays::require_size(scale, static_cast<py::ssize_t>(b.N), "scale");
        if (bias_i32) py_arrays::require_size(*bias_i32, static_cast<py::ssize_t>(b.N), "bias");
        for (py::ssize_t i = 0; i < scale.size(); i++)
          if (!(scale.data()[i] > 0.0f) || !std::isfinite(scale.data()[i]))
            throw py::value_error("scale must be finite and positive");
        if (qmin < -128 || qmax > 255 || qmin >= qmax || out_zp < qmin || out_zp > qmax)
          throw py::value_error("bad code range");
        OutputStage os;
        os.kind = GemmOut::q8;
        os.a_zp = a_zp;
        os.q_scale = scale.data();
        os.bias_i32 = bias_i32 ? bias_i32->data() : nullptr;
        os.out_zp = out_zp;
        os.qmin = qmin;
        os.qmax = qmax;
        os.relu = relu;
        return run_gemm<uint8_t>(a, M, b, os);
      },
      py::arg("a"), py::arg("b"), py::arg("a_zero_point"), py::arg("scale"),
      py::arg("bias") = py::none(), py::arg("out_zero_point") = 0, py::arg("qmin") = 0,
      py::arg("qmax") = 255, py::arg("relu") = false);

  // The dynamic int8 linear layer's hot path: weights, scales and bias live here, so a call
  // converts only x. Returns None if x holds NaN/Inf (the Python layer then reports where).
  struct DynamicLinear {
    std::shared_ptr<PackedB> w;
    std::vector<float> scale, bias;
    int act_bits = 8;
  };
  py::class_<DynamicLinear>(m, "DynamicLinear")
      .def(py::init([](std::shared_ptr<PackedB> w, const in_array<float>& w_scale,
                       const std::optional<in_array<float>>& bias, int act_bits) {
             py_arrays::require_size(w_scale, static_cast<py::ssize_t>(w->N), "w_scale");
             if (act_bits != 7 && act_bits != 8) throw py::value_error("act_bits must be 7 or 8");
             DynamicLinear d{w, std::vector<float>(w_scale.data(), w_scale.data() + w->N), {}, act_bits};
             if (const float* bp = optional_vector(bias, w->N, "bias")) d.bias.assign(bp, bp + w->N);
             return d;
           }),
           py::arg("w"), py::arg("w_scale"), py::arg("bias") = py::none(), py::arg("act_bits") = 8)
      .def(
          "__call__",
          [](const DynamicLinear& d, const in_array<float>& x, bool relu) -> py::object {
            py_arrays::require_ndim(x, 2, "x");
            if (static_cast<size_t>(x.shape(1)) != d.w->K)
              throw py::value_error("x has " + std::to_string(x.shape(1)) +
                                    " features, expected " + std::to_string(d.w->K));
            const size_t M = x.shape(0);
            py::array_t<float> out({static_cast<py::ssize_t>(M), static_cast<py::ssize_t>(d.w->N)});
            bool ok;
            {
              py::gil_scoped_release release;
              ok = linear_dynamic(x.data(), M, *d.w, d.scale.data(), true,
                                  d.bias.empty() ? nullptr : d.bias.data(), relu, out.mutable_data(),
                                  d.act_bits);
            }
            if (!ok) return py::none();
            return std::move(out);
          },
          py::arg("x"), py::arg("relu") = false);

  // Returns None if x holds NaN/Inf (the Python layer then reports where).
  m.def(
      "linear_dynamic",
      [](const in_array<float>& x, const PackedB& w, const in_array<float>& w_scale,
         const std::optional<in_array<float>>& bias, bool relu) -> py::object {
        py_arrays::require_ndim(x, 2, "x");
        if (static_cast<size_t>(x.shape(1)) != w.K)
          throw py::value_error("x has " + std::to_string(x.shape(1)) + " features, expected " +
                                std::to_string(w.K));
        const bool per_col = w_scale.size() != 1;
        if (per_col) py_arrays::require_size(w_scale, static_cast<py::ssize_t>(w.N), "w_scale");
        const float* bp = optional_vector(bias, w.N, "bias");
        const size_t M = x.shape(0);
        py::array_t<float> out({static_cast<py::ssize_t>(M), static_cast<py::ssize_t>(w.N)});
        bool ok;
        {
          py::gil_scoped_release release;
          ok = linear_dynamic(x.data(), M, w, w_scale.data(), per_col, bp, relu, out.mutable_data());
        }
        if (!ok) return py::none();
        return std::move(out);
      },
      py::arg("x"), py::arg("w"), py::arg("w_scale"), py::arg("bias") = py::none(),
      py::arg("relu") = false);
}

}  // namespace lowbit
