# The reporting tests' real CT study and a second patient's study.
from reporting.tests.conftest import other_study, study  # noqa: F401
