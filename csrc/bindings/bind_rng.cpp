// Binding of the numpy-compatible random streams (for known-answer tests and power users).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <type_traits>
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

// p must be a probability (a NaN p would make BTRS loop forever; the population method clamps
// its table entries, so only these test entry points need the check)
void check_probability(double p) {
  if (!(p >= 0.0 && p <= 1.0)) throw py::value_error("p must be in [0, 1]");
}

// f(std::integral_constant<int, W>{}) for the population binomial's variant W = words
// (population.hpp: 1 for row-order steps, 2 for column-order ones), after checking it
template <class F>
auto with_words(int words, F&& f) {
  if (words != 1 && words != 2) throw py::value_error("words must be 1 or 2");
  return words == 2 ? f(std::integral_constant<int, 2>{}) : f(std::integral_constant<int, 1>{});
}

// binomial_cfn's domain as far as its constants are verified (the population method itself
// uses it from n p q = 32)
void check_cfn_domain(std::int64_t n, const ketacore::BinomialP& bp) {
  check_probability(bp.p);
  const double dn = static_cast<double>(n);
  if (!(n >= 0 && dn < ketacore::detail::CfnConstants::max_n && dn * bp.psqs >= 30.0))
    throw py::value_error("binomial_cfn needs n p (1 - p) >= 30 and n < 2^53");
}

// binomial_cfn with every proposal decided by the exact test (tests only)
struct CfnNoSqueeze : ketacore::detail::CfnPlain {
  static constexpr bool squeeze = false;
};

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
      "standard_normal",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk, py::ssize_t n) {
        return draw<double>(e, sk, n, [](Pcg64& g) { return ketacore::standard_normal(g); });
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("n"),
      "Generator(PCG64(SeedSequence(entropy, spawn_key))).standard_normal(n), bit for bit.");
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
        check_probability(p);
        if (trials < 0) throw py::value_error("trials must be >= 0");
        return draw<std::int64_t>(e, sk, n, [=](Pcg64& g) { return ketacore::binomial(g, trials, p); });
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("n"), py::arg("trials"), py::arg("p"));
  r.def(
      "binomial_fast",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk, py::ssize_t n,
         std::int64_t trials, double p, int words) {
        check_probability(p);
        if (trials < 0) throw py::value_error("trials must be >= 0");
        const ketacore::BinomialP bp(p);
        return with_words(words, [&](auto W) {
          return draw<std::int64_t>(e, sk, n, [=](Pcg64& g) { return ketacore::binomial_fast<Pcg64, decltype(W)::value>(g, trials, bp); });
        });
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("n"), py::arg("trials"), py::arg("p"),
      py::arg("words") = 1,
      "The population method's binomial (inversion for n p < 10, binomial_cfn for n p q >= 32, BTRS between);\n"
      "words: binomial_cfn's variant, 1 (row-order steps) or 2 (column-order steps).");
  // binomial_cfn (population.hpp) and its parts, for tests/test_binomial_cfn.py
  namespace d = ketacore::detail;
  r.def("binomial_cfn_constants", []() {
    py::dict c;
    c["min_npq"] = d::CfnConstants::min_npq;
    c["A"] = d::CfnConstants::A;
    c["C0"] = d::CfnConstants::C0;
    c["C4"] = d::CfnConstants::C4;
    c["zmax"] = std::sqrt(d::CfnConstants::zmax2);
    c["max_n"] = d::CfnConstants::max_n;
    return c;
  });
  r.def(
      "binomial_cfn_log_pmf",
      [](std::int64_t n, double p, py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> k) {
        const ketacore::BinomialP bp(p);
        check_cfn_domain(n, bp);
        const d::CfnSetup s(n, bp);
        py::array_t<double> out(k.size());
        for (py::ssize_t i = 0; i < k.size(); ++i) {
          const std::int64_t ki = k.data()[i];
          if (ki < 0 || ki > n) throw py::value_error("k must be in [0, n]");
          // log f of the count of successes ki (binomial_log_pmf works in the flipped variable)
          out.mutable_data()[i] = d::binomial_log_pmf(bp.flip ? n - ki : ki, n, bp, s.mu);
        }
        return out;
      },
      py::arg("n"), py::arg("p"), py::arg("k"), "binomial_cfn's log f(k) (0 <= k <= n).");
  r.def(
      "binomial_cfn_log_proposal",
      [](std::int64_t n, double p, py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> k) {
        const ketacore::BinomialP bp(p);
        if (bp.flip) throw py::value_error("p must be <= 1/2 (the proposal is for min(p, 1 - p))");
        check_cfn_domain(n, bp);
        const d::CfnSetup s(n, bp);
        py::array_t<double> out(k.size());
        for (py::ssize_t i = 0; i < k.size(); ++i) out.mutable_data()[i] = s.log_proposal(k.data()[i]);
        return out;
      },
      py::arg("n"), py::arg("p"), py::arg("k"), "binomial_cfn's log h(k), p <= 1/2.");
  r.def(
      "binomial_cfn",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk, py::ssize_t count,
         std::int64_t n, double p, bool squeeze, int words) {
        const ketacore::BinomialP bp(p);
        check_cfn_domain(n, bp);
        return with_words(words, [&](auto W) {
          return draw<std::int64_t>(e, sk, count, [=](Pcg64& g) {
            const std::int64_t x = squeeze ? d::binomial_cfn<Pcg64, decltype(W)::value>(g, n, bp)
                                           : d::binomial_cfn<Pcg64, decltype(W)::value>(g, n, bp, CfnNoSqueeze());
            return bp.flip ? n - x : x;
          });
        });
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("count"), py::arg("n"), py::arg("p"),
      py::arg("squeeze"), py::arg("words") = 1,
      "binomial_cfn draws, with or without the squeeze (n p q >= 30, n < 2^53; tests only); words: the\n"
      "first proposal's V from the Z word's top bits (1) or from a second word (2).");
  r.def(
      "binomial_cfn_proposals",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk, py::ssize_t count,
         std::int64_t n, double p, int words) {
        const ketacore::BinomialP bp(p);
        if (bp.flip) throw py::value_error("p must be <= 1/2");
        check_cfn_domain(n, bp);
        struct Rec : d::CfnPlain {
          std::vector<std::int64_t>* out;
          void proposal(std::int64_t k) { out->push_back(k); }
        };
        std::vector<std::int64_t> ks;
        ks.reserve(static_cast<std::size_t>(count) + 64);
        Pcg64 g(make_ss(e, sk));
        Rec rec;
        rec.out = &ks;
        with_words(words, [&](auto W) {
          while (static_cast<py::ssize_t>(ks.size()) < count) d::binomial_cfn<Pcg64, decltype(W)::value>(g, n, bp, rec);
          return 0;
        });
        ks.resize(static_cast<std::size_t>(count));
        return py::array_t<std::int64_t>(static_cast<py::ssize_t>(ks.size()), ks.data());
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("count"), py::arg("n"), py::arg("p"), py::arg("words") = 1,
      "The first `count` proposed counts of binomial_cfn (accepted or not), p <= 1/2.");
  r.def(
      "binomial_cfn_path_counts",
      [](const std::vector<std::uint32_t>& e, const std::vector<std::uint64_t>& sk, py::ssize_t count,
         std::int64_t n, double p, int words) {
        const ketacore::BinomialP bp(p);
        check_cfn_domain(n, bp);
        struct Count : d::CfnPlain {
          std::int64_t* c;
          void fast() { ++c[0]; }
          void exact(bool ok) { ++c[ok ? 1 : 2]; }
        };
        std::int64_t c[3] = {0, 0, 0};
        Count obs;
        obs.c = c;
        Pcg64 g(make_ss(e, sk));
        with_words(words, [&](auto W) {
          for (py::ssize_t i = 0; i < count; ++i) d::binomial_cfn<Pcg64, decltype(W)::value>(g, n, bp, obs);
          return 0;
        });
        return py::make_tuple(c[0], c[1], c[2]);
      },
      py::arg("entropy_words"), py::arg("spawn_key"), py::arg("count"), py::arg("n"), py::arg("p"), py::arg("words") = 1,
      "(draws accepted by the squeeze, draws accepted by the exact test, proposals rejected).");
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
