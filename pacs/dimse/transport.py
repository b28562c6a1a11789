"""The listener's transport: TCP and DICOM TLS servers, PDU and instance limits.

PS3.8 9.3.1 lets an acceptor refuse any PDU longer than the maximum length it
announced (user information item, PS3.8 D.1); pynetdicom reads whatever length
a PDU header claims. :class:`PDUReader` replaces pynetdicom's reader on every
association accepted here, so that one peer can neither make the listener
buffer a multi-gigabyte PDU nor an instance larger than
``NIMBUS_DICOM_MAX_INSTANCE_MB``.

DICOM TLS follows PS3.15 B.9 (Non-Downgrading BCP 195 TLS Secure Transport
Connection Profile): TLS 1.2 or later, on a port of its own (2762 by default,
PS3.15 B.1.1 / IANA "dicom-tls"), with client certificates verified against
the tenant-independent CA bundle ``NIMBUS_DICOM_TLS_CA``.
"""

import logging
import socket
import ssl
import struct
from typing import Any

from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("nimbus.security")

PDU_TYPES = frozenset(range(0x01, 0x08))  # PS3.8 9.3.1: A-ASSOCIATE-RQ .. A-ABORT
P_DATA_TF_TYPE = 0x04
# Only P-DATA-TF is bound by the negotiated maximum length (PS3.8 D.1). An
# A-ASSOCIATE-RQ proposing every storage SOP class with 20 transfer syntaxes
# each is about 250 KB; no legitimate control PDU comes near 1 MiB.
CONTROL_PDU_LIMIT = 1 << 20
# PDV item header (length, context ID) and message control header: peers
# that read the maximum length as the data length of one PDV send this much
# more (PS3.8 E.2); read leniently.
PDV_OVERHEAD = 6
PDV_DATA_SET_LAST = 0x02
PDV_COMMAND = 0x01


class PDUReader:
    """Read the next PDU for a DUL provider, within the listener's limits.

    Installed as the DUL's ``_read_pdu_data`` (its reactor calls it when data
    waits on the socket). Behaves as pynetdicom's reader, except that:

    - a PDU longer than the negotiated maximum (P-DATA-TF) or than
      ``CONTROL_PDU_LIMIT`` (other types) is refused before it is read:
      Evt19, which makes the DUL send A-ABORT (service-provider, PS3.8 9.3.8);
      after it (or an undecodable PDU) the reader reads nothing more and
      signals the transport closed (Evt17), so the DUL closes the connection
      at once (AR-5 of the PS3.8 9.2 state machine) instead of waiting in
      Sta13;
    - once the data set of the current message passes ``max_data_set``
      bytes, its further fragments are dropped and :attr:`oversized` is set;
      the final fragment is passed on empty so the message completes and the
      C-STORE handler can answer 0xA700 (PS3.4 B.2.3) on a live association.

    Parameters
    ----------
    dul : pynetdicom.dul.DULServiceProvider
        The provider of one association.
    max_pdu_length : int
        The maximum length announced in the A-ASSOCIATE-AC.
    max_data_set : int
        The largest data set (bytes) accepted in one DIMSE message.
    """

    def __init__(
        self, dul: DULServiceProvider, max_pdu_length: int, max_data_set: int
    ) -> None:
        self.dul = dul
        self.max_pdu_length = max_pdu_length
        self.max_data_set = max_data_set
        self.data_set_bytes = 0
        self.oversized = False
        self.refused = False

    def __call__(self) -> None:
        dul = self.dul
        if self.refused:
            # Past a refused PDU the stream is out of step: every next 6 bytes
            # would read as a header, each refused, logged and answered with
            # another A-ABORT while the DUL waits in Sta13 for the peer to
            # close. Close it here instead, unread.
            dul.event_queue.put("Evt17")
            return
        try:
            header = dul.socket.recv(6)  # type: ignore[union-attr]
            pdu_type, _, length = struct.unpack(">BBL", header)
        except (OSError, struct.error):
            dul.event_queue.put("Evt17")  # transport closed
            return
        limit = (
            self.max_pdu_length + PDV_OVERHEAD
            if pdu_type == P_DATA_TF_TYPE
            else CONTROL_PDU_LIMIT
        )
        if pdu_type not in PDU_TYPES or length > limit:
            security_logger.warning(
                "PDU refused from %s: type 0x%02X, %d bytes, limit %d",
                dul.assoc.requestor.address,
                pdu_type,
                length,
                limit,
            )
            self.refused = True
            dul.event_queue.put("Evt19")  # invalid PDU: A-ABORT
            return
        try:
            body = dul.socket.recv(length)  # type: ignore[union-attr]
        except OSError:
            dul.event_queue.put("Evt17")
            return
        if len(body) != length:
            dul.event_queue.put("Evt17")
            return
        header += body
        try:
            pdu, event = dul._decode_pdu(header)
        except Exception:  # noqa: BLE001 - any undecodable PDU is invalid
            logger.debug("undecodable PDU", exc_info=True)
            self.refused = True
            dul.event_queue.put("Evt19")
            return
        if isinstance(pdu, P_DATA_TF) and not self._keep_within_limit(pdu):
            return
        dul.event_queue.put(event)
        dul._recv_pdu.put(pdu)

    def take_oversized(self) -> bool:
        """Whether the last data set was cut at the limit; resets the mark."""
        oversized, self.oversized = self.oversized, False
        return oversized

    def _keep_within_limit(self, pdu: P_DATA_TF) -> bool:
        """Drop data set fragments past the limit; False when nothing is left.

        Only one DIMSE message is in flight per association (no asynchronous
        operations are negotiated, PS3.7 D.3.3.3), so a command fragment
        starts the count of the next message.
        """
        kept = []
        for item in pdu.presentation_data_value_items:
            value = item.presentation_data_value or b"\x00"
            control = value[0]
            if control & PDV_COMMAND:
                self.data_set_bytes = 0
                kept.append(item)
                continue
            self.data_set_bytes += len(value) - 1
            last = control & PDV_DATA_SET_LAST
            if self.data_set_bytes > self.max_data_set:
                if not self.oversized:
                    security_logger.warning(
                        "data set from %s passed %d bytes: dropped",
                        self.dul.assoc.requestor.address,
                        self.max_data_set,
                    )
                self.oversized = True
                if not last:
                    continue
                item.presentation_data_value = bytes([control])
            if last:
                self.data_set_bytes = 0
            kept.append(item)
        pdu.presentation_data_value_items = kept
        return bool(kept)


def pdu_reader(assoc: Association) -> PDUReader | None:
    """The reader installed on ``assoc``, if it was accepted by this listener."""
    reader = getattr(assoc.dul, "_read_pdu_data", None)
    return reader if isinstance(reader, PDUReader) else None


class LimitedRequestHandler(RequestHandler):
    """Creates each acceptor association with a :class:`PDUReader`.

    Installed before the association starts, so the A-ASSOCIATE-RQ itself is
    read within the limits. The TLS peer certificate, when there is one, is
    kept on the association for the EVT_REQUESTED checks.
    """

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        server: Any = self.server
        assoc.dul._read_pdu_data = PDUReader(  # type: ignore[method-assign]
            assoc.dul, server.max_pdu_length, server.max_instance_bytes
        )
        if isinstance(self.request, ssl.SSLSocket):
            assoc.nimbus_tls = True  # type: ignore[attr-defined]
            assoc.nimbus_peer_certificate = self.request.getpeercert()  # type: ignore[attr-defined]
        return assoc


class NoDelayAssociationServer(ThreadedAssociationServer):
    """Associations with Nagle's algorithm off, read within the limits.

    DIMSE sends many small PDUs and waits for each response: with Nagle on,
    every C-STORE waits for the peer's delayed ACK (about 40 ms).
    """

    max_pdu_length = 16382
    max_instance_bytes = 1 << 30

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("request_handler", LimitedRequestHandler)
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        client_socket, address = super().get_request()
        client_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client_socket, address


class SharedPortAssociationServer(NoDelayAssociationServer):
    """One of several listener processes bound to one port (SO_REUSEPORT).

    The kernel spreads new associations over the processes; each has its
    own interpreter, so the listeners are not held to one core by the GIL.
    """

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class TLSAssociationServer(NoDelayAssociationServer):
    """The DICOM TLS port: the handshake runs in the association's own thread.

    pynetdicom wraps the socket in the accepting thread, where a peer that
    connects and never says hello would stop every other connection.
    """

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        client_socket, address = self.socket.accept()  # type: ignore[union-attr]
        client_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wrapped = self.ssl_context.wrap_socket(  # type: ignore[union-attr]
            client_socket, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(self.ae.acse_timeout)
            request.do_handshake()
            request.settimeout(None)
        except (OSError, ValueError) as error:
            security_logger.warning(
                "DICOM TLS handshake failed from %s: %s", client_address[0], error
            )
            self.shutdown_request(request)
            return
        super().process_request_thread(request, client_address)


def tls_context(
    certificate: str, key: str, ca_file: str = "", *, require_client: bool = False
) -> ssl.SSLContext:
    """The server context of the DICOM TLS port (PS3.15 B.9).

    TLS 1.2 and later only, Python's default (BCP 195) cipher suites. With a
    CA bundle, client certificates are asked for and verified; a peer flagged
    as coming over the internet must present one (checked at EVT_REQUESTED),
    every peer must when ``require_client`` is set.

    Raises
    ------
    OSError, ssl.SSLError
        When a file cannot be read or does not hold what it should.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, key)
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_OPTIONAL
    return context


class SharedPortTLSAssociationServer(TLSAssociationServer, SharedPortAssociationServer):
    """The DICOM TLS port shared by several listener processes."""
