"""Shared test oracle: the truncated exponential-mixture log-likelihood in plain numpy."""
import math

import numpy as np


def truncated_mixture_loglik(t, taus, areas, t_res):
    """Log-likelihood of durations ``t`` (s) under a mixture of exponentials (``taus`` in s,
    ``areas`` summing to 1) observed only above ``t_res`` (s): the independent transcription
    (log-sum-exp) the fit tests compare ``kc.analysis.fit_mixture`` against."""
    taus, areas = np.asarray(taus, float), np.asarray(areas, float)
    with np.errstate(divide="ignore"):
        la = np.log(areas)
    lf = la[None, :] - np.log(taus)[None, :] - t[:, None] / taus[None, :]
    m = lf.max(axis=1, keepdims=True)
    ll = float(np.sum(m[:, 0] + np.log(np.exp(lf - m).sum(axis=1))))
    ls = la - t_res / taus
    ms = ls.max()
    return ll - t.size * (ms + math.log(np.exp(ls - ms).sum()))
