"""asv: single-channel analysis kernels (kc.analysis), issue-5 target >= 1e7 events/s.

time_*   wall time of one kernel call on a fixed CH82 record (seeded in ``setup``);
track_*  throughput in events/s (input transitions or dwells per second, best of 5), and the
         speed-up over the vectorised numpy baselines in ``bench_analysis.py``.
Imports are inside functions/setup so asv discovery never fails when the extension is not built.
"""
import time

T_RES = 50e-6
T_CRIT = 2.7e-3


def _best_rate(f, n, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return n / best


class AnalysisKernels:
    """CH82 at 0.1 uM, 8 sweeps, one class per state (every transition is a dwell)."""
    params = [[100_000, 1_000_000]]
    param_names = ["n_events"]
    timeout = 300

    def setup(self, n_events):
        import numpy as np

        import ketacore as kc
        from ketacore import _analysis
        from ketacore import analysis as ka
        self.A = _analysis
        g = kc.models.get("ch82")
        T = n_events / 22.3 / 8            # ~22.3 transitions/s at 0.1 uM
        log = kc.simulate_events(g, kc.Protocol([kc.Step(T, agonist=0.1e-6)]), n_trials=8, rng=2024)
        self.times = np.concatenate(log.times)
        self.states = np.concatenate(log.states)
        lens = np.array([len(t) for t in log.times])
        self.ev_off = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
        self.t_ends = np.full(len(log), log.t_end)
        self.sc = np.arange(5, dtype=np.int64)
        self.is_open = np.array([1, 1, 0, 0, 0], np.uint8)
        r = ka.Record.from_events(log, list(self.sc))
        # one class per state, each at its own level, so that every class is observable and
        # every transition a dwell boundary (resolution compares levels since 2026-11-28)
        self.rec = ka.Record(r.start, r.duration, r.cls, r.offsets, np.arange(1.0, 6.0) * 1e-12,
                             open_classes=[0, 1])
        # the kernel takes each class's observation key since 2026-11-28; None for older builds
        key = getattr(self.rec, "_observation_key", None)
        self.key = None if key is None else key()
        self.none = np.zeros(5, np.uint8)
        self.n_ev = int(self.times.size)
        self.n_dw = int(self.rec.n_dwells)

    # -- kernels
    def _extract(self):
        self.A.dwell_sequence_multi(self.times, self.states, self.sc, self.ev_off, self.t_ends)

    def _periods(self):
        r = self.rec
        self.A.periods(r.start, r.duration, r.cls, r.offsets, self.is_open, False, False)

    def _resolve(self):
        r = self.rec
        if self.key is None:
            self.A.impose_resolution(r.start, r.duration, r.cls, r.offsets, T_RES)
        else:
            self.A.impose_resolution(r.start, r.duration, r.cls, r.offsets, self.key, T_RES)

    def _bursts(self):
        r = self.rec
        self.A.bursts(r.start, r.duration, r.cls, r.offsets, self.is_open, self.none, T_CRIT)

    def time_extraction(self, n_events):
        self._extract()

    def time_open_periods(self, n_events):
        self._periods()

    def time_resolution(self, n_events):
        self._resolve()

    def time_bursts(self, n_events):
        self._bursts()

    def time_record_pipeline(self, n_events):
        """Public API end to end: resolve, open/shut times, bursts."""
        r = self.rec.resolve(T_RES)
        r.open_times()
        r.shut_times()
        r.bursts(T_CRIT)

    # -- throughput
    def track_extraction_events_per_second(self, n_events):
        return _best_rate(self._extract, self.n_ev)

    def track_resolution_events_per_second(self, n_events):
        return _best_rate(self._resolve, self.n_dw)

    def track_bursts_events_per_second(self, n_events):
        return _best_rate(self._bursts, self.n_dw)

    def track_open_periods_events_per_second(self, n_events):
        return _best_rate(self._periods, self.n_dw)

    def track_resolution_speedup_vs_numpy(self, n_events):
        from .bench_analysis import numpy_resolve
        r = self.rec
        sweeps = list(zip(r.offsets[:-1], r.offsets[1:]))

        def base():
            for a, b in sweeps:
                numpy_resolve(r.start[a:b], r.duration[a:b], r.cls[a:b], T_RES)
        return _best_rate(self._resolve, 1.0) / _best_rate(base, 1.0)

    def track_extraction_speedup_vs_numpy(self, n_events):
        from .bench_analysis import numpy_dwells
        offs = list(zip(self.ev_off[:-1], self.ev_off[1:]))

        def base():
            for a, b in offs:
                numpy_dwells(self.times[a:b], self.states[a:b], self.sc, self.t_ends[0])
        return _best_rate(self._extract, 1.0) / _best_rate(base, 1.0)

    for _name in ("extraction", "resolution", "bursts", "open_periods"):
        locals()[f"track_{_name}_events_per_second"].unit = "events/s"
    track_resolution_speedup_vs_numpy.unit = "x"
    track_extraction_speedup_vs_numpy.unit = "x"
    del _name


class MixtureFit:
    """ML fit of a 2-exponential mixture (Cython log-likelihood pass + BFGS), truncated."""
    params = [[10_000, 100_000]]
    param_names = ["n"]

    def setup(self, n):
        import ketacore as kc
        from ketacore import analysis as ka
        self.ka = ka
        x = kc.theory.ExponentialMixture([1e-3, 20e-3], [0.4, 0.6]).sample(n, rng=7)
        self.x = x[x >= 1e-4]

    def time_fit_mixture(self, n):
        self.ka.fit_mixture(self.x, 2, t_res=1e-4)


class MixtureFit4:
    """ML fit of 4 exponentials (the default starts: lower-order ladder, insertions, wide and
    quantile starts) to 20 000 durations above t_res = 50 us drawn from a mixture shaped like
    erreger2005_2a's resolved shut times (0.3 ms, 4 ms, 36 ms, 1.1 s)."""

    def setup(self):
        import ketacore as kc
        from ketacore import analysis as ka
        self.ka = ka
        mix = kc.theory.ExponentialMixture([3e-4, 4.1e-3, 3.7e-2, 1.1], [0.55, 0.3, 0.1, 0.05])
        x = mix.sample(40_000, rng=3)
        self.x = x[x >= 5e-5][:20_000]

    def time_fit_mixture_4(self):
        self.ka.fit_mixture(self.x, 4, t_res=5e-5)
