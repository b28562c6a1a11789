"""Spoken test audio: flite and espeak-ng read sentences into 16 kHz PCM."""

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

SENTENCES_FILE = Path(__file__).with_name("speech_sentences.txt")
SAMPLE_RATE = 16000


def spoken_sentences() -> list[str]:
    lines = SENTENCES_FILE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def speak(text: str, voice: str, out: Path) -> bytes:
    """``voice`` is a flite voice (slt, rms) or ``espeak-ng``; returns the PCM."""
    if voice == "espeak-ng":
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-w", str(out), text],
            check=True,
            capture_output=True,
        )
    else:
        subprocess.run(
            ["flite", "-voice", voice, "-t", text, "-o", str(out)],
            check=True,
            capture_output=True,
        )
    return pcm_16k(out)


def pcm_16k(path: Path) -> bytes:
    """Mono s16le at 16 kHz, resampled linearly when the file has another rate."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if rate == SAMPLE_RATE:
        return samples.tobytes()
    duration = samples.size / rate
    at = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    resampled = np.interp(at, np.arange(samples.size) / rate, samples)
    return resampled.astype("<i2").tobytes()


def write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)


def has_voices() -> bool:
    return shutil.which("flite") is not None


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words: substitutions, insertions, deletions."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(
                min(
                    previous[j] + 1,
                    current[j - 1] + 1,
                    previous[j - 1] + (ref_word != hyp_word),
                )
            )
        previous = current
    return previous[-1]


def words_of(text: str) -> list[str]:
    return [word.strip(".,:").lower() for word in text.split() if word.strip(".,:")]
