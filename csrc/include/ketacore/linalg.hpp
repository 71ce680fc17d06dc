// ketacore/linalg.hpp -- tiny dense linear algebra for the small matrices of kinetic schemes
// (row-major, n up to a few hundred).  No external BLAS: the matrices are small and the
// per-call overhead of a BLAS dispatch would dominate.
#pragma once
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <utility>
#include <vector>

namespace ketacore {
namespace linalg {

// C = A * B, all n x n.  C must not alias A or B.
inline void matmul(const double* A, const double* B, double* C, int n) {
    for (int i = 0; i < n * n; ++i) C[i] = 0.0;
    for (int i = 0; i < n; ++i) {
        const double* a = A + static_cast<std::size_t>(i) * n;
        double* c = C + static_cast<std::size_t>(i) * n;
        for (int k = 0; k < n; ++k) {
            const double aik = a[k];
            if (aik == 0.0) continue;
            const double* b = B + static_cast<std::size_t>(k) * n;
            for (int j = 0; j < n; ++j) c[j] += aik * b[j];
        }
    }
}

// y = x * M (row vector times matrix), x length n, M n x n.  y must not alias x.
inline void vecmat(const double* x, const double* M, double* y, int n) {
    for (int j = 0; j < n; ++j) y[j] = 0.0;
    for (int k = 0; k < n; ++k) {
        const double xk = x[k];
        if (xk == 0.0) continue;
        const double* m = M + static_cast<std::size_t>(k) * n;
        for (int j = 0; j < n; ++j) y[j] += xk * m[j];
    }
}

// Maximum absolute column sum.
inline double norm1(const double* A, int n) {
    double best = 0.0;
    for (int j = 0; j < n; ++j) {
        double s = 0.0;
        for (int i = 0; i < n; ++i) s += std::fabs(A[static_cast<std::size_t>(i) * n + j]);
        if (s > best) best = s;
    }
    return best;
}

// Solve A X = B in place (B becomes X); A (n x n) is overwritten by its LU factors.
// Partial pivoting.  Returns false if A is numerically singular.
inline bool solve_inplace(double* A, double* B, int n, int nrhs) {
    for (int k = 0; k < n; ++k) {
        int p = k;
        double big = std::fabs(A[static_cast<std::size_t>(k) * n + k]);
        for (int i = k + 1; i < n; ++i) {
            const double v = std::fabs(A[static_cast<std::size_t>(i) * n + k]);
            if (v > big) { big = v; p = i; }
        }
        if (big == 0.0 || !std::isfinite(big)) return false;
        if (p != k) {
            for (int j = 0; j < n; ++j)
                std::swap(A[static_cast<std::size_t>(k) * n + j], A[static_cast<std::size_t>(p) * n + j]);
            for (int j = 0; j < nrhs; ++j)
                std::swap(B[static_cast<std::size_t>(k) * nrhs + j], B[static_cast<std::size_t>(p) * nrhs + j]);
        }
        const double inv = 1.0 / A[static_cast<std::size_t>(k) * n + k];
        for (int i = k + 1; i < n; ++i) {
            double& lik = A[static_cast<std::size_t>(i) * n + k];
            if (lik == 0.0) continue;
            lik *= inv;
            for (int j = k + 1; j < n; ++j)
                A[static_cast<std::size_t>(i) * n + j] -= lik * A[static_cast<std::size_t>(k) * n + j];
            for (int j = 0; j < nrhs; ++j)
                B[static_cast<std::size_t>(i) * nrhs + j] -= lik * B[static_cast<std::size_t>(k) * nrhs + j];
        }
    }
    for (int k = n - 1; k >= 0; --k) {
        const double inv = 1.0 / A[static_cast<std::size_t>(k) * n + k];
        for (int j = 0; j < nrhs; ++j) {
            double s = B[static_cast<std::size_t>(k) * nrhs + j];
            for (int i = k + 1; i < n; ++i)
                s -= A[static_cast<std::size_t>(k) * n + i] * B[static_cast<std::size_t>(i) * nrhs + j];
            B[static_cast<std::size_t>(k) * nrhs + j] = s * inv;
        }
    }
    return true;
}

}  // namespace linalg
}  // namespace ketacore
