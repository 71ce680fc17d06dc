"""Benchmark models and timing helpers shared by the asv modules and the benchmark scripts
(fixed definitions; no randomness).  Scripts run as ``python benchmarks/<script>.py`` import it
as ``_models``; asv imports it as ``benchmarks._models``."""
import statistics
import time

import numpy as np

import ketacore as kc
from ketacore.units import mM, pS, uM


def bench6():
    """Issue-4 benchmark model: Destexhe 5-state with statistical factors + open blocker."""
    return kc.Scheme(
        ["C0", "C1", "C2", "O", "D", "OB"],
        [("C0", "C1", kc.rate(5e6, "glutamate", factor=2)), ("C1", "C0", 12.9),
         ("C1", "C2", kc.rate(5e6, "glutamate")), ("C2", "C1", kc.rate(12.9, factor=2)),
         ("C2", "O", 46.5), ("O", "C2", 73.8), ("C2", "D", 8.4), ("D", "C2", 6.8),
         ("O", "OB", 50.0), ("OB", "O", 20.0)],
        {"O": 50 * pS}, name="bench6")


def nmda_ket_mg():
    """Composed trapping scheme: Erreger GluN1/2A + ketamine (trapping) + kinetic Mg2+ (17
    states).  The Mg2+ blocker is pinned to the sequential mode it had when this benchmark was
    defined (the library's "mg" composes in trapping mode since 2026-11-27, 24 states), so the
    benchmark's workload, and its asv history, stay the same."""
    return kc.block(kc.models.get("erreger2005_2a"), "ketamine",
                    kc.blockers.get("mg").replace(mode="sequential"))


def ch82():
    return kc.models.get("ch82")


MODELS = {"bench6": bench6, "nmda+ket+mg": nmda_ket_mg, "ch82": ch82}

# Conditions under which each model is active (channels open and close).
CONDITIONS = {
    "bench6": {"glutamate": 1 * mM},
    "nmda+ket+mg": {"glutamate": 1 * mM, "ketamine": 1 * uM, "mg": 1 * mM},
    "ch82": {"agonist": 1 * uM},
}


def median_time(fn, repeat: int, warmup: int = 0) -> float:
    """Median wall time (s) of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def equilibrium_transition_rate(scheme=None, **conditions) -> float:
    """Mean transitions per second of one channel at equilibrium, sum_i p_i (-q_ii) (1/s); by
    default the issue-4 model at 1 mM glutamate."""
    if scheme is None:
        scheme, conditions = bench6(), dict(CONDITIONS["bench6"])
    Q = scheme.q_matrix(**conditions)
    return float(kc.theory.equilibrium(Q) @ -np.diag(Q))
