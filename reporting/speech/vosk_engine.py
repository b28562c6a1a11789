"""Vosk (Kaldi) from a local model folder: English, French, German, Dutch..."""

import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from reporting.speech.engine import SAMPLE_RATE

_loading = threading.Lock()


@lru_cache(maxsize=8)
def _model(path: Path) -> Any:
    import vosk

    # A Vosk model is large and read-only: one per folder, shared by every
    # connection (Vosk allows recognisers of one model on many threads).
    with _loading:
        return vosk.Model(str(path))


class VoskRecognizer:
    def __init__(self, model_dir: Path) -> None:
        import vosk

        self._recognizer = vosk.KaldiRecognizer(_model(model_dir), SAMPLE_RATE)
        self._heard: list[str] = []

    def accept(self, pcm: bytes) -> str:
        # Vosk ends segments at its own pauses; they all belong to this utterance.
        if self._recognizer.AcceptWaveform(pcm):
            self._heard.append(json.loads(self._recognizer.Result())["text"])
            return self._joined()
        partial = json.loads(self._recognizer.PartialResult())["partial"]
        return self._joined(partial)

    def end_utterance(self) -> str:
        final = json.loads(self._recognizer.FinalResult())["text"]
        text = self._joined(final)
        self._heard = []
        return text

    def _joined(self, tail: str = "") -> str:
        return " ".join(part for part in [*self._heard, tail] if part)
