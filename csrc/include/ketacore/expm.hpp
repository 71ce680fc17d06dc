// ketacore/expm.hpp -- matrix exponential by scaling and squaring with Pade approximants.
//
// Algorithm 2.3 of N. J. Higham, "The scaling and squaring method for the matrix exponential
// revisited", SIAM J. Matrix Anal. Appl. 26(4):1179-1193 (2005), doi:10.1137/04061101X
// (the same algorithm as scipy.linalg.expm before its 2009 Al-Mohy-Higham refinement).
//
// For a generator Q (rows sum to 0) we first shift by mu = max_i |q_ii|: Q + mu I is
// non-negative, so exp(Q t) = exp(-mu t) exp((Q + mu I) t) is computed without the
// cancellation of a matrix with large negative diagonal, and the result is entrywise
// non-negative up to rounding.  The shift is applied only when `generator` is true; then the
// intermediate squares (each exactly stochastic in exact arithmetic) are also clipped at 0 and
// row-renormalised, so rounding does not compound over the squarings of very stiff matrices.
#pragma once
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "ketacore/linalg.hpp"

namespace ketacore {

// out = expm(A), A and out n x n row-major (may alias).  Throws std::domain_error (Python
// ValueError) on a non-finite entry -- with validated rates that means rate x time overflowed a
// double -- and std::runtime_error on a singular Pade denominator (cannot happen for finite input
// within the theta bounds).
inline void expm(const double* A_in, int n, double* out, bool generator = false) {
    const std::size_t nn = static_cast<std::size_t>(n) * n;
    std::vector<double> A(A_in, A_in + nn);
    double shift = 0.0;
    if (generator) {
        for (int i = 0; i < n; ++i) shift = std::fmax(shift, -A[static_cast<std::size_t>(i) * n + i]);
        for (int i = 0; i < n; ++i) A[static_cast<std::size_t>(i) * n + i] += shift;
    }
    for (std::size_t i = 0; i < nn; ++i)
        if (!std::isfinite(A[i]))
            throw std::domain_error("rate x time overflows a double (a non-finite entry of Q t); "
                                    "use a smaller dt or shorter protocol steps");

    static const double theta[5] = {1.495585217958292e-2, 2.539398330063230e-1,
                                    9.504178996162932e-1, 2.097847961257068e0,
                                    5.371920351148152e0};
    static const int orders[5] = {3, 5, 7, 9, 13};
    static const double b3[4] = {120., 60., 12., 1.};
    static const double b5[6] = {30240., 15120., 3360., 420., 30., 1.};
    static const double b7[8] = {17297280., 8648640., 1995840., 277200., 25200., 1512., 56., 1.};
    static const double b9[10] = {17643225600., 8821612800., 2075673600., 302702400., 30270240.,
                                  2162160., 110880., 3960., 90., 1.};
    static const double b13[14] = {64764752532480000., 32382376266240000., 7771770303897600.,
                                   1187353796428800.,  129060195264000.,   10559470521600.,
                                   670442572800.,      33522128640.,       1323241920.,
                                   40840800.,          960960.,            16380.,
                                   182.,               1.};
    const double* bs[5] = {b3, b5, b7, b9, b13};

    const double nrm = linalg::norm1(A.data(), n);
    int m_idx = 4;
    int s = 0;
    for (int i = 0; i < 4; ++i) {
        if (nrm <= theta[i]) { m_idx = i; break; }
    }
    if (m_idx == 4 && nrm > theta[4]) {
        s = static_cast<int>(std::ceil(std::log2(nrm / theta[4])));
        if (s < 0) s = 0;
        const double scale = std::ldexp(1.0, -s);
        for (auto& v : A) v *= scale;
    }
    const double* b = bs[m_idx];
    const int m = orders[m_idx];

    std::vector<double> I(nn, 0.0), A2(nn), U(nn, 0.0), V(nn, 0.0), tmp(nn), tmp2(nn);
    for (int i = 0; i < n; ++i) I[static_cast<std::size_t>(i) * n + i] = 1.0;
    linalg::matmul(A.data(), A.data(), A2.data(), n);

    if (m < 13) {
        // powers A^0, A^2, A^4, ... up to A^(m-1)
        std::vector<double> P(I);  // current even power
        std::vector<double> Ueven(nn, 0.0);
        for (int k = 0; 2 * k <= m; ++k) {
            // P = A^(2k)
            for (std::size_t i = 0; i < nn; ++i) {
                Ueven[i] += b[2 * k + 1] * P[i];
                V[i] += b[2 * k] * P[i];
            }
            if (2 * (k + 1) <= m) {
                linalg::matmul(P.data(), A2.data(), tmp.data(), n);
                P.swap(tmp);
            }
        }
        linalg::matmul(A.data(), Ueven.data(), U.data(), n);
    } else {
        std::vector<double> A4(nn), A6(nn);
        linalg::matmul(A2.data(), A2.data(), A4.data(), n);
        linalg::matmul(A4.data(), A2.data(), A6.data(), n);
        for (std::size_t i = 0; i < nn; ++i)
            tmp[i] = b[13] * A6[i] + b[11] * A4[i] + b[9] * A2[i];
        linalg::matmul(A6.data(), tmp.data(), tmp2.data(), n);
        for (std::size_t i = 0; i < nn; ++i)
            tmp2[i] += b[7] * A6[i] + b[5] * A4[i] + b[3] * A2[i] + b[1] * I[i];
        linalg::matmul(A.data(), tmp2.data(), U.data(), n);
        for (std::size_t i = 0; i < nn; ++i)
            tmp[i] = b[12] * A6[i] + b[10] * A4[i] + b[8] * A2[i];
        linalg::matmul(A6.data(), tmp.data(), V.data(), n);
        for (std::size_t i = 0; i < nn; ++i)
            V[i] += b[6] * A6[i] + b[4] * A4[i] + b[2] * A2[i] + b[0] * I[i];
    }
    // Solve (V - U) R = (V + U)
    std::vector<double> Den(nn), R(nn);
    for (std::size_t i = 0; i < nn; ++i) {
        Den[i] = V[i] - U[i];
        R[i] = V[i] + U[i];
    }
    if (!linalg::solve_inplace(Den.data(), R.data(), n, n))
        throw std::runtime_error("expm: singular Pade denominator");
    if (generator && shift != 0.0) {
        // exp(Q) = (exp(-shift 2^-s) exp((Q + shift I) 2^-s))^(2^s): undo the shift before
        // squaring so no intermediate over- or underflows.
        const double f = std::exp(-std::ldexp(shift, -s));
        for (auto& v : R) v *= f;
    }
    for (int k = 0; k < s; ++k) {
        linalg::matmul(R.data(), R.data(), tmp.data(), n);
        R.swap(tmp);
        if (generator) {
            // exp(Q t) of a generator is stochastic: clip rounding negatives and renormalise
            // the rows so rounding errors do not compound over many squarings.
            for (int i = 0; i < n; ++i) {
                double* row = R.data() + static_cast<std::size_t>(i) * n;
                double sum = 0.0;
                for (int j = 0; j < n; ++j) {
                    if (row[j] < 0.0) row[j] = 0.0;
                    sum += row[j];
                }
                if (sum > 0.0) {
                    const double inv = 1.0 / sum;
                    for (int j = 0; j < n; ++j) row[j] *= inv;
                }
            }
        }
    }
    for (std::size_t i = 0; i < nn; ++i) out[i] = R[i];
}

}  // namespace ketacore
