"""Goodness of fit of integer draws to a binomial, shared by tests/test_rng.py and
tests/test_binomial_cfn.py."""
from __future__ import annotations

import numpy as np
from scipy import stats


def chisquare_binom(x, n, p):
    """Chi-square goodness of fit of integer draws x to Binomial(n, p), bins with >= 20 expected;
    returns the p-value.  Above n = 2^53 with n p^2 < 1e-12 the reference is Poisson(n p) (scipy's
    binomial quantiles fail there); Le Cam's bound puts its total-variation distance from the
    binomial below n p^2, far below what 2e5 draws can resolve."""
    ref = stats.poisson(n * p) if n > 2**53 and n * p * p < 1e-12 else stats.binom(n, p)
    lo, hi = ref.ppf([1e-7, 1 - 1e-7]).astype(np.int64)
    edges = np.unique(np.linspace(lo, hi + 1, min(60, hi - lo + 2)).astype(np.int64))
    cdf = ref.cdf(edges - 1)
    probs = np.diff(np.concatenate(([0.0], cdf[1:-1], [1.0])))  # first/last bins absorb tails
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(probs) - 1)
    obs = np.bincount(idx, minlength=len(probs))
    exp = probs * len(x)
    keep = exp >= 20
    obs = np.append(obs[keep], obs[~keep].sum())
    exp = np.append(exp[keep], exp[~keep].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue
