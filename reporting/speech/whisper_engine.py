"""faster-whisper from a local CTranslate2 model folder.

Whisper is not a streaming recogniser: it transcribes the utterance when it
ends, and gives no partial text meanwhile.
"""

import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

_loading = threading.Lock()
_NOT_WORD = re.compile(r"[^\w'\s]+")


@lru_cache(maxsize=4)
def _model(path: Path) -> Any:
    from faster_whisper import WhisperModel

    with _loading:
        return WhisperModel(str(path), device="cpu", compute_type="int8")


class WhisperRecognizer:
    def __init__(self, model_dir: Path, language: str) -> None:
        self._model = _model(model_dir)
        self._language = language
        self._pcm = bytearray()

    def accept(self, pcm: bytes) -> str:
        self._pcm.extend(pcm)
        return ""

    def end_utterance(self) -> str:
        import numpy as np

        samples = np.frombuffer(bytes(self._pcm), dtype="<i2").astype(np.float32)
        self._pcm.clear()
        if samples.size == 0:
            return ""
        segments, _info = self._model.transcribe(
            samples / 32768.0, language=self._language, beam_size=1
        )
        text = " ".join(segment.text for segment in segments)
        # Whisper writes its own punctuation; Nimbus applies the spoken
        # commands instead, the same for every engine.
        return " ".join(_NOT_WORD.sub(" ", text).lower().split())
