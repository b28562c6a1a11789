from django.urls import path

from viewer import views

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
]
