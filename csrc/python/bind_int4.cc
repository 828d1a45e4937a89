// lowbit.Int4Linear's C++ side: the packed weights (_core.Int4Weights) and the forward pass.
#include <memory>
#include <optional>

#include <pybind11/stl.h>

#include "arrays.h"
#include "lowbit/int4_linear.h"

namespace lowbit {

using py_arrays::in_array;

void register_int4(py::module_& m) {
  py::class_<Int4Weights, std::shared_ptr<Int4Weights>>(
      m, "Int4Weights", "4-bit weights in groups packed for the s8q4_f32_gemm kernels")
      // codes (N, K) uint8 in [0, 15]; zero (N, G) uint8 in [0, 15]; scale (N, G) uint16 (binary16
      // bits, finite, >= 0); col_scale (N,) float32; G = ceil(K / group)
      .def(py::init([](const in_array<uint8_t>& codes, const in_array<uint8_t>& zero,
                       const in_array<uint16_t>& scale, const in_array<float>& col_scale, size_t group) {
             py_arrays::require_ndim(codes, 2, "codes");
             const size_t N = codes.shape(0), K = codes.shape(1);
             if (group == 0 || group % 4) throw py::value_error("group must be a positive multiple of 4");
             const size_t G = (K + group - 1) / group;
             py_arrays::require_size(zero, static_cast<py::ssize_t>(N * G), "zero");
             py_arrays::require_size(scale, static_cast<py::ssize_t>(N * G), "scale");
             py_arrays::require_size(col_scale, static_cast<py::ssize_t>(N), "col_scale");
             for (py::ssize_t i = 0; i < codes.size(); i++)
               if (codes.data()[i] > 15) throw py::value_error("codes must be in [0, 15]");
             for (py::ssize_t i = 0; i < zero.size(); i++)
               if (zero.data()[i] > 15) throw py::value_error("zero must be in [0, 15]");
             for (py::ssize_t i = 0; i < scale.size(); i++)
               if ((scale.data()[i] & 0x7C00) == 0x7C00 || (scale.data()[i] & 0x8000))
                 throw py::value_error("scale must hold finite binary16 values >= 0");
             py::gil_scoped_release release;
             return std::make_shared<Int4Weights>(pack_int4(codes.data(), zero.data(), scale.data(),
                                                            col_scale.data(), N, K, group));
           }),
           py::arg("codes"), py::arg("zero"), py::arg("scale"), py::arg("col_scale"), py::arg("group"))
      .def_property_readonly("K", [](const Int4Weights& w) { return w.K; })
      .def_property_readonly("N", [](const Int4Weights& w) { return w.N; })
      .def_property_readonly("group", [](const Int4Weights& w) { return w.group; })
      .def_property_readonly("nbytes", &Int4Weights::nbytes)
      // (codes (N, K), zero (N, G), scale (N, G), col_scale (N,)): the constructor's arguments
      .def("arrays", [](const Int4Weights& w) {
        const auto N = static_cast<py::ssize_t>(w.N), K = static_cast<py::ssize_t>(w.K),
                   G = static_cast<py::ssize_t>(w.ngroups);
        py::array_t<uint8_t> codes({N, K}), zero({N, G});
        py::array_t<uint16_t> scale({N, G});
        py::array_t<float> cs(N);
        unpack_int4(w, codes.mutable_data());
        for (py::ssize_t n = 0; n < N; n++) {
          for (py::ssize_t g = 0; g < G; g++) {
            const size_t i = ((n / 16) * w.ngroups + g) * 16 + n % 16;
            zero.mutable_data()[n * G + g] = w.zero[i];
            scale.mutable_data()[n * G + g] = w.scale[i];
          }
          cs.mutable_data()[n] = w.col_scale[n];
        }
        return py::make_tuple(codes, zero, scale, cs);
      })
      // y (M, N) = x (M, K) W^T + bias; None if x holds NaN/Inf
      .def(
          "forward",
          [](const Int4Weights& w, const in_array<float>& x,
             const std::optional<in_array<float>>& bias) -> py::object {
            py_arrays::require_ndim(x, 2, "x");
            if (static_cast<size_t>(x.shape(1)) != w.K)
              throw py::value_error("x has " + std::to_string(x.shape(1)) + " features, expected " +
                                    std::to_string(w.K));
            const float* bp = nullptr;
            if (bias) {
              py_arrays::require_size(*bias, static_cast<py::ssize_t>(w.N), "bias");
              bp = bias->data();
            }
            const size_t M = x.shape(0);
            py::array_t<float> out({static_cast<py::ssize_t>(M), static_cast<py::ssize_t>(w.N)});
            bool ok;
            {
              py::gil_scoped_release release;
              ok = int4_linear(x.data(), M, w, bp, out.mutable_data());
            }
            if (!ok) return py::none();
            return std::move(out);
          },
          py::arg("x"), py::arg("bias") = py::none());
}

}  // namespace lowbit
