// Bindings of ketacore::expm and linalg::gth (dense linear algebra of one generator, used by
// tests and ketacore.theory).
#include "common.hpp"

#include <vector>

#include "ketacore/expm.hpp"
#include "ketacore/linalg.hpp"

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
    m.def(
        "gth",
        [](const darray& Q) -> py::object {
            if (Q.ndim() != 2 || Q.shape(0) != Q.shape(1) || Q.shape(0) < 1)
                throw std::invalid_argument("Q must be a non-empty square 2-D array");
            const int n = static_cast<int>(Q.shape(0));
            darray p(n);
            bool ok;
            {
                std::vector<double> A(static_cast<std::size_t>(n) * n);
                py::gil_scoped_release release;
                ok = ketacore::linalg::gth(Q.data(), A.data(), p.mutable_data(), n);
            }
            if (!ok) return py::none();
            return std::move(p);
        },
        py::arg("Q"),
        "Stationary distribution of the generator Q by GTH state reduction; None where the "
        "reduction breaks down (reducible chain).");
}
