"""The one small interface between Nimbus and a speech recogniser.

A recogniser hears one connection's audio: 16 kHz mono signed 16-bit
little-endian PCM in chunks of any length. It answers the words heard so far
(partial), and the words of a finished utterance (final), lower case and
without punctuation; spoken commands are applied afterwards, the same way
for every engine. One recogniser serves one connection and is called from
one thread at a time.

The engine is chosen by NIMBUS_SPEECH_ENGINE. PocketSphinx is the default
and needs no download; Vosk and faster-whisper are imported only when
chosen, from a model folder the operator provides.
"""

from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SAMPLE_RATE = 16000
ENGINES = ("pocketsphinx", "vosk", "faster-whisper")


class Recognizer(Protocol):
    def accept(self, pcm: bytes) -> str:
        """Hear a chunk of PCM; answer the partial text of the utterance so far."""
        ...

    def end_utterance(self) -> str:
        """End the utterance; answer its final text and get ready for the next."""
        ...


class SpeechUnavailable(Exception):
    """No recogniser for this language with the configured engine."""


def recognizer_for(language: str, schema: str | None = None) -> Recognizer:
    """A new recogniser for one connection, with the tenant's model when it has one."""
    engine = settings.NIMBUS_SPEECH_ENGINE
    if engine == "pocketsphinx":
        from reporting.speech.pocketsphinx_engine import PocketSphinxRecognizer

        return PocketSphinxRecognizer(language, schema)
    if engine == "vosk":
        from reporting.speech.vosk_engine import VoskRecognizer

        return VoskRecognizer(model_dir_for(language))
    from reporting.speech.whisper_engine import WhisperRecognizer

    return WhisperRecognizer(model_dir_for(language), language)


def model_dir_for(language: str) -> Path:
    """``<NIMBUS_SPEECH_MODEL_DIR>/<language>``, or the folder itself (multilingual)."""
    base = Path(settings.NIMBUS_SPEECH_MODEL_DIR)
    for candidate in (base / language, base):
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    raise SpeechUnavailable(f"No {language} model under {base}.")


def check_engine_configuration() -> None:
    """Stop start-up with a clear message when the chosen engine cannot run.

    Called when the web process loads its websocket routes, so a missing
    package or model shows at start-up, not at a radiologist's first word.
    """
    engine = settings.NIMBUS_SPEECH_ENGINE
    package = {
        "pocketsphinx": "pocketsphinx",
        "vosk": "vosk",
        "faster-whisper": "faster_whisper",
    }[engine]
    try:
        __import__(package)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"NIMBUS_SPEECH_ENGINE is {engine}, but the {package} package is not "
            f"installed ({error}). Install it, or choose pocketsphinx."
        ) from error
    if engine != "pocketsphinx":
        base = settings.NIMBUS_SPEECH_MODEL_DIR
        if not base or not Path(base).is_dir():
            raise ImproperlyConfigured(
                f"NIMBUS_SPEECH_ENGINE is {engine}: set NIMBUS_SPEECH_MODEL_DIR to "
                "a local model folder (one sub-folder per language, e.g. en, fr)."
            )
