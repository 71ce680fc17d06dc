"""asv: exact dwell-time theory, ideal (Colquhoun–Hawkes) and with missed events (HJC).

``ApparentDwellTimes`` builds the HJC apparent open-time distribution of CH82 at 0.1 uM and
t_res = 50 us (asymptotic roots, areas, start vector, exact mean, the exact pieces and their
matrix-exponential cross-check); the baseline in the same run is SCALCS (DCPROGS' Python
library) computing the same roots, areas, start vector, exact mean and exact-piece matrices
(``exact_GAMAxx``) from the same Q -- everything but the cross-check (skipped when scalcs is not
installed).  ``HJCLikelihood`` times the HJC log-likelihood of a resolved CH82 record (bursts
at t_crit = 3.5 ms, CHS vectors) against SCALCS' ``HJClik`` on the same groups and Q in the same
run.  ``ApparentDwellTimes`` also times 20000 draws from the HJC distribution (cdf inversion) and
its exact variance.  ``ComposedScheme`` times the ideal and HJC shut-time distributions of the 24-state
erreger2005_2a + ketamine + Mg2+ scheme.  ``NonReversible`` times the paths that check their
spectral expansion against a matrix exponential (kampa2004, and erreger2005_2a with an
escape-only ketamine and Mg2+: dwell times, first latency, relaxation) and ``is_reversible``.
``Bursts`` times CH82 burst statistics and a blocker with ~1e4 openings per burst.
"""
import numpy as np

import ketacore as kc
from ketacore.units import mM, uM, us

T_RES = 50 * us


def _mechanism(Q, k_a):
    """SCALCS Mechanism stand-in for Q (open states first): benchmarks/_scalcs.py."""
    from ._scalcs import ScalcsMechanism
    return ScalcsMechanism(Q, k_a)


class ApparentDwellTimes:
    def setup(self):
        self.ch82 = kc.models.get("ch82")
        self.Q = self.ch82.q_matrix(agonist=0.1 * uM)
        self.app = kc.theory.apparent_dwell_times(self.ch82, "open", t_res=T_RES, agonist=0.1 * uM)  # warm

    def time_ideal_open_times(self):
        kc.theory.dwell_times(self.ch82, "open", agonist=0.1 * uM)

    def time_apparent_open_times(self):
        kc.theory.apparent_dwell_times(self.ch82, "open", t_res=T_RES, agonist=0.1 * uM)

    def time_apparent_open_times_pdf_1000_points(self):
        d = kc.theory.apparent_dwell_times(self.ch82, "open", t_res=T_RES, agonist=0.1 * uM)
        d.pdf(np.geomspace(T_RES, 1.0, 1000))

    def time_apparent_open_times_sample_20000(self):
        # cdf inversion (Newton with bisection safeguard) of the HJC distribution; the baseline
        # in the same class is the 1000-point pdf above
        self.app.sample(20000, rng=1)

    def time_apparent_open_times_var(self):
        kc.theory.apparent_dwell_times(self.ch82, "open", t_res=T_RES, agonist=0.1 * uM).var

    def time_scalcs_baseline(self):
        try:
            from scalcs import qmatlib as qml
            from scalcs import scalcslib as scl
        except ImportError:  # pragma: no cover - optional peer
            raise NotImplementedError("scalcs not installed")
        Q, kA, kF = self.Q, 2, 3
        QAA, QFF, QAF, QFA = Q[:kA, :kA], Q[kA:, kA:], Q[:kA, kA:], Q[kA:, :kA]
        gaf, gfa = qml.iGs(Q, kA, kF)
        eaf = qml.eGs(gaf, gfa, kA, kF, qml.expQt(QFF, T_RES))
        efa = qml.eGs(gfa, gaf, kF, kA, qml.expQt(QAA, T_RES))
        qml.phiHJC(eaf, efa, kA)
        roots = scl.asymptotic_roots(T_RES, QAA, QFF, QAF, QFA, kA, kF)
        scl.asymptotic_areas(T_RES, roots, QAA, QFF, QAF, QFA, kA, kF, gaf, gfa)
        scl.exact_mean_time(T_RES, QAA, QFF, QAF, kA, kF, gaf, gfa)
        scl.exact_GAMAxx(_mechanism(Q, kA), T_RES, True)


class ComposedScheme:
    """24 states: erreger2005_2a with trapped ketamine and Mg2+ (kc.block)."""

    def setup(self):
        self.s = kc.block(kc.models.get("erreger2005_2a"), "ketamine", "mg")
        self.cond = dict(glutamate=1 * mM, ketamine=1 * uM, mg=1 * mM, V=-0.07)
        kc.theory.dwell_times(self.s, "shut", **self.cond)

    def time_ideal_shut_times(self):
        kc.theory.dwell_times(self.s, "shut", **self.cond)

    def time_apparent_shut_times(self):
        kc.theory.apparent_dwell_times(self.s, "shut", t_res=T_RES, **self.cond)


class MixtureSampling:
    """Drawing 2e4 first latencies of erreger2005_2a at 1 mM glutamate (a mixture with negative
    areas: the rising phase).  ``sample`` uses exact rejection from the positive part; the
    baseline in the same run is the cdf bisection it replaced (``_sample_inversion``, still used
    for complex time constants and low acceptance)."""

    def setup(self):
        self.lat = kc.theory.first_latency(kc.models.get("erreger2005_2a"), glutamate=1 * mM)
        if not np.any(self.lat.areas < 0):  # pragma: no cover - the benchmark's premise
            raise NotImplementedError("no negative area: the rejection path is not exercised")

    def time_sample_rejection(self):
        self.lat.sample(20_000, rng=1)

    def time_sample_bisection_baseline(self):
        self.lat._sample_inversion(20_000, np.random.default_rng(1))


class HJCLikelihood:
    """ln L of a resolved CH82 record (1 uM, 50 us, 2 x 20 s: ~500 bursts at t_crit = 3.5 ms,
    CHS vectors) by ``theory.hjc_loglik``; the same-run baseline is SCALCS' ``HJClik`` (its
    per-interval Python loop) on the same groups and Q (skipped without scalcs)."""

    def setup(self):
        from ketacore import analysis as ka
        self.ch82, self.c, self.t_crit = kc.models.get("ch82"), 1 * uM, 3.5e-3
        log = kc.simulate_events(self.ch82, kc.Step(20.0, agonist=self.c), n_trials=2, rng=1,
                                 initial=kc.theory.equilibrium(self.ch82, agonist=self.c))
        self.groups = ka.Record.from_events(log).resolve(T_RES).hjc_groups(self.t_crit)
        self.Q = self.ch82.q_matrix(agonist=self.c)
        kc.theory.hjc_loglik(self.ch82, self.groups[:2], t_res=T_RES, t_crit=self.t_crit,
                             agonist=self.c)  # warm

    def time_hjc_loglik(self):
        kc.theory.hjc_loglik(self.ch82, self.groups, t_res=T_RES, t_crit=self.t_crit, agonist=self.c)

    def time_hjc_loglik_without_reversibility(self):
        """The same groups, with CH82's alpha2 (A2R* -> A2R) x 1.5 (no microscopic reversibility:
        the root scan of 201 grid points instead of the symmetric root search)."""
        if not hasattr(self, "Q_nr"):
            Q = self.Q.copy()
            Q[1, 3] *= 1.5
            np.fill_diagonal(Q, 0.0)
            np.fill_diagonal(Q, -Q.sum(axis=1))
            self.Q_nr = Q
        kc.theory.hjc_loglik(self.Q_nr, self.groups, t_res=T_RES, t_crit=self.t_crit, open=[0, 1])

    def time_hjc_loglik_100k_intervals(self):
        """The same groups 42 times over (~1e5 intervals): the per-interval cost."""
        if not hasattr(self, "long"):
            self.long = list(self.groups) * 42
        kc.theory.hjc_loglik(self.ch82, self.long, t_res=T_RES, t_crit=self.t_crit, agonist=self.c)

    def time_hjc_loglik_scipy_expm_baseline(self):
        """Baseline: the same call with scipy.linalg.expm for the exact-interval matrix
        exponentials (as before 2026-11-27; its threaded BLAS is what a busy machine slows)."""
        import scipy.linalg
        th = kc.theory
        real = th._expm
        th._expm = scipy.linalg.expm
        try:
            self.time_hjc_loglik()
        finally:
            th._expm = real

    def time_scalcs_hjclik_baseline(self):
        try:
            from scalcs import scalcslib as scl
        except ImportError:  # pragma: no cover - optional peer
            raise NotImplementedError("scalcs not installed")
        mec = _mechanism(self.Q, 2)
        mec.theta_unsqueeze = mec.set_eff = lambda *a: None
        mec.theta = lambda: np.ones(1)
        opts = dict(mec=mec, conc=self.c, tres=T_RES, tcrit=self.t_crit, isCHS=True,
                    data=[list(g) for g in self.groups])
        scl.HJClik(np.zeros(1), opts)


class FitHJC:
    """``fit_hjc`` of two CH82 rates (k-1 and alpha2; MR sets k*-2) to a resolved record at 1 uM
    (3 s, ~250 intervals), and the m = 2 profile likelihood intervals of both."""

    timeout = 300

    def setup(self):
        from ketacore import analysis as ka
        from ketacore import fitting
        self.fitting = fitting
        self.ch82 = kc.models.get("ch82")
        c = 1 * uM
        log = kc.simulate_events(self.ch82, kc.Step(3.0, agonist=c), rng=21,
                                 initial=kc.theory.equilibrium(self.ch82, agonist=c))
        self.data = [(ka.Record.from_events(log).resolve(25e-6).hjc_groups(3.5e-3), {"agonist": c})]
        self.free = ["AR->R", "A2R*->A2R"]
        self.fit = self.fit_once()

    def fit_once(self):
        return self.fitting.fit_hjc(self.ch82, self.data, t_res=25e-6, t_crit=3.5e-3, free=self.free)

    def time_fit_hjc(self):
        self.fit_once()

    def time_likelihood_intervals(self):
        self.fit.likelihood_intervals(m=2.0)


class NonReversible:
    """Theory calls whose spectral expansion is checked against expm (mechanisms out of detailed
    balance), and the Kolmogorov reversibility test."""

    def setup(self):
        self.kampa = kc.models.get("kampa2004")
        self.kcond = dict(glutamate=1 * mM, mg=1 * mM, V=-0.07)
        esc = kc.blockers.get("ketamine").replace(closed_route=None)    # one-way escape
        self.s = kc.block(kc.models.get("erreger2005_2a"), esc, "mg")
        self.cond = dict(glutamate=1 * mM, ketamine=1 * uM, mg=1 * mM, V=-0.07)
        self.ch82 = kc.models.get("ch82")

    def time_dwell_times_kampa(self):
        kc.theory.dwell_times(self.kampa, "shut", **self.kcond)

    def time_relaxation_kampa(self):
        kc.theory.relaxation(self.kampa, initial="U", **self.kcond)

    def time_first_latency_composed(self):
        kc.theory.first_latency(self.s, "open", initial="R", **self.cond)

    def time_dwell_times_composed(self):
        kc.theory.dwell_times(self.s, "shut", **self.cond)

    def time_is_reversible_ch82(self):
        kc.theory.is_reversible(self.ch82)

    def time_is_reversible_kampa(self):
        kc.theory.is_reversible(self.kampa, **self.kcond)


class Bursts:
    """CH82 burst statistics (openings per burst checked against exact matrix powers, length,
    between) for CH82 at 0.1 uM, and for an open-channel blocker C <-> O <-> OB with ~1e4
    openings per burst, where the openings check walks every r to 4096 and then windows at
    each doubling out to r ~ 4e5."""

    def setup(self):
        self.ch82 = kc.models.get("ch82")
        alpha, beta, kon, koff, conc = 400.0, 2000.0, 1e7, 5e3, 0.4
        self.Q = np.array([[-beta, beta, 0.0], [alpha, -(alpha + kon * conc), kon * conc],
                           [0.0, koff, -koff]])

    def time_bursts_ch82(self):
        kc.theory.bursts(self.ch82, ["AR", "A2R"], agonist=0.1 * uM)

    def time_bursts_1e4_openings(self):
        kc.theory.bursts(self.Q, [2], open=[1])


class FitMacroscopic:
    """``fit_macroscopic`` of four destexhe1994_sf rates (opening, closing, desensitisation and
    recovery) and N to two exact 1 ms glutamate pulse responses (0.1 and 1 mM, 100 ms at
    0.25 ms), started 2x off: the least-squares fitter's cost (one kc.solve per record per
    evaluation)."""

    timeout = 300

    def setup(self):
        from ketacore import fitting
        self.fitting = fitting
        g = kc.models.get("destexhe1994_sf")
        self.data = []
        for c in (1e-4, 1e-3):
            prot = kc.Protocol([kc.Step(1e-3, glutamate=c), kc.Step(0.099)], rest=kc.Step(1e-3))
            r = kc.solve(g, prot, dt=2.5e-4)
            self.data.append({"protocol": prot, "time": r.time, "y": 200 * r.current})
        self.free = ["C2->O", "O->C2", "C2->D", "D->C2"]
        by = {f"{t.src}->{t.dst}": t.rate.k0 for t in g.transitions}
        self.start = g.with_rates({k: by[k] * f for k, f in zip(self.free, (2.0, 0.5, 2.0, 0.5))})

    def time_fit_macroscopic(self):
        self.fitting.fit_macroscopic(self.start, self.data, free=self.free)
