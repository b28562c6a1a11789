from django.urls import path

from reading import views

app_name = "reading"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("counts/", views.counts, name="counts"),
    path("studies/<str:study_instance_uid>/", views.study, name="study"),
    path("studies/<str:study_instance_uid>/claim/", views.claim, name="claim"),
    path("studies/<str:study_instance_uid>/release/", views.release, name="release"),
    path(
        "studies/<str:study_instance_uid>/referrals/<int:referral_id>/end/",
        views.end_referral,
        name="end_referral",
    ),
]
