"""The DICOM listener: Verification and Storage SCP for every tenant (PS3.4 A, B).

One pynetdicom application entity serves all tenants; the called AE title of
each association selects the tenant. Received instances go to the durable
spool, and only then is success returned; indexing happens in a Celery task.
"""

import contextlib
import errno
import io
import logging
import os
import socket
import threading
import warnings
from typing import Any

import pydicom
from django.conf import settings
from django.db import close_old_connections, connection
from django_tenants.utils import get_public_schema_name, schema_context
from pynetdicom import AE, _config, evt
from pynetdicom.events import Event
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from pacs import dicom, spool
from pacs.dimse import peers, retrieve
from pacs.dimse.batching import IngestBatcher
from pacs.dimse.find import FIND_SOP_CLASSES, handle_find
from tenants.models import Tenant

logger = logging.getLogger(__name__)

# PS3.4 Table B.2-1 status codes.
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_PROCESSING_FAILURE = 0x0110

# PS3.8 9.3.4 A-ASSOCIATE-RJ: rejected-permanent, service-user,
# called AE title not recognised.
REJECT_CALLED_AE = (0x01, 0x01, 0x07)

# Offered in this order; the requestor's first acceptable one wins for each context.
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent)
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203",  # HTJ2K
    "1.2.840.10008.1.2.4.100",  # MPEG2 MP@ML
    "1.2.840.10008.1.2.4.102",  # MPEG-4 AVC/H.264
]


def tenant_schema_for_ae_title(ae_title: str) -> str | None:
    with schema_context(get_public_schema_name()):
        return (
            Tenant.objects.filter(ae_title=ae_title.strip(), is_active=True)
            .exclude(schema_name=get_public_schema_name())
            .values_list("schema_name", flat=True)
            .first()
        )


def handle_requested(event: Event) -> None:
    """Accept an association only for a known tenant's called AE title."""
    assoc = event.assoc
    called = assoc.requestor.primitive.called_ae_title.strip()
    try:
        schema = tenant_schema_for_ae_title(called)
    finally:
        connection.close()
    if schema is None:
        logger.warning(
            "association rejected: unknown called AE %r from %s (%s)",
            called,
            assoc.requestor.address,
            assoc.requestor.primitive.calling_ae_title.strip(),
        )
        assoc.acse.send_reject(*REJECT_CALLED_AE)
        assoc.is_rejected = True
        assoc.kill()
        return
    # Answer with the title the peer called, and remember whose data this is.
    assoc.acceptor.ae_title = called
    assoc.nimbus_schema = schema  # type: ignore[attr-defined]


def handle_established(event: Event) -> None:
    assoc = event.assoc
    logger.info(
        "association accepted calling=%s called=%s peer=%s",
        assoc.requestor.ae_title.strip(),
        assoc.acceptor.ae_title.strip(),
        assoc.requestor.address,
    )


def handle_echo(event: Event) -> int:
    return STATUS_SUCCESS


def handle_store(event: Event) -> int:
    """Spool the dataset exactly as received, then queue it for indexing.

    Returns the C-STORE status: success only once the bytes are on disk.
    """
    schema: str = event.assoc.nimbus_schema  # type: ignore[attr-defined]
    sop_uid = str(event.request.AffectedSOPInstanceUID or "")
    if not dicom.is_valid_uid(sop_uid):
        logger.warning("C-STORE refused: invalid SOP Instance UID")
        return STATUS_CANNOT_UNDERSTAND
    try:
        data = event.encoded_dataset(include_meta=True)
        readable = header_is_readable(data, sop_uid)
        path = spool.write_durably(schema, data, quarantine=not readable)
    except OSError as error:
        logger.error("C-STORE spool write failed: %s", error)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return STATUS_OUT_OF_RESOURCES
        return STATUS_PROCESSING_FAILURE
    except Exception:
        logger.exception("C-STORE could not encode the received dataset")
        return STATUS_CANNOT_UNDERSTAND

    if not readable:
        # Kept, so nothing is lost, but the sender must know it failed.
        logger.warning("C-STORE refused: unreadable dataset kept as %s", path.name)
        return STATUS_CANNOT_UNDERSTAND
    calling_ae_title = event.assoc.requestor.ae_title.strip()
    batcher: IngestBatcher | None = getattr(event.assoc.ae, "nimbus_batcher", None)
    if batcher is not None:
        batcher.add(schema, path.name, calling_ae_title)
    else:
        queue_ingest(schema, [path.name], calling_ae_title)
    return STATUS_SUCCESS


def header_is_readable(data: bytes, sop_instance_uid: str) -> bool:
    """Whether the dataset reads up to its pixel data and is the instance announced.

    pydicom reads almost any bytes leniently, so the test is that the SOP
    Instance UID inside matches the C-STORE request's Affected SOP Instance
    UID (PS3.4 B.2.3); a dataset that garbles it is not understood.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(
                io.BytesIO(data),
                stop_before_pixels=True,
                specific_tags=["SOPInstanceUID"],
            )
            return str(ds.get("SOPInstanceUID", "")).strip() == sop_instance_uid
    except Exception:  # noqa: BLE001 - any parse failure means unreadable
        return False


def queue_ingest(
    schema: str, spool_names: list[str], calling_ae_title: str = ""
) -> bool:
    """Queue indexing; with the broker down the files wait in the spool."""
    from pacs.tasks import ingest_spooled_files

    try:
        ingest_spooled_files.apply_async(
            args=[spool_names, calling_ae_title], headers={"_schema_name": schema}
        )
    except Exception as error:  # noqa: BLE001 - any broker failure; the spool keeps the files
        logger.warning(
            "ingest of %d files not queued (broker unavailable), left in spool: %s",
            len(spool_names),
            error,
        )
        return False
    return True


# Files per queued batch when the sweeper requeues a backlog.
SWEEP_BATCH = 100


def sweep_spool(older_than_seconds: float = 60.0) -> int:
    """Queue again every spooled file that waited too long (lost or unsent message)."""
    close_old_connections()
    with schema_context(get_public_schema_name()):
        schemas = list(
            Tenant.objects.exclude(schema_name=get_public_schema_name()).values_list(
                "schema_name", flat=True
            )
        )
    connection.close()
    queued = 0
    for schema in schemas:
        stale = list(spool.stale_files(schema, older_than_seconds))
        for start in range(0, len(stale), SWEEP_BATCH):
            batch = stale[start : start + SWEEP_BATCH]
            if queue_ingest(schema, [path.name for path in batch]):
                for path in batch:
                    # Not again until stale once more. touch() would re-create
                    # a file that a worker consumed meanwhile.
                    with contextlib.suppress(FileNotFoundError):
                        os.utime(path)
                queued += len(batch)
    if queued:
        logger.info("spool sweep queued %d waiting instances", queued)
    return queued


def build_ae() -> AE:
    # Accept any storage SOP class, private ones included (PS3.4 B.5).
    _config.UNRESTRICTED_STORAGE_SERVICE = True
    # Query identifiers carry patient names: never in the logs.
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    ae = AE(ae_title=settings.NIMBUS_DICOM_AE_TITLE)
    ae.require_called_aet = False  # checked per tenant in handle_requested
    ae.maximum_associations = settings.NIMBUS_DICOM_MAX_ASSOCIATIONS
    ae.network_timeout = 60
    # A peer that connects and says nothing holds a slot only this long.
    ae.acse_timeout = 10
    ae.dimse_timeout = 120
    ae.maximum_pdu_size = 0  # unlimited: large CT frames in fewer PDUs
    ae.add_supported_context(Verification)
    for sop_class in FIND_SOP_CLASSES:  # uncompressed syntaxes only
        ae.add_supported_context(sop_class, TRANSFER_SYNTAXES[:4])
    for context in AllStoragePresentationContexts:
        # Role selection accepted as proposed: a C-GET requestor takes the
        # SCP role for the storage classes it retrieves (PS3.7 D.3.3.4).
        ae.add_supported_context(
            context.abstract_syntax, TRANSFER_SYNTAXES, scu_role=True, scp_role=True
        )
    retrieve.configure_retrieve(ae)
    return ae


HANDLERS: list[tuple[Any, Any]] = [
    (evt.EVT_REQUESTED, handle_requested),
    (evt.EVT_REQUESTED, peers.handle_requested),
    (evt.EVT_ESTABLISHED, handle_established),
    (evt.EVT_C_ECHO, handle_echo),
    (evt.EVT_C_STORE, handle_store),
    (evt.EVT_C_FIND, handle_find),
    (evt.EVT_C_MOVE, retrieve.handle_move),
    (evt.EVT_C_GET, retrieve.handle_get),
]


class NoDelayAssociationServer(ThreadedAssociationServer):
    """Associations with Nagle's algorithm off.

    DIMSE sends many small PDUs and waits for each response: with Nagle on,
    every C-STORE waits for the peer's delayed ACK (about 40 ms).
    """

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


def serve(
    host: str,
    port: int,
    stop: threading.Event | None = None,
    *,
    sweep: bool = True,
    shared_port: bool = False,
) -> None:
    """Run the listener until ``stop`` is set, sweeping the spool each minute.

    With several listener processes (``shared_port``), only one sweeps.
    """
    ae = build_ae()
    batcher = IngestBatcher(queue_ingest)
    ae.nimbus_batcher = batcher  # type: ignore[attr-defined]
    server = ae.make_server(
        (host, port),
        evt_handlers=HANDLERS,
        server_class=SharedPortAssociationServer
        if shared_port
        else NoDelayAssociationServer,
    )
    ae._servers.append(server)  # as start_server() does; shutdown() expects it
    threading.Thread(
        target=server.serve_forever, name="dicom-listener", daemon=True
    ).start()
    logger.info("DICOM listener on %s:%d, AE %s", host, port, ae.ae_title)
    stop = stop or threading.Event()
    try:
        if sweep:
            sweep_spool(older_than_seconds=0)
        while not stop.wait(60):
            if sweep:
                sweep_spool()
    finally:
        server.shutdown()
        batcher.close()
        logger.info("DICOM listener stopped")
