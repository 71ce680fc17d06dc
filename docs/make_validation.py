"""Generate docs/validation.md: literature targets (reference section 8) next to ketacore's values.

Run from the repository root::

    python docs/make_validation.py            # writes docs/validation.md
    python docs/make_validation.py --stdout   # print instead

Everything is deterministic (exact master equation and equilibrium theory via
``ketacore.experiments``, ``ketacore.theory``, ``ketacore.solve``) and takes well under a minute.
The page reports misses as misses: a target outside its tolerance is marked "MISS" with the
reason where known.  Literature values and tolerances are those of
``reference/nmda-kinetics.md`` section 8 (shared project reference material); their sources are
cited in the table.
"""
from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ketacore as kc  # noqa: E402
from ketacore import theory  # noqa: E402
from ketacore.units import mM, ms, mV, s, uM, us  # noqa: E402

E = kc.experiments
GATING = "erreger2005_2a"      # the calibration model of the library blockers (GluN1/GluN2A)
V70 = -70 * mV

ROWS: list[dict] = []


def row(group, what, lit, model, diff, tol, ok, source, note=""):
    ROWS.append(dict(group=group, what=what, lit=lit, model=model, diff=diff, tol=tol,
                     verdict=("ok" if ok else "MISS") if ok is not None else "n/a",
                     source=source, note=note))


def rel(model, lit):
    return f"{(model / lit - 1) * 100:+.1f} %"


def pp(model, lit):
    return f"{(model - lit) * 100:+.1f} pp"


# --------------------------------------------------------------------------- Mg2+
MG_VOLTAGES = (-80, -60, -40, -20, 0)          # mV, the range of the Jahr-Stevens comparison
MG_TOL = 0.20                                  # ±20 % relative: project choice (reference §8
#                                                sets no tolerance for kinetic Mg2+ vs B(V))


def mg_unblocked(scheme, V, mg=1 * mM, glutamate=1 * mM, blocked_open="O·mg", gating=None):
    """Exact equilibrium unblocked fractions at 1 mM glutamate (ketacore.theory):

    * open-channel ratio ``O/(O + O·Mg)`` -- open channels not blocked;
    * whole-current ratio ``Po(Mg)/Po(0)`` -- steady-state I(Mg)/I(0) at the same V (same
      conductance and driving force), the macroscopic quantity Jahr & Stevens' B(V) describes.

    ``gating`` is the Mg2+-free scheme for Po(0) (default: ``scheme`` itself at mg = 0)."""
    p = theory.equilibrium(scheme, V=V, glutamate=glutamate, mg=mg)
    o, ob = p[scheme.index("O")], p[scheme.index(blocked_open)]
    po_mg = theory.open_probability(scheme, V=V, glutamate=glutamate, mg=mg)
    po_0 = (theory.open_probability(gating, V=V, glutamate=glutamate) if gating is not None
            else theory.open_probability(scheme, V=V, glutamate=glutamate, mg=0.0))
    return float(o / (o + ob)), float(po_mg / po_0)


def mg_rows():
    table = {-80: 0.0244, -60: 0.0796, -40: 0.2302, -20: 0.5081, 0: 0.7812, 20: 0.9250,
             40: 0.9771}
    vs = np.array(list(table)) * mV
    js = kc.blockers.jahr_stevens(vs, 1 * mM)
    err = float(np.max(np.abs(js - np.array(list(table.values())))))
    row("Mg2+", "Jahr-Stevens B(V) *formula implementation only* (`kc.blockers.jahr_stevens` "
        "vs the tabulated formula), 1 mM Mg2+, -80..+40 mV, max abs. deviation; this does NOT "
        "validate any kinetic Mg2+ block (see the rows below)", "formula (table in reference 2b)",
        f"max abs. dB = {err:.1e}", f"{err:.1e}", "1e-4", err <= 1e-4, "Jahr & Stevens 1990")
    # kinetic Mg2+ (Kampa / Ascher-Nowak open-channel rates, trapping with copied gating) vs
    # Jahr-Stevens B(V) over -80..0 mV: exact steady state, whole-current ratio
    g = kc.models.get(GATING)
    rest = kc.theory.equilibrium(g, V=-60 * mV, glutamate=0.0)
    ctl = kc.solve(g, kc.Protocol([kc.Step(1 * ms, V=-60 * mV, glutamate=1 * mM),
                                   kc.Step(4.0, V=-60 * mV)]), 1e-4, initial=rest).current
    tol = f"±{MG_TOL * 100:.0f} %"
    src = {"mg_kampa2004": "Jahr & Stevens 1990; Kampa 2004",
           "mg_ascher_nowak1988": "Jahr & Stevens 1990; Ascher & Nowak 1988"}
    for name in ("mg_kampa2004", "mg_ascher_nowak1988"):
        b = kc.blockers.get(name)
        s_ = kc.block(g, b)
        # Woodhull e-fold of K_B(V): z(delta_on + delta_off)/V_T, vs Jahr-Stevens 0.062 /mV
        slope = b.z * (b.delta_on + b.delta_off) / (b.thermal_voltage / mV)
        # charge of a synaptic response (1 ms, 1 mM glutamate from rest), with / without Mg2+
        p0 = np.zeros(s_.n_states)
        p0[s_.indices(g.states)] = rest
        cur = kc.solve(s_, kc.Protocol([kc.Step(1 * ms, V=-60 * mV, glutamate=1 * mM, mg=1 * mM),
                                        kc.Step(4.0, V=-60 * mV, mg=1 * mM)]), 1e-4,
                       initial=p0).current
        label = f"`{name}`" + (" (= `\"mg\"`)" if name == "mg_kampa2004" else "")
        for v in MG_VOLTAGES:
            open_r, whole = mg_unblocked(s_, v * mV, gating=g)
            jsv = float(kc.blockers.jahr_stevens(v * mV, 1 * mM))
            note = ""
            if v == MG_VOLTAGES[0]:
                note = (f"exact equilibrium, {GATING}, 1 mM glutamate, trapping block with the "
                        "gating copied (Clarke & Johnson 2008), so the open-channel ratio "
                        "O/(O+O·mg) equals the whole-current ratio at every V; Woodhull "
                        f"e-fold of K_B {slope:.3f} /mV vs Jahr-Stevens 0.062 /mV")
            elif v == -60:
                note = (f"open-channel ratio {open_r:.4f}; charge of a 1 ms glutamate "
                        f"response: {float(cur.sum() / ctl.sum()):.4f}")
            else:
                note = f"open-channel ratio {open_r:.4f}"
            row("Mg2+", f"kinetic {label}, 1 mM Mg2+, {v} mV: steady-state whole-current "
                "unblocked fraction Po(Mg)/Po(0) vs Jahr-Stevens B(V)", f"{jsv:.4f}",
                f"{whole:.4f}", rel(whole, jsv), tol, abs(whole / jsv - 1) <= MG_TOL,
                src[name], note)
    # the kampa2004 model: Mg2+ also binds closed states and changes gating, so the two ratios
    # differ; Jahr-Stevens' macroscopic B(V) corresponds to the whole-current ratio
    km = kc.models.get("kampa2004")
    for v in MG_VOLTAGES:
        open_r, whole = mg_unblocked(km, v * mV, blocked_open="OMg")
        jsv = float(kc.blockers.jahr_stevens(v * mV, 1 * mM))
        note = f"open-channel ratio O/(O+OMg) {open_r:.4f}"
        if v == MG_VOLTAGES[0]:
            note = ("exact equilibrium, 1 mM glutamate, Po(0) = the same model at 0 Mg2+; Mg2+ "
                    "binds closed states and alters gating, so the whole-current ratio is below "
                    "the open-channel ratio; " + note)
        row("Mg2+", f"`kampa2004` model, 1 mM Mg2+, {v} mV: steady-state whole-current "
            "unblocked fraction Po(Mg)/Po(0) vs Jahr-Stevens B(V)", f"{jsv:.4f}", f"{whole:.4f}",
            rel(whole, jsv), tol, abs(whole / jsv - 1) <= MG_TOL,
            "Jahr & Stevens 1990; Kampa 2004", note)


def kampa_rows():
    s_ = kc.models.get("kampa2004")
    pr = kc.Protocol([kc.Step(1 * ms, V=-60 * mV, glutamate=1 * mM, mg=1 * mM),
                      kc.Step(9 * ms, V=-60 * mV, mg=1 * mM)])
    p = kc.solve(s_, pr, dt=1e-5, initial="U").occupancy[-1]
    relx = theory.relaxation(s_.q_matrix(V=40 * mV, mg=1 * mM), initial=p,
                             open=[s_.index("O")])
    taus = np.real(np.asarray(relx.taus))
    amps = np.abs(np.real(np.asarray(relx.popen_amplitudes)))
    slow = float(taus[2:][np.argmax(amps[2:])])
    for lit, mod, label in ((100 * us, taus[0], "fast"), (4 * ms, taus[1], "intermediate"),
                            (300 * ms, slow, "slow (dominant slow Po component)")):
        ok = abs(mod / lit - 1) <= 0.30
        row("Mg2+", f"Kampa 2004 model, Mg2+ unblock after a step to +40 mV: {label} tau",
            f"{lit * 1e3:g} ms", f"{mod * 1e3:.4g} ms", rel(mod, lit), "±30 %", ok,
            "Kampa et al. 2004", "" if ok else
            "a ~304 ms eigenvalue exists but carries almost no Po amplitude")


# --------------------------------------------------------------------------- gating
def erreger_rows():
    for sub, lit in (("2a", 0.50), ("2b", 0.12)):
        s_ = kc.models.get(f"erreger2005_{sub}")
        prot = kc.Protocol([kc.Step(5 * ms, glutamate=1 * mM), kc.Step(30 * ms)])
        peak = float(kc.solve(s_, prot, dt=10e-6, initial="R").open_probability.max())
        row("gating", f"Erreger 2005 GluN{sub.upper()}: peak Po, 1 mM glutamate 5 ms pulse",
            f"{lit:.2f}", f"{peak:.3f}", rel(peak, lit), "±20 %", abs(peak / lit - 1) <= 0.2,
            "Erreger et al. 2005 (abstract)")
    for sub, lit in (("2a", 0.80), ("2b", 0.56)):
        s_ = kc.models.get(f"erreger2005_{sub}")
        p_open = p_opens_at_least_once(s_, 5 * ms)
        row("gating", f"Erreger 2005 GluN{sub.upper()}: P(channel opens at least once), 1 mM "
            "glutamate 5 ms pulse from rest (exact: O absorbing)", f"{lit:.2f}",
            f"{p_open:.3f}", rel(p_open, lit), "±20 %", abs(p_open / lit - 1) <= 0.2,
            "Erreger et al. 2005 (abstract; 3–8 ms pulses)",
            "" if sub == "2a" else "the model's rates are the published set (checked against "
            "three sources), so this is a property of the published model, not a "
            "transcription error")


def p_opens_at_least_once(s_, pulse):
    """Probability that a channel at rest opens at least once after a glutamate pulse: open
    states made absorbing, propagated through the pulse (expm), then the hitting probability of
    the open class in glutamate-free solution (linear solve)."""
    import scipy.linalg
    o = np.asarray(s_.indices(s_.open_states))
    Q1, Q2 = (np.array(s_.q_matrix(glutamate=c)) for c in (1 * mM, 0.0))
    for Q in (Q1, Q2):
        Q[o, :] = 0.0
    p = np.zeros(s_.n_states)
    p[s_.index("R")] = 1.0
    p = p @ scipy.linalg.expm(Q1 * pulse)
    # hitting probability h of the open class under Q2: h = 1 on O, 0 on states with no way
    # out (R without glutamate), Q2 h = 0 elsewhere
    h = np.zeros(s_.n_states)
    h[o] = 1.0
    free = [i for i in range(s_.n_states) if i not in set(o) and Q2[i, i] != 0.0]
    A = Q2[np.ix_(free, free)]
    b = -Q2[np.ix_(free, o)].sum(axis=1)
    h[free] = np.linalg.solve(A, b)
    return float(p @ h)


# --------------------------------------------------------------------------- ketamine
def ketamine_rows():
    g = kc.models.get(GATING)
    ket = kc.blockers.get("ketamine")
    src = "Gilling et al. 2009"
    r = E.ic50(g, ket)
    row("ketamine", "IC50, GluN1/2A, -70 mV, 0 Mg2+ (exact equilibrium)", "0.71 µM",
        f"{r.ic50_exact / uM:.3f} µM", rel(r.ic50_exact, 0.71 * uM), "±30 %",
        abs(r.ic50_exact / (0.71 * uM) - 1) <= 0.3, src)
    row("ketamine", "Hill coefficient nH", "0.84 ± 0.02", f"{r.hill:.3f}",
        f"{r.hill - 0.84:+.2f}", "(none given)", abs(r.hill - 0.84) <= 0.05, src,
        "a single-site open-channel blocker gives nH = 1 at equilibrium; nH < 1 needs "
        "heterogeneity (e.g. receptor subpopulations) not in the model")
    # kinetics as fitted by Gilling: single exponentials, continuous agonist
    k = E.block_kinetics(g, ket, 10 * uM, t_on=8 * s, t_off=40 * s, n_samples=1601)
    big_on = k.theory_taus_on[np.argsort(-np.abs(k.theory_amps_on))][:2]
    row("ketamine", "onset tau at 10 µM (single-exponential fit, 5 ms grid)", "0.58 s",
        f"{k.tau_on:.3f} s", rel(k.tau_on, 0.58), "±40 %", abs(k.tau_on / 0.58 - 1) <= 0.4,
        src, "model onset is multi-exponential (exact Po components of largest amplitude "
        f"{', '.join(f'{t:.3g} s' for t in big_on)}"
        f", of largest area {k.theory_tau_on:.3g} s); the single-exponential tau depends on "
        "sampling and window (calibration used the same 8 s at 5 ms)")
    f_on, t_on = np.asarray(k.fraction_on), np.asarray(k.time_on)
    t_half = float(t_on[np.argmax(f_on <= (1 + f_on[-1]) / 2)])
    lit_half = 0.58 * math.log(2)
    row("ketamine", "onset time course at 10 µM: time to half the final block (Gilling's "
        "single exponential, 0.58 s · ln 2)", f"{lit_half:.2f} s", f"{t_half:.3f} s",
        rel(t_half, lit_half), "±40 %", abs(t_half / lit_half - 1) <= 0.4, src,
        "the single-exponential tau above matches only as a fit: erreger2005_2a holds ~83 % "
        "of receptors in its slow desensitized state D2 at steady state (Po 0.085), so the "
        "active ~17 % are blocked within ~50 ms and the rest only as they leave D2 (~1.4 s). "
        "Gilling's three numbers are also not consistent with one bimolecular step: IC50 "
        "0.71 µM and tau_off 4.5 s imply tau_on ≈ 0.30 s at 10 µM")
    row("ketamine", "offset tau after 10 µM (agonist continues)", "4.5 s",
        f"{k.tau_off:.3f} s", rel(k.tau_off, 4.5), "±40 %", abs(k.tau_off / 4.5 - 1) <= 0.4,
        src, f"exact dominant component {k.theory_tau_off:.3g} s")
    row("ketamine", "macroscopic k_on = (1/tau_on − 1/tau_off)/[B]", "1.5e5 /M/s",
        f"{k.k_on_apparent:.3g} /M/s", rel(k.k_on_apparent, 1.5e5), "±40 %",
        abs(k.k_on_apparent / 1.5e5 - 1) <= 0.4, src)
    row("ketamine", "macroscopic k_off = 1/tau_off", "0.22 /s", f"{k.k_off_apparent:.3f} /s",
        rel(k.k_off_apparent, 0.22), "±40 %", abs(k.k_off_apparent / 0.22 - 1) <= 0.4, src)
    w = E.woodhull(g, ket, np.array([-100, -80, -70, -60, -40]) * mV)
    row("ketamine", "Woodhull delta (z = +1), fitted to IC50(V), -100..-40 mV", "0.79",
        f"{w.z_delta:.3f}", f"{w.z_delta - 0.79:+.3f}", "±0.04 (SE)",
        abs(w.z_delta - 0.79) <= 0.04, src,
        "built in as delta_on = delta_off = 0.395; the slow escape is balanced by its closed "
        "route (closed_route='balanced'), so IC50 = K_B exactly and the fit returns delta")
    tr = E.trapping(g, ket)
    row("ketamine", "Mealing protocol: block after 30 s of 10 µM", "80 ± 2 %",
        f"{tr.block * 100:.1f} %", pp(tr.block, 0.80), "±5 pp", abs(tr.block - 0.80) <= 0.05,
        "Mealing et al. 1999",
        "with IC50 = K_B (trapping), 80 % at 10 µM needs IC50 ≈ 2.5 µM: incompatible with "
        "Gilling's 0.71 µM (different preparation); not fitted")
    row("ketamine", "Mealing: block still trapped after 120 s agonist-free wash (occupancy "
        "definition)", "86 ± 1 %", f"{tr.trapped_occupancy * 100:.1f} %",
        pp(tr.trapped_occupancy, 0.86), "±5 pp", abs(tr.trapped_occupancy - 0.86) <= 0.05,
        "Mealing et al. 1999", "fitted (k_escape); includes release during deactivation")
    row("ketamine", "same, current definition (1 − I_first/I_ctl)/block, each first "
        "re-application response at its own peak", "86 ± 1 %", f"{tr.trapped_current * 100:.1f} %",
        pp(tr.trapped_current, 0.86), "±5 pp", abs(tr.trapped_current - 0.86) <= 0.05,
        "Mealing et al. 1999")
    row("ketamine", "Mealing: block relieved within 50 s of agonist re-application "
        "(blocked occupancy < 5 % of trapped)", "< 50 s", f"{tr.t_recovered:.1f} s "
        f"(tau {tr.tau_recovery:.2f} s)", "", "< 50 s", tr.t_recovered < 50,
        "Mealing et al. 1999")
    # Orser 1997 single channel (needs a closed-channel route the library ketamine lacks)
    s_ = kc.block(g, ket)
    po0 = theory.open_probability(g, V=V70, glutamate=1 * mM)
    mo0 = theory.dwell_times(g, "open", V=V70, glutamate=1 * mM).mean
    for c, lit in ((1 * uM, 0.24), (0.1 * uM, 0.53)):
        po = theory.open_probability(s_, V=V70, glutamate=1 * mM, ketamine=c)
        row("ketamine", f"single channel: Po with {c / uM:g} µM / control", f"{lit:.2f}",
            f"{po / po0:.2f}", rel(po / po0, lit), "±20 %", abs(po / po0 / lit - 1) <= 0.2,
            "Orser et al. 1997 (cell-attached)",
            "model has no fitted closed-channel/membrane route (reference open question 1; only "
            "the slow balanced route that mirrors k_escape); "
            "cell-attached patches on neurons, not GluN1/2A at 1 mM glutamate")
    mo = theory.dwell_times(s_, "open", V=V70, glutamate=1 * mM, ketamine=1 * uM).mean
    row("ketamine", "single channel: mean open time with 1 µM / control", "0.68",
        f"{mo / mo0:.2f}", rel(mo / mo0, 0.68), "±20 %", abs(mo / mo0 / 0.68 - 1) <= 0.2,
        "Orser et al. 1997", "open-channel k_on here is Po-corrected macroscopic, ~100x "
        "below the single-channel estimate (reference 3c)")


# --------------------------------------------------------------------------- memantine
def memantine_rows():
    g = kc.models.get(GATING)
    mem = kc.blockers.get("memantine")
    r = E.ic50(g, mem)
    row("memantine", "IC50, GluN1/2A, -70 mV", "~1 µM", f"{r.ic50_exact / uM:.3f} µM",
        rel(r.ic50_exact, 1 * uM), "±30 %", abs(r.ic50_exact / uM - 1) <= 0.3,
        "Gilling et al. 2009")
    # kinetics at 10 uM, two exponentials as Gilling fitted them; the same measurement as the
    # calibration (docs/calibrate_blockers.py memantine_kinetics)
    import calibrate_blockers as CB
    kin = CB.memantine_kinetics(mem, GATING)
    peq = theory.equilibrium(g, V=V70, glutamate=1 * mM)
    kb = mem.kd(V70, g.temperature)
    for phase, key, lit in (("onset", "on", CB.MEM_ONSET), ("offset", "off", CB.MEM_OFFSET)):
        for j, name in enumerate(("fast", "slow")):
            t, w = kin[key][j]
            lt, lw = lit[j]
            row("memantine", f"{phase} at 10 µM, two-exponential fit: {name} component "
                "(tau, weight)", f"{lt * 1e3:.0f} ms ({lw * 100:.0f} %)",
                f"{t * 1e3:.3g} ms ({w * 100:.0f} %)", f"{rel(t, lt)}, {pp(w, lw)}",
                "±40 %, ±10 pp", abs(t / lt - 1) <= 0.4 and abs(w - lw) <= 0.1,
                "Gilling et al. 2009",
                "calibrated as a compromise (docs/calibrate_blockers.py; IC50, trapping and "
                f"escape kept met): {GATING} holds {peq[g.index('D2')] * 100:.0f} % of "
                "receptors in its slow desensitized state D2 (left at 1.01 /s), which sets the "
                "slow phases, and with IC50 ~1 µM the block of the active minority is "
                f"1 + [B]/K_B = {1 + 10 * uM / kb:.1f}x faster than its unblock, whereas "
                "Gilling's fast onset and offset are within 1.5x; a slower deep site slows the "
                "onset but stretches the slow offset. Dropping the trapping and escape targets "
                "does not rescue the kinetics: a refit to IC50 and kinetics alone (four starts, "
                "one the calibrated point) lowers the kinetic cost only marginally and still "
                "misses all four components (docs/calibrate_blockers.out)"
                if (phase, j) == ("onset", 0) else "")
    vs = CB.MEM_WOODHULL_V
    zd_m = E.woodhull(g, mem, vs).z_delta
    zd_k = E.woodhull(g, kc.blockers.get("ketamine"), vs).z_delta
    row("memantine", "voltage dependence stronger than ketamine's (apparent z·delta from "
        "IC50(V), -100..-40 mV)", "memantine > ketamine (0.79)",
        f"{zd_m:.3f} vs ketamine {zd_k:.3f}", f"{zd_m - zd_k:+.3f}", "qualitative",
        zd_m > zd_k, "Gilling et al. 2009",
        f"deep-site delta {mem.delta:.3g} solved for an apparent {CB.MEM_APPARENT_ZDELTA:.2f} "
        "(ketamine's 0.79 + its SE): no published memantine delta was found, so the value "
        "only orders memantine above ketamine; the voltage-independent superficial site "
        "dilutes the deep delta")
    tr = E.trapping(g, mem)
    row("memantine", "Mealing protocol: block after 30 s of 10 µM", "81 ± 2 %",
        f"{tr.block * 100:.1f} %", pp(tr.block, 0.81), "±5 pp", abs(tr.block - 0.81) <= 0.05,
        "Mealing et al. 1999", "same tension as ketamine: IC50 ~1 µM implies ~90 % at 10 µM")
    row("memantine", "Mealing: still trapped after 120 s wash (occupancy definition)",
        "71 ± 4 %", f"{tr.trapped_occupancy * 100:.1f} %", pp(tr.trapped_occupancy, 0.71),
        "±5 pp", abs(tr.trapped_occupancy - 0.71) <= 0.05, "Mealing et al. 1999", "fitted")
    row("memantine", "same, current definition", "71 ± 4 %",
        f"{tr.trapped_current * 100:.1f} %", pp(tr.trapped_current, 0.71), "±5 pp",
        abs(tr.trapped_current - 0.71) <= 0.05, "Mealing et al. 1999")
    short = E.trapping(g, mem, t_wash=5 * s)
    untr = 1 - short.trapped_occupancy
    row("memantine", "partial trapping: untrapped fraction after a 5 s agonist-free wash",
        "1/6 (Blanpied) – 20 % (Gilling)", f"{untr * 100:.1f} %", pp(untr, 1 / 6),
        "±5 pp", abs(untr - 1 / 6) <= 0.05, "Blanpied et al. 1997; Gilling et al. 2009",
        "fitted to 1/6")
    # escape after agonist removal: exact relaxation of the blocked occupancy in the wash,
    # from the state at the end of a 30 s co-application of 10 uM (as the calibration)
    tau_w, taus_e, a_e, slow = CB.memantine_escape(mem, GATING)
    comps = ", ".join(f"{t:.3g} s ({x * 100:.1f} %)" for t, x in zip(taus_e, a_e))
    row("memantine", "escape after agonist removal: amplitude-weighted tau of the 0.1–10 s "
        "components of the blocked-occupancy relaxation (exact)", "0.79 ± 0.32 s",
        f"{tau_w:.2f} s", f"{tau_w - 0.79:+.2f} s", "±0.4 s", abs(tau_w - 0.79) <= 0.4,
        "Kotermanski et al. 2009",
        f"fitted; components {comps}: superficial-site unbinding (k_off "
        f"{mem.superficial_k_off:.3g} /s) plus loss from the deep site while channels "
        f"deactivate; the rest ({slow / 60:.0f} min) is k_escape")


# --------------------------------------------------------------------------- MK-801
def mk801_rows():
    g = kc.models.get(GATING)
    mk = kc.blockers.get("mk801")
    for V, lit in ((-70 * mV, 90 * 60.0), (30 * mV, 120.0)):
        k = E.block_kinetics(g, mk, 1 * uM, V=V, n_samples=1001)
        ok = 0.5 <= k.tau_off / lit <= 2.0
        row("MK-801", f"recovery tau with continuous agonist at {V / mV:+g} mV (after 1 µM)",
            f"{lit / 60:g} min", f"{k.tau_off / 60:.3g} min", rel(k.tau_off, lit),
            "factor 2", ok, "Huettner & Bean 1988", "fitted at -70 mV; delta_off from the "
            "-70/+30 mV ratio" if V < 0 else "")


# --------------------------------------------------------------------------- amantadine
def amantadine_rows():
    # calibrated by docs/calibrate_blockers.py (fit_amantadine); the same fit procedure here
    import calibrate_blockers as CB
    am = kc.blockers.get("amantadine")
    fa = CB.amantadine_figures(am)
    exact = np.argsort(-np.abs(fa["exact_amps"] * fa["exact_taus"]))[:4]
    exact_s = ", ".join(f"{fa['exact_taus'][i] * 1e3:.3g} ms"
                        for i in sorted(exact, key=lambda i: fa["exact_taus"][i]))
    for i, (lt, lf) in enumerate(zip(CB.AM_TAUS, CB.AM_FRACS)):
        t, f = fa["taus"][i], fa["fracs"][i]
        ok = abs(t / lt - 1) <= 0.2 and abs(f - lf) <= 0.05
        note = ("fitted (k_off, closing/opening factor on erreger2005_2b, 30 µM glutamate for "
                "30 µM NMDA; three-exponential fit of the exact Po over 1 s)" if i == 0 else "")
        if i == 2:
            note = (f"exact Po components of largest area: {exact_s}; the copied 2B gating has "
                    "no slower re-opening path of this weight; the model's gating is "
                    "voltage-independent, so the control relaxation (0.338 ms, 14.5 ms) is "
                    "absent")
        row("amantadine", f"voltage jump -67 → +40 mV, 100 µM, GluN1/2B: relaxation "
            f"component {i + 1} (tau, amplitude fraction)", f"{lt * 1e3:.3g} ms "
            f"({lf * 100:.1f} %)", f"{t * 1e3:.3g} ms ({f * 100:.1f} %)",
            f"{rel(t, lt)}, {pp(f, lf)}", "±20 %, ±5 pp", ok,
            "Blanpied et al. 2005 (Table 1)", note)
    g2b = kc.models.get("erreger2005_2b")
    kept = [E.trapping(g2b, am, 100 * uM, V=-67 * mV, agonist={"glutamate": 30 * uM},
                       t_wash=w).trapped_occupancy for w in (5 * s, 120 * s)]
    row("amantadine", "partial trapping: block kept after an agonist-free wash (5 s / 120 s; "
        "100 µM, -67 mV, erreger2005_2b)", "partial (some, not all)",
        f"{kept[0] * 100:.0f} % / {kept[1] * 100:.0f} %", "", "qualitative",
        0.02 < kept[1] < 0.98, "PMC7760600 Table 1; Blanpied et al. 1997",
        "trapping mode, but with amantadine's fast unblock the blocked channels that reopen "
        "during the slow GluN2B deactivation release it; the degree of trapping is not in the "
        "reference and was not calibrated")
    row("amantadine", "IC50 at -67 mV (erreger2005_2b, 30 µM glutamate)", "39 µM",
        f"{fa['ic50'] / uM:.3g} µM", rel(fa["ic50"], 39 * uM), "(built in)",
        abs(fa["ic50"] / (39 * uM) - 1) <= 0.05, "Blanpied et al. 1997",
        "held exactly: IC50 = K_B/(Po + c/o (1 − Po)) with closing/opening factor c/o = "
        f"{am.closing_factor / am.opening_factor:.2f}, so it depends on the gating model "
        f"(on {GATING} at 1 mM: "
        f"{E.ic50(kc.models.get(GATING), am, V=-67 * mV).ic50_exact / uM:.3g} µM)")


# --------------------------------------------------------------------------- variants
def variant_rows():
    import calibrate_blockers as CB
    g = kc.models.get(GATING)
    for name, group, blk_t, trp_t in (("ketamine_mealing1999", "ketamine", 0.80, 0.86),
                                      ("memantine_mealing1999", "memantine", 0.81, 0.71)):
        b = kc.blockers.get(name)
        tr = E.trapping(g, b)
        r = E.ic50(g, b)
        row(group, f"variant `{name}` (native cortical neurons): Mealing block after 30 s of "
            "10 µM", f"{blk_t * 100:.0f} %", f"{tr.block * 100:.1f} %", pp(tr.block, blk_t),
            "±5 pp", abs(tr.block - blk_t) <= 0.05, "Mealing et al. 1999",
            f"fitted (k_off, k_escape; delta and k_on kept); implied IC50 "
            f"{r.ic50_exact / uM:.3g} µM at -70 mV vs Gilling's GluN1/2A "
            f"{'0.71' if group == 'ketamine' else '~1'} µM: a different preparation")
        row(group, f"variant `{name}`: still trapped after 120 s wash (occupancy definition)",
            f"{trp_t * 100:.0f} %", f"{tr.trapped_occupancy * 100:.1f} %",
            pp(tr.trapped_occupancy, trp_t), "±5 pp",
            abs(tr.trapped_occupancy - trp_t) <= 0.05, "Mealing et al. 1999", "fitted")
        # (the quantity Mealing measured; the fit targeted the occupancy -- helper-103's audit:
        # the page showed only the row the variant was fitted to)
        row(group, f"variant `{name}`: still trapped, current definition (first "
            "re-application response at its own peak, as Mealing measured it)",
            f"{trp_t * 100:.0f} %", f"{tr.trapped_current * 100:.1f} %",
            pp(tr.trapped_current, trp_t), "±5 pp",
            abs(tr.trapped_current - trp_t) <= 0.05, "Mealing et al. 1999",
            "not fitted (the variant was fitted to the occupancy definition): the gap is "
            "what the two definitions differ by for this variant's kinetics")
    b = kc.blockers.get("ketamine_closed_route")
    f = CB.orser_figures(b)
    f0 = CB.orser_figures(kc.blockers.get("ketamine"))
    for k, lab in (("po_1", "Po with 1 µM / control"), ("po_01", "Po with 0.1 µM / control"),
                   ("freq_1", "opening frequency with 1 µM / control"),
                   ("open_1", "mean open time with 1 µM / control")):
        row("ketamine", f"variant `ketamine_closed_route`: single channel, {lab} (3 µM "
            "glutamate: control Po 0.057 ~ Orser's 0.058)", f"{CB.ORSER[k]:.2f}",
            f"{f[k]:.2f} (default {f0[k]:.2f})", rel(f[k], CB.ORSER[k]), "±20 %",
            abs(f[k] / CB.ORSER[k] - 1) <= 0.2, "Orser et al. 1997",
            "k_on_closed fitted to the first three; not in detailed balance with the open-"
            "channel site; mean open time is set by the open-channel k_on (~58x Gilling's "
            "Po-corrected value would be needed, breaking Gilling's kinetics; "
            "docs/calibrate_blockers.out)" if k == "po_1" else "")


# --------------------------------------------------------------------------- use dependence
def use_dependence_rows():
    u = E.use_dependence(GATING, "ketamine", 1 * uM, [0.0, 0.1, 1.0, 10.0, 40.0],
                         duration=60 * s, washout=300 * s, n_samples=100)
    blocked = ", ".join(f"{f:g} Hz {b * 100:.0f} %" for f, b in zip(u.frequencies, u.blocked))
    row("use dependence", "ketamine 1 µM, 60 s of 1 ms glutamate pulses: blocked fraction vs "
        "frequency", "monotone increasing", blocked, "", "qualitative", u.is_monotone(),
        "Homayoun & Moghaddam 2007; Emnett et al. 2013")
    i = list(u.frequencies).index(10.0)
    row("use dependence", "block persists after washout only while channels stay shut "
        "(10 Hz cell, 300 s washout: quiet vs stimulated)", "trapped block persists if quiet, "
        "cleared by activity", f"quiet {u.remaining_quiet[i] * 100:.0f} % left, "
        f"stimulated {u.remaining_stim[i] * 100:.2g} % left (t½ {u.t_half_stim[i]:.2g} s)",
        "", "qualitative", bool(u.remaining_quiet[i] > 0.5 > u.remaining_stim[i]),
        "reference section 7")
    uq = E.use_dependence(GATING, "memantine", 1 * uM, [0.0, 0.1, 1.0, 10.0, 40.0],
                          duration=60 * s, washout=60 * s, n_samples=50)
    row("use dependence", "memantine 1 µM, same protocol: blocked fraction vs frequency",
        "monotone increasing", ", ".join(f"{f:g} Hz {b * 100:.0f} %" for f, b in
                                         zip(uq.frequencies, uq.blocked)),
        "", "qualitative", uq.is_monotone(), "Emnett et al. 2013",
        "the superficial site binds shut channels too, so 0 Hz is not 0")


# --------------------------------------------------------------------------- page
def render(seconds: float) -> str:
    n_ok = sum(r["verdict"] == "ok" for r in ROWS)
    n_miss = sum(r["verdict"] == "MISS" for r in ROWS)
    out = [
        "# Validation: ketacore against literature targets",
        "",
        "Generated by `python docs/make_validation.py` — do not edit by hand. "
        f"ketacore {kc.__version__}; {len(ROWS)} rows, {n_ok} within tolerance, "
        f"{n_miss} misses, {len(ROWS) - n_ok - n_miss} comparisons without a tolerance; "
        f"runtime {seconds:.0f} s.",
        "",
        "Targets and tolerances are those of the project reference (`nmda-kinetics.md`, "
        "section 8), except the kinetic-Mg2+-vs-Jahr–Stevens rows (-80..0 mV), whose ±20 % "
        "relative tolerance is a project choice: section 8 sets none for them. All model "
        "values are exact (master equation, equilibrium theory); "
        f"blocker experiments use the gating model `{GATING}` (GluN1/GluN2A, 22 °C), −70 mV, "
        "1 mM glutamate, no Mg2+, unless stated. The library blockers were *calibrated* on "
        "some of these targets (`docs/calibrate_blockers.py`): rows marked “fitted” are "
        "consistency checks, not independent predictions.",
        "",
        "| group | target | literature | model | difference | tolerance | verdict | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in ROWS:
        v = "✅ ok" if r["verdict"] == "ok" else ("❌ MISS" if r["verdict"] == "MISS" else "—")
        what = r["what"] + (f" *({r['note']})*" if r["note"] else "")
        out.append(f"| {r['group']} | {what} | {r['lit']} | {r['model']} | {r['diff']} | "
                   f"{r['tol']} | {v} | {r['source']} |")
    out += [
        "",
        "## Definitions",
        "",
        "* **Block / I/I0**: ratio of mean channel conductance with and without blocker at "
        "the same voltage (= current ratio).",
        "* **Mg2+ unblocked fraction** (exact equilibrium, `ketacore.theory`, 1 mM "
        "glutamate): *open-channel ratio* O/(O + O·Mg) = open channels not blocked; "
        "*whole-current ratio* Po(Mg)/Po(0) = steady-state I(Mg)/I(0) at the same V. "
        "Jahr & Stevens' B(V) is a steady-state *macroscopic* conductance ratio (J Neurosci "
        "10:3178, 'Voltage dependence of NMDA-activated macroscopic conductances'), so the "
        "Mg2+ rows compare it with the whole-current ratio. For the library Mg2+ blockers "
        "(trapping, gating copied into the blocked arm) the two ratios are identical at every "
        "V, = K_B(V)/(K_B(V) + [Mg2+]); for the `kampa2004` model (Mg2+ also binds closed "
        "states and alters gating) the whole-current ratio is lower (0.030 vs 0.079 at "
        "-60 mV).",
        "* **Trapped fraction** (`kc.experiments.trapping`): *occupancy* definition = blocked "
        "occupancy at the end of the agonist-free wash / at the end of co-application (used "
        "for calibration); *current* definition = (1 − I_first/I_ctl)/block with I_first and "
        "I_ctl the peaks of the first re-application responses (each at its own first peak) "
        "of the drug and an identical drug-free protocol (desensitization cancels). Both include the blocker released "
        "while channels deactivate at the start of the wash (reference open question 7).",
        "* **Kinetics**: single-exponential `curve_fit` of I/I0 with continuous agonist, as "
        "Gilling et al. 2009; macroscopic k_on = (1/τ_on − 1/τ_off)/[B], k_off = 1/τ_off. "
        "Memantine: two-exponential fit of the exact I/I0 (8 s onset, 40 s offset, 1601 "
        "samples each), the same function (`calibrate_blockers.memantine_kinetics`) as the "
        "calibration.",
        "",
        "## Known misses, in short",
        "",
        "* Mealing block % (ketamine, memantine): with IC50 = K_B for a trapping blocker, "
        "Gilling's IC50 and Mealing's block at 10 µM cannot both hold in one model; the "
        "IC50 was preferred (same receptor, GluN1/2A). The native-neuron variants "
        "`ketamine_mealing1999`/`memantine_mealing1999` meet Mealing at IC50 ≈ 2.5/2.13 µM "
        "(-70 mV, erreger2005_2a; the variant rows).",
        "* Ketamine nH 0.84 and Orser single-channel figures: need mechanisms not in the "
        "library blocker (heterogeneity; closed-channel/membrane route, reference open "
        "question 1). The `ketamine_closed_route` variant moves Po at 1 µM from 0.43 to 0.30 "
        "but not the 0.1 µM point (Orser's two points imply a Hill slope ~0.55) nor the mean "
        "open time.",
        "* Mg2+ voltage dependence vs Jahr–Stevens: the Kampa and Ascher–Nowak rates give a "
        "Woodhull K_B(V) that e-folds every 12.5 mV (0.080 /mV: 2·(0.8 + 0.2)/25 mV; "
        "1/17 + 1/47 mV^-1), steeper than Jahr–Stevens' 0.062 /mV. `\"mg\"` (Kampa) "
        "crosses B(V) near -60 mV (-0.7 %), so it blocks too much below (-30 % unblocked at "
        "-80 mV) and too little above (+30 % at -40 mV, +34 % at -20 mV, +17 % at 0 mV); "
        "Ascher–Nowak crosses near -50 mV (-41 % at -80 mV, +26 % at -20 mV). The rates are "
        "the published ones, so these are properties of the published sets; the -60 mV "
        "agreement alone does not validate the I-V. The `kampa2004` model's whole-current "
        "ratio is further reduced by Mg2+ binding to closed states and the altered gating of "
        "Mg2+-bound receptors (0.030 at -60 mV, -62 %; its open-channel ratio is 0.079).",
        "* Kampa slow Mg2+ unblock component (300 ms): the published model's dominant slow "
        "Po component is ~123 ms.",
        "* Amantadine relaxations (calibrated): the slow 153 ms component comes out ~82 ms and "
        "the middle one ~+20 %; the fast one and all amplitudes land.",
        "* Memantine onset/offset at 10 µM (calibrated as a compromise, IC50/trapping/escape "
        "kept): all four two-exponential components miss (fast onset too fast, slow offset "
        "~2x too slow, weights up to 13 pp off). erreger2005_2a's slow desensitized state D2 "
        "(83 % of receptors) sets the slow phases, and with IC50 ~1 µM block of the active "
        "channels is ~9x faster than unblock, while Gilling's fast onset and offset are within "
        "1.5x of each other.",
        "* Ketamine onset half-time at 10 µM (0.040 s vs 0.40 s): a recalibration study "
        "(2026-11-27, k_on/k_off/k_escape, 120-point grid plus least squares) found no rate "
        "set that fixes it without breaking met rows. Half-time 0.40 s needs k_on(−70 mV) ≲ "
        "7e5 /M/s; holding the IC50 then slows k_off by the same factor and the offset becomes "
        "~24 s (vs 4.5 s), the single-exponential onset fit ~1.9 s, and block is no longer "
        "relieved within 50 s (14 misses instead of 10). The longest half-time that keeps every "
        "met row met is 0.06 s. The onset is fast because erreger2005_2a's active ~17 % of "
        "receptors (Po ~0.5) are blocked before they exchange with its desensitized state D2; "
        "fixing the shape needs another gating model (less desensitization) or a blocker that "
        "binds desensitized/closed receptors, not other rates.",
        "",
        "## References",
        "",
        "Jahr & Stevens 1990 J Neurosci 10:3178; Erreger et al. 2005 J Physiol; Kampa et al. "
        "2004 J Physiol 556:337; Gilling et al. 2009 Neuropharmacology 56:866 "
        "(doi:10.1016/j.neuropharm.2009.01.012); Mealing et al. 1999 JPET 288:204 (PMID "
        "9862772); Blanpied et al. 1997 J Neurophysiol 77:309; Blanpied, Clarke & Johnson 2005 "
        "J Neurosci 25:3312 (amantadine rows: erreger2005_2b); Kotermanski, Wood & Johnson 2009 J Physiol 587:4589; Huettner & "
        "Bean 1988 PNAS 85:1307 (doi:10.1073/pnas.85.4.1307); Orser, Pennefather & MacDonald "
        "1997 Anesthesiology; Homayoun & Moghaddam 2007 J Neurosci 27:11496; Emnett et al. "
        "2013; Woodhull 1973 J Gen Physiol 61:687 (doi:10.1085/jgp.61.6.687).",
        "",
    ]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stdout", action="store_true", help="print instead of writing the page")
    args = ap.parse_args()
    t0 = time.perf_counter()
    for f in (mg_rows, kampa_rows, erreger_rows, ketamine_rows, memantine_rows, mk801_rows,
              amantadine_rows, variant_rows, use_dependence_rows):
        f()
    text = render(time.perf_counter() - t0)
    if args.stdout:
        print(text)
    else:
        path = ROOT / "docs" / "validation.md"
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path} ({len(ROWS)} rows, {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
