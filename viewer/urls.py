from django.urls import path

from viewer import views, views_mpr

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
