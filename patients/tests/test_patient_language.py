"""A patient reads the link, its e-mail and their results in the language they pick."""

import re

import pytest
from django.core import mail
from django.test import Client

from patients.tests.test_patient_access import (  # noqa: F401 (fixtures)
    link_path,
    mailed_code,
    signed,
)
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def test_the_patient_picks_dutch_and_gets_page_e_mail_and_results_in_dutch(
    tenant_a: Tenant,
    link_path: str,  # noqa: F811
) -> None:
    patient = Client(HTTP_HOST=tenant_a.domains.first().domain)  # type: ignore[union-attr]
    english = patient.get(link_path).content.decode()

    patient.post("/accounts/language/", {"language": "nl", "next": link_path})
    dutch = patient.get(link_path).content.decode()
    patient.post(link_path, {"action": "send"})
    patient.post(link_path, {"action": "verify", "code": mailed_code()})
    results = patient.get("/patient/").content.decode()

    assert 'id="language-switcher"' in english and '<html lang="en">' in english
    assert '<html lang="nl">' in dutch
    assert mail.outbox[-1].subject == "Uw code om uw onderzoeksuitslagen te bekijken"
    assert '<html lang="nl">' in results
    assert re.search(r"\b\d{1,2}-\d{1,2}-\d{4}\b", results), "a Dutch date (j-n-Y)"
