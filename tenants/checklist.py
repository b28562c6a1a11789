"""The onboarding checklist: what a new tenant needs before its first study.

Connection tests run in parallel threads so that several silent peers cost
one time-out, not one each; the results keep the checklist's order.
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from django.conf import settings
from django.http.request import validate_host
from django.utils import translation
from django.utils.translation import gettext as _

from reporting import hl7
from reporting.actions import _ris_tls
from tenants import connection_checks, selectors
from tenants.connection_checks import CheckResult
from tenants.models import Tenant

MAX_PARALLEL_CHECKS = 8


def run(tenant: Tenant, our_host: str) -> list[CheckResult]:
    """Every checklist item of ``tenant``; ``our_host`` is this page's host."""
    results = [_ae_title(tenant), *_first_admin(tenant)]
    domains = _domains(tenant)
    results += [_domain(domain, our_host) for domain in domains] or [_no_domain()]
    # The active language belongs to this thread: each check takes it along.
    language = translation.get_language()
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL_CHECKS) as pool:
        echoes = [
            pool.submit(
                _in_language,
                language,
                partial(
                    _echo, tenant.ae_title, remote.ae_title, remote.host, remote.port
                ),
            )
            for remote in selectors.remote_aes(tenant)
        ]
        ris = (
            pool.submit(_in_language, language, partial(_ris, tenant))
            if tenant.has_ris
            else None
        )
        results += [future.result() for future in echoes]
    results.append(ris.result() if ris else _no_ris())
    return results


def _in_language(language: str | None, check: Callable[[], CheckResult]) -> CheckResult:
    with translation.override(language):
        return check()


def _ae_title(tenant: Tenant) -> CheckResult:
    return CheckResult(
        kind="ae_title",
        label=_("AE title set"),
        target=tenant.ae_title,
        ok=bool(tenant.ae_title.strip()),
        detail=_("Modalities send to %(title)s.") % {"title": tenant.ae_title},
    )


def _first_admin(tenant: Tenant) -> list[CheckResult]:
    admins = selectors.tenant_admins(tenant)
    if not admins:
        return [
            CheckResult(
                kind="first_admin",
                label=_("First administrator created and enrolled"),
                target="",
                ok=False,
                detail=_("The tenant has no administrator."),
            )
        ]
    return [
        CheckResult(
            kind="first_admin",
            label=_("First administrator created and enrolled"),
            target=user.username,
            ok=enrolled,
            detail=(
                _("Signed in and enrolled an authenticator app.")
                if enrolled
                else _(
                    "Not enrolled yet: the first sign-in asks for an authenticator app."
                )
            ),
        )
        for user, enrolled in admins
    ]


def _domains(tenant: Tenant) -> list[str]:
    return list(
        tenant.domains.order_by("-is_primary", "domain").values_list(
            "domain", flat=True
        )
    )


def _domain(domain: str, our_host: str) -> CheckResult:
    ok, detail = connection_checks.domain_reaches_us(domain, our_host)
    if ok and not validate_host(domain, settings.ALLOWED_HOSTS):
        ok = False
        detail = _(
            "%(domain)s is not in DJANGO_ALLOWED_HOSTS: requests for it are refused."
        ) % {"domain": domain}
    return CheckResult(
        kind="domain",
        label=_("Domain resolves to this deployment"),
        target=domain,
        ok=ok,
        detail=detail,
    )


def _no_domain() -> CheckResult:
    return CheckResult(
        kind="domain",
        label=_("Domain resolves to this deployment"),
        target="",
        ok=False,
        detail=_("The tenant has no domain: its users cannot reach it."),
    )


def _echo(calling: str, called: str, host: str, port: int) -> CheckResult:
    ok, detail = connection_checks.echo(calling, called, host, port)
    return CheckResult(
        kind="c_echo",
        label=_("C-ECHO to a remote AE"),
        target=f"{called}@{host}:{port}",
        ok=ok,
        detail=detail,
    )


def _ris(tenant: Tenant) -> CheckResult:
    endpoints = hl7.Endpoints(
        sending_application=settings.NIMBUS_HL7_SENDING_APPLICATION,
        sending_facility=tenant.schema_name,
        receiving_application=tenant.ris_receiving_application,
        receiving_facility=tenant.ris_receiving_facility,
    )
    ok, detail = connection_checks.send_test_message(
        tenant.ris_host, int(tenant.ris_port or 0), endpoints, _ris_tls(tenant)
    )
    return CheckResult(
        kind="hl7",
        label=_("HL7 test message to the RIS"),
        target=f"{tenant.ris_host}:{tenant.ris_port}"
        + (" TLS" if tenant.ris_tls else ""),
        ok=ok,
        detail=detail,
    )


def _no_ris() -> CheckResult:
    return CheckResult(
        kind="hl7",
        label=_("HL7 test message to the RIS"),
        target="",
        ok=False,
        detail=_("No RIS endpoint set: signed reports wait until one is."),
    )
