"""Statistical validation of the exact stochastic methods against exact theory.

Every test uses a fixed seed and a tolerance derived from the statistics, never tuned to the
seed; each states the probability that a correct engine would fail it.  The references are
exact: master-equation occupancies (kc.solve), binomial/multinomial laws of independent
channels, and Colquhoun-Hawkes dwell-time mixtures (eigen-decomposition of Q_AA computed here
with numpy, cross-checked with ketacore.theory when present).

Why the binomial references are exact: with all channels independent and started from the same
distribution, the number of channels in state j at time t_k, summed over channels and trials,
is Binomial(N * n_trials, p_j(t_k)) with p(t) the master-equation solution -- for ssa and for
the population method (whose multinomial step with expm(Q dt) is exact at the grid points).

The population method draws a step in row order below ``_core.POP_COLUMNS_MIN`` channels and in
column order from it on (tests/test_population_columns.py); "population_columns" below is the
column order forced at the small sizes these tests use, "population_rows" the row order forced
at a large one.
"""
import numpy as np
import pytest
import scipy.linalg
from scipy import stats

import ketacore as kc
from _population_order import COLUMNS, ROWS, population_order
from _stochastic_models import bench_scheme, ch82

_FORCED = {"population_columns": COLUMNS, "population_rows": ROWS}


def simulate(*args, method, **kw):
    """kc.simulate; "population_columns" / "population_rows" run the population method with that
    step order forced."""
    if method not in _FORCED:
        return kc.simulate(*args, method=method, **kw)
    with population_order(_FORCED[method]):
        return kc.simulate(*args, method="population", **kw)

SCH = bench_scheme()
# a glutamate pulse that starts and ends between grid points, then a voltage step
PROT = kc.Protocol([kc.Step(0.0113, V=-0.07), kc.Step(0.0537, V=-0.07, glutamate=1e-3),
                    kc.Step(0.04, V=-0.04)])


def binomial_pvalues(total_counts, n, p):
    """Exact two-sided p-values (2 * min tail, capped at 1) of counts ~ Binomial(n, p)."""
    p = np.clip(p, 0.0, 1.0)
    lo = stats.binom.cdf(total_counts, n, p)
    hi = stats.binom.sf(total_counts - 1, n, p)
    return np.minimum(1.0, 2 * np.minimum(lo, hi))


def assert_means_match_master(res, det, alpha=1e-3):
    """All (sample, state) totals consistent with Binomial(N n, p): Bonferroni over the cells, so
    a correct engine fails with probability < alpha."""
    n = res.n_channels * res.n_trials
    pv = binomial_pvalues(res.sum_counts, n, det.occupancy)
    assert pv.min() > alpha / pv.size, (pv.min(), np.unravel_index(pv.argmin(), pv.shape))


@pytest.mark.parametrize("method", ["ssa", "population", "population_columns"])
@pytest.mark.parametrize("dt", [2e-3, 1.7e-2])
def test_means_match_master_equation_any_dt(method, dt):
    """Non-equilibrium start (all C0), segment boundaries off the grid; the population method is
    exact at the grid points for any dt (here up to 17 ms, where P = expm(Q dt) is far from
    I + Q dt).  Failure probability < 1e-3 each."""
    det = kc.solve(SCH, PROT, dt=dt, initial="C0")
    res = simulate(SCH, PROT, dt=dt, n_channels=100, n_trials=200, method=method, rng=101,
                   record="summary", initial="C0")
    assert_means_match_master(res, det)


@pytest.mark.filterwarnings("ignore::ketacore.UnitsWarning")  # toy scheme at 1 M concentrations
@pytest.mark.parametrize("method", ["ssa", "population", "population_rows"])  # N = 1e6: columns by default
@pytest.mark.parametrize("dt", [0.25, 1.0])
def test_short_segment_between_samples_acts(method, dt):
    """A 50 ns pulse (rate 1e7/s during it) halfway between samples 0.25 or 1 s apart: the open
    count at 1 s is Binomial(N, p) with p from the closed form (0.2387).  The population method
    used to drop segments shorter than the 1e-7 dt snapping tolerance (count 0 at dt = 1 s).
    Exact two-sided binomial test; a correct engine fails with probability 1e-4."""
    sch = kc.Scheme(["C", "O"], [("C", "O", kc.rate(1e7, "glu")), ("O", "C", 1.0)],
                    conductance={"O": 1e-12}, ligands=["glu"])
    prot = kc.Protocol([kc.Step(0.5), kc.Step(5e-8, glu=1.0), kc.Step(0.5 - 5e-8)])
    p = 0.238651225002602345543049667562  # mpmath closed form, 30 digits
    n = 10**6 if method.startswith("population") else 20000
    res = simulate(sch, prot, dt=dt, n_channels=n, method=method, rng=7, initial="C")
    assert binomial_pvalues(res.counts[0, -1, 1], n, p) > 1e-4


@pytest.mark.parametrize("method", ["ssa", "population", "population_columns"])
def test_count_distribution_is_exactly_binomial(method):
    """At fixed times the open count of N channels is Binomial(N, p_O(t)) exactly: chi-square
    over 3000 trials at two times.  Failure probability 1e-4 per time (p-value threshold)."""
    N = 20
    det = kc.solve(SCH, PROT, dt=5e-3, initial="C0")
    res = simulate(SCH, PROT, dt=5e-3, n_channels=N, n_trials=3000, method=method, rng=202,
                   initial="C0")
    jO = SCH.index("O")
    for k in (6, 16):  # 30 ms (during glutamate) and 80 ms (after)
        x = res.counts[:, k, jO]
        p = det.occupancy[k, jO]
        probs = stats.binom.pmf(np.arange(N + 1), N, p)
        obs = np.bincount(x, minlength=N + 1).astype(float)
        exp = probs * x.size
        keep = exp >= 10
        obs = np.append(obs[keep], obs[~keep].sum())
        exp = np.append(exp[keep], exp[~keep].sum())
        if exp[-1] < 1e-12:
            obs, exp = obs[:-1], exp[:-1]
        assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-4


@pytest.mark.parametrize("pop", ["population", "population_columns"])
def test_ssa_and_population_agree_in_distribution(pop):
    """Two-sample chi-square (contingency) of the open-count histograms at one time, ssa vs
    population (either step order), 4000 trials each; failure probability 1e-4."""
    kw = dict(dt=5e-3, n_channels=30, n_trials=4000, initial="C0")
    a = kc.simulate(SCH, PROT, method="ssa", rng=303, **kw).counts[:, 8, SCH.index("O")]
    b = simulate(SCH, PROT, method=pop, rng=304, **kw).counts[:, 8, SCH.index("O")]
    table = np.array([np.bincount(a, minlength=31), np.bincount(b, minlength=31)])
    table = table[:, table.sum(0) > 0]
    # merge sparse columns so every expected cell is >= 5
    cols, acc = [], np.zeros(2)
    for c in table.T:
        acc = acc + c
        if acc.sum() >= 20:
            cols.append(acc)
            acc = np.zeros(2)
    if acc.sum():
        cols[-1] = cols[-1] + acc
    assert stats.chi2_contingency(np.array(cols).T).pvalue > 1e-4


def _var_of_sample_variance(N, p, n):
    """Variance of the unbiased sample variance of n Binomial(N, p) draws."""
    q = 1 - p
    s2 = N * p * q
    mu4 = N * p * q * (1 + 3 * (N - 2) * p * q)
    return mu4 / n - s2**2 * (n - 3) / (n * (n - 1))


@pytest.mark.parametrize("method", ["ssa", "population", "population_columns"])
def test_equilibrium_binomial_variance(method):
    """At equilibrium the open count has variance N Po (1 - Po).  21 samples 1 s apart (slowest
    relaxation ~0.1 s, so effectively independent), 500 trials each; the mean of the 21 sample
    variances is tested at 4.5 sigma (two-sided failure probability 7e-6)."""
    N, n = 200, 500
    prot = kc.Step(20.0, glutamate=1e-3)
    res = simulate(SCH, prot, dt=1.0, n_channels=N, n_trials=n, method=method, rng=404, record="summary")
    po = kc.theory.equilibrium(SCH, glutamate=1e-3)[SCH.index("O")] if hasattr(kc, "theory") else None
    po_solve = kc.solve(SCH, prot, dt=1.0).occupancy[-1, SCH.index("O")]
    if po is not None:
        assert abs(po - po_solve) < 1e-9
    v = res.var[:, SCH.index("O")]
    sd = np.sqrt(_var_of_sample_variance(N, po_solve, n) / v.size)
    assert abs(v.mean() - N * po_solve * (1 - po_solve)) < 4.5 * sd
    # means too (exact binomial, Bonferroni over cells; failure probability < 1e-3)
    det = kc.solve(SCH, prot, dt=1.0)
    assert_means_match_master(res, det)


# ---------------------------------------------------------------- dwell times (CH82)
def ch_mixture_cdf(Q, open_mask):
    """Colquhoun & Hawkes (1982) open- and shut-time CDFs at equilibrium from Q, via numpy eig:
    f_A(t) = phi_A expm(Q_AA t)(-Q_AA) u_A, phi_A = p_F Q_FA / (p_F Q_FA u_A)."""
    K = Q.shape[0]
    # equilibrium p Q = 0, sum p = 1
    S = np.hstack([Q, np.ones((K, 1))])
    p = np.linalg.solve(S @ S.T, np.ones(K))

    def make(A):
        F = ~A
        QAA, QFA = Q[np.ix_(A, A)], Q[np.ix_(F, A)]
        phi = p[F] @ QFA
        phi = phi / phi.sum()
        lam, V = np.linalg.eig(-QAA)
        lam, V = lam.real, V.real
        # survival R(t) = phi expm(QAA t) u = sum_k w_k exp(-lam_k t)
        w = (phi @ V) * np.linalg.solve(V, np.ones(A.sum()))
        return lambda t: 1.0 - np.exp(-np.outer(np.atleast_1d(t), lam)) @ w, lam, w

    return make(open_mask), make(~open_mask)


def test_ch_mixture_helper_against_expm():
    Q = ch82().q_matrix(A=1e-7)
    (cdf_o, lam, w), _ = ch_mixture_cdf(Q, ch82().open_mask)
    A = ch82().open_mask
    F = ~A
    S = np.hstack([Q, np.ones((5, 1))])
    p = np.linalg.solve(S @ S.T, np.ones(5))
    phi = p[F] @ Q[np.ix_(F, A)]
    phi /= phi.sum()
    for t in (1e-4, 1e-3, 5e-3):
        ref = 1 - phi @ scipy.linalg.expm(Q[np.ix_(A, A)] * t) @ np.ones(A.sum())
        assert abs(cdf_o(t)[0] - ref) < 1e-12
    if hasattr(kc.theory, "dwell_times"):
        m = kc.theory.dwell_times(ch82(), "open", A=1e-7)
        assert abs(m.mean - float(w @ (1 / lam))) < 1e-12 * m.mean


def _ch82_dwells(n_trials, duration, seed):
    sch = ch82()
    log = kc.simulate_events(sch, kc.Step(duration, A=1e-7), n_trials=n_trials, rng=seed)
    o = np.concatenate([log.open_dwells(i) for i in range(len(log))])
    s = np.concatenate([log.shut_dwells(i) for i in range(len(log))])
    return sch, o, s


def test_ssa_dwell_times_match_colquhoun_hawkes_ch82():
    """CH82 at 0.1 uM: open times (2-exponential mixture) and shut times (3 components spanning
    50 us to 3.8 s) of ssa event logs vs the exact mixtures, KS test; failure probability 1e-3
    per distribution.  ~3500 openings."""
    sch, o, s = _ch82_dwells(20, 200.0, 505)
    (cdf_o, _, _), (cdf_s, _, _) = ch_mixture_cdf(sch.q_matrix(A=1e-7), sch.open_mask)
    assert o.size > 2000 and s.size > 2000
    assert stats.kstest(o, lambda t: cdf_o(t)).pvalue > 1e-3
    assert stats.kstest(s, lambda t: cdf_s(t)).pvalue > 1e-3


@pytest.mark.slow
def test_ssa_dwell_times_ch82_large_sample():
    """As above with ~2e5 openings (KS resolution ~0.004); failure probability 1e-3 each."""
    sch, o, s = _ch82_dwells(200, 1000.0, 606)
    (cdf_o, _, _), (cdf_s, _, _) = ch_mixture_cdf(sch.q_matrix(A=1e-7), sch.open_mask)
    assert o.size > 150_000
    assert stats.kstest(o, lambda t: cdf_o(t)).pvalue > 1e-3
    assert stats.kstest(s, lambda t: cdf_s(t)).pvalue > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ssa", "population", "population_columns"])
def test_means_match_master_equation_large(method):
    """1e6 channel-trials per cell (resolution ~5e-4 in occupancy); failure probability < 1e-3."""
    det = kc.solve(SCH, PROT, dt=1e-3, initial="C0")
    res = simulate(SCH, PROT, dt=1e-3, n_channels=1000, n_trials=1000, method=method, rng=707,
                   record="summary", initial="C0")
    assert_means_match_master(res, det)


@pytest.mark.slow
def test_population_huge_n_equilibrium_variance():
    """N = 1e9 at equilibrium: the open count's variance across 400 trials is N Po(1-Po) within
    4.5 sigma of the sample-variance distribution (failure probability 7e-6)."""
    N, n = 10**9, 400
    prot = kc.Step(10.0, glutamate=1e-3)
    res = simulate(SCH, prot, dt=1.0, n_channels=N, n_trials=n, method="population", rng=808,
                   record="summary")
    po = kc.solve(SCH, prot, dt=1.0).occupancy[-1, SCH.index("O")]
    v = res.var[:, SCH.index("O")]
    sd = np.sqrt(_var_of_sample_variance(N, po, n) / v.size)
    assert abs(v.mean() - N * po * (1 - po)) < 4.5 * sd


def test_ssa_jump_chain_and_dwells_independent():
    """The ssa draws the next state from the top 9 bits of a stream word and the following dwell
    from its low 55 bits.  Check the consequence on the bench model at 1 mM glutamate (state C2
    has three exits): from every state, the next state follows rate/total (chi-square); the
    standardised dwell E = dwell * exit rate after entering each state is Exp(1) (KS) and
    independent of where the channel came from (chi-square contingency, E in quartiles).
    Each of the 12 tests (3 jump-chain chi-square, 6 KS, 3 contingency) has level 1e-4, so a
    correct engine fails with probability < 1.2e-3."""
    sch = bench_scheme()
    Q = sch.q_matrix(glutamate=1e-3)
    K = Q.shape[0]
    out = -np.diag(Q)
    log = kc.simulate_events(sch, kc.Step(2000.0, glutamate=1e-3), n_trials=4, rng=2027)
    prev, cur, e = [], [], []
    for i in range(len(log)):
        times, states = log[i]
        dw = np.diff(times)                      # complete dwells in states[1:-1]
        prev.append(states[:-2])
        cur.append(states[1:-1])
        e.append(dw[1:] * out[states[1:-1]])
    prev, cur, e = map(np.concatenate, (prev, cur, e))
    assert cur.size > 300_000
    for s in range(K):
        # jump chain out of s
        nxt = cur[prev == s]
        exits = np.flatnonzero((Q[s] > 0) & (np.arange(K) != s))
        if exits.size > 1:
            obs = np.array([(nxt == j).sum() for j in exits])
            exp = Q[s, exits] / out[s] * nxt.size
            assert stats.chisquare(obs, exp).pvalue > 1e-4, (s, obs, exp)
        # dwell law in s and its independence of the previous state
        es = e[cur == s]
        assert stats.kstest(es, "expon").pvalue > 1e-4, s
        came = prev[cur == s]
        sources = [j for j in range(K) if (came == j).sum() > 200]
        if len(sources) > 1:
            q = np.digitize(es, np.log([4 / 3, 2, 4]))   # Exp(1) quartiles
            table = np.array([[((came == j) & (q == b)).sum() for b in range(4)] for j in sources])
            assert stats.chi2_contingency(table).pvalue > 1e-4, (s, table)


# ------------------------------------------------------- joint laws (beyond the marginals)
def _propagator(prot, t_a, t_b):
    """Exact transition matrix of one channel from t_a to t_b under `prot`: the product of
    expm(Q_c tau) over the pieces of the steps between the two times (scipy, independent of the
    engine's own plan)."""
    T = np.eye(SCH.n_states)
    start = 0.0
    for st in prot.steps:
        end = start + st.duration
        lo, hi = max(start, t_a), min(end, t_b)
        if hi > lo:
            T = T @ scipy.linalg.expm(SCH.q_matrix(V=st.V, **st.concentrations) * (hi - lo))
        start = end
    return T


def _chisquare_pooled(obs, exp, min_expected=5.0):
    """Chi-square p-value of observed vs expected cell counts, cells expected below
    `min_expected` pooled into one."""
    obs, exp = np.asarray(obs, float).ravel(), np.asarray(exp, float).ravel()
    keep = exp >= min_expected
    o = np.append(obs[keep], obs[~keep].sum())
    e = np.append(exp[keep], exp[~keep].sum())
    if e[-1] < min_expected:  # too little pooled mass for its own cell: fold it into the largest
        big = int(np.argmax(e[:-1]))
        o[big] += o[-1]
        e[big] += e[-1]
        o, e = o[:-1], e[:-1]
    return stats.chisquare(o, e * o.sum() / e.sum()).pvalue


@pytest.mark.parametrize("method", ["ssa", "population", "population_columns"])
def test_count_vector_is_exactly_multinomial(method):
    """The whole count vector of N = 3 channels at one time is Multinomial(3, p(t)) -- a test of
    the joint law over states (a step that got each state's marginal right but correlated the
    states wrongly would fail), on all 56 outcomes over 20000 trials, at a time during the
    glutamate pulse and one after it.  Failure probability 1e-4 per time."""
    N, n_trials, dt = 3, 20000, 5e-3
    res = simulate(SCH, PROT, dt=dt, n_channels=N, n_trials=n_trials, method=method, rng=505, initial="C0")
    K = SCH.n_states
    outcomes = [c for c in np.ndindex(*(N + 1,) * K) if sum(c) == N]
    index = {c: i for i, c in enumerate(outcomes)}
    for k in (8, 18):  # 40 ms (glutamate on), 90 ms (off, -40 mV)
        p = _propagator(PROT, 0.0, k * dt)[SCH.index("C0")]
        obs = np.zeros(len(outcomes))
        for row in res.counts[:, k, :]:
            obs[index[tuple(int(x) for x in row)]] += 1
        exp = n_trials * np.array([stats.multinomial.pmf(c, N, p) for c in outcomes])
        assert _chisquare_pooled(obs, exp) > 1e-4


@pytest.mark.parametrize("method", ["ssa", "population", "population_columns"])
@pytest.mark.parametrize("dt,k1,k2", [(5e-3, 6, 14), (1.7e-2, 1, 5)])
def test_two_time_joint_law_of_one_channel(method, dt, k1, k2):
    """Markov structure across samples: for one channel, P(state s at t1, state s' at t2) =
    p_s(t1) T_ss'(t1, t2) with T the exact propagator over the pieces between the two times (the
    interval contains a segment boundary between grid points; with dt = 17 ms the first grid
    interval contains one too).  36 cells over 20000 trials; failure probability 1e-4."""
    n_trials = 20000
    res = simulate(SCH, PROT, dt=dt, n_channels=1, n_trials=n_trials, method=method, rng=606, initial="C0")
    s1 = res.counts[:, k1, :].argmax(axis=1)
    s2 = res.counts[:, k2, :].argmax(axis=1)
    K = SCH.n_states
    obs = np.bincount(s1 * K + s2, minlength=K * K)
    p1 = _propagator(PROT, 0.0, k1 * dt)[SCH.index("C0")]
    exp = n_trials * p1[:, None] * _propagator(PROT, k1 * dt, k2 * dt)
    assert _chisquare_pooled(obs, exp) > 1e-4
