// Bindings of the k-means codebooks (lowbit/kmeans.h) and of CodebookLinear
// (lowbit/codebook_linear.h). The Python layer (lowbit/codebook.py) checks types and values
// first; these re-check shapes and code ranges so that no call can read or write out of bounds,
// then run the C++ core with the GIL released.
#include <memory>
#include <optional>

#include <pybind11/stl.h>

#include "arrays.h"
#include "lowbit/codebook_linear.h"
#include "lowbit/kernels.h"
#include "lowbit/kmeans.h"

namespace lowbit {
using py_arrays::in_array;

namespace {

// Output arrays are written in place: C-contiguous, exactly this dtype, writeable.
template <typename T>
using out_array = py::array_t<T, py::array::c_style>;

void check_k(size_t k) {
  if (k < 2 || k > 65536) throw py::value_error("k must be in 2..65536, got " + std::to_string(k));
}

py::array codes_array(size_t n, int bits) {
  if (bits == 16) return py::array_t<uint16_t>(static_cast<py::ssize_t>(n));
  return py::array_t<uint8_t>(static_cast<py::ssize_t>(codebook_code_bytes(n, bits)));
}

// x: the values, flat (n * d); returns a dict, or None when x holds NaN or Inf.
py::object kmeans_py(const in_array<float>& x, size_t d, size_t k, int iters, int init,
                     uint64_t seed, size_t max_points) {
  check_k(k);
  if (d < 1) throw py::value_error("dim must be >= 1");
  if (iters < 1) throw py::value_error("iters must be >= 1");
  if (init < 0 || init > 3)
    throw py::value_error("init must be 0 (kmeans++), 1 (linear), 2 (random) or 3 (automatic)");
  const size_t size = static_cast<size_t>(x.size());
  if (size == 0 || size % d) throw py::value_error("x must hold a positive multiple of dim values");
  const size_t n = size / d;
  const int bits = codebook_bits(k);
  py::array codes = codes_array(n, bits);
  void* cp = codes.mutable_data();
  KmeansResult r;
  {
    py::gil_scoped_release release;
    r = d == 1 ? kmeans_1d(x.data(), n, k, iters, static_cast<KmeansInit>(init), seed, cp)
               : kmeans_nd(x.data(), n, d, k, iters, static_cast<KmeansInit>(init), seed,
                           max_points, cp);
  }
  if (r.nonfinite) return py::none();
  if (!r.error.empty()) throw py::value_error(r.error);
  py::array_t<float> cent({static_cast<py::ssize_t>(k), static_cast<py::ssize_t>(d)});
  std::memcpy(cent.mutable_data(), r.centroids.data(), k * d * sizeof(float));
  py::dict out;
  out["centroids"] = cent;
  out["codes"] = codes;
  out["bits"] = bits;
  out["history"] = r.history;
  out["inertia"] = r.inertia;
  out["train_points"] = r.train_points;
  return std::move(out);
}

// Largest code in a run (for the range checks).
template <typename T>
size_t max_code(const T* c, size_t n) {
  T m = 0;
  for (size_t i = 0; i < n; i++) m = c[i] > m ? c[i] : m;
  return m;
}

void decode_py(const py::array& codes, int bits, size_t n, const in_array<float>& centroids,
               out_array<float>& out) {
  py_arrays::require_ndim(centroids, 2, "centroids");
  const size_t k = static_cast<size_t>(centroids.shape(0)), d = static_cast<size_t>(centroids.shape(1));
  check_k(k);
  if (bits != codebook_bits(k))
    throw py::value_error("codes of " + std::to_string(bits) + " bits do not fit k=" + std::to_string(k));
  if (!out.writeable()) throw py::value_error("out must be writeable");
  if (static_cast<size_t>(out.size()) != n * d)
    throw py::value_error("out must hold " + std::to_string(n * d) + " values, got " +
                          std::to_string(out.size()));
  const bool is16 = bits == 16;
  if (!(is16 ? py::isinstance<py::array_t<uint16_t>>(codes) : py::isinstance<py::array_t<uint8_t>>(codes)) ||
      !(codes.flags() & py::array::c_style))
    throw py::type_error(std::string("codes must be a C-contiguous ") + (is16 ? "uint16" : "uint8") + " array");
  if (static_cast<size_t>(codes.size()) != (is16 ? n : codebook_code_bytes(n, bits)))
    throw py::value_error("codes has " + std::to_string(codes.size()) + " entries for " +
                          std::to_string(n) + " codes of " + std::to_string(bits) + " bits");
  const void* cp = codes.data();
  float* op = out.mutable_data();
  const float* table = centroids.data();
  // 4- and 8-bit codes index a table padded to 16 / 256 rows (zeros), so any code is safe;
  // 16-bit codes are checked.
  std::vector<float> padded;
  if (!is16 && k < (size_t(1) << bits)) {
    padded.assign((size_t(1) << bits) * d, 0.0f);
    std::memcpy(padded.data(), table, k * d * sizeof(float));
  }
  const float* tp = padded.empty() ? table : padded.data();
  const size_t rows = padded.empty() ? k : size_t(1) << bits;
  bool in_range = true;
  {
    py::gil_scoped_release release;
    in_range = !is16 || max_code(static_cast<const uint16_t*>(cp), n) < k;
    if (in_range) codebook_decode(cp, bits, n, tp, rows, d, op);
  }
  if (!in_range) throw py::value_error("codes must be smaller than k=" + std::to_string(k));
}

py::object pq_py(const in_array<float>& x, size_t m, int bits, int iters, uint64_t seed,
                 size_t max_points) {
  py_arrays::require_ndim(x, 2, "x");
  const size_t n = static_cast<size_t>(x.shape(0)), D = static_cast<size_t>(x.shape(1));
  if (m < 1 || D % m) throw py::value_error("m must divide the vector length");
  if (bits < 1 || bits > 16) throw py::value_error("bits must be in 1..16");
  if (iters < 1) throw py::value_error("iters must be >= 1");
  const size_t k = size_t(1) << bits, dsub = D / m;
  py::array codes = k <= 256 ? py::array(py::array_t<uint8_t>({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(m)}))
                             : py::array(py::array_t<uint16_t>({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(m)}));
  void* cp = codes.mutable_data();
  PqResult r;
  {
    py::gil_scoped_release release;
    r = product_quantize(x.data(), n, D, m, k, iters, seed, max_points, cp);
  }
  if (r.nonfinite) return py::none();
  if (!r.error.empty()) throw py::value_error(r.error);
  py::array_t<float> cent({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(k), static_cast<py::ssize_t>(dsub)});
  std::memcpy(cent.mutable_data(), r.centroids.data(), r.centroids.size() * sizeof(float));
  py::dict out;
  out["centroids"] = cent;
  out["codes"] = codes;
  out["inertia"] = r.inertia;
  return std::move(out);
}

py::array_t<float> pq_decode_py(const py::array& codes, const in_array<float>& centroids) {
  py_arrays::require_ndim(centroids, 3, "centroids");
  const size_t m = centroids.shape(0), k = centroids.shape(1), dsub = centroids.shape(2);
  const bool is16 = k > 256;
  if (!(is16 ? py::isinstance<py::array_t<uint16_t>>(codes) : py::isinstance<py::array_t<uint8_t>>(codes)) ||
      !(codes.flags() & py::array::c_style) || codes.ndim() != 2 || static_cast<size_t>(codes.shape(1)) != m)
    throw py::type_error(std::string("codes must be a C-contiguous (n, m) ") + (is16 ? "uint16" : "uint8") + " array");
  const size_t n = codes.shape(0);
  const size_t mx = is16 ? max_code(static_cast<const uint16_t*>(codes.data()), n * m)
                         : max_code(static_cast<const uint8_t*>(codes.data()), n * m);
  if (n && mx >= k) throw py::value_error("codes must be smaller than k=" + std::to_string(k));
  py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(m * dsub)});
  const void* cp = codes.data();
  float* op = out.mutable_data();
  {
    py::gil_scoped_release release;
    pq_decode(cp, n, m, k, dsub, centroids.data(), op);
  }
  return out;
}

std::shared_ptr<CodebookLinearPlan> make_plan(const in_array<float>& centroids, const py::array& codes,
                                              size_t out, size_t in,
                                              const std::optional<in_array<float>>& bias,
                                              bool precise) {
  py_arrays::require_ndim(centroids, 2, "centroids");
  const size_t k = centroids.shape(0), dim = centroids.shape(1);
  check_k(k);
  if (dim < 1 || in == 0 || out == 0 || in % dim) throw py::value_error("dim must divide in_features");
  const bool is16 = k > 256;
  if (!(is16 ? py::isinstance<py::array_t<uint16_t>>(codes) : py::isinstance<py::array_t<uint8_t>>(codes)) ||
      !(codes.flags() & py::array::c_style))
    throw py::type_error(std::string("codes must be a C-contiguous ") + (is16 ? "uint16" : "uint8") + " array");
  const size_t ncodes = out * (in / dim);
  if (static_cast<size_t>(codes.size()) != ncodes)
    throw py::value_error("codes must hold out_features * in_features / dim = " + std::to_string(ncodes) + " codes");
  const size_t mx = is16 ? max_code(static_cast<const uint16_t*>(codes.data()), ncodes)
                         : max_code(static_cast<const uint8_t*>(codes.data()), ncodes);
  if (mx >= k) throw py::value_error("codes must be smaller than k=" + std::to_string(k));
  const float* bp = nullptr;
  if (bias) {
    py_arrays::require_size(*bias, static_cast<py::ssize_t>(out), "bias");
    bp = bias->data();
  }
  const float* c = centroids.data();
  const void* cp = codes.data();
  py::gil_scoped_release release;
  return std::make_shared<CodebookLinearPlan>(c, k, dim, cp, out, in, bp, precise);
}

// Per-row tables (CodebookLinear(per_row=True)): qtables (out, k) int16, already quantized
// (|q| <= 127 for the int8 4-bit path, else kCbMaxQ), scales (out,) finite, codes
// out * in uint8 below k.
std::shared_ptr<CodebookLinearPlan> make_per_row_plan(const in_array<int16_t>& qtables,
                                                      const in_array<float>& scales,
                                                      const in_array<uint8_t>& codes, size_t out,
                                                      size_t in,
                                                      const std::optional<in_array<float>>& bias,
                                                      bool precise) {
  py_arrays::require_ndim(qtables, 2, "qtables");
  const size_t k = qtables.shape(1);
  if (k < 2 || k > 256) throw py::value_error("per-row tables must have 2..256 entries");
  if (out == 0 || in == 0 || static_cast<size_t>(qtables.shape(0)) != out)
    throw py::value_error("qtables must have out_features rows");
  py_arrays::require_size(scales, static_cast<py::ssize_t>(out), "scales");
  if (static_cast<size_t>(codes.size()) != out * in)
    throw py::value_error("codes must hold out_features * in_features codes");
  const int qmax = (k <= 16 && !precise) ? 127 : kCbMaxQ;
  const int16_t* q = qtables.data();
  for (size_t i = 0; i < out * k; i++)
    if (q[i] > qmax || q[i] < -qmax)
      throw py::value_error("qtables entries must be within +-" + std::to_string(qmax));
  for (size_t i = 0; i < out; i++)
    if (!std::isfinite(scales.data()[i])) throw py::value_error("scales must be finite");
  if (max_code(codes.data(), out * in) >= k)
    throw py::value_error("codes must be smaller than k=" + std::to_string(k));
  const float* bp = nullptr;
  if (bias) {
    py_arrays::require_size(*bias, static_cast<py::ssize_t>(out), "bias");
    bp = bias->data();
  }
  const float* sp = scales.data();
  const uint8_t* cp = codes.data();
  py::gil_scoped_release release;
  return std::make_shared<CodebookLinearPlan>(CodebookLinearPlan::PerRow{}, q, sp, k, cp, out, in,
                                              bp, precise);
}

}  // namespace

void register_kmeans(py::module_& m) {
  m.def("kmeans", &kmeans_py, py::arg("x"), py::arg("dim"), py::arg("k"), py::arg("iters"),
        py::arg("init"), py::arg("seed"), py::arg("max_points"),
        "k-means codebook of x (flat, n * dim values): dict(centroids, codes, bits, history, "
        "inertia, train_points), or None if x holds NaN/Inf");
  m.def("codebook_decode", &decode_py, py::arg("codes"), py::arg("bits"), py::arg("n"),
        py::arg("centroids"), py::arg("out").noconvert(),
        "out[i * d + t] = centroids[code(i), t] for n codes of `bits` width");
  m.def("codebook_bits", &codebook_bits, py::arg("k"));
  m.def("product_quantize", &pq_py, py::arg("x"), py::arg("m"), py::arg("bits"), py::arg("iters"),
        py::arg("seed"), py::arg("max_points"));
  m.def("pq_decode", &pq_decode_py, py::arg("codes"), py::arg("centroids"));
  py::class_<CodebookLinearPlan, std::shared_ptr<CodebookLinearPlan>>(
      m, "CodebookLinearPlan", "a codebook weight prepared for the codebook GEMM kernels")
      .def(py::init(&make_plan), py::arg("centroids"), py::arg("codes"), py::arg("out_features"),
           py::arg("in_features"), py::arg("bias") = py::none(), py::arg("precise") = false)
      .def_static("make_per_row", &make_per_row_plan, py::arg("qtables"), py::arg("scales"),
                  py::arg("codes"), py::arg("out_features"), py::arg("in_features"),
                  py::arg("bias") = py::none(), py::arg("precise") = false,
                  "a plan with one quantized table and one scale per output row")
      // Outliers: CSR by output row (checked here: the forward indexes with them).
      .def("set_outliers", [](CodebookLinearPlan& p, const in_array<int32_t>& indptr,
                              const in_array<int32_t>& cols, const in_array<float>& values) {
        const size_t out = p.out_features(), nnz = static_cast<size_t>(values.size());
        if (p.dim() != 1) throw py::value_error("outliers need dim 1");
        py_arrays::require_size(indptr, static_cast<py::ssize_t>(out + 1), "indptr");
        py_arrays::require_size(cols, static_cast<py::ssize_t>(nnz), "indices");
        const int32_t* ip = indptr.data();
        if (ip[0] != 0 || static_cast<size_t>(ip[out]) != nnz)
          throw py::value_error("indptr must run from 0 to the number of values");
        for (size_t o = 0; o < out; o++)
          if (ip[o + 1] < ip[o]) throw py::value_error("indptr must not decrease");
        for (size_t j = 0; j < nnz; j++) {
          if (cols.data()[j] < 0 || static_cast<size_t>(cols.data()[j]) >= p.in_features())
            throw py::value_error("indices must be in 0..in_features-1");
          if (!std::isfinite(values.data()[j])) throw py::value_error("values must be finite");
        }
        p.set_outliers(ip, cols.data(), values.data(), nnz);
      }, py::arg("indptr"), py::arg("indices"), py::arg("values"))
      .def_property_readonly("outliers", [](const CodebookLinearPlan& p) {
        const auto& a = p.outlier_indptr();
        const auto& b = p.outlier_cols();
        const auto& v = p.outlier_values();
        return py::make_tuple(py::array_t<int32_t>(static_cast<py::ssize_t>(a.size()), a.data()),
                              py::array_t<int32_t>(static_cast<py::ssize_t>(b.size()), b.data()),
                              py::array_t<float>(static_cast<py::ssize_t>(v.size()), v.data()));
      }, "(indptr, indices, values) of the outliers (empty arrays when none)")
      .def_property_readonly("per_row", &CodebookLinearPlan::per_row)
      .def_property_readonly("table_width", &CodebookLinearPlan::table_width)
      .def_property_readonly("row_scales", [](const CodebookLinearPlan& p) {
        const std::vector<float>& s = p.row_scales();
        return py::array_t<float>(static_cast<py::ssize_t>(s.size()), s.data());
      })
      .def_property_readonly("in_features", &CodebookLinearPlan::in_features)
      .def_property_readonly("out_features", &CodebookLinearPlan::out_features)
      .def_property_readonly("nbytes", &CodebookLinearPlan::nbytes)
      .def_property_readonly("nibbles", &CodebookLinearPlan::nibbles)
      .def_property_readonly("precise", &CodebookLinearPlan::precise)
      .def_property_readonly("weight_scale", &CodebookLinearPlan::weight_scale)
      .def("codes", [](const CodebookLinearPlan& p) -> py::array {
        const auto n = static_cast<py::ssize_t>(p.out_features() * (p.in_features() / p.dim()));
        py::array out = p.k() > 256 ? py::array(py::array_t<uint16_t>(n)) : py::array(py::array_t<uint8_t>(n));
        p.codes(out.mutable_data());
        return out;
      }, "the codes, unpacked (uint8 for k <= 256, else uint16), flat")
      .def_property_readonly("qcentroids", [](const CodebookLinearPlan& p) {
        const std::vector<int16_t> q = p.qcentroids();
        return py::array_t<int16_t>(static_cast<py::ssize_t>(q.size()), q.data());
      })
      // y (M, out) for x (M, in), or None when x holds NaN/Inf.
      .def("forward", [](const CodebookLinearPlan& p, const in_array<float>& x) -> py::object {
        py_arrays::require_ndim(x, 2, "x");
        if (static_cast<size_t>(x.shape(1)) != p.in_features())
          throw py::value_error("x has " + std::to_string(x.shape(1)) + " features, expected " +
                                std::to_string(p.in_features()));
        const size_t M = x.shape(0);
        py::array_t<float> y({static_cast<py::ssize_t>(M), static_cast<py::ssize_t>(p.out_features())});
        float* yp = y.mutable_data();
        bool ok;
        {
          py::gil_scoped_release release;
          ok = p.forward(x.data(), M, yp);
        }
        if (!ok) return py::none();
        return std::move(y);
      }, py::arg("x"));
}

}  // namespace lowbit
