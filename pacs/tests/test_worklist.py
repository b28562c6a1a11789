import datetime

import pytest

from audit.models import AuditEvent, EventType
from conftest import CT_SERIES, SHARED_DATA, tenant_client
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import ReadingStatus, Study


def ingest(*paths):  # type: ignore[no-untyped-def]
    for path in paths:
        do_ingest_spooled_file(spool.write_durably("hospital_a", path.read_bytes()))


@pytest.fixture
def three_studies(tenant_a, storage_dirs):  # type: ignore[no-untyped-def]
    ingest(
        CT_SERIES / "1-025.dcm",
        CT_SERIES / "1-026.dcm",
        SHARED_DATA / "pydicom" / "MR_small.dcm",
        SHARED_DATA / "pydicom" / "charset" / "chrFren.dcm",
    )
    return Study.objects.all()


def uids(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.study_instance_uid for s in response.context["page"]]


@pytest.mark.django_db
def test_it_lists_studies_with_counts(client_a, three_studies):
    response = client_a.get("/")

    ct = Study.objects.get(modalities_in_study="CT")
    assert response.status_code == 200
    assert len(uids(response)) == 3
    row = response.content.decode().split(f'data-study-uid="{ct.study_instance_uid}"')[
        1
    ]
    assert '<td class="num image-count">2</td>' in row
    assert '<td class="num series-count">1</td>' in row


@pytest.mark.django_db
def test_it_filters_by_patient_name_across_components(client_a, three_studies):
    response = client_a.get("/", {"patient_name": "jérôme buc"})

    assert [s.patient.patient_name for s in response.context["page"]] == ["Buc^Jérôme"]


@pytest.mark.django_db
def test_it_filters_by_patient_id_modality_and_status(client_a, three_studies):
    ct = Study.objects.get(modalities_in_study="CT")
    Study.objects.filter(pk=ct.pk).update(reading_status=ReadingStatus.PRELIMINARY)

    assert uids(client_a.get("/", {"patient_id": ct.patient.patient_id})) == [
        ct.study_instance_uid
    ]
    assert uids(client_a.get("/", {"modality": "ct"})) == [ct.study_instance_uid]
    assert uids(client_a.get("/", {"status": "preliminary"})) == [ct.study_instance_uid]
    assert len(uids(client_a.get("/", {"status": "unread"}))) == 2


@pytest.mark.django_db
def test_it_filters_by_date_range_and_sorts(client_a, three_studies):
    dated = sorted(
        (s for s in three_studies if s.study_date), key=lambda s: s.study_date
    )
    first = dated[0].study_date

    within = uids(client_a.get("/", {"date_from": first, "date_to": first}))
    after = uids(client_a.get("/", {"date_from": first + datetime.timedelta(days=1)}))
    ascending = uids(client_a.get("/", {"sort": "date"}))

    assert dated[0].study_instance_uid in within
    assert dated[0].study_instance_uid not in after
    assert ascending[: len(dated)] == [s.study_instance_uid for s in dated]


@pytest.mark.django_db
def test_it_records_each_worklist_search(client_a, three_studies):
    client_a.get("/", {"patient_id": "X"})

    event = AuditEvent.objects.get(event_type=EventType.WORKLIST_SEARCHED)
    assert event.detail["patient_id"] == "X"


@pytest.mark.django_db
def test_it_sends_a_referrer_to_the_portal_of_shared_studies(
    tenant_a, referrer, three_studies
):
    response = tenant_client(tenant_a, referrer).get("/")

    assert response.status_code == 302
    assert response["Location"] == "/referrals/"


@pytest.mark.django_db
def test_it_keeps_the_worklist_out_of_every_cache(client_a, three_studies):
    response = client_a.get("/")

    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("Doe^John", "Doe, John"),
        ("Doe^John^Adam^Dr^Jr", "Doe, Dr John Adam Jr"),
        ("Pancreas-CT-CB_001", "Pancreas-CT-CB_001"),
        ("Yamada^Tarou=山田^太郎", "Yamada, Tarou"),
        ("", ""),
    ],
)
def test_it_shows_person_names_as_people_write_them(stored, shown):
    from pacs.dicom import display_person_name

    assert display_person_name(stored) == shown


@pytest.mark.django_db
def test_it_shows_hospital_it_no_patient_data(tenant_a, three_studies):
    from accounts.models import Role
    from conftest import make_user

    it_admin = make_user(tenant_a, "it.a", Role.TENANT_ADMIN)
    response = tenant_client(tenant_a, it_admin).get("/")

    assert uids(response) == []


@pytest.mark.django_db
def test_its_sort_links_carry_clean_query_strings(client_a, three_studies):  # type: ignore[no-untyped-def]
    plain = client_a.get("/").content.decode()
    filtered = client_a.get("/", {"modality": "CT"}).content.decode()

    assert 'href="?sort=name"' in plain
    assert 'href="?modality=CT&amp;sort=name"' in filtered
    assert "?&" not in plain + filtered
    assert "&amp;&amp;" not in plain + filtered
