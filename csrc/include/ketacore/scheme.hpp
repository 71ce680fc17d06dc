// ketacore/scheme.hpp -- compiled (flat-array) representation of a Markov kinetic scheme.
//
// Every model -- built-in, user-written or composed with blockers -- is compiled by the Python
// layer into this one representation (DESIGN.md rule 1).  No Python headers here.
//
// Rate law of transition t (a product of optional factors):
//
//   k_t(cond) = k0_t * [L_t] * exp(z_delta_t * F (V - v0_t) / (R T)) * exp(inv_vk_t * (V - v0_t))
//               * exp(log_q10_t * (T - t_ref_t) / 10)
//
// with [L_t] = 1 when ligand_t < 0.  k0 already contains any statistical factor.
// A condition is a double array: cond[0] = V (volt), cond[1] = T (kelvin),
// cond[2 + l] = concentration of ligand l (molar).
#pragma once
#include <cmath>
#include <cstddef>
#include <vector>

namespace ketacore {

constexpr double FARADAY = 96485.33212;      // C / mol (CODATA 2018, exact)
constexpr double GAS_CONSTANT = 8.314462618;  // J / (mol K) (CODATA 2018, exact)

struct CompiledScheme {
    int n_states = 0;
    int n_ligands = 0;
    std::vector<int> src, dst, ligand;                         // per transition
    std::vector<double> k0, z_delta, inv_vk, v0, log_q10, t_ref;  // per transition
    std::vector<double> conductance;                           // per state, siemens
    double e_rev = 0.0;                                        // volt

    std::size_t n_transitions() const { return src.size(); }
    int condition_size() const { return 2 + n_ligands; }

    // Rate (1/s) of every transition under `cond`.
    void rates(const double* cond, double* out) const {
        const double V = cond[0];
        const double T = cond[1];
        const double f_rt = FARADAY / (GAS_CONSTANT * T);
        const std::size_t n = src.size();
        for (std::size_t t = 0; t < n; ++t) {
            double k = k0[t];
            if (ligand[t] >= 0) k *= cond[2 + ligand[t]];
            const double dv = V - v0[t];
            double e = z_delta[t] * f_rt * dv + inv_vk[t] * dv;
            if (log_q10[t] != 0.0) e += log_q10[t] * (T - t_ref[t]) / 10.0;
            if (e != 0.0) k *= std::exp(e);
            out[t] = k;
        }
    }

    // Dense generator Q (row-major n_states x n_states); rows sum to zero.
    void q_matrix(const double* cond, double* Q) const {
        const int K = n_states;
        for (int i = 0; i < K * K; ++i) Q[i] = 0.0;
        std::vector<double> r(src.size());
        rates(cond, r.data());
        for (std::size_t t = 0; t < src.size(); ++t) {
            Q[src[t] * K + dst[t]] += r[t];
            Q[src[t] * K + src[t]] -= r[t];
        }
    }

    // Total exit rate of every state under `cond`.
    void exit_rates(const double* cond, double* out) const {
        for (int i = 0; i < n_states; ++i) out[i] = 0.0;
        std::vector<double> r(src.size());
        rates(cond, r.data());
        for (std::size_t t = 0; t < src.size(); ++t) out[src[t]] += r[t];
    }
};

}  // namespace ketacore
