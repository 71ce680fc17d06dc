// Binding of ketacore::CompiledScheme.
#include "common.hpp"

#include <cmath>
#include <vector>

#include "ketacore/linalg.hpp"

using ketacore::CompiledScheme;

static CompiledScheme make_scheme(int n_states, int n_ligands, const iarray& src, const iarray& dst,
                                  const iarray& ligand, const darray& k0, const darray& z_delta,
                                  const darray& inv_vk, const darray& v0, const darray& log_q10,
                                  const darray& t_ref, const darray& conductance, double e_rev) {
    CompiledScheme s;
    s.n_states = n_states;
    s.n_ligands = n_ligands;
    auto cast = [](const iarray& a) {
        std::vector<int> v(a.size());
        for (py::ssize_t i = 0; i < a.size(); ++i) v[i] = static_cast<int>(a.data()[i]);
        return v;
    };
    s.src = cast(src);
    s.dst = cast(dst);
    s.ligand = cast(ligand);
    s.k0 = to_vector<double>(k0);
    s.z_delta = to_vector<double>(z_delta);
    s.inv_vk = to_vector<double>(inv_vk);
    s.v0 = to_vector<double>(v0);
    s.log_q10 = to_vector<double>(log_q10);
    s.t_ref = to_vector<double>(t_ref);
    s.conductance = to_vector<double>(conductance);
    s.e_rev = e_rev;
    const std::size_t n = s.src.size();
    if (s.dst.size() != n || s.ligand.size() != n || s.k0.size() != n || s.z_delta.size() != n ||
        s.inv_vk.size() != n || s.v0.size() != n || s.log_q10.size() != n || s.t_ref.size() != n)
        throw std::invalid_argument("per-transition arrays differ in length");
    if (s.conductance.size() != static_cast<std::size_t>(n_states))
        throw std::invalid_argument("conductance length != n_states");
    for (std::size_t t = 0; t < n; ++t) {
        if (s.src[t] < 0 || s.src[t] >= n_states || s.dst[t] < 0 || s.dst[t] >= n_states)
            throw std::invalid_argument("state index out of range");
        if (s.ligand[t] >= n_ligands) throw std::invalid_argument("ligand index out of range");
    }
    return s;
}

void bind_scheme(py::module_& m) {
    py::class_<CompiledScheme>(m, "CompiledScheme",
                               "Flat-array scheme (built by ketacore.Scheme; private).")
        .def(py::init(&make_scheme), py::arg("n_states"), py::arg("n_ligands"), py::arg("src"),
             py::arg("dst"), py::arg("ligand"), py::arg("k0"), py::arg("z_delta"),
             py::arg("inv_vk"), py::arg("v0"), py::arg("log_q10"), py::arg("t_ref"),
             py::arg("conductance"), py::arg("e_rev"))
        .def_readonly("n_states", &CompiledScheme::n_states)
        .def_readonly("n_ligands", &CompiledScheme::n_ligands)
        .def_property_readonly("n_transitions",
                               [](const CompiledScheme& s) { return s.n_transitions(); })
        .def(
            "q_matrix",
            [](const CompiledScheme& s, const darray& cond) {
                if (cond.size() != s.condition_size())
                    throw std::invalid_argument("condition has the wrong length");
                darray Q({s.n_states, s.n_states});
                s.q_matrix(cond.data(), Q.mutable_data());
                return Q;
            },
            py::arg("cond"))
        .def(
            "exits_equilibria",
            [](const CompiledScheme& s, const darray& conds, bool equilibria) {
                if (conds.ndim() != 2 || conds.shape(1) != static_cast<py::ssize_t>(s.condition_size()))
                    throw std::invalid_argument("conditions must be (C, condition size)");
                const py::ssize_t C = conds.shape(0), K = s.n_states;
                darray E({C, K});
                darray P(equilibria ? std::vector<py::ssize_t>{C, K} : std::vector<py::ssize_t>{0, K});
                const double* c = conds.data();
                double* e = E.mutable_data();
                double* p = P.mutable_data();
                {
                    py::gil_scoped_release nogil;
                    std::vector<double> Q(static_cast<std::size_t>(K * K)), A(Q.size());
                    for (py::ssize_t i = 0; i < C; ++i) {
                        s.q_matrix(c + i * s.condition_size(), Q.data());
                        for (py::ssize_t k = 0; k < K; ++k) e[i * K + k] = -Q[k * K + k];
                        if (equilibria &&
                            !ketacore::linalg::stationary(Q.data(), A.data(), p + i * K, static_cast<int>(K)))
                            for (py::ssize_t k = 0; k < K; ++k) p[i * K + k] = std::nan("");
                    }
                }
                return py::make_tuple(E, P);
            },
            py::arg("conds"), py::arg("equilibria") = true,
            "(exit rates (C, K), stationary distributions (C, K) by GTH, or (0, K) without "
            "equilibria) of C conditions: the cost model's inputs in one pass.  A row of NaN where "
            "there is no unique one (several closed classes) or GTH overflows.")
        .def(
            "rates",
            [](const CompiledScheme& s, const darray& cond) {
                if (cond.size() != s.condition_size())
                    throw std::invalid_argument("condition has the wrong length");
                darray r(static_cast<py::ssize_t>(s.n_transitions()));
                s.rates(cond.data(), r.mutable_data());
                return r;
            },
            py::arg("cond"))
        .def(
            "exit_rates",
            [](const CompiledScheme& s, const darray& cond) {
                if (cond.size() != s.condition_size())
                    throw std::invalid_argument("condition has the wrong length");
                darray r(s.n_states);
                s.exit_rates(cond.data(), r.mutable_data());
                return r;
            },
            py::arg("cond"));
}
