// ketacore/hjc.hpp -- asymptotic HJC roots and projectors of one class of states (the open or
// the shut states) of a reversible mechanism, for the missed-events likelihood of
// ketacore.theory (hjc_loglik, apparent_dwell_times).  Python-free; row-major small matrices.
//
// Notation of Hawkes, Jalali & Colquhoun (1990) Phil Trans R Soc Lond A 332:511,
// doi:10.1098/rsta.1990.0129 and (1992) Phil Trans R Soc Lond B 337:383,
// doi:10.1098/rstb.1992.0116 [HJC92]: A the class, F its complement, tau the dead time,
//   K(s)   = int_0^tau exp(-s t) exp(Q_FF t) dt = sum_m B_m tau phi1(-(nu_m + s) tau)
//            (nu_m, B_m the spectral expansion of -Q_FF, computed by the caller),
//   H(s)   = Q_AA + Q_AF K(s) Q_FA                      [HJC92 eq. 54],
//   W(s)   = s I - H(s);  W'(s) = I - Q_AF K'(s) Q_FA    [HJC92 eq. 56].
// For a reversible mechanism S(s) = D^(1/2) H(s) D^(-1/2) (D the equilibrium occupancies of A,
// r = sqrt(D)) is symmetric and decreases with s, so its ordered eigenvalues mu_j(s) are
// continuous and non-increasing and the j-th root of det W(s) = 0 is the one zero of
// mu_j(s) - s in [1.01 lambda_min(Q_AA) - 1, 0); it is found by Brent's method.  The
// projector of a root s of multiplicity g is R = C (R^T W'(s) C)^-1 R^T with C = V / r and
// R^T = (V r)^T, V the g eigenvectors of S(s) whose eigenvalues are nearest s [HJC92 eqs. 56-58].
// This is the algorithm of ketacore.theory._HJCClass (its Python version is the test oracle,
// tests/test_hjc_core.py).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "ketacore/expm.hpp"
#include "ketacore/linalg.hpp"

namespace ketacore {
namespace hjc {

// Eigen-decomposition of a symmetric n x n matrix by the cyclic Jacobi method (Rutishauser
// 1966; as in Press et al., Numerical Recipes, 3rd ed. section 11.1): A (upper triangle read,
// destroyed), w the eigenvalues in ascending order, V (may be null) the eigenvectors as columns
// (V[i n + k] = component i of vector k).  Jacobi rotations give eigenvalues to high relative
// accuracy for the small matrices of kinetic schemes.  Returns false if 100 sweeps do not
// converge (not seen: convergence is quadratic).
inline bool jacobi_eigh(double* A, int n, double* w, double* V) {
    const std::size_t N = static_cast<std::size_t>(n);
    std::vector<double> b(N), z(N, 0.0), vv(V ? 0 : N * N);
    double* v = V ? V : vv.data();
    for (std::size_t i = 0; i < N * N; ++i) v[i] = 0.0;
    for (std::size_t i = 0; i < N; ++i) {
        v[i * N + i] = 1.0;
        b[i] = w[i] = A[i * N + i];
    }
    auto rot = [](double* a, std::size_t i, std::size_t k, double s, double tau) {
        const double g = a[i], h = a[k];
        a[i] = g - s * (h + g * tau);
        a[k] = h + s * (g - h * tau);
    };
    bool done = false;
    for (int sweep = 1; sweep <= 100 && !done; ++sweep) {
        double sm = 0.0;
        for (std::size_t p = 0; p + 1 < N; ++p)
            for (std::size_t q = p + 1; q < N; ++q) sm += std::fabs(A[p * N + q]);
        if (sm == 0.0) {
            done = true;
            break;
        }
        const double tresh = sweep < 4 ? 0.2 * sm / static_cast<double>(N * N) : 0.0;
        for (std::size_t p = 0; p + 1 < N; ++p) {
            for (std::size_t q = p + 1; q < N; ++q) {
                double& apq = A[p * N + q];
                const double g = 100.0 * std::fabs(apq);
                if (sweep > 4 && std::fabs(w[p]) + g == std::fabs(w[p]) &&
                    std::fabs(w[q]) + g == std::fabs(w[q])) {
                    apq = 0.0;
                } else if (std::fabs(apq) > tresh) {
                    double h = w[q] - w[p], t;
                    if (std::fabs(h) + g == std::fabs(h)) {
                        t = apq / h;
                    } else {
                        const double theta = 0.5 * h / apq;
                        t = 1.0 / (std::fabs(theta) + std::sqrt(1.0 + theta * theta));
                        if (theta < 0.0) t = -t;
                    }
                    const double c = 1.0 / std::sqrt(1.0 + t * t), s = t * c, tau = s / (1.0 + c);
                    h = t * apq;
                    z[p] -= h;
                    z[q] += h;
                    w[p] -= h;
                    w[q] += h;
                    apq = 0.0;
                    for (std::size_t j = 0; j < p; ++j) rot(A, j * N + p, j * N + q, s, tau);
                    for (std::size_t j = p + 1; j < q; ++j) rot(A, p * N + j, j * N + q, s, tau);
                    for (std::size_t j = q + 1; j < N; ++j) rot(A, p * N + j, q * N + j, s, tau);
                    for (std::size_t j = 0; j < N; ++j) rot(v, j * N + p, j * N + q, s, tau);
                }
            }
        }
        for (std::size_t p = 0; p < N; ++p) {
            b[p] += z[p];
            w[p] = b[p];
            z[p] = 0.0;
        }
    }
    if (!done) return false;
    // ascending order (selection sort: n is small), columns of V alongside
    for (std::size_t i = 0; i + 1 < N; ++i) {
        std::size_t k = i;
        for (std::size_t j = i + 1; j < N; ++j)
            if (w[j] < w[k]) k = j;
        if (k != i) {
            std::swap(w[i], w[k]);
            for (std::size_t r = 0; r < N; ++r) std::swap(v[r * N + i], v[r * N + k]);
        }
    }
    return true;
}

// Brent's root finder with the exact steps of scipy.optimize.brentq (scipy/optimize/Zeros/
// brentq.c, after Brent 1973, "Algorithms for minimization without derivatives", ch. 4).
// f(xa) and f(xb) must differ in sign.  Sets *ok = false if maxiter iterations do not converge.
template <class F>
double brentq(F&& f, double xa, double xb, double xtol, double rtol, int maxiter, bool* ok) {
    double xpre = xa, xcur = xb, xblk = 0.0, fblk = 0.0, spre = 0.0, scur = 0.0;
    double fpre = f(xpre), fcur = f(xcur);
    *ok = true;
    if (fpre == 0.0) return xpre;
    if (fcur == 0.0) return xcur;
    if (std::signbit(fpre) == std::signbit(fcur)) {
        *ok = false;
        return xcur;
    }
    for (int i = 0; i < maxiter; ++i) {
        if (fpre != 0.0 && fcur != 0.0 && std::signbit(fpre) != std::signbit(fcur)) {
            xblk = xpre;
            fblk = fpre;
            spre = scur = xcur - xpre;
        }
        if (std::fabs(fblk) < std::fabs(fcur)) {
            xpre = xcur;
            xcur = xblk;
            xblk = xpre;
            fpre = fcur;
            fcur = fblk;
            fblk = fpre;
        }
        const double delta = (xtol + rtol * std::fabs(xcur)) / 2.0;
        const double sbis = (xblk - xcur) / 2.0;
        if (fcur == 0.0 || std::fabs(sbis) < delta) return xcur;
        if (std::fabs(spre) > delta && std::fabs(fcur) < std::fabs(fpre)) {
            double stry;
            if (xpre == xblk) {
                stry = -fcur * (xcur - xpre) / (fcur - fpre);  // interpolate
            } else {                                          // extrapolate
                const double dpre = (fpre - fcur) / (xpre - xcur);
                const double dblk = (fblk - fcur) / (xblk - xcur);
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre));
            }
            if (2.0 * std::fabs(stry) < std::min(std::fabs(spre), 3.0 * std::fabs(sbis) - delta)) {
                spre = scur;  // good short step
                scur = stry;
            } else {
                spre = sbis;  // bisect
                scur = sbis;
            }
        } else {
            spre = sbis;
            scur = sbis;
        }
        xpre = xcur;
        fpre = fcur;
        xcur += std::fabs(scur) > delta ? scur : (sbis > 0.0 ? delta : -delta);
        fcur = f(xcur);
    }
    *ok = false;
    return xcur;
}

// int_0^1 exp(z x) dx = expm1(z) / z (1 + z/2 for |z| < 1e-8), as ketacore.theory._phi1.
inline double phi1(double z) { return std::fabs(z) < 1e-8 ? 1.0 + z / 2.0 : std::expm1(z) / z; }

// int_0^1 x exp(z x) dx = ((z - 1) e^z + 1) / z^2; the Taylor series sum z^n / (n! (n + 2))
// for |z| < 1/2, where the closed form cancels (as ketacore.theory._psi1).
inline double psi1(double z) {
    if (std::fabs(z) < 0.5) {
        double acc = 0.0, term = 1.0;
        for (int n = 0; n < 24; ++n) {
            acc += term / (n + 2);
            term = term * z / (n + 1);
        }
        return acc;
    }
    return ((z - 1.0) * std::exp(z) + 1.0) / (z * z);
}

// Status of the root search and projectors (ketacore.theory turns each into its ValueError).
enum Status : int {
    OK = 0,
    H0_NOT_NEGATIVE = 1,   // an eigenvalue of H(0) >= 0: the apparent sojourns need not end
    NO_BRACKET = 2,        // mu_j(lo) - lo not > 0 at the lower end (excluded by the floor of Eigenvalues)
    NOT_CONVERGED = 3,     // Brent did not converge, or a root is not an eigenvalue of H there
    SINGULAR = 4,          // r W'(s) c singular at a root
    EIGEN_FAILED = 5,      // Jacobi did not converge
};

// One class A of a reversible mechanism (all arrays row-major, borrowed).
struct ReversibleClass {
    int kA, kF, nS;        // class size, complement size, number of spectral terms of -Q_FF
    const double* QAA;     // kA x kA
    const double* QAF;     // kA x kF
    const double* QFA;     // kF x kA
    const double* nu;      // nS eigenvalues of -Q_FF
    const double* B;       // nS x kF x kF spectral matrices of -Q_FF
    const double* r;       // kA: sqrt of the equilibrium occupancies of A
    double tau;            // dead time (s)

    // Q_AA + Q_AF M Q_FA with M = sum_m B_m c_m (kA x kA into out; tmp kF x kF + kA x kF).
    void sandwich(const double* c, double* out, std::vector<double>& M, std::vector<double>& T) const {
        const std::size_t A = static_cast<std::size_t>(kA), F = static_cast<std::size_t>(kF);
        M.assign(F * F, 0.0);
        for (int m = 0; m < nS; ++m) {
            const double* Bm = B + static_cast<std::size_t>(m) * F * F;
            for (std::size_t i = 0; i < F * F; ++i) M[i] += c[m] * Bm[i];
        }
        T.assign(A * F, 0.0);  // Q_AF M
        for (std::size_t i = 0; i < A; ++i)
            for (std::size_t k = 0; k < F; ++k) {
                const double x = QAF[i * F + k];
                if (x == 0.0) continue;
                for (std::size_t j = 0; j < F; ++j) T[i * F + j] += x * M[k * F + j];
            }
        for (std::size_t i = 0; i < A; ++i)
            for (std::size_t j = 0; j < A; ++j) {
                double s = 0.0;
                for (std::size_t k = 0; k < F; ++k) s += T[i * F + k] * QFA[k * A + j];
                out[i * A + j] = s;
            }
    }

    // H(s) into h (kA x kA); false if not finite (exp((Q_FF - s I) tau) overflows).
    bool H(double s, double* h, std::vector<double>& M, std::vector<double>& T) const {
        std::vector<double> c(static_cast<std::size_t>(nS));
        for (int m = 0; m < nS; ++m) c[m] = tau * phi1(-(nu[m] + s) * tau);
        sandwich(c.data(), h, M, T);
        const std::size_t n = static_cast<std::size_t>(kA) * kA;
        bool finite = true;
        for (std::size_t i = 0; i < n; ++i) {
            h[i] += QAA[i];
            if (!std::isfinite(h[i])) finite = false;
        }
        return finite;
    }

    // W'(s) = I + Q_AF [sum_m B_m tau^2 psi1(-(nu_m + s) tau)] Q_FA into dw.
    void dW(double s, double* dw, std::vector<double>& M, std::vector<double>& T) const {
        std::vector<double> c(static_cast<std::size_t>(nS));
        for (int m = 0; m < nS; ++m) c[m] = tau * tau * psi1(-(nu[m] + s) * tau);
        sandwich(c.data(), dw, M, T);
        for (int i = 0; i < kA; ++i) dw[static_cast<std::size_t>(i) * kA + i] += 1.0;
    }

    // The symmetrised D^(1/2) X D^(-1/2) of a kA x kA matrix into S.
    void sym(const double* X, double* S) const {
        const std::size_t A = static_cast<std::size_t>(kA);
        for (std::size_t i = 0; i < A; ++i)
            for (std::size_t j = 0; j < A; ++j) S[i * A + j] = r[i] * X[i * A + j] / r[j];
        for (std::size_t i = 0; i < A; ++i)
            for (std::size_t j = i + 1; j < A; ++j) {
                const double m = 0.5 * (S[i * A + j] + S[j * A + i]);
                S[i * A + j] = S[j * A + i] = m;
            }
    }
};

// Workspace-owning evaluator of the ordered eigenvalues mu(s) of S(s) (+inf where H overflows),
// each floored at the matching eigenvalue of the symmetrised Q_AA (floor, ascending).  The floor
// is exact theory: S(s) - S(Q_AA) = M P M^T with M = D_A^(1/2) Q_AF D_F^(-1/2) and P the
// symmetrised K(s), positive definite, so mu_j(s) >= lambda_j(S(Q_AA)) (Weyl).  It only undoes
// rounding: near the t_res limit (t_res max|q_ii| ~ 30-36) H at the lower bracket has entries
// ~1e20 and its computed eigenvalues could fall below the floor, so that the bracket failed.
class Eigenvalues {
  public:
    Eigenvalues(const ReversibleClass& c, const double* floor)
        : c_(c), floor_(floor), h_(static_cast<std::size_t>(c.kA) * c.kA), s_(h_.size()) {}

    // false only if Jacobi fails
    bool operator()(double s, double* mu) {
        if (!c_.H(s, h_.data(), M_, T_)) {
            for (int i = 0; i < c_.kA; ++i) mu[i] = HUGE_VAL;
            return true;
        }
        c_.sym(h_.data(), s_.data());
        if (!jacobi_eigh(s_.data(), c_.kA, mu, nullptr)) return false;
        for (int i = 0; i < c_.kA; ++i) mu[i] = std::max(mu[i], floor_[i]);
        return true;
    }

  private:
    const ReversibleClass& c_;
    const double* floor_;
    std::vector<double> h_, s_, M_, T_;
};

// The kA roots of det W(s) = 0, ascending, into roots; on failure the status and, for
// NOT_CONVERGED, the offending s in *where.
inline Status roots(const ReversibleClass& c, double* roots, double* where) {
    const int kA = c.kA;
    const std::size_t A = static_cast<std::size_t>(kA);
    std::vector<double> mu(A), S(A * A), w(A);
    c.sym(c.QAA, S.data());
    if (!jacobi_eigh(S.data(), kA, w.data(), nullptr)) return EIGEN_FAILED;
    Eigenvalues eig(c, w.data());
    if (!eig(0.0, mu.data())) return EIGEN_FAILED;
    if (!(*std::max_element(mu.begin(), mu.end()) < 0.0)) return H0_NOT_NEGATIVE;
    const double lo0 = 1.01 * w[0] - 1.0;  // mu_j(lo0) - lo0 >= w_j - lo0 > 0 by the floor
    if (!eig(lo0, mu.data())) return EIGEN_FAILED;
    for (int j = 0; j < kA; ++j)
        if (!(mu[j] - lo0 > 0.0)) return NO_BRACKET;
    bool eig_ok = true;
    for (int j = 0; j < kA; ++j) {
        auto g = [&](double s) {
            if (!eig(s, mu.data())) eig_ok = false;
            return mu[j] - s;
        };
        double lo = lo0, hi = 0.0, glo = g(lo);
        for (int it = 0; it < 200 && !std::isfinite(glo); ++it) {  // overflowing H(lo)
            const double mid = 0.5 * (lo + hi), gm = g(mid);
            if (gm > 0.0) {
                lo = mid;
                glo = gm;
            } else {
                hi = mid;
            }
        }
        bool ok;
        roots[j] = brentq(g, lo, hi, 1e-300, 4.0 * std::numeric_limits<double>::epsilon(), 500, &ok);
        if (!eig_ok) return EIGEN_FAILED;
        if (!ok) {
            *where = roots[j];
            return NOT_CONVERGED;
        }
    }
    std::sort(roots, roots + kA);
    for (int j = 0; j < kA; ++j) {  // every root must be an eigenvalue of H at itself
        const double s = roots[j];
        if (!eig(s, mu.data())) return EIGEN_FAILED;
        double dmin = HUGE_VAL, amax = 0.0;
        for (int i = 0; i < kA; ++i) {
            dmin = std::min(dmin, std::fabs(mu[i] - s));
            amax = std::max(amax, std::fabs(mu[i]));
        }
        if (dmin > 1e-8 * std::max(std::fabs(s), amax)) {
            *where = s;
            return NOT_CONVERGED;
        }
    }
    return OK;
}

// Projectors of the asymptotic expansion AR(u) ~ sum_j R_j exp(s_j u) [HJC92 eqs. 56-58] from
// ascending roots: roots within 1e-8 (relative) of the previous one are merged into one of
// multiplicity g at their mean.  Writes the merged roots to svals and the kA x kA matrices R_j
// to mats (both sized for kA entries); *n_out their number; on SINGULAR the root in *where.
inline Status projectors(const ReversibleClass& c, const double* roots, double* svals, double* mats,
                         int* n_out, double* where) {
    const int kA = c.kA;
    const std::size_t A = static_cast<std::size_t>(kA);
    std::vector<double> h(A * A), dw(A * A), S(A * A), V(A * A), mu(A), M, T;
    std::vector<double> C, Rt, CM, G;
    int out = 0;
    int start = 0;
    while (start < kA) {
        int end = start + 1;  // group: each root within 1e-8 of the previous one
        while (end < kA && std::fabs(roots[end] - roots[end - 1]) <= 1e-8 * std::fabs(roots[end])) ++end;
        const int g = end - start;
        double sum = 0.0;
        for (int i = start; i < end; ++i) sum += roots[i];
        const double s = sum / g;
        c.H(s, h.data(), M, T);
        c.dW(s, dw.data(), M, T);
        c.sym(h.data(), S.data());
        if (!jacobi_eigh(S.data(), kA, mu.data(), V.data())) return EIGEN_FAILED;
        std::vector<int> idx(A);
        std::iota(idx.begin(), idx.end(), 0);
        std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) {
            return std::fabs(mu[a] - s) < std::fabs(mu[b] - s);
        });
        const std::size_t Gs = static_cast<std::size_t>(g);
        C.assign(A * Gs, 0.0);   // right null vectors (columns)
        Rt.assign(Gs * A, 0.0);  // left null vectors (rows)
        for (std::size_t i = 0; i < A; ++i)
            for (std::size_t k = 0; k < Gs; ++k) {
                const double x = V[i * A + static_cast<std::size_t>(idx[k])];
                C[i * Gs + k] = x / c.r[i];
                Rt[k * A + i] = x * c.r[i];
            }
        G.assign(Gs * Gs, 0.0);  // Rt dW C
        for (std::size_t a = 0; a < Gs; ++a)
            for (std::size_t b = 0; b < Gs; ++b) {
                double acc = 0.0;
                for (std::size_t i = 0; i < A; ++i) {
                    double row = 0.0;
                    for (std::size_t j = 0; j < A; ++j) row += dw[i * A + j] * C[j * Gs + b];
                    acc += Rt[a * A + i] * row;
                }
                G[a * Gs + b] = acc;
            }
        double gmax = 0.0;
        for (double x : G) gmax = std::max(gmax, std::fabs(x));
        std::vector<double> LU(G);
        const double det = linalg::determinant(G.data(), g);
        if (!(std::fabs(det) > 1e-12 * std::pow(gmax, g))) {
            *where = s;
            return SINGULAR;
        }
        std::vector<double> X(Rt);  // G^-1 Rt (g x kA)
        if (!linalg::solve_inplace(LU.data(), X.data(), g, kA)) {
            *where = s;
            return SINGULAR;
        }
        double* R = mats + static_cast<std::size_t>(out) * A * A;
        for (std::size_t i = 0; i < A; ++i)
            for (std::size_t j = 0; j < A; ++j) {
                double acc = 0.0;
                for (std::size_t k = 0; k < Gs; ++k) acc += C[i * Gs + k] * X[k * A + j];
                R[i * A + j] = acc;
            }
        svals[out++] = s;
        start = end;
    }
    *n_out = out;
    return OK;
}


// The HJC transition density matrix eG_AF(t) (kA x kF) of one class in the spectral form of
// ketacore.theory._EGMatrices [HJC90, HJC92]: for tau <= t < (n + 1) tau the exact
//   eG(t) = sum_{m: x_m >= 0} (-1)^m sum_{r <= m} sum_i x_m^r exp(-lam_i x_m) Z[m][r][i],
//   x_m = t - tau - m tau,
// and beyond it the asymptotic sum_j exp(s_j u) RZ_j (u = t - tau), returned as
// exp(s_top u) times a matrix so that long intervals neither underflow nor overflow.
struct EGClass {
    int kA, kF, K, n, G;
    double tau, s_top;
    const double* lam;  // K (real)
    const double* Z;    // n x n x K x kA x kF; [m][r] used for r <= m
    const double* s;    // G asymptotic roots
    const double* RZ;   // G x kA x kF

    // eG(t) = exp(return value) * M
    double eval(double t, double* M) const {
        const std::size_t mat = static_cast<std::size_t>(kA) * kF;
        for (std::size_t i = 0; i < mat; ++i) M[i] = 0.0;
        const double u = t - tau;
        if (t < (n + 1) * tau) {
            for (int m = 0; m < n; ++m) {
                const double x = u - m * tau;
                if (!(x >= 0.0)) break;
                const double sign = (m % 2 == 0) ? 1.0 : -1.0;
                for (int i = 0; i < K; ++i) {
                    const double e = std::exp(-x * lam[i]);
                    double xr = 1.0;
                    for (int r = 0; r <= m; ++r) {
                        const double w = sign * xr * e;
                        const double* z = Z + ((static_cast<std::size_t>(m) * n + r) * K + i) * mat;
                        for (std::size_t q = 0; q < mat; ++q) M[q] += w * z[q];
                        xr *= x;
                    }
                }
            }
            return 0.0;
        }
        for (int j = 0; j < G; ++j) {
            const double e = std::exp(u * (s[j] - s_top));
            const double* z = RZ + static_cast<std::size_t>(j) * mat;
            for (std::size_t q = 0; q < mat; ++q) M[q] += e * z[q];
        }
        return s_top * u;
    }
};

// ln L of each group of apparent intervals (open, shut, ..., open; concatenated in t, lengths
// in lens) [HJC90, HJC92; CHS96 for start/end]:
//   L = start eG_AF(t1) eG_FA(t2) ... eG_AF(tn) end,
// the row vector carried from left to right and divided by its largest |entry| after every
// open-shut pair, the logs of the factors summed with Neumaier's compensation (a group of 10^4
// intervals sums ~3e4 logs of up to ~10 each; plain summation lost ~3e-13 of ln L).  -inf where L is not > 0 (zero to double
// precision, or negative from the asymptotic form's error) or not a number.
inline void group_logliks(const EGClass& open, const EGClass& shut, const double* start, const double* end,
                          double end_log, const double* t, const std::int64_t* lens, std::size_t n_groups,
                          double* out) {
    const int kA = open.kA, kF = open.kF;
    std::vector<double> O(static_cast<std::size_t>(kA) * kF), S(static_cast<std::size_t>(kF) * kA);
    std::vector<double> v(static_cast<std::size_t>(kA)), w(static_cast<std::size_t>(kF));
    std::size_t pos = 0;
    for (std::size_t g = 0; g < n_groups; ++g) {
        const std::size_t len = static_cast<std::size_t>(lens[g]);
        for (int i = 0; i < kA; ++i) v[i] = start[i];
        double lg = 0.0, lg_c = 0.0;  // sum of the log factors, Neumaier-compensated
        auto add = [&lg, &lg_c](double x) {
            const double s = lg + x;
            lg_c += std::fabs(lg) >= std::fabs(x) ? (lg - s) + x : (x - s) + lg;
            lg = s;
        };
        bool zero = false;
        for (std::size_t k = 0; k + 1 < len; k += 2) {
            add(open.eval(t[pos + k], O.data()));
            add(shut.eval(t[pos + k + 1], S.data()));
            for (int j = 0; j < kF; ++j) w[j] = 0.0;
            for (int i = 0; i < kA; ++i) {
                const double vi = v[i];
                if (vi == 0.0) continue;
                const double* row = O.data() + static_cast<std::size_t>(i) * kF;
                for (int j = 0; j < kF; ++j) w[j] += vi * row[j];
            }
            for (int i = 0; i < kA; ++i) v[i] = 0.0;
            for (int j = 0; j < kF; ++j) {
                const double wj = w[j];
                if (wj == 0.0) continue;
                const double* row = S.data() + static_cast<std::size_t>(j) * kA;
                for (int i = 0; i < kA; ++i) v[i] += wj * row[i];
            }
            double big = 0.0;
            for (int i = 0; i < kA; ++i) big = std::max(big, std::fabs(v[i]));
            if (!(big > 0.0) || !std::isfinite(big)) {
                zero = true;
                break;
            }
            for (int i = 0; i < kA; ++i) v[i] /= big;
            add(std::log(big));
        }
        double val = 0.0;
        if (!zero) {
            add(open.eval(t[pos + len - 1], O.data()));
            for (int i = 0; i < kA; ++i) {
                double acc = 0.0;
                const double* row = O.data() + static_cast<std::size_t>(i) * kF;
                for (int j = 0; j < kF; ++j) acc += row[j] * end[j];
                val += v[i] * acc;
            }
        }
        add(end_log);
        const double r = val > 0.0 ? (std::log(val) + lg_c) + lg : -HUGE_VAL;
        out[g] = std::isnan(r) ? -HUGE_VAL : r;
        pos += len;
    }
}


// The exact HJC pieces by block matrix exponentials [Van Loan 1978, IEEE Trans Autom Control
// 23:395, doi:10.1109/TAC.1978.1101743], as ketacore.theory._EGMatrices._expm_eval: X[m]
// ((m + 2) k square, m < n) is the block-bidiagonal generator of ketacore.theory.
// _chain_generators; for each u_i, F_i = sum_{m: x_m >= 0} (-1)^m [expm(X_m x_m)]_{a, m k + a}
// and G_i the same with the block (m + 1) k + a (the integral), x_m = u_i - m tau; F and G are
// N x kA x kA.  The sums run in the order of the Python loop it replaces, with the same expm,
// so the bytes are those of that loop.
inline void chain_blocks(const std::vector<const double*>& X, int k, const int* a, int kA, double tau,
                         const double* u, std::size_t N, double* F, double* G) {
    const int n = static_cast<int>(X.size());
    const std::size_t A = static_cast<std::size_t>(kA);
    std::vector<double> Ax, E;
    for (std::size_t i = 0; i < N * A * A; ++i) F[i] = G[i] = 0.0;
    for (std::size_t i = 0; i < N; ++i) {
        double* Fi = F + i * A * A;
        double* Gi = G + i * A * A;
        for (int m = 0; m < n; ++m) {
            const double x = u[i] - m * tau;
            if (x < 0.0) break;
            const int sz = (m + 2) * k;
            const std::size_t S = static_cast<std::size_t>(sz);
            Ax.resize(S * S);
            E.resize(S * S);
            for (std::size_t q = 0; q < S * S; ++q) Ax[q] = X[m][q] * x;
            expm(Ax.data(), sz, E.data());
            const double sign = m % 2 == 0 ? 1.0 : -1.0;
            for (std::size_t p = 0; p < A; ++p) {
                const double* row = E.data() + static_cast<std::size_t>(a[p]) * S;
                for (std::size_t q = 0; q < A; ++q) {
                    Fi[p * A + q] += sign * row[static_cast<std::size_t>(m) * k + a[q]];
                    Gi[p * A + q] += sign * row[static_cast<std::size_t>(m + 1) * k + a[q]];
                }
            }
        }
    }
}

}  // namespace hjc
}  // namespace ketacore
