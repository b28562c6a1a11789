import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit.chain import do_seal_events, verify_chain
from audit.heads import Head, head_file, last_anchored_head
from audit.models import AuditEvent, AuditSeal, EventType
from audit.testing import triggers_off_as_superuser
from audit.tests.test_chain import record, verify
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

Capture = Callable[..., Any]


@pytest.fixture
def head_dir(tmp_path: Path, settings: Any) -> Path:
    settings.NIMBUS_AUDIT_HEAD_DIR = tmp_path / "heads"
    return settings.NIMBUS_AUDIT_HEAD_DIR


@pytest.fixture
def seal(django_capture_on_commit_callbacks: Capture) -> Callable[[], int]:
    """Seal as the beat task does: the head is anchored once the links commit."""

    def run() -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return do_seal_events()

    return run


def remove_tail(from_seq: int) -> None:
    """What the review did as a superuser: the last links and their records."""
    removed = AuditSeal.objects.filter(seq__gte=from_seq)
    event_ids = list(removed.values_list("event_id", flat=True))
    with triggers_off_as_superuser():
        removed.delete()
        AuditEvent.objects.filter(pk__in=event_ids).delete()


def test_it_anchors_each_new_head_on_disk_and_in_the_security_log(
    tenant_a: Tenant, head_dir: Path, seal: Callable[[], int], caplog: Any
) -> None:
    record(3)
    caplog.set_level(logging.INFO, logger="nimbus.security")

    seal()

    head = AuditSeal.objects.order_by("-seq").first()
    assert head is not None
    line = json.loads((head_dir / "hospital_a.heads").read_text())
    assert (line["tenant"], line["seq"], line["chain_hash"]) == (
        "hospital_a",
        3,
        head.chain_hash,
    )
    assert "anchored_at" in line
    assert f"tenant=hospital_a seq=3 hash={head.chain_hash}" in caplog.text


def test_it_appends_a_head_only_when_the_chain_grew(
    tenant_a: Tenant, head_dir: Path, seal: Callable[[], int]
) -> None:
    record(2)
    seal()
    record(1)
    seal()

    seal()

    lines = (head_dir / "hospital_a.heads").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [2, 3]


def test_it_reports_records_removed_from_the_end_of_the_chain(
    tenant_a: Tenant, head_dir: Path, seal: Callable[[], int]
) -> None:
    record(6)
    seal()
    remove_tail(4)

    status, output = verify()

    assert status == 1
    assert "link 6: records after seq 3 removed (head anchored at seq 6)" in output
    assert AuditEvent.objects.filter(event_type=EventType.AUDIT_CHAIN_BROKEN).exists()


def test_it_numbers_records_after_a_removed_tail_past_the_anchored_head(
    tenant_a: Tenant, head_dir: Path, seal: Callable[[], int], caplog: Any
) -> None:
    record(4)
    seal()
    remove_tail(3)
    record(3)

    seal()

    assert list(AuditSeal.objects.values_list("seq", flat=True)) == [1, 2, 5, 6, 7]
    assert last_anchored_head("hospital_a") == Head(
        4, json.loads((head_dir / "hospital_a.heads").read_text())["chain_hash"]
    )
    assert (
        "does not continue its anchored head: "
        "records after seq 2 removed (head anchored at seq 4);" in caplog.text
    )
    assert [str(link) for link in verify_chain().broken] == [
        f"link 5 (record {AuditSeal.objects.get(seq=5).event_id}): "
        "links from 3 removed",
        "link 4: records after seq 2 removed (head anchored at seq 4)",
    ]


def test_it_finds_no_break_without_a_head_file(
    tenant_a: Tenant, head_dir: Path
) -> None:
    """A fresh install, or a chain sealed before heads were anchored."""
    record(3)
    do_seal_events()

    status, output = verify()

    assert status == 0
    assert "no head anchored; chain intact" in output


def test_it_reports_an_intact_chain_with_its_anchored_head(
    tenant_a: Tenant, head_dir: Path, seal: Callable[[], int]
) -> None:
    record(5)
    seal()
    record(2)

    status, output = verify()

    assert status == 0
    assert "head anchored at seq 5; chain intact" in output


def test_it_goes_on_sealing_when_the_head_cannot_be_written(
    tenant_a: Tenant,
    tmp_path: Path,
    settings: Any,
    seal: Callable[[], int],
    caplog: Any,
) -> None:
    # A regular file where the folder should be: refused even to root.
    (tmp_path / "not-a-folder").write_text("")
    settings.NIMBUS_AUDIT_HEAD_DIR = tmp_path / "not-a-folder" / "heads"
    record(2)

    assert seal() == 2

    assert "could not anchor the audit chain head of hospital_a at seq 2" in (
        caplog.text
    )
    assert caplog.records[-1].levelname == "ERROR"
    record(1)
    assert seal() == 1


def test_it_reads_the_last_complete_head_after_a_torn_write(
    tenant_a: Tenant, head_dir: Path
) -> None:
    head_dir.mkdir()
    head_file("hospital_a").write_text(
        '{"seq": 7, "chain_hash": "ab"}\n{"seq": 8, "chain_hash": "cd"}\n{"se'
    )
    assert last_anchored_head("hospital_a") == Head(8, "cd")


def test_it_stops_without_a_verdict_when_the_head_file_is_unreadable(
    tenant_a: Tenant, head_dir: Path
) -> None:
    head_file("hospital_a").mkdir(parents=True)
    record(1)

    status, output = verify()

    assert status == 1
    assert "chain intact" not in output
    assert not AuditEvent.objects.filter(
        event_type=EventType.AUDIT_CHAIN_BROKEN
    ).exists()
