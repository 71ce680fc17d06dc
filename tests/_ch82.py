"""The CH82 Q matrix (Colquhoun & Hawkes 1982, Phil Trans R Soc B 300:1) built from its rate
constants, shared by the theory tests (an oracle independent of ketacore.models)."""
import numpy as np


def ch82_q(c: float, two_kstar_m2: float = 2.0 / 3.0) -> np.ndarray:
    """CH82 Q (s^-1) built from its rate constants at agonist concentration c (M); states AR*,
    A2R*, AR, A2R, R.  two_kstar_m2 = 0.66667 (SCALCS' value) breaks microscopic reversibility
    by 5e-6, which sends ketacore down its non-reversible HJC paths."""
    beta1, beta2, alpha1, alpha2 = 15.0, 15000.0, 3000.0, 500.0
    km1, two_km2 = 2000.0, 4000.0
    two_kp1, kp2, kstar_p2 = 1e8, 5e8, 5e8  # M^-1 s^-1
    Q = np.zeros((5, 5))
    AO, A2O, AR, A2R, R = range(5)
    Q[AO, A2O] = kstar_p2 * c
    Q[AO, AR] = alpha1
    Q[A2O, AO] = two_kstar_m2
    Q[A2O, A2R] = alpha2
    Q[AR, AO] = beta1
    Q[AR, A2R] = kp2 * c
    Q[AR, R] = km1
    Q[A2R, A2O] = beta2
    Q[A2R, AR] = two_km2
    Q[R, AR] = two_kp1 * c
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q
