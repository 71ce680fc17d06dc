# cython: language_level=3
"""Cython kernels for single-channel record processing (private; see ``ketacore.analysis``).

All kernels take contiguous numpy arrays that the public Python layer has already validated
(shapes, dtypes, ranges, monotone times) and run their loops without the GIL.  They never raise
for bad input: that is the job of ``ketacore.analysis``.

A *record* here is a flat sequence of dwells ``(start, duration, cls)`` split into sweeps by
``offsets`` (``offsets[s] .. offsets[s+1]`` are the dwells of sweep ``s``).  Per-class flags
(``is_open``, ``is_between``) are uint8 arrays indexed by class.
"""
import numpy as np
cimport numpy as cnp

cnp.import_array()

cdef object _trim(object a, Py_ssize_t m):
    """First m entries: a view when it keeps most of the buffer, else a compact copy."""
    if 4 * m >= 3 * a.shape[0]:
        return a[:m]
    return a[:m].copy()


ctypedef fused index_t:
    cnp.int32_t
    cnp.int64_t


def dwell_sequence(const double[::1] times, const cnp.int64_t[::1] states,
                   const cnp.int64_t[::1] state_class, double t_end):
    """Collapse a state sequence into dwells in conductance classes (one sweep).

    Parameters
    ----------
    times : float64 array, shape (n,)
        Entry time (s) of each record, non-decreasing; ``times[0]`` is the start of the record.
    states : int64 array, shape (n,)
        State index entered at ``times[i]``.
    state_class : int64 array, shape (n_states,)
        Class of every state (e.g. 0 = shut, 1 = open, 2 = sublevel).
    t_end : float
        End of the record (s), ``>= times[-1]``; the last dwell is cut there.

    Returns
    -------
    start, duration : float64 arrays, shape (m,)
        Start time (s) and length (s) of each dwell; consecutive records in the same class
        are merged into one dwell.  Zero-length dwells are dropped.
    cls : int64 array, shape (m,)
        Class of each dwell.
    """
    n = times.shape[0]
    ev_off = np.array([0, n], dtype=np.int64)
    t_ends = np.array([t_end], dtype=np.float64)
    start, dur, cls, off = dwell_sequence_multi(times, states, state_class, ev_off, t_ends)
    return start, dur, cls


def dwell_sequence_multi(const double[::1] times, const index_t[::1] states,
                         const cnp.int64_t[::1] state_class, const cnp.int64_t[::1] ev_offsets,
                         const double[::1] t_ends):
    """Dwell sequences of several sweeps at once.

    ``times[ev_offsets[s]:ev_offsets[s+1]]`` / ``states[...]`` are the entry times (s) and
    states of sweep ``s`` (its first entry is the sweep start); ``t_ends[s]`` its end (s).
    Consecutive entries in the same class merge; zero-length dwells are dropped (a zero-length
    dwell between two dwells of one class lets them merge).

    Returns ``start, duration, cls, offsets`` with ``offsets`` (n_sweeps + 1) into the dwells.
    """
    cdef Py_ssize_t n = times.shape[0]
    cdef Py_ssize_t n_sw = t_ends.shape[0]
    cdef Py_ssize_t s, i, lo, hi, m = 0
    cdef cnp.int64_t c, cur
    cdef double t0, tt
    start_a = np.empty(n, dtype=np.float64)
    dur_a = np.empty(n, dtype=np.float64)
    cls_a = np.empty(n, dtype=np.int64)
    off_a = np.zeros(n_sw + 1, dtype=np.int64)
    cdef double[::1] start = start_a
    cdef double[::1] dur = dur_a
    cdef cnp.int64_t[::1] cls = cls_a
    cdef cnp.int64_t[::1] off = off_a
    with nogil:
        for s in range(n_sw):
            lo = ev_offsets[s]
            hi = ev_offsets[s + 1]
            if hi > lo:
                cur = state_class[states[lo]]
                t0 = times[lo]
                for i in range(lo + 1, hi):
                    c = state_class[states[i]]
                    if c != cur:
                        tt = times[i]
                        if tt > t0:
                            start[m] = t0
                            dur[m] = tt - t0
                            cls[m] = cur
                            m += 1
                            t0 = tt
                        elif m > off[s] and cls[m - 1] == c:
                            # zero-length dwell: reopen the previous dwell of class c
                            m -= 1
                            t0 = start[m]
                        cur = c
                if t_ends[s] > t0:
                    start[m] = t0
                    dur[m] = t_ends[s] - t0
                    cls[m] = cur
                    m += 1
            off[s + 1] = m
    return _trim(start_a, m), _trim(dur_a, m), _trim(cls_a, m), off_a


def impose_resolution(const double[::1] start, const double[::1] dur,
                      const cnp.int64_t[::1] cls, const cnp.int64_t[::1] offsets,
                      const cnp.int64_t[::1] key, double t_res):
    """Impose a dead time ``t_res`` (s) on every sweep.

    Rule (Colquhoun & Sigworth 1995; HJCFIT/EKDIST), applied to *observed dwells*: maximal
    runs of consecutive dwells whose classes share an observation key (``key[cls]``: classes
    of equal level are indistinguishable to a detector, e.g. two shut classes).  Within a
    sweep the first run is kept as it is (its start is the sweep start); each later run
    whose total duration is ``< t_res`` is unresolved and its dwells' durations are added,
    one by one, to the current (last kept) dwell; a resolved run (total ``>= t_res``) with
    the key of the current run is appended to it, and any other resolved run starts a new
    run.  A run's dwells keep their classes (a dwell that follows one of the same class is
    merged into it), so consecutive output dwells are in different classes.  With one class
    per key (e.g. open/shut) every run is one dwell and this is the dwell-by-dwell rule.
    Total time per sweep is preserved exactly up to floating-point summation order
    (durations are summed left to right).
    """
    cdef Py_ssize_t n_sw = offsets.shape[0] - 1
    cdef Py_ssize_t n = dur.shape[0]
    cdef Py_ssize_t s, i, j, q, lo, hi, m = 0
    out_start_a = np.empty(n, dtype=np.float64)
    out_dur_a = np.empty(n, dtype=np.float64)
    out_cls_a = np.empty(n, dtype=np.int64)
    off_a = np.zeros(n_sw + 1, dtype=np.int64)
    cdef double[::1] os = out_start_a
    cdef double[::1] od = out_dur_a
    cdef cnp.int64_t[::1] oc = out_cls_a
    cdef cnp.int64_t[::1] off = off_a
    cdef double run, cur_d, d
    cdef cnp.int64_t k, cur_k, cur_c
    cdef Py_ssize_t nk = key.shape[0], a, b
    cdef bint distinct = True
    for a in range(nk):
        for b in range(a + 1, nk):
            if key[a] == key[b]:
                distinct = False
    if distinct:
        # every class its own key (e.g. open/shut): each run is one dwell -- the dwell-by-dwell
        # loop, same results
        with nogil:
            for s in range(n_sw):
                lo = offsets[s]
                hi = offsets[s + 1]
                if hi > lo:
                    os[m] = start[lo]
                    cur_d = dur[lo]
                    cur_c = cls[lo]
                    for i in range(lo + 1, hi):
                        d = dur[i]
                        if d < t_res or cls[i] == cur_c:
                            cur_d = cur_d + d
                        else:
                            od[m] = cur_d
                            oc[m] = cur_c
                            m += 1
                            os[m] = start[i]
                            cur_d = d
                            cur_c = cls[i]
                    od[m] = cur_d
                    oc[m] = cur_c
                    m += 1
                off[s + 1] = m
        return _trim(out_start_a, m), _trim(out_dur_a, m), _trim(out_cls_a, m), off_a
    with nogil:
        for s in range(n_sw):
            lo = offsets[s]
            hi = offsets[s + 1]
            i = lo
            cur_k = -1
            while i < hi:
                k = key[cls[i]]
                run = dur[i]
                j = i + 1
                while j < hi and key[cls[j]] == k:
                    run = run + dur[j]
                    j += 1
                if i > lo and run < t_res:
                    for q in range(i, j):
                        od[m - 1] = od[m - 1] + dur[q]
                else:
                    for q in range(i, j):
                        if i > lo and k == cur_k and cls[q] == oc[m - 1]:
                            od[m - 1] = od[m - 1] + dur[q]
                        else:
                            os[m] = start[q]
                            od[m] = dur[q]
                            oc[m] = cls[q]
                            m += 1
                    cur_k = k
                i = j
            off[s + 1] = m
    return _trim(out_start_a, m), _trim(out_dur_a, m), _trim(out_cls_a, m), off_a


def sum_runs(const double[::1] dur, const cnp.int64_t[::1] first):
    """Sum of ``dur[first[r]:first[r + 1]]`` (the last run to the end), left to right."""
    cdef Py_ssize_t r, q, nr = first.shape[0], n = dur.shape[0], hi
    out_a = np.empty(nr, dtype=np.float64)
    cdef double[::1] out = out_a
    cdef double acc
    with nogil:
        for r in range(nr):
            hi = first[r + 1] if r + 1 < nr else n
            acc = dur[first[r]]
            for q in range(first[r] + 1, hi):
                acc = acc + dur[q]
            out[r] = acc
    return out_a


def periods(const double[::1] start, const double[::1] dur, const cnp.int64_t[::1] cls,
            const cnp.int64_t[::1] offsets, const cnp.uint8_t[::1] select,
            bint include_first, bint include_last):
    """Maximal runs of dwells whose class is selected (``select[cls] != 0``), per sweep.

    Returns ``start, duration, sweep`` of every run, dropping the run that contains the first
    dwell of a sweep (left-censored) unless ``include_first`` and the run that contains the
    last dwell (right-censored) unless ``include_last``.
    """
    cdef Py_ssize_t n_sw = offsets.shape[0] - 1
    cdef Py_ssize_t n = dur.shape[0]
    cdef Py_ssize_t s, i, lo, hi, m = 0
    out_start_a = np.empty(n, dtype=np.float64)
    out_dur_a = np.empty(n, dtype=np.float64)
    sw_a = np.empty(n, dtype=np.int64)
    cdef double[::1] os = out_start_a
    cdef double[::1] od = out_dur_a
    cdef cnp.int64_t[::1] sw = sw_a
    cdef bint inside, first
    cdef double t0, acc
    with nogil:
        for s in range(n_sw):
            lo = offsets[s]
            hi = offsets[s + 1]
            inside = False
            first = False
            acc = 0.0
            t0 = 0.0
            for i in range(lo, hi):
                if select[cls[i]]:
                    if not inside:
                        inside = True
                        first = (i == lo)
                        t0 = start[i]
                        acc = dur[i]
                    else:
                        acc = acc + dur[i]
                elif inside:
                    inside = False
                    if include_first or not first:
                        os[m] = t0
                        od[m] = acc
                        sw[m] = s
                        m += 1
            if inside and include_last and (include_first or not first):
                os[m] = t0
                od[m] = acc
                sw[m] = s
                m += 1
    return _trim(out_start_a, m), _trim(out_dur_a, m), _trim(sw_a, m)


def bursts(const double[::1] start, const double[::1] dur, const cnp.int64_t[::1] cls,
           const cnp.int64_t[::1] offsets, const cnp.uint8_t[::1] is_open,
           const cnp.uint8_t[::1] is_between, double t_crit):
    """Split every sweep into bursts of openings.

    An *opening* is a maximal run of open dwells, a *shut period* a maximal run of shut dwells.
    A shut period separates bursts when its length is ``> t_crit`` (s) or it contains a dwell of
    a class flagged in ``is_between``; otherwise it is a gap within a burst.

    A burst is *complete* when it is preceded by a separating shut period (which may be the
    censored first period of the sweep, if already separating) and followed by one (which may
    be the censored last period, if already separating).

    Returns
    -------
    b_start, b_length, b_open, b_shut : float64 (n_bursts,)
        Start (s), length from first opening start to last opening end (s), total open time (s),
        total within-burst shut time (s).
    b_nopen : int64 (n_bursts,)
        Openings per burst.
    b_complete : uint8 (n_bursts,)
    b_sweep : int64 (n_bursts,)
    gaps : float64 (n_gaps,), gap_burst : int64 (n_gaps,)
        Every within-burst gap (s) and the index of its burst.
    """
    cdef Py_ssize_t n_sw = offsets.shape[0] - 1
    cdef Py_ssize_t n = dur.shape[0]
    cdef Py_ssize_t s, i, lo, hi, nb = 0, ng = 0
    cap = n + 1                      # a burst holds >= 1 dwell (sweeps of one opening)
    bs_a = np.empty(cap, dtype=np.float64)
    bl_a = np.empty(cap, dtype=np.float64)
    bo_a = np.empty(cap, dtype=np.float64)
    bsh_a = np.empty(cap, dtype=np.float64)
    bn_a = np.empty(cap, dtype=np.int64)
    bc_a = np.empty(cap, dtype=np.uint8)
    bw_a = np.empty(cap, dtype=np.int64)
    g_a = np.empty(n + 1, dtype=np.float64)
    gb_a = np.empty(n + 1, dtype=np.int64)
    cdef double[::1] bs = bs_a
    cdef double[::1] bl = bl_a
    cdef double[::1] bo = bo_a
    cdef double[::1] bsh = bsh_a
    cdef cnp.int64_t[::1] bn = bn_a
    cdef cnp.uint8_t[::1] bc = bc_a
    cdef cnp.int64_t[::1] bw = bw_a
    cdef double[::1] g = g_a
    cdef cnp.int64_t[::1] gb = gb_a
    # state of the scan within one sweep
    cdef bint in_burst, prev_sep, in_shut, shut_between, o
    cdef double shut_len, open_end, d
    with nogil:
        for s in range(n_sw):
            lo = offsets[s]
            hi = offsets[s + 1]
            in_burst = False
            prev_sep = False       # has a separating shut period been seen just before?
            in_shut = False
            shut_between = False
            shut_len = 0.0
            open_end = 0.0
            i = lo
            while i < hi:
                o = is_open[cls[i]] != 0
                d = dur[i]
                if not o:
                    if not in_shut:
                        in_shut = True
                        shut_len = 0.0
                        shut_between = False
                    shut_len = shut_len + d
                    if is_between[cls[i]]:
                        shut_between = True
                    i += 1
                    continue
                # an open dwell: first close the preceding shut period, if any
                if in_shut:
                    in_shut = False
                    if shut_len > t_crit or shut_between:
                        if in_burst:
                            nb += 1          # burst ends here; its start flag stands
                            in_burst = False
                        prev_sep = True
                    elif in_burst:
                        g[ng] = shut_len
                        gb[ng] = nb
                        ng += 1
                        bsh[nb] = bsh[nb] + shut_len
                    else:
                        prev_sep = False
                # the opening: a maximal run of open dwells from i
                if not in_burst:
                    in_burst = True
                    bs[nb] = start[i]
                    bo[nb] = 0.0
                    bsh[nb] = 0.0
                    bn[nb] = 0
                    bw[nb] = s
                    # complete start needs a separating shut period before this opening
                    # (never true for an opening that is the first period of the sweep)
                    bc[nb] = 1 if prev_sep else 0
                while i < hi and is_open[cls[i]] != 0:
                    bo[nb] = bo[nb] + dur[i]
                    open_end = start[i] + dur[i]
                    i += 1
                bn[nb] += 1
                bl[nb] = open_end - bs[nb]
                if i >= hi:
                    # record ends during an opening: right-censored
                    bc[nb] = 0
                    nb += 1
                    in_burst = False
            # end of sweep while in a shut period
            if in_burst:
                if in_shut and (shut_len > t_crit or shut_between):
                    nb += 1          # keeps its start flag: the end is known
                else:
                    bc[nb] = 0       # unknown whether the burst continued
                    nb += 1
                in_burst = False
    return (_trim(bs_a, nb), _trim(bl_a, nb), _trim(bo_a, nb), _trim(bsh_a, nb),
            _trim(bn_a, nb), _trim(bc_a, nb).view(np.bool_), _trim(bw_a, nb),
            _trim(g_a, ng), _trim(gb_a, ng))


def first_entry(const double[::1] start, const double[::1] dur, const cnp.int64_t[::1] cls,
                const cnp.int64_t[::1] offsets, const cnp.uint8_t[::1] target, double t0):
    """Per sweep, the time (s) from ``t0`` to the first entry into a target class.

    0 when the sweep is already in a target class at ``t0``; NaN when the target is never
    entered before the end of the sweep.
    """
    cdef Py_ssize_t n_sw = offsets.shape[0] - 1
    cdef Py_ssize_t s, i, lo, hi
    out_a = np.full(n_sw, np.nan)
    cdef double[::1] out = out_a
    with nogil:
        for s in range(n_sw):
            lo = offsets[s]
            hi = offsets[s + 1]
            for i in range(lo, hi):
                if start[i] + dur[i] <= t0:
                    continue
                if target[cls[i]]:
                    out[s] = start[i] - t0 if start[i] > t0 else 0.0
                    break
    return out_a


from libc.math cimport exp, log


def mixture_loglik(const double[::1] t, const double[::1] taus, const double[::1] areas):
    """Sum over durations of ``log f(t)`` for ``f = sum_i (a_i/tau_i) exp(-t/tau_i)``, and its
    gradient with respect to ``tau_i`` and (unconstrained) ``a_i``.

    One pass over the data with a per-point log-sum-exp; used by ``fit_mixture`` (the
    truncation term ``-n log S(t_res)`` is added in Python).  Requires ``areas > 0``.

    Returns ``(loglik, g_tau, g_area)``.
    """
    cdef Py_ssize_t n = t.shape[0]
    cdef Py_ssize_t k = taus.shape[0]
    cdef Py_ssize_t j, i
    la_a = np.empty(k)
    inv_a = np.empty(k)
    z_a = np.empty(k)
    gt_a = np.zeros(k)
    ga_a = np.zeros(k)
    cdef double[::1] la = la_a
    cdef double[::1] inv = inv_a
    cdef double[::1] z = z_a
    cdef double[::1] gt = gt_a
    cdef double[::1] ga = ga_a
    cdef double zmax, ssum, w, tj, ll = 0.0
    for i in range(k):
        la[i] = log(areas[i]) - log(taus[i])
        inv[i] = 1.0 / taus[i]
    with nogil:
        for j in range(n):
            tj = t[j]
            zmax = -1e308
            for i in range(k):
                z[i] = la[i] - tj * inv[i]
                if z[i] > zmax:
                    zmax = z[i]
            ssum = 0.0
            for i in range(k):
                z[i] = exp(z[i] - zmax)
                ssum = ssum + z[i]
            ll = ll + zmax + log(ssum)
            for i in range(k):
                w = z[i] / ssum
                gt[i] = gt[i] + w * (tj * inv[i] - 1.0) * inv[i]
                ga[i] = ga[i] + w
    for i in range(k):
        ga[i] = ga[i] / areas[i]
    return ll, gt_a, ga_a
