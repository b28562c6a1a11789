import base64
import binascii
import secrets

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiToken, Role, User
from audit.actions import do_record_event
from audit.models import EventType


def totp_secret_to_hex(secret_base32: str) -> str:
    """Authenticator apps speak base32; django-otp stores the key as hex."""
    cleaned = secret_base32.replace(" ", "").upper()
    padded = cleaned + "=" * (-len(cleaned) % 8)
    try:
        return base64.b32decode(padded).hex()
    except binascii.Error as error:
        raise ValueError("The TOTP secret is not valid base32.") from error


def new_totp_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode()


@transaction.atomic
def do_create_user(
    username: str, role: Role, password: str, totp_secret: str
) -> tuple[User, bool]:
    """Create or update a user with one confirmed TOTP device holding totp_secret."""
    user, created = User.objects.get_or_create(username=username)
    user.role = role
    user.is_staff = role in {Role.TENANT_ADMIN, Role.PLATFORM_ADMIN}
    user.is_superuser = role == Role.PLATFORM_ADMIN
    user.set_password(password)
    user.save()

    key = totp_secret_to_hex(totp_secret)
    TOTPDevice.objects.filter(user=user).exclude(name="default").delete()
    TOTPDevice.objects.update_or_create(
        user=user, name="default", defaults={"key": key, "confirmed": True}
    )
    do_record_event(
        EventType.USER_CHANGED,
        actor_username="manage.py",
        object_type="user",
        object_id=str(user.pk),
        detail={"username": username, "role": role, "created": created},
    )
    return user, created


@transaction.atomic
def do_issue_api_token(user: User, label: str = "") -> str:
    _, raw = ApiToken.issue(user, label=label)
    do_record_event(
        EventType.API_TOKEN_ISSUED,
        actor_username="manage.py",
        object_type="user",
        object_id=str(user.pk),
    )
    return raw
