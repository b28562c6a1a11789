"""A spoken "macro <name>" puts the tenant's normal text into the report."""

import pytest

from accounts.models import User
from pacs.models import Study
from reporting.dictation_consumer import do_dictate_macro
from reporting.models import Report, ReportMacro
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

NORMAL_CHEST = "Heart size normal. Lungs clear. No pleural effusion."


def test_a_spoken_macro_name_appends_the_macro_text(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    ReportMacro.objects.create(name="normal chest", text=NORMAL_CHEST)

    text = do_dictate_macro(tenant_a.schema_name, radiologist, study, "normal  chest")

    assert text == NORMAL_CHEST
    assert Report.objects.get(study=study).text == NORMAL_CHEST


def test_an_unknown_macro_name_changes_nothing(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    ReportMacro.objects.create(name="normal chest", text=NORMAL_CHEST)

    text = do_dictate_macro(tenant_a.schema_name, radiologist, study, "normal knee")

    assert text is None
    assert not Report.objects.filter(study=study).exclude(text="").exists()
