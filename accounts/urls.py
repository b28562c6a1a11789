from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("enrol/", views.enrol, name="enrol"),
    path("security/", views.security, name="security"),
    path("password/", views.change_password, name="password"),
    path("sign-out-everywhere/", views.sign_out_everywhere, name="sign-out-everywhere"),
    path("reauthenticate/", views.reauthenticate, name="reauthenticate"),
    path("session/", views.session_status, name="session"),
    path("language/", views.set_language, name="language"),
]
