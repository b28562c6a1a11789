"""Django settings for Nimbus PACS.

All configuration comes from the environment (see docs/configuration.md).
Development defaults are safe for 127.0.0.1 only; NIMBUS_PRODUCTION=true
turns on the HTTPS-only settings and refuses to start without a secret key.
"""

import datetime
import os
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from config.env import (
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_str,
    redis_tls_from_url,
)
from config.logs import logging_config
from config.storage import storage_setting

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("NIMBUS_VAR_DIR", str(BASE_DIR / "var")))

PRODUCTION = env_bool("NIMBUS_PRODUCTION", False)
DEBUG = env_bool("DJANGO_DEBUG", False)
if PRODUCTION:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY")
else:
    SECRET_KEY = env_str(
        "DJANGO_SECRET_KEY", "dev-only-insecure-key-never-use-in-production"
    )

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", [".localhost", "localhost", "127.0.0.1"]
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# Audited before the usual 403 page: a refused token is a forged request.
CSRF_FAILURE_VIEW = "accounts.views.csrf_failure"

# --- Applications -----------------------------------------------------------
# django-tenants: SHARED_APPS live in the public schema (platform admin,
# tenant registry); TENANT_APPS are created in every hospital's schema. Users,
# sessions and OTP devices are in both: platform staff sign in to the public
# admin, hospital users to their own tenant, and neither table leaks across.
SHARED_APPS = [
    # Before django_tenants, so that our create_tenant command replaces its own.
    "tenants",
    "django_tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    # Before accounts: its failure counter must run before the audit receiver.
    "axes",
    "accounts",
    "audit",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "django_prometheus",
    # PostgreSQL's index types and operator classes (pacs: the trigram
    # indexes of the worklist's patient searches); no models.
    "django.contrib.postgres",
    # Readiness, metrics, listener heartbeats, tenant backups (no models).
    "ops",
    # Public only: second opinions are read from the hosts of two tenants.
    "collab",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    # Failed sign-ins are counted in each tenant's schema: a lockout at one
    # hospital is not one at another.
    "axes",
    "accounts",
    "audit",
    "pacs",
    "viewer",
    "reporting",
    "grants",
    "patients",
    "referrals",
    "reading",
    "helpdesk",
]
INSTALLED_APPS = list(SHARED_APPS) + [
    app for app in TENANT_APPS if app not in SHARED_APPS
]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
ROOT_URLCONF = "config.urls"
SHOW_PUBLIC_IF_NO_TENANT_FOUND = False
# Set the search_path once per connection and schema switch, not before every
# statement: it halved the queries of an ingest. django-tenants forgets the
# cached path on rollback, savepoint rollback, close and every schema switch.
TENANT_LIMIT_SET_CALLS = True

MIDDLEWARE = [
    # First and last: request counts and latency by view for /metrics.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "config.middleware.HealthProbeMiddleware",
    "tenants.middleware.TenantByHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "accounts.middleware.ForeignSessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.language.UserLanguageMiddleware",
    "accounts.middleware.RequireVerifiedUserMiddleware",
    "grants.middleware.HelpdeskReadOnlyMiddleware",
    "axes.middleware.AxesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.SessionTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "audit.middleware.NoStoreMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "accounts.language.offered_languages",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "config.asgi.application"

# --- Database, cache, broker ------------------------------------------------
# The test process runs DICOM and websocket servers in threads that end
# without handing pooled connections back, and a drained pool stalls every
# later test for its 30 s timeout: there, each thread keeps a connection of
# its own. The processes that the end-to-end tests start use the pool.
_POOL_SIZE_DEFAULT = 0 if "pytest" in sys.modules else 8
DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/nimbus"),
        env_int("NIMBUS_DB_POOL_SIZE", _POOL_SIZE_DEFAULT),
    )
}
# Each test run gets its own database, so that parallel runs never collide.
DATABASES["default"]["TEST"] = {
    "NAME": env_str(
        "NIMBUS_TEST_DATABASE", f"test_{DATABASES['default']['NAME']}_{os.getpid()}"
    )
}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Every key carries the schema so that two hospitals never share an entry.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "TIMEOUT": 600,
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # channels_redis waits for messages with 5-second blocking reads; a
        # client socket timeout at or below that (redis-py's default) would
        # break every idle websocket.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
    }
}

CELERY_BROKER_URL = REDIS_URL
# redis-py reads rediss:// TLS parameters from the URL (cache, Channels);
# kombu takes them only from here.
CELERY_BROKER_USE_SSL = redis_tls_from_url(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# An unacknowledged task (its worker killed) goes back to its queue after
# this long. It must exceed the longest countdown (HL7 back-off up to
# NIMBUS_HL7_RETRY_MAX_SECONDS), or a waiting retry would be handed out
# again every time-out; lost HL7 deliveries come back sooner through beat's
# sweep (NIMBUS_HL7_REQUEUE_AFTER_SECONDS), lost ingest through the spool's.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Periodic work, sent to every tenant's schema (tenant-schemas-celery's beat
# scheduler sends an entry without "tenant_schemas" to all tenants).
CELERY_BEAT_SCHEDULE = {
    "requeue-stalled-hl7-messages": {
        "task": "reporting.requeue_stalled_messages",
        "schedule": 60.0,
    },
}
CELERY_BEAT_SCHEDULER = "tenant_schemas_celery.scheduler:TenantAwarePersistentScheduler"

# --- Authentication ---------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "accounts:login"
_VALIDATORS = "django.contrib.auth.password_validation"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"{_VALIDATORS}.UserAttributeSimilarityValidator"},
    {
        "NAME": f"{_VALIDATORS}.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": f"{_VALIDATORS}.CommonPasswordValidator"},
    {"NAME": f"{_VALIDATORS}.NumericPasswordValidator"},
]
# The lockout backend only counts and refuses; ModelBackend checks passwords.
AUTHENTICATION_BACKENDS = [
    "accounts.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
OTP_TOTP_ISSUER = "Nimbus PACS"
# Absolute lifetime: a session ends this long after sign-in, however busy
# (accounts/middleware.py); the cookie itself lasts no longer.
NIMBUS_SESSION_MAX_AGE_SECONDS = env_int("NIMBUS_SESSION_MAX_AGE_SECONDS", 12 * 3600)
SESSION_COOKIE_AGE = NIMBUS_SESSION_MAX_AGE_SECONDS
# Exports by a person need a one-time password entered this recently.
NIMBUS_REAUTH_MINUTES = env_int("NIMBUS_REAUTH_MINUTES", 5)
# Read from Redis, written through to PostgreSQL: a session lookup was a
# database round trip on every request, and the table still lists every
# session (for signing out everywhere).
SESSION_ENGINE = "accounts.session_store"  # cached_db, keys tagged by tenant
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# django-axes: failures are counted per user name and client address together,
# in the tenant's schema. By user name alone anyone could lock a radiologist
# out from anywhere; by address alone a hospital's NAT would lock everyone.
# django-otp throttles each device on top of this.
AXES_FAILURE_LIMIT = env_int("NIMBUS_LOCKOUT_FAILURES", 5)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env_int("NIMBUS_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The same address the audit trail records (REMOTE_ADDR, set by the proxy).
AXES_CLIENT_IP_CALLABLE = "audit.actions.client_ip"
# A lockout answers exactly like a wrong password (accounts/lockout.py).
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
# Sign-in successes are in the audit trail already.
AXES_DISABLE_ACCESS_LOG = True
# Never keep a one-time password or a CSRF token in the attempts table.
AXES_SENSITIVE_PARAMETERS = [
    "username",
    "ip_address",
    "otp_token",
    "csrfmiddlewaretoken",
]
AXES_VERBOSE = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "accounts.authentication.VerifiedSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Nimbus PACS API",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Two "status" choice sets (report, addendum): name both, so the schema
    # (and `check --deploy`) has no auto-generated Status60cEnum.
    "ENUM_NAME_OVERRIDES": {
        "ReportStatusEnum": "reporting.models.ReportStatus",
        "AddendumStatusEnum": "reporting.models.AddendumStatus",
    },
}

# --- HTTPS ------------------------------------------------------------------
if PRODUCTION:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    LANGUAGE_COOKIE_SECURE = True
    # __Host- cookies are refused by browsers unless Secure, for "/", and
    # without a Domain: no sibling host (another tenant) can set or shadow them.
    SESSION_COOKIE_NAME = "__Host-nimbus_session"
    CSRF_COOKIE_NAME = "__Host-nimbus_csrf"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# django-csp: no inline script or style anywhere. Frames are blob: URLs;
# config.middleware.ContentSecurityPolicyMiddleware adds this host's ws(s)://
# to connect-src for browsers that do not count websockets as 'self'.
_SELF = "'self'"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [_SELF],
        "script-src": [_SELF],
        "style-src": [_SELF],
        "img-src": [_SELF, "blob:"],
        "connect-src": [_SELF],
        "font-src": [_SELF],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": [_SELF],
        "frame-ancestors": ["'none'"],
    }
}

# --- Internationalisation ---------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", _("English")),
    ("fr", _("French")),
    ("de", _("German")),
    ("nl", _("Dutch")),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Nimbus's English is British: dates day first (config/formats/en).
FORMAT_MODULE_PATH = ["config.formats"]
LANGUAGE_COOKIE_NAME = "nimbus_language"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = env_str("NIMBUS_TIME_ZONE", "Europe/Brussels")
USE_I18N = True
USE_TZ = True

# --- Static files and DICOM storage ------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Collected into the image (deploy/Dockerfile), outside the var volume, so an
# upgraded image never serves the previous release's files.
STATIC_ROOT = Path(env_str("NIMBUS_STATIC_ROOT", str(VAR_DIR / "staticfiles")))
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# A folder, or s3://bucket[/prefix] with NIMBUS_S3_* (config/storage.py).
NIMBUS_STORAGE = env_str("NIMBUS_STORAGE", str(VAR_DIR / "storage"))
NIMBUS_STORAGE_DIR = (
    None if NIMBUS_STORAGE.startswith("s3://") else Path(NIMBUS_STORAGE)
)
NIMBUS_SPOOL_DIR = Path(env_str("NIMBUS_SPOOL", str(VAR_DIR / "spool")))
# Off only where losing the last seconds of received images on a power cut
# is acceptable (benchmarks against archives that do not fsync, test rigs).
NIMBUS_SPOOL_FSYNC = env_bool("NIMBUS_SPOOL_FSYNC", True)
# How often the listener queues again the spooled files that waited this long
# (a message lost with Redis, a worker killed mid-batch): the longest an
# instance can wait after the fault is about twice this.
NIMBUS_SPOOL_SWEEP_SECONDS = env_int("NIMBUS_SPOOL_SWEEP_SECONDS", 60)
# The Celery queue of the spooled files' ingest. The spool is a local folder:
# with listeners on several machines, each names a queue of its own (say
# ingest.<host>) that only that machine's ingest workers consume.
NIMBUS_INGEST_QUEUE = env_str("NIMBUS_INGEST_QUEUE", "ingest")
# Every ingest queue of the deployment, for /readyz and /metrics (which may
# run where no listener does). Empty: the per-host queues (ingest.<host>)
# that answering workers consume, or else NIMBUS_INGEST_QUEUE.
NIMBUS_INGEST_QUEUES = env_list("NIMBUS_INGEST_QUEUES", [])
# Where a tenant's export before deletion is written (tenants/, Django admin).
NIMBUS_TENANT_EXPORT_DIR = Path(
    env_str("NIMBUS_TENANT_EXPORT_DIR", str(VAR_DIR / "tenant-exports"))
)
STORAGES = {
    "default": storage_setting(NIMBUS_STORAGE, VAR_DIR),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- DICOM listener ---------------------------------------------------------
NIMBUS_DICOM_HOST = env_str("NIMBUS_DICOM_HOST", "0.0.0.0")  # noqa: S104 - a listener must bind
NIMBUS_DICOM_PORT = env_int("NIMBUS_DICOM_PORT", 11112)
NIMBUS_DICOM_AE_TITLE = env_str("NIMBUS_DICOM_AE_TITLE", "NIMBUS")
NIMBUS_DICOM_MAX_ASSOCIATIONS = env_int("NIMBUS_DICOM_MAX_ASSOCIATIONS", 200)
# Listener processes sharing the port (SO_REUSEPORT): one process is bound to
# one core by Python's GIL, and many modalities send at once.
NIMBUS_DICOM_PROCESSES = env_int("NIMBUS_DICOM_PROCESSES", 1)
# Hardening (pacs/dimse/limits.py): one sender cannot take every slot, a PDU
# or an instance cannot exhaust the listener's memory.
NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_PEER = env_int(
    "NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_PEER", 20
)
# Per IP address whatever the calling AE title: a new title per association
# would otherwise get a fresh per-peer allowance each time.
NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_HOST = env_int(
    "NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_HOST", 40
)
NIMBUS_DICOM_MAX_PDU_SIZE = env_int("NIMBUS_DICOM_MAX_PDU_SIZE", 1048576)
NIMBUS_DICOM_MAX_INSTANCE_MB = env_int("NIMBUS_DICOM_MAX_INSTANCE_MB", 1024)
# A deflated data set (PS3.5 A.5) may inflate to this much and no more, in the
# listener, STOW-RS, ingest and rendering (pacs/deflate.py). By default the
# instance limit: deflate must not be a way around it.
NIMBUS_MAX_INFLATED_MB = env_int("NIMBUS_MAX_INFLATED_MB", NIMBUS_DICOM_MAX_INSTANCE_MB)
if NIMBUS_MAX_INFLATED_MB < 1:
    raise ImproperlyConfigured("NIMBUS_MAX_INFLATED_MB must be at least 1.")
if NIMBUS_DICOM_MAX_PDU_SIZE < 4096 or NIMBUS_DICOM_MAX_INSTANCE_MB < 1:
    raise ImproperlyConfigured(
        "NIMBUS_DICOM_MAX_PDU_SIZE must be at least 4096 and "
        "NIMBUS_DICOM_MAX_INSTANCE_MB at least 1."
    )
if (
    NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_PEER < 1
    or NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_HOST < 1
):
    raise ImproperlyConfigured(
        "NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_PEER and "
        "NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_HOST must be at least 1."
    )
# DICOM TLS (PS3.15 B.9): a second port, on when a certificate and key are set.
NIMBUS_DICOM_TLS_PORT = env_int("NIMBUS_DICOM_TLS_PORT", 2762)
NIMBUS_DICOM_TLS_CERT = env_str("NIMBUS_DICOM_TLS_CERT", "")
NIMBUS_DICOM_TLS_KEY = env_str("NIMBUS_DICOM_TLS_KEY", "")
NIMBUS_DICOM_TLS_CA = env_str("NIMBUS_DICOM_TLS_CA", "")
NIMBUS_DICOM_TLS_REQUIRE_CLIENT_CERT = env_bool(
    "NIMBUS_DICOM_TLS_REQUIRE_CLIENT_CERT", False
)
if bool(NIMBUS_DICOM_TLS_CERT) != bool(NIMBUS_DICOM_TLS_KEY) or (
    NIMBUS_DICOM_TLS_REQUIRE_CLIENT_CERT and not NIMBUS_DICOM_TLS_CA
):
    raise ImproperlyConfigured(
        "DICOM TLS needs both NIMBUS_DICOM_TLS_CERT and NIMBUS_DICOM_TLS_KEY; "
        "client certificates need NIMBUS_DICOM_TLS_CA."
    )
# Person-name matching in C-FIND and QIDO-RS (PS3.4 C.2.2.2.1 leaves case to
# the archive): case-insensitive, except for the tenant schemas listed.
NIMBUS_PN_CASE_INSENSITIVE = env_bool("NIMBUS_PN_CASE_INSENSITIVE", True)
NIMBUS_PN_CASE_SENSITIVE_TENANTS = env_list("NIMBUS_PN_CASE_SENSITIVE_TENANTS", [])

# --- HL7 delivery -------------------------------------------------------------
NIMBUS_HL7_SENDING_APPLICATION = env_str("NIMBUS_HL7_SENDING_APPLICATION", "NIMBUS")
NIMBUS_HL7_TIMEOUT_SECONDS = env_int("NIMBUS_HL7_TIMEOUT_SECONDS", 10)
NIMBUS_HL7_RETRY_BASE_SECONDS = env_int("NIMBUS_HL7_RETRY_BASE_SECONDS", 10)
NIMBUS_HL7_RETRY_MAX_SECONDS = env_int("NIMBUS_HL7_RETRY_MAX_SECONDS", 600)
# A message whose next try is this much overdue has lost its task (a worker
# killed, Redis restarted): beat's sweep, every minute, queues it again.
NIMBUS_HL7_REQUEUE_AFTER_SECONDS = env_int("NIMBUS_HL7_REQUEUE_AFTER_SECONDS", 60)
# Files (paths) for a tenant whose RIS link is over TLS and names none of its own.
NIMBUS_HL7_TLS_CA = env_str("NIMBUS_HL7_TLS_CA", "")
NIMBUS_HL7_TLS_CERT = env_str("NIMBUS_HL7_TLS_CERT", "")
NIMBUS_HL7_TLS_KEY = env_str("NIMBUS_HL7_TLS_KEY", "")
# The order listener serves TLS instead of plain MLLP when a certificate is set.
NIMBUS_HL7_LISTENER_TLS_CERT = env_str("NIMBUS_HL7_LISTENER_TLS_CERT", "")
NIMBUS_HL7_LISTENER_TLS_KEY = env_str("NIMBUS_HL7_LISTENER_TLS_KEY", "")
NIMBUS_HL7_LISTENER_TLS_CA = env_str("NIMBUS_HL7_LISTENER_TLS_CA", "")
# Connections the HL7 order listener serves at once; one more is closed.
NIMBUS_HL7_MAX_CONNECTIONS = env_int("NIMBUS_HL7_MAX_CONNECTIONS", 32)
if NIMBUS_HL7_MAX_CONNECTIONS < 0:
    raise ImproperlyConfigured("NIMBUS_HL7_MAX_CONNECTIONS is 0 (no limit) or more.")
NIMBUS_HL7_LISTENER_TLS_REQUIRE_CLIENT_CERT = env_bool(
    "NIMBUS_HL7_LISTENER_TLS_REQUIRE_CLIENT_CERT", False
)
if (
    bool(NIMBUS_HL7_TLS_CERT) != bool(NIMBUS_HL7_TLS_KEY)
    or bool(NIMBUS_HL7_LISTENER_TLS_CERT) != bool(NIMBUS_HL7_LISTENER_TLS_KEY)
    or (NIMBUS_HL7_LISTENER_TLS_REQUIRE_CLIENT_CERT and not NIMBUS_HL7_LISTENER_TLS_CA)
):
    raise ImproperlyConfigured(
        "HL7 TLS needs a certificate and its key, both or neither "
        "(NIMBUS_HL7_TLS_CERT/KEY, NIMBUS_HL7_LISTENER_TLS_CERT/KEY); "
        "client certificates need NIMBUS_HL7_LISTENER_TLS_CA."
    )

# --- Audit trail: hash chain and export to an ATNA repository ----------------
# Seconds between two sealing runs (each tenant); records younger than this
# are not yet in the hash chain nor sent to the repository.
NIMBUS_AUDIT_SEAL_SECONDS = env_int("NIMBUS_AUDIT_SEAL_SECONDS", 5)
# Each schema's chain head is appended here after sealing (audit/heads.py),
# outside the database it protects, so that a removed tail shows.
NIMBUS_AUDIT_HEAD_DIR = Path(
    env_str("NIMBUS_AUDIT_HEAD_DIR", str(VAR_DIR / "audit-heads"))
)
# tcp://host:port or tls://host:port (RFC 5425); empty: no export.
NIMBUS_ATNA_URL = env_str("NIMBUS_ATNA_URL", "")
if NIMBUS_ATNA_URL and not NIMBUS_ATNA_URL.startswith(("tcp://", "tls://")):
    raise ImproperlyConfigured("NIMBUS_ATNA_URL must start with tcp:// or tls://.")
NIMBUS_ATNA_CA_FILE = env_str("NIMBUS_ATNA_CA_FILE", "")
NIMBUS_ATNA_CLIENT_CERT = env_str("NIMBUS_ATNA_CLIENT_CERT", "")
NIMBUS_ATNA_CLIENT_KEY = env_str("NIMBUS_ATNA_CLIENT_KEY", "")
NIMBUS_ATNA_TIMEOUT_SECONDS = env_int("NIMBUS_ATNA_TIMEOUT_SECONDS", 10)
NIMBUS_ATNA_HOSTNAME = env_str("NIMBUS_ATNA_HOSTNAME", "nimbus")
NIMBUS_ATNA_APP_NAME = env_str("NIMBUS_ATNA_APP_NAME", "nimbus")
NIMBUS_ATNA_SOURCE_ID = env_str("NIMBUS_ATNA_SOURCE_ID", "NIMBUS")
# Every tenant's schema, and public (helpdesk searches are audited there).
CELERY_BEAT_SCHEDULE["seal-and-export-audit-trail"] = {
    "task": "audit.seal_and_export",
    "schedule": float(NIMBUS_AUDIT_SEAL_SECONDS),
}
CELERY_BEAT_SCHEDULE["seal-and-export-public-audit-trail"] = {
    "task": "audit.seal_and_export",
    "schedule": float(NIMBUS_AUDIT_SEAL_SECONDS),
    "tenant_schemas": ["public"],
}
# Search results exported by the helpdesk as CSV stop at this many rows.
NIMBUS_AUDIT_CSV_MAX_ROWS = env_int("NIMBUS_AUDIT_CSV_MAX_ROWS", 100_000)

# --- Patient access links and helpdesk grants (patients/, grants/) ---------
# A new patient link lasts this many days unless the tenant's settings say
# otherwise; no link lasts longer than the maximum.
NIMBUS_PATIENT_LINK_DAYS = env_int("NIMBUS_PATIENT_LINK_DAYS", 14)
NIMBUS_PATIENT_LINK_MAX_DAYS = env_int("NIMBUS_PATIENT_LINK_MAX_DAYS", 90)
# The e-mailed code: minutes it is valid, wrong codes before the link locks.
NIMBUS_PATIENT_CODE_MINUTES = env_int("NIMBUS_PATIENT_CODE_MINUTES", 10)
NIMBUS_PATIENT_CODE_ATTEMPTS = env_int("NIMBUS_PATIENT_CODE_ATTEMPTS", 5)
# A patient's session after the code: absolute lifetime, no renewal.
NIMBUS_PATIENT_SESSION_MINUTES = env_int("NIMBUS_PATIENT_SESSION_MINUTES", 30)
NIMBUS_HELPDESK_GRANT_MAX_HOURS = env_int("NIMBUS_HELPDESK_GRANT_MAX_HOURS", 72)
if (
    min(
        NIMBUS_PATIENT_LINK_DAYS,
        NIMBUS_PATIENT_CODE_MINUTES,
        NIMBUS_PATIENT_CODE_ATTEMPTS,
        NIMBUS_PATIENT_SESSION_MINUTES,
        NIMBUS_HELPDESK_GRANT_MAX_HOURS,
    )
    < 1
    or NIMBUS_PATIENT_LINK_MAX_DAYS < NIMBUS_PATIENT_LINK_DAYS
):
    raise ImproperlyConfigured(
        "The NIMBUS_PATIENT_* and NIMBUS_HELPDESK_GRANT_MAX_HOURS settings must be "
        "at least 1, and NIMBUS_PATIENT_LINK_MAX_DAYS at least the default days."
    )
CELERY_BEAT_SCHEDULE["record-expired-helpdesk-grants"] = {
    "task": "grants.record_expired",
    "schedule": 60.0,
}
# Helpdesk console: a spooled file older than this counts as a stuck ingest;
# an MFA reset waits this long for the tenant administrator, then lapses.
NIMBUS_HELPDESK_STUCK_MINUTES = env_int("NIMBUS_HELPDESK_STUCK_MINUTES", 15)
NIMBUS_MFA_RESET_HOURS = env_int("NIMBUS_MFA_RESET_HOURS", 24)
if min(NIMBUS_HELPDESK_STUCK_MINUTES, NIMBUS_MFA_RESET_HOURS) < 1:
    raise ImproperlyConfigured(
        "NIMBUS_HELPDESK_STUCK_MINUTES and NIMBUS_MFA_RESET_HOURS must be at least 1."
    )
CELERY_BEAT_SCHEDULE["record-expired-mfa-resets"] = {
    "task": "helpdesk.record_expired_resets",
    "schedule": 60.0,
}
CELERY_BEAT_SCHEDULE["record-expired-second-opinions"] = {
    "task": "collab.record_expired",
    "schedule": 60.0,
    "tenant_schemas": ["public"],
}

# --- E-mail (patient access codes) --------------------------------------------
# Development prints mail on the web process's console; production sends
# through an SMTP relay (NIMBUS_EMAIL_HOST...).
EMAIL_BACKEND = env_str(
    "NIMBUS_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("NIMBUS_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("NIMBUS_EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("NIMBUS_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env_str("NIMBUS_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env_bool("NIMBUS_EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("NIMBUS_EMAIL_FROM", "Nimbus PACS <no-reply@localhost>")

# --- MPR and 3D: loaded volumes per web process (a 512x512x300 CT is ~170 MB) --
NIMBUS_VOLUME_CACHE_MB = env_int("NIMBUS_VOLUME_CACHE_MB", 1024)

# --- Speech dictation (reporting/speech) ---------------------------------------
NIMBUS_SPEECH_ENGINE = env_str("NIMBUS_SPEECH_ENGINE", "pocketsphinx")
if NIMBUS_SPEECH_ENGINE not in {"pocketsphinx", "vosk", "faster-whisper"}:
    raise ImproperlyConfigured(
        "NIMBUS_SPEECH_ENGINE must be pocketsphinx, vosk or faster-whisper, "
        f"not {NIMBUS_SPEECH_ENGINE!r}."
    )
NIMBUS_SPEECH_MODEL_DIR = env_str("NIMBUS_SPEECH_MODEL_DIR", "")
NIMBUS_SPEECH_LANGUAGE = env_str("NIMBUS_SPEECH_LANGUAGE", "en")
NIMBUS_SPEECH_TENANT_MODEL_DIR = Path(
    env_str("NIMBUS_SPEECH_TENANT_MODEL_DIR", str(VAR_DIR / "speech"))
)
# Audio received but not yet recognised, per connection; past it the socket
# closes rather than fall minutes behind the radiologist.
NIMBUS_SPEECH_MAX_BUFFER_SECONDS = env_int("NIMBUS_SPEECH_MAX_BUFFER_SECONDS", 30)
NIMBUS_SPEECH_THREADS = env_int("NIMBUS_SPEECH_THREADS", 4)

# --- Operations: readiness and metrics (ops/) -----------------------------------
# /metrics answers only this token as a Bearer header when set; otherwise
# only direct clients on the loopback address (docs/operations.md).
NIMBUS_METRICS_TOKEN = env_str("NIMBUS_METRICS_TOKEN", "")
# /readyz waits for a live listener of each of these kinds (ops/heartbeat.py).
NIMBUS_READY_LISTENERS = env_list("NIMBUS_READY_LISTENERS", ["dicom", "hl7"])
if set(NIMBUS_READY_LISTENERS) - {"dicom", "hl7", "none"}:
    raise ImproperlyConfigured("NIMBUS_READY_LISTENERS lists dicom, hl7, or none.")
NIMBUS_READY_LISTENERS = [k for k in NIMBUS_READY_LISTENERS if k != "none"]
PROMETHEUS_EXPORT_MIGRATIONS = False
# pg_dump / pg_restore for backup_tenant (ops/backup.py); empty: the PATH.
NIMBUS_PG_BIN_DIR = env_str("NIMBUS_PG_BIN_DIR", "")
# Signs backup_tenant's manifest (HMAC-SHA256); restore_tenant refuses a
# manifest it did not sign. Unset: derived from SECRET_KEY, so a backup
# restores only where SECRET_KEY is the same; set it on both deployments
# to move a tenant between them.
NIMBUS_BACKUP_KEY = env_str("NIMBUS_BACKUP_KEY", "")

# --- Logging: sparse, at the boundaries, never patient data ------------------
# NIMBUS_LOG_FILE adds a file with every record at NIMBUS_LOG_LEVEL; "{pid}"
# in it gives each process its own. The loggers that would write patient
# data at debug level stay above it (config/logs.py says which and why).
try:
    LOGGING = logging_config(
        env_str("NIMBUS_LOG_LEVEL", "INFO"),
        env_str("NIMBUS_LOG_FILE", ""),
        env_str("NIMBUS_LOG_FORMAT", "plain"),
    )
except ValueError as error:
    raise ImproperlyConfigured(
        f"NIMBUS_LOG_LEVEL / NIMBUS_LOG_FORMAT: {error}."
    ) from None
