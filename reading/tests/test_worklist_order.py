"""The worklist's queue order at scale: a stored rank, its index, and a pager
that never counts the tenant's studies."""

import datetime
import importlib
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import tenant_client
from pacs.access import studies_for
from pacs.models import Patient, Study
from pacs.selectors import WorklistFilter, worklist
from reading.actions import do_set_priority
from reading.models import Priority, ReadingSettings, StudyReading

pytestmark = pytest.mark.django_db

QUEUE_ORDER = importlib.import_module("reading.migrations.0005_queue_order")


def uids(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.study_instance_uid for s in response.context["page"]]


def set_queue(study: Study, priority: str, due_in_hours: float) -> None:
    due = timezone.now() + datetime.timedelta(hours=due_in_hours)
    StudyReading.objects.filter(study=study).update(priority=priority, due_at=due)


@pytest.fixture
def five(make_study):  # type: ignore[no-untyped-def]
    """Five studies, in the order the queue must show them."""
    studies = {name: make_study() for name in ("late", "soon", "urgent", "stat")}
    set_queue(studies["late"], Priority.ROUTINE, 30)
    set_queue(studies["soon"], Priority.ROUTINE, -2)
    set_queue(studies["urgent"], Priority.URGENT, 40)
    set_queue(studies["stat"], Priority.STAT, 50)
    # Due with "late" to the microsecond: the newer arrival goes first.
    studies["tie"] = make_study()
    due = StudyReading.objects.get(study=studies["late"]).due_at
    StudyReading.objects.filter(study=studies["tie"]).update(due_at=due)
    order = ("stat", "urgent", "soon", "tie", "late")
    return [studies[name].study_instance_uid for name in order]


def test_it_keeps_the_rank_with_the_priority_whoever_writes_it(radiologist, study):
    reading = StudyReading.objects.get(study=study)
    assert reading.priority_rank == 2

    StudyReading.objects.filter(pk=reading.pk).update(priority=Priority.STAT)
    reading.refresh_from_db()
    assert reading.priority_rank == 0

    do_set_priority(None, radiologist, study, Priority.URGENT, None)
    reading.refresh_from_db()
    assert reading.priority_rank == 1


def test_it_orders_stat_urgent_routine_then_due_then_newest(client_a, five):
    assert uids(client_a.get("/")) == five


def test_it_reverses_the_queue_order_by_hand(client_a, five):
    stat, urgent, soon, tie, late = five

    # Routine latest due first; of two due together, still the newest first.
    assert uids(client_a.get("/", {"sort": "-priority"})) == [
        tie,
        late,
        soon,
        urgent,
        stat,
    ]


def test_it_filters_a_priority_and_overdue_studies_in_queue_order(client_a, five):
    stat, urgent, soon, tie, late = five

    assert uids(client_a.get("/", {"priority": "routine"})) == [soon, tie, late]
    assert uids(client_a.get("/", {"priority": "stat"})) == [stat]
    assert uids(client_a.get("/", {"overdue": "on"})) == [soon]


def test_it_pages_without_counting_the_studies(client_a, five, monkeypatch):
    monkeypatch.setattr("pacs.views.PAGE_SIZE", 2)

    with CaptureQueriesContext(connection) as queries:
        first = client_a.get("/")
    last = client_a.get("/", {"page": "3"})
    past = client_a.get("/", {"page": "9"})

    assert uids(first) == five[:2]
    assert uids(client_a.get("/", {"page": "2"})) == five[2:4]
    assert uids(last) == five[4:]
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    html, end = first.content.decode(), last.content.decode()
    assert "Page 1<" in html and "page=2" in html and "Previous" not in html
    assert "Page 3<" in end and "page=2" in end and "Next" not in end
    assert uids(past) == [] and "page=8" in past.content.decode()


def test_it_reads_a_page_in_a_fixed_number_of_queries(client_a, make_study, five):
    client_a.get("/")
    with CaptureQueriesContext(connection) as five_studies:
        client_a.get("/")
    for _ in range(3):
        make_study()
    with CaptureQueriesContext(connection) as eight_studies:
        client_a.get("/")

    assert len(eight_studies) == len(five_studies)


@pytest.mark.parametrize("sort", ["priority", "-priority"])
@pytest.mark.parametrize(
    "query",
    [
        {},
        {"priority": "urgent"},
        {"overdue": True},
        {"queue": "unassigned"},
    ],
)
def test_the_queue_order_walks_an_index_instead_of_sorting(
    radiologist, five, sort, query
):
    """With sorting priced out, only an index can give the order: a full Sort
    in the plan means the page sorts every study of the tenant again."""
    page = worklist(
        studies_for(radiologist), WorklistFilter(sort=sort, **query), radiologist
    )[:51]
    sql, params = page.query.sql_with_params()

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "reading_queue_order" in plan
    # An Incremental Sort (of rows due at the same instant) may stay.
    assert not re.search(r"(^|->)\s*Sort\s+\(", plan, re.MULTILINE), plan


@pytest.mark.parametrize(
    ("lookup", "index"),
    [
        ({"patient_id__icontains": "ms-0"}, "pacs_patient_id_search"),
        ({"patient_name__icontains": "doe"}, "pacs_patient_name_search"),
    ],
)
def test_a_patient_search_can_find_its_rows_by_an_index(five, lookup, index):
    """The worklist searches with these lookups (pacs.selectors.worklist).

    Which plan wins on a test's handful of rows depends on statistics earlier
    tests left; what must hold is that the expression Django writes for the
    lookup is the one the trigram index was built on. With plain scans priced
    out, only a bitmap scan of that index (the one kind GIN offers) is left.
    """
    sql, params = Patient.objects.filter(**lookup).query.sql_with_params()

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert f"Bitmap Index Scan on {index}" in plan, plan


def test_the_migration_queues_a_study_that_has_no_queue_row(study):
    ReadingSettings.objects.update_or_create(pk=1, defaults={"routine_minutes": 90})
    StudyReading.objects.filter(study=study).delete()

    with connection.cursor() as cursor:
        cursor.execute(QUEUE_ORDER.QUEUE_MISSING)
        cursor.execute(QUEUE_ORDER.QUEUE_MISSING)

    reading = StudyReading.objects.get(study=study)
    assert (reading.priority, reading.priority_rank) == (Priority.ROUTINE, 2)
    assert reading.due_at == study.received_at + datetime.timedelta(minutes=90)
    assert reading.routed_with_images and not reading.due_at_manual


def test_hospital_it_pages_the_open_queue_without_counting_it(
    tenant_a, it_admin, five, monkeypatch
):
    monkeypatch.setattr("reading.views.PAGE_SIZE", 2)
    client = tenant_client(tenant_a, it_admin)

    with CaptureQueriesContext(connection) as queries:
        first = client.get("/reading/")
    last = client.get("/reading/", {"page": "3"})

    stat, urgent, soon, tie, late = five
    shown = [r.study.study_instance_uid for r in first.context["page"]]

    # Soonest due first, of two due together the older arrival.
    assert shown == [soon, late]
    assert [r.study.study_instance_uid for r in last.context["page"]] == [stat]
    assert not last.context["page"].has_next
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    assert "Page 1<" in first.content.decode()
