"""Paired comparison of ``record="summary"`` runs (and the resolution kernel) on two builds.

Run:  python benchmarks/paired_summary.py --old <tree> [--model bench6|ch82] [--rounds 9]

``<tree>`` is a checkout of the older version with its extensions built in place, e.g.::

    git worktree add /tmp/wt-old <rev> && (cd /tmp/wt-old && python setup.py build_ext --inplace)

Each round runs one fresh process per version, old then new (the shared VM's speed drifts
within minutes); a process times, after one warm-up call, the median of 5 calls of each
workload (one thread, 4 trials, 1 s at 1 mM glutamate or 1 uM agonist):

* ssa, N = 10000 and N = 1000 channels on a 10 us grid (1e5 samples): the per-sample summary
  accumulation is most of the N = 1000 run;
* population, N = 1000 on a 0.1 ms grid;
* ``Record.resolve`` (the Cython resolution kernel) on a 2e5-transition CH82 record with open
  and shut classes (``--model ch82`` only).

The table gives, per workload, the median time of each version and the median of the per-round
ratios old / new (> 1: this tree is faster).  ``ketacore`` for the new runs is this tree.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import ketacore as kc
import _models
model = sys.argv[3]
sch = getattr(_models, model)()
cond = {"bench6": {"glutamate": 1e-3}, "ch82": {"agonist": 1e-6}}[model]

def med(f):
    f()
    ts = []
    for _ in range(5):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)

out = {"ketacore": kc.__file__}
for N, dt, meth in ((10000, 1e-5, "ssa"), (1000, 1e-5, "ssa"), (1000, 1e-4, "population")):
    out[f"summary {meth} N={N} dt={dt:g}"] = med(lambda: kc.simulate(
        sch, kc.Step(1.0, **cond), dt=dt, n_channels=N, method=meth, rng=1, n_threads=1,
        record="summary", n_trials=4))
if model == "ch82":
    from ketacore import analysis as ka
    log = kc.simulate_events(sch, kc.Step(2e5 / 22.3 / 4, agonist=1e-7), n_trials=4, rng=2024)
    rec = ka.Record.from_events(log, {s: int(s.endswith("*")) for s in sch.states})
    out["Record.resolve(50 us), 2e5 transitions"] = med(lambda: rec.resolve(50e-6))
print(json.dumps(out))
"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="tree of the older version, built in place")
    ap.add_argument("--model", choices=["bench6", "ch82"], default="bench6")
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args(argv)
    bench_dir = str(ROOT / "benchmarks")
    res: dict = {"old": [], "new": []}
    for _ in range(a.rounds):
        for name, tree in (("old", a.old), ("new", str(ROOT))):
            p = subprocess.run([sys.executable, "-c", CHILD, tree, bench_dir, a.model],
                               capture_output=True, text=True, cwd="/")
            if p.returncode:
                sys.exit(p.stderr[-3000:])
            res[name].append(json.loads(p.stdout.strip().splitlines()[-1]))
    print(f"model {a.model}; old: {res['old'][0]['ketacore']}; new: {res['new'][0]['ketacore']}; "
          f"{a.rounds} alternated rounds")
    print(f"{'workload':44s} {'old':>10s} {'new':>10s} {'old/new':>8s}")
    for k in res["old"][0]:
        if k == "ketacore":
            continue
        o = statistics.median(r[k] for r in res["old"])
        n = statistics.median(r[k] for r in res["new"])
        ratio = statistics.median(x[k] / y[k] for x, y in zip(res["old"], res["new"]))
        print(f"{k:44s} {o * 1e3:8.2f}ms {n * 1e3:8.2f}ms {ratio:8.3f}")


if __name__ == "__main__":
    main()
