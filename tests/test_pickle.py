"""Objects users send to worker processes pickle after use.

A Scheme caches its compiled C++ form on first use (q_matrix, simulate, solve, theory); that
form cannot be pickled, so before the fix a scheme that had been used once could no longer be
passed to a ProcessPoolExecutor, multiprocessing or dask ("cannot pickle
'ketacore._core.CompiledScheme' object"), and neither could any result holding it."""
import copy
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import ketacore as kc

PROT = kc.Step(0.02, agonist=1e-7)


def _used_scheme():
    s = kc.models.get("ch82")
    s.q_matrix(agonist=1e-7)  # builds the compiled cache
    return s


def test_used_scheme_pickles_and_round_trips():
    s = _used_scheme()
    t = pickle.loads(pickle.dumps(s))
    assert t == s and t.states == s.states
    np.testing.assert_array_equal(t.q_matrix(agonist=1e-6, V=-0.03), s.q_matrix(agonist=1e-6, V=-0.03))
    c = copy.deepcopy(s)
    np.testing.assert_array_equal(c.rates(agonist=1e-6), s.rates(agonist=1e-6))


def test_used_composed_scheme_pickles():
    d = kc.block("erreger2005_2a", "ketamine")
    kc.solve(d, kc.Step(0.01, glutamate=1e-3, ketamine=1e-6), dt=1e-3)
    t = pickle.loads(pickle.dumps(d))
    np.testing.assert_array_equal(t.q_matrix(glutamate=1e-3, ketamine=1e-6),
                                  d.q_matrix(glutamate=1e-3, ketamine=1e-6))


def test_results_holding_a_used_scheme_pickle():
    s = _used_scheme()
    r = kc.simulate(s, PROT, dt=1e-3, n_channels=5, n_trials=2, rng=3)
    r2 = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(r2.counts, r.counts)
    np.testing.assert_array_equal(r2.open_probability, r.open_probability)
    det = kc.solve(s, PROT, dt=1e-3)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(det)).occupancy, det.occupancy)
    log = kc.simulate_events(s, PROT, n_trials=2, rng=3)
    log2 = pickle.loads(pickle.dumps(log))
    for i in range(2):
        np.testing.assert_array_equal(log2[i][0], log[i][0])


def _simulate_in_worker(scheme):
    return kc.simulate(scheme, PROT, dt=1e-3, n_channels=50, rng=9).counts


def test_used_scheme_goes_to_a_worker_process():
    s = _used_scheme()
    with ProcessPoolExecutor(max_workers=1) as ex:
        counts = ex.submit(_simulate_in_worker, s).result(timeout=120)
    np.testing.assert_array_equal(counts, _simulate_in_worker(s))
