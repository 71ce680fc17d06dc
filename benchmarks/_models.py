"""Benchmark models shared by the asv modules (fixed definitions; no randomness)."""
import ketacore as kc
from ketacore.units import mM, pS, uM


def bench6():
    """Issue-4 benchmark model: Destexhe 5-state with statistical factors + open blocker."""
    return kc.Scheme(
        ["C0", "C1", "C2", "O", "D", "OB"],
        [("C0", "C1", kc.rate(5e6, "glutamate", factor=2)), ("C1", "C0", 12.9),
         ("C1", "C2", kc.rate(5e6, "glutamate")), ("C2", "C1", kc.rate(12.9, factor=2)),
         ("C2", "O", 46.5), ("O", "C2", 73.8), ("C2", "D", 8.4), ("D", "C2", 6.8),
         ("O", "OB", 50.0), ("OB", "O", 20.0)],
        {"O": 50 * pS}, name="bench6")


def nmda_ket_mg():
    """Composed trapping scheme: Erreger GluN1/2A + ketamine (trapping) + kinetic Mg2+."""
    return kc.block(kc.models.get("erreger2005_2a"), "ketamine", "mg")


def ch82():
    return kc.models.get("ch82")


MODELS = {"bench6": bench6, "nmda+ket+mg": nmda_ket_mg, "ch82": ch82}

# Conditions under which each model is active (channels open and close).
CONDITIONS = {
    "bench6": {"glutamate": 1 * mM},
    "nmda+ket+mg": {"glutamate": 1 * mM, "ketamine": 1 * uM, "mg": 1 * mM},
    "ch82": {"agonist": 1 * uM},
}
