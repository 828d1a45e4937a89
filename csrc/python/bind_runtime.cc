#include <pybind11/stl.h>

#include "arrays.h"
#include "lowbit/runtime.h"

namespace lowbit {

void register_runtime(py::module_& m) {
  m.def("cpu_arch", &cpu_arch);
  m.def("cpu_features", &cpu_features);
  m.def("cpu_note", &cpu_note, "What this build's kernels lack on this architecture, or ''");
  m.def("supported_isas", &supported_isas, "Kernel sets this build and CPU run, lowest first");
  m.def("active_isa", &active_isa);
  m.def("set_isa", &set_isa, py::arg("isa"), "Switch kernel set; False if not supported here");
  m.def("num_threads", &num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
}

}  // namespace lowbit
