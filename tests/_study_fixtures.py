"""Study pieces shared by the study and plot tests.

The Mealing trapping protocol -- control (agonist), block (agonist + blocker), wash (nothing),
recovery (agonist), labelled as the ``trapping`` analysis needs them -- written once, with the
durations and concentrations each test varies given as arguments (quantities or ``$name``
expressions, as in a study file).
"""
import json


def trapping_segments(*, control="1 s", block="2 s", wash="2 s", recovery="1 s",
                      glutamate="1 mM", ketamine="10 uM"):
    """The four segments of the trapping protocol as study tables (a list of dicts).

    Parameters
    ----------
    control, block, wash, recovery : str or float
        Each segment's duration.
    glutamate : str or float
        The agonist concentration of control, block and recovery.
    ketamine : str or float
        The blocker concentration of block.
    """
    return [{"label": "control", "duration": control, "glutamate": glutamate},
            {"label": "block", "duration": block, "glutamate": glutamate, "ketamine": ketamine},
            {"label": "wash", "duration": wash},
            {"label": "recovery", "duration": recovery, "glutamate": glutamate}]


def trapping_toml(table="protocols.trap", **kw):
    """The same segments as TOML ``[[TABLE.segments]]`` tables (keys in the order label,
    duration, glutamate, ketamine; one blank line between tables; no trailing newline).

    Parameters
    ----------
    table : str
        The protocol's table (``"protocol"`` or ``"protocols.NAME"``).
    **kw
        As :func:`trapping_segments`.
    """
    return "\n\n".join(f"[[{table}.segments]]\n" + "\n".join(f"{k} = {json.dumps(v)}"
                                                             for k, v in seg.items())
                       for seg in trapping_segments(**kw))


def two_state_toml(*, name="mine", k0=200.0, conductance=5e-11, header="", extra_opening=""):
    """A scheme file for a two-state channel C <-> O (C -> O at ``k0`` /s, O -> C at 100 /s):
    the smallest model a study can load from a ``.toml`` file.

    Parameters
    ----------
    name : str
        ``[scheme] name``.
    k0 : float or str
        The opening rate constant (/s), as written in the file.
    conductance : float or str
        The open state's conductance (S), as written in the file.
    header : str
        Text before ``[scheme]`` (e.g. a stray top-level table).
    extra_opening : str
        Extra lines of the C -> O transition table (e.g. ``vk = ...``).
    """
    return (f"{header}\n[scheme]\nname = \"{name}\"\n\n[[states]]\nname = \"C\"\n\n"
            f"[[states]]\nname = \"O\"\nconductance = {conductance}\n\n"
            f"[[transitions]]\nfrom = \"C\"\nto = \"O\"\nk0 = {k0}\n{extra_opening}\n\n"
            "[[transitions]]\nfrom = \"O\"\nto = \"C\"\nk0 = 100.0\n")


def minimal_study(**kw):
    """The smallest study that reaches validation (nothing is simulated): erreger2005_2a with
    ketamine, one 1 s protocol at 1 mM glutamate unless ``parts`` is given; ``kw`` overrides."""
    import ketacore as kc
    base = dict(model="erreger2005_2a", blockers=["ketamine"], n_channels=10, n_trials=2, rng=1)
    if "parts" not in kw:
        base["protocol"] = [{"duration": "1 s", "glutamate": "1 mM", "label": "a"}]
    base.update(kw)
    return kc.Study(**base)
