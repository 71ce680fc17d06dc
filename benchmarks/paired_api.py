"""Paired Python-API comparison: the methods of an asv benchmark class, timed on two builds.

Run:  python benchmarks/paired_api.py --old <tree> --bench bench_asv_api:LongWaveform
          [--methods time_solve,time_compile] [--rounds 3] [--repeat 3]

``<tree>`` is a checkout of the older version with its extensions built in place, e.g.::

    git worktree add /tmp/wt-old <rev> && (cd /tmp/wt-old && python setup.py build_ext --inplace)

The benchmark class always comes from *this* tree's ``benchmarks/`` (so a benchmark written after
the old version can time it); ``ketacore`` comes from ``<tree>`` for the old runs and, for the new
ones, from this interpreter's environment (this tree when it is installed in development mode).  Each round runs every method in a fresh process per version, old then
new, alternating (the shared VM's speed drifts by up to 1.5x within minutes); a process calls
``setup()`` once and reports, per method, the median of ``--repeat`` timings (after one
untimed warm-up call), each of a loop of calls doubled until it takes >= 20 ms (one call for
slower methods), per call.  The table gives the
median over rounds per version and their ratio (old / new: > 1 means this tree is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import importlib, importlib.util, json, sys, time
root, module, cls, methods, repeat = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(","), int(sys.argv[5])
spec = importlib.util.spec_from_file_location("benchmarks", root + "/benchmarks/__init__.py",
                                              submodule_search_locations=[root + "/benchmarks"])
pkg = importlib.util.module_from_spec(spec)
sys.modules["benchmarks"] = pkg
spec.loader.exec_module(pkg)
bench = getattr(importlib.import_module("benchmarks." + module), cls)()
import ketacore
bench.setup()
out = {"ketacore": ketacore.__file__}
for m in methods:
    f = getattr(bench, m)
    f()  # warm-up (caches, lazy imports), not timed
    # calls per timing: doubled until a loop takes >= 20 ms (as timeit's autorange), so
    # microsecond methods are not timer noise; a method of >= 20 ms is timed one call at a time
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            f()
        elapsed = time.perf_counter() - t0
        if elapsed >= 0.02 or number >= 1 << 20:
            break
        number *= 2
    ts = [elapsed / number]  # (the calibrating loop is the first timing)
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        for _ in range(number):
            f()
        ts.append((time.perf_counter() - t0) / number)
    out[m] = sorted(ts)[len(ts) // 2]
print(json.dumps(out))
"""


def fmt_seconds(t: float) -> str:
    """A duration with a unit that keeps four significant digits readable (s, ms, µs, ns)."""
    t = float(f"{t:.4g}")  # (rounded first: 999.99e-6 is 1 ms, not 1000 µs)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if t >= scale:
            return f"{t / scale:8.4g} {unit:2s}"
    return f"{t / 1e-9:8.4g} ns"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="tree of the older version, extensions built in place")
    ap.add_argument("--bench", required=True, help="module:Class, e.g. bench_asv_api:LongWaveform")
    ap.add_argument("--methods", default=None, help="comma-separated; default every time_* method")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    if a.rounds < 1 or a.repeat < 1:
        ap.error("--rounds and --repeat must be >= 1")
    old = Path(a.old).resolve()
    if not (old / "ketacore" / "__init__.py").exists():
        ap.error(f"--old {old}: no ketacore package there")
    module, _, cls = a.bench.partition(":")
    if not cls:
        ap.error("--bench must be module:Class")
    # (the benchmarks package from this tree, without putting the tree on sys.path: ketacore
    # must come from the environment, which in a clean clone is the installed build)
    import importlib
    import importlib.util
    spec = importlib.util.spec_from_file_location("benchmarks", ROOT / "benchmarks" / "__init__.py",
                                                  submodule_search_locations=[str(ROOT / "benchmarks")])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = pkg
    spec.loader.exec_module(pkg)
    try:
        obj = getattr(importlib.import_module("benchmarks." + module), cls)
    except (ImportError, AttributeError) as e:
        ap.error(f"--bench {a.bench}: {e}")
    methods = [m for m in a.methods.split(",") if m] if a.methods else \
        [m for m in dir(obj) if m.startswith("time_")]
    unknown = [m for m in methods if not callable(getattr(obj, m, None))]
    if not methods or unknown:
        ap.error(f"--methods: {unknown or 'none given'}; {cls} has {[m for m in dir(obj) if m.startswith('time_')]}")
    runs: dict[str, list] = {"old": [], "new": []}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for _ in range(a.rounds):
        for tag in ("old", "new"):
            # cwd outside both trees, so the interpreter's '' entry does not shadow PYTHONPATH
            o = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), module, cls, ",".join(methods),
                                str(a.repeat)], env=dict(env, PYTHONPATH=str(old)) if tag == "old" else env,
                               capture_output=True, text=True, cwd="/")
            if o.returncode:
                print(o.stderr[-3000:], file=sys.stderr)
                return 1
            res = json.loads(o.stdout.strip().splitlines()[-1])
            if tag == "old" and not res["ketacore"].startswith(str(old)):
                print(f"the old run imported {res['ketacore']}, not from {old}", file=sys.stderr)
                return 1
            runs[tag].append(res)
    print(f"{a.bench}: medians of {a.rounds} alternated rounds (each the median of {a.repeat} timings of "
          f">= 20 ms loops, per call); "
          f"old: {runs['old'][0]['ketacore']}, new: {runs['new'][0]['ketacore']}")
    for m in methods:
        t_old = statistics.median(r[m] for r in runs["old"])
        t_new = statistics.median(r[m] for r in runs["new"])
        print(f"  {m:40s} old {fmt_seconds(t_old)}   new {fmt_seconds(t_new)}   old/new {t_old / t_new:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
