"""DICOM audit messages (PS3.15 Annex A.5) in RFC 5424 syslog frames.

Each Nimbus audit record becomes one ``AuditMessage`` in the XML of PS3.15
A.5.1, carried as the MSG of one RFC 5424 syslog message and framed by
octet counting (RFC 6587 3.4.1, which RFC 5425 uses over TLS as well).
"""

from dataclasses import dataclass
from datetime import UTC
from xml.etree import ElementTree as ET

from audit.models import AuditEvent, EventType, Outcome

SYSLOG_FACILITY_AUTHPRIV = 10
SEVERITY_NOTICE = 5
SEVERITY_WARNING = 4
# RFC 5612 documentation enterprise number, for Nimbus's own SD-ID.
SD_ID = "nimbus@32473"
MSGID = "DICOM+RFC3881"
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Code:
    """A coded value as PS3.15 A.5.1 writes it (``csd-code`` and friends)."""

    value: str
    meaning: str
    scheme: str = "DCM"


# PS3.15 A.5.3 audit events (CID 400) and event type codes (CID 401, 403).
APPLICATION_ACTIVITY = Code("110100", "Application Activity")
AUDIT_LOG_USED = Code("110101", "Audit Log Used")
BEGIN_TRANSFERRING = Code("110102", "Begin Transferring DICOM Instances")
INSTANCES_ACCESSED = Code("110103", "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = Code("110104", "DICOM Instances Transferred")
EXPORT = Code("110106", "Export")
PATIENT_RECORD = Code("110110", "Patient Record")
QUERY = Code("110112", "Query")
SECURITY_ALERT = Code("110113", "Security Alert")
USER_AUTHENTICATION = Code("110114", "User Authentication")
LOGIN = Code("110122", "Login")
LOGOUT = Code("110123", "Logout")
NETWORK_CONFIGURATION = Code("110128", "Network Configuration")
SECURITY_CONFIGURATION = Code("110129", "Security Configuration")
USE_OF_RESTRICTED_FUNCTION = Code("110132", "Use of Restricted Function")
USER_SECURITY_ATTRIBUTES_CHANGED = Code("110137", "User Security Attributes Changed")
SOURCE_ROLE = Code("110153", "Source Role ID")
DESTINATION_ROLE = Code("110152", "Destination Role ID")
APPLICATION_ROLE = Code("110150", "Application")
PATIENT_NUMBER = Code("2", "Patient Number", "RFC-3881")
STUDY_INSTANCE_UID = Code("110180", "Study Instance UID")
AUDIT_SOURCE_APPLICATION = Code("4", "Application Server Process", "DCM")


@dataclass(frozen=True)
class DicomEvent:
    event_id: Code
    action: str  # EventActionCode: C create, R read, U update, D delete, E execute
    type_code: Code | None = None


# Nimbus event types mapped to PS3.15 A.5.3 events; docs/audit.md has the table.
EVENT_MAP: dict[int, DicomEvent] = {
    EventType.LOGIN_SUCCEEDED: DicomEvent(USER_AUTHENTICATION, "E", LOGIN),
    EventType.LOGIN_FAILED: DicomEvent(USER_AUTHENTICATION, "E", LOGIN),
    EventType.LOGOUT: DicomEvent(USER_AUTHENTICATION, "E", LOGOUT),
    EventType.ACCESS_DENIED: DicomEvent(
        SECURITY_ALERT, "E", USE_OF_RESTRICTED_FUNCTION
    ),
    EventType.API_TOKEN_ISSUED: DicomEvent(
        SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED
    ),
    EventType.WORKLIST_SEARCHED: DicomEvent(QUERY, "E"),
    EventType.DICOMWEB_QUERY: DicomEvent(QUERY, "E"),
    EventType.DICOM_QUERY: DicomEvent(QUERY, "E"),
    EventType.STUDY_OPENED: DicomEvent(INSTANCES_ACCESSED, "R"),
    EventType.FRAMES_VIEWED: DicomEvent(INSTANCES_ACCESSED, "R"),
    EventType.REPORT_READ: DicomEvent(PATIENT_RECORD, "R"),
    EventType.DICOMWEB_RETRIEVE: DicomEvent(INSTANCES_TRANSFERRED, "R"),
    EventType.DICOM_MOVE: DicomEvent(INSTANCES_TRANSFERRED, "R"),
    EventType.DICOM_GET: DicomEvent(INSTANCES_TRANSFERRED, "R"),
    EventType.INSTANCE_STORED: DicomEvent(INSTANCES_TRANSFERRED, "C"),
    EventType.ORDER_RECEIVED: DicomEvent(PATIENT_RECORD, "C"),
    EventType.ADDENDUM_SAVED: DicomEvent(PATIENT_RECORD, "C"),
    EventType.ANNOTATION_DELETED: DicomEvent(PATIENT_RECORD, "D"),
    EventType.KEY_IMAGE_UNMARKED: DicomEvent(PATIENT_RECORD, "D"),
    EventType.HL7_DELIVERED: DicomEvent(EXPORT, "R"),
    EventType.HL7_DELIVERY_FAILED: DicomEvent(EXPORT, "R"),
    EventType.HL7_RESEND_REQUESTED: DicomEvent(EXPORT, "R"),
    EventType.TENANT_CHANGED: DicomEvent(SECURITY_ALERT, "E", NETWORK_CONFIGURATION),
    EventType.USER_CHANGED: DicomEvent(
        SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED
    ),
    EventType.AUDIT_SEARCHED: DicomEvent(AUDIT_LOG_USED, "R"),
    EventType.AUDIT_EXPORTED: DicomEvent(AUDIT_LOG_USED, "R"),
    EventType.AUDIT_CHAIN_BROKEN: DicomEvent(SECURITY_ALERT, "E"),
    # 19x, sign-in protections (accounts/): by number, as accounts/ adds them.
    190: DicomEvent(SECURITY_ALERT, "E", USE_OF_RESTRICTED_FUNCTION),
    191: DicomEvent(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED),
    192: DicomEvent(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED),
    193: DicomEvent(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED),
    194: DicomEvent(USER_AUTHENTICATION, "E", LOGOUT),
    195: DicomEvent(USER_AUTHENTICATION, "E", LOGOUT),
    196: DicomEvent(USER_AUTHENTICATION, "E", LOGIN),
}


def dicom_event(event_type: int) -> DicomEvent:
    """The PS3.15 event of a Nimbus event type, by its range when not listed.

    1xx security events not in the table (sign-in protections added later)
    are Security Alerts; 2xx reads of patient data are DICOM Instances
    Accessed; 3xx changes are Patient Record updates; 4xx Export; 5xx
    Security Alert (configuration); 6xx Audit Log Used.
    """
    if event_type in EVENT_MAP:
        return EVENT_MAP[event_type]
    by_range = {
        1: DicomEvent(SECURITY_ALERT, "E", SECURITY_CONFIGURATION),
        2: DicomEvent(INSTANCES_ACCESSED, "R"),
        3: DicomEvent(PATIENT_RECORD, "U"),
        4: DicomEvent(EXPORT, "R"),
        5: DicomEvent(SECURITY_ALERT, "E", SECURITY_CONFIGURATION),
        6: DicomEvent(AUDIT_LOG_USED, "R"),
    }
    return by_range.get(event_type // 100, DicomEvent(APPLICATION_ACTIVITY, "E"))


def _coded(parent: ET.Element, tag: str, code: Code) -> None:
    ET.SubElement(
        parent,
        tag,
        {
            "csd-code": code.value,
            "codeSystemName": code.scheme,
            "originalText": code.meaning,
        },
    )


def _participant(
    message: ET.Element,
    user_id: str,
    *,
    requestor: bool,
    role: Code,
    address: str | None = None,
) -> None:
    attributes = {"UserID": user_id, "UserIsRequestor": str(requestor).lower()}
    if address:
        # NetworkAccessPointTypeCode 2: an IP address (PS3.15 A.5.1).
        attributes |= {
            "NetworkAccessPointID": address,
            "NetworkAccessPointTypeCode": "2",
        }
    element = ET.SubElement(message, "ActiveParticipant", attributes)
    _coded(element, "RoleIDCode", role)


def build_audit_message(event: AuditEvent, schema_name: str, source_id: str) -> bytes:
    """The PS3.15 A.5.1 ``AuditMessage`` of one audit record, as UTF-8 XML.

    Parameters
    ----------
    event : AuditEvent
        The stored record.
    schema_name : str
        The tenant, written as ``AuditEnterpriseSiteID``.
    source_id : str
        ``AuditSourceID`` and the UserID of Nimbus as a participant.

    Returns
    -------
    bytes
        The XML document: EventIdentification, the requesting user (when
        there is one) and Nimbus as ActiveParticipants,
        AuditSourceIdentification, then the patient (type 1, role 1) and
        the study (type 2, role 3) as ParticipantObjectIdentification.
    """
    mapped = dicom_event(event.event_type)
    failed = event.outcome == Outcome.FAILURE
    message = ET.Element("AuditMessage")

    identification = ET.SubElement(
        message,
        "EventIdentification",
        {
            "EventActionCode": mapped.action,
            "EventDateTime": event.occurred_at.astimezone(UTC).isoformat(),
            # 0 success, 4 minor failure (a refusal is the system working).
            "EventOutcomeIndicator": "4" if failed else "0",
        },
    )
    _coded(identification, "EventID", mapped.event_id)
    if mapped.type_code is not None:
        _coded(identification, "EventTypeCode", mapped.type_code)

    transfer = mapped.event_id in (INSTANCES_TRANSFERRED, BEGIN_TRANSFERRING)
    if event.actor_username:
        _participant(
            message,
            event.actor_username,
            requestor=True,
            role=DESTINATION_ROLE if transfer else APPLICATION_ROLE,
            address=event.source_ip,
        )
    _participant(
        message,
        source_id,
        requestor=not event.actor_username,
        role=SOURCE_ROLE if transfer else APPLICATION_ROLE,
    )

    source = ET.SubElement(
        message,
        "AuditSourceIdentification",
        {"AuditEnterpriseSiteID": schema_name, "AuditSourceID": source_id},
    )
    _coded(source, "AuditSourceTypeCode", AUDIT_SOURCE_APPLICATION)

    # Type 1 person in role 1 patient; type 2 system object in role 3 report.
    for object_id, type_code, role, id_type in (
        (event.patient_id, "1", "1", PATIENT_NUMBER),
        (event.study_instance_uid, "2", "3", STUDY_INSTANCE_UID),
    ):
        if not object_id:
            continue
        element = ET.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": object_id,
                "ParticipantObjectTypeCode": type_code,
                "ParticipantObjectTypeCodeRole": role,
            },
        )
        _coded(element, "ParticipantObjectIDTypeCode", id_type)
    return ET.tostring(message, encoding="utf-8", xml_declaration=True)


def _sd_value(value: str) -> str:
    # RFC 5424 6.3.3: escape '"', '\' and ']' inside PARAM-VALUE.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_message(
    event: AuditEvent,
    seq: int,
    schema_name: str,
    *,
    hostname: str,
    app_name: str,
    source_id: str,
) -> bytes:
    """One RFC 5424 message carrying the record's audit message.

    PRI is facility 10 (security/authorization), severity notice, or warning
    for a failure outcome. The structured data names the tenant, the record
    id and its chain link, so a repository can drop a message it already
    has (delivery is at least once).
    """
    failed = event.outcome == Outcome.FAILURE
    severity = SEVERITY_WARNING if failed else SEVERITY_NOTICE
    priority = SYSLOG_FACILITY_AUTHPRIV * 8 + severity
    timestamp = event.occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
    structured = (
        f'[{SD_ID} tenant="{_sd_value(schema_name)}" record="{event.pk}" seq="{seq}"]'
    )
    header = f"<{priority}>1 {timestamp} {hostname} {app_name} - {MSGID} {structured} "
    return header.encode() + BOM + build_audit_message(event, schema_name, source_id)


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 3.4.1 framing: the length in octets, a space, the message."""
    return str(len(message)).encode() + b" " + message
