"""A tenant's language model learns the words of its own signed reports."""

from pathlib import Path

import pytest
from django.core.management import call_command

from pacs.models import Study
from reporting.models import Report, ReportMacro, ReportStatus
from reporting.speech import language_model
from reporting.speech.pocketsphinx_engine import model_dir
from reporting.tests import speech_audio
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _models_in_tmp(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.NIMBUS_SPEECH_TENANT_MODEL_DIR = tmp_path / "speech"


def dictionary_words(folder: Path) -> set[str]:
    text = (folder / language_model.DICT_NAME).read_text(encoding="utf-8")
    return {line.split()[0] for line in text.splitlines()}


def test_it_learns_the_words_of_signed_reports_only(
    tenant_a: Tenant, study: Study, other_study: Study
) -> None:
    Report.objects.create(
        study=study,
        status=ReportStatus.SIGNED,
        text="Findings: cavitating lesions, in keeping with tuberculosis.",
    )
    Report.objects.create(study=other_study, text="Draft mentioning sarcoma.")

    call_command("rebuild_language_model", "--tenant", tenant_a.schema_name)

    own = language_model.tenant_model_dir(tenant_a.schema_name, "en")
    assert "tuberculosis" in dictionary_words(own)
    assert "sarcoma" not in dictionary_words(own)
    assert "effusion" in dictionary_words(own)
    assert "tuberculosis" not in dictionary_words(language_model.base_model_dir("en"))


def test_the_engine_uses_the_tenants_model_once_it_exists(tenant_a: Tenant) -> None:
    schema = tenant_a.schema_name
    assert model_dir("en", schema) == language_model.base_model_dir("en")

    call_command("rebuild_language_model", "--tenant", schema)

    assert model_dir("en", schema) == language_model.tenant_model_dir(schema, "en")
    assert model_dir("en", "hospital_b") == language_model.base_model_dir("en")


def test_the_tenant_model_recognises_a_word_only_its_reports_use(
    tenant_a: Tenant, study: Study, tmp_path: Path
) -> None:
    from reporting.speech.engine import recognizer_for

    Report.objects.create(
        study=study,
        status=ReportStatus.SIGNED,
        text="The appearances are in keeping with tuberculosis.",
    )
    call_command("rebuild_language_model", "--tenant", tenant_a.schema_name)
    pcm = speech_audio.speak(
        "the appearances are in keeping with tuberculosis", "rms", tmp_path / "t.wav"
    )

    recognizer = recognizer_for("en", tenant_a.schema_name)
    recognizer.accept(pcm)

    assert (
        recognizer.end_utterance() == "the appearances are in keeping with tuberculosis"
    )


def test_it_learns_the_spoken_name_of_each_macro(tenant_a: Tenant) -> None:
    ReportMacro.objects.create(name="normal chest", text="Lungs clear.")

    call_command("rebuild_language_model", "--tenant", tenant_a.schema_name)

    own = language_model.tenant_model_dir(tenant_a.schema_name, "en")
    model = (own / language_model.LM_NAME).read_text(encoding="utf-8")
    assert "macro normal chest" in model
