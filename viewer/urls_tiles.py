"""Tiles of large images and the render-cache warm-up (viewer/views_tiles.py)."""

from django.urls import path

from viewer import views_tiles

FRAME = (
    "studies/<str:study_uid>/series/<str:series_uid>/instances/<str:sop_uid>"
    "/frames/<int:frame>"
)

urlpatterns = [
    path(f"{FRAME}/tiles.json", views_tiles.frame_tiles, name="frame_tiles"),
    path(
        f"{FRAME}/tiles/<int:level>/<int:x>_<int:y>.png",
        views_tiles.frame_tile,
        name="frame_tile",
    ),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/warm",
        views_tiles.warm_series,
        name="warm",
    ),
]
