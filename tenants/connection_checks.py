"""Connection tests of a tenant's onboarding checklist.

Each test talks to one peer that hospital IT configured and answers a
:class:`CheckResult` with the peer's own words on failure. Timeouts are
short: the checklist is a page hospital IT waits for.
"""

import ipaddress
import logging
import socket
from dataclasses import dataclass

from django.utils import timezone
from django.utils.translation import gettext as _
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from reporting import hl7, mllp

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class CheckResult:
    """One checklist line: what was checked, against what, and how it went."""

    kind: str
    label: str
    target: str
    ok: bool
    detail: str


def echo(
    calling_ae_title: str, called_ae_title: str, host: str, port: int
) -> tuple[bool, str]:
    """Send one C-ECHO (Verification SOP Class, PS3.4 annex A.4) to a peer.

    Parameters
    ----------
    calling_ae_title : str
        The tenant's own AE title, as the peer knows it.
    called_ae_title, host, port : str, str, int
        The remote AE.

    Returns
    -------
    tuple of (bool, str)
        Whether the peer answered status 0x0000 (success, PS3.7 C.1.1), and
        the reason otherwise: association rejected or aborted, no answer
        within :data:`CHECK_TIMEOUT_SECONDS`, or the status it answered.
    """
    ae = AE(ae_title=calling_ae_title)
    ae.add_requested_context(Verification)
    for name in ("acse_timeout", "dimse_timeout", "network_timeout"):
        setattr(ae, name, CHECK_TIMEOUT_SECONDS)
    ae.connection_timeout = CHECK_TIMEOUT_SECONDS
    assoc = ae.associate(host, port, ae_title=called_ae_title)
    if assoc.is_rejected:
        return False, _("The peer rejected the association (is %(title)s right?).") % {
            "title": called_ae_title
        }
    if not assoc.is_established:
        text = _(
            "No DICOM association with %(peer)s: the connection was refused or "
            "nothing answered within %(seconds)s s."
        )
        return False, text % {
            "peer": f"{host}:{port}",
            "seconds": f"{CHECK_TIMEOUT_SECONDS:g}",
        }
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if not status:
        return False, _("The peer did not answer the C-ECHO.")
    if status.Status != 0x0000:
        return False, _("The peer answered C-ECHO with status 0x%(status)04X.") % {
            "status": status.Status
        }
    return True, _("C-ECHO answered: success.")


def network_check_message(endpoints: hl7.Endpoints) -> str:
    """An NMD^N02 message (HL7 v2.5.1 section 14.3.1) that asks for nothing.

    Network management messages exist to test a link; MSH-11 ``T`` marks it
    as a test, so no RIS should file it anywhere.
    """
    now = timezone.now()
    msh = "|".join(
        [
            "MSH",
            hl7.ENCODING_CHARACTERS,
            hl7.escape(endpoints.sending_application),
            hl7.escape(endpoints.sending_facility),
            hl7.escape(endpoints.receiving_application),
            hl7.escape(endpoints.receiving_facility),
            hl7.format_ts(now),
            "",
            "NMD^N02^NMD_N02",
            hl7.new_message_control_id(),
            "T",
            hl7.VERSION,
            "",
            "",
            "",
            "",
            "",
            hl7.CHARACTER_SET,
        ]
    )
    # NCK-1, the system date/time: the one field a network check carries.
    return f"{msh}\rNCK|{hl7.format_ts(now)}\r"


def send_test_message(
    host: str, port: int, endpoints: hl7.Endpoints, tls: mllp.ClientTls | None
) -> tuple[bool, str]:
    """Send :func:`network_check_message` over MLLP and read the RIS's ACK.

    Returns
    -------
    tuple of (bool, str)
        Whether MSA-1 was AA or CA, and the RIS's text or the failure.
    """
    try:
        ack = mllp.send_message(
            host, port, network_check_message(endpoints), CHECK_TIMEOUT_SECONDS, tls=tls
        )
    except mllp.MllpError as error:
        return False, str(error)
    if not ack.accepted:
        return False, _("The RIS refused the test message (%(code)s): %(text)s") % {
            "code": ack.code,
            "text": ack.text or "-",
        }
    return True, _("The RIS acknowledged the test message (%(code)s).") % {
        "code": ack.code
    }


def addresses_of(host: str) -> frozenset[str]:
    """The IP addresses ``host`` stands for; empty when it does not resolve.

    ``localhost`` and its subdomains are loopback without a lookup, as
    browsers treat them (RFC 6761 section 6.3).
    """
    name = host.lower().rstrip(".").split(":")[0]
    if name == "localhost" or name.endswith(".localhost"):
        return frozenset({"127.0.0.1", "::1"})
    try:
        return frozenset({str(ipaddress.ip_address(name))})
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return frozenset()
    return frozenset(str(info[4][0]) for info in found)


def domain_reaches_us(domain: str, our_host: str) -> tuple[bool, str]:
    """Whether ``domain`` resolves to an address of the host serving this page."""
    theirs = addresses_of(domain)
    if not theirs:
        return False, _("%(domain)s does not resolve.") % {"domain": domain}
    ours = addresses_of(our_host)
    if theirs.isdisjoint(ours):
        return False, _(
            "%(domain)s resolves to %(theirs)s, not to this deployment (%(ours)s)."
        ) % {
            "domain": domain,
            "theirs": ", ".join(sorted(theirs)),
            "ours": ", ".join(sorted(ours)) or "-",
        }
    return True, _("%(domain)s resolves to %(addresses)s.") % {
        "domain": domain,
        "addresses": ", ".join(sorted(theirs)),
    }
