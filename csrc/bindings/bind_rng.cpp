// Binding of the numpy-compatible random streams (for known-answer tests and power users).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <vector>

#include "ketacore/population.hpp"
#include "ketacore/rng.hpp"

namespace py = pybind11;
using ketacore::Pcg64;
using ketacore::SeedSequence;

namespace {

SeedSequence make_ss(const std::vector<std::uint32_t>& entropy_words, const std::vector<std::uint64_t>& spawn_key) {
  std::vector<std::uint32_t> sk;
  for (auto v : spawn_key) SeedSequence::append_int_words(v, sk);
  return SeedSequence(entropy_words, sk);
}

template <class T, class F>
py::array_t<T> draw(const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk, py::ssize_t n, F&& f) {
  py::array_t<T> out(n);
  T* o = out.mutable_data();
  Pcg64 g(make_ss(e, sk));
  {
    py::gil_scoped_release rel;
    for (py::ssize_t i = 0; i < n; ++i) o[i] = f(g);
  }
  return out;
}

}  // namespace

void bind_rng(py::module_& m) {
  auto r = m.def_submodule("rng", "numpy-compatible SeedSequence/PCG64 streams (private; tests).");
  r.def(
      "seed_sequence_state",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk, int n_words) {
        py::array_t<std::uint32_t> out(n_words);
        make_ss(e, sk).generate_state32(out.mutable_data(), n_words);
        return out;
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("n_words"),
      "SeedSequence(entropy, spawn_key).generate_state(n_words, uint32).");
  r.def(
      "uint64",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk, py::ssize_t n) {
        return draw<std::uint64_t>(e, sk, n, [](Pcg64& g) { return g.next_uint64(); });
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("n"));
  r.def(
      "random",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk, py::ssize_t n) {
        return draw<double>(e, sk, n, [](Pcg64& g) { return g.next_double(); });
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("n"));
  r.def(
      "standard_exponential",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk, py::ssize_t n) {
        return draw<double>(e, sk, n, [](Pcg64& g) { return ketacore::standard_exponential(g); });
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("n"));
  r.def(
      "exponential_from_words",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk,
         py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast> words, bool low55) {
        const py::ssize_t n = words.size();
        py::array_t<double> out(n);
        const std::uint64_t* w = words.data();
        double* o = out.mutable_data();
        Pcg64 g(make_ss(e, sk));  // the slow paths' further draws
        py::gil_scoped_release rel;
        for (py::ssize_t i = 0; i < n; ++i)
          o[i] = low55 ? ketacore::exponential_low55(w[i], g) : ketacore::standard_exponential_from(w[i], g);
        return out;
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("words"), py::arg("low55"),
      "Exponentials from given first words: the ssa's exponential_low55 (low55=True) or numpy's "
      "ziggurat (standard_exponential_from); slow paths draw from the stream (entropy, spawn_key).");
  r.def(
      "binomial",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk, py::ssize_t n,
         std::int64_t trials, double p) {
        return draw<std::int64_t>(e, sk, n, [=](Pcg64& g) { return ketacore::binomial(g, trials, p); });
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("n"), py::arg("trials"), py::arg("p"));
  r.def(
      "binomial_fast",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk, py::ssize_t n,
         std::int64_t trials, double p) {
        const ketacore::BinomialP bp(p);
        return draw<std::int64_t>(e, sk, n, [=](Pcg64& g) { return ketacore::binomial_fast(g, trials, bp); });
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("n"), py::arg("trials"), py::arg("p"),
      "The population method's binomial (inversion for n p < 10, BTRS above).");
  r.def(
      "pcg64_state",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk) {
        Pcg64 g(make_ss(e, sk));
        auto to_int = [](unsigned __int128 v) {
          py::int_ hi(static_cast<std::uint64_t>(v >> 64)), lo(static_cast<std::uint64_t>(v));
          return (hi.attr("__lshift__")(64)).attr("__or__")(lo);
        };
        return py::make_tuple(to_int(g.state()), to_int(g.inc()));
      },
      py::arg("entropy_words"), py::arg("spawn_key"), "(state, inc) as numpy's PCG64.state reports them.");
}
