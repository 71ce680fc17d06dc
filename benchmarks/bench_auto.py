"""``method="auto"``: is the method it picks the faster one?

Run:  python benchmarks/bench_auto.py [--quick]

For each workload the script times ``method="ssa"`` and ``method="population"`` alternately
(medians of ``--rounds`` pairs, both in the same run so the shared VM's drift cancels), asks the
plan which method ``auto`` would run, and says whether that was the faster one.  The workloads are
those the cost model in ``ketacore.simulate`` was calibrated on (docs/stochastic.md, Methods):

* ``ramp``: a 20000-segment voltage ramp (``Protocol.from_waveform``, 0.2 s at 10 us) on
  Erreger et al.'s GluN1/GluN2A scheme with Mg2+ (16 states), 0.1 ms grid, summaries of 2 trials,
  with 1 and with 1000 channels.  Every ssa channel crosses every segment boundary and ssa
  builds jump tables for each of the ramp's 20000 conditions; population builds one matrix per
  condition and per straddled grid interval.
* ``step``: the issue-4 benchmark model (6 states) at 1 mM glutamate for 1 s on a 1 ms grid,
  with 10, 1000 and 1e6 channels.

All imports are inside functions so asv discovery of this directory never breaks.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _models():
    import importlib
    if __package__:
        return importlib.import_module("._models", __package__)
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module("_models")


def workloads(quick=False):
    import numpy as np
    import ketacore as kc
    g = kc.block("erreger2005_2a", "mg")
    t = np.arange(20000) * 1e-5
    ramp = kc.Protocol.from_waveform(t, 0.2, V=-0.08 + 0.12 * t / t[-1], glutamate=1e-3, mg=1e-3)
    bench = _models().bench6()
    step = kc.Step(1.0, glutamate=1e-3)
    out = [("ramp, 1 channel", g, ramp, 1e-4, 1, 2),
           ("ramp, 1000 channels", g, ramp, 1e-4, 1000, 2),
           ("step, 10 channels", bench, step, 1e-3, 10, 2),
           ("step, 1000 channels", bench, step, 1e-3, 1000, 2)]
    if not quick:
        out.append(("step, 1e6 channels", bench, step, 1e-3, 10**6, 2))
    return out


def planned(scheme, protocol, dt, n, n_trials):
    from ketacore.simulate import _make_plan
    plan, _ = _make_plan(scheme, protocol, dt, n, n_trials, "auto", "summary", None, None, 0, 1, 1)
    return plan.chosen


def main(argv=None):
    import ketacore as kc
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds, no 1e6-channel workload")
    ap.add_argument("--rounds", type=int, default=None, help="alternated ssa/population pairs")
    a = ap.parse_args(argv)
    if a.rounds is not None and a.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {a.rounds}")
    rounds = a.rounds or (3 if a.quick else 5)
    print(f"ketacore {kc.__version__}; medians of {rounds} alternated pairs, one thread, record='summary'")
    print(f"{'workload':24s} {'ssa':>10s} {'population':>12s}  auto picks   faster")
    wrong = 0
    for name, sch, prot, dt, n, n_trials in workloads(a.quick):
        def run(method):
            t0 = time.perf_counter()
            kc.simulate(sch, prot, dt=dt, n_channels=n, n_trials=n_trials, method=method, rng=1,
                        record="summary", n_threads=1)
            return time.perf_counter() - t0
        run("ssa"), run("population")  # warm-up: plans, tables, caches
        ts, tp = [], []
        for r in range(rounds):
            order = ("ssa", "population") if r % 2 == 0 else ("population", "ssa")
            for m in order:
                (ts if m == "ssa" else tp).append(run(m))
        s, p = statistics.median(ts), statistics.median(tp)
        pick = planned(sch, prot, dt, n, n_trials)
        faster = "ssa" if s < p else "population"
        ok = pick == faster or max(s, p) / min(s, p) < 1.2  # within 20 %: either is a fair pick
        wrong += not ok
        print(f"{name:24s} {s * 1e3:8.1f} ms {p * 1e3:10.1f} ms  {pick:10s}  {faster:10s}"
              f"{'' if ok else '  <- auto picked the slower method'}")
    print("auto picked the faster method (or one within 20 %) in every workload" if not wrong
          else f"auto picked a method more than 20 % slower in {wrong} workload(s)")
    return wrong  # (reported, not an exit status: a timing is not a pass/fail on a shared machine)


if __name__ == "__main__":
    main()
