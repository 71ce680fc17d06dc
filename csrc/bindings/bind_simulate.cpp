// Binding of the stochastic engines (ssa, population, event log).  Inputs are validated by
// ketacore/simulate.py before these are called; here only shapes are checked.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cancellable.hpp"
#include "common.hpp"
#include "ketacore/cancel.hpp"
#include "ketacore/ensemble.hpp"

namespace {

using u32vec = std::vector<std::uint32_t>;
using u64arr = py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>;

template <class Job>
void run(Job&& job, ketacore::CancelToken& token, bool background) {
  if (background)
    ketacore_bind::run_cancellable(job, token);
  else
    ketacore_bind::run_inline(job);
}

// Output buffers recycled between calls: an output array (counts, or the summary sums) handed
// to Python owns a std::vector (through a capsule) that goes back to this pool when the array is
// garbage-collected, so repeated simulations reuse memory whose pages are already mapped (a fresh
// multi-MB array costs one page fault per 4 KiB on first touch).  Per element type at most
// kMaxPooled buffers are kept, holding at most kMaxBytes together (the oldest are dropped to make
// room for a newly freed one), so the memory kept after the arrays are gone stays bounded
// (3 x 64 MiB).
// Allocator whose value-less construct() leaves the element uninitialised, so resizing an
// output buffer does not write (and page-fault) every byte under the GIL before the engine
// runs: a 1 GB counts array took ~0.9 s to zero, during which Ctrl-C could not act.  The engine
// writes every element it returns (each trial's rows are cleared or recorded in its cancellable
// loop); a cancelled call's output is discarded.
template <class T, class A = std::allocator<T>>
struct DefaultInitAllocator : A {
  using A::A;
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U, typename std::allocator_traits<A>::template rebind_alloc<U>>;
  };
  template <class U>
  void construct(U* ptr) noexcept(std::is_nothrow_default_constructible<U>::value) {
    ::new (static_cast<void*>(ptr)) U;
  }
  template <class U, class... Args>
  void construct(U* ptr, Args&&... args) {
    std::allocator_traits<A>::construct(static_cast<A&>(*this), ptr, std::forward<Args>(args)...);
  }
};

template <class T>
struct OutputPool {
  using Buffer = std::vector<T, DefaultInitAllocator<T>>;
  static constexpr std::size_t kMaxPooled = 4;
  static constexpr std::size_t kMaxBytes = std::size_t(64) << 20;
  static std::size_t pooled_bytes() {
    std::size_t b = 0;
    for (const auto& v : pool()) b += v.capacity() * sizeof(T);
    return b;
  }
  static std::vector<Buffer>& pool() {
    // guarded by the GIL (only touched from bound code); never destroyed, so a capsule freed
    // during interpreter shutdown cannot outlive it
    static auto* p = new std::vector<Buffer>();
    return *p;
  }
  static py::array_t<T> make(const std::vector<py::ssize_t>& shape) {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    auto* v = new Buffer();
    auto& p = pool();
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (p[i].capacity() >= n && p[i].capacity() <= 2 * n + 4096) {
        v->swap(p[i]);
        p.erase(p.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    }
    v->resize(n);  // uninitialised (DefaultInitAllocator): the engine writes every element
    py::capsule owner(v, [](void* ptr) {
      auto* vec = static_cast<Buffer*>(ptr);
      auto& pl = pool();
      const std::size_t bytes = vec->capacity() * sizeof(T);
      if (bytes <= kMaxBytes) {  // keep the newest: evict the oldest until it fits
        while (!pl.empty() && (pl.size() >= kMaxPooled || pooled_bytes() + bytes > kMaxBytes)) pl.erase(pl.begin());
        pl.push_back(std::move(*vec));
      }
      delete vec;
    });
    std::vector<py::ssize_t> strides(shape.size());
    py::ssize_t st = sizeof(T);
    for (std::size_t i = shape.size(); i-- > 0;) {
      strides[i] = st;
      st *= shape[i];
    }
    return py::array_t<T>(shape, strides, v->data(), owner);
  }
};

template <class T>
py::object simulate_t(const std::string& method, const ketacore::EnsembleSpec& spec, bool background,
                      ketacore::CancelToken& token) {
  const py::ssize_t S = spec.grid.n_samples, K = spec.scheme->n_states;
  // summaries: S x K state entries, then S x G group entries (flat; split in Python)
  const py::ssize_t n_sum = S * (K + (spec.summary ? spec.n_groups : 0));
  const py::ssize_t n = static_cast<py::ssize_t>(spec.trials.size());
  ketacore::EnsembleOut<T> out;
  py::array_t<T> counts;
  py::array_t<std::int64_t> sum;
  py::array_t<std::uint64_t> lo, hi;
  if (spec.summary) {
    sum = OutputPool<std::int64_t>::make({n_sum});
    lo = OutputPool<std::uint64_t>::make({n_sum});
    hi = OutputPool<std::uint64_t>::make({n_sum});
    out.sum = sum.mutable_data();
    out.sumsq_lo = lo.mutable_data();
    out.sumsq_hi = hi.mutable_data();
  } else {
    counts = OutputPool<T>::make({n, S, K});
    out.counts = counts.mutable_data();
  }
  if (method == "ssa")
    run([&] { ketacore::run_ssa_ensemble<T>(spec, out); }, token, background);
  else if (method == "population")
    run([&] { ketacore::run_population_ensemble<T>(spec, out); }, token, background);
  else
    throw std::invalid_argument("unknown method " + method);
  if (spec.summary) return py::make_tuple(sum, lo, hi);
  return counts;
}

ketacore::EnsembleSpec make_spec(const ketacore::CompiledScheme& scheme, const ketacore::SegmentPlan& plan,
                                 const darray& p0, std::int64_t n_channels, const u32vec& entropy,
                                 const u64arr& trials, int n_threads, bool summary,
                                 const ketacore::CancelToken& token) {
  if (plan.cond_size != scheme.condition_size())
    throw std::invalid_argument("conditions have the wrong width for this scheme");
  if (p0.size() != scheme.n_states) throw std::invalid_argument("p0 has the wrong length");
  ketacore::EnsembleSpec spec;
  spec.scheme = &scheme;
  spec.plan = &plan;
  spec.p0.assign(p0.data(), p0.data() + p0.size());
  spec.n_channels = n_channels;
  spec.entropy = entropy;
  spec.trials.assign(trials.data(), trials.data() + trials.size());
  spec.n_threads = n_threads;
  spec.summary = summary;
  spec.token = &token;
  return spec;
}

// summary_groups argument: None -> no groups, else a (G, K) array of 0/1 flags.
void set_groups(ketacore::EnsembleSpec& spec, const py::object& obj) {
  if (obj.is_none()) return;
  auto a = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>::ensure(obj);
  const auto K = static_cast<py::ssize_t>(spec.scheme->n_states);
  if (!a || a.ndim() != 2 || a.shape(1) != K || a.shape(0) > 4096)
    throw std::invalid_argument("summary_groups must be a (G, n_states) array of flags, G <= 4096");
  spec.groups.assign(a.data(), a.data() + a.size());
  spec.n_groups = static_cast<int>(a.shape(0));
}

// jump_tables argument: None -> empty (every condition), else one flag per condition.
std::vector<std::uint8_t> table_mask(const py::object& obj) {
  if (obj.is_none()) return {};
  auto a = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!a || a.ndim() != 1) throw std::invalid_argument("jump_tables must be a 1-d array of flags");
  return std::vector<std::uint8_t>(a.data(), a.data() + a.size());
}

}  // namespace

void bind_simulate(py::module_& m) {
  m.def(
      "simulate",
      [](const std::string& method, const ketacore::CompiledScheme& scheme, const darray& durations,
         const iarray& cond_index, const darray& conditions, double dt, std::int64_t n_samples, const darray& p0,
         std::int64_t n_channels, const u32vec& entropy, const u64arr& trials, int n_threads, bool summary,
         bool wide, bool background, const py::object& jump_tables, std::size_t pop_table_bytes,
         std::size_t pop_state_bytes, std::int64_t pop_columns_min, const py::object& summary_groups) -> py::object {
        ketacore::SegmentPlan plan = make_plan(durations, cond_index, conditions);
        ketacore::CancelToken token;
        ketacore::EnsembleSpec spec =
            make_spec(scheme, plan, p0, n_channels, entropy, trials, n_threads, summary, token);
        spec.jump_tables = table_mask(jump_tables);
        set_groups(spec, summary_groups);
        spec.pop_table_bytes = pop_table_bytes;
        spec.pop_state_bytes = pop_state_bytes;
        spec.pop_columns_min = pop_columns_min;
        spec.grid = ketacore::Grid{dt, n_samples};
        if (wide) return simulate_t<std::int64_t>(method, spec, background, token);
        return simulate_t<std::int32_t>(method, spec, background, token);
      },
      py::arg("method"), py::arg("scheme"), py::arg("durations"), py::arg("cond_index"), py::arg("conditions"),
      py::arg("dt"), py::arg("n_samples"), py::arg("p0"), py::arg("n_channels"), py::arg("entropy_words"),
      py::arg("trials"), py::arg("n_threads"), py::arg("summary"), py::arg("wide"), py::arg("background"),
      py::arg("jump_tables") = py::none(), py::arg("pop_table_bytes") = ketacore::EnsembleSpec::kPopTableBytes,
      py::arg("pop_state_bytes") = ketacore::EnsembleSpec::kPopStateBytes,
      py::arg("pop_columns_min") = ketacore::EnsembleSpec::kPopColumnsMin, py::arg("summary_groups") = py::none(),
      "Run 'ssa' or 'population'.  Returns counts (trials x samples x states, int32 or int64 if wide)\n"
      "or, with summary=True, (sum int64, sumsq_lo uint64, sumsq_hi uint64), each flat: samples x states\n"
      "entries, then samples x G for the groups of summary_groups ((G, states) flags; None: G = 0).\n"
      "jump_tables: ssa only, per condition whether to build its jump table (None: all); it changes\n"
      "speed, never results.  pop_table_bytes / pop_state_bytes: population only, the memory for\n"
      "transition tables held at once and for trial states kept between chunks of them; they\n"
      "change speed and memory, never results.  pop_columns_min: population runs of at least this many\n"
      "channels draw each step in column order, smaller ones row by row (different draws, both exact).");
  m.attr("POP_TABLE_BYTES") = ketacore::EnsembleSpec::kPopTableBytes;
  m.attr("POP_STATE_BYTES") = ketacore::EnsembleSpec::kPopStateBytes;
  m.attr("POP_COLUMNS_MIN") = ketacore::EnsembleSpec::kPopColumnsMin;
  m.def(
      "population_keys",
      [](const ketacore::CompiledScheme& scheme, const darray& durations, const iarray& cond_index,
         const darray& conditions, double dt, std::int64_t n_samples) {
        ketacore::SegmentPlan plan = make_plan(durations, cond_index, conditions);
        if (plan.cond_size != scheme.condition_size())
          throw std::invalid_argument("conditions have the wrong width for this scheme");
        py::gil_scoped_release nogil;
        const ketacore::PopulationSchedule sch(scheme, plan, ketacore::Grid{dt, n_samples});
        std::size_t straddles = 0;
        for (const auto& k : sch.keys) straddles += k.cond == -1;
        return std::make_pair(sch.keys.size(), straddles);
      },
      py::arg("scheme"), py::arg("durations"), py::arg("cond_index"), py::arg("conditions"), py::arg("dt"),
      py::arg("n_samples"),
      "(matrices, of which straddles) a population run on this grid needs: one per condition used for a\n"
      "whole grid step, per distinct sequence of pieces of an interval straddling boundaries, and the\n"
      "identity if any interval is empty.");
  m.def("population_slot_bytes", &ketacore::PopulationTables::slot_bytes, py::arg("n_states"),
        "Bytes of one transition matrix's multinomial tables in a population run.");
  m.def(
      "population_state_bytes",
      [](int K) { return static_cast<std::size_t>(K) * sizeof(std::int64_t) + sizeof(ketacore::Pcg64); },
      py::arg("n_states"), "Bytes of one trial's counts and stream kept between chunks of a population run.");
  m.def(
      "simulate_events",
      [](const ketacore::CompiledScheme& scheme, const darray& durations, const iarray& cond_index,
         const darray& conditions, const darray& p0, const u32vec& entropy, const u64arr& trials, int n_threads,
         std::int64_t reserve_hint, bool background, const py::object& jump_tables) {
        ketacore::SegmentPlan plan = make_plan(durations, cond_index, conditions);
        ketacore::CancelToken token;
        ketacore::EnsembleSpec spec = make_spec(scheme, plan, p0, 1, entropy, trials, n_threads, false, token);
        spec.jump_tables = table_mask(jump_tables);
        ketacore::EventLogOut out;
        run([&] { ketacore::run_event_log(spec, out, static_cast<std::size_t>(reserve_hint)); }, token, background);
        py::list res;
        for (std::size_t i = 0; i < out.times.size(); ++i) {
          py::array_t<double> t(static_cast<py::ssize_t>(out.times[i].size()));
          py::array_t<std::int32_t> s(static_cast<py::ssize_t>(out.states[i].size()));
          std::copy(out.times[i].begin(), out.times[i].end(), t.mutable_data());
          std::copy(out.states[i].begin(), out.states[i].end(), s.mutable_data());
          { std::vector<double>().swap(out.times[i]); std::vector<std::int32_t>().swap(out.states[i]); }
          res.append(py::make_tuple(t, s));
        }
        return res;
      },
      py::arg("scheme"), py::arg("durations"), py::arg("cond_index"), py::arg("conditions"), py::arg("p0"),
      py::arg("entropy_words"), py::arg("trials"), py::arg("n_threads"), py::arg("reserve_hint"),
      py::arg("background"), py::arg("jump_tables") = py::none(),
      "Single-channel event logs: list of (times float64, states int32) per trial; entry 0 = (0, initial).");
  m.def(
      "_output_pool_bytes",
      [] {
        return py::make_tuple(OutputPool<std::int32_t>::pooled_bytes(), OutputPool<std::int64_t>::pooled_bytes(),
                              OutputPool<std::uint64_t>::pooled_bytes());
      },
      "Bytes held by the recycled output pools (int32, int64, uint64), for tests.");
}
