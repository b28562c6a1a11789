from django.urls import path

from collab import views

app_name = "collab"

urlpatterns = [
    path("", views.second_opinions, name="list"),
    path(
        "studies/<str:study_uid>/request/", views.request_second_opinion, name="request"
    ),
    path("<int:share_id>/", views.thread, name="thread"),
    path("<int:share_id>/comments/", views.post_comment, name="comment"),
    path("<int:share_id>/revoke/", views.revoke, name="revoke"),
]
