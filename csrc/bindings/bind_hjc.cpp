// Bindings of the asymptotic HJC root search and projectors (ketacore/hjc.hpp) that
// ketacore.theory._HJCClass calls for reversible mechanisms, and of the symmetric Jacobi
// eigensolver they use (for its tests).  The Python layer validates everything first; the
// shape checks here only keep a wrong call from reading out of bounds.
#include "common.hpp"

#include <tuple>
#include <vector>

#include "ketacore/hjc.hpp"

namespace {

ketacore::hjc::ReversibleClass make_class(const darray& QAA, const darray& QAF, const darray& QFA,
                                          const darray& nu, const darray& B, const darray& r, double tau) {
    if (QAA.ndim() != 2 || QAA.shape(0) != QAA.shape(1) || QAA.shape(0) < 1)
        throw std::invalid_argument("QAA must be a non-empty square 2-D array");
    const py::ssize_t kA = QAA.shape(0);
    if (QAF.ndim() != 2 || QAF.shape(0) != kA || QAF.shape(1) < 1)
        throw std::invalid_argument("QAF must be kA x kF");
    const py::ssize_t kF = QAF.shape(1);
    if (QFA.ndim() != 2 || QFA.shape(0) != kF || QFA.shape(1) != kA)
        throw std::invalid_argument("QFA must be kF x kA");
    if (nu.ndim() != 1 || B.ndim() != 3 || B.shape(0) != nu.shape(0) || B.shape(1) != kF || B.shape(2) != kF)
        throw std::invalid_argument("nu must be (nS,) and B (nS, kF, kF)");
    if (r.ndim() != 1 || r.shape(0) != kA) throw std::invalid_argument("r must be (kA,)");
    return {static_cast<int>(kA), static_cast<int>(kF), static_cast<int>(nu.shape(0)), QAA.data(), QAF.data(),
            QFA.data(), nu.data(), B.data(), r.data(), tau};
}


// (tau, s_top, lam (K,), Z (n, n, K, kA, kF), s (G,), RZ (G, kA, kF)) -> EGClass over arrays kept
// alive by the caller's tuple.
struct EGArrays {
    darray lam, Z, s, RZ;
    ketacore::hjc::EGClass c;
};

EGArrays make_eg(const py::tuple& t) {
    if (t.size() != 6) throw std::invalid_argument("an eG class is (tau, s_top, lam, Z, s, RZ)");
    EGArrays e{t[2].cast<darray>(), t[3].cast<darray>(), t[4].cast<darray>(), t[5].cast<darray>(), {}};
    if (e.lam.ndim() != 1 || e.Z.ndim() != 5 || e.s.ndim() != 1 || e.RZ.ndim() != 3)
        throw std::invalid_argument("lam (K,), Z (n, n, K, kA, kF), s (G,), RZ (G, kA, kF)");
    const py::ssize_t K = e.lam.shape(0), n = e.Z.shape(0), kA = e.Z.shape(3), kF = e.Z.shape(4);
    if (e.Z.shape(1) != n || e.Z.shape(2) != K || n < 1 || e.RZ.shape(0) != e.s.shape(0) ||
        e.RZ.shape(1) != kA || e.RZ.shape(2) != kF)
        throw std::invalid_argument("inconsistent eG class shapes");
    e.c = {static_cast<int>(kA), static_cast<int>(kF), static_cast<int>(K), static_cast<int>(n),
           static_cast<int>(e.s.shape(0)), t[0].cast<double>(), t[1].cast<double>(),
           e.lam.data(), e.Z.data(), e.s.data(), e.RZ.data()};
    return e;
}

}  // namespace

void bind_hjc(py::module_& m) {
    m.def(
        "hjc_roots",
        [](const darray& QAA, const darray& QAF, const darray& QFA, const darray& nu, const darray& B,
           const darray& r, double tau) {
            const auto c = make_class(QAA, QAF, QFA, nu, B, r, tau);
            darray roots(c.kA);
            double where = 0.0;
            int status;
            {
                py::gil_scoped_release release;
                status = ketacore::hjc::roots(c, roots.mutable_data(), &where);
            }
            return std::make_tuple(status, roots, where);
        },
        py::arg("QAA"), py::arg("QAF"), py::arg("QFA"), py::arg("nu"), py::arg("B"), py::arg("r"), py::arg("tau"),
        "(status, roots, where): the ascending roots of det W(s) = 0 of a reversible class "
        "(status 0) or a failure code of ketacore::hjc::Status and the s it concerns.");
    m.def(
        "hjc_projectors",
        [](const darray& QAA, const darray& QAF, const darray& QFA, const darray& nu, const darray& B,
           const darray& r, double tau, const darray& roots) {
            const auto c = make_class(QAA, QAF, QFA, nu, B, r, tau);
            if (roots.ndim() != 1 || roots.shape(0) != c.kA) throw std::invalid_argument("roots must be (kA,)");
            std::vector<double> sv(static_cast<std::size_t>(c.kA));
            std::vector<double> mats(static_cast<std::size_t>(c.kA) * c.kA * c.kA);
            double where = 0.0;
            int n = 0, status;
            {
                py::gil_scoped_release release;
                status = ketacore::hjc::projectors(c, roots.data(), sv.data(), mats.data(), &n, &where);
            }
            if (status != ketacore::hjc::OK) n = 0;
            darray svals(n), R({n, c.kA, c.kA});
            std::copy(sv.begin(), sv.begin() + n, svals.mutable_data());
            std::copy(mats.begin(), mats.begin() + static_cast<std::ptrdiff_t>(n) * c.kA * c.kA, R.mutable_data());
            return std::make_tuple(status, svals, R, where);
        },
        py::arg("QAA"), py::arg("QAF"), py::arg("QFA"), py::arg("nu"), py::arg("B"), py::arg("r"), py::arg("tau"),
        py::arg("roots"),
        "(status, s, R, where): merged roots and projectors R_j (g, kA, kA) of AR(u) ~ sum R_j exp(s_j u).");
    m.def(
        "hjc_group_logliks",
        [](const py::tuple& open, const py::tuple& shut, const darray& start, const darray& end, double end_log,
           const darray& t, const iarray& lens) {
            const EGArrays o = make_eg(open), f = make_eg(shut);
            if (o.c.kA != f.c.kF || o.c.kF != f.c.kA) throw std::invalid_argument("open and shut classes do not match");
            if (start.ndim() != 1 || start.shape(0) != o.c.kA || end.ndim() != 1 || end.shape(0) != o.c.kF)
                throw std::invalid_argument("start must be (kA,) and end (kF,)");
            if (t.ndim() != 1 || lens.ndim() != 1) throw std::invalid_argument("t and lens must be 1-D");
            std::int64_t total = 0;
            for (py::ssize_t g = 0; g < lens.shape(0); ++g) {
                const std::int64_t L = lens.data()[g];
                if (L < 1 || L % 2 == 0) throw std::invalid_argument("group lengths must be odd and >= 1");
                total += L;
            }
            if (total != t.shape(0)) throw std::invalid_argument("lens do not sum to len(t)");
            darray out(lens.shape(0));
            {
                py::gil_scoped_release release;
                ketacore::hjc::group_logliks(o.c, f.c, start.data(), end.data(), end_log, t.data(), lens.data(),
                                             static_cast<std::size_t>(lens.shape(0)), out.mutable_data());
            }
            return out;
        },
        py::arg("open"), py::arg("shut"), py::arg("start"), py::arg("end"), py::arg("end_log"), py::arg("t"),
        py::arg("lens"),
        "ln L of each HJC group (open, shut, ..., open) from the spectral eG forms of both classes.");
    m.def(
        "hjc_chain_blocks",
        [](const py::list& Xs, int k, const iarray& a, double tau, const darray& u) {
            std::vector<darray> keep;
            std::vector<const double*> X;
            for (std::size_t m = 0; m < Xs.size(); ++m) {
                keep.push_back(Xs[m].cast<darray>());
                const darray& x = keep.back();
                const py::ssize_t sz = (static_cast<py::ssize_t>(m) + 2) * k;
                if (x.ndim() != 2 || x.shape(0) != sz || x.shape(1) != sz)
                    throw std::invalid_argument("X[m] must be (m + 2) k square");
                X.push_back(x.data());
            }
            if (a.ndim() != 1 || u.ndim() != 1) throw std::invalid_argument("a and u must be 1-D");
            for (py::ssize_t p = 0; p < a.shape(0); ++p)
                if (a.data()[p] < 0 || a.data()[p] >= k) throw std::invalid_argument("a out of range");
            const py::ssize_t kA = a.shape(0), N = u.shape(0);
            std::vector<int> ai(a.data(), a.data() + kA);
            darray F({N, kA, kA}), G({N, kA, kA});
            {
                py::gil_scoped_release release;
                ketacore::hjc::chain_blocks(X, k, ai.data(), static_cast<int>(kA), tau, u.data(),
                                            static_cast<std::size_t>(N), F.mutable_data(), G.mutable_data());
            }
            return std::make_pair(F, G);
        },
        py::arg("X"), py::arg("k"), py::arg("a"), py::arg("tau"), py::arg("u"),
        "(F, G): the exact HJC pieces [expm(X_m x)] restricted to A x A and their integrals, summed "
        "with alternating signs, at each u (N, kA, kA each).");
    m.def(
        "symmetric_eigh",
        [](const darray& A) -> py::object {
            if (A.ndim() != 2 || A.shape(0) != A.shape(1) || A.shape(0) < 1)
                throw std::invalid_argument("A must be a non-empty square 2-D array");
            const int n = static_cast<int>(A.shape(0));
            std::vector<double> a(A.data(), A.data() + A.size());
            darray w(n), V({n, n});
            bool ok;
            {
                py::gil_scoped_release release;
                ok = ketacore::hjc::jacobi_eigh(a.data(), n, w.mutable_data(), V.mutable_data());
            }
            if (!ok) return py::none();
            return py::make_tuple(w, V);
        },
        py::arg("A"),
        "(w, V) of a symmetric matrix (upper triangle read) by cyclic Jacobi: ascending eigenvalues and "
        "eigenvectors as columns; None if it does not converge.");
}
