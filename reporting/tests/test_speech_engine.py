import importlib.util

import pytest
from django.core.exceptions import ImproperlyConfigured

from reporting.speech.engine import (
    SpeechUnavailable,
    check_engine_configuration,
    recognizer_for,
)


def test_an_engine_whose_package_is_missing_stops_start_up(settings) -> None:  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("vosk") is not None:
        pytest.skip("vosk is installed here")
    settings.NIMBUS_SPEECH_ENGINE = "vosk"

    with pytest.raises(ImproperlyConfigured, match="vosk package is not installed"):
        check_engine_configuration()


def test_the_default_engine_needs_nothing_more(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NIMBUS_SPEECH_ENGINE = "pocketsphinx"

    check_engine_configuration()


def test_pocketsphinx_refuses_a_language_it_has_no_model_for() -> None:
    with pytest.raises(SpeechUnavailable):
        recognizer_for("fr")


def test_a_recogniser_hears_nothing_in_silence() -> None:
    recognizer = recognizer_for("en")

    recognizer.accept(b"\0" * 32000)

    assert recognizer.end_utterance() == ""
    assert recognizer.end_utterance() == ""
