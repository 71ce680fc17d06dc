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

// Fixed-size kernel: the compiler unrolls and vectorises when K is a compile-time constant.
template <int K>
inline void vecmat_fixed(const double* __restrict x, const double* __restrict M, double* __restrict y) {
    // Two independent accumulators (even and odd k) halve the dependency chain: the
    // master-equation recurrence p <- p P is latency-bound, not throughput-bound.
    double a0[K], a1[K];
    for (int j = 0; j < K; ++j) {
        a0[j] = x[0] * M[j];
        a1[j] = 0.0;
    }
    int k = 1;
    for (; k + 1 < K; k += 2) {
        const double xa = x[k], xb = x[k + 1];
        for (int j = 0; j < K; ++j) {
            a1[j] += xa * M[k * K + j];
            a0[j] += xb * M[(k + 1) * K + j];
        }
    }
    if (k < K)
        for (int j = 0; j < K; ++j) a1[j] += x[k] * M[k * K + j];
    for (int j = 0; j < K; ++j) y[j] = a0[j] + a1[j];
}

// y = x * M with a compile-time-size kernel for small K (the common case: schemes of 2-16
// states), falling back to the generic loop.
inline void vecmat_small(const double* x, const double* M, double* y, int n) {
    switch (n) {
        case 1: vecmat_fixed<1>(x, M, y); return;
        case 2: vecmat_fixed<2>(x, M, y); return;
        case 3: vecmat_fixed<3>(x, M, y); return;
        case 4: vecmat_fixed<4>(x, M, y); return;
        case 5: vecmat_fixed<5>(x, M, y); return;
        case 6: vecmat_fixed<6>(x, M, y); return;
        case 7: vecmat_fixed<7>(x, M, y); return;
        case 8: vecmat_fixed<8>(x, M, y); return;
        case 9: vecmat_fixed<9>(x, M, y); return;
        case 10: vecmat_fixed<10>(x, M, y); return;
        case 11: vecmat_fixed<11>(x, M, y); return;
        case 12: vecmat_fixed<12>(x, M, y); return;
        case 13: vecmat_fixed<13>(x, M, y); return;
        case 14: vecmat_fixed<14>(x, M, y); return;
        case 15: vecmat_fixed<15>(x, M, y); return;
        case 16: vecmat_fixed<16>(x, M, y); return;
        default: vecmat(x, M, y, n);
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

// Determinant of A (n x n, row-major, not modified) by LU with partial pivoting.
inline double determinant(const double* A, int n) {
    const std::size_t N = static_cast<std::size_t>(n);
    std::vector<double> a(A, A + N * N);
    double det = 1.0;
    for (std::size_t k = 0; k < N; ++k) {
        std::size_t p = k;
        for (std::size_t i = k + 1; i < N; ++i)
            if (std::fabs(a[i * N + k]) > std::fabs(a[p * N + k])) p = i;
        if (p != k) {
            for (std::size_t j = 0; j < N; ++j) std::swap(a[k * N + j], a[p * N + j]);
            det = -det;
        }
        const double d = a[k * N + k];
        det *= d;
        if (d == 0.0) return det;
        for (std::size_t i = k + 1; i < N; ++i) {
            const double f = a[i * N + k] / d;
            for (std::size_t j = k; j < N; ++j) a[i * N + j] -= f * a[k * N + j];
        }
    }
    return det;
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


// Stationary distribution p (p Q = 0, sum p = 1) of the generator Q (n x n, row-major; only its
// off-diagonal entries are read) by GTH state reduction (Grassmann, Taksar & Heyman 1985,
// "Regenerative analysis and steady state distributions for Markov chains", Oper. Res.
// 33:1107-1116, doi:10.1287/opre.33.5.1107): subtraction-free, so accurate for stiff schemes.
// A is n x n scratch.  Returns false (p unspecified) where the reduction breaks down: a state
// that, after the states above it are eliminated, has no transition to a lower-numbered one (the
// chain is reducible and state 0 is not in its only closed class), or p overflows (rates within
// the chain spanning more than ~1e300).  ketacore.theory._gth calls this.
inline bool gth(const double* Q, double* A, double* p, int n) {
    if (n == 1) {
        p[0] = 1.0;
        return true;
    }
    for (int i = 0; i < n * n; ++i) A[i] = Q[i];
    for (int i = 0; i < n; ++i) A[static_cast<std::size_t>(i) * n + i] = 0.0;
    for (int k = n - 1; k > 0; --k) {
        const double* rk = A + static_cast<std::size_t>(k) * n;
        double s = 0.0;
        for (int j = 0; j < k; ++j) s += rk[j];
        if (!(s > 0.0)) return false;
        for (int i = 0; i < k; ++i) {
            double* ri = A + static_cast<std::size_t>(i) * n;
            const double f = ri[k] / s;
            ri[k] = f;
            if (f == 0.0) continue;
            for (int j = 0; j < k; ++j) ri[j] += f * rk[j];
        }
    }
    p[0] = 1.0;
    double total = 1.0;
    for (int k = 1; k < n; ++k) {
        double v = 0.0;
        for (int i = 0; i < k; ++i) v += p[i] * A[static_cast<std::size_t>(i) * n + k];
        p[k] = v;
        total += v;
    }
    if (!(total > 0.0 && total < HUGE_VAL)) return false;
    for (int k = 0; k < n; ++k) p[k] /= total;
    return true;
}

// Stationary distribution of a chain with exactly one closed class (the transient states get 0):
// GTH on the whole chain, and where that breaks down, on the closed class found from the
// reachability of every state (a state is recurrent when every state it reaches reaches it back;
// O(n^3), the cost of GTH itself).  Returns false when there are several closed classes (the
// long-run state depends on the start) or GTH fails on the class.  A is n x n scratch.
inline bool stationary(const double* Q, double* A, double* p, int n) {
    if (gth(Q, A, p, n)) return true;
    const std::size_t N = static_cast<std::size_t>(n);
    std::vector<char> R(N * N, 0);  // R[i n + j]: j reachable from i (i itself included)
    std::vector<int> stack;
    for (int i = 0; i < n; ++i) {
        char* r = R.data() + static_cast<std::size_t>(i) * N;
        r[i] = 1;
        stack.assign(1, i);
        while (!stack.empty()) {
            const int a = stack.back();
            stack.pop_back();
            const double* qa = Q + static_cast<std::size_t>(a) * N;
            for (int b = 0; b < n; ++b)
                if (b != a && qa[b] > 0.0 && !r[b]) r[b] = 1, stack.push_back(b);
        }
    }
    std::vector<int> members;
    for (int i = 0; i < n; ++i) {
        bool recurrent = true;
        for (int j = 0; j < n && recurrent; ++j)
            if (R[static_cast<std::size_t>(i) * N + j] && !R[static_cast<std::size_t>(j) * N + i]) recurrent = false;
        if (!recurrent) continue;
        if (members.empty()) {
            for (int j = 0; j < n; ++j)
                if (R[static_cast<std::size_t>(i) * N + j]) members.push_back(j);
        } else if (!R[static_cast<std::size_t>(members[0]) * N + i]) {
            return false;  // a second closed class
        }
    }
    const int m = static_cast<int>(members.size());
    if (m == 0 || m == n) return false;  // (m == n: irreducible, GTH itself failed)
    std::vector<double> Qs(static_cast<std::size_t>(m) * m), ps(m);
    for (int a = 0; a < m; ++a)
        for (int b = 0; b < m; ++b)
            Qs[static_cast<std::size_t>(a) * m + b] = Q[static_cast<std::size_t>(members[a]) * N + members[b]];
    if (!gth(Qs.data(), A, ps.data(), m)) return false;
    for (int i = 0; i < n; ++i) p[i] = 0.0;
    for (int a = 0; a < m; ++a) p[members[a]] = ps[a];
    return true;
}

}  // namespace linalg
}  // namespace ketacore
