// Shared helpers for the pybind11 glue (not part of the Python-free core).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ketacore/protocol.hpp"
#include "ketacore/scheme.hpp"

namespace py = pybind11;

using darray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using iarray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

template <typename T>
inline std::vector<T> to_vector(const py::array_t<T, py::array::c_style | py::array::forcecast>& a) {
    return std::vector<T>(a.data(), a.data() + a.size());
}

inline ketacore::SegmentPlan make_plan(const darray& durations, const iarray& cond_index,
                                       const darray& conditions) {
    if (conditions.ndim() != 2) throw std::invalid_argument("conditions must be 2-D");
    ketacore::SegmentPlan plan;
    plan.duration = to_vector<double>(durations);
    plan.cond = to_vector<std::int64_t>(cond_index);
    plan.conditions = to_vector<double>(conditions);
    plan.cond_size = static_cast<int>(conditions.shape(1));
    if (plan.duration.size() != plan.cond.size())
        throw std::invalid_argument("durations and cond_index differ in length");
    for (auto c : plan.cond)
        if (c < 0 || static_cast<std::size_t>(c) >= plan.n_conditions())
            throw std::invalid_argument("cond_index out of range");
    return plan;
}
