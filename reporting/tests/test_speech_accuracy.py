"""Word error rate of dictation: synthetic voices read sentences to the socket.

flite's voices slt and rms (and, for the record only, espeak-ng's en-us)
speak a fixed list of radiology sentences that are not in the language
model's training text. Each is streamed through the dictation websocket in
100 ms binary frames, as the browser sends them, and the final text that
the socket answers (and appends to the report) is compared with what was
spoken.
"""

import shutil
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync

from pacs.models import Study
from reporting.models import Report
from reporting.tests import speech_audio
from reporting.tests.test_speech_dictation import dictation_socket, say

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(shutil.which("flite") is None, reason="needs Debian's flite"),
]


@pytest.fixture(autouse=True)
def _keep_the_test_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


def dictate_every_sentence(
    study: Study, token: str, voice: str, folder: Path
) -> tuple[float, int, list[str]]:
    """(word error rate, sentences word for word, final texts) for one voice."""
    sentences = speech_audio.spoken_sentences()
    audio = [
        speech_audio.speak(text, voice, folder / f"{voice}-{index}.wav")
        for index, text in enumerate(sentences)
    ]
    finals: list[str] = []

    async def scenario() -> None:
        socket = dictation_socket(study, token=token)
        assert (await socket.connect())[0]
        try:
            for pcm in audio:
                finals.append((await say(socket, pcm))["text"])
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()

    errors = exact = words = 0
    for spoken, final in zip(sentences, finals, strict=True):
        wrong = speech_audio.word_errors(spoken.split(), speech_audio.words_of(final))
        errors += wrong
        exact += wrong == 0
        words += len(spoken.split())
    rate = errors / words
    print(f"\n{voice}: WER {rate:.2%}, {exact}/{len(sentences)} sentences exact")
    return rate, exact, finals


@pytest.mark.parametrize("voice", ["slt", "rms"])
def test_flite_dictation_is_recognised_almost_word_for_word(
    voice: str, token_a: str, study: Study, tmp_path: Path
) -> None:
    rate, exact, finals = dictate_every_sentence(study, token_a, voice, tmp_path)

    assert rate <= 0.05
    assert exact >= 30
    report = Report.objects.get(study=study)
    assert all(final in report.text for final in finals if final)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_espeak_ng_dictation_is_measured(
    token_a: str, study: Study, tmp_path: Path
) -> None:
    # A harder, robotic voice: measured and printed, with no threshold.
    rate, _exact, finals = dictate_every_sentence(study, token_a, "espeak-ng", tmp_path)

    assert 0.0 <= rate <= 1.0
    assert len(finals) == len(speech_audio.spoken_sentences())
