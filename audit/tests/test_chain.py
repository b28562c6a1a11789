import threading
from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django_tenants.utils import schema_context

from audit.actions import do_record_event
from audit.chain import do_seal_events, verify_chain
from audit.models import AuditEvent, AuditSeal, EventType
from audit.testing import purge_audit_trail, triggers_off_as_superuser
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def record(count: int) -> list[AuditEvent]:
    return [
        do_record_event(
            EventType.STUDY_OPENED,
            actor_username="rad.a",
            patient_id="PAT-1",
            study_instance_uid=f"1.2.3.{number}",
            detail={"number": number, "note": "café"},
        )
        for number in range(count)
    ]


def verify(tenant: str = "hospital_a") -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("verify_audit", tenant=tenant, stdout=out)
    except CommandError:
        return 1, out.getvalue()
    return 0, out.getvalue()


def test_it_refuses_to_update_an_audit_record(tenant_a: Tenant) -> None:
    event = record(1)[0]

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(actor_username="someone")


def test_it_refuses_to_delete_an_audit_record(tenant_a: Tenant) -> None:
    event = record(1)[0]

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()


def test_it_refuses_to_truncate_the_trail_or_its_chain(tenant_a: Tenant) -> None:
    for table in ("audit_auditevent", "audit_auditseal"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {table}")


def test_it_refuses_to_change_a_seal(tenant_a: Tenant) -> None:
    record(2)
    do_seal_events()

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditSeal.objects.update(chain_hash="0" * 64)


def test_it_reports_an_intact_chain(tenant_a: Tenant) -> None:
    record(5)

    status, output = verify()

    assert status == 0
    assert "chain intact" in output
    assert AuditSeal.objects.count() == AuditEvent.objects.count()


def test_it_seals_each_record_once_across_runs(tenant_a: Tenant) -> None:
    record(3)
    first = do_seal_events()
    record(2)

    second = do_seal_events()

    assert (first, second, do_seal_events()) == (3, 2, 0)
    assert list(AuditSeal.objects.values_list("seq", flat=True)) == [1, 2, 3, 4, 5]
    assert verify_chain().intact


def test_it_continues_the_chain_when_a_run_stops_at_its_batch(tenant_a: Tenant) -> None:
    record(5)

    assert do_seal_events(batch=2) == 2
    assert do_seal_events(batch=2) == 2
    assert do_seal_events(batch=2) == 1
    assert verify_chain().checked == 5 and verify_chain().intact


def test_it_reports_exactly_the_record_a_dba_altered(tenant_a: Tenant) -> None:
    events = record(5)
    do_seal_events()
    with triggers_off_as_superuser():
        AuditEvent.objects.filter(pk=events[2].pk).update(patient_id="PAT-2")

    status, output = verify()

    assert status == 1
    assert f"record {events[2].pk}): record altered" in output
    assert "1 broken links" in output


def test_it_reports_a_record_a_dba_deleted(tenant_a: Tenant) -> None:
    events = record(5)
    do_seal_events()
    with triggers_off_as_superuser():
        AuditEvent.objects.filter(pk=events[3].pk).delete()

    status, output = verify()

    assert status == 1
    assert f"record {events[3].pk}): record deleted" in output


def test_it_reports_a_removed_link_of_the_chain(tenant_a: Tenant) -> None:
    events = record(4)
    do_seal_events()
    with triggers_off_as_superuser():
        AuditSeal.objects.filter(event_id=events[1].pk).delete()
        AuditEvent.objects.filter(pk=events[1].pk).delete()

    report = verify_chain()

    assert [str(link) for link in report.broken] == [
        f"link 3 (record {events[2].pk}): links from 2 removed"
    ]


def test_it_records_the_broken_chain_as_a_security_event(tenant_a: Tenant) -> None:
    events = record(2)
    do_seal_events()
    with triggers_off_as_superuser():
        AuditEvent.objects.filter(pk=events[0].pk).update(detail={})

    verify()

    assert AuditEvent.objects.filter(event_type=EventType.AUDIT_CHAIN_BROKEN).exists()


def test_it_checks_every_tenant_when_none_is_named(tenant_a: Tenant) -> None:
    record(1)
    out = StringIO()

    call_command("verify_audit", stdout=out)

    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "hospital_a",
        "hospital_b",
        "public",
    ]


def in_thread(schema: str, work: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        try:
            with schema_context(schema):
                work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_it_seals_a_record_that_commits_after_a_later_one(tenant_a: Tenant) -> None:
    """Ids are drawn before commit: the lower one may become visible last."""
    holding, release = threading.Event(), threading.Event()
    ids: dict[str, int] = {}

    def slow_writer() -> None:
        with transaction.atomic():
            ids["early"] = record(1)[0].pk
            holding.set()
            release.wait(30)

    def fast_writer() -> None:
        ids["late"] = record(1)[0].pk

    def seal() -> None:
        do_seal_events()

    slow = in_thread("hospital_a", slow_writer)
    try:
        assert holding.wait(30)
        in_thread("hospital_a", fast_writer).join(30)
        in_thread("hospital_a", seal).join(30)
        release.set()
        slow.join(30)
        in_thread("hospital_a", seal).join(30)

        sealed = list(AuditSeal.objects.values_list("event_id", flat=True))
        assert ids["early"] < ids["late"]
        assert sealed[-2:] == [ids["late"], ids["early"]]
        assert verify_chain().intact
    finally:
        release.set()
        in_thread("hospital_a", purge_audit_trail).join(30)
