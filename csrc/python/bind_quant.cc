#include <optional>

#include <pybind11/stl.h>

#include "arrays.h"
#include "lowbit/quant.h"

namespace lowbit {
using py_arrays::in_array;

namespace {

Shape3 shape3(const in_array<float>& x) {
  py_arrays::require_ndim(x, 3, "x");
  return {static_cast<size_t>(x.shape(0)), static_cast<size_t>(x.shape(1)),
          static_cast<size_t>(x.shape(2))};
}

// x: (outer, C, inner) float32. Returns (codes uint8 same shape, scale (C,), zp (C,), finite).
py::tuple quantize_dynamic_py(const in_array<float>& x, int bits, bool symmetric) {
  const Shape3 s = shape3(x);
  if (bits < 2 || bits > 8) throw py::value_error("bits must be in 2..8");
  py::array_t<uint8_t> codes({x.shape(0), x.shape(1), x.shape(2)});
  py::array_t<float> scale(static_cast<py::ssize_t>(s.channels));
  py::array_t<int32_t> zp(static_cast<py::ssize_t>(s.channels));
  bool ok;
  {
    py::gil_scoped_release release;
    ok = quantize_dynamic(x.data(), s, bits, symmetric, codes.mutable_data(), scale.mutable_data(),
                          zp.mutable_data());
  }
  return py::make_tuple(codes, scale, zp, ok);
}

py::tuple quantize_static_py(const in_array<float>& x, const in_array<float>& scale,
                             const in_array<int32_t>& zp, int qmin, int qmax) {
  const Shape3 s = shape3(x);
  py_arrays::require_size(scale, static_cast<py::ssize_t>(s.channels), "scale");
  py_arrays::require_size(zp, static_cast<py::ssize_t>(s.channels), "zero_point");
  if (qmin < -128 || qmax > 255 || qmin >= qmax) throw py::value_error("bad code range");
  py::array_t<uint8_t> codes({x.shape(0), x.shape(1), x.shape(2)});
  bool ok;
  {
    py::gil_scoped_release release;
    ok = quantize_static(x.data(), s, scale.data(), zp.data(), qmin, qmax, codes.mutable_data());
  }
  return py::make_tuple(codes, ok);
}

// out: None (a new array) or a writable float32 C-contiguous array of codes.size() elements,
// written in place (noconvert: a converted copy would silently lose the result).
py::array_t<float> dequantize_py(const in_array<uint8_t>& codes, bool is_signed,
                                 const in_array<float>& scale, const in_array<int32_t>& zp,
                                 std::optional<py::array_t<float, py::array::c_style>> out_arg) {
  py_arrays::require_ndim(codes, 3, "codes");
  const Shape3 s{static_cast<size_t>(codes.shape(0)), static_cast<size_t>(codes.shape(1)),
                 static_cast<size_t>(codes.shape(2))};
  py_arrays::require_size(scale, static_cast<py::ssize_t>(s.channels), "scale");
  py_arrays::require_size(zp, static_cast<py::ssize_t>(s.channels), "zero_point");
  py::array_t<float> out;
  if (out_arg) {
    out = *out_arg;
    if (out.size() != codes.size() || !out.writeable())
      throw py::value_error("out must be a writable float32 C-contiguous array of " +
                            std::to_string(codes.size()) + " elements");
  } else {
    out = py::array_t<float>({codes.shape(0), codes.shape(1), codes.shape(2)});
  }
  {
    py::gil_scoped_release release;
    dequantize(codes.data(), is_signed, s, scale.data(), zp.data(), out.mutable_data());
  }
  return out;
}

// The parameters rule (choose_params in lowbit/quant.h) over arrays of channel ranges:
// (scale float32 (n,), zp int32 (n,)). ValueError if a range is non-finite or mn > mx.
py::tuple qparams_py(const in_array<float>& mn, const in_array<float>& mx, int bits,
                     bool symmetric) {
  if (bits < 2 || bits > 8) throw py::value_error("bits must be in 2..8");
  py_arrays::require_size(mx, mn.size(), "mx");
  const size_t n = static_cast<size_t>(mn.size());
  py::array_t<float> scale(static_cast<py::ssize_t>(n));
  py::array_t<int32_t> zp(static_cast<py::ssize_t>(n));
  if (!choose_params(mn.data(), mx.data(), n, bits, symmetric, scale.mutable_data(),
                     zp.mutable_data()))
    throw py::value_error("ranges must be finite float32 values with min <= max");
  return py::make_tuple(scale, zp);
}

void require_per(int per) {
  if (per != 2 && per != 4) throw py::value_error("per must be 2 or 4 codes per byte");
}

py::array_t<uint8_t> pack_codes_py(const in_array<uint8_t>& codes, int per) {
  require_per(per);
  const size_t n = static_cast<size_t>(codes.size());
  py::array_t<uint8_t> out(static_cast<py::ssize_t>((n + per - 1) / per));
  {
    py::gil_scoped_release release;
    pack_codes(codes.data(), n, per, out.mutable_data());
  }
  return out;
}

py::array_t<uint8_t> unpack_codes_py(const in_array<uint8_t>& packed, py::ssize_t n, int per,
                                     bool is_signed) {
  require_per(per);
  if (n < 0 || (n + per - 1) / per > packed.size())
    throw py::value_error("packed holds fewer than n codes");
  py::array_t<uint8_t> out(n);
  {
    py::gil_scoped_release release;
    unpack_codes(packed.data(), static_cast<size_t>(n), per, is_signed, out.mutable_data());
  }
  return out;
}

}  // namespace

void register_quant(py::module_& m) {
  m.def("quantize_dynamic", &quantize_dynamic_py, py::arg("x"), py::arg("bits"),
        py::arg("symmetric"));
  m.def("quantize_static", &quantize_static_py, py::arg("x"), py::arg("scale"),
        py::arg("zero_point"), py::arg("qmin"), py::arg("qmax"));
  m.def("dequantize", &dequantize_py, py::arg("codes"), py::arg("is_signed"), py::arg("scale"),
        py::arg("zero_point"), py::arg("out").noconvert() = py::none());
  m.def("qparams", &qparams_py, py::arg("mn"), py::arg("mx"), py::arg("bits"),
        py::arg("symmetric"));
  m.def("pack_codes", &pack_codes_py, py::arg("codes"), py::arg("per"));
  m.def("unpack_codes", &unpack_codes_py, py::arg("packed"), py::arg("n"), py::arg("per"),
        py::arg("is_signed"));
}

}  // namespace lowbit
