from django.urls import path

from reporting import views, views_outbound

app_name = "reporting"

urlpatterns = [
    path("studies/<str:study_uid>/", views.report_editor, name="editor"),
    path("studies/<str:study_uid>/versions/", views.report_versions, name="versions"),
    path("studies/<str:study_uid>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("notifications/", views.notifications, name="notifications"),
]

# The outbound HL7 queue (reporting/views_outbound.py).
urlpatterns += [
    path("outbound/", views_outbound.outbound_queue, name="outbound"),
    path(
        "outbound/<int:message_id>/resend",
        views_outbound.resend_message,
        name="outbound-resend",
    ),
]
