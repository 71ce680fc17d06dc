// Bindings of the compiled-protocol helpers (ketacore/protocol.hpp) that the Python Protocol
// uses directly.
#include "common.hpp"

void bind_protocol(py::module_& m) {
    m.def(
        "segment_boundaries",
        [](const darray& durations) {
            if (durations.ndim() != 1) throw std::invalid_argument("durations must be 1-D");
            const std::size_t n = static_cast<std::size_t>(durations.size());
            darray out(static_cast<py::ssize_t>(n + 1));
            {
                py::gil_scoped_release release;  // (a 10^7-sample waveform: ~20 ms)
                ketacore::segment_boundaries(durations.data(), n, out.mutable_data());
            }
            return out;
        },
        py::arg("durations"),
        "Segment boundaries [0, d0, d0 + d1, ...] (s) by the engines' Kahan sum.");
}
