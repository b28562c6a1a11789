"""C-ECHO as a service user: is a DICOM peer there and willing to talk?

The helpdesk console tests a tenant's remote AEs and the Nimbus listener
itself with the Verification service (PS3.4 Annex A). Each test is one short
association with tight time-outs, so a dead peer costs seconds, not minutes.
"""

import logging
from dataclasses import dataclass

from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

logger = logging.getLogger(__name__)

CALLING_AE_TITLE = "NIMBUS_HELPDESK"
TIMEOUT_SECONDS = 3


@dataclass(frozen=True)
class EchoResult:
    ok: bool
    # "0x0000" and other DICOM statuses, or "rejected", "no answer".
    result: str


def echo(host: str, port: int, called_ae_title: str) -> EchoResult:
    """Send one C-ECHO request to ``called_ae_title`` at ``host:port``.

    Parameters
    ----------
    host, port : str, int
        Where the peer listens.
    called_ae_title : str
        The peer's AE title; a listener that checks it rejects any other.

    Returns
    -------
    EchoResult
        ``ok`` only for status 0x0000 Success (PS3.7 9.1.5.1.4). ``result``
        is the status in hex, "rejected" when the association was rejected,
        "no answer" when the connection was refused, aborted or not answered
        in time.
    """
    ae = AE(ae_title=CALLING_AE_TITLE)
    ae.add_requested_context(Verification)
    ae.acse_timeout = TIMEOUT_SECONDS
    ae.dimse_timeout = TIMEOUT_SECONDS
    ae.network_timeout = TIMEOUT_SECONDS
    ae.connection_timeout = TIMEOUT_SECONDS
    assoc = ae.associate(host, port, ae_title=called_ae_title)
    if not assoc.is_established:
        # pynetdicom reports a refused or timed-out connection as aborted.
        outcome = "rejected" if assoc.is_rejected else "no answer"
        logger.info("C-ECHO to %s: %s", called_ae_title, outcome)
        return EchoResult(False, outcome)
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if "Status" not in status:
        return EchoResult(False, "no answer")
    code = int(status.Status)
    logger.info("C-ECHO to %s: status 0x%04X", called_ae_title, code)
    return EchoResult(code == 0, f"0x{code:04X}")
