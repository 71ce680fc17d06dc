"""asv: exact master equation (kc.solve) against a numpy/scipy eigendecomposition baseline.

Issue-2 target: a 1000-point trajectory of a 6-state scheme over one segment in <= 20 us per
call, with <= 10 us of Python overhead (``time_solve`` minus ``time_core``).
"""
import numpy as np

import ketacore as kc
from ketacore.units import mM, ms, s


from ._models import CONDITIONS, MODELS, bench6 as benchmark_scheme


def eig_baseline(Q, p0, times):
    """numpy reference: p(t) = p0 V diag(exp(lambda t)) V^-1 (one eigendecomposition per call)."""
    lam, V = np.linalg.eig(Q.T)
    Vinv = np.linalg.inv(V)
    c = Vinv @ p0
    return (V @ (c[:, None] * np.exp(np.outer(lam, times)))).real.T


class MasterEquation:
    params = [[1000, 10000]]
    param_names = ["n_samples"]

    def setup(self, n):
        self.g = benchmark_scheme()
        self.dt = 1 * s / n
        self.p = kc.Protocol([kc.Step(1 * s, glutamate=1 * mM)])
        self.p0 = np.eye(6)[0]
        kc.solve(self.g, self.p, self.dt, initial=self.p0)  # warm caches
        self.c = self.g._compiled()
        self.args = self.p.compile(self.g)
        self.Q = self.g.q_matrix(glutamate=1 * mM)
        self.times = np.arange(n + 1) * self.dt

    def time_solve(self, n):
        kc.solve(self.g, self.p, self.dt, initial=self.p0)

    def time_core(self, n):
        kc._core.solve_master(self.c, *self.args, self.dt, n + 1, self.p0)

    def time_numpy_eig_baseline(self, n):
        eig_baseline(self.Q, self.p0, self.times)

    def track_samples_per_second(self, n):
        import timeit
        t = min(timeit.repeat(lambda: kc.solve(self.g, self.p, self.dt, initial=self.p0),
                              number=20, repeat=5)) / 20
        return (n + 1) / t

    track_samples_per_second.unit = "samples/s"


class PulseTrain:
    """Master equation over 100 pulses with boundaries off the grid (partial steps)."""

    def setup(self):
        self.g = benchmark_scheme()
        self.p = kc.pulse_train(100, 10.0, 1.3 * ms, during={"glutamate": 1 * mM})

    def time_pulse_train_10k_samples(self):
        kc.solve(self.g, self.p, 1 * ms, initial="C0")


class MasterEquationModels:
    """1000-point trajectory per model: 6-state benchmark, composed NMDA+ketamine+Mg (17 states),
    CH82."""
    params = [list(MODELS)]
    param_names = ["model"]

    def setup(self, model):
        self.g = MODELS[model]()
        self.p = kc.Protocol([kc.Step(1 * s, **CONDITIONS[model])])
        self.p0 = np.full(self.g.n_states, 1.0 / self.g.n_states)
        kc.solve(self.g, self.p, 1 * ms, initial=self.p0)

    def time_solve_1000(self, model):
        kc.solve(self.g, self.p, 1 * ms, initial=self.p0)

    def peakmem_solve_1e6_samples(self, model):
        kc.solve(self.g, self.p, 1e-6, initial=self.p0)
