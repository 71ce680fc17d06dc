"""Regression guard: measure ketacore's key throughput figures and compare them, by ratio, with
the committed baseline (``benchmarks/baseline.json``) measured on the same machine.

Usage::

    python benchmarks/regression.py              # measure, compare, warn past the threshold
    python benchmarks/regression.py --strict     # exit 1 on a regression (for a release check)
    python benchmarks/regression.py --update     # re-measure and write the baseline

A figure regresses when ``baseline / measured`` (for throughputs; ``measured / baseline`` for
times) exceeds ``--threshold`` (default 1.3: shared machines are noisy, so only large changes
are flagged here; asv's ``asv continuous -f 1.1 main HEAD`` is the fine-grained tool).
This is a script, not a test: speed is never asserted inside the test suite.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline.json"


def measure() -> dict[str, dict]:
    """Key figures: {name: {"value": float, "unit": str, "higher_is_better": bool}}."""
    sys.path.insert(0, str(HERE))
    import peers
    _median = peers.median_time

    import ketacore as kc
    out: dict[str, dict] = {}
    t = _median(peers.kc_solve(1000), 300)
    out["solve_6state_1000pts"] = {"value": t * 1e6, "unit": "us/call", "higher_is_better": False}
    rate = peers.transitions_per_second_at_equilibrium()
    T = 1e6
    t = _median(peers.kc_ssa_long(T), 5)
    out["ssa_single_channel"] = {"value": rate * T / t, "unit": "transitions/s", "higher_is_better": True}
    t = _median(peers.kc_population_channels(1000, method="ssa"), 30)
    out["ssa_1000ch_1s"] = {"value": t * 1e3, "unit": "ms/call", "higher_is_better": False}
    g = peers.ketacore_scheme()
    n_steps = 100_000
    p = kc.Protocol([kc.Step(n_steps * 1e-4, glutamate=1e-3)])
    fn = lambda: kc.simulate(g, p, dt=1e-4, n_channels=10**9, n_trials=1, method="population",
                             rng=1, n_threads=1, initial="C0", record="summary")
    t = _median(fn, 5)
    out["population_steps"] = {"value": n_steps / t, "unit": "steps/s", "higher_is_better": True}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description="ketacore regression guard")
    ap.add_argument("--update", action="store_true", help="write a new baseline")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a figure regresses")
    ap.add_argument("--threshold", type=float, default=1.3)
    args = ap.parse_args()
    now = measure()
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.node(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version()}
    if args.update or not BASELINE.exists():
        BASELINE.write_text(json.dumps({"meta": meta, "figures": now}, indent=2) + "\n")
        print(f"baseline written to {BASELINE}")
        for k, v in now.items():
            print(f"  {k:<26} {v['value']:12.4g} {v['unit']}")
        return 0
    base = json.loads(BASELINE.read_text())
    print(f"baseline from {base['meta']['date']} on {base['meta']['machine']}; now {meta['date']} "
          f"on {meta['machine']}")
    if base["meta"]["machine"] != meta["machine"]:
        print("warning: different machine; ratios compare hardware as much as code")
    bad = 0
    for k, v in now.items():
        b = base["figures"].get(k)
        if b is None:
            print(f"  {k:<26} {v['value']:12.4g} {v['unit']:<14} (no baseline)")
            continue
        slow = (b["value"] / v["value"]) if v["higher_is_better"] else (v["value"] / b["value"])
        flag = "REGRESSION" if slow > args.threshold else ("faster" if slow < 1 / args.threshold else "ok")
        bad += flag == "REGRESSION"
        print(f"  {k:<26} {v['value']:12.4g} {v['unit']:<14} baseline {b['value']:12.4g}  "
              f"slowdown x{slow:5.2f}  {flag}")
    if bad:
        print(f"{bad} figure(s) slower than x{args.threshold} of the baseline")
    return 1 if (bad and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
