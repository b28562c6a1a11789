"""What the helpdesk console reads, per tenant, without patient data.

Policy (docs/helpdesk.md): no patient name, patient ID, accession number,
report text, RIS free text or DICOM header text reaches the console. Study
and instance UIDs appear only as keyed hashes that cannot be turned back
into the UID, enough to tell two failures apart and nothing more. Images
and report text stay behind a tenant's time-limited grant (grants/).

Functions taking a tenant switch to its schema themselves; the rest read
the schema that is current.
"""

import datetime
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from axes.models import AccessAttempt
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import Role, User
from audit.models import AuditEvent, EventType, Outcome
from audit.selectors import safe_detail
from config.celery import app as celery_app
from helpdesk.echo import EchoResult, echo
from helpdesk.models import ConnectionCheck, MfaResetRequest, ResetState
from pacs import spool
from pacs.models import IngestFailure, Instance, RemoteApplicationEntity
from reporting.models import DeliveryState, OutboundMessage
from tenants.models import Tenant

SEARCH_LIMIT = 50
ROWS = 20
# A DICOM UID: digits in four or more dot-separated parts (PS3.5 9.1).
UID_PATTERN = re.compile(r"\d+(?:\.\d+){3,}")
UID_MIN_LENGTH = 12
SIGN_IN_EVENTS = (EventType.LOGIN_SUCCEEDED, EventType.LOGOUT)
FAILED_SIGN_IN_EVENTS = (EventType.LOGIN_FAILED, EventType.ACCOUNT_LOCKED_OUT)
UNDELIVERED = (
    DeliveryState.PENDING,
    DeliveryState.RETRYING,
    DeliveryState.REJECTED,
    DeliveryState.NO_RIS,
)
# How far back (in instances) "last seen" looks for a remote AE: a bounded
# range of the primary key, since calling_ae_title has no index of its own.
LAST_SEEN_WINDOW = 100_000
PROBE_CACHE_SECONDS = 30
# In detail["via"] of the records that platform helpdesk staff leave in a
# tenant's trail: named like a tenant user, but not one.
VIA_PLATFORM = "platform helpdesk"


def uid_ref(schema: str, uid: str) -> str:
    """A short keyed hash standing in for a UID: stable, not reversible."""
    if not uid:
        return ""
    digest = salted_hmac("nimbus.helpdesk.uid", f"{schema}:{uid}", algorithm="sha256")
    return "uid#" + digest.hexdigest()[:12]


def redact_uids(schema: str, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        value = match.group(0)
        return uid_ref(schema, value) if len(value) >= UID_MIN_LENGTH else value

    return UID_PATTERN.sub(replace, text)


# --- Tenants and users ---------------------------------------------------------


def tenants() -> list[Tenant]:
    """Every hospital's tenant; the public schema holds platform staff only."""
    return list(Tenant.objects.exclude(schema_name="public").order_by("schema_name"))


def tenant_or_404(schema: str) -> Tenant:
    tenant = Tenant.objects.exclude(schema_name="public").filter(schema_name=schema)
    found = tenant.first()
    if found is None:
        raise Http404
    return found


def console_users() -> QuerySet[User]:
    # A patient's account would carry a patient's name: never in the console.
    return User.objects.exclude(role=Role.PATIENT)


@dataclass(frozen=True)
class UserHit:
    schema: str
    tenant_name: str
    id: int
    username: str
    full_name: str
    email: str
    role_label: str
    is_active: bool
    last_login: datetime.datetime | None


def _matches(term: str) -> Q:
    """Every word of ``term`` in the user name, a name or the e-mail address."""
    query = Q()
    for word in term.split():
        query &= (
            Q(username__icontains=word)
            | Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
            | Q(email__icontains=word)
        )
    return query


def find_users(term: str) -> list[UserHit]:
    """Users of every tenant matching ``term`` (case-insensitive, partial)."""
    hits: list[UserHit] = []
    for tenant in tenants():
        with schema_context(tenant.schema_name):
            users = console_users().filter(_matches(term)).order_by("username")
            hits += [
                UserHit(
                    schema=tenant.schema_name,
                    tenant_name=tenant.name,
                    id=user.pk,
                    username=user.username,
                    full_name=user.get_full_name(),
                    email=user.email,
                    role_label=str(user.get_role_display()),
                    is_active=user.is_active,
                    last_login=user.last_login,
                )
                for user in users[: SEARCH_LIMIT - len(hits)]
            ]
        if len(hits) >= SEARCH_LIMIT:
            break
    return hits


def user_or_404(user_id: int) -> User:
    user = console_users().filter(pk=user_id).first()
    if user is None:
        raise Http404
    return user


@dataclass(frozen=True)
class EventRow:
    occurred_at: datetime.datetime
    event_label: str
    outcome: str
    source_ip: str
    object_type: str
    object_ref: str
    detail: list[tuple[str, str]] = field(default_factory=list)


def _event_rows(schema: str, events: QuerySet[AuditEvent]) -> list[EventRow]:
    return [
        EventRow(
            occurred_at=event.occurred_at,
            event_label=str(event.get_event_type_display()),
            outcome=event.outcome,
            source_ip=event.source_ip or "",
            object_type=event.object_type,
            object_ref=redact_uids(schema, event.object_id),
            detail=safe_detail(event.detail or {}),
        )
        for event in events[:ROWS]
    ]


@dataclass(frozen=True)
class Lockout:
    source_ip: str
    failures: int
    last_attempt: datetime.datetime
    locked: bool


@dataclass
class UserView:
    user: User
    has_authenticator: bool
    backup_codes_left: int
    lockouts: list[Lockout]
    sign_ins: list[EventRow]
    failed_sign_ins: list[EventRow]
    failed_actions: list[EventRow]
    resets: list[MfaResetRequest]
    open_reset: MfaResetRequest | None


def _lockouts(user: User) -> list[Lockout]:
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    return [
        Lockout(
            source_ip=attempt.ip_address or "",
            failures=attempt.failures_since_start,
            last_attempt=attempt.attempt_time,
            locked=attempt.failures_since_start >= settings.AXES_FAILURE_LIMIT
            and attempt.attempt_time > since,
        )
        for attempt in AccessAttempt.objects.filter(
            username__iexact=user.username
        ).order_by("-attempt_time")[:ROWS]
    ]


def user_view(schema: str, user: User) -> UserView:
    """Sign-ins, failures, lockouts and second factors of a user of this schema."""
    # Records without an actor id are the user's by name, unless platform
    # helpdesk staff of the same name left them (they carry "via").
    by_name = Q(actor_id=None, actor_username__iexact=user.username) & ~Q(
        detail__has_key="via"
    )
    mine = AuditEvent.objects.filter(Q(actor_id=user.pk) | by_name)
    now = timezone.now()
    resets = list(MfaResetRequest.objects.filter(user=user)[:10])
    return UserView(
        user=user,
        has_authenticator=TOTPDevice.objects.filter(user=user, confirmed=True).exists(),
        backup_codes_left=StaticToken.objects.filter(device__user=user).count(),
        lockouts=_lockouts(user),
        sign_ins=_event_rows(schema, mine.filter(event_type__in=SIGN_IN_EVENTS)),
        failed_sign_ins=_event_rows(
            schema,
            AuditEvent.objects.filter(
                event_type__in=FAILED_SIGN_IN_EVENTS,
                actor_username__iexact=user.username,
            ),
        ),
        failed_actions=_event_rows(
            schema,
            mine.filter(outcome=Outcome.FAILURE).exclude(
                event_type__in=FAILED_SIGN_IN_EVENTS
            ),
        ),
        resets=resets,
        open_reset=next((reset for reset in resets if reset.is_open(now)), None),
    )


# --- Service state of a tenant -------------------------------------------------


@dataclass(frozen=True)
class FailureRow:
    failed_at: datetime.datetime
    calling_ae_title: str
    instance_ref: str


@dataclass
class IngestState:
    stuck_files: int
    oldest_stuck_minutes: int | None
    quarantined_files: int
    failures: list[FailureRow]


def _dicom_files(directory: Path) -> list[float]:
    if not directory.is_dir():
        return []
    times = []
    for path in directory.glob("*" + spool.SUFFIX):
        try:
            times.append(path.stat().st_mtime)
        except FileNotFoundError:
            continue  # consumed while we looked
    return times


def _spool_counts(schema: str) -> tuple[int, int | None, int]:
    """Stuck files, the oldest one's age in minutes, and quarantined files."""
    now = time.time()
    cutoff = now - settings.NIMBUS_HELPDESK_STUCK_MINUTES * 60
    stuck = [mtime for mtime in _dicom_files(spool.spool_dir(schema)) if mtime < cutoff]
    oldest = int((now - min(stuck)) // 60) if stuck else None
    return len(stuck), oldest, len(_dicom_files(spool.quarantine_dir(schema)))


def ingest_state(schema: str) -> IngestState:
    """Spooled files no worker indexed in time, and what went to quarantine."""
    stuck, oldest, quarantined = _spool_counts(schema)
    failures = [
        FailureRow(
            failed_at=failure.failed_at,
            calling_ae_title=failure.calling_ae_title,
            instance_ref=uid_ref(schema, failure.sop_instance_uid),
        )
        for failure in IngestFailure.objects.order_by("-failed_at", "-id")[:ROWS]
    ]
    return IngestState(stuck, oldest, quarantined, failures)


@dataclass(frozen=True)
class MessageRow:
    message_control_id: str
    message_type: str
    state: str
    state_label: str
    attempts: int
    created_at: datetime.datetime
    last_attempt_at: datetime.datetime | None
    ack_code: str
    # Nimbus's own words about the connection (refused, timed out); a RIS's
    # refusal text is free text that may quote the patient, so never shown.
    transport_error: str
    study_ref: str


@dataclass
class DeliveryView:
    counts: dict[str, int]
    messages: list[MessageRow]
    last_success: datetime.datetime | None
    last_failure: MessageRow | None


def _message_row(schema: str, message: OutboundMessage) -> MessageRow:
    return MessageRow(
        message_control_id=message.message_control_id,
        message_type=message.message_type,
        state=message.state,
        state_label=str(message.get_state_display()),
        attempts=message.attempts,
        created_at=message.created_at,
        last_attempt_at=message.last_attempt_at,
        ack_code=message.ack_code,
        transport_error=(
            message.last_error if message.state == DeliveryState.RETRYING else ""
        ),
        study_ref=uid_ref(schema, message.report.study.study_instance_uid),
    )


def delivery_view(schema: str) -> DeliveryView:
    """Report messages the RIS has not acknowledged, and the last of each outcome."""
    messages = OutboundMessage.objects.select_related("report__study").only(
        "message_control_id",
        "message_type",
        "state",
        "attempts",
        "created_at",
        "last_attempt_at",
        "ack_code",
        "last_error",
        "report__study__study_instance_uid",
    )
    undelivered = messages.filter(state__in=UNDELIVERED)
    counts = dict(
        undelivered.order_by()
        .values_list("state")
        .annotate(count=Count("id"))
        .values_list("state", "count")
    )
    last_failure = (
        messages.filter(
            state__in=(DeliveryState.RETRYING, DeliveryState.REJECTED),
            last_attempt_at__isnull=False,
        )
        .order_by("-last_attempt_at")
        .first()
    )
    return DeliveryView(
        counts={str(DeliveryState(state).label): n for state, n in counts.items()},
        messages=[
            _message_row(schema, m) for m in undelivered.order_by("-created_at")[:ROWS]
        ],
        last_success=OutboundMessage.objects.aggregate(last=Max("delivered_at"))[
            "last"
        ],
        last_failure=_message_row(schema, last_failure) if last_failure else None,
    )


@dataclass(frozen=True)
class RemoteAERow:
    id: int
    ae_title: str
    host: str
    port: int
    may_store: bool
    may_retrieve: bool
    last_stored: datetime.datetime | None
    last_check: ConnectionCheck | None


def remote_ae_rows() -> list[RemoteAERow]:
    """The tenant's known peers, when each last sent an instance, its last C-ECHO."""
    newest = Instance.objects.aggregate(newest=Max("id"))["newest"] or 0
    last_stored = dict(
        Instance.objects.filter(id__gt=newest - LAST_SEEN_WINDOW)
        .order_by()
        .values_list("calling_ae_title")
        .annotate(last=Max("received_at"))
        .values_list("calling_ae_title", "last")
    )
    rows = []
    for peer in RemoteApplicationEntity.objects.all():
        rows.append(
            RemoteAERow(
                id=peer.pk,
                ae_title=peer.ae_title,
                host=peer.host,
                port=peer.port,
                may_store=peer.may_store,
                may_retrieve=peer.may_retrieve,
                last_stored=last_stored.get(peer.ae_title),
                last_check=ConnectionCheck.objects.filter(
                    ae_title=peer.ae_title
                ).first(),
            )
        )
    return rows


def remote_ae_or_404(ae_id: int) -> RemoteApplicationEntity:
    peer = RemoteApplicationEntity.objects.filter(pk=ae_id).first()
    if peer is None:
        raise Http404
    return peer


def listener_host() -> str:
    host = settings.NIMBUS_DICOM_HOST
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104


def listener_state(tenant: Tenant) -> EchoResult:
    """Does the DICOM listener answer a C-ECHO to this tenant's AE title? (cached)"""
    key = f"helpdesk:listener:{tenant.ae_title}"
    cached = cache.get(key)
    if cached is not None:
        return EchoResult(*cached)
    result = echo(listener_host(), settings.NIMBUS_DICOM_PORT, tenant.ae_title)
    cache.set(key, (result.ok, result.result), PROBE_CACHE_SECONDS)
    return result


def workers_answering() -> int:
    """How many Celery workers answer a ping now (cached briefly)."""
    cached = cache.get("helpdesk:workers")
    if cached is not None:
        return int(cached)
    try:
        count = len(celery_app.control.ping(timeout=1.0) or [])
    except Exception:  # noqa: BLE001 - broker down: no worker reachable
        count = 0
    cache.set("helpdesk:workers", count, PROBE_CACHE_SECONDS)
    return count


@dataclass
class TenantState:
    tenant: Tenant
    ingest: IngestState
    delivery: DeliveryView
    remote_aes: list[RemoteAERow]
    listener: EchoResult
    workers: int
    pending_resets: int


def tenant_state(tenant: Tenant) -> TenantState:
    with schema_context(tenant.schema_name):
        return TenantState(
            tenant=tenant,
            ingest=ingest_state(tenant.schema_name),
            delivery=delivery_view(tenant.schema_name),
            remote_aes=remote_ae_rows(),
            listener=listener_state(tenant),
            workers=workers_answering(),
            pending_resets=open_resets().count(),
        )


@dataclass(frozen=True)
class TenantSummary:
    tenant: Tenant
    stuck_files: int
    quarantined_files: int
    undelivered: int
    pending_resets: int


def tenant_summaries() -> list[TenantSummary]:
    """One line per tenant for the console's first page (no network probes)."""
    summaries = []
    for tenant in tenants():
        with schema_context(tenant.schema_name):
            stuck, _oldest, quarantined = _spool_counts(tenant.schema_name)
            summaries.append(
                TenantSummary(
                    tenant=tenant,
                    stuck_files=stuck,
                    quarantined_files=quarantined,
                    undelivered=OutboundMessage.objects.filter(
                        state__in=UNDELIVERED
                    ).count(),
                    pending_resets=open_resets().count(),
                )
            )
    return summaries


# --- MFA resets (tenant schema) -------------------------------------------------


def open_resets() -> QuerySet[MfaResetRequest]:
    return MfaResetRequest.objects.filter(
        state=ResetState.PENDING, expires_at__gt=timezone.now()
    ).select_related("user")


def recent_decided_resets() -> QuerySet[MfaResetRequest]:
    return (
        MfaResetRequest.objects.exclude(
            state=ResetState.PENDING, expires_at__gt=timezone.now()
        )
        .select_related("user", "decided_by")
        .order_by("-requested_at")
    )
