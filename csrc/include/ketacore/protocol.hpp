// ketacore/protocol.hpp -- a compiled protocol: piecewise-constant segments referring to a table
// of unique conditions, plus the output grid.  Built by ketacore.protocol.Protocol.compile().
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ketacore {

struct SegmentPlan {
    std::vector<double> duration;     // seconds, > 0
    std::vector<std::int64_t> cond;   // index into conditions table
    std::vector<double> conditions;   // n_cond x cond_size, row-major
    int cond_size = 0;

    std::size_t n_segments() const { return duration.size(); }
    std::size_t n_conditions() const { return cond_size ? conditions.size() / cond_size : 0; }
    const double* condition(std::size_t c) const { return conditions.data() + c * cond_size; }
    double total() const {
        // Kahan-compensated so long pulse trains do not drift off the grid.
        double s = 0.0, comp = 0.0;
        for (double d : duration) {
            const double y = d - comp;
            const double t = s + y;
            comp = (t - s) - y;
            s = t;
        }
        return s;
    }
};

// Segment boundaries out[0..n] = 0, d0, d0 + d1, ... by the Kahan sum the engines use (total()
// above, and the segment walks of solve_master and the samplers), so that
// ketacore.Protocol.boundaries agrees with them to the bit.
inline void segment_boundaries(const double* duration, std::size_t n, double* out) {
    double s = 0.0, comp = 0.0;
    out[0] = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const double y = duration[i] - comp;
        const double t = s + y;
        comp = (t - s) - y;
        s = t;
        out[i + 1] = s;
    }
}

// Output grid: samples at t_k = k dt, k = 0 .. n_samples - 1.
struct Grid {
    double dt = 0.0;
    std::int64_t n_samples = 0;
    // Two times closer than this are treated as equal (segment boundary on a grid point):
    // a sample within it after a boundary still belongs to the segment that ends there.
    double tolerance() const { return 1e-7 * dt; }
    // A piece of a grid interval shorter than this is floating-point noise in the boundary times
    // (Kahan-summed durations vs k*dt, a few ulps of t) and is not propagated; anything longer
    // is, however short (a 50 ns pulse between two 1 s samples must act).  Never above
    // tolerance().
    double negligible(double t) const { return std::fmin(tolerance(), 1e-13 * std::fmax(std::fabs(t), dt)); }
};

}  // namespace ketacore
