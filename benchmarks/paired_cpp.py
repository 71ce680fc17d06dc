"""Paired C++ comparison of the stochastic engine between two versions of the headers.

Run:  python benchmarks/paired_cpp.py --base <git-rev> [--what single,n1000,...] [--rounds 15]

The shared VM this project is developed on changes speed by up to 1.5x from minute to minute, so
two builds measured one after the other say little.  This script compiles the C++ core of
``<git-rev>`` and of the working tree into *one* binary (each under its own namespace), runs the
two alternately (A B, B A, ...) on the same workloads and reports per-version medians and the
median of the per-pair time ratios (base / working tree: > 1 means the working tree is faster).
Thread CPU time is measured, so time the process is descheduled is not counted.  The last column
compares a checksum of the outputs: equal when both versions draw the same numbers the same way
(a change of stream use, as in the ssa's one-word-per-jump rewrite, makes it differ by design).

Workloads (the issue-4 benchmark model at 1 mM glutamate, equilibrium start):

  single      1 channel, 5e4 s, 101 samples, record="summary"   (~2.5e6 transitions)
  n1000       1000 channels, 1 s, 1 ms grid, counts
  n10000      10000 channels, 1 s, 10 us grid, counts            (the fine-grid target)
  n10000c     10000 channels, 1 s, 1 ms grid, counts
  pop1e3      population method, N = 1e3, 5e4 steps of 0.1 ms
  pop1e9      population method, N = 1e9, 5e4 steps of 0.1 ms
  pop1e4 ... pop1e7   the same at N = 1e4 ... 1e7

Needs g++ (C++17) and git; nothing is installed or written outside a temporary directory.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ["single", "n1000", "n10000", "n10000c", "pop1e3", "pop1e9", "pop1e4", "pop1e5", "pop1e6", "pop1e7"]

LIB_CPP = r"""
#include <ctime>
#include <cstdint>
#include <vector>
#include "ketacore/ensemble.hpp"
using namespace ketacore;
static double cpu_now() { timespec ts; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); return ts.tv_sec + 1e-9 * ts.tv_nsec; }
extern "C" double FN(int what, long long* chk) {
  CompiledScheme sc; sc.n_states = 6; sc.n_ligands = 1;
  // C0 C1 C2 D O OB; Destexhe 5-state with statistical factors + open blocker (issue 4)
  struct Tr { int a, b; double k; int lig; } tr[] = {
      {0, 1, 2 * 5e6, 0}, {1, 0, 12.9, -1}, {1, 2, 5e6, 0}, {2, 1, 2 * 12.9, -1}, {2, 4, 46.5, -1},
      {4, 2, 73.8, -1},  {2, 3, 8.4, -1},   {3, 2, 6.8, -1}, {4, 5, 50, -1},     {5, 4, 20, -1}};
  for (auto& t : tr) {
    sc.src.push_back(t.a); sc.dst.push_back(t.b); sc.ligand.push_back(t.lig); sc.k0.push_back(t.k);
    sc.z_delta.push_back(0); sc.inv_vk.push_back(0); sc.v0.push_back(0); sc.log_q10.push_back(0); sc.t_ref.push_back(0);
  }
  sc.conductance.assign(6, 0);
  SegmentPlan plan; plan.cond_size = 3; plan.conditions = {-0.07, 295.15, 1e-3}; plan.cond = {0};
  CancelToken tok;
  EnsembleSpec spec; spec.scheme = &sc; spec.plan = &plan;
  spec.p0 = {1.497e-6, 1.1607e-3, 0.224934, 0.277860, 0.141727, 0.354317};
  spec.entropy = {1}; spec.trials = {0}; spec.token = &tok; spec.n_threads = 1;
  double t0 = 0, t1 = 0;
  if (what == 0) {
    const double T = 5e4; plan.duration = {T}; spec.grid = Grid{T / 100, 101}; spec.n_channels = 1; spec.summary = true;
    static std::vector<std::int64_t> sum(101 * 6); static std::vector<std::uint64_t> lo(101 * 6), hi(101 * 6);
    EnsembleOut<std::int32_t> out; out.sum = sum.data(); out.sumsq_lo = lo.data(); out.sumsq_hi = hi.data();
    t0 = cpu_now(); run_ssa_ensemble<std::int32_t>(spec, out); t1 = cpu_now();
    *chk = sum[100 * 6 + 4];
  } else if (what <= 3) {
    const double dt = what == 2 ? 1e-5 : 1e-3; const std::int64_t S = what == 2 ? 100001 : 1001;
    plan.duration = {1.0}; spec.grid = Grid{dt, S}; spec.n_channels = what == 1 ? 1000 : 10000;
    static std::vector<std::int32_t> counts(100001 * 6);
    EnsembleOut<std::int32_t> out; out.counts = counts.data();
    t0 = cpu_now(); run_ssa_ensemble<std::int32_t>(spec, out); t1 = cpu_now();
    long long c = 0; for (std::int64_t k = 0; k < S; k += 7) c += counts[k * 6 + 4]; *chk = c;
  } else {
    const std::int64_t ns = 50000; plan.duration = {ns * 1e-4}; spec.grid = Grid{1e-4, ns + 1};
    const long long sizes[] = {1000, 1000000000, 10000, 100000, 1000000, 10000000};
    spec.n_channels = sizes[what - 4];
    static std::vector<std::int64_t> counts((ns + 1) * 6);
    EnsembleOut<std::int64_t> out; out.counts = counts.data();
    t0 = cpu_now(); run_population_ensemble<std::int64_t>(spec, out); t1 = cpu_now();
    *chk = counts[ns * 6 + 4];
  }
  return t1 - t0;
}
"""

DRV_CPP = r"""
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
extern "C" double run_base(int, long long*);
extern "C" double run_work(int, long long*);
static double median(std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; }
int main(int argc, char** argv) {
  const int what = std::atoi(argv[1]), rounds = std::atoi(argv[2]);
  long long ca = 0, cb = 0;
  run_base(what, &ca); run_work(what, &cb);  // warm-up
  std::vector<double> ta, tb, ratio;
  for (int r = 0; r < rounds; ++r) {
    double a, b;
    if (r & 1) { b = run_work(what, &cb); a = run_base(what, &ca); }
    else { a = run_base(what, &ca); b = run_work(what, &cb); }
    ta.push_back(a); tb.push_back(b); ratio.push_back(a / b);
  }
  std::printf("%.6g %.6g %.6g %lld %lld\n", median(ta), median(tb), median(ratio), ca, cb);
}
"""


def export_headers(rev: str, dest: Path) -> Path:
    """The csrc/include tree of `rev`, written under dest."""
    out = dest / "base_include"
    out.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "csrc/include"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "csrc" / "include"


def build(tmp: Path, base_inc: Path) -> Path:
    (tmp / "lib.cpp").write_text(LIB_CPP)
    (tmp / "drv.cpp").write_text(DRV_CPP)
    flags = ["g++", "-O3", "-fno-math-errno", "-ffp-contract=off", "-std=c++17", "-pthread"]
    for name, inc in (("base", base_inc), ("work", ROOT / "csrc" / "include")):
        subprocess.run(flags + ["-I", str(inc), f"-Dketacore=ketacore_{name}", f"-DFN=run_{name}",
                                "-c", str(tmp / "lib.cpp"), "-o", str(tmp / f"{name}.o")], check=True)
    exe = tmp / "paired"
    subprocess.run(flags + [str(tmp / "drv.cpp"), str(tmp / "base.o"), str(tmp / "work.o"), "-o", str(exe)],
                   check=True)
    return exe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="git revision to compare the working tree with")
    ap.add_argument("--what", default=",".join(WORKLOADS), help="comma-separated workloads")
    ap.add_argument("--rounds", type=int, default=15, help="alternated pairs per workload (default 15)")
    args = ap.parse_args(argv)
    what = [w.strip() for w in args.what.split(",") if w.strip()]
    unknown = [w for w in what if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {WORKLOADS}")
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    with tempfile.TemporaryDirectory(prefix="ketacore-paired-") as d:
        tmp = Path(d)
        exe = build(tmp, export_headers(args.base, tmp))
        print(f"base {args.base} vs working tree; medians of {args.rounds} alternated pairs (thread CPU time)")
        print(f"{'workload':10s} {'base':>11s} {'working':>11s} {'speed-up':>9s}  checksums equal")
        for w in what:
            rounds = args.rounds if not w.startswith("pop") else max(3, args.rounds // 2)
            out = subprocess.run([str(exe), str(WORKLOADS.index(w)), str(rounds)], check=True,
                                 capture_output=True, text=True).stdout.split()
            ta, tb, ratio, ca, cb = float(out[0]), float(out[1]), float(out[2]), out[3], out[4]
            print(f"{w:10s} {ta * 1e3:9.3f}ms {tb * 1e3:9.3f}ms {ratio:8.3f}x  {'yes' if ca == cb else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
