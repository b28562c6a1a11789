from django.urls import path

from referrals import views

app_name = "referrals"

STUDY = "studies/<str:study_uid>/"

urlpatterns = [
    path("", views.home, name="home"),
    path("notifications/", views.notices, name="notices"),
    path(STUDY, views.study, name="study"),
    path(f"{STUDY}key-images/<int:number>.png", views.key_image, name="key_image"),
]
