"""Small dense Q-matrix helpers shared by solve, simulate and theory (numpy only)."""
from __future__ import annotations

import numpy as np


def equilibrium_from_q(Q: np.ndarray) -> np.ndarray:
    """Equilibrium occupancy p∞ (p∞ Q = 0, Σ p∞ = 1) of an irreducible generator.

    Uses p∞ = u (S Sᵀ)⁻¹ with S = [Q | u] (Colquhoun & Hawkes 1995, "A Q-matrix cookbook",
    in Single-Channel Recording 2nd ed., doi:10.1007/978-1-4419-1229-9_20).

    Raises
    ------
    ValueError
        If the equilibrium is not unique (reducible chain, e.g. absorbing states or a
        ligand-free condition that disconnects the scheme).
    """
    Q = np.asarray(Q, dtype=float)
    k = Q.shape[0]
    S = np.hstack([Q, np.ones((k, 1))])
    SS = S @ S.T
    try:
        p = np.linalg.solve(SS.T, np.ones(k))
    except np.linalg.LinAlgError:
        raise ValueError("the equilibrium is not unique under these conditions (the chain is "
                         "reducible: some states cannot be reached or left)") from None
    resid = np.abs(p @ Q).max() if k else 0.0
    scale = np.abs(Q).max() if k else 1.0
    if not np.all(np.isfinite(p)) or resid > 1e-6 * max(scale, 1e-300) or np.any(p < -1e-9):
        raise ValueError("the equilibrium is not unique under these conditions (the chain is "
                         "reducible: some states cannot be reached or left)")
    p = np.clip(p, 0.0, None)
    return p / p.sum()
