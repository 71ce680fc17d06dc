"""Schemes shared by the stochastic tests, defined here so that the tests depend neither on the
model library nor on benchmarks/ (whose benchmarks/_models.py defines the same issue-4 model for
the benchmarks, with the states in another order)."""
import ketacore as kc


def bench_scheme() -> "kc.Scheme":
    """Issue 4 benchmark model: Destexhe 5-state with statistical factors + open blocker."""
    Rb, Ru, Rd, Rr, Ro, Rc = 5e6, 12.9, 8.4, 6.8, 46.5, 73.8
    return kc.Scheme(
        ["C0", "C1", "C2", "D", "O", "OB"],
        [("C0", "C1", kc.Rate(Rb, ligand="glutamate", factor=2.0)),
         ("C1", "C0", Ru),
         ("C1", "C2", kc.Rate(Rb, ligand="glutamate")),
         ("C2", "C1", kc.Rate(Ru, factor=2.0)),
         ("C2", "O", Ro), ("O", "C2", Rc),
         ("C2", "D", Rd), ("D", "C2", Rr),
         ("O", "OB", 50.0), ("OB", "O", 20.0)],
        conductance={"O": 50e-12}, e_rev=0.0, name="bench-destexhe5-ob")


def ch82(conc: float = 1e-7) -> "kc.Scheme":
    """Colquhoun & Hawkes (1982) mechanism; states AR*, A2R* open (order of the reference Q)."""
    return kc.Scheme(
        ["AR*", "A2R*", "AR", "A2R", "R"],
        [("AR*", "A2R*", kc.Rate(5e8, ligand="A")),   # k*+2 [A]
         ("AR*", "AR", 3000.0),                        # alpha1
         ("A2R*", "AR*", 2.0 / 3.0),                   # 2k*-2
         ("A2R*", "A2R", 500.0),                       # alpha2
         ("AR", "AR*", 15.0),                          # beta1
         ("AR", "A2R", kc.Rate(5e8, ligand="A")),      # k+2 [A]
         ("AR", "R", 2000.0),                          # k-1
         ("A2R", "A2R*", 15000.0),                     # beta2
         ("A2R", "AR", 4000.0),                        # 2k-2
         ("R", "AR", kc.Rate(1e8, ligand="A"))],       # 2k+1 [A]
        conductance={"AR*": 50e-12, "A2R*": 50e-12}, name="CH82")
