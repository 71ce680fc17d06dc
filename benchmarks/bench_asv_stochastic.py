"""asv: stochastic engine (kc.simulate / kc.simulate_events), issue-4 targets.

time_*    wall time of one call (fixed seeds, set up in ``setup``);
track_*   throughput with units (transitions/s, steps/s), measured inside the benchmark;
peakmem_* peak memory of one call.
Parametrised by n_threads and n_channels.  Imports are inside functions/setup so asv discovery of
this directory never fails when the extension is not built.
"""
import time

GLU = 1e-3


def _scheme():
    """The issue-4 benchmark model (benchmarks/_models.py)."""
    from ._models import bench6
    return bench6()


def _transition_rate(sch):
    from ._models import equilibrium_transition_rate
    return equilibrium_transition_rate(sch, glutamate=GLU)


class SSAPopulation:
    """N channels for 1 s in one call (ssa), output on a 0.1 ms grid."""
    params = [[1, 2], [100, 1000, 10000]]
    param_names = ["n_threads", "n_channels"]

    def setup(self, n_threads, n_channels):
        import ketacore as kc
        self.kc = kc
        self.sch = _scheme()
        self.prot = kc.Protocol([kc.Step(1.0, glutamate=GLU)])
        kc.simulate(self.sch, self.prot, dt=1e-4, n_channels=n_channels, method="ssa", rng=1, n_threads=n_threads)

    def time_simulate(self, n_threads, n_channels):
        self.kc.simulate(self.sch, self.prot, dt=1e-4, n_channels=n_channels, method="ssa", rng=1,
                         n_threads=n_threads)

    def peakmem_simulate(self, n_threads, n_channels):
        self.kc.simulate(self.sch, self.prot, dt=1e-4, n_channels=n_channels, method="ssa", rng=1,
                         n_threads=n_threads)


class SSAThroughput:
    """Single channels, long runs, statistics only (record='summary', 101 samples)."""
    params = [[1, 2]]
    param_names = ["n_threads"]
    T = 1e5

    def setup(self, n_threads):
        import ketacore as kc
        self.kc = kc
        self.sch = _scheme()
        self.prot = kc.Step(self.T, glutamate=GLU)
        self.lam = _transition_rate(self.sch)

    def _run(self, n_threads):
        return self.kc.simulate(self.sch, self.prot, dt=self.T / 100, n_channels=1, n_trials=n_threads,
                                method="ssa", rng=1, n_threads=n_threads, record="summary")

    def time_long_run(self, n_threads):
        self._run(n_threads)

    def track_transitions_per_second(self, n_threads):
        t0 = time.perf_counter()
        self._run(n_threads)
        return self.lam * self.T * n_threads / (time.perf_counter() - t0)

    track_transitions_per_second.unit = "transitions/s"


class FineGrid:
    """N = 10000 channels, 1 s, 10 us grid (1e5 samples x 6 states): int32 counts, or the exact
    per-sample summaries (record='summary': int64 sums and 128-bit sums of squares)."""
    params = [[1, 2], ["counts", "summary"]]
    param_names = ["n_threads", "record"]

    def setup(self, n_threads, record):
        import ketacore as kc
        self.kc = kc
        self.sch = _scheme()
        self.prot = kc.Step(1.0, glutamate=GLU)

    def _run(self, n_threads, record):
        self.kc.simulate(self.sch, self.prot, dt=1e-5, n_channels=10000, method="ssa", rng=1, n_threads=n_threads,
                         record=record)

    def time_fine_grid(self, n_threads, record):
        self._run(n_threads, record)

    def peakmem_fine_grid(self, n_threads, record):
        self._run(n_threads, record)


class Population:
    """Population method, 1e5 steps of 0.1 ms; cost should not depend much on n_channels (from
    POP_COLUMNS_MIN = 2^17 channels a step is drawn in column order; 1e4 and 1e7 are the sizes
    with the most BTRS and long-inversion draws)."""
    params = [[1000, 10**4, 10**6, 10**7, 10**9]]
    param_names = ["n_channels"]
    n_steps = 100_000

    def setup(self, n_channels):
        import ketacore as kc
        self.kc = kc
        self.sch = _scheme()
        self.prot = kc.Step(self.n_steps * 1e-4, glutamate=GLU)

    def _run(self, n_channels):
        return self.kc.simulate(self.sch, self.prot, dt=1e-4, n_channels=n_channels, method="population", rng=1,
                                n_threads=1)

    def time_population(self, n_channels):
        self._run(n_channels)

    def track_steps_per_second(self, n_channels):
        t0 = time.perf_counter()
        self._run(n_channels)
        return self.n_steps / (time.perf_counter() - t0)

    track_steps_per_second.unit = "steps/s"


class PopulationBinomial:
    """The population method's binomial sampler alone (ketacore._core.rng.binomial_fast), 1e5
    draws per call, next to numpy's Generator.binomial (BTPE) for the same (n, p): inversion
    (n p < 10), BTRS (10 <= n p, n p q < 32) and binomial_cfn (n p q >= 32: 200, the small-sigma
    end seen at N = 1e9, and 2.1e8), the latter also in its column-order variant (words=2: V
    from a second stream word)."""
    params = [["inversion n=1e9 p=1e-9", "btrs n=300 p=0.1", "cfn n=1e9 p=2e-7", "cfn n=1e9 p=0.3",
               "cfn words=2 n=1e9 p=2e-7"]]
    param_names = ["regime"]
    draws = 100_000
    _CASES = {"inversion n=1e9 p=1e-9": (10**9, 1e-9, 1), "btrs n=300 p=0.1": (300, 0.1, 1),
              "cfn n=1e9 p=2e-7": (10**9, 2e-7, 1), "cfn n=1e9 p=0.3": (10**9, 0.3, 1),
              "cfn words=2 n=1e9 p=2e-7": (10**9, 2e-7, 2)}

    def setup(self, regime):
        import numpy as np
        from ketacore import _core
        self.rng = _core.rng
        self.n, self.p, self.words = self._CASES[regime]
        self.gen = np.random.Generator(np.random.PCG64(1))

    def time_ketacore(self, regime):
        self.rng.binomial_fast([1], [0], self.draws, self.n, self.p, self.words)

    def time_numpy(self, regime):
        self.gen.binomial(self.n, self.p, size=self.draws)


class Overhead:
    """Fixed cost of a trivial call (1 channel, 2 samples)."""

    def setup(self):
        import ketacore as kc
        self.kc = kc
        self.sch = _scheme()
        self.prot = kc.Protocol([kc.Step(1e-3, glutamate=GLU)])
        kc.simulate(self.sch, self.prot, dt=1e-3, n_channels=1, rng=1, n_threads=1)

    def time_overhead(self):
        self.kc.simulate(self.sch, self.prot, dt=1e-3, n_channels=1, rng=1, n_threads=1)


class Events:
    """Single-channel event logs: 8 trials x 1000 s (~4e5 transitions)."""

    def setup(self):
        import ketacore as kc
        self.kc = kc
        self.sch = _scheme()
        self.prot = kc.Step(1000.0, glutamate=GLU)

    def time_simulate_events(self):
        self.kc.simulate_events(self.sch, self.prot, n_trials=8, rng=1, n_threads=1)
