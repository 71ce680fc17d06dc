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
