"""Calibrate the ketamine, memantine and MK-801 blockers of ``ketacore.blockers``.

Deterministic (exact master equation via ``kc.solve``, equilibrium by ``ketacore.theory``,
``scipy.optimize``); run from the repository root::

    python docs/calibrate_blockers.py            # fit and print the figures
    python docs/calibrate_blockers.py --write     # also rewrite the CALIBRATED block of
                                                 # ketacore/blockers.py

Choices (documented in the blocker notes):

* Gating model ``erreger2005_2a``: GluN1/GluN2A, the receptor of Gilling et al. 2009 (the only
  source with IC50 *and* kinetics at a stated voltage), room temperature (22 C).  The
  equilibrium IC50 of a full-trapping blocker with copied gating equals K_B whatever the gating
  model; only the kinetics depend on it, through the open probability.
* −70 mV, 1 mM glutamate (saturating; the agonist concentration of Gilling's protocol is not
  in the reference material), no Mg2+, glycine saturating (implicit in the model).
* Macroscopic time constants are single-exponential fits (scipy.optimize.curve_fit) to the
  open probability after a concentration step, as in Gilling 2009.
* Trapping protocol (Mealing 1999): control at equilibrium with agonist; 30 s agonist + 10 uM
  blocker; 120 s with neither.  block = 1 − Po(end of co-application)/Po(control); trapped =
  blocked occupancy after the wash / blocked occupancy at the end of co-application.
* Residuals are scaled by the literature tolerance (reference section 8): log-ratio / log(1+tol)
  for IC50 and time constants, difference / 5 pp for fractions.

Targets that cannot all be met are reported, not hidden: the ketamine Mealing block (80 % at
10 uM) implies IC50 ≈ 2.5 uM under IC50 = K_B, incompatible with Gilling's 0.71 uM; it is left
out of the ketamine fit and its miss is printed.
"""
from __future__ import annotations

import argparse
import math
import pathlib
import re
import sys

import numpy as np
from scipy import optimize

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ketacore as kc  # noqa: E402
from ketacore import theory  # noqa: E402
from ketacore.units import FARADAY, GAS_CONSTANT, mM, mV, s, uM  # noqa: E402

GATING = "erreger2005_2a"
V_CAL = -70 * mV
GLU = 1 * mM


def vt(T: float) -> float:
    return GAS_CONSTANT * T / FARADAY


def at_zero_volts(b: kc.blockers.Blocker, kon_v: float, koff_v: float, T: float, V: float = V_CAL):
    """Open-channel rates at V -> the 0 V values stored in a Blocker (Woodhull, RT/F at T)."""
    kon0 = kon_v * math.exp(b.z * b.delta_on * V / vt(T))
    koff0 = koff_v * math.exp(-b.z * b.delta_off * V / vt(T))
    return kon0, koff0


def blocked_mask(scheme, b) -> np.ndarray:
    return np.array([("·" + b.name) in st for st in scheme.states])


def po_eq(scheme, **cond) -> float:
    Q = scheme.q_matrix(**cond)
    p = theory.equilibrium(Q)
    return float(p[scheme.open_mask].sum())


def ic50(scheme, b, V=V_CAL, glu=GLU) -> float:
    """Equilibrium IC50 (M) of the current at V and glutamate concentration."""
    p0 = po_eq(scheme, V=V, glutamate=glu)

    def f(logc):
        return po_eq(scheme, V=V, glutamate=glu, **{b.ligand: 10.0 ** logc}) / p0 - 0.5

    return 10.0 ** optimize.brentq(f, -12, -1, xtol=1e-12)


def single_exp_tau(t, y) -> float:
    def model(t, a, tau, c):
        return a * np.exp(-t / tau) + c
    guess_tau = t[np.argmin(np.abs(y - (y[0] + y[-1]) / 2))] / math.log(2) or t[-1] / 5
    popt, _ = optimize.curve_fit(model, t, y, p0=(y[0] - y[-1], guess_tau, y[-1]), maxfev=20000)
    return float(popt[1])


def tau_on(scheme, b, conc=10 * uM, dur=8 * s, dt=5e-3) -> float:
    prot = kc.Protocol([kc.Step(dur, V=V_CAL, glutamate=GLU, **{b.ligand: conc})])
    r = kc.solve(scheme, prot, dt=dt, initial={"V": V_CAL, "glutamate": GLU})
    return single_exp_tau(r.time, r.open_probability)


def tau_off(scheme, b, conc=10 * uM, dur=40 * s, dt=20e-3) -> float:
    prot = kc.Protocol([kc.Step(dur, V=V_CAL, glutamate=GLU)])
    r = kc.solve(scheme, prot, dt=dt,
                 initial={"V": V_CAL, "glutamate": GLU, b.ligand: conc})
    return single_exp_tau(r.time, r.open_probability)


def mealing(scheme, b, conc=10 * uM, co=30 * s, wash=120 * s) -> tuple[float, float]:
    """(block fraction after co-application, trapped fraction after the wash)."""
    prot = kc.Protocol([kc.Step(co, V=V_CAL, glutamate=GLU, **{b.ligand: conc}),
                        kc.Step(wash, V=V_CAL)])
    r = kc.solve(scheme, prot, dt=1.0, initial={"V": V_CAL, "glutamate": GLU})
    p_ctl = po_eq(scheme, V=V_CAL, glutamate=GLU)
    i_co = int(round(co / 1.0))
    blk = blocked_mask(scheme, b)
    block = 1 - r.open_probability[i_co] / p_ctl
    trapped = r.occupancy[-1, blk].sum() / r.occupancy[i_co, blk].sum()
    return float(block), float(trapped)


def remaining_after_reapplication(scheme, b, conc=10 * uM, co=30 * s, wash=120 * s,
                                  reapply=50 * s) -> float:
    """Blocked occupancy left after ``reapply`` of agonist, relative to the end of the wash
    (Mealing 1999: block fully relieved within 50 s of NMDA re-application)."""
    prot = kc.Protocol([kc.Step(co, V=V_CAL, glutamate=GLU, **{b.ligand: conc}),
                        kc.Step(wash, V=V_CAL), kc.Step(reapply, V=V_CAL, glutamate=GLU)])
    r = kc.solve(scheme, prot, dt=1.0, initial={"V": V_CAL, "glutamate": GLU})
    blk = blocked_mask(scheme, b)
    i_w = int(round((co + wash) / 1.0))
    return float(r.occupancy[-1, blk].sum() / r.occupancy[i_w, blk].sum())


def trapped_after(scheme, b, wash, conc=10 * uM, co=30 * s, deep_only=False) -> float:
    prot = kc.Protocol([kc.Step(co, V=V_CAL, glutamate=GLU, **{b.ligand: conc}),
                        kc.Step(wash, V=V_CAL)])
    dt = wash / 100
    r = kc.solve(scheme, prot, dt=dt, initial={"V": V_CAL, "glutamate": GLU})
    blk = blocked_mask(scheme, b)
    i_co = int(round(co / dt))
    return float(r.occupancy[-1, blk].sum() / r.occupancy[i_co, blk].sum())


# --------------------------------------------------------------------------- ketamine
KET_TARGETS = dict(ic50=0.71 * uM, tau_on=0.58, tau_off=4.5, trapped=0.86, block=0.80)


def ketamine_blocker(x, base):
    kon_v, koff_v, kesc = np.exp(x)
    kon0, koff0 = at_zero_volts(base, kon_v, koff_v, kc.models.get(GATING).temperature)
    return base.replace(k_on=kon0, k_off=koff0, k_escape=kesc)


def ketamine_figures(b, gating=GATING) -> dict:
    s_ = kc.block(kc.models.get(gating), b)
    blk, trp = mealing(s_, b)
    return dict(ic50=ic50(s_, b), tau_on=tau_on(s_, b), tau_off=tau_off(s_, b), trapped=trp,
                block=blk, remaining_50s=remaining_after_reapplication(s_, b))


def fit_ketamine():
    base = kc.blockers.get("ketamine")
    tol = dict(ic50=0.3, tau_on=0.4, tau_off=0.4)

    def resid(x):
        f = ketamine_figures(ketamine_blocker(x, base))
        r = [math.log(f[k] / KET_TARGETS[k]) / math.log(1 + tol[k]) for k in tol]
        r.append((f["trapped"] - KET_TARGETS["trapped"]) / 0.05)
        return r

    # start from Po-corrected Gilling macroscopic rates
    s0 = kc.models.get(GATING)
    po = po_eq(s0, V=V_CAL, glutamate=GLU)
    x0 = np.log([1.5e5 / po, 0.22 / po, 1.3e-3])
    sol = optimize.least_squares(resid, x0, x_scale=1.0, diff_step=1e-4, xtol=1e-10,
                                 ftol=1e-10)
    b = ketamine_blocker(sol.x, base)
    return b, ketamine_figures(b)


# --------------------------------------------------------------------------- memantine
MEM_TARGETS = dict(ic50=1.0 * uM, tau_off=1 / 0.53, untrapped_short=1 / 6, trapped=0.71,
                   block=0.81)
SHORT_WASH = 5 * s


def memantine_blocker(x, base):
    kon_v, koff_v, ks, kesc = np.exp(x)
    kon0, koff0 = at_zero_volts(base, kon_v, koff_v, kc.models.get(GATING).temperature)
    return base.replace(k_on=kon0, k_off=koff0, superficial_k_on=base.superficial_k_off / ks,
                        k_escape=kesc)


def memantine_figures(b, gating=GATING) -> dict:
    s_ = kc.block(kc.models.get(gating), b)
    blk, trp = mealing(s_, b)
    return dict(ic50=ic50(s_, b), tau_off=tau_off(s_, b), block=blk, trapped=trp,
                untrapped_short=1 - trapped_after(s_, b, SHORT_WASH))


def fit_memantine():
    base = kc.blockers.get("memantine").replace(superficial_k_off=1 / 0.79)

    def resid(x):
        f = memantine_figures(memantine_blocker(x, base))
        return [math.log(f["ic50"] / MEM_TARGETS["ic50"]) / math.log(1.3),
                math.log(f["tau_off"] / MEM_TARGETS["tau_off"]) / math.log(1.4),
                (f["untrapped_short"] - MEM_TARGETS["untrapped_short"]) / 0.05,
                (f["trapped"] - MEM_TARGETS["trapped"]) / 0.05]

    s0 = kc.models.get(GATING)
    po = po_eq(s0, V=V_CAL, glutamate=GLU)
    x0 = np.log([3.2e5 / po, 0.53 / po, 6e-6, 1.3e-3])
    sol = optimize.least_squares(resid, x0, diff_step=1e-4, xtol=1e-10, ftol=1e-10)
    b = memantine_blocker(sol.x, base)
    return b, memantine_figures(b)


# --------------------------------------------------------------------------- MK-801
MK_TAU_REC = 90 * 60.0  # s, Huettner & Bean 1988, -70 to -80 mV, continuous NMDA


def mk801_recovery_tau(b, V=V_CAL, gating=GATING) -> float:
    s_ = kc.block(kc.models.get(gating), b)
    blk = blocked_mask(s_, b)
    # start fully blocked (equilibrium of the blocked arm with agonist), wash blocker, agonist on
    p0 = np.zeros(s_.n_states)
    Q = s_.q_matrix(V=V, glutamate=GLU, **{b.ligand: 1.0})  # saturating blocker
    p0 = theory.equilibrium(Q)
    prot = kc.Protocol([kc.Step(6 * MK_TAU_REC, V=V, glutamate=GLU)])
    r = kc.solve(s_, prot, dt=60.0, initial=p0)
    return single_exp_tau(r.time, r.occupancy[:, blk].sum(axis=1))


def fit_mk801():
    base = kc.blockers.get("mk801")
    T = kc.models.get(GATING).temperature

    def f(logk):
        koff0 = math.exp(logk) * math.exp(-base.z * base.delta_off * V_CAL / vt(T))
        return math.log(mk801_recovery_tau(base.replace(k_off=koff0)) / MK_TAU_REC)

    logk = optimize.brentq(f, math.log(1e-6), math.log(1.0), xtol=1e-10)
    koff0 = math.exp(logk) * math.exp(-base.z * base.delta_off * V_CAL / vt(T))
    b = base.replace(k_off=koff0)
    return b, dict(tau_rec_m70=mk801_recovery_tau(b), tau_rec_p30=mk801_recovery_tau(b, 30 * mV))


# --------------------------------------------------------------------------- main
def _g(x: float) -> str:
    return repr(float(f"{x:.6g}"))


def calibrated_block(ket, mem, mk) -> str:
    return (
        "# BEGIN CALIBRATED\n"
        f"_KET = dict(k_on={_g(ket.k_on)}, k_off={_g(ket.k_off)}, k_escape={_g(ket.k_escape)})\n"
        f"_MEM = dict(k_on={_g(mem.k_on)}, k_off={_g(mem.k_off)}, "
        f"superficial_k_on={_g(mem.superficial_k_on)},\n"
        f"            superficial_k_off={_g(mem.superficial_k_off)}, "
        f"k_escape={_g(mem.k_escape)})\n"
        f"_MK801 = dict(k_on={_g(mk.k_on)}, k_off={_g(mk.k_off)})\n"
        "# END CALIBRATED")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true",
                    help="rewrite the CALIBRATED block of ketacore/blockers.py")
    args = ap.parse_args()

    ket, fk = fit_ketamine()
    print(f"ketamine on {GATING}, -70 mV, 1 mM glutamate (model vs target):")
    print(f"  IC50     {fk['ic50'] / uM:.3f} uM   vs 0.71 uM  ({fk['ic50'] / 0.71e-6 - 1:+.1%})")
    print(f"  tau_on   {fk['tau_on']:.3f} s    vs 0.58 s   ({fk['tau_on'] / 0.58 - 1:+.1%})")
    print(f"  tau_off  {fk['tau_off']:.3f} s    vs 4.5 s    ({fk['tau_off'] / 4.5 - 1:+.1%})")
    print(f"  Mealing block   {fk['block']:.1%} vs 80 %  ({(fk['block'] - 0.80) * 100:+.1f} pp; "
          "not fitted)")
    print(f"  Mealing trapped {fk['trapped']:.1%} vs 86 %  ({(fk['trapped'] - 0.86) * 100:+.1f} pp)")
    print(f"  trapped block left after 50 s agonist re-application {fk['remaining_50s']:.2e} "
          "(Mealing: fully relieved within 50 s)")
    print(f"  K_B(-70 mV) = {ket.kd(V_CAL, kc.models.get(GATING).temperature) / uM:.3f} uM")
    fd = ketamine_figures(ket, "destexhe1994_sf")
    print(f"  same blocker on destexhe1994_sf: IC50 {fd['ic50'] / uM:.3f} uM, tau_on "
          f"{fd['tau_on']:.3f} s, tau_off {fd['tau_off']:.3f} s, block {fd['block']:.1%}, "
          f"trapped {fd['trapped']:.1%}")

    mem, fm = fit_memantine()
    print(f"memantine on {GATING}, -70 mV:")
    print(f"  IC50     {fm['ic50'] / uM:.3f} uM   vs ~1 uM    ({fm['ic50'] / 1e-6 - 1:+.1%})")
    print(f"  tau_off  {fm['tau_off']:.3f} s    vs 1/0.53 s = 1.89 s ({fm['tau_off'] * 0.53 - 1:+.1%})")
    print(f"  untrapped after 5 s wash {fm['untrapped_short']:.1%} vs 1/6 = 16.7 % "
          f"({(fm['untrapped_short'] - 1 / 6) * 100:+.1f} pp)")
    print(f"  Mealing block   {fm['block']:.1%} vs 81 %  ({(fm['block'] - 0.81) * 100:+.1f} pp; "
          "not fitted)")
    print(f"  Mealing trapped {fm['trapped']:.1%} vs 71 %  ({(fm['trapped'] - 0.71) * 100:+.1f} pp)")

    mk, fx = fit_mk801()
    print(f"MK-801 on {GATING}: recovery tau {fx['tau_rec_m70'] / 60:.1f} min at -70 mV "
          f"(target 90), {fx['tau_rec_p30'] / 60:.2f} min at +30 mV (target ~2)")

    text = calibrated_block(ket, mem, mk)
    print("\n" + text)
    if args.write:
        path = ROOT / "ketacore" / "blockers.py"
        src = path.read_text(encoding="utf-8")
        new = re.sub(r"# BEGIN CALIBRATED\n.*?# END CALIBRATED", text, src, flags=re.S)
        path.write_text(new, encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
