import base64
import binascii
import secrets
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.http import HttpRequest
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiToken, Role, User
from accounts.otp import (
    BACKUP_CODE_COUNT,
    BACKUP_DEVICE_NAME,
    hashed_backup_code,
    new_backup_code,
    verify_fresh_otp,
)
from accounts.sessions import note_reauthentication, user_group_name
from audit.actions import do_record_event
from audit.models import EventType, Outcome


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


# --- Second factors, sessions and passwords (issue 6) -------------------------


def do_start_totp_enrolment(user: User) -> TOTPDevice:
    """The user's unconfirmed authenticator device, with a new key if it has none."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="default", confirmed=False)
    return device


@transaction.atomic
def do_confirm_totp_enrolment(
    request: HttpRequest, device: TOTPDevice, token: str
) -> list[str] | None:
    """Confirm the device with its first code; verify the session; new backup codes.

    Returns the backup codes to show once, or None when the code is wrong.
    """
    user = device.user
    if not device.verify_token(token.strip()):
        _record_user_event(
            EventType.OTP_DEVICE_ENROLLED, request, user, outcome=Outcome.FAILURE
        )
        return None
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    otp_login(request, device)
    # The session now opens patient data: a key known from before the second
    # factor (planted, or seen over the password-only session) opens nothing.
    request.session.cycle_key()
    _record_user_event(EventType.OTP_DEVICE_ENROLLED, request, user)
    return do_issue_backup_codes(user, request=request)


@transaction.atomic
def do_issue_backup_codes(
    user: User, *, request: HttpRequest | None = None
) -> list[str]:
    """Replace the user's backup codes; only their hashes are kept."""
    device, _ = StaticDevice.objects.update_or_create(
        user=user, name=BACKUP_DEVICE_NAME, defaults={"confirmed": True}
    )
    StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.token_set.all().delete()
    codes = [new_backup_code() for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create(
        StaticToken(device=device, token=hashed_backup_code(user, code))
        for code in codes
    )
    _record_user_event(
        EventType.BACKUP_CODES_ISSUED, request, user, detail={"count": len(codes)}
    )
    return codes


def do_reauthenticate(request: HttpRequest, user: User, token: str) -> bool:
    """A fresh one-time password opens exports for NIMBUS_REAUTH_MINUTES."""
    accepted = verify_fresh_otp(user, token) is not None
    if accepted:
        note_reauthentication(request.session)
    _record_user_event(
        EventType.REAUTHENTICATED,
        request,
        user,
        outcome=Outcome.SUCCESS if accepted else Outcome.FAILURE,
    )
    return accepted


def do_change_password(request: HttpRequest, user: User, password: str) -> None:
    """New password: every other session of the user ends, this one goes on."""
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        _record_user_event(EventType.PASSWORD_CHANGED, request, user)
        close_sockets_on_commit(user)
    update_session_auth_hash(request, user)


def do_set_language(request: HttpRequest, user: User, language: str) -> None:
    """The user's language for pages, e-mails and PDFs ("" follows the browser)."""
    old = user.language
    if old == language:
        return
    with transaction.atomic():
        user.language = language
        user.save(update_fields=["language"])
        _record_user_event(
            EventType.USER_CHANGED,
            request,
            user,
            detail={"changed": ["language"], "old": old, "new": language},
        )


def do_end_all_sessions(request: HttpRequest, user: User) -> None:
    """Sign out everywhere: every session and browser socket of the user ends."""
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(session_salt=secrets.token_hex(16))
        _record_user_event(EventType.SESSIONS_ENDED, request, user)
        close_sockets_on_commit(user)
    logout(request)


def do_expire_session(request: HttpRequest, user: User, reason: str) -> None:
    """End a session past its idle time-out or lifetime (not a sign-out)."""
    _record_user_event(
        EventType.SESSION_EXPIRED,
        request,
        user,
        outcome=Outcome.FAILURE,
        detail={"reason": reason},
    )
    request.session.flush()
    request.user = AnonymousUser()


def close_sockets_on_commit(user: User) -> None:
    group = user_group_name(connection.schema_name, user.pk)
    transaction.on_commit(partial(_send_session_ended, group))


def _send_session_ended(group: str) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, {"type": "session.ended"})


def _record_user_event(
    event_type: EventType, request: HttpRequest | None, user: User, **extra: Any
) -> None:
    """An audit record of something done to (and by) one user's account."""
    do_record_event(
        event_type,
        request=request,
        actor=user,
        object_type="user",
        object_id=str(user.pk),
        **extra,
    )
