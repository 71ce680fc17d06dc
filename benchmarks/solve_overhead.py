"""kc.solve's Python overhead, measured in one run against the C++ call it wraps.

Run:  python benchmarks/solve_overhead.py [--rounds 21] [--calls 200]

Alternates the asv methods of ``bench_asv_master.MasterEquation`` (n = 1000 samples):
``time_solve`` (kc.solve), ``time_core`` (``_core.solve_master`` on pre-compiled arguments)
and ``time_numpy_eig_baseline``, ``--rounds`` times ``--calls`` calls each, and prints medians
(µs per call) and the per-round overhead solve - core.  Alternating within rounds keeps the
VM's minute-to-minute speed changes out of the differences and ratios.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# the repo root *after* site-packages: `benchmarks` is imported from it, but an installed
# ketacore (with its compiled core) must win over the source tree
sys.path.append(str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    from benchmarks.bench_asv_master import MasterEquation
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--calls", type=int, default=200)
    a = ap.parse_args(argv)
    for name in ("rounds", "calls"):
        if getattr(a, name) < 1:
            ap.error(f"--{name} must be >= 1, got {getattr(a, name)}")
    b = MasterEquation()
    b.setup(1000)
    fs = {"solve": lambda: b.time_solve(1000), "core": lambda: b.time_core(1000),
          "numpy": lambda: b.time_numpy_eig_baseline(1000)}
    res = {k: [] for k in fs}
    for _ in range(a.rounds):
        for k, f in fs.items():
            t = time.perf_counter()
            for _ in range(a.calls):
                f()
            res[k].append((time.perf_counter() - t) / a.calls * 1e6)
    s, c, n = (np.array(res[k]) for k in ("solve", "core", "numpy"))
    print(f"kc.solve {np.median(s):.1f} us (min {s.min():.1f}); C++ alone {np.median(c):.1f} us "
          f"(min {c.min():.1f}); Python overhead median {np.median(s - c):.1f} us "
          f"(min {np.min(s - c):.1f}); numpy baseline {np.median(n):.0f} us, "
          f"{np.median(n / s):.2f}x slower than kc.solve")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
