import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    PLATFORM_ADMIN = "platform_admin", _("Platform administrator")
    TENANT_ADMIN = "tenant_admin", _("Tenant administrator")
    RADIOLOGIST = "radiologist", _("Radiologist")
    REFERRER = "referrer", _("Referring clinician")
    PATIENT = "patient", _("Patient")
    HELPDESK = "helpdesk", _("Helpdesk")


# Roles that read images and report text of any study in their tenant.
# Hospital IT (tenant_admin) manages users and connections, not patient data.
CLINICAL_READER_ROLES = {Role.RADIOLOGIST}


class User(AbstractUser):
    """A person who signs in; kept in their tenant's schema (platform staff: public)."""

    role = models.CharField(
        _("role"), max_length=32, choices=Role.choices, default=Role.RADIOLOGIST
    )

    # Part of the session hash: a new value ends every session of the user
    # ("sign out everywhere"), over HTTP and at the websocket handshake.
    session_salt = models.CharField(max_length=32, blank=True, editable=False)

    # Empty: the browser's language, within the tenant's languages. Pages,
    # e-mails and PDFs made for the user follow it (accounts.language).
    language = models.CharField(
        _("language"),
        max_length=8,
        blank=True,
        choices=settings.LANGUAGES,
        help_text=_("Language of pages, e-mails and PDFs. Empty: the browser's."),
    )

    @property
    def reads_studies(self) -> bool:
        return self.role in CLINICAL_READER_ROLES

    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        # Empty until the first "sign out everywhere", so that sessions
        # opened before this field existed stay valid.
        value = self.password
        if self.session_salt:
            value = f"{self.password}:{self.session_salt}"
        return salted_hmac(
            "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash",
            value,
            secret=secret,
            algorithm="sha256",
        ).hexdigest()


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token for DICOMweb and API clients. Only its SHA-256 is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(
        max_length=8, help_text=_("First characters, to recognise a token in lists.")
    )
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(cls, user: User, label: str = "") -> tuple["ApiToken", str]:
        raw = secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, key_hash=hash_token(raw), prefix=raw[:8], label=label
        )
        return token, raw
