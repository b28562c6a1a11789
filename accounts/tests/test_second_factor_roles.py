"""A password alone opens nothing, whatever the role."""

import pytest

from accounts.models import Role
from conftest import make_user, tenant_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", list(Role))
def test_a_session_without_its_second_factor_reaches_no_page_of_any_role(
    tenant_a, role
):
    user = make_user(tenant_a, f"user.{role}", role)
    client = tenant_client(tenant_a)

    pages = ("/", "/reports/notifications/", "/reports/outbound/", "/admin/")
    for page in pages:
        client.force_login(user)  # password checked, one-time password not
        response = client.get(page)
        assert response.status_code == 302, page
        assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("role", list(Role))
def test_a_session_without_its_second_factor_gets_no_api_or_dicomweb_answer(
    tenant_a, role
):
    user = make_user(tenant_a, f"user.{role}", role)
    client = tenant_client(tenant_a)
    client.force_login(user)

    assert client.get("/api/studies/1.2.3/report").status_code in (401, 403)
    client.force_login(user)
    assert client.get("/dicomweb/studies").status_code == 401
