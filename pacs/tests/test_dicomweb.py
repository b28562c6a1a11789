"""DICOMweb: QIDO-RS Search for Studies and WADO-RS rendered, over HTTP.

Real files are ingested into hospital A; every expected value is read from
those files with pydicom, never typed in.
"""

import fnmatch
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context
from PIL import Image
from pydicom.datadict import dictionary_VR, tag_for_keyword

from accounts.actions import do_issue_api_token
from accounts.models import ApiToken, User
from audit.models import AuditEvent, EventType
from conftest import CT_SERIES, SHARED_DATA, tenant_client
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from tenants.models import Tenant

CT_SLICES = sorted(CT_SERIES.glob("*.dcm"))[:3]
CT_SMALL = SHARED_DATA / "pydicom" / "CT_small.dcm"
MR_SMALL = SHARED_DATA / "pydicom" / "MR_small.dcm"
FRENCH = SHARED_DATA / "pydicom" / "charset" / "chrFren.dcm"
DX_IMAGE = SHARED_DATA / "highdicom" / "dx_image.dcm"
FILES = [*CT_SLICES, CT_SMALL, MR_SMALL, FRENCH, DX_IMAGE]

SEARCH = "/dicomweb/studies"
RETURN_KEYS = [
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyID",
    "StudyDescription",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "RetrieveURL",
]


@dataclass
class StudyFacts:
    """What the files say about one study."""

    first: pydicom.Dataset
    series: set[str] = field(default_factory=set)
    instances: int = 0
    modalities: set[str] = field(default_factory=set)


def read(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def facts_by_study() -> dict[str, StudyFacts]:
    studies: dict[str, StudyFacts] = {}
    for path in FILES:
        ds = read(path)
        facts = studies.setdefault(str(ds.StudyInstanceUID), StudyFacts(ds))
        facts.series.add(str(ds.SeriesInstanceUID))
        facts.instances += 1
        facts.modalities.add(str(ds.Modality))
    return studies


def expected(predicate: Callable[[pydicom.Dataset], bool]) -> set[str]:
    return {uid for uid, facts in facts_by_study().items() if predicate(facts.first)}


def tag(keyword: str) -> str:
    return f"{tag_for_keyword(keyword):08X}"


def value(study: dict[str, Any], keyword: str) -> Any:
    return study[tag(keyword)].get("Value", [None])[0]


def uids(results: list[dict[str, Any]]) -> set[str]:
    return {value(study, "StudyInstanceUID") for study in results}


def search(client: Client, **params: str) -> list[dict[str, Any]]:
    response = client.get(SEARCH, params)
    if response.status_code == 204:
        assert response.content == b""
        return []
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/dicom+json")
    return response.json()


def bearer_client(tenant: Tenant, token: str) -> Client:
    domain = tenant.domains.first().domain  # type: ignore[union-attr]
    return Client(HTTP_HOST=domain, HTTP_AUTHORIZATION=f"Bearer {token}")


def rendered_url(path: Path, suffix: str = "rendered") -> str:
    ds = read(path)
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/{suffix}"
    )


@pytest.fixture
def archive(tenant_a: Tenant, storage_dirs: Path) -> None:
    with tenant_context(tenant_a):
        for path in FILES:
            spooled = spool.write_durably(tenant_a.schema_name, path.read_bytes())
            assert do_ingest_spooled_file(spooled) is not None


@pytest.fixture
def token(tenant_a: Tenant, radiologist: User) -> str:
    with tenant_context(tenant_a):
        return do_issue_api_token(radiologist)


@pytest.fixture
def api(tenant_a: Tenant, token: str, archive: None) -> Client:
    return bearer_client(tenant_a, token)


# --- Authentication --------------------------------------------------------


def test_it_asks_for_a_bearer_token_when_none_is_sent(tenant_a, archive):
    response = Client(HTTP_HOST="a.localhost").get(SEARCH)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_a_wrong_token(tenant_a, token, archive):
    response = bearer_client(tenant_a, token + "x").get(SEARCH)

    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_it_refuses_a_revoked_token(tenant_a, token, archive):
    with tenant_context(tenant_a):
        ApiToken.objects.update(revoked_at=timezone.now())

    response = bearer_client(tenant_a, token).get(SEARCH)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_another_authorization_scheme(tenant_a, archive):
    client = Client(HTTP_HOST="a.localhost", HTTP_AUTHORIZATION="Basic cmFkOnB3")

    assert client.get(SEARCH).status_code == 401


def test_it_records_a_refused_token_in_the_audit_trail(tenant_a, token, archive):
    bearer_client(tenant_a, "not-a-token").get(SEARCH)

    with tenant_context(tenant_a):
        event = AuditEvent.objects.get(event_type=EventType.ACCESS_DENIED)
    assert "not-a-token" not in str(event.detail)


def test_it_refuses_our_token_on_another_tenant_host(
    tenant_a, token, archive, tenant_b
):
    assert bearer_client(tenant_b, token).get(SEARCH).status_code == 401


def test_it_accepts_an_otp_verified_session(tenant_a, radiologist, archive):
    client = tenant_client(tenant_a, radiologist)

    assert uids(search(client)) == set(facts_by_study())


# --- QIDO-RS: what a study looks like ---------------------------------------


def test_it_returns_every_study_with_the_return_keys_from_the_files(api):
    results = search(api)

    facts = facts_by_study()
    assert uids(results) == set(facts)
    for study in results:
        for keyword in RETURN_KEYS:
            assert study[tag(keyword)]["vr"] == dictionary_VR(keyword), keyword
        uid = value(study, "StudyInstanceUID")
        ds, known = facts[uid].first, facts[uid]
        assert value(study, "PatientID") == ds.PatientID
        assert value(study, "PatientName") == {"Alphabetic": str(ds.PatientName)}
        assert value(study, "StudyDate") == (ds.get("StudyDate") or None)
        assert value(study, "StudyTime") == (ds.get("StudyTime") or None)
        assert value(study, "AccessionNumber") == (ds.get("AccessionNumber") or None)
        assert value(study, "StudyID") == (ds.get("StudyID") or None)
        assert value(study, "PatientSex") == (ds.get("PatientSex") or None)
        assert value(study, "PatientBirthDate") == (ds.get("PatientBirthDate") or None)
        assert set(study[tag("ModalitiesInStudy")]["Value"]) == known.modalities
        assert value(study, "NumberOfStudyRelatedSeries") == len(known.series)
        assert value(study, "NumberOfStudyRelatedInstances") == known.instances
        assert value(study, "RetrieveURL") == f"http://a.localhost{SEARCH}/{uid}"


def test_it_leaves_out_the_value_of_an_empty_name(api):
    ds = read(FRENCH)
    assert str(ds.ReferringPhysicianName).strip("^") == ""

    (study,) = search(api, StudyInstanceUID=ds.StudyInstanceUID)

    assert study[tag("ReferringPhysicianName")] == {"vr": "PN"}


def test_it_answers_no_content_when_nothing_matches(api):
    response = api.get(SEARCH, {"PatientID": "nobody-has-this-id"})

    assert response.status_code == 204
    assert response.content == b""
    assert "Content-Type" not in response


def test_it_forbids_caches_to_keep_the_answer(api):
    assert "no-store" in api.get(SEARCH)["Cache-Control"]


def test_it_records_the_query_in_the_audit_trail(api, tenant_a, radiologist):
    ds = read(MR_SMALL)
    search(api, PatientID=ds.PatientID)

    with tenant_context(tenant_a):
        event = AuditEvent.objects.get(event_type=EventType.DICOMWEB_QUERY)
    assert event.actor_username == radiologist.username
    assert event.detail["match"] == {"PatientID": ds.PatientID}
    assert event.detail["results"] == 1


# --- QIDO-RS: matching (PS3.4 C.2.2.2) --------------------------------------


def test_it_matches_a_patient_id_exactly(api):
    ds = read(DX_IMAGE)

    found = uids(search(api, PatientID=ds.PatientID))

    assert found == expected(lambda d: d.PatientID == ds.PatientID)


def test_it_matches_a_patient_id_with_wildcards(api):
    pattern = read(CT_SLICES[0]).PatientID[:8] + "*"

    found = uids(search(api, PatientID=pattern))

    assert found == expected(lambda d: fnmatch.fnmatchcase(d.PatientID, pattern))
    assert found


def test_it_matches_a_patient_id_case_sensitively(api):
    patient_id = read(CT_SLICES[0]).PatientID

    assert search(api, PatientID=patient_id.lower()) == []


def test_it_matches_a_patient_id_given_by_tag(api):
    ds = read(CT_SMALL)

    found = uids(search(api, **{"00100020": ds.PatientID}))

    assert found == {ds.StudyInstanceUID}


def test_it_matches_a_patient_name_whatever_its_case(api):
    ds = read(CT_SMALL)

    found = uids(search(api, PatientName=str(ds.PatientName).swapcase()))

    assert found == {ds.StudyInstanceUID}


def test_it_matches_a_patient_name_across_components_with_wildcards(api):
    family, given = str(read(MR_SMALL).PatientName).split("^")
    pattern = f"{family.lower()}^{given[0]}*"

    found = uids(search(api, PatientName=pattern))

    assert found == expected(
        lambda d: fnmatch.fnmatch(str(d.PatientName).lower(), pattern.lower())
    )
    assert read(MR_SMALL).StudyInstanceUID in found


def test_it_matches_one_character_for_a_question_mark(api):
    name = str(read(CT_SMALL).PatientName)
    pattern = "?" + name[1:-1] + "?"

    found = uids(search(api, PatientName=pattern))

    assert found == expected(lambda d: fnmatch.fnmatch(str(d.PatientName), pattern))


def test_it_matches_every_name_that_starts_alike(api):
    found = uids(search(api, PatientName="CompressedSamples^*"))

    assert found == {read(CT_SMALL).StudyInstanceUID, read(MR_SMALL).StudyInstanceUID}


def test_it_does_not_match_a_family_name_alone_without_a_wildcard(api):
    family = str(read(CT_SMALL).PatientName).split("^")[0]

    assert search(api, PatientName=family) == []


@pytest.mark.parametrize("typed", ["exact", "upper", "lower", "wildcard"])
def test_it_matches_an_accented_name(api, typed):
    ds = read(FRENCH)
    name = str(ds.PatientName)
    query = {
        "exact": name,
        "upper": name.upper(),
        "lower": name.lower(),
        "wildcard": name.split("^")[0] + "^" + name.split("^")[1][:2] + "*",
    }[typed]

    results = search(api, PatientName=query)

    assert uids(results) == {ds.StudyInstanceUID}
    assert value(results[0], "PatientName") == {"Alphabetic": name}


def test_it_matches_a_single_study_date(api):
    date = read(CT_SMALL).StudyDate

    found = uids(search(api, StudyDate=date))

    assert found == expected(lambda d: d.get("StudyDate") == date)


@pytest.mark.parametrize(
    "date_range",
    ["20040101-20041231", "20100101-", "-20100101", "20040119-20040119"],
)
def test_it_matches_a_date_range(api, date_range):
    start, _, end = date_range.partition("-")

    found = uids(search(api, StudyDate=date_range))

    assert found == expected(
        lambda d: (
            bool(d.get("StudyDate"))
            and (not start or d.StudyDate >= start)
            and (not end or d.StudyDate <= end)
        )
    )
    assert found


def test_it_never_matches_a_study_without_a_date_on_a_date_range(api):
    found = uids(search(api, StudyDate="-99991231"))

    assert read(FRENCH).StudyInstanceUID not in found


@pytest.mark.parametrize("modalities", ["CT", "MR", "CT,DX", "ct", "D?"])
def test_it_matches_modalities_in_study(api, modalities):
    wanted = modalities.upper().split(",")

    found = uids(search(api, ModalitiesInStudy=modalities))

    assert found == expected(
        lambda d: any(fnmatch.fnmatchcase(d.Modality, code) for code in wanted)
    )
    assert found


def test_it_matches_an_accession_number(api):
    accession = read(DX_IMAGE).AccessionNumber

    found = uids(search(api, AccessionNumber=accession))

    assert found == expected(lambda d: d.get("AccessionNumber") == accession)
    assert found


def test_it_matches_a_list_of_study_uids(api):
    wanted = {read(CT_SMALL).StudyInstanceUID, read(DX_IMAGE).StudyInstanceUID}

    assert uids(search(api, StudyInstanceUID=",".join(sorted(wanted)))) == wanted
    assert uids(search(api, **{"0020000D": ",".join(sorted(wanted))})) == wanted


def test_it_combines_match_keys(api):
    ct, mr = read(CT_SMALL), read(MR_SMALL)

    assert uids(search(api, PatientName="Compressed*", ModalitiesInStudy="MR")) == {
        mr.StudyInstanceUID
    }
    assert search(api, PatientID=ct.PatientID, StudyDate=mr.StudyDate) == []


def test_it_treats_a_lone_star_as_universal_matching(api):
    assert uids(search(api, PatientName="*")) == set(facts_by_study())


def test_it_warns_about_a_match_key_it_does_not_support(api):
    response = api.get(SEARCH, {"PatientWeight": "70"})

    assert response.status_code == 200
    assert "PatientWeight" in response["Warning"]
    assert uids(response.json()) == set(facts_by_study())


@pytest.mark.parametrize(
    "params",
    [
        {"StudyDate": "2024-01-01"},
        {"StudyDate": "20240230"},
        {"StudyDate": "20240131-20240101"},
        {"StudyDate": "-"},
        {"StudyDate": "2024010"},
        {"StudyInstanceUID": "1.2.x"},
        {"limit": "ten"},
        {"limit": "-1"},
        {"offset": "1.5"},
    ],
)
def test_it_refuses_a_malformed_parameter_with_a_reason(api, params):
    response = api.get(SEARCH, params)

    assert response.status_code == 400
    assert list(params.values())[0].encode() in response.content


def test_it_refuses_a_match_key_given_twice(api):
    response = api.get(SEARCH + "?PatientID=a&00100020=b")

    assert response.status_code == 400


def test_it_answers_406_to_a_client_that_accepts_no_json(api):
    response = api.get(
        SEARCH, HTTP_ACCEPT="multipart/related; type=application/dicom+xml"
    )

    assert response.status_code == 406


# --- QIDO-RS: paging (PS3.18 8.3.4.4) ----------------------------------------


def test_it_pages_through_the_matches_in_a_stable_order(api):
    everything = [value(s, "StudyInstanceUID") for s in search(api)]

    pages = [search(api, limit="2", offset=str(offset)) for offset in (0, 2, 4)]

    assert [len(page) for page in pages] == [2, 2, len(everything) - 4]
    assert [value(s, "StudyInstanceUID") for p in pages for s in p] == everything


def test_it_warns_when_more_results_remain(api):
    response = api.get(SEARCH, {"limit": "1"})

    assert len(response.json()) == 1
    assert "additional results" in response["Warning"]
    assert "Warning" not in api.get(SEARCH, {"limit": "100"})


def test_it_answers_no_content_past_the_last_match(api):
    assert api.get(SEARCH, {"offset": "1000"}).status_code == 204
    assert api.get(SEARCH, {"limit": "0"}).status_code == 204


# --- Who sees what ------------------------------------------------------------


def test_it_shows_a_referrer_no_study(tenant_a, referrer, archive):
    with tenant_context(tenant_a):
        client = bearer_client(tenant_a, do_issue_api_token(referrer))

    assert search(client) == []
    assert client.get(rendered_url(CT_SMALL)).status_code == 404


def test_it_hides_our_studies_from_the_other_tenant(archive, tenant_b, radiologist_b):
    with tenant_context(tenant_b):
        client = bearer_client(tenant_b, do_issue_api_token(radiologist_b))
    ds = read(CT_SMALL)

    assert search(client, StudyInstanceUID=ds.StudyInstanceUID) == []
    assert search(client) == []
    assert client.get(rendered_url(CT_SMALL)).status_code == 404
    assert client.get(rendered_url(CT_SMALL, "frames/1/rendered")).status_code == 404


# --- WADO-RS rendered (PS3.18 10.4, 8.3.5.1) --------------------------------


def png(response) -> Image.Image:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


@pytest.mark.parametrize("path", [CT_SLICES[0], CT_SMALL, MR_SMALL, DX_IMAGE])
def test_it_renders_an_instance_as_a_png_of_its_size(api, path):
    ds = read(path)

    image = png(api.get(rendered_url(path)))

    assert image.format == "PNG"
    assert image.size == (ds.Columns, ds.Rows)


def test_it_renders_frame_one_like_the_instance(api):
    whole = api.get(rendered_url(DX_IMAGE))
    frame = api.get(rendered_url(DX_IMAGE, "frames/1/rendered"))

    assert png(frame).size == png(whole).size
    assert frame.content == whole.content


def test_it_applies_the_window_it_is_given(api):
    url = rendered_url(CT_SLICES[0])

    soft_tissue = api.get(url, {"window": "40,400"})
    bone = api.get(url, {"window": "500,2000"})
    linear = api.get(url, {"window": "40,400,LINEAR"})

    assert png(soft_tissue).size == png(bone).size
    assert soft_tissue.content != bone.content
    assert linear.content == soft_tissue.content


def test_it_applies_the_sigmoid_function_when_asked(api):
    ds = pydicom.dcmread(CT_SLICES[0])
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    # A pixel above the window, where LINEAR clips to white and the sigmoid
    # still has a grey level (PS3.3 C.11.2.1.3.1).
    row, column = divmod(int(np.abs(hu - 300).argmin()), hu.shape[1])
    expected = 255 / (1 + np.exp(-4 * (hu[row, column] - 40) / 400))
    url = rendered_url(CT_SLICES[0])

    linear = png(api.get(url, {"window": "40,400,LINEAR"}))
    sigmoid = png(api.get(url, {"window": "40,400,SIGMOID"}))

    assert linear.getpixel((column, row)) == 255
    assert abs(sigmoid.getpixel((column, row)) - expected) <= 1


@pytest.mark.parametrize("window", ["40", "40,400,CUBIC", "a,b", "40,0", "nan,400"])
def test_it_refuses_a_bad_window(api, window):
    response = api.get(rendered_url(CT_SMALL), {"window": window})

    assert response.status_code == 400
    assert response.content.strip()


@pytest.mark.parametrize("frames", ["0", "1,2", "x"])
def test_it_refuses_a_bad_frame_list(api, frames):
    response = api.get(rendered_url(CT_SMALL, f"frames/{frames}/rendered"))

    assert response.status_code == 400


def test_it_answers_404_for_a_frame_past_the_last(api):
    ds = read(CT_SMALL)
    frames = int(ds.get("NumberOfFrames", 1) or 1)

    response = api.get(rendered_url(CT_SMALL, f"frames/{frames + 1}/rendered"))

    assert response.status_code == 404


def test_it_answers_404_for_an_unknown_instance(api):
    ds = read(CT_SMALL)
    url = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        "/instances/1.2.3.4/rendered"
    )

    assert api.get(url).status_code == 404


def test_it_answers_404_when_the_series_is_not_of_that_study(api):
    ct, mr = read(CT_SMALL), read(MR_SMALL)
    url = (
        f"/dicomweb/studies/{ct.StudyInstanceUID}/series/{mr.SeriesInstanceUID}"
        f"/instances/{mr.SOPInstanceUID}/rendered"
    )

    assert api.get(url).status_code == 404


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("image/png", 200),
        ("image/*", 200),
        ("*/*", 200),
        ("image/jpeg", 406),
        ("image/png;q=0, */*", 406),
        ("application/dicom", 406),
    ],
)
def test_it_negotiates_the_media_type(api, accept, status):
    response = api.get(rendered_url(CT_SMALL), HTTP_ACCEPT=accept)

    assert response.status_code == status


def test_it_lets_the_accept_parameter_override_the_header(api):
    response = api.get(
        rendered_url(CT_SMALL), {"accept": "image/png"}, HTTP_ACCEPT="image/jpeg"
    )

    assert png(response).size == (read(CT_SMALL).Columns, read(CT_SMALL).Rows)


def test_it_records_the_retrieve_in_the_audit_trail(api, tenant_a, radiologist):
    ds = read(MR_SMALL)
    api.get(rendered_url(MR_SMALL), {"window": "600,1200"})

    with tenant_context(tenant_a):
        event = AuditEvent.objects.get(event_type=EventType.DICOMWEB_RETRIEVE)
    assert event.actor_username == radiologist.username
    assert event.object_id == ds.SOPInstanceUID
    assert event.study_instance_uid == ds.StudyInstanceUID
    assert event.patient_id == ds.PatientID
    assert event.detail["window"][:2] == [600.0, 1200.0]


@pytest.mark.parametrize("key", ["PatientName", "PatientID", "AccessionNumber"])
def test_it_refuses_a_control_character_in_a_match_value(api, key):
    response = api.get(SEARCH, {key: "Doe\x00"})

    assert response.status_code == 400
    assert b"control character" in response.content
