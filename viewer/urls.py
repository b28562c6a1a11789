from django.urls import include, path

from viewer import views, views_mpr, views_tools

app_name = "viewer"

urlpatterns = [
    path("studies/<str:study_uid>/", views.study_viewer, name="study"),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/",
        views.series_images,
        name="series",
    ),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/thumbnail.png",
        views.series_thumbnail,
        name="thumbnail",
    ),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/instances/<str:sop_uid>"
        "/frames/<int:frame>.png",
        views.frame_png,
        name="frame",
    ),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/mpr/",
        views_mpr.mpr_viewer,
        name="mpr",
    ),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/volume.json",
        views_mpr.volume_geometry,
        name="volume",
    ),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/mpr/<str:orientation>.png",
        views_mpr.mpr_plane,
        name="mpr_plane",
    ),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/3d.png",
        views_mpr.volume_render,
        name="volume_render",
    ),
]

FRAME = (
    "studies/<str:study_uid>/series/<str:series_uid>/instances/<str:sop_uid>"
    "/frames/<int:frame>"
)

urlpatterns += [
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/facts.json",
        views_tools.series_facts,
        name="series_facts",
    ),
    path(f"{FRAME}/info.json", views_tools.frame_facts, name="frame_info"),
    path(
        f"{FRAME}/annotations/",
        views_tools.frame_annotations,
        name="frame_annotations",
    ),
    path(f"{FRAME}/key", views_tools.key_image, name="key_image"),
    path(
        "studies/<str:study_uid>/annotations/",
        views_tools.study_annotations,
        name="annotations",
    ),
    path(
        "studies/<str:study_uid>/annotations/<int:annotation_id>/",
        views_tools.annotation_detail,
        name="annotation",
    ),
    path(
        "studies/<str:study_uid>/key-images/",
        views_tools.key_images,
        name="key_images",
    ),
]

# Tiles of large images and the render-cache warm-up.
urlpatterns += [path("", include("viewer.urls_tiles"))]
