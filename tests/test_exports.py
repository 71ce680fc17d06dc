"""The public names in ketacore.__all__ all resolve (lazy ones included)."""
import ketacore as kc


def test_every_public_name_resolves():
    for name in kc.__all__:
        assert getattr(kc, name) is not None, name


def test_study_part_is_public():
    # the Study docstring refers to StudyPart; it used to exist only as kc.study.StudyPart
    from ketacore.study import StudyPart
    assert kc.StudyPart is StudyPart and "StudyPart" in kc.__all__


def test_study_error_is_public():
    # users catch it around Study.from_toml / run_study; it was only kc.study.StudyError
    from ketacore.study import StudyError
    assert kc.StudyError is StudyError and "StudyError" in kc.__all__
    assert issubclass(kc.StudyError, ValueError)


def test_core_stub_names_every_binding():
    """ketacore/_core.pyi (the typed view of the C++ module) lists exactly the module's public
    functions, classes and constants: a binding added without its stub (population_keys & co.
    were) or a stub left after its binding went fails here."""
    import re
    from pathlib import Path
    from ketacore import _core
    src = (Path(_core.__file__).parent / "_core.pyi").read_text()
    stubbed = set(re.findall(r"^(?:def|class) (\w+)", src, re.M)) | set(re.findall(r"^(\w+)\s*:", src, re.M))
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert public - stubbed == set() and stubbed - public == set()
    # and the rng submodule's functions (standard_normal and exponential_from_words had none)
    body = src[src.index("class rng:"):]
    body = body[:body.index("\n# ---")]
    in_stub = set(re.findall(r"def (\w+)\(", body))
    in_module = {n for n in dir(_core.rng) if not n.startswith("_")}
    assert in_module - in_stub == set() and in_stub - in_module == set()
