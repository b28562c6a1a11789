"""Two onboardings at once: the second is refused, never a 500 or a theft.

The other onboarding is a second PostgreSQL connection that inserts the same
domain or AE title and commits only once this one waits for its row on the
unique index: the moment the form's checks can no longer see it.
"""

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection

from tenants.models import Domain, Tenant
from tenants.tests.conftest import ONBOARD_URL, onboarding_data

RACER = "racer"


def _connect(**options: object) -> psycopg.Connection:
    params = connection.settings_dict
    return psycopg.connect(
        host=params["HOST"] or None,
        port=params["PORT"] or None,
        user=params["USER"] or None,
        password=params["PASSWORD"] or None,
        dbname=params["NAME"],
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def elsewhere(django_db_setup: None) -> Iterator[psycopg.Connection]:
    """Another onboarding's transaction; what it commits is removed afterwards.

    Listed before the database fixtures, it is torn down after the test's
    own transaction has rolled back and released its locks.
    """
    with _connect() as other:
        yield other
        other.rollback()
        other.execute("DELETE FROM tenants_domain WHERE domain = 'stluke.localhost'")
        other.execute("DELETE FROM tenants_tenant WHERE schema_name = %s", [RACER])
        other.commit()


def commit_once_we_wait(other: psycopg.Connection) -> threading.Thread:
    """Commit ``other`` as soon as this test's connection waits for a lock."""
    our_pid = connection.connection.info.backend_pid  # type: ignore[union-attr]

    def watch() -> None:
        with _connect(autocommit=True) as watcher:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                waiting = watcher.execute(
                    "SELECT 1 FROM pg_stat_activity "
                    "WHERE pid = %s AND wait_event_type = 'Lock'",
                    [our_pid],
                ).fetchone()
                if waiting:
                    break
                time.sleep(0.05)
        other.commit()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def test_the_second_onboarding_of_a_domain_cannot_take_it(
    elsewhere, platform_admin_client
):
    hospital_a = Tenant.objects.get(schema_name="hospital_a")
    elsewhere.execute(
        "INSERT INTO tenants_domain (domain, tenant_id, is_primary) "
        "VALUES ('stluke.localhost', %s, false)",
        [hospital_a.pk],
    )
    watcher = commit_once_we_wait(elsewhere)

    response = platform_admin_client.post(ONBOARD_URL, onboarding_data())
    watcher.join()

    errors = response.context["form"].errors
    assert "already belongs to another tenant" in " ".join(errors["domains"])
    assert Domain.objects.get(domain="stluke.localhost").tenant_id == hospital_a.pk
    assert not Tenant.objects.filter(schema_name="stluke").exists()


def test_the_second_onboarding_of_an_ae_title_gets_a_form_error(
    elsewhere, platform_admin_client
):
    columns = [
        name
        for (name,) in elsewhere.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'tenants_tenant' AND column_name <> 'id' "
            "AND table_schema = 'public'"
        ).fetchall()
    ]
    chosen = {"schema_name": f"'{RACER}'", "ae_title": "'STLUKE'", "name": "'Racer'"}
    values = ", ".join(chosen.get(column, column) for column in columns)
    elsewhere.execute(
        f"INSERT INTO tenants_tenant ({', '.join(columns)}) "  # noqa: S608 - fixed names
        f"SELECT {values} FROM tenants_tenant WHERE schema_name = 'hospital_b'"
    )
    watcher = commit_once_we_wait(elsewhere)

    response = platform_admin_client.post(ONBOARD_URL, onboarding_data())
    watcher.join()

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "already has this AE title" in " ".join(errors["ae_title"])
    assert not Tenant.objects.filter(schema_name="stluke").exists()
