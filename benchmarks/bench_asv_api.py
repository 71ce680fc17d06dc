"""asv: per-call cost of the Python API's building blocks (input validation included).

These are the calls research code makes in its inner loops (a fresh ``Step`` or ``Protocol`` per
simulated sweep, a Q-matrix per voltage), so their validation must stay cheap.  Figures quoted
in issue notes (``Protocol([step])`` ~1.2 us with its fast path, ``q_matrix`` without a per-call
finiteness check) come from here.
"""
import importlib

import numpy as np

import ketacore as kc
from ketacore.units import mM, ms, mV, uM

from ._models import bench6, nmda_ket_mg


class Construction:
    def setup(self):
        self.step = kc.Step(1 * ms, glutamate=1 * mM)
        self.steps = [kc.Step(1 * ms, V=v * mV, glutamate=1 * mM) for v in range(-100, 0)]
        self.g = bench6()
        self.g.q_matrix(glutamate=1 * mM)  # warm the compiled scheme
        self.train = kc.pulse_train(100, 10.0, 1 * ms, during={"glutamate": 1 * mM})

    def time_step(self):
        kc.Step(1 * ms, glutamate=1 * mM)

    def time_protocol_one_step(self):
        kc.Protocol([self.step])

    def time_protocol_100_steps(self):
        kc.Protocol(self.steps)

    def time_pulse_train_100(self):
        kc.pulse_train(100, 10.0, 1 * ms, during={"glutamate": 1 * mM})

    def time_protocol_compile_100_pulses(self):
        self.train.compile(self.g)

    def time_q_matrix(self):
        self.g.q_matrix(V=-60 * mV, glutamate=1 * mM)


class FirstCall:
    """First simulate call on a protocol with many distinct conditions (a 5000-point voltage
    ramp on the 17-state NMDA+ketamine+Mg scheme, 100 channels x 2 trials, ssa): the cost model
    needs one equilibrium per condition.  The caches that make repeated calls cheap are cleared
    inside the timed call, so every sample is a first call."""

    def setup(self):
        self.sim = importlib.import_module("ketacore.simulate")
        self.g = nmda_ket_mg()
        n = 5000
        self.ramp = kc.Protocol.from_waveform(np.arange(n) * 1 * ms, n * 1 * ms,
                                              V=np.linspace(-100, 40, n) * mV, glutamate=1 * mM,
                                              ketamine=1 * uM, mg=1 * mM)

    def time_simulate_voltage_ramp_first_call(self):
        for cache in (self.sim._RATE_CACHE, self.sim._EXPECT_CACHE, self.sim._PLANS, self.sim._P0_CACHE):
            cache.clear()
        kc.simulate(self.g, self.ramp, 1 * ms, n_channels=100, n_trials=2, method="ssa", rng=1,
                    n_threads=1)

    def time_same_with_per_condition_gth_baseline(self):
        """Baseline: the cost model's structure before 2026-11-27 -- one ``theory.equilibrium``
        call per condition (closed classes, then GTH), patched in for this call only.  Since
        2026-11-27 that GTH runs in C++ too, so this baseline is faster than the code it stood for
        (which took ~1 ms per condition); it still measures the per-condition Python work."""
        from ketacore.theory import equilibrium
        real = self.sim._condition_rates

        def per_condition(compiled, conds, p0):
            rate, top = np.empty(len(conds)), np.empty(len(conds))
            for c in range(len(conds)):
                Q = np.asarray(compiled.q_matrix(conds[c]))
                exits = -np.diag(Q)
                try:
                    peq = equilibrium(Q)
                except ValueError:
                    peq = p0
                rate[c], top[c] = 0.5 * (exits @ p0 + exits @ peq), exits.max()
            return rate, top
        self.sim._condition_rates = per_condition
        try:
            self.time_simulate_voltage_ramp_first_call()
        finally:
            self.sim._condition_rates = real


class LongWaveform:
    """A recorded command waveform as a protocol: 200000 samples (2 s at 10 us), one step and
    one condition per sample, on the 17-state NMDA+ketamine+Mg scheme.  ``from_waveform`` checks
    all samples at once and keeps them as columns (since 2026-11-28; before, it built a Step per
    sample, which ``time_from_waveform_and_steps`` still times); the baseline builds the same
    steps one checked ``Step`` at a time (how it worked before 2026-11-27).  The first simulate call (caches cleared) is mostly planning
    here: 1 channel, ssa, or population (which builds one matrix per condition)."""

    timeout = 300

    def setup(self):
        self.sim = importlib.import_module("ketacore.simulate")
        self.g = nmda_ket_mg()
        n = 200000
        self.t = np.arange(n) * 10e-6
        self.V = -80 * mV + 120 * mV * self.t / self.t[-1]
        self.t_end = n * 10e-6
        self.prot = kc.Protocol.from_waveform(self.t, self.t_end, V=self.V, glutamate=1 * mM, mg=1 * mM)
        self.prot.compile(self.g)
        # imports (theory, scipy) and the compiled scheme, so the first call times the planning
        kc.simulate(self.g, kc.Step(1 * ms, glutamate=1 * mM, mg=1 * mM), 1 * ms, rng=1)

    def time_from_waveform(self):
        kc.Protocol.from_waveform(self.t, self.t_end, V=self.V, glutamate=1 * mM, mg=1 * mM)

    def time_from_waveform_and_steps(self):
        kc.Protocol.from_waveform(self.t, self.t_end, V=self.V, glutamate=1 * mM, mg=1 * mM).steps

    def peakmem_from_waveform(self):
        kc.Protocol.from_waveform(self.t, self.t_end, V=self.V, glutamate=1 * mM, mg=1 * mM)

    def time_from_waveform_baseline_checked_steps(self):
        ends = np.append(self.t[1:], self.t_end)
        kc.Protocol([kc.Step(float(e - s), V=float(v), glutamate=1 * mM, mg=1 * mM)
                     for s, e, v in zip(self.t, ends, self.V)])

    def time_compile(self):
        self.prot._compile_cache.clear()
        self.prot.compile(self.g)

    def time_solve(self):
        """The master equation on a 1 ms grid: each sample's piece by uniformization (master.hpp)."""
        kc.solve(self.g, self.prot, 1 * ms)

    def time_solve_fine_grid(self):
        """The master equation on the waveform's own 10 us grid: each sample's full step by
        uniformization, no matrix kept (before 2026-11-27: Q and expm(Q dt) per sample)."""
        kc.solve(self.g, self.prot, 10e-6)

    def peakmem_solve_fine_grid(self):
        kc.solve(self.g, self.prot, 10e-6)

    def _first_call(self, method):
        for cache in (self.sim._RATE_CACHE, self.sim._EXPECT_CACHE, self.sim._PLANS, self.sim._P0_CACHE):
            cache.clear()
        kc.simulate(self.g, self.prot, 1 * ms, n_channels=1, method=method, rng=1, n_threads=1)

    def time_simulate_first_call_ssa(self):
        self._first_call("ssa")

    def time_simulate_first_call_auto(self):
        self._first_call("auto")

    def time_simulate_again_ssa(self):
        """A later call (new seed): the plan is reused (since 2026-11-27 also for estimates above
        256 MB, re-checking memory), so this is the C++ call: exit tables for 200000 conditions,
        then one channel."""
        kc.simulate(self.g, self.prot, 1 * ms, n_channels=1, method="ssa", rng=2, n_threads=1)

    def _population(self, dt):
        for cache in (self.sim._RATE_CACHE, self.sim._EXPECT_CACHE, self.sim._PLANS, self.sim._P0_CACHE):
            cache.clear()
        kc.simulate(self.g, self.prot, dt, n_channels=10**6, method="population", rng=1, n_threads=1)

    def time_simulate_population_1ms(self):
        """Population, 1 ms grid: each interval is the product of its 100 samples' matrices."""
        self._population(1 * ms)

    def time_simulate_population_fine_grid(self):
        """Population on the waveform's own 10 us grid: one matrix per interval, 200000 in all,
        whose tables are built a bounded number at a time (before 2026-11-27: all kept, ~3.5 GB)."""
        self._population(10e-6)

    def peakmem_simulate_population_fine_grid(self):
        self._population(10e-6)
