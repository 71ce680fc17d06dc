"""Throughput of the single-channel analysis kernels against straightforward numpy versions.

Run::

    python benchmarks/bench_analysis.py [--events 10000000] [--repeat 7]

Builds a CH82 record (0.1 uM agonist) with ``kc.simulate_events`` (about ``--events``
transitions over 8 trials), then times, median of ``--repeat`` runs on one core:

* extraction   -- transitions -> class dwells (``Record.from_events`` kernel)
* periods      -- open-period durations from the dwells
* resolution   -- imposing t_res = 50 us
* bursts       -- bursts from t_crit = 2.7 ms (CH82 shut-time 'total' criterion)

and the same computations written with vectorised numpy (no Python loop per event), checking
both give the same answer.  Prints events/s (input events or dwells per second) and the ratio.
Issue-5 target: >= 1e7 events/s for every kernel.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import ketacore as kc
from ketacore import _analysis
from ketacore import analysis as ka

T_RES = 50e-6
T_CRIT = 2.7e-3


# ---------------------------------------------------------------------------
# numpy baselines (one sweep each, vectorised)
# ---------------------------------------------------------------------------


def numpy_dwells(times, states, state_class, t_end):
    """Class dwells by change detection + reduce: start, duration, class."""
    c = state_class[states]
    head = np.flatnonzero(np.concatenate(([True], c[1:] != c[:-1])))
    ends = np.append(times[head[1:]], t_end)
    start = times[head]
    dur = ends - start
    keep = dur > 0
    return start[keep], dur[keep], c[head][keep]


def numpy_open_periods(dur, cls, is_open):
    o = is_open[cls]
    head = np.flatnonzero(np.concatenate(([True], o[1:] != o[:-1])))
    sums = np.add.reduceat(dur, head)
    sel = o[head]
    sel[0] = sel[-1] = False
    return sums[sel]


def numpy_resolve(start, dur, cls, t_res):
    """Resolution by groups: each unresolved dwell joins the last resolved one; then
    consecutive groups of one class merge (same rule as Record.resolve)."""
    res = dur >= t_res
    res[0] = True
    head = np.flatnonzero(res)
    gdur = np.add.reduceat(dur, head)
    gcls = cls[head]
    gstart = start[head]
    h2 = np.flatnonzero(np.concatenate(([True], gcls[1:] != gcls[:-1])))
    return gstart[h2], np.add.reduceat(gdur, h2), gcls[h2]


def numpy_bursts(dur, cls, is_open, t_crit):
    """Per-burst openings, open time and length (all bursts, censoring ignored)."""
    o = is_open[cls]
    head = np.flatnonzero(np.concatenate(([True], o[1:] != o[:-1])))
    plen = np.add.reduceat(dur, head)
    popen = o[head]
    if not popen[0]:                       # start at the first opening
        plen, popen = plen[1:], popen[1:]
    sep = ~popen & (plen > t_crit)
    bid = np.cumsum(sep)                   # burst index of every period
    inb = ~sep
    nb = int(bid[-1]) + 1
    n_open = np.bincount(bid[popen], minlength=nb)
    open_t = np.bincount(bid[popen], plen[popen], minlength=nb)
    shut_in = np.bincount(bid[inb & ~popen], plen[inb & ~popen], minlength=nb)
    # a trailing shut run inside the last burst is not part of it
    if not popen[-1] and not sep[-1]:
        shut_in[bid[-1]] -= plen[-1]
    keep = n_open > 0
    return n_open[keep], open_t[keep], (open_t + shut_in)[keep]


# ---------------------------------------------------------------------------


def make_record(n_events: int, seed: int = 12345):
    g = kc.models.get("ch82")
    c = 0.1e-6
    rate = 22.3                        # transitions per second at 0.1 uM (measured)
    n_trials = 8
    T = n_events / rate / n_trials
    log = kc.simulate_events(g, kc.Protocol([kc.Step(T, agonist=c)]), n_trials=n_trials, rng=seed)
    return g, log


def median_time(f, repeat):
    """benchmarks/_models.py's median_time (as a script or inside the package)."""
    try:
        from ._models import median_time as shared
    except ImportError:  # a script; PYTHONSAFEPATH=1 leaves the script's folder off sys.path
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _models import median_time as shared
    return shared(f, repeat)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=float, default=1e7)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    g, log = make_record(int(args.events))
    times = np.concatenate(log.times)
    states = np.concatenate(log.states)
    lens = np.array([len(t) for t in log.times])
    ev_off = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
    t_ends = np.full(len(log), log.t_end)
    # one class per state (CH82: AR*, A2R* open): every transition is a dwell boundary, so the
    # dwell-level kernels see ~n_events dwells too
    sc = np.arange(5, dtype=np.int64)
    is_open = np.array([True, True, False, False, False])
    n_ev = int(times.size)

    rec = ka.Record.from_events(log, list(sc))
    # each class at its own level, so that every class is observable and every transition a
    # dwell boundary (Record.resolve compares levels since 2026-11-28)
    rec = ka.Record(rec.start, rec.duration, rec.cls, rec.offsets, np.arange(1.0, 6.0) * 1e-12,
                    open_classes=np.flatnonzero(is_open))
    key = rec._observation_key()
    s_, d_, c_, off = rec.start, rec.duration, rec.cls, rec.offsets
    n_dw = int(d_.size)
    one = slice(0, int(off[1]))                        # numpy baselines run per sweep
    sweeps = [(int(a), int(b)) for a, b in zip(off[:-1], off[1:])]
    evsw = [(int(a), int(b)) for a, b in zip(ev_off[:-1], ev_off[1:])]
    u8 = is_open.astype(np.uint8)
    nob = np.zeros(5, np.uint8)

    # ---- correctness of the baselines against the kernels
    a0, b0 = evsw[0]
    ns, nd, nc = numpy_dwells(times[a0:b0], states[a0:b0], sc, log.t_end)
    assert np.array_equal(nd, d_[one]) and np.array_equal(nc, c_[one])
    op_k = rec.open_times()
    op_n = np.concatenate([numpy_open_periods(d_[a:b], c_[a:b], is_open) for a, b in sweeps])
    np.testing.assert_allclose(op_n, op_k, rtol=1e-12)
    r = rec.resolve(T_RES)
    rs, rd, rc = numpy_resolve(s_[one], d_[one], c_[one], T_RES)
    assert np.array_equal(rc, r.cls[:r.offsets[1]])
    np.testing.assert_allclose(rd, r.duration[:r.offsets[1]], rtol=1e-12)
    b = rec.bursts(T_CRIT, complete_only=False)
    nbn, nbo, nbl = numpy_bursts(d_[one], c_[one], is_open, T_CRIT)
    k1 = b.sweep == 0
    assert np.array_equal(nbn, b.n_openings[k1])
    np.testing.assert_allclose(nbo, b.open_time[k1], rtol=1e-9)
    np.testing.assert_allclose(nbl, b.length[k1], rtol=1e-9)

    # ---- timings (all sweeps in every case)
    cases = {
        "extraction": (n_ev,
                       lambda: _analysis.dwell_sequence_multi(times, states, sc, ev_off, t_ends),
                       lambda: [numpy_dwells(times[a:b], states[a:b], sc, log.t_end)
                                for a, b in evsw]),
        "open periods": (n_dw,
                         lambda: _analysis.periods(s_, d_, c_, off, u8, False, False),
                         lambda: [numpy_open_periods(d_[a:b], c_[a:b], is_open)
                                  for a, b in sweeps]),
        "resolution": (n_dw,
                       lambda: _analysis.impose_resolution(s_, d_, c_, off, key, T_RES),
                       lambda: [numpy_resolve(s_[a:b], d_[a:b], c_[a:b], T_RES)
                                for a, b in sweeps]),
        "bursts": (n_dw,
                   lambda: _analysis.bursts(s_, d_, c_, off, u8, nob, T_CRIT),
                   lambda: [numpy_bursts(d_[a:b], c_[a:b], is_open, T_CRIT) for a, b in sweeps]),
    }
    print(f"CH82 record: {n_ev:,} transitions -> {n_dw:,} state dwells, {len(log)} sweeps; "
          f"median of {args.repeat}")
    print(f"{'kernel':<14}{'input':>14}{'kernel s':>11}{'Mevents/s':>11}{'numpy s':>10}"
          f"{'Mevents/s':>11}{'ratio':>8}")
    for name, (n, fk, fn) in cases.items():
        tk = median_time(fk, args.repeat)
        tn = median_time(fn, args.repeat)
        print(f"{name:<14}{n:>14,}{tk:>11.4f}{n / tk / 1e6:>11.1f}{tn:>10.4f}{n / tn / 1e6:>11.1f}"
              f"{tn / tk:>8.2f}")


if __name__ == "__main__":
    main()
