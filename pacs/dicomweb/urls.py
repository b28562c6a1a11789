"""DICOMweb routes under /dicomweb/ on a tenant host (PS3.18 10.4, 10.6)."""

from django.urls import path, re_path, register_converter

from pacs.dicomweb import search, stow, thumbnail, views, wado


class DicomUidConverter:
    """A UID path segment (PS3.5 9.1); anything else never reaches a view."""

    regex = r"[0-9]+(?:\.[0-9]+)*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(DicomUidConverter, "dicom_uid")

app_name = "dicomweb"

INSTANCE = (
    "studies/<dicom_uid:study_uid>/series/<dicom_uid:series_uid>"
    "/instances/<dicom_uid:sop_uid>"
)

urlpatterns = [
    re_path(
        r"^studies/?$",
        stow.accepting_stow(search.search_for_studies),
        name="studies",
    ),
    # QIDO-RS at the series and instance levels (PS3.18 10.6.1).
    path("series", search.search_for_series, name="series"),
    path(
        "studies/<dicom_uid:study_uid>/series",
        search.search_for_series,
        name="study-series",
    ),
    path("instances", search.search_for_instances, name="instances"),
    path(
        "studies/<dicom_uid:study_uid>/instances",
        search.search_for_instances,
        name="study-instances",
    ),
    path(
        "studies/<dicom_uid:study_uid>/series/<dicom_uid:series_uid>/instances",
        search.search_for_instances,
        name="series-instances",
    ),
    path(
        f"{INSTANCE}/rendered",
        views.retrieve_rendered_instance,
        name="instance-rendered",
    ),
    path(
        f"{INSTANCE}/frames/<str:frame_list>/rendered",
        views.retrieve_rendered_frames,
        name="frames-rendered",
    ),
    # WADO-RS retrieve, metadata, frames, bulk data and thumbnails (PS3.18
    # 10.4, 10.7) and STOW-RS to a study (10.5): pacs/dicomweb/wado.py etc.
    path(
        "studies/<dicom_uid:study_uid>",
        stow.accepting_stow(wado.retrieve_study),
        name="study",
    ),
    path(
        "studies/<dicom_uid:study_uid>/metadata",
        wado.retrieve_study_metadata,
        name="study-metadata",
    ),
    path(
        "studies/<dicom_uid:study_uid>/thumbnail",
        thumbnail.study_thumbnail,
        name="study-thumbnail",
    ),
    path(
        "studies/<dicom_uid:study_uid>/series/<dicom_uid:series_uid>",
        wado.retrieve_series,
        name="series-retrieve",
    ),
    path(
        "studies/<dicom_uid:study_uid>/series/<dicom_uid:series_uid>/metadata",
        wado.retrieve_series_metadata,
        name="series-metadata",
    ),
    path(
        "studies/<dicom_uid:study_uid>/series/<dicom_uid:series_uid>/thumbnail",
        thumbnail.series_thumbnail,
        name="series-thumbnail",
    ),
    path(INSTANCE, wado.retrieve_instance, name="instance"),
    path(
        f"{INSTANCE}/metadata",
        wado.retrieve_instance_metadata,
        name="instance-metadata",
    ),
    path(
        f"{INSTANCE}/thumbnail",
        thumbnail.instance_thumbnail,
        name="instance-thumbnail",
    ),
    path(f"{INSTANCE}/frames/<str:frame_list>", wado.retrieve_frames, name="frames"),
    path(
        f"{INSTANCE}/bulkdata/<path:tag_path>",
        wado.retrieve_bulk_data,
        name="bulkdata",
    ),
]
