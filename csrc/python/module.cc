// The pybind11 module lowbit._core: one register_* per area (bind_*.cc).
#include "arrays.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "lowbit's C++ core (kernels, dispatch, thread pool); use the lowbit package instead";
#ifdef LOWBIT_VERSION
  m.attr("__version__") = LOWBIT_VERSION;
#endif
  lowbit::register_runtime(m);
  lowbit::register_quant(m);
  lowbit::register_gemm(m);
  lowbit::register_int4(m);
  lowbit::register_encoder(m);
  lowbit::register_kmeans(m);
  lowbit::register_peak(m);
}
