import re

import pytest
from django.test import Client

from accounts.models import User
from audit.models import AuditEvent, EventType
from conftest import current_totp, tenant_client
from pacs.models import Study
from reporting.actions import do_save_report_draft, do_sign_report
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def editor_url(study: Study) -> str:
    return f"/reports/studies/{study.study_instance_uid}/"


def test_it_shows_the_study_header_and_the_editor(
    client_a: Client, study: Study
) -> None:
    response = client_a.get(editor_url(study))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Pancreas-CT-CB_001" in page
    assert "ACC-2024-001" in page
    for element in ("report-text", "report-status", "sign-button", "sign-otp"):
        assert f'id="{element}"' in page
    assert 'id="sign-confirm"' in page and 'id="delivery-state"' in page
    assert 'id="report-strings" type="application/json"' in page
    assert "no-store" in response["Cache-Control"]
    assert AuditEvent.objects.filter(event_type=EventType.REPORT_READ).exists()


def test_it_puts_no_inline_script_on_the_page(client_a: Client, study: Study) -> None:
    page = client_a.get(editor_url(study)).content.decode()

    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts
    assert all("src=" in tag or "application/json" in tag for tag in scripts)
    assert not re.search(r"<[^>]+\son[a-z]+=", page)  # no inline handlers


def test_it_makes_a_signed_report_read_only(
    client_a: Client, radiologist: User, study: Study
) -> None:
    do_save_report_draft(radiologist, study, "Impression: normal.")
    do_sign_report(radiologist, study, current_totp())

    page = client_a.get(editor_url(study)).content.decode()

    assert re.search(r'<textarea id="report-text"[^>]*readonly', page)
    assert "Signed by rad.a" in page
    assert "Waiting to be sent to the RIS" in page


def test_it_hides_the_editor_from_a_referrer(
    tenant_a: Tenant, referrer: User, study: Study
) -> None:
    response = tenant_client(tenant_a, referrer).get(editor_url(study))

    assert response.status_code == 404
