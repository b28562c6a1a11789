"""The DICOM listener: Verification and Storage SCP for every tenant (PS3.4 A, B).

One pynetdicom application entity serves all tenants; the called AE title of
each association selects the tenant. Received instances go to the durable
spool, and only then is success returned; indexing happens in a Celery task.
The same AE listens on the DICOM TLS port when a certificate is configured
(PS3.15 B.9, see ``pacs.dimse.transport``).
"""

import contextlib
import errno
import logging
import os
import ssl
import threading
import warnings
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django_tenants.utils import get_public_schema_name, schema_context
from pynetdicom import AE, _config, evt
from pynetdicom.events import Event
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from pacs import deflate, dicom, spool
from pacs.dimse import peers, retrieve
from pacs.dimse.batching import IngestBatcher
from pacs.dimse.find import FIND_SOP_CLASSES, handle_find
from pacs.dimse.lastknown import (
    LAST_KNOWN_SECONDS,
    LastKnown,
    close_quietly,
    reject_busy,
)
from pacs.dimse.transport import (
    NoDelayAssociationServer,
    SharedPortAssociationServer,
    SharedPortTLSAssociationServer,
    TLSAssociationServer,
    pdu_reader,
    tls_context,
)
from pacs.ingest import record_refused_instance
from pacs.models import IngestFailure
from tenants.models import Tenant

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("nimbus.security")

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


_tenants: LastKnown[str, tuple[str, bool]] = LastKnown(
    "tenant of called AE", LAST_KNOWN_SECONDS
)


def tenant_for_ae_title(ae_title: str) -> tuple[str, bool] | None:
    """The schema of the tenant called ``ae_title`` and whether its allow-list is on.

    One query per association: the peers check reads the flag from here.
    While the database is unreachable, the last answer it gave (see
    :mod:`pacs.dimse.lastknown`).
    """
    called = ae_title.strip()

    def lookup() -> tuple[str, bool] | None:
        with schema_context(get_public_schema_name()):
            return (
                Tenant.objects.filter(ae_title=called, is_active=True)
                .exclude(schema_name=get_public_schema_name())
                .values_list("schema_name", "only_known_peers_may_store")
                .first()
            )

    return _tenants.get(called, lookup)


def handle_requested(event: Event) -> None:
    """Accept an association only for a known tenant's called AE title."""
    assoc = event.assoc
    called = assoc.requestor.primitive.called_ae_title.strip()
    try:
        tenant = tenant_for_ae_title(called)
    except Exception:  # noqa: BLE001 - a check that cannot run refuses: fail closed
        logger.warning("tenant of called AE %r not looked up", called, exc_info=True)
        reject_busy(assoc, "the tenant of the called AE title could not be looked up")
        return
    finally:
        close_quietly()
    if tenant is None:
        security_logger.warning(
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
    assoc.nimbus_schema, assoc.nimbus_allow_list = tenant  # type: ignore[attr-defined]


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

    Returns the C-STORE status (PS3.4 B.2.3): success only once the bytes are
    on disk; 0xA700 for an instance larger than ``NIMBUS_DICOM_MAX_INSTANCE_MB``
    (its data set was dropped while it arrived: nothing is stored) and for a
    deflated data set that inflates past ``NIMBUS_MAX_INFLATED_MB``; 0xC000
    for a data set that cannot be read. Both refused data sets that arrived
    whole are kept in quarantine with the reason.
    """
    schema: str = event.assoc.nimbus_schema  # type: ignore[attr-defined]
    reader = pdu_reader(event.assoc)
    if reader is not None and reader.take_oversized():
        security_logger.warning(
            "C-STORE refused: instance over %d MB from %s, nothing stored",
            settings.NIMBUS_DICOM_MAX_INSTANCE_MB,
            event.assoc.requestor.address,
        )
        return STATUS_OUT_OF_RESOURCES
    sop_uid = str(event.request.AffectedSOPInstanceUID or "")
    if not dicom.is_valid_uid(sop_uid):
        logger.warning("C-STORE refused: invalid SOP Instance UID")
        return STATUS_CANNOT_UNDERSTAND
    try:
        data = event.encoded_dataset(include_meta=True)
        refusal = header_refusal(data, sop_uid)
        path = spool.write_durably(schema, data, quarantine=refusal is not None)
    except OSError as error:
        logger.error("C-STORE spool write failed: %s", error)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return STATUS_OUT_OF_RESOURCES
        return STATUS_PROCESSING_FAILURE
    except Exception:
        logger.exception("C-STORE could not encode the received dataset")
        return STATUS_CANNOT_UNDERSTAND

    calling_ae_title = event.assoc.requestor.ae_title.strip()
    if refusal is not None:
        # Kept, so nothing is lost, but the sender must know it failed.
        status, reason = refusal
        logger.warning(
            "C-STORE refused (0x%04X): data set kept as %s", status, path.name
        )
        record_quarantine(schema, path, sop_uid, calling_ae_title, reason)
        return status
    batcher: IngestBatcher | None = getattr(event.assoc.ae, "nimbus_batcher", None)
    if batcher is not None:
        batcher.add(schema, path.name, calling_ae_title)
    else:
        queue_ingest(schema, [path.name], calling_ae_title)
    return STATUS_SUCCESS


def header_is_readable(data: bytes, sop_instance_uid: str) -> bool:
    """Whether the dataset reads up to its pixel data and is the instance announced."""
    return header_refusal(data, sop_instance_uid) is None


def header_refusal(data: bytes, sop_instance_uid: str) -> tuple[int, str] | None:
    """Why the received data set is refused, or None when it may be spooled.

    pydicom reads almost any bytes leniently, so the test is that the SOP
    Instance UID inside matches the C-STORE request's Affected SOP Instance
    UID (PS3.4 B.2.3); a dataset that garbles it is not understood. Only
    the elements up to the Series Instance UID are read here; the ingest
    worker reads the rest and quarantines a file it cannot index. A deflated data set
    (PS3.5 A.5) is first inflated in bounded steps and counted
    (``pacs.deflate``): pydicom would inflate it whole.

    Parameters
    ----------
    data : bytes
        The PS3.10 file as received: File Meta Information and data set.
    sop_instance_uid : str
        The request's Affected SOP Instance UID.

    Returns
    -------
    tuple of (int, str) or None
        The C-STORE status and the reason kept with the quarantined file:
        0xA700 (Refused: Out of Resources) for a data set that inflates past
        ``NIMBUS_MAX_INFLATED_MB``, 0xC000 (Error: Cannot Understand) for
        one that does not read up to the announced SOP Instance UID or
        whose Study or Series Instance UID is missing or not a valid UID
        (PS3.5 9.1; a path such as ``../../x`` never reaches ingest).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = deflate.read_through(data, SERIES_INSTANCE_UID)
            announced = str(ds.get("SOPInstanceUID", "")).strip() == sop_instance_uid
            uids = [str(ds.get(keyword, "") or "").strip() for keyword in PATH_UIDS]
    except deflate.InflateLimitExceeded as error:
        security_logger.warning("C-STORE refused: deflated data set over the cap")
        return STATUS_OUT_OF_RESOURCES, f"{INFLATE_REASON}: {error}"
    except Exception:  # noqa: BLE001 - any parse failure means unreadable
        return STATUS_CANNOT_UNDERSTAND, UNREADABLE_REASON
    if not announced:
        return STATUS_CANNOT_UNDERSTAND, UNREADABLE_REASON
    # Ingest would quarantine it anyway ("UID missing or invalid"): the
    # modality must hear now that the image is not archived, not Success.
    if not all(dicom.is_valid_uid(uid) for uid in uids):
        security_logger.warning("C-STORE refused: Study or Series Instance UID invalid")
        return STATUS_CANNOT_UNDERSTAND, INVALID_UID_REASON
    return None


SOP_INSTANCE_UID = 0x00080018
SERIES_INSTANCE_UID = 0x0020000E
# The UIDs that name the stored file's folders (pacs/storage paths).
PATH_UIDS = ("StudyInstanceUID", "SeriesInstanceUID")

UNREADABLE_REASON = (
    "C-STORE data set unreadable: not DICOM, truncated before its SOP Instance "
    "UID, or not the instance the request announced"
)
INFLATE_REASON = "C-STORE data set refused: decompression bomb"
INVALID_UID_REASON = (
    "C-STORE data set refused: Study or Series Instance UID missing or invalid"
)


def record_quarantine(
    schema: str,
    path: os.PathLike[str],
    sop_uid: str,
    calling_ae_title: str,
    reason: str = UNREADABLE_REASON,
) -> None:
    """List a file the listener quarantined among the tenant's ingest failures."""
    try:
        with schema_context(schema):
            IngestFailure.objects.create(
                quarantine_path=str(path),
                sop_instance_uid=sop_uid,
                error=reason,
                calling_ae_title=calling_ae_title[:16],
            )
            record_refused_instance(sop_uid, calling_ae_title, os.path.basename(path))
    except Exception:  # the file is kept either way; the row only lists it
        logger.exception("quarantined file %s not listed", os.fspath(path))
    finally:
        connection.close()


def queue_ingest(
    schema: str, spool_names: list[str], calling_ae_title: str = ""
) -> bool:
    """Queue indexing; with the broker down the files wait in the spool.

    On this machine's ingest queue (NIMBUS_INGEST_QUEUE): only a worker that
    shares this spool folder can index the files.
    """
    from pacs.tasks import ingest_spooled_files

    try:
        ingest_spooled_files.apply_async(
            args=[spool_names, calling_ae_title],
            headers={"_schema_name": schema},
            queue=settings.NIMBUS_INGEST_QUEUE,
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


def sweep_spool_or_log(older_than_seconds: float) -> int:
    """Sweep once; a database outage is logged and the next sweep tries again.

    Without this, PostgreSQL restarting at the moment of a sweep ended the
    whole listener (the sweep runs in its main thread).
    """
    try:
        return sweep_spool(older_than_seconds)
    except Exception:
        logger.exception("spool sweep failed; the next sweep tries again")
        connection.close()
        return 0


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
    # Announced in the A-ASSOCIATE-AC (PS3.8 D.1) and enforced on every PDU
    # read (pacs.dimse.transport.PDUReader): large enough for a CT slice in
    # one PDU, small enough that 200 associations cannot exhaust memory.
    ae.maximum_pdu_size = settings.NIMBUS_DICOM_MAX_PDU_SIZE
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


def serve(
    host: str,
    port: int,
    stop: threading.Event | None = None,
    *,
    sweep: bool = True,
    shared_port: bool = False,
    tls_port: int | None = None,
) -> None:
    """Run the listener until ``stop`` is set, sweeping the spool now and then.

    The sweep runs every ``NIMBUS_SPOOL_SWEEP_SECONDS`` (a minute by default).

    With several listener processes (``shared_port``), only one sweeps. With
    ``NIMBUS_DICOM_TLS_CERT`` set, the same AE also serves DICOM TLS on
    ``tls_port`` (default ``NIMBUS_DICOM_TLS_PORT``).
    """
    ae = build_ae()
    batcher = IngestBatcher(queue_ingest)
    ae.nimbus_batcher = batcher  # type: ignore[attr-defined]
    servers = [
        start_server(
            ae,
            (host, port),
            SharedPortAssociationServer if shared_port else NoDelayAssociationServer,
        )
    ]
    logger.info("DICOM listener on %s:%d, AE %s", host, port, ae.ae_title)
    if tls_port is None:
        tls_port = settings.NIMBUS_DICOM_TLS_PORT
    if settings.NIMBUS_DICOM_TLS_CERT:
        context = tls_context(
            settings.NIMBUS_DICOM_TLS_CERT,
            settings.NIMBUS_DICOM_TLS_KEY,
            settings.NIMBUS_DICOM_TLS_CA,
            require_client=settings.NIMBUS_DICOM_TLS_REQUIRE_CLIENT_CERT,
        )
        tls_class = (
            SharedPortTLSAssociationServer if shared_port else TLSAssociationServer
        )
        servers.append(start_server(ae, (host, tls_port), tls_class, context))
        logger.info("DICOM TLS listener on %s:%d", host, tls_port)
    stop = stop or threading.Event()
    interval = settings.NIMBUS_SPOOL_SWEEP_SECONDS
    try:
        if sweep:
            sweep_spool_or_log(older_than_seconds=0)
        while not stop.wait(interval):
            if sweep:
                sweep_spool_or_log(older_than_seconds=interval)
    finally:
        for server in servers:
            server.shutdown()
        batcher.close()
        logger.info("DICOM listener stopped")


def start_server(
    ae: AE,
    address: tuple[str, int],
    server_class: type[NoDelayAssociationServer],
    ssl_context: ssl.SSLContext | None = None,
) -> NoDelayAssociationServer:
    """Bind ``address`` and serve it from a thread, within the listener's limits."""
    server = ae.make_server(
        address,
        evt_handlers=HANDLERS,
        server_class=server_class,
        ssl_context=ssl_context,
    )
    server.max_pdu_length = settings.NIMBUS_DICOM_MAX_PDU_SIZE
    server.max_instance_bytes = settings.NIMBUS_DICOM_MAX_INSTANCE_MB << 20
    ae._servers.append(server)  # as start_server() does; shutdown() expects it
    threading.Thread(
        target=server.serve_forever, name="dicom-listener", daemon=True
    ).start()
    return server
