"""The radiology language model: corpus text in, ARPA trigram and dictionary out.

A report is written ("effusion, small.") but dictated ("effusion comma
small period"), so every corpus line is turned into its spoken form first.
The trigram model itself comes from PocketSphinx's own builder
(``pocketsphinx.lm.ArpaBoLM``: Katz-style back-off with a fixed discount
mass), which writes sorted n-grams and no date: the same corpus always
gives the same bytes.

Pronunciations come from the CMU dictionary that the pocketsphinx wheel
carries, then from Nimbus's own ``pronunciations-<language>.dict`` for the
medical words the CMU dictionary lacks.
"""

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

SPEECH_DIR = Path(__file__).resolve().parent
CORPUS_DIR = SPEECH_DIR / "corpus"
MODEL_DIR = SPEECH_DIR / "model"
LM_NAME = "radiology.lm"
DICT_NAME = "radiology.dict"
# Half of each context's probability mass is kept for unseen continuations:
# report sentences recombine phrases freely, so back-off must stay cheap.
DISCOUNT_MASS = 0.5

PUNCTUATION_WORDS = {".": "period", ",": "comma", ":": "colon"}
UNITS = {"mm": "millimeters", "cm": "centimeters", "ml": "milliliters"}
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve "
    "thirteen fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+(?:'[a-z]+)?|[.,:]")


class MissingPronunciation(Exception):
    def __init__(self, words: Iterable[str]) -> None:
        self.words = sorted(set(words))
        super().__init__("No pronunciation for: " + ", ".join(self.words))


@dataclass
class ModelBuild:
    lm_path: Path
    dict_path: Path
    sentences: int
    words: int
    skipped_lines: list[str] = field(default_factory=list)


def base_corpus_path(language: str) -> Path:
    return CORPUS_DIR / f"radiology-{language}.txt"


def base_model_dir(language: str) -> Path:
    return MODEL_DIR / language_dir(language)


def language_dir(language: str) -> str:
    return {"en": "en-us"}.get(language, language)


def tenant_model_dir(schema: str, language: str) -> Path:
    """Where a tenant's own model lives: under the var dir, one folder per tenant."""
    return (
        Path(settings.NIMBUS_SPEECH_TENANT_MODEL_DIR) / schema / language_dir(language)
    )


def number_words(number: int) -> str:
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        tail = "" if rest == 0 else " " + number_words(rest)
        return _ONES[hundreds] + " hundred" + tail
    return " ".join(_ONES[int(digit)] for digit in str(number))


def spoken_tokens(line: str) -> list[str]:
    """One written line as the words a radiologist says to dictate it."""
    words: list[str] = []
    for token in _TOKEN.findall(line.lower().replace("-", " ")):
        if token in PUNCTUATION_WORDS:
            words.append(PUNCTUATION_WORDS[token])
        elif token[0].isdigit():
            whole, _dot, fraction = token.partition(".")
            words.append(number_words(int(whole)))
            if fraction:
                words.append("point " + " ".join(_ONES[int(d)] for d in fraction))
        else:
            words.append(UNITS.get(token, token))
    return " ".join(words).split()


def training_sentences(text: str) -> list[list[str]]:
    """Each line twice: with its punctuation spoken, and without it.

    Radiologists differ in whether they dictate punctuation; training on both
    keeps either habit cheap for the decoder.
    """
    sentences = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        spoken = spoken_tokens(line)
        if not spoken:
            continue
        sentences.append(spoken)
        bare = [word for word in spoken if word not in PUNCTUATION_WORDS.values()]
        if bare and bare != spoken:
            sentences.append(bare)
    return sentences


def load_pronunciations(language: str) -> dict[str, list[str]]:
    """Word -> its pronunciations (CMU first, then Nimbus's own), in file order."""
    entries: dict[str, list[str]] = {}
    for path in _dictionary_sources(language):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            head, _space, phones = line.partition(" ")
            word = re.sub(r"\(\d+\)$", "", head)
            phones = phones.split("#")[0].strip()
            if phones and phones not in entries.setdefault(word, []):
                entries[word].append(phones)
    return entries


def _dictionary_sources(language: str) -> list[Path]:
    from pocketsphinx import get_model_path

    cmu = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
    own = SPEECH_DIR / f"pronunciations-{language}.dict"
    return [cmu, own] if language == "en" else [own]


def build_model(
    texts: Iterable[str],
    out_dir: Path,
    language: str = "en",
    *,
    skip_unknown: bool = False,
) -> ModelBuild:
    """Write ``radiology.lm`` and ``radiology.dict`` for the given corpus texts.

    With ``skip_unknown``, lines holding a word without a pronunciation are
    left out (a tenant's own reports); otherwise such a word is an error (the
    base corpus, whose dictionary Nimbus ships complete).
    """
    from pocketsphinx.lm import ArpaBoLM

    pronunciations = load_pronunciations(language)
    sentences: list[list[str]] = []
    skipped: list[str] = []
    for text in texts:
        for sentence in training_sentences(text):
            unknown = [word for word in sentence if word not in pronunciations]
            if unknown and not skip_unknown:
                raise MissingPronunciation(unknown)
            if unknown:
                skipped.append(" ".join(sentence))
            else:
                sentences.append(sentence)

    corpus = "".join(" ".join(sentence) + "\n" for sentence in sentences)
    model = ArpaBoLM(text=corpus, add_start=True, discount_mass=DISCOUNT_MASS)
    model.compute()
    arpa = io.StringIO()
    model.write(arpa)

    vocabulary = sorted({word for sentence in sentences for word in sentence})
    out_dir.mkdir(parents=True, exist_ok=True)
    lm_path = out_dir / LM_NAME
    dict_path = out_dir / DICT_NAME
    _write_atomically(lm_path, arpa.getvalue())
    _write_atomically(dict_path, _dictionary_text(vocabulary, pronunciations))
    return ModelBuild(
        lm_path=lm_path,
        dict_path=dict_path,
        sentences=len(sentences),
        words=len(vocabulary),
        skipped_lines=skipped,
    )


def _dictionary_text(
    vocabulary: list[str], pronunciations: dict[str, list[str]]
) -> str:
    lines = []
    for word in vocabulary:
        for index, phones in enumerate(pronunciations[word]):
            head = word if index == 0 else f"{word}({index + 1})"
            lines.append(f"{head} {phones}\n")
    return "".join(lines)


def _write_atomically(path: Path, text: str) -> None:
    # A decoder opening the model while a rebuild writes it must see the old
    # file or the new one, never half of one.
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
