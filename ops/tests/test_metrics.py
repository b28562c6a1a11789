"""/metrics: who may read it, and real values from Redis, PostgreSQL and renders."""

import re

import pytest
from django.db import connection
from django.test import Client
from kombu import Connection

from config.celery import QUEUES
from config.celery import app as celery_app
from conftest import CT_SERIES
from ops import metrics
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import Instance, Study
from reporting.models import DeliveryState, OutboundMessage, Report
from viewer.rendering import render_png


def scrape(**headers: str) -> tuple[int, str]:
    response = Client(HTTP_HOST="127.0.0.1", **headers).get("/metrics")
    return response.status_code, response.content.decode()


def value(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{key}="{label}"' for key, label in labels.items())
    pattern = (
        rf"^{re.escape(name)}{{{re.escape(wanted)}}} (\S+)$"
        if labels
        else (rf"^{re.escape(name)} (\S+)$")
    )
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else None


@pytest.mark.django_db
def test_a_client_on_this_machine_reads_the_metrics(own_redis):
    status, text = scrape(REMOTE_ADDR="127.0.0.1")

    assert status == 200
    assert "django_http_requests_total_by_method_total" in text
    assert value(text, "nimbus_queue_depth", queue="ingest") == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        {"REMOTE_ADDR": "192.0.2.7"},
        {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "192.0.2.7"},
    ],
)
def test_a_client_elsewhere_or_through_the_proxy_gets_not_found(headers, own_redis):
    status, text = scrape(**headers)

    assert status == 404 and "nimbus_" not in text


@pytest.mark.django_db
def test_with_a_token_only_the_token_opens_the_metrics(settings, own_redis):
    settings.NIMBUS_METRICS_TOKEN = "s3cret-metrics-token"

    assert scrape(REMOTE_ADDR="127.0.0.1")[0] == 404
    assert scrape(HTTP_AUTHORIZATION="Bearer wrong", REMOTE_ADDR="192.0.2.7")[0] == 404
    assert (
        scrape(
            HTTP_AUTHORIZATION="Bearer s3cret-metrics-token", REMOTE_ADDR="192.0.2.7"
        )[0]
        == 200
    )


@pytest.mark.django_db
def test_queue_depth_counts_the_tasks_waiting_in_each_queue(own_redis):
    with Connection(own_redis) as broker:
        for _ in range(3):
            celery_app.send_task(
                "pacs.ingest_spooled_files", args=[[]], connection=broker
            )
        celery_app.send_task("reporting.deliver_message", args=[1], connection=broker)

    _, text = scrape(REMOTE_ADDR="127.0.0.1")

    assert value(text, "nimbus_queue_depth", queue="ingest") == 3
    assert value(text, "nimbus_queue_depth", queue="delivery") == 1
    assert value(text, "nimbus_queue_depth", queue="rendering") == 0


@pytest.mark.django_db
def test_ingest_counts_add_up_per_worker(own_redis):
    metrics.record_ingest(5, 4, "ingest-1@host")
    metrics.record_ingest(2, 2, "ingest-1@host")
    metrics.record_ingest(3, 3, "ingest-2@host")

    _, text = scrape(REMOTE_ADDR="127.0.0.1")

    assert value(text, "nimbus_ingested_instances_total", worker="ingest-1@host") == 6
    assert value(text, "nimbus_ingested_instances_total", worker="ingest-2@host") == 3
    assert (
        value(text, "nimbus_ingest_received_instances_total", worker="ingest-1@host")
        == 7
    )


@pytest.mark.django_db
def test_the_hl7_backlog_counts_messages_the_ris_has_not_accepted(
    tenant_a, tenant_b, storage_dirs, own_redis
):
    connection.set_tenant(tenant_a)
    path = spool.write_durably("hospital_a", (CT_SERIES / "1-030.dcm").read_bytes())
    result = do_ingest_spooled_file(path, "MODALITY")
    report = Report.objects.create(
        study=Study.objects.get(study_instance_uid=result.study_instance_uid)
    )
    for number, state in enumerate(
        [
            DeliveryState.PENDING,
            DeliveryState.RETRYING,
            DeliveryState.DELIVERED,
            DeliveryState.HELD,
        ]
    ):
        OutboundMessage.objects.create(
            report=report, message_control_id=f"M{number}", payload="MSH|", state=state
        )
    connection.set_schema_to_public()

    _, text = scrape(REMOTE_ADDR="127.0.0.1")

    assert value(text, "nimbus_hl7_backlog", tenant="hospital_a") == 2
    assert value(text, "nimbus_hl7_backlog", tenant="hospital_b") == 0
    assert value(text, "nimbus_hl7_oldest_pending_seconds", tenant="hospital_a") >= 0
    assert value(text, "nimbus_hl7_held", tenant="hospital_a") == 1
    assert value(text, "nimbus_hl7_held", tenant="hospital_b") == 0


@pytest.mark.django_db
def test_each_render_is_observed_in_the_latency_histogram(
    tenant_a, storage_dirs, own_redis
):
    path = spool.write_durably("hospital_a", (CT_SERIES / "1-031.dcm").read_bytes())
    do_ingest_spooled_file(path, "MODALITY")
    instance = Instance.objects.get()
    _, before = scrape(REMOTE_ADDR="127.0.0.1")
    count_before = value(before, "nimbus_render_seconds_count", kind="frame") or 0

    render_png(instance)
    render_png(instance)

    _, after = scrape(REMOTE_ADDR="127.0.0.1")
    assert value(after, "nimbus_render_seconds_count", kind="frame") == count_before + 2
    assert value(after, "nimbus_render_seconds_sum", kind="frame") > 0


@pytest.mark.django_db
def test_each_dependency_that_readyz_checks_has_an_up_gauge(own_redis, storage_dirs):
    _, text = scrape(REMOTE_ADDR="127.0.0.1")

    assert value(text, "nimbus_database_up") == 1
    assert value(text, "nimbus_redis_up") == 1
    assert value(text, "nimbus_storage_up") == 1
    for queue in QUEUES:
        assert value(text, "nimbus_worker_up", queue=queue) in (0, 1)


@pytest.mark.django_db
def test_redis_down_reads_zero_and_the_scrape_still_answers(settings, storage_dirs):
    # A port nothing listens on: the gauge must say so, not hang or vanish.
    settings.REDIS_URL = "redis://127.0.0.1:9/0"

    status, text = scrape(REMOTE_ADDR="127.0.0.1")

    assert status == 200
    assert value(text, "nimbus_redis_up") == 0
    assert value(text, "nimbus_database_up") == 1
