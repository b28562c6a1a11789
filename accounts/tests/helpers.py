from django.test import Client

from conftest import current_totp

WRONG_PASSWORD = "Not-the-password-42"


def sign_in(client: Client, username: str, password: str, otp: str, **extra: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/accounts/login/",
        {"username": username, "password": password, "otp_token": otp},
        **extra,
    )


def wrong_totp() -> str:
    return f"{(int(current_totp()) + 1) % 1_000_000:06d}"


def errors(response) -> list[str]:  # type: ignore[no-untyped-def]
    return list(response.context["form"].non_field_errors())
