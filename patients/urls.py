"""Patient links: the staff page that makes them, and the patient's pages."""

from django.urls import path

from patients import views, views_staff

app_name = "patients"

STUDY = "patient/studies/<str:study_uid>/"

urlpatterns = [
    path("p/<str:token>/", views.open_link, name="link"),
    path("patient/", views.home, name="home"),
    path("patient/sign-out/", views.sign_out, name="sign_out"),
    path(STUDY, views.study_report, name="report"),
    path(f"{STUDY}report.pdf", views.report_pdf, name="report_pdf"),
    path(f"{STUDY}viewer/", views.viewer, name="viewer"),
    path(f"{STUDY}images.zip", views.download, name="download"),
    path(f"{STUDY}series/<str:series_uid>/", views.series_images, name="series"),
    path(
        f"{STUDY}series/<str:series_uid>/instances/<str:sop_uid>"
        "/frames/<int:frame>.png",
        views.frame,
        name="frame",
    ),
    path(
        "patient-access/studies/<str:study_uid>/",
        views_staff.study_links,
        name="study_links",
    ),
    path(
        "patient-access/studies/<str:study_uid>/links/<int:link_id>/revoke/",
        views_staff.revoke_link,
        name="revoke",
    ),
]
