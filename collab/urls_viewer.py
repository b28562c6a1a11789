"""The viewer's URL names for shared-in studies (instance ``collab_viewer``)."""

from django.urls import path

from collab import views_viewer

app_name = "viewer"

SERIES = "studies/<str:study_uid>/series/<str:series_uid>/"

urlpatterns = [
    path("studies/<str:study_uid>/", views_viewer.study_viewer, name="study"),
    path(SERIES, views_viewer.series_images, name="series"),
    path(f"{SERIES}thumbnail.png", views_viewer.series_thumbnail, name="thumbnail"),
    path(
        f"{SERIES}instances/<str:sop_uid>/frames/<int:frame>.png",
        views_viewer.frame_png,
        name="frame",
    ),
    path(f"{SERIES}warm", views_viewer.warm_series, name="warm"),
    path(f"{SERIES}mpr/", views_viewer.not_offered, name="mpr"),
    path(
        "studies/<str:study_uid>/key-images/",
        views_viewer.key_images,
        name="key_images",
    ),
]
