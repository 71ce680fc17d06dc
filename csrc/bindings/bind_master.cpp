// Binding of the exact master-equation solver.
#include "cancellable.hpp"
#include "common.hpp"
#include "ketacore/master.hpp"

void bind_master(py::module_& m) {
    m.def(
        "solve_master",
        [](const ketacore::CompiledScheme& scheme, const darray& durations, const iarray& cond_index,
           const darray& conditions, double dt, std::int64_t n_samples, const darray& p0) {
            ketacore::SegmentPlan plan = make_plan(durations, cond_index, conditions);
            if (plan.cond_size != scheme.condition_size())
                throw std::invalid_argument("conditions have the wrong width for this scheme");
            if (p0.size() != scheme.n_states) throw std::invalid_argument("p0 has the wrong length");
            ketacore::Grid grid{dt, n_samples};
            darray out({static_cast<py::ssize_t>(n_samples), static_cast<py::ssize_t>(scheme.n_states)});
            double* o = out.mutable_data();
            const double* p = p0.data();
            // Rough cost in flops: a K x K vector-matrix product per sample, an expm per
            // segment.  Long solves run on a worker thread so Ctrl-C interrupts them.
            const double K = scheme.n_states;
            const double cost = static_cast<double>(n_samples) * K * K +
                                static_cast<double>(plan.n_segments()) * 30.0 * K * K * K;
            if (cost < 2e7) {
                ketacore_bind::run_inline([&] { ketacore::solve_master(scheme, plan, grid, p, o); });
            } else {
                ketacore::CancelToken token;
                ketacore_bind::run_cancellable(
                    [&] { ketacore::solve_master(scheme, plan, grid, p, o, &token); }, token);
            }
            return out;
        },
        py::arg("scheme"), py::arg("durations"), py::arg("cond_index"), py::arg("conditions"),
        py::arg("dt"), py::arg("n_samples"), py::arg("p0"),
        "Exact occupancy on the grid t_k = k dt (n_samples x n_states).");
}
