"""The study page: the tenant's window presets and the hanging protocol."""

import json
import re

import pydicom
import pytest
from django.urls import reverse
from pydicom.uid import generate_uid

from conftest import CT_SERIES
from pacs.models import Study
from viewer.models import WindowPreset


def page_config(client, study: Study) -> dict:  # type: ignore[no-untyped-def]
    html = client.get(reverse("viewer:study", args=[study.study_instance_uid]))
    found = re.search(
        r'<script id="viewer-config" type="application/json">(.*?)</script>',
        html.content.decode(),
        re.S,
    )
    assert found is not None
    return json.loads(found.group(1))


def earlier_copy(tmp_path, name: str, study_date: str):  # type: ignore[no-untyped-def]
    """The same patient's CT slice as if from an earlier study."""
    ds = pydicom.dcmread(CT_SERIES / name)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyDate = study_date
    path = tmp_path / f"{study_date}-{name}"
    ds.save_as(path)
    return path, ds.StudyInstanceUID


@pytest.mark.django_db
def test_every_tenant_starts_with_the_common_ct_windows(tenant_a):
    labels = list(
        WindowPreset.objects.filter(modality="CT").values_list("label", flat=True)
    )

    assert labels == [
        "Brain",
        "Subdural",
        "Stroke",
        "Lung",
        "Mediastinum",
        "Abdomen",
        "Liver",
        "Bone",
    ]


@pytest.mark.django_db
def test_it_offers_the_tenants_own_presets_for_the_studys_modalities(client_a, ingest):
    instance = ingest(CT_SERIES / "1-030.dcm")
    WindowPreset.objects.create(
        modality="CT",
        label="Temporal bone",
        window_center=700,
        window_width=4000,
        position=20,
    )
    WindowPreset.objects.create(
        modality="MR", label="Spine", window_center=300, window_width=600
    )

    presets = page_config(client_a, instance.series.study)["presets"]

    assert list(presets) == ["CT"]
    assert {"label": "Temporal bone", "center": 700, "width": 4000}.items() <= (
        presets["CT"][-1].items()
    )


@pytest.mark.django_db
def test_it_hangs_a_ct_beside_the_latest_prior_with_linked_scrolling(
    client_a, ingest, tmp_path
):
    current = ingest(CT_SERIES / "1-030.dcm").series.study
    old_path, _ = earlier_copy(tmp_path, "1-031.dcm", "20100101")
    prior_path, prior_uid = earlier_copy(tmp_path, "1-032.dcm", "20110101")
    ingest(old_path)
    prior_series = ingest(prior_path).series

    config = page_config(client_a, current)

    assert config["layout"] == "1x2"
    assert config["linked"] is True
    assert config["viewports"] == [
        {
            "study": current.study_instance_uid,
            "series": current.series.get().series_instance_uid,
        },
        {"study": prior_uid, "series": prior_series.series_instance_uid},
    ]


@pytest.mark.django_db
def test_it_shows_a_study_without_a_prior_alone(client_a, ingest):
    study = ingest(CT_SERIES / "1-030.dcm").series.study

    config = page_config(client_a, study)

    assert config["layout"] == "1x1"
    assert len(config["viewports"]) == 1
