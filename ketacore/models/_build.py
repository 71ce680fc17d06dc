"""Generator of the built-in model TOML files (``python -m ketacore.models._build``).

The TOML files in this directory are the data; this script is how they were written, so every
number can be traced to the source quoted next to it.  It is not imported at run time.  Values
come from ``reference/nmda-kinetics.md`` (the project's reference notes) and the model files
named there, and -- for the AMPA and GABA-A models -- from the ModelDB 18198 files ``ampa5.mod``
and ``gabaa5.mod`` whose PARAMETER and KINETIC blocks are quoted below; all are converted to SI
(s⁻¹, M⁻¹ s⁻¹, V, S, K).

Re-running it rewrites the TOML files byte for byte (``tests/test_models.py`` checks this).
"""
from __future__ import annotations

import pathlib

from ketacore.scheme import Rate, Scheme
from ketacore.units import celsius, mV, pS

HERE = pathlib.Path(__file__).resolve().parent

#: Single-channel conductance used for every NMDA model (S): the 50 pS main level of native
#: high-conductance NMDA receptors (49–52 pS, cerebellar granule cells) and the gmax per channel
#: of Moradi et al. 2012 citing Johnson & Ascher 1990.  Model files give gmax per synapse
#: (500 pS) which is not a single-channel value.
G_NMDA = 50 * pS


def ch82() -> Scheme:
    """Colquhoun & Hawkes (1982) reference mechanism (DCPYPS ``samples.CH82``)."""
    A = "agonist"
    S = ["AR*", "A2R*", "AR", "A2R", "R"]
    T = [
        ("AR*", "A2R*", Rate(5e8, A)),            # k*+2 [A]
        ("AR*", "AR", 3000.0),                    # alpha1
        # 2 k*-2, with k*-2 = 1/3 s^-1 set by microscopic reversibility
        ("A2R*", "AR*", Rate(1.0 / 3.0, factor=2)),
        ("A2R*", "A2R", 500.0),                   # alpha2
        ("AR", "AR*", 15.0),                      # beta1
        ("AR", "A2R", Rate(5e8, A)),              # k+2 [A]
        ("AR", "R", 2000.0),                      # k-1
        ("A2R", "A2R*", 15000.0),                 # beta2
        ("A2R", "AR", Rate(2000.0, factor=2)),    # 2 k-2
        ("R", "AR", Rate(5e7, A, factor=2)),      # 2 k+1 [A] = 1e8 M^-1 s^-1 [A]
    ]
    return Scheme(
        S, T, conductance={"AR*": G_NMDA, "A2R*": G_NMDA}, e_rev=0.0, ligands=[A],
        name="ch82",
        citation=("Colquhoun D, Hawkes AG (1982) On the stochastic properties of bursts of single "
                  "ion channel openings and of clusters of bursts. Phil Trans R Soc Lond B "
                  "300:1-59"),
        doi="10.1098/rstb.1982.0156",
        notes=("Numerical example mechanism of CH82 as in DCPROGS (DCPYPS samples.CH82; the HJCFIT "
               "unit test qmatrix.cc holds its Q at 0.1 uM).  Statistical factors written "
               "explicitly (factor=2 on R->AR, A2R->AR, A2R*->AR*); k*-2 = 1/3 s^-1 is set by "
               "microscopic reversibility.  Agonist ligand 'agonist'.  Both open states conduct "
               "50 pS (CH82 is a generic mechanism: conductance and E_rev = 0 V are conventions "
               "of this library, not of the source).  Temperature not part of the model "
               "(default 22 C, no Q10)."),
    )


# Destexhe, Mainen & Sejnowski rate set "DMS 1996" of ModelDB 18198 nmda5.mod (default row).
_DMS = dict(Rb=5e6, Ru=12.9, Rd=8.4, Rr=6.8, Ro=46.5, Rc=73.8)
_DMS_CITATION = ("Destexhe A, Mainen ZF, Sejnowski TJ (1998) Kinetic models of synaptic "
                 "transmission. In: Koch C, Segev I (eds) Methods in Neuronal Modeling, 2nd ed., "
                 "MIT Press (no DOI) -- the source of this 5-state fit: ModelDB 18198 nmda5.mod, "
                 "default rate row 'Destexhe, Mainen & Sejnowski 1996', the model of the "
                 "chapter's Fig. 2B, fit to Hessler et al. 1993 hippocampal NMDA EPSCs.  The DOI "
                 "given is that of the kinetic formalism, Destexhe A, Mainen ZF, Sejnowski TJ "
                 "(1994) Synthesis of models for excitable membranes, synaptic transmission and "
                 "neuromodulation using a common kinetic formalism. J Comput Neurosci "
                 "1:195-230, whose NMDA model is the 2-state nmda.mod, not this scheme (the "
                 "name 'destexhe1994' is historical)")


def _destexhe(statistical_factors: bool) -> Scheme:
    p = _DMS
    f2 = 2.0 if statistical_factors else 1.0
    T = [
        ("C0", "C1", Rate(p["Rb"], "glutamate", factor=f2)),
        ("C1", "C0", p["Ru"]),
        ("C1", "C2", Rate(p["Rb"], "glutamate")),
        ("C2", "C1", Rate(p["Ru"], factor=f2)),
        ("C2", "D", p["Rd"]),
        ("D", "C2", p["Rr"]),
        ("C2", "O", p["Ro"]),
        ("O", "C2", p["Rc"]),
    ]
    common = ("Five-state scheme C0 <-> C1 <-> C2 <-> O, C2 <-> D (Clements & Westbrook 1991 / "
              "Lester & Jahr 1992 topology).  Rates (SI): Rb 5e6 /M/s, Ru 12.9, Rd 8.4, Rr 6.8, "
              "Ro 46.5, Rc 73.8 /s (default 'DMS 1996' row of nmda5.mod).  Glycine assumed "
              "saturating; no Mg2+ (compose with kc.blockers 'mg' or use "
              "kc.blockers.jahr_stevens).  E_rev 0 mV as in nmda5.mod; single-channel "
              "conductance 50 pS (library convention; the file's gmax 500 pS is per synapse).  "
              "Temperature 36 C from the companion demo nmda5.hoc; the rates carry no Q10, so the "
              "temperature only enters Woodhull factors of composed blockers.")
    if statistical_factors:
        name = "destexhe1994_sf"
        conv = ("WITH statistical factors (two independent identical glutamate sites): "
                "C0->C1 2*Rb*[Glu], C1->C0 Ru, C1->C2 Rb*[Glu], C2->C1 2*Ru -- the form of ModelDB "
                "7988 (Chen et al. 2001) and Moradi et al. 2012 SynNMDA10_2.mod.  Same numbers as "
                "'destexhe1994', different model.  ")
    else:
        name = "destexhe1994"
        conv = ("WITHOUT statistical factors, exactly as the original ModelDB 18198 nmda5.mod: "
                "C0->C1 Rb*[Glu], C1->C0 Ru, C1->C2 Rb*[Glu], C2->C1 Ru.  The variant with "
                "factors is 'destexhe1994_sf'.  ")
    return Scheme(["C0", "C1", "C2", "D", "O"], T, conductance={"O": G_NMDA}, e_rev=0.0,
                  ligands=["glutamate"], name=name, citation=_DMS_CITATION,
                  doi="10.1007/BF00961734", notes=conv + common, temperature=celsius(36.0))


def destexhe1994() -> Scheme:
    """Destexhe/Mainen/Sejnowski 5-state NMDA, original form (no statistical factors)."""
    return _destexhe(False)


def destexhe1994_sf() -> Scheme:
    """Same rates with statistical factors (ModelDB 7988 / Moradi 2012 form)."""
    return _destexhe(True)


# --------------------------------------------------------------------------- AMPA and GABA-A
# Destexhe, Mainen & Sejnowski, ModelDB 18198 ("Kinetic models of synaptic transmission"),
# the detailed receptor models ampa5.mod and gabaa5.mod.  Texts read from public copies:
#   ampa5.mod  -- ctrl-z-9000-times/NEUWON neuwon/nmodl_library/Destexhe1994/ampa5.mod
#                 (commit 2afb675c); same numbers in other copies of the file.
#   gabaa5.mod -- bozelosp/ion-channel-genealogy-viz visualizer/static/ICG/stripped_comments/
#                 18198_gabaa5.mod.mod (commit 7e85e8c2; the ModelDB 18198 file with comments
#                 stripped) and a commented copy with the same numbers.
# Both files give rates in ms units, gmax 500 pS PER SYNAPSE and no single-channel conductance.
_DMS_CHAPTER = ("Destexhe A, Mainen ZF, Sejnowski TJ (1998) Kinetic models of synaptic "
                "transmission. In: Koch C, Segev I (eds) Methods in Neuronal Modeling, 2nd ed., "
                "MIT Press, pp 1-25 (no DOI)")
_DMS_FORMALISM = ("The kinetic formalism is Destexhe A, Mainen ZF, Sejnowski TJ (1994) "
                  "Synthesis of models for excitable membranes, synaptic transmission and "
                  "neuromodulation using a common kinetic formalism. J Comput Neurosci "
                  "1:195-230 (doi:10.1007/BF00961734), not the source of these rate values (the "
                  "chapter has no DOI, so none is given)")

#: Single-channel conductance used for the AMPA model (S): "about 10 pS" mean elementary
#: conductance of AMPA receptor channels in outside-out patches from rat hippocampal CA3/CA1
#: pyramidal-cell dendrites, non-stationary fluctuation analysis (Spruston, Jonas & Sakmann
#: 1995, J Physiol 482:325-352, doi:10.1113/jphysiol.1995.sp020521, abstract point 5; the
#: same preparation -- hippocampal slices -- as the EPSCs ampa5.mod was fitted to).
G_AMPA = 10 * pS
#: Single-channel conductance used for the GABA-A model (S): the main conductance state,
#: 27.2 pS, of GABA-A channels of cultured mouse spinal cord neurones (Macdonald, Rogers &
#: Twyman 1989, J Physiol, "Kinetic properties of the GABAA receptor main conductance state of
#: mouse spinal cord neurones in culture", abstract point 3), given to both open states O1, O2
#: as gabaa5.mod does (g = gmax*(O1+O2)).
G_GABAA = 2.72e-11  # 27.2 pS (27.2 * pS would store 2.7199999999999997e-11)

# ampa5.mod PARAMETER block, converted to SI:
#   Rb  = 13 (/mM /ms)  -> 1.3e7 /M/s     Ru1 = 0.0059 (/ms) -> 5.9 /s
#   Ru2 = 86 (/ms)      -> 8.6e4 /s       Rd  = 0.9 (/ms)    -> 900 /s
#   Rr  = 0.064 (/ms)   -> 64 /s          Ro  = 2.7 (/ms)    -> 2700 /s
#   Rc  = 0.2 (/ms)     -> 200 /s
# Erev = 0 mV, gmax = 500 pS.  KINETIC kstates: rb = Rb*C;
#   ~ C0 <-> C1 (rb,Ru1)   ~ C1 <-> C2 (rb,Ru2)   ~ C1 <-> D1 (Rd,Rr)
#   ~ C2 <-> D2 (Rd,Rr)    ~ C2 <-> O (Ro,Rc)
_AMPA5 = dict(Rb=1.3e7, Ru1=5.9, Ru2=8.6e4, Rd=900.0, Rr=64.0, Ro=2700.0, Rc=200.0)


def destexhe1998_ampa() -> Scheme:
    """Destexhe/Mainen/Sejnowski 6-state AMPA receptor (ModelDB 18198 ampa5.mod)."""
    p, G = _AMPA5, "glutamate"
    T = [
        ("C0", "C1", Rate(p["Rb"], G)), ("C1", "C0", p["Ru1"]),
        ("C1", "C2", Rate(p["Rb"], G)), ("C2", "C1", p["Ru2"]),
        ("C1", "D1", p["Rd"]), ("D1", "C1", p["Rr"]),
        ("C2", "D2", p["Rd"]), ("D2", "C2", p["Rr"]),
        ("C2", "O", p["Ro"]), ("O", "C2", p["Rc"]),
    ]
    notes = ("6-state AMPA scheme of ModelDB 18198 ampa5.mod (Destexhe & Mainen 1995; topology "
             "after Patneau & Mayer 1991): C0 <-> C1 <-> C2 <-> O with desensitized D1 (from the "
             "singly bound C1) and D2 (from the doubly bound C2); D1 and D2 are not connected.  "
             "Fit in the file's words to AMPA EPSCs of rat hippocampal slices (Xiang et al. "
             "1994), rate row of 'Destexhe, Mainen and Sejnowski, 1996'.  Rates exactly as in the "
             ".mod (SI): Rb 1.3e7 /M/s (13 /mM/ms, 'diffusion limited'), Ru1 5.9, Ru2 8.6e4, "
             "Rd 900, Rr 64, Ro 2700, Rc 200 /s.  NO statistical factors: both binding steps are "
             "Rb*[Glu] and the two unbinding rates Ru1 (C1->C0) and Ru2 (C2->C1) are separate "
             "fitted values 14600-fold apart, not 1:2 -- a singly bound receptor keeps its "
             "glutamate for ~170 ms, so after a pulse most receptors sit in C1/D1 and recover "
             "slowly.  Rd and Rr are the same for D1 and D2 as in the file.  Ligand 'glutamate' "
             "(M); the .mod reads the cleft concentration C (mM) through a POINTER and prescribes "
             "no pulse -- the package's minimal synapse mechanisms (e.g. gabaa.mod, demo "
             "gabaa.hoc) use Cmax 1 mM for Cdur 1 ms, the pulse used in this library's tests.  "
             "INITIAL C0 = 1 (at rest without glutamate).  E_rev 0 mV as in the file.  Single-"
             "channel conductance 10 pS is a library choice, not in the file: its gmax 500 pS is "
             "per synapse (g = gmax*O), so the file's synaptic conductance is 500 pS * Po = 50 "
             "channels of 10 pS; source of 10 pS: Spruston, Jonas & Sakmann 1995 J Physiol "
             "482:325-352 (doi:10.1113/jphysiol.1995.sp020521), 'about 10 pS' by non-stationary "
             "fluctuation analysis in hippocampal CA3/CA1 dendritic patches.  No voltage "
             "dependence, no Q10; temperature 36 C from the package demos (celsius = 36 in "
             "gabaa.hoc, nmda5.hoc).  " + _DMS_FORMALISM + ".")
    return Scheme(["C0", "C1", "C2", "D1", "D2", "O"], T, conductance={"O": G_AMPA}, e_rev=0.0,
                  ligands=[G], name="destexhe1998_ampa",
                  citation=_DMS_CHAPTER + " -- the source of this 6-state fit: ModelDB 18198 "
                           "ampa5.mod (A Destexhe, Z Mainen 1995)",
                  doi="", notes=notes, temperature=celsius(36.0))


# gabaa5.mod PARAMETER block ("from Destexhe, Mainen and Sejnowski, 1996"), converted to SI.
# The file multiplies by 1e3 because C is in mM: f1 = kf1*(1e3)*C, f2 = kf2*(1e3)*C, so
#   kf1 = 0.02 (/uM /ms) = 20 /mM/ms -> 2e7 /M/s    kf2 = 0.01 (/uM /ms) -> 1e7 /M/s
#   kb1 = 4.6 (/ms) -> 4600 /s    kb2 = 9.2 (/ms) -> 9200 /s
#   a1  = 3.3 (/ms) -> 3300 /s    b1  = 9.8 (/ms) -> 9800 /s
#   a2  = 10.6 (/ms) -> 10600 /s  b2  = 0.41 (/ms) -> 410 /s
# Erev = -80 mV, gmax = 500 pS.  KINETIC kstates:
#   ~ C0 <-> C1 (f1,kb1)   ~ C1 <-> C2 (f2,kb2)   ~ C1 <-> O1 (a1,b1)   ~ C2 <-> O2 (a2,b2)
# (A second rate row "from Busch and Sakmann" sits in a COMMENT block and is not used.)
_GABAA5 = dict(kf1=2e7, kf2=1e7, kb1=4600.0, kb2=9200.0, a1=3300.0, b1=9800.0, a2=10600.0,
               b2=410.0)


def destexhe1998_gabaa() -> Scheme:
    """Destexhe/Mainen/Sejnowski 5-state GABA-A receptor (ModelDB 18198 gabaa5.mod)."""
    p, L = _GABAA5, "gaba"
    T = [
        ("C0", "C1", Rate(p["kf1"], L)), ("C1", "C0", p["kb1"]),
        ("C1", "C2", Rate(p["kf2"], L)), ("C2", "C1", p["kb2"]),
        ("C1", "O1", p["a1"]), ("O1", "C1", p["b1"]),
        ("C2", "O2", p["a2"]), ("O2", "C2", p["b2"]),
    ]
    notes = ("5-state GABA-A scheme of ModelDB 18198 gabaa5.mod (topology of Busch & Sakmann "
             "1990): C0 <-> C1 <-> C2 with an open state on each bound state, C1 <-> O1 and "
             "C2 <-> O2; both open states conduct (the file's g = gmax*(O1+O2)).  No "
             "desensitized state.  Fit in the file's words to GABA-A IPSCs of rat hippocampal "
             "slices (Otis & Mody 1992); active rate row 'from Destexhe, Mainen and Sejnowski, "
             "1996' (the 'Busch and Sakmann' row in the file's COMMENT block is not used).  Rates "
             "exactly as in the .mod (SI): kf1 2e7, kf2 1e7 /M/s; kb1 4600, kb2 9200, a1 3300, "
             "b1 9800, a2 10600, b2 410 /s.  UNITS TRAP: the file gives kf in /uM/ms and computes "
             "f = kf*(1e3)*C with C in mM, i.e. 20 and 10 /mM/ms.  STATISTICAL FACTORS are "
             "already inside the numbers: kf1 = 2*kf2 and kb2 = 2*kb1 are two identical "
             "independent sites with k+ = 1e7 /M/s, k- = 4600 /s (C0->C1 2k+, C1->C2 k+, C1->C0 "
             "k-, C2->C1 2k-); the values are stored as the file's kf1, kf2, kb1, kb2 with "
             "factor 1, so no further factor must be applied.  Ligand 'gaba' (M; the file's "
             "ASSIGNED comment calls its pointer C 'glutamate concentration', a copy-paste "
             "leftover); the .mod takes C through a POINTER and prescribes no pulse -- the "
             "package's minimal gabaa.mod and its demo gabaa.hoc use Cmax 1 mM for Cdur 1 ms, "
             "the pulse used in this library's tests.  INITIAL C0 = 1.  E_rev -80 mV as in the "
             "file (a Cl- reversal: set e_rev for other chloride gradients).  Single-channel "
             "conductance 27.2 pS for both O1 and O2 is a library choice, not in the file: its "
             "gmax 500 pS is per synapse (g = gmax*(O1+O2)); source: main conductance state "
             "27.2 pS of Macdonald, Rogers & Twyman 1989 J Physiol ('Kinetic properties of the "
             "GABAA receptor main conductance state of mouse spinal cord neurones in culture'; "
             "cultured spinal neurones, not hippocampus; volume/pages/DOI not verified here).  "
             "No voltage dependence, no Q10; temperature 36 C from the package demos (celsius = "
             "36 in gabaa.hoc).  " + _DMS_FORMALISM + ".")
    return Scheme(["C0", "C1", "C2", "O1", "O2"], T, conductance={"O1": G_GABAA, "O2": G_GABAA},
                  e_rev=-80 * mV, ligands=[L], name="destexhe1998_gabaa",
                  citation=_DMS_CHAPTER + " -- the source of this 5-state fit: ModelDB 18198 "
                           "gabaa5.mod (A Destexhe 1995)",
                  doi="", notes=notes, temperature=celsius(36.0))


# Erreger et al. 2005 Table 2 values as found in the MATLAB Q-matrix files [ERR-M]
# (kd1+ on RA2->D1, i.e. *into* D1; [ERR-N] NR2A_CA swaps kd1 and is not followed).
_ERR = {
    "2a": dict(kon=31.6e6, koff=1010.0, kfp=3140.0, kfm=174.0, ksp=230.0, ksm=178.0,
               kd1p=85.1, kd1m=29.7, kd2p=230.0, kd2m=1.01),
    "2b": dict(kon=2.83e6, koff=38.1, kfp=2836.0, kfm=175.0, ksp=48.0, ksm=230.0,
               kd1p=550.0, kd1m=81.4, kd2p=112.0, kd2m=0.91),
}


def _erreger(sub: str) -> Scheme:
    p = _ERR[sub]
    G = "glutamate"
    T = [
        ("R", "RA", Rate(p["kon"], G, factor=2)),
        ("RA", "R", p["koff"]),
        ("RA", "RA2", Rate(p["kon"], G)),
        ("RA2", "RA", Rate(p["koff"], factor=2)),
        ("RA2", "RA2f", p["kfp"]),
        ("RA2f", "RA2", p["kfm"]),
        ("RA2", "RA2s", p["ksp"]),
        ("RA2s", "RA2", p["ksm"]),
        ("RA2f", "O", p["ksp"]),
        ("O", "RA2f", p["ksm"]),
        ("RA2s", "O", p["kfp"]),
        ("O", "RA2s", p["kfm"]),
        ("RA2", "D1", p["kd1p"]),
        ("D1", "RA2", p["kd1m"]),
        ("RA2", "D2", p["kd2p"]),
        ("D2", "RA2", p["kd2m"]),
    ]
    label = "GluN1/GluN2A" if sub == "2a" else "GluN1/GluN2B"
    notes = (f"{label} 8-state scheme of Erreger et al. 2005 (Table 2) as an explicit Q matrix "
             "(MATLAB files 'Model of GluN2A/GluN2B Activation from Erreger et al 2005'): two "
             "glutamate bindings with statistical factors (2*kon, koff; kon, 2*koff), then a fast "
             "(kf) and a slow (ks) pre-gating step in either order (RA2f = after kf, RA2s = after "
             "ks), one open state O, desensitized D1 and D2 attached to RA2.  kd1+ is RA2->D1 "
             "(into D1) as in the MATLAB files and the Erreger 2B parameter file; the NEURON "
             "file NR2A_CA swaps kd1 and is not followed.  Glycine saturating (50 uM in the "
             "recordings).  No voltage dependence, no Mg2+.  E_rev 0 mV and 50 pS are library "
             "conventions (the recordings were at -80/-100 mV).  Temperature: room temperature "
             "assumed (22 C; not stated in the sources found); no Q10.")
    return Scheme(["R", "RA", "RA2", "RA2f", "RA2s", "O", "D1", "D2"], T,
                  conductance={"O": G_NMDA}, e_rev=0.0, ligands=[G],
                  name=f"erreger2005_{sub}",
                  citation=("Erreger K, Dravid SM, Banke TG, Wyllie DJA, Traynelis SF (2005) "
                            "Subunit-specific gating controls rat NR1/NR2A and NR1/NR2B NMDA "
                            "channel kinetics and synaptic signalling profiles. J Physiol "
                            "563:345-358"),
                  doi="10.1113/jphysiol.2004.080028", notes=notes, temperature=celsius(22.0))


def erreger2005_2a() -> Scheme:
    """Erreger et al. 2005 GluN1/GluN2A."""
    return _erreger("2a")


def erreger2005_2b() -> Scheme:
    """Erreger et al. 2005 GluN1/GluN2B."""
    return _erreger("2b")


# Kampa et al. 2004, ModelDB 50207 NMDA_Mg.mod.  Mg2+ rates are given at +40 mV with
#   k_block   = Rxb [Mg] exp((V - 40 mV) * valence * memb_fraction / 25 mV)
#   k_unblock = Rxu      exp(-(V - 40 mV) * valence * (1 - memb_fraction) / 25 mV)
# valence = -2, memb_fraction = 0.8.  ketacore writes these as Rate(vk=..., v0=+40 mV):
#   exp((V - v0)/vk) with vk = 25 mV / (valence*memb_fraction) = 25/(-1.6) = -15.625 mV (block)
#   and vk = 25 mV / (-valence*(1-memb_fraction)) = 25/0.4 = +62.5 mV (unblock).
# The vk form keeps the file's fixed 25 mV (not RT/F at the run temperature), so the model is
# reproduced exactly at any temperature.  Both vk values are exact binary fractions.
_KAMPA_V0 = 40 * mV
_KAMPA_VK_BLOCK = 25 * mV / (-2 * 0.8)        # -15.625 mV
_KAMPA_VK_UNBLOCK = 25 * mV / (2 * (1 - 0.8))  # +62.5 mV


def kampa2004() -> Scheme:
    """Kampa, Clements, Jonas & Stuart 2004 10-state NMDA receptor with kinetic Mg2+."""
    G, M = "glutamate", "mg"

    def blk(k0: float) -> Rate:
        return Rate(k0, M, vk=_KAMPA_VK_BLOCK, v0=_KAMPA_V0)

    def unblk(k0: float) -> Rate:
        return Rate(k0, vk=_KAMPA_VK_UNBLOCK, v0=_KAMPA_V0)

    T = [
        # gating without Mg2+
        ("U", "Cl", Rate(1e7, G)), ("Cl", "U", 5.6),          # Rb, Ru
        ("Cl", "O", 10.0), ("O", "Cl", 273.0),                 # Ro, Rc
        ("Cl", "D1", 2.2), ("D1", "Cl", 1.6),                  # Rd1, Rr1
        ("D1", "D2", 0.43), ("D2", "D1", 0.5),                 # Rd2, Rr2
        # gating with Mg2+ bound
        ("UMg", "ClMg", Rate(1e7, G)), ("ClMg", "UMg", 17.1),  # RbMg, RuMg
        ("ClMg", "OMg", 10.0), ("OMg", "ClMg", 548.0),         # RoMg, RcMg
        ("ClMg", "D1Mg", 2.1), ("D1Mg", "ClMg", 0.87),         # Rd1Mg, Rr1Mg
        ("D1Mg", "D2Mg", 0.26), ("D2Mg", "D1Mg", 0.42),        # Rd2Mg, Rr2Mg
        # Mg2+ binding (at +40 mV) and unbinding
        ("O", "OMg", blk(5e4)), ("OMg", "O", unblk(12800.0)),          # Rmb, Rmu
        ("U", "UMg", blk(50.0)), ("UMg", "U", unblk(2.438312)),        # Rmc1b, Rmc1u
        ("Cl", "ClMg", blk(50.0)), ("ClMg", "Cl", unblk(5.041915)),    # Rmc2b, Rmc2u
        ("D1", "D1Mg", blk(50.0)), ("D1Mg", "D1", unblk(2.98874)),     # Rmd1b, Rmd1u
        ("D2", "D2Mg", blk(50.0)), ("D2Mg", "D2", unblk(2.953408)),    # Rmd2b, Rmd2u
    ]
    notes = ("10-state scheme of ModelDB 50207 NMDA_Mg.mod: U <-> Cl <-> O, Cl <-> D1 <-> D2, "
             "each with a Mg2+-bound twin (UMg, ClMg, OMg, D1Mg, D2Mg) with its own gating "
             "rates.  Only ONE glutamate binding step.  Mg2+ binding/unbinding as in the .mod: "
             "k = k(+40 mV) * exp((V - 40 mV)*(-2)*0.8/25 mV) for block and "
             "exp(-(V - 40 mV)*(-2)*0.2/25 mV) for unblock, written here as Rate(vk, v0 = +40 mV) "
             "with vk = -15.625 mV (block) and +62.5 mV (unblock), i.e. a fixed 25 mV thermal "
             "voltage as in the file (not RT/F).  Rates converted from /uM/ms and /ms to SI.  "
             "Ligands: 'glutamate', 'mg' (M).  Glycine saturating.  E_rev +5 mV as in the file; "
             "single-channel conductance 50 pS (library convention; file gmax 500 pS per "
             "synapse); Mg2+-bound states do not conduct.  Temperature 23 C (demo), no Q10.  "
             "Mg2+ at equilibrium, 1 mM, -60 mV: open-channel unblocked fraction O/(O+OMg) "
             "0.0791, but the whole-current ratio Po(Mg)/Po(0) -- what Jahr-Stevens B(V) "
             "(0.0796) describes -- is 0.030, because Mg2+ also binds closed states and changes "
             "gating; over -80..0 mV the current ratio is 0.0063, 0.030, 0.132, 0.424, 0.780 vs "
             "B(V) 0.0244, 0.0796, 0.230, 0.508, 0.781 (docs/validation.md).  NOT in detailed "
             "balance, as in the file: around each Mg2+ square the product of the rates "
             "X -> Y -> YMg -> XMg -> X over that of the reverse path is 1.48 (U, Cl), 0.791 "
             "(Cl, O), 0.961 (Cl, D1) and 1.41 (D1, D2) at every voltage and concentration, so "
             "the steady state carries cycle fluxes (ketacore.theory.is_reversible is False); "
             "the published parameter set is kept unchanged.  Mg2+ is part of this model's "
             "gating: composing a pore blocker onto it with kc.block copies Mg2+ binding into "
             "the blocked arm (states such as OMg·ket hold Mg2+ and the blocker in one pore); "
             "for ketamine with kinetic Mg2+, compose a Mg2+-free model with both blockers, "
             "kc.block(gating, 'ketamine', 'mg').")
    return Scheme(["U", "Cl", "O", "D1", "D2", "UMg", "ClMg", "OMg", "D1Mg", "D2Mg"], T,
                  conductance={"O": G_NMDA}, e_rev=5 * mV, ligands=[G, M], name="kampa2004",
                  citation=("Kampa BM, Clements J, Jonas P, Stuart GJ (2004) Kinetics of Mg2+ "
                            "unblock of NMDA receptors: implications for spike-timing dependent "
                            "synaptic plasticity. J Physiol 556:337-345; model ModelDB 50207 "
                            "NMDA_Mg.mod"),
                  doi="10.1113/jphysiol.2003.058842",
                  notes=notes + "  DOI not verified (from memory; the citation itself is "
                                "verified in several model files).",
                  temperature=celsius(23.0))



# --------------------------------------------------------------------------- Popescu 2004
# Popescu, Robert, Howe & Auerbach 2004 (Nature 430:790-793, doi:10.1038/nature02775),
# GluN1/GluN2A (NR1/NR2A) gating in its three modes H, M (the most common) and L.  Rates as
# printed in the docstring of NMDAR() in geoffder/kinetics graph_builds.py (commit 41953e3f;
# "Popescu et al., 2004. doi: 10.1038/nature02775", "Modal rate constants (M is most common
# mode)"), in (uM s)^-1 and s^-1, and used by the same function (in /mM/ms and /ms) as
#   R -> AR 2*kon*[A], AR -> R koff, AR -> A2R1 kon*[A], A2R1 -> AR 2*koff,
#   A2R1 <-> A2R2 (C1C2, C2C1), A2R2 <-> A2R3 (C2C3, C3C2), A2R3 <-> A2R* (C3O1, O1C3),
#   A2R* <-> A2R** (O1O2, O2O1):
#               H     M     L
#        kon  = 20    19    17     (uM s)^-1  -> x 1e6 = M^-1 s^-1
#        koff = 58    58    60     s^-1
#        C1C2 = 93    150   127    s^-1
#        C2C1 = 196   173   161
#        C2C3 = 914   902   580
#        C3C2 = 954   2412  2610
#        C3O1 = 6729  4467  2508
#        O1C3 = 321   1283  2167
#        O1O2 = 1343  4630  3449
#        O2O1 = 247   526   662
# The L column is also eLife 2023 e80152 Table 7 ("NMDAr (GluN2A)", every value cited to
# Popescu et al. 2004; https://pmc.ncbi.nlm.nih.gov/articles/PMC10435238/table/table7) with the
# statistical factors multiplied in: ka = 34 = 2*17, kb = 17 (uM s)^-1, k-a = 60, k-b = 120 =
# 2*60, kc 127, k-c 161, kd 580, k-d 2610, ke 2508, k-e 2167, kf 3449, k-f 662 s^-1.
_POP = {
    "h": dict(kon=20e6, koff=58.0, c1c2=93.0, c2c1=196.0, c2c3=914.0, c3c2=954.0,
              c3o1=6729.0, o1c3=321.0, o1o2=1343.0, o2o1=247.0),
    "m": dict(kon=19e6, koff=58.0, c1c2=150.0, c2c1=173.0, c2c3=902.0, c3c2=2412.0,
              c3o1=4467.0, o1c3=1283.0, o1o2=4630.0, o2o1=526.0),
    "l": dict(kon=17e6, koff=60.0, c1c2=127.0, c2c1=161.0, c2c3=580.0, c3c2=2610.0,
              c3o1=2508.0, o1c3=2167.0, o1o2=3449.0, o2o1=662.0),
}
#: Computed from the rates above (tests/test_models_popescu.py checks them): equilibrium Po at
#: 1 mM glutamate, and the open-time components (eigenvalues of -Q_OO, glutamate-independent)
_POP_COMPUTED = {
    "h": "Po(1 mM) 0.969, Po(1 uM) 0.792; open-time components 0.535 ms and 23.6 ms, "
         "mean open time 20.1 ms",
    "m": "Po(1 mM) 0.834, Po(1 uM) 0.386; open-time components 0.158 ms and 9.38 ms, "
         "mean open time 7.64 ms",
    "l": "Po(1 mM) 0.390, Po(1 uM) 0.055; open-time components 0.166 ms and 4.21 ms, "
         "mean open time 2.87 ms",
}
#: Computed here too (tests/test_models_popescu.py checks them): after a 1 ms 1 mM glutamate
#: pulse from R, the peak Po and the slowest deactivation component (kc.theory.relaxation in 0
#: glutamate); with the library ketamine (calibrated on erreger2005_2a) the trapped occupancy of
#: kc.experiments.trapping and the single-exponential onset/recovery taus of
#: kc.experiments.block_kinetics at 10 uM (helper-115's audit, confirmed by its own expm model)
_POP_SYNAPTIC = {
    "h": dict(peak=0.413, slow=1.37, trapped=0.200, on=0.0271, off=0.384),
    "m": dict(peak=0.449, slow=0.214, trapped=0.601, on=0.0319, off=0.447),
    "l": dict(peak=0.195, slow=0.0449, trapped=0.845, on=0.0731, off=0.962),
}


def _pop_synaptic_text(mode: str) -> str:
    q = _POP_SYNAPTIC[mode]
    slow = f"{q['slow'] * 1e3:.3g} ms" if q["slow"] < 1 else f"{q['slow']:.3g} s"
    return (f"after a 1 ms 1 mM glutamate pulse from R, peak Po {q['peak']:.3g} and a slowest "
            f"deactivation component of {slow}; with the library ketamine, "
            f"trapped occupancy after the 120 s wash {100 * q['trapped']:.1f} %, onset tau at "
            f"10 uM {q['on'] * 1e3:.3g} ms, recovery tau {q['off']:.3g} s")


_POP_MODE = {"h": "H (high Po)", "m": "M (medium Po, the most common mode: the default)",
             "l": "L (low Po)"}


def _popescu(mode: str) -> Scheme:
    p = _POP[mode]
    G = "glutamate"
    T = [
        ("R", "AR", Rate(p["kon"], G, factor=2)),    # 2 kon [Glu]
        ("AR", "R", p["koff"]),                       # koff
        ("AR", "C1", Rate(p["kon"], G)),              # kon [Glu]
        ("C1", "AR", Rate(p["koff"], factor=2)),      # 2 koff
        ("C1", "C2", p["c1c2"]), ("C2", "C1", p["c2c1"]),
        ("C2", "C3", p["c2c3"]), ("C3", "C2", p["c3c2"]),
        ("C3", "O1", p["c3o1"]), ("O1", "C3", p["o1c3"]),
        ("O1", "O2", p["o1o2"]), ("O2", "O1", p["o2o1"]),
    ]
    u = mode.upper()
    notes = (
        f"GluN1/GluN2A (NR1/NR2A) gating mode {_POP_MODE[mode]} of Popescu et al. 2004: linear "
        "7-state scheme R <-> AR <-> C1 <-> C2 <-> C3 <-> O1 <-> O2 (C1 = A2R, doubly "
        "liganded closed).  The three gating modes are separate models (popescu2004_h, "
        "popescu2004_m, popescu2004_l) with the same topology and their own rates (each mode "
        "has both open states: Popescu & Auerbach 2003 Nat Neurosci 6:476-483, abstract, "
        "PubMed 12679783).  Individual receptors switch mode infrequently (abstract of "
        "doi:10.1038/nn.2214, nature.com), so modal switching is NOT in the scheme; there are "
        "NO desensitized states.  "
        f"Rates of mode {u} (SI): kon {p['kon']:.3g} /M/s, koff {p['koff']:g}, C1->C2 "
        f"{p['c1c2']:g}, C2->C1 {p['c2c1']:g}, C2->C3 {p['c2c3']:g}, C3->C2 {p['c3c2']:g}, "
        f"C3->O1 {p['c3o1']:g}, O1->C3 {p['o1c3']:g}, O1->O2 {p['o1o2']:g}, O2->O1 "
        f"{p['o2o1']:g} /s.  Statistical factors written explicitly (two identical independent "
        "glutamate sites): R->AR 2*kon*[Glu], AR->R koff, AR->C1 kon*[Glu], C1->AR 2*koff.  "
        "Where checked: all H/M/L numbers and the scheme with its factors in the docstring and "
        "code of NMDAR() in github geoffder/kinetics graph_builds.py (commit 41953e3f, which "
        "cites 'Popescu et al., 2004. doi: 10.1038/nature02775' and calls M the most common "
        "mode); the L column again, with the factors multiplied in (ka 34 = 2*17, k-b 120 = "
        "2*60), in eLife 2023 e80152 Table 7 'NMDAr (GluN2A)' "
        "(https://pmc.ncbi.nlm.nih.gov/articles/PMC10435238/table/table7), every row cited to "
        "Popescu et al. 2004.  NOT checked against the Nature paper itself (not in the stored "
        "material): the H and M columns rest on the one code source.  Ligand 'glutamate' (M); "
        "glycine assumed saturating (the scheme has no glycine steps).  Both open states O1 "
        "and O2 conduct 50 pS and E_rev is 0 V: library conventions as for the other NMDA "
        "models, not from the source.  No voltage dependence, no Mg2+ (compose with "
        "kc.blockers).  Temperature: the library default 22 C; the recording temperature of "
        "the cell-attached recordings was not found in the stored material; no Q10.  "
        f"Computed here: {_POP_COMPUTED[mode]}.  Published for comparison (not a fit target): "
        "cell-attached GluN1/GluN2A records pooled over modes give an aggregated short open "
        "component 0.12 ms and long 8.71 ms, closed-time components 0.14, 1.03, 4.16, 26.9 and "
        "1789 ms (https://pmc.ncbi.nlm.nih.gov/articles/PMC3149435/figure/fig6 caption), to "
        "set beside the open-time components computed above"
        + (" (+32 % and +8 % from the pooled values)" if mode == "m" else "")
        + "; no closure of this scheme lasts ~1.8 s (no desensitization).  "
        f"Computed for synaptic use: {_pop_synaptic_text(mode)}.  Without desensitization "
        "or modal switching, deactivation in modes H and M is far slower than the ~50-90 ms "
        "measured for GluN1/GluN2A (helper-115's audit, PMC6858497 Table 1; mode L 45 ms).  "
        "Library blockers (kc.blockers) were calibrated on erreger2005_2a (trapped occupancy "
        "86.1 %, tau_on 0.58 s and tau_off 4.5 s targets from Gilling 2009) and their "
        "open-channel rates are Po-corrected macroscopic rates, so composed with this model "
        "the equilibrium IC50 is the same (K_B for a trapping blocker) but the kinetics and "
        "the trapping are not: the channels here deactivate while the drug is still leaving "
        "(deactivation races unblock), so far less stays trapped in modes M and H."
    )
    return Scheme(["R", "AR", "C1", "C2", "C3", "O1", "O2"], T,
                  conductance={"O1": G_NMDA, "O2": G_NMDA}, e_rev=0.0, ligands=[G],
                  name=f"popescu2004_{mode}",
                  citation=("Popescu G, Robert A, Howe JR, Auerbach A (2004) Reaction mechanism "
                            "determines NMDA receptor response to repetitive stimulation. "
                            "Nature 430:790-793"),
                  doi="10.1038/nature02775", notes=notes, temperature=celsius(22.0))


def popescu2004_h() -> Scheme:
    """Popescu et al. 2004 GluN1/GluN2A, high-Po mode H."""
    return _popescu("h")


def popescu2004_m() -> Scheme:
    """Popescu et al. 2004 GluN1/GluN2A, medium-Po mode M (the most common)."""
    return _popescu("m")


def popescu2004_l() -> Scheme:
    """Popescu et al. 2004 GluN1/GluN2A, low-Po mode L."""
    return _popescu("l")


BUILDERS = {
    "ch82": ch82,
    "destexhe1994": destexhe1994,
    "destexhe1994_sf": destexhe1994_sf,
    "destexhe1998_ampa": destexhe1998_ampa,
    "destexhe1998_gabaa": destexhe1998_gabaa,
    "erreger2005_2a": erreger2005_2a,
    "erreger2005_2b": erreger2005_2b,
    "kampa2004": kampa2004,
    "popescu2004_h": popescu2004_h,
    "popescu2004_m": popescu2004_m,
    "popescu2004_l": popescu2004_l,
}


def _rates_at_model_temperature(scheme: Scheme) -> Scheme:
    """Every rate's reference temperature ``t_ref`` set to the model's temperature: the rates
    are the model's at its own temperature, so a Q10 a user adds scales from there (with the
    default 22 °C, adding q10=3 to destexhe1994 at its 36 °C multiplied every rate by 4.66;
    helper-100's audit).  No rate has a Q10, so no value changes."""
    from dataclasses import replace
    T = scheme.temperature
    return scheme.with_rates({f"{t.src}->{t.dst}": replace(t.rate, t_ref=T) for t in scheme.transitions
                              if t.rate.t_ref != T})


def toml_text(name: str) -> str:
    """The TOML text of built-in model ``name`` as this script writes it."""
    return _rates_at_model_temperature(BUILDERS[name]()).to_toml()


def main() -> None:
    for name in BUILDERS:
        (HERE / f"{name}.toml").write_text(toml_text(name), encoding="utf-8")
        print(f"wrote {name}.toml")


if __name__ == "__main__":
    main()
