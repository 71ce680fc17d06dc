// Binding of ketacore::expm (used by tests and theory helpers).
#include "common.hpp"
#include "ketacore/expm.hpp"

void bind_expm(py::module_& m) {
    m.def(
        "expm",
        [](const darray& A, bool generator) {
            if (A.ndim() != 2 || A.shape(0) != A.shape(1))
                throw std::invalid_argument("A must be a square 2-D array");
            const int n = static_cast<int>(A.shape(0));
            darray out({n, n});
            {
                std::vector<double> a(A.data(), A.data() + A.size());
                py::gil_scoped_release release;
                ketacore::expm(a.data(), n, out.mutable_data(), generator);
            }
            return out;
        },
        py::arg("A"), py::arg("generator") = false,
        "Matrix exponential (Higham 2005 scaling and squaring, Pade 13).");
}
