"""Peer comparison: ketacore against a numpy-vectorised baseline and, when installed, GillesPy2,
Myokit and NEURON, on the same model and workloads, in one run.

Run::

    python benchmarks/peers.py            # full table (a few minutes)
    python benchmarks/peers.py --quick    # smaller workloads

Model (issue 4 benchmark model): Destexhe 5-state NMDA with statistical factors + an open-channel
blocker, glutamate 1 mM held constant::

    C0→C1 2·Rb·G, C1→C0 Ru, C1→C2 Rb·G, C2→C1 2·Ru, C2→O Ro, O→C2 Rc, C2→D Rd, D→C2 Rr,
    O→OB 50 s⁻¹, OB→O 20 s⁻¹; Rb 5e6 M⁻¹s⁻¹, G 1 mM, Ru 12.9, Rd 8.4, Rr 6.8, Ro 46.5, Rc 73.8 s⁻¹.

Workloads: (1) one channel, long run, statistics only → transitions/s; (2) N = 1000 channels for
1 s on a 1 ms grid → time per call; (3) deterministic 1000-point trajectory → time per call.
Every figure is the median of repeated runs measured in this process; ratios are against
ketacore in the same run.  Expected transition counts come from the exact equilibrium exit
rate (theory), so engines that do not report their event count are measured the same way.
Optional imports live inside functions so that asv discovery never imports peers.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Callable

import numpy as np

STATES = ["C0", "C1", "C2", "O", "D", "OB"]
G = 1e-3
RATES = [("C0", "C1", 2 * 5e6 * G), ("C1", "C0", 12.9), ("C1", "C2", 5e6 * G),
         ("C2", "C1", 2 * 12.9), ("C2", "O", 46.5), ("O", "C2", 73.8), ("C2", "D", 8.4),
         ("D", "C2", 6.8), ("O", "OB", 50.0), ("OB", "O", 20.0)]


def _shared():
    """benchmarks/_models.py (model and timing helpers), as a script or inside the package."""
    try:
        from . import _models
    except ImportError:  # a script; PYTHONSAFEPATH=1 leaves the script's folder off sys.path
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import _models
    return _models


def ketacore_scheme():
    """The issue-4 benchmark model (benchmarks/_models.py bench6; same states and rates as
    STATES/RATES, which the peer engines are built from)."""
    return _shared().bench6()


def q_matrix() -> np.ndarray:
    idx = {s: i for i, s in enumerate(STATES)}
    Q = np.zeros((6, 6))
    for a, b, k in RATES:
        Q[idx[a], idx[b]] = k
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q


def transitions_per_second_at_equilibrium() -> float:
    return _shared().equilibrium_transition_rate()


def median_time(fn: Callable[[], object], repeat: int) -> float:
    return _shared().median_time(fn, repeat)


# ------------------------------------------------------------------------------ ketacore
def kc_ssa_long(T: float, n_threads: int = 1):
    import ketacore as kc
    g = ketacore_scheme()
    p = kc.Protocol([kc.Step(T, glutamate=G)])
    return lambda: kc.simulate(g, p, dt=T / 100, n_channels=1, n_trials=1, method="ssa",
                               record="summary", rng=1, n_threads=n_threads, initial="equilibrium")


def kc_population_channels(N: int, T: float = 1.0, dt: float = 1e-3, method: str = "auto"):
    import ketacore as kc
    g = ketacore_scheme()
    p = kc.Protocol([kc.Step(T, glutamate=G)])
    return lambda: kc.simulate(g, p, dt=dt, n_channels=N, n_trials=1, method=method, rng=1,
                               n_threads=1, initial="C0")


def kc_solve(n: int = 1000):
    import ketacore as kc
    g = ketacore_scheme()
    p = kc.Protocol([kc.Step(1.0, glutamate=G)])
    p0 = np.eye(6)[0]
    return lambda: kc.solve(g, p, dt=1.0 / n, initial=p0)


# ------------------------------------------------------------------------------ numpy baselines
def numpy_ssa(n_channels: int, T: float, seed: int = 0) -> int:
    """Vectorised exact SSA: all channels advance together, one numpy step per event round.
    Returns the number of transitions made."""
    Q = q_matrix()
    exit_r = -np.diag(Q)
    P = Q / exit_r[:, None]
    np.fill_diagonal(P, 0.0)
    cum = np.cumsum(P, axis=1)
    rng = np.random.default_rng(seed)
    from ketacore.theory import equilibrium
    state = rng.choice(6, size=n_channels, p=equilibrium(Q))
    t = np.zeros(n_channels)
    n = 0
    active = np.arange(n_channels)
    while active.size:
        s = state[active]
        t[active] += rng.standard_exponential(active.size) / exit_r[s]
        alive = t[active] < T
        active = active[alive]
        s = s[alive]
        u = rng.random(active.size)
        state[active] = (u[:, None] > cum[s]).sum(axis=1)
        n += active.size
    return n


def numpy_master(n: int = 1000):
    """p(t) by one eigendecomposition and a vectorised spectral sum (scipy/numpy baseline)."""
    Q = q_matrix()
    times = np.arange(n + 1) / n
    p0 = np.eye(6)[0]

    def run():
        lam, V = np.linalg.eig(Q.T)
        c = np.linalg.solve(V, p0)
        return (V @ (c[:, None] * np.exp(np.outer(lam, times)))).real.T
    return run


def numpy_channels_grid(N: int, T: float = 1.0, dt: float = 1e-3, seed: int = 0):
    """Population baseline: channel counts advanced by multinomial draws with P = expm(Q dt)."""
    import scipy.linalg as sl
    P = sl.expm(q_matrix() * dt)
    n_steps = int(round(T / dt))

    def run():
        rng = np.random.default_rng(seed)
        counts = np.zeros(6, dtype=np.int64)
        counts[0] = N
        out = np.empty((n_steps + 1, 6), dtype=np.int64)
        out[0] = counts
        for k in range(n_steps):
            new = np.zeros(6, dtype=np.int64)
            for i in range(6):
                if counts[i]:
                    new += rng.multinomial(counts[i], P[i])
            counts = new
            out[k + 1] = counts
        return out
    return run


# ------------------------------------------------------------------------------ peers
def gillespy2_model(T: float, n_points: int, N: int = 1, continuous: bool = False):
    import gillespy2
    m = gillespy2.Model(name="nmda6")
    mode = "continuous" if continuous else "discrete"
    sp = {s: gillespy2.Species(name=s, initial_value=(N if s == "C0" else 0), mode=mode)
          for s in STATES}
    m.add_species(list(sp.values()))
    for i, (a, b, k) in enumerate(RATES):
        p = gillespy2.Parameter(name=f"k{i}", expression=k)
        m.add_parameter(p)
        m.add_reaction(gillespy2.Reaction(name=f"r{i}", reactants={sp[a]: 1}, products={sp[b]: 1}, rate=p))
    m.timespan(np.linspace(0, T, n_points))
    return m


MYOKIT_MMT = """
[[model]]
ch.C0 = 1
ch.C1 = 0
ch.C2 = 0
ch.O = 0
ch.D = 0
ch.OB = 0

[engine]
time = 0 [ms] bind time

[membrane]
V = -70 [mV] label membrane_potential

[ch]
G = 1 [mM]
Rb = 5 [1/mM/ms]
Ru = 0.0129 [1/ms]
Rd = 0.0084 [1/ms]
Rr = 0.0068 [1/ms]
Ro = 0.0465 [1/ms]
Rc = 0.0738 [1/ms]
kb = 0.05 [1/ms]
ku = 0.02 [1/ms]
dot(C0) = Ru*C1 - 2*Rb*G*C0
dot(C1) = 2*Rb*G*C0 + 2*Ru*C2 - (Ru + Rb*G)*C1
dot(C2) = Rb*G*C1 + Rc*O + Rr*D - (2*Ru + Ro + Rd)*C2
dot(O) = Ro*C2 + ku*OB - (Rc + kb)*O
dot(D) = Rd*C2 - Rr*D
dot(OB) = kb*O - ku*OB
g = O
"""


def myokit_linear_model():
    import myokit
    import myokit.lib.markov as markov
    m = myokit.parse_model(MYOKIT_MMT)
    return markov.LinearModel(m, [f"ch.{s}" for s in STATES], ["ch.G"], "ch.g", vm="membrane.V")


NEURON_MOD = """NEURON {
  POINT_PROCESS NMDA6
  RANGE C0, C1, C2, O, D, OB
}
PARAMETER {
  Rb = 5 (/mM /ms)
  G = 1 (mM)
  Ru = 0.0129 (/ms)
  Rd = 0.0084 (/ms)
  Rr = 0.0068 (/ms)
  Ro = 0.0465 (/ms)
  Rc = 0.0738 (/ms)
  kb = 0.05 (/ms)
  ku = 0.02 (/ms)
}
STATE { C0 C1 C2 O D OB }
INITIAL { C0 = 1 C1 = 0 C2 = 0 O = 0 D = 0 OB = 0 }
BREAKPOINT { SOLVE kin METHOD sparse }
KINETIC kin {
  ~ C0 <-> C1 (2*Rb*G, Ru)
  ~ C1 <-> C2 (Rb*G, 2*Ru)
  ~ C2 <-> O (Ro, Rc)
  ~ C2 <-> D (Rd, Rr)
  ~ O <-> OB (kb, ku)
  CONSERVE C0 + C1 + C2 + O + D + OB = 1
}
"""


def neuron_runner(dt_ms: float = 0.025):
    """NEURON KINETIC-block model (compiled once with nrnivmodl into ~/.cache), fixed step
    dt_ms with the sparse (implicit) method, O recorded every 1 ms for 1 s."""
    import os
    import subprocess
    from pathlib import Path

    from neuron import h
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ketacore-peers-nrn"
    lib = cache / "x86_64" / ".libs" / "libnrnmech.so"
    if not lib.exists():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "nmda6.mod").write_text(NEURON_MOD)
        subprocess.run(["nrnivmodl"], cwd=cache, check=True, capture_output=True)
    if not hasattr(h, "NMDA6"):
        libs = list(cache.glob("*/.libs/libnrnmech.so")) + list(cache.glob("*/libnrnmech.so"))
        h.nrn_load_dll(str(libs[0]))
    h.load_file("stdrun.hoc")
    sec = h.Section(name="s")
    pp = h.NMDA6(sec(0.5))
    o = h.Vector()
    o.record(pp._ref_O, 1.0)
    h.dt = dt_ms

    def run():
        h.finitialize(-70)
        h.continuerun(1000)
        return np.array(o)
    run._keep = (sec, pp, o)  # keep the NEURON objects alive
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    q = args.quick
    rows: list[tuple[str, str, float, str]] = []   # workload, engine, value, unit
    rate_eq = transitions_per_second_at_equilibrium()

    # (1) single channel, long run --------------------------------------------------------
    T = 2e5 if q else 2e6
    t = median_time(kc_ssa_long(T), 3 if q else 5)
    kc_tps = rate_eq * T / t
    rows.append(("1 channel long run", "ketacore ssa (1 thread)", kc_tps, "transitions/s"))
    # (thread scaling needs several trials or channel blocks: see bench_stochastic.py)
    Tn = 2e3 if q else 1e4
    nch = 100
    counts = []
    tn = median_time(lambda: counts.append(numpy_ssa(nch, Tn)), 3)
    rows.append(("1 channel long run", f"numpy vectorised SSA ({nch} ch.)", counts[-1] / tn, "transitions/s"))
    try:
        import gillespy2
        Tg = 1e4 if q else 1e5
        m = gillespy2_model(Tg, 101)
        sol = gillespy2.SSACSolver(model=m)
        tg = median_time(lambda: m.run(solver=sol, number_of_trajectories=1, seed=1), 3)
        rows.append(("1 channel long run", "GillesPy2 SSACSolver", rate_eq * Tg / tg, "transitions/s"))
    except ImportError:
        rows.append(("1 channel long run", "GillesPy2 (not installed)", float("nan"), ""))
    try:
        import myokit.lib.markov as markov
        lm = myokit_linear_model()
        Tm = (2e2 if q else 1e3) * 1e3  # ms
        ds = markov.DiscreteSimulation(lm, nchannels=1)
        nev = []
        tm = median_time(lambda: (ds.reset(), nev.append(len(ds.run(Tm)["engine.time"]))), 3)
        rows.append(("1 channel long run", "Myokit DiscreteSimulation", nev[-1] / tm, "transitions/s"))
    except ImportError:
        rows.append(("1 channel long run", "Myokit (not installed)", float("nan"), ""))

    # (2) N = 1000 channels, 1 s, 1 ms grid ------------------------------------------------
    N = 1000
    for method in ("ssa", "population"):
        t = median_time(kc_population_channels(N, method=method), 20)
        rows.append((f"N={N}, 1 s, 1 ms grid", f"ketacore {method}", t * 1e3, "ms/call"))
    t = median_time(numpy_channels_grid(N), 3)
    rows.append((f"N={N}, 1 s, 1 ms grid", "numpy multinomial loop", t * 1e3, "ms/call"))
    try:
        import gillespy2
        m = gillespy2_model(1.0, 1001, N=N)
        sol = gillespy2.SSACSolver(model=m)
        t = median_time(lambda: m.run(solver=sol, number_of_trajectories=1, seed=1), 5)
        rows.append((f"N={N}, 1 s, 1 ms grid", "GillesPy2 SSACSolver", t * 1e3, "ms/call"))
    except ImportError:
        pass
    try:
        import myokit.lib.markov as markov
        lm = myokit_linear_model()
        ds = markov.DiscreteSimulation(lm, nchannels=N)
        t = median_time(lambda: (ds.reset(), ds.run(1000.0)), 3)  # event log (no fixed grid)
        rows.append((f"N={N}, 1 s, 1 ms grid", "Myokit DiscreteSimulation", t * 1e3, "ms/call"))
    except ImportError:
        pass

    # (3) deterministic 1000-point trajectory ----------------------------------------------
    t = median_time(kc_solve(1000), 200)
    rows.append(("deterministic 1000 points", "ketacore solve", t * 1e6, "us/call"))
    t = median_time(numpy_master(1000), 200)
    rows.append(("deterministic 1000 points", "numpy eig baseline", t * 1e6, "us/call"))
    try:
        import myokit.lib.markov as markov
        an = markov.AnalyticalSimulation(myokit_linear_model())
        t = median_time(lambda: (an.reset(), an.run(1000.0, log_interval=1.0)), 20)
        rows.append(("deterministic 1000 points", "Myokit AnalyticalSimulation", t * 1e6, "us/call"))
    except ImportError:
        pass
    try:
        import neuron  # noqa: F401
        import ketacore as kc
        ref = kc.solve(ketacore_scheme(), kc.Step(1.0, glutamate=G), 1e-3, initial="C0").occupancy[:, 3]
        for dt_ms in (0.025, 0.1):
            run = neuron_runner(dt_ms)
            y = run()
            n = min(len(y), len(ref))
            err = float(np.abs(y[:n] - ref[:n]).max())
            t = median_time(run, 10)
            rows.append(("deterministic 1000 points", f"NEURON sparse, dt={dt_ms} ms (max err {err:.1e})",
                         t * 1e6, "us/call"))
    except ImportError:
        rows.append(("deterministic 1000 points", "NEURON (not installed)", float("nan"), ""))
    try:
        import gillespy2
        m = gillespy2_model(1.0, 1001, N=1, continuous=True)
        sol = gillespy2.ODECSolver(model=m)
        t = median_time(lambda: m.run(solver=sol), 5)
        rows.append(("deterministic 1000 points", "GillesPy2 ODECSolver", t * 1e6, "us/call"))
    except ImportError:
        pass

    print(f"# ketacore peer comparison -- {time.strftime('%Y-%m-%d')} -- {platform.machine()}, "
          f"{platform.processor() or platform.platform()}, Python {platform.python_version()}")
    print(f"{'workload':<28} {'engine':<46} {'median':>14} {'unit':<14} {'vs ketacore':>12}")
    base: dict[str, float] = {}
    for w, e, v, u in rows:
        if e.startswith("ketacore") and w not in base:
            base[w] = v
    for w, e, v, u in rows:
        b = base.get(w, float("nan"))
        ratio = (v / b) if u == "transitions/s" else (b / v if v else float("nan"))
        # ratio < 1 means slower than ketacore (throughput ratio or inverse time ratio)
        print(f"{w:<28} {e:<46} {v:>14.4g} {u:<14} {ratio:>11.3g}x")


if __name__ == "__main__":
    main()
