import pytest
from django.test import Client

from accounts.models import User
from conftest import tenant_client
from pacs.models import Study
from reporting.models import PickList, ReportMacro, ReportTemplate
from reporting.selectors import expand_macro, render_template
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def templates_url(study: Study) -> str:
    return f"/api/studies/{study.study_instance_uid}/report/templates"


@pytest.fixture
def ct_abdomen(tenant_a: Tenant) -> ReportTemplate:
    return ReportTemplate.objects.create(
        name="CT abdomen",
        modality="CT",
        findings="Liver [[liver]]. Pancreas normal.",
        impression="[[ ]]",
    )


def test_it_offers_the_templates_that_fit_the_study_modality(
    client_a: Client, study: Study, ct_abdomen: ReportTemplate
) -> None:
    ReportTemplate.objects.create(name="MR knee", modality="MR", body_part="KNEE")
    ReportTemplate.objects.create(name="Any study")

    names = [t["name"] for t in client_a.get(templates_url(study)).json()]

    assert names == ["Any study", "CT abdomen"]


def test_it_renders_a_template_as_sections_with_fields(
    ct_abdomen: ReportTemplate,
) -> None:
    text = render_template(ct_abdomen)

    assert text.splitlines()[0] == "CLINICAL INFORMATION:"
    assert "FINDINGS:\nLiver [[liver]]. Pancreas normal." in text
    assert text.count("[[ ]]") == 4


def test_it_leaves_out_inactive_templates(
    client_a: Client, study: Study, ct_abdomen: ReportTemplate
) -> None:
    ct_abdomen.active = False
    ct_abdomen.save()

    assert client_a.get(templates_url(study)).json() == []


def test_it_shows_templates_only_to_radiologists(
    tenant_a: Tenant, referrer: User, study: Study
) -> None:
    response = tenant_client(tenant_a, referrer).get(templates_url(study))

    assert response.status_code == 404


def test_it_expands_a_macro_by_its_spoken_name(tenant_a: Tenant) -> None:
    ReportMacro.objects.create(name="normal chest", text="Lungs are clear.")

    assert expand_macro(tenant_a, "Normal   Chest") == "Lungs are clear."
    assert expand_macro(tenant_a, "abnormal chest") is None


def test_it_answers_a_macro_over_the_api(client_a: Client, tenant_a: Tenant) -> None:
    ReportMacro.objects.create(name="normal chest", text="Lungs are clear.")

    found = client_a.get("/api/report-macros/normal chest")
    missing = client_a.get("/api/report-macros/nothing")

    assert found.json() == {"name": "normal chest", "text": "Lungs are clear."}
    assert missing.status_code == 404


def test_it_gives_the_editor_the_pick_lists_and_macros(
    client_a: Client, study: Study
) -> None:
    PickList.objects.create(name="liver", choices="normal\nenlarged\n\nsteatotic")
    ReportMacro.objects.create(name="normal chest", text="Lungs are clear.")

    page = client_a.get(f"/reports/studies/{study.study_instance_uid}/")

    content = page.content.decode()
    assert '"liver": ["normal", "enlarged", "steatotic"]' in content
    assert '<option value="normal chest">' in content
