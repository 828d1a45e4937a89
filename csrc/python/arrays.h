// Shared helpers of the bindings: array types and shape checks. Every check runs with the GIL
// held, before any kernel; kernels run with the GIL released, on buffers that stay alive.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

namespace py = pybind11;

namespace lowbit {
namespace py_arrays {

// Inputs: C-contiguous, converted to T if needed (the Python layer checks dtypes first).
template <typename T>
using in_array = py::array_t<T, py::array::c_style | py::array::forcecast>;

template <typename T>
inline void require_ndim(const in_array<T>& a, py::ssize_t ndim, const char* name) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must have " + std::to_string(ndim) +
                          " dimensions, got " + std::to_string(a.ndim()));
}

template <typename T>
inline void require_size(const in_array<T>& a, py::ssize_t n, const char* name) {
  if (a.size() != n)
    throw py::value_error(std::string(name) + " must have " + std::to_string(n) +
                          " elements, got " + std::to_string(a.size()));
}

}  // namespace py_arrays

void register_runtime(py::module_& m);
void register_quant(py::module_& m);
void register_gemm(py::module_& m);
void register_int4(py::module_& m);
void register_encoder(py::module_& m);
void register_kmeans(py::module_& m);
void register_peak(py::module_& m);

}  // namespace lowbit
