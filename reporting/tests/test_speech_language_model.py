from pathlib import Path

import pytest

from reporting.speech import language_model
from reporting.tests.speech_audio import spoken_sentences


def test_the_same_corpus_builds_the_same_bytes(tmp_path: Path) -> None:
    corpus = language_model.base_corpus_path("en").read_text(encoding="utf-8")

    first = language_model.build_model([corpus], tmp_path / "first")
    second = language_model.build_model([corpus], tmp_path / "second")

    assert first.lm_path.read_bytes() == second.lm_path.read_bytes()
    assert first.dict_path.read_bytes() == second.dict_path.read_bytes()


def test_the_shipped_model_is_the_one_the_corpus_builds(tmp_path: Path) -> None:
    corpus = language_model.base_corpus_path("en").read_text(encoding="utf-8")
    shipped = language_model.base_model_dir("en")

    build = language_model.build_model([corpus], tmp_path)

    assert build.lm_path.read_bytes() == (shipped / language_model.LM_NAME).read_bytes()
    assert build.dict_path.read_bytes() == (shipped / "radiology.dict").read_bytes()


def test_the_model_is_a_trigram_model_with_the_radiology_words() -> None:
    model = language_model.base_model_dir("en")
    arpa = (model / language_model.LM_NAME).read_text(encoding="utf-8")
    words = {
        line.split()[0]
        for line in (model / language_model.DICT_NAME).read_text().splitlines()
    }

    assert "ngram 3=" in arpa
    for word in ("effusion", "pneumothorax", "hypodense", "parenchyma", "period"):
        assert word in words


def test_every_word_of_the_corpus_has_a_written_pronunciation() -> None:
    pronunciations = language_model.load_pronunciations("en")
    corpus = language_model.base_corpus_path("en").read_text(encoding="utf-8")
    phones = {"AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY"}
    phone_set = set(next(iter(phones)).split()) | set(
        "P R S SH T TH UH UW V W Y Z ZH".split()
    )

    for sentence in language_model.training_sentences(corpus):
        for word in sentence:
            assert word in pronunciations, word
            for variant in pronunciations[word]:
                assert set(variant.split()) <= phone_set, (word, variant)


def test_a_build_refuses_a_word_without_pronunciation(tmp_path: Path) -> None:
    with pytest.raises(language_model.MissingPronunciation) as refused:
        language_model.build_model(["The zorblax is enlarged."], tmp_path)

    assert refused.value.words == ["zorblax"]


def test_a_tenant_build_leaves_out_lines_with_unknown_words(tmp_path: Path) -> None:
    build = language_model.build_model(
        ["The zorblax is enlarged.\nThe spleen is enlarged."],
        tmp_path,
        skip_unknown=True,
    )

    assert build.skipped_lines == [
        "the zorblax is enlarged period",
        "the zorblax is enlarged",
    ]
    assert "spleen" in build.dict_path.read_text()


def test_written_numbers_and_units_become_spoken_words() -> None:
    assert language_model.spoken_tokens("Nodule of 4.5 mm, stable.") == (
        "nodule of four point five millimeters comma stable period".split()
    )


def test_the_accuracy_sentences_are_not_in_the_training_text() -> None:
    corpus = language_model.base_corpus_path("en").read_text(encoding="utf-8")
    trained = {" ".join(s) for s in language_model.training_sentences(corpus)}
    pronunciations = language_model.load_pronunciations("en")

    sentences = spoken_sentences()
    assert len(sentences) >= 40
    for sentence in sentences:
        assert sentence not in trained
        assert all(word in pronunciations for word in sentence.split())
