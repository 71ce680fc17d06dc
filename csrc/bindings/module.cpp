// ketacore._core -- pybind11 module.  One bind_<concept>.cpp per concept; this file only wires
// them together.  All input validation happens in the Python layer (ketacore/*.py) before any
// function here is called.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_scheme(py::module_& m);
void bind_expm(py::module_& m);
void bind_master(py::module_& m);
void bind_rng(py::module_& m);
void bind_simulate(py::module_& m);
void bind_protocol(py::module_& m);
void bind_hjc(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "ketacore C++ core (private; use the ketacore package API).";
    bind_scheme(m);
    bind_expm(m);
    bind_master(m);
    bind_rng(m);
    bind_simulate(m);
    bind_protocol(m);
    bind_hjc(m);
}
