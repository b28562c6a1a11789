from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from audit.actions import do_export_audit_messages, do_record_event
from audit.chain import do_seal_events
from audit.models import AuditEvent, AuditExportState, AuditSeal, EventType, Outcome
from audit.syslog import Repository
from audit.tasks import seal_and_export
from audit.testing import triggers_off_as_superuser
from audit.tests.syslog_receiver import (
    Pki,
    Receiver,
    SyslogMessage,
    free_port,
    make_pki,
    server_context,
)
from audit.tests.test_chain import verify
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

PATIENT_ID = "PAT-ATNA-1"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(free_port())
    yield server
    server.stop()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def tcp(port: int) -> Repository:
    return Repository.from_url(f"tcp://127.0.0.1:{port}", timeout=5)


def tls(port: int, pki: Pki) -> Repository:
    return Repository.from_url(
        f"tls://127.0.0.1:{port}",
        ca_file=str(pki.ca),
        client_cert=str(pki.client_cert),
        client_key=str(pki.client_key),
        timeout=5,
    )


def record_a_reading_session() -> list[int]:
    events = [
        do_record_event(EventType.LOGIN_SUCCEEDED, actor_username="rad.a"),
        do_record_event(
            EventType.STUDY_OPENED,
            actor_username="rad.a",
            patient_id=PATIENT_ID,
            study_instance_uid=STUDY_UID,
        ),
        do_record_event(
            EventType.ACCESS_DENIED,
            actor_username="rad.a",
            outcome=Outcome.FAILURE,
            study_instance_uid=STUDY_UID,
        ),
    ]
    return [event.pk for event in events]


def record_ids(messages: list[SyslogMessage]) -> list[int]:
    return [int(message.structured["record"]) for message in messages]


def coded(element: ET.Element, tag: str) -> str:
    child = element.find(tag)
    assert child is not None, tag
    assert child.get("codeSystemName") and child.get("originalText")
    return str(child.get("csd-code"))


def assert_ps315_structure(xml: bytes) -> ET.Element:
    """PS3.15 A.5.1: the elements in schema order, with their required parts."""
    root = ET.fromstring(xml)  # noqa: S314 - Nimbus's own output
    assert root.tag == "AuditMessage"
    tags = [child.tag for child in root]
    order = [
        "EventIdentification",
        "ActiveParticipant",
        "AuditSourceIdentification",
        "ParticipantObjectIdentification",
    ]
    assert tags == sorted(tags, key=order.index)
    assert tags.count("EventIdentification") == 1
    assert tags.count("AuditSourceIdentification") == 1
    assert "ActiveParticipant" in tags

    identification = root.find("EventIdentification")
    assert identification is not None
    assert identification.get("EventActionCode") in {"C", "R", "U", "D", "E"}
    assert identification.get("EventOutcomeIndicator") in {"0", "4", "8", "12"}
    assert identification.get("EventDateTime")
    coded(identification, "EventID")
    for participant in root.iter("ActiveParticipant"):
        assert participant.get("UserID")
        assert participant.get("UserIsRequestor") in {"true", "false"}
    source = root.find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID")
    for participant_object in root.iter("ParticipantObjectIdentification"):
        assert participant_object.get("ParticipantObjectID")
        coded(participant_object, "ParticipantObjectIDTypeCode")
    return root


def event_id(message: SyslogMessage) -> str:
    root = assert_ps315_structure(message.xml)
    return coded(root.find("EventIdentification"), "EventID")


def test_it_sends_each_record_as_a_dicom_audit_message_over_tcp(
    tenant_a: Tenant, receiver: Receiver
) -> None:
    ids = record_a_reading_session()
    do_seal_events()

    result = do_export_audit_messages(tcp(receiver.port))
    receiver.stop()

    assert result.sent == 3 and not receiver.errors
    assert record_ids(receiver.messages) == ids
    login, opened, denied = receiver.messages
    assert login.msgid == "DICOM+RFC3881"
    assert login.structured["tenant"] == "hospital_a"
    assert (login.pri, denied.pri) == (85, 84)  # authpriv.notice, authpriv.warning

    root = assert_ps315_structure(login.xml)
    assert coded(root.find("EventIdentification"), "EventID") == "110114"
    assert coded(root.find("EventIdentification"), "EventTypeCode") == "110122"

    root = assert_ps315_structure(opened.xml)
    assert coded(root.find("EventIdentification"), "EventID") == "110103"
    objects = {
        element.get("ParticipantObjectID"): (
            element.get("ParticipantObjectTypeCode"),
            element.get("ParticipantObjectTypeCodeRole"),
            coded(element, "ParticipantObjectIDTypeCode"),
        )
        for element in root.iter("ParticipantObjectIdentification")
    }
    assert objects == {PATIENT_ID: ("1", "1", "2"), STUDY_UID: ("2", "3", "110180")}
    requestor = root.find("ActiveParticipant[@UserIsRequestor='true']")
    assert requestor is not None and requestor.get("UserID") == "rad.a"

    root = assert_ps315_structure(denied.xml)
    identification = root.find("EventIdentification")
    assert coded(identification, "EventID") == "110113"
    assert identification.get("EventOutcomeIndicator") == "4"


def test_it_sends_over_tls_with_a_client_certificate(
    tenant_a: Tenant, pki: Pki
) -> None:
    receiver = Receiver(free_port(), tls=server_context(pki))
    ids = record_a_reading_session()
    do_seal_events()

    result = do_export_audit_messages(tls(receiver.port, pki))
    receiver.stop()

    assert result.sent == 3 and not receiver.errors
    assert record_ids(receiver.messages) == ids
    assert_ps315_structure(receiver.messages[1].xml)


def test_it_refuses_a_repository_whose_certificate_it_does_not_trust(
    tenant_a: Tenant, pki: Pki, tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    stranger = make_pki(tmp_path / "other", "Another CA")
    receiver = Receiver(free_port(), tls=server_context(stranger))
    record_a_reading_session()
    do_seal_events()

    result = do_export_audit_messages(tls(receiver.port, pki))
    receiver.stop()

    assert result.sent == 0 and "certificate verify failed" in result.error
    assert receiver.messages == []
    assert AuditExportState.objects.get().exported_seq == 0


def test_it_loses_nothing_while_the_repository_is_down(tenant_a: Tenant) -> None:
    port = free_port()
    first = record_a_reading_session()
    do_seal_events()

    down = do_export_audit_messages(tcp(port))
    second = record_a_reading_session()
    do_seal_events()
    receiver = Receiver(port)
    up = do_export_audit_messages(tcp(port))
    again = do_export_audit_messages(tcp(port))
    receiver.stop()

    assert down.sent == 0 and down.error
    assert (up.sent, again.sent) == (6, 0)
    received = [
        (event_id(message), int(message.structured["record"]))
        for message in receiver.messages
    ]
    assert len(set(received)) == len(received)  # no duplicate EventID + record
    assert record_ids(receiver.messages) == first + second
    assert AuditExportState.objects.get().last_error == ""


def test_the_beat_task_seals_and_exports_when_a_repository_is_configured(
    tenant_a: Tenant, receiver: Receiver, settings
) -> None:
    settings.NIMBUS_ATNA_URL = f"tcp://127.0.0.1:{receiver.port}"
    ids = record_a_reading_session()

    sent = seal_and_export()
    receiver.stop()

    assert sent == 3
    assert record_ids(receiver.messages) == ids


def test_the_beat_task_only_seals_without_a_repository(
    tenant_a: Tenant, settings
) -> None:
    settings.NIMBUS_ATNA_URL = ""
    record_a_reading_session()

    assert seal_and_export() == 0
    assert not AuditExportState.objects.exists()


def remove_tail(from_seq: int) -> None:
    """What an attacker with superuser rights does: the last links and records."""
    cut = AuditSeal.objects.filter(seq__gte=from_seq)
    cut_ids = list(cut.values_list("event_id", flat=True))
    with triggers_off_as_superuser():
        cut.delete()
        AuditEvent.objects.filter(pk__in=cut_ids).delete()


def test_it_numbers_new_links_past_the_export_marker_without_a_head(
    tenant_a: Tenant, receiver: Receiver
) -> None:
    record_a_reading_session()
    do_seal_events()  # no head anchored: the links never commit in this test
    do_export_audit_messages(tcp(receiver.port))
    remove_tail(2)

    record_a_reading_session()
    do_seal_events()

    assert list(AuditSeal.objects.values_list("seq", flat=True)) == [1, 4, 5, 6]


def test_it_sends_the_integrity_alert_after_the_exported_tail_was_removed(
    tenant_a: Tenant,
    receiver: Receiver,
    tmp_path: Path,
    settings,
    django_capture_on_commit_callbacks,
) -> None:
    settings.NIMBUS_AUDIT_HEAD_DIR = tmp_path / "heads"  # this test's head only
    repository = tcp(receiver.port)
    for _ in range(2):
        record_a_reading_session()
    with django_capture_on_commit_callbacks(execute=True):
        do_seal_events()  # seqs 1-6, head anchored at 6
    do_export_audit_messages(repository)
    remove_tail(4)

    status, output = verify()  # records event 610
    later = record_a_reading_session()
    do_seal_events()
    sent = do_export_audit_messages(repository).sent
    receiver.stop()

    assert status == 1
    assert "records after seq 3 removed (head anchored at seq 6)" in output
    alert = AuditEvent.objects.get(event_type=EventType.AUDIT_CHAIN_BROKEN)
    assert sent == 4
    assert record_ids(receiver.messages)[6:] == [alert.pk, *later]
    seqs = [int(message.structured["seq"]) for message in receiver.messages[6:]]
    assert seqs == [7, 8, 9, 10]  # never 4-6 again: the marker is past them
    assert event_id(receiver.messages[6]) == "110113"  # Security Alert
    status, output = verify()
    assert "link 7 (record " in output and "links from 4 removed" in output
