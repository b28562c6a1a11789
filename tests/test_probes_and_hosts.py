import pytest
from django.db import connection
from django.test import Client

from conftest import tenant_client
from tenants.models import Domain


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "a.localhost"])
def test_healthz_answers_on_any_host_a_balancer_may_use(host):
    response = Client(HTTP_HOST=host).get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_names_each_dependency():
    response = Client(HTTP_HOST="127.0.0.1").get("/readyz")

    checks = response.json()["checks"]
    assert checks["database"] is True and checks["redis"] is True
    # No worker runs beside the unit tests: not ready, and it says why.
    assert response.status_code == (200 if checks["worker"] else 503)


@pytest.mark.django_db
def test_a_tenant_host_name_is_matched_whatever_its_case(tenant_a, radiologist):
    client = tenant_client(tenant_a, radiologist)
    client.defaults["HTTP_HOST"] = "A.LocalHost"

    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_a_domain_added_to_a_tenant_is_served_at_once(tenant_a, radiologist):
    client = tenant_client(tenant_a, radiologist)
    client.get("/")  # the tenant of a.localhost is now remembered
    connection.set_schema_to_public()
    Domain.objects.create(domain="reading.a.localhost", tenant=tenant_a)
    client.defaults["HTTP_HOST"] = "reading.a.localhost"

    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_a_removed_domain_is_no_longer_served(tenant_a, radiologist):
    connection.set_schema_to_public()
    extra = Domain.objects.create(domain="old.a.localhost", tenant=tenant_a)
    client = tenant_client(tenant_a, radiologist)
    client.defaults["HTTP_HOST"] = "old.a.localhost"
    assert client.get("/").status_code == 200
    connection.set_schema_to_public()

    extra.delete()

    assert client.get("/").status_code == 404
