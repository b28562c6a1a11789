"""DICOMweb routes under /dicomweb/ on a tenant host (PS3.18 10.4, 10.6)."""

from django.urls import path, re_path, register_converter

from pacs.dicomweb import views


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
    re_path(r"^studies/?$", views.search_for_studies, name="studies"),
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
]
