"""Read-only views of a report, shared by the API, the editor and the websocket."""

from typing import Any

from reporting.models import OutboundMessage, Report


def latest_message(report: Report) -> OutboundMessage | None:
    return report.messages.order_by("-created_at", "-id").first()


def delivery_state(report: Report) -> dict[str, Any] | None:
    """The state of the report's latest HL7 message, None before signing."""
    message = latest_message(report)
    if message is None:
        return None
    return {
        "state": message.state,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "last_attempt_at": _iso(message.last_attempt_at),
        "delivered_at": _iso(message.delivered_at),
    }


def report_state(report: Report) -> dict[str, Any]:
    """Everything a client shows about a report, as JSON-ready values."""
    versions = [
        {
            "version": version.version,
            "status": version.status,
            "saved_by": version.saved_by.username if version.saved_by else "",
            "saved_at": _iso(version.saved_at),
        }
        for version in report.versions.select_related("saved_by")
    ]
    return {
        "study_instance_uid": report.study.study_instance_uid,
        "status": report.status,
        "text": report.text,
        "version": report.version,
        "versions": versions,
        "signed_by": report.signed_by.username if report.signed_by else "",
        "signed_at": _iso(report.signed_at),
        "delivery": delivery_state(report),
    }


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None
