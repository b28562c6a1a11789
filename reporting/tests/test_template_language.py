import datetime
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import translation

from accounts.models import User
from pacs.models import Study
from reporting.exports import report_html
from reporting.models import Report, ReportStatus, ReportTemplate
from reporting.selectors import render_template
from reporting.template_seeds import do_seed_report_templates

pytestmark = pytest.mark.django_db


def templates_url(study: Study) -> str:
    return f"/api/studies/{study.study_instance_uid}/report/templates"


@pytest.fixture
def chest_templates(tenant_a) -> None:  # type: ignore[no-untyped-def]
    ReportTemplate.objects.create(name="Chest", modality="CT", language="en")
    ReportTemplate.objects.create(name="Thorax", modality="CT", language="fr")
    ReportTemplate.objects.create(name="Thorax", modality="CT", language="de")
    ReportTemplate.objects.create(name="Any", modality="CT")


def test_it_offers_the_readers_language_first_then_any_then_the_rest(
    client_a: Client, radiologist: User, study: Study, chest_templates: None
) -> None:
    radiologist.language = "fr"
    radiologist.save()

    offered = client_a.get(templates_url(study)).json()

    assert [(t["name"], t["language"]) for t in offered] == [
        ("Thorax", "fr"),
        ("Any", ""),
        ("Chest", "en"),
        ("Thorax", "de"),
    ]


def test_it_follows_the_browsers_language_without_a_choice_of_the_reader(
    client_a: Client, study: Study, chest_templates: None
) -> None:
    offered = client_a.get(templates_url(study), HTTP_ACCEPT_LANGUAGE="de").json()

    assert offered[0]["language"] == "de"


def test_a_template_keeps_the_headings_of_its_own_language(tenant_a) -> None:  # type: ignore[no-untyped-def]
    dutch = ReportTemplate(name="Thorax", language="nl", findings="Geen afwijkingen.")
    open_to_all = ReportTemplate(name="Any")

    with translation.override("de"):
        dutch_text = render_template(dutch)
        any_text = render_template(open_to_all)

    assert dutch_text.splitlines()[0] == "KLINISCHE GEGEVENS:"
    assert "BEVINDINGEN:\nGeen afwijkingen." in dutch_text
    assert any_text.splitlines()[0] == "KLINISCHE ANGABEN:"


def test_the_seeded_normal_templates_come_in_the_readers_language(
    client_a: Client, radiologist: User, study: Study, tenant_a
) -> None:
    study.series.update(body_part_examined="HEAD")
    radiologist.language = "nl"
    radiologist.save()

    added = do_seed_report_templates(tenant_a.schema_name, ["en", "fr", "de", "nl"])
    offered = client_a.get(templates_url(study)).json()

    assert added == 8
    assert [t["language"] for t in offered] == ["nl", "de", "en", "fr"]  # then by name
    assert offered[0]["name"] == "Normale CT-hersenen"
    assert offered[0]["text"].startswith("KLINISCHE GEGEVENS:\n[[ ]]\n\nTECHNIEK:")


def test_seeding_again_keeps_what_the_tenant_edited(tenant_a) -> None:  # type: ignore[no-untyped-def]
    do_seed_report_templates(tenant_a.schema_name, ["fr"])
    ReportTemplate.objects.filter(language="fr").update(impression="Revu.")

    added = do_seed_report_templates(tenant_a.schema_name, ["fr", "de"])

    assert added == 2
    assert set(
        ReportTemplate.objects.filter(language="fr").values_list(
            "impression", flat=True
        )
    ) == {"Revu."}


def test_the_command_seeds_one_tenant_and_refuses_an_unknown_one(tenant_a) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()

    call_command(
        "seed_report_templates",
        tenant=tenant_a.schema_name,
        language=["de"],
        stdout=out,
    )
    with pytest.raises(CommandError):
        call_command("seed_report_templates", tenant="no_such_tenant")

    assert out.getvalue() == f"Added 2 report templates to {tenant_a.schema_name}.\n"
    assert ReportTemplate.objects.filter(language="de").count() == 2


def test_the_printable_report_is_in_the_readers_language_and_date_format(
    study: Study, radiologist: User
) -> None:
    report = Report.objects.create(
        study=study,
        status=ReportStatus.SIGNED,
        text="Bevindingen: geen afwijkingen.",
        signed_by=radiologist,
        signed_at=datetime.datetime(2026, 12, 5, 14, 30, tzinfo=datetime.UTC),
    )

    with translation.override("nl"):
        html = report_html(report)

    assert '<html lang="nl">' in html
    assert "Ondertekend door" in html
    assert re.search(r"5-12-2026 1\d:30", html)
