"""Signed reports reach a RIS built on python-hl7, as that library reads them."""

import random
from pathlib import Path

import hl7 as python_hl7
import pytest
from celery.exceptions import Retry

from accounts.models import Role, User
from conftest import current_totp, make_user
from pacs.models import Patient, Study
from pacs.tests.test_patient_without_id import ingest_one_by_one, no_id_studies
from reporting.actions import (
    do_deliver_message,
    do_issue_preliminary_report,
    do_save_addendum,
    do_save_report_draft,
    do_sign_addendum,
    do_sign_report,
)
from reporting.models import DeliveryState, OutboundMessage
from reporting.tasks import deliver_message
from reporting.tests.conftest import free_port, point_ris_at
from reporting.tests.helpers import back_off_elapses
from reporting.tests.test_workflow import next_totp
from tenants.models import Tenant
from tests.support.ris import RisListener

pytestmark = pytest.mark.django_db

SPECIAL = "pipe | caret ^ tilde ~ backslash \\ ampersand & end"
WORDS = (
    "liver spleen pancreas kidneys adrenal glands unremarkable no focal lesion "
    "hypodense cyst segment measuring millimetres without enhancement"
).split()


def sign(user: User, study: Study, text: str) -> OutboundMessage:
    do_save_report_draft(user, study, text)
    return do_sign_report(user, study, current_totp()).messages.latest("id")


def deliver(tenant: Tenant, message: OutboundMessage) -> python_hl7.Message:
    """Deliver one message to a fresh RIS and return it as the RIS parsed it."""
    with RisListener() as ris:
        point_ris_at(tenant, ris.port)
        do_deliver_message(message.pk)
    [received] = ris.received
    return received


def text_lines(message: python_hl7.Message) -> list[str]:
    return [message.unescape(str(obx(5))) for obx in message.segments("OBX")[1:]]


def test_every_special_character_reaches_the_ris_as_written(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    Patient.objects.filter(pk=study.patient_id).update(
        patient_id="ID|^~\\&", patient_name="O&Brien^Mary~Ann"
    )
    Study.objects.filter(pk=study.pk).update(
        accession_number="ACC|^~\\&", study_description="CT ^ & ~ | \\"
    )
    study.refresh_from_db()
    message = sign(radiologist, study, f"{SPECIAL}\n\\F\\ stays literal\n|^~\\&")

    received = deliver(tenant_a, message)

    assert text_lines(received) == [SPECIAL, "\\F\\ stays literal", "|^~\\&"]
    pid, obr = received.segment("PID"), received.segment("OBR")
    assert received.unescape(str(pid(3))) == "ID|^~\\&"
    assert received.unescape(str(pid(5)(1)(1))) == "O&Brien"
    assert received.unescape(str(pid(5)(1)(2))) == "Mary~Ann"
    assert received.unescape(str(obr(2))) == "ACC|^~\\&"
    assert received.unescape(str(obr(4)(1)(2))) == "CT ^ & ~ | \\"
    # Every segment keeps its field count: nothing leaked as a delimiter.
    assert [len(obx) for obx in received.segments("OBX")[1:]] == [15, 15, 15]


def test_non_ascii_names_reach_the_ris_in_utf_8(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    Patient.objects.filter(pk=study.patient_id).update(patient_name="Müller^Åsa^Łukasz")
    radiologist.first_name, radiologist.last_name = "Zoë", "Ødegård"
    radiologist.save()
    study.refresh_from_db()
    message = sign(radiologist, study, "Kein Hinweis auf Raumforderung; Ærø ok.")

    received = deliver(tenant_a, message)

    assert str(received.segment("MSH")(18)) == "UNICODE UTF-8"
    name = received.segment("PID")(5)(1)
    assert [str(name(n)) for n in (1, 2, 3)] == ["Müller", "Åsa", "Łukasz"]
    assert str(received.segment("OBR")(32)) == "rad.a&Ødegård&Zoë"
    assert text_lines(received) == ["Kein Hinweis auf Raumforderung; Ærø ok."]


def test_a_5000_word_report_arrives_whole_one_obx_per_line(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    chooser = random.Random(5)  # noqa: S311 - test text, not a secret
    lines = [
        " ".join(chooser.choice(WORDS) for _ in range(50)) + "." for _ in range(100)
    ]
    text = "\n".join(lines)
    assert len(text.split()) == 5000
    message = sign(radiologist, study, text)

    received = deliver(tenant_a, message)

    assert text_lines(received) == lines
    assert [str(obx(1)) for obx in received.segments("OBX")] == [
        str(n) for n in range(1, 102)
    ]


def test_preliminary_final_and_addendum_are_sent_as_p_f_and_c(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    do_save_report_draft(radiologist, study, "Impression: likely benign.")
    do_issue_preliminary_report(radiologist, study)
    do_sign_report(radiologist, study, current_totp())
    do_save_addendum(radiologist, study, "Comparison with the 2023 CT: stable.")
    do_sign_addendum(radiologist, study, next_totp(radiologist))

    with RisListener() as ris:
        point_ris_at(tenant_a, ris.port)
        for message in OutboundMessage.objects.order_by("id"):
            do_deliver_message(message.pk)

    statuses = [str(m.segment("OBR")(25)) for m in ris.received]
    assert statuses == ["P", "F", "C"]
    corrected = ris.received[-1]
    assert {str(obx(11)) for obx in corrected.segments("OBX")} == {"C"}
    lines = text_lines(corrected)
    assert lines[0] == "Impression: likely benign."
    assert lines[-1] == "Comparison with the 2023 CT: stable."


def test_a_ris_down_for_the_whole_signing_gets_every_message_once_in_order(
    tenant_a: Tenant, radiologist: User, study: Study, other_study: Study
) -> None:
    port = free_port()
    point_ris_at(tenant_a, port)
    sign(radiologist, study, "Report on the first study.")
    colleague = make_user(tenant_a, "rad.c", Role.RADIOLOGIST)
    sign(colleague, other_study, "Report on the second study.")
    do_save_addendum(radiologist, study, "Addendum.")
    do_sign_addendum(radiologist, study, next_totp(radiologist))
    queued = list(OutboundMessage.objects.order_by("id"))
    assert len(queued) == 3

    # The RIS is down: every try fails and asks Celery for a retry.
    for message in queued:
        with pytest.raises(Retry):
            deliver_message.run(message.pk)
    # The addendum waits behind its study's undelivered report without a try.
    states = [m.state for m in OutboundMessage.objects.order_by("id")]
    assert states == [
        DeliveryState.RETRYING,
        DeliveryState.RETRYING,
        DeliveryState.PENDING,
    ]

    # It comes back; retries run in any order, and some run twice.
    with RisListener(port=port) as ris:
        for _round in range(3):
            back_off_elapses(*queued)
            for message in reversed(queued):
                try:
                    deliver_message.run(message.pk)
                except Retry:
                    pass

    control_ids = [str(m.segment("MSH")(10)) for m in ris.received]
    assert sorted(control_ids) == sorted(m.message_control_id for m in queued)
    assert len(set(control_ids)) == len(control_ids) == 3
    of_first_study = [m.message_control_id for m in queued if m.report.study == study]
    assert [c for c in control_ids if c in of_first_study] == of_first_study
    assert {m.state for m in OutboundMessage.objects.all()} == {DeliveryState.DELIVERED}


def test_a_study_without_patient_id_reaches_the_ris_under_its_own_name(
    tenant_a: Tenant, radiologist: User, storage_dirs: object, tmp_path: Path
) -> None:
    first, second = no_id_studies(tmp_path)
    ingest_one_by_one(first, second)
    study = Study.objects.get(study_instance_uid=second.study_instance_uid)
    message = sign(radiologist, study, "No acute findings.")

    received = deliver(tenant_a, message)

    pid = received.segment("PID")
    assert str(pid(3)).split("^")[0] == ""
    name = pid(5)(1)
    assert [str(name(1)), str(name(2))] == ["Secondperson", "Bob"]
    assert "Firstperson" not in str(received)
