# ruff: noqa: F811 - the fixtures imported from test_dicomweb are the arguments
"""QIDO-RS Search for Series and Search for Instances (PS3.18 10.6.1).

Uses the archive of test_dicomweb (real files in hospital A); expected values
are read from the files with pydicom.
"""

from pacs.tests.test_dicomweb import (  # noqa: F401 - fixtures
    CT_SLICES,
    CT_SMALL,
    FILES,
    MR_SMALL,
    api,
    archive,
    read,
    tag,
    token,
    value,
)


def get(client, url: str, **params: str) -> list[dict]:  # type: ignore[no-untyped-def]
    response = client.get(url, params)
    if response.status_code == 204:
        return []
    assert response.status_code == 200, response.content
    return response.json()


def test_it_lists_the_series_of_a_study(api):
    ds = read(CT_SLICES[0])

    results = get(api, f"/dicomweb/studies/{ds.StudyInstanceUID}/series")

    expected = {
        str(read(p).SeriesInstanceUID)
        for p in FILES
        if read(p).StudyInstanceUID == ds.StudyInstanceUID
    }
    assert {value(s, "SeriesInstanceUID") for s in results} == expected
    (series,) = [
        s for s in results if value(s, "SeriesInstanceUID") == ds.SeriesInstanceUID
    ]
    assert value(series, "Modality") == ds.Modality
    assert value(series, "NumberOfSeriesRelatedInstances") == len(CT_SLICES)
    assert value(series, "RetrieveURL").endswith(f"/series/{ds.SeriesInstanceUID}")


def test_it_matches_series_across_studies_by_modality(api):
    results = get(api, "/dicomweb/series", Modality="MR")

    assert {value(s, "SeriesInstanceUID") for s in results} == {
        str(read(p).SeriesInstanceUID) for p in FILES if read(p).Modality == "MR"
    }
    assert all(tag("PatientName") in s for s in results)


def test_it_lists_the_instances_of_a_series_in_order(api):
    ds = read(CT_SLICES[0])
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances"

    results = get(api, url, includefield="SliceThickness")

    slices = sorted((read(p) for p in CT_SLICES), key=lambda s: int(s.InstanceNumber))
    assert [value(i, "SOPInstanceUID") for i in results] == [
        s.SOPInstanceUID for s in slices
    ]
    for result, slice_ in zip(results, slices, strict=True):
        assert value(result, "Rows") == slice_.Rows
        assert value(result, "BitsAllocated") == slice_.BitsAllocated
        assert float(value(result, "SliceThickness")) == float(slice_.SliceThickness)


def test_it_finds_an_instance_by_sop_instance_uid_anywhere(api):
    ds = read(MR_SMALL)

    (result,) = get(
        api, "/dicomweb/instances", SOPInstanceUID=ds.SOPInstanceUID, includefield="all"
    )

    assert value(result, "StudyInstanceUID") == ds.StudyInstanceUID
    assert value(result, "SeriesInstanceUID") == ds.SeriesInstanceUID
    assert value(result, "SOPClassUID") == ds.SOPClassUID
    assert value(result, "EchoTime") == float(ds.EchoTime)


def test_it_pages_the_instances_of_a_study(api):
    ds = read(CT_SLICES[0])
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/instances"

    first = get(api, url, limit="2")
    rest = get(api, url, offset="2")

    assert len(first) == 2
    assert len(first) + len(rest) == sum(
        1 for p in FILES if read(p).StudyInstanceUID == ds.StudyInstanceUID
    )


def test_it_matches_names_without_accents_when_asked_for_fuzzy_matching(api):
    from pacs.tests.test_dicomweb import FRENCH

    ds = read(FRENCH)

    results = get(
        api, "/dicomweb/studies", PatientName="buc^jerome", fuzzymatching="true"
    )

    assert {value(s, "StudyInstanceUID") for s in results} == {ds.StudyInstanceUID}
    assert get(api, "/dicomweb/studies", PatientName="buc^jerome") == []
