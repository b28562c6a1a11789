"""Second factors: the authenticator app (TOTP) and one-time backup codes.

Backup codes are stored as keyed hashes (django-otp keeps static tokens in
plain text): a copy of the database does not hand out working codes. Every
check picks one device from the token's shape, so a failed try counts
against that device only, as django-otp 1.7 requires.
"""

import secrets

from django.db import transaction
from django.utils.crypto import salted_hmac
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User

BACKUP_CODE_COUNT = 10
# No look-alikes (0/o, 1/l/i): codes are read off paper.
_BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_BACKUP_CODE_LENGTH = 10
BACKUP_DEVICE_NAME = "backup"


def new_backup_code() -> str:
    code = "".join(secrets.choice(_BACKUP_ALPHABET) for _ in range(_BACKUP_CODE_LENGTH))
    return f"{code[:5]}-{code[5:]}"


def hashed_backup_code(user: User, code: str) -> str:
    """The stored form of a backup code: 16 hex digits of an HMAC, per user."""
    normalised = code.replace("-", "").replace(" ", "").lower()
    return salted_hmac(
        "nimbus.accounts.backup-code", f"{user.pk}:{normalised}", algorithm="sha256"
    ).hexdigest()[:16]


def is_totp_shaped(token: str) -> bool:
    return token.isdigit() and len(token) == 6


def device_for_token(user: User, token: str) -> Device | None:
    """The confirmed device that a token of this shape belongs to."""
    model = TOTPDevice if is_totp_shaped(token.strip()) else StaticDevice
    return model.objects.filter(user=user, confirmed=True).order_by("pk").first()


def token_for_device(user: User, device: Device, token: str) -> str:
    """What the device compares: the token itself, or a backup code's hash."""
    token = token.strip()
    return (
        hashed_backup_code(user, token) if isinstance(device, StaticDevice) else token
    )


def verify_fresh_otp(user: User, token: str) -> Device | None:
    """The device that accepts this one-time password now, or None.

    A device refuses a token it accepted before (TOTP keeps the last time
    step; a backup code is deleted) and throttles failures. Its own
    transaction keeps both counters even when the caller's work is refused.
    """
    token = token.strip()
    if not token:
        return None
    device = device_for_token(user, token)
    if device is None:
        return None
    with transaction.atomic():
        if device.verify_token(token_for_device(user, device, token)):
            return device
    return None


def has_second_factor(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()
