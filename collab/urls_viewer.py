"""The viewer's URL names for shared-in studies (instance ``collab_viewer``).

Each path starts with the share's key; the study UID after it must be the
share's own (collab.access), so the viewer's script and templates work
unchanged with the study and series slots they fill in.
"""

from django.urls import path

from collab import views_viewer

app_name = "viewer"

STUDY = "<uuid:share_key>/studies/<str:study_uid>/"
SERIES = f"{STUDY}series/<str:series_uid>/"

urlpatterns = [
    path(STUDY, views_viewer.study_viewer, name="study"),
    path(SERIES, views_viewer.series_images, name="series"),
    path(f"{SERIES}thumbnail.png", views_viewer.series_thumbnail, name="thumbnail"),
    path(
        f"{SERIES}instances/<str:sop_uid>/frames/<int:frame>.png",
        views_viewer.frame_png,
        name="frame",
    ),
    path(f"{SERIES}warm", views_viewer.warm_series, name="warm"),
    path(f"{SERIES}mpr/", views_viewer.not_offered, name="mpr"),
    path(f"{STUDY}key-images/", views_viewer.key_images, name="key_images"),
]
