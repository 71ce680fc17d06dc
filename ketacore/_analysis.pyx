# cython: language_level=3
"""Cython kernels for single-channel record processing (private; see ``ketacore.analysis``).

All kernels take contiguous numpy arrays that the public Python layer has already validated
and run without the GIL.
"""
import numpy as np
cimport numpy as cnp

cnp.import_array()


def dwell_sequence(const double[::1] times, const cnp.int64_t[::1] states,
                   const cnp.int64_t[::1] state_class, double t_end):
    """Collapse a state sequence into dwells in conductance classes.

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
    cdef Py_ssize_t n = times.shape[0]
    cdef Py_ssize_t i, m = 0
    cdef cnp.int64_t c, cur
    start_a = np.empty(n, dtype=np.float64)
    dur_a = np.empty(n, dtype=np.float64)
    cls_a = np.empty(n, dtype=np.int64)
    cdef double[::1] start = start_a
    cdef double[::1] dur = dur_a
    cdef cnp.int64_t[::1] cls = cls_a
    cdef double t0
    if n == 0:
        return start_a[:0], dur_a[:0], cls_a[:0]
    with nogil:
        cur = state_class[states[0]]
        t0 = times[0]
        for i in range(1, n):
            c = state_class[states[i]]
            if c != cur:
                if times[i] > t0:
                    start[m] = t0
                    dur[m] = times[i] - t0
                    cls[m] = cur
                    m += 1
                cur = c
                t0 = times[i]
        if t_end > t0:
            start[m] = t0
            dur[m] = t_end - t0
            cls[m] = cur
            m += 1
    return start_a[:m], dur_a[:m], cls_a[:m]
