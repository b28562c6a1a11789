from django.urls import path

from collab import views

app_name = "collab"

urlpatterns = [
    path("", views.second_opinions, name="list"),
    path(
        "studies/<str:study_uid>/request/", views.request_second_opinion, name="request"
    ),
    path("<uuid:share_key>/", views.thread, name="thread"),
    path("<uuid:share_key>/comments/", views.post_comment, name="comment"),
    path("<uuid:share_key>/revoke/", views.revoke, name="revoke"),
]
