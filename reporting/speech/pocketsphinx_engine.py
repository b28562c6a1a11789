"""PocketSphinx with Nimbus's radiology language model (the default engine)."""

import logging
from pathlib import Path

from reporting.speech import language_model
from reporting.speech.engine import SpeechUnavailable

logger = logging.getLogger(__name__)


def model_dir(language: str, schema: str | None) -> Path:
    """The tenant's rebuilt model when there is one, else the shipped one."""
    if schema:
        own = language_model.tenant_model_dir(schema, language)
        if (own / language_model.LM_NAME).is_file():
            return own
    shipped = language_model.base_model_dir(language)
    if not (shipped / language_model.LM_NAME).is_file():
        raise SpeechUnavailable(f"PocketSphinx has no {language} model in Nimbus.")
    return shipped


class PocketSphinxRecognizer:
    def __init__(self, language: str, schema: str | None = None) -> None:
        from pocketsphinx import Decoder, get_model_path

        if language != "en":
            # The wheel carries an English acoustic model only.
            raise SpeechUnavailable(f"PocketSphinx cannot recognise {language}.")
        folder = model_dir(language, schema)
        self._decoder = Decoder(
            hmm=str(Path(get_model_path()) / "en-us" / "en-us"),
            lm=str(folder / language_model.LM_NAME),
            dict=str(folder / language_model.DICT_NAME),
            loglevel="FATAL",
        )
        self._in_utterance = False

    def accept(self, pcm: bytes) -> str:
        if not self._in_utterance:
            self._decoder.start_utt()
            self._in_utterance = True
        self._decoder.process_raw(pcm, False, False)
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""

    def end_utterance(self) -> str:
        if not self._in_utterance:
            return ""
        self._decoder.end_utt()
        self._in_utterance = False
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""
