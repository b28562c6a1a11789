from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from accounts.models import User
from audit.models import AuditEvent, EventType
from conftest import tenant_client
from pacs.models import Instance, Study
from reporting.models import KeyImageReference
from reporting.tests.helpers import post
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def cite(client: Client, study: Study, **extra: object) -> object:
    instance = Instance.objects.select_related("series").get(series__study=study)
    body = {
        "series_instance_uid": instance.series.series_instance_uid,
        "sop_instance_uid": instance.sop_instance_uid,
        "frame": 1,
        "window_center": 40,
        "window_width": 400,
        **extra,
    }
    return post(client, study, "/images", body)


def test_it_cites_a_frame_with_its_window_and_links_the_viewer_there(
    client_a: Client, study: Study
) -> None:
    response = cite(client_a, study)

    assert response.status_code == 200
    reference = response.json()["image_references"][0]
    assert reference["number"] == 1 and reference["frame"] == 1
    link = urlsplit(reference["viewer_url"])
    query = parse_qs(link.query)
    assert link.path == f"/viewer/studies/{study.study_instance_uid}/"
    assert query["sop"] == [reference["sop_instance_uid"]]
    assert query["frame"] == ["1"] and query["wc"] == ["40"] and query["ww"] == ["400"]
    assert AuditEvent.objects.filter(event_type=EventType.KEY_IMAGE_REFERENCED).exists()


def test_it_numbers_references_in_the_order_they_are_cited(
    client_a: Client, study: Study
) -> None:
    cite(client_a, study)
    cite(client_a, study, window_center=None, window_width=None)

    numbers = list(KeyImageReference.objects.values_list("number", flat=True))
    assert numbers == [1, 2]
    second = KeyImageReference.objects.get(number=2)
    assert second.window_center is None


def test_it_refuses_a_frame_the_instance_does_not_have(
    client_a: Client, study: Study
) -> None:
    assert cite(client_a, study, frame=99).status_code == 404


def test_it_refuses_an_instance_of_another_study(
    client_a: Client, study: Study, other_study: Study
) -> None:
    instance = Instance.objects.select_related("series").get(series__study=study)
    response = post(
        client_a,
        other_study,
        "/images",
        {
            "series_instance_uid": instance.series.series_instance_uid,
            "sop_instance_uid": instance.sop_instance_uid,
        },
    )

    assert response.status_code == 404


def test_it_does_not_let_a_referrer_cite_images(
    tenant_a: Tenant, referrer: User, study: Study
) -> None:
    assert cite(tenant_client(tenant_a, referrer), study).status_code == 404
