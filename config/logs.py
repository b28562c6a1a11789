"""The logging configuration: to the console, and to a file when asked.

Logs never carry patient data (STYLE.md, habit 7). Two libraries would write
it at debug level, so their loggers are held above it whatever level is
asked for: Django's SQL log (``django.db.backends`` logs every statement
with its parameters: names, patient IDs, birth dates) and django-axes (user
names and addresses of every sign-in; the audit trail has them).
pynetdicom's debug output is DIMSE protocol detail; the identifiers of
C-FIND, C-MOVE and C-GET, which hold patient names, are switched off where
Nimbus builds its AEs (``pacs.dimse.listener.build_ae``,
``pacs.dimse.retrieve``).
"""

import os
from typing import Any

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_file_path(template: str) -> str:
    """``template`` with ``{pid}`` replaced, so that each process has its own file.

    The web server, the listener, the worker and the management commands of
    one deployment may share one setting; appending to one file from all of
    them would interleave their lines.
    """
    return template.replace("{pid}", str(os.getpid()))


def logging_config(
    level: str = "INFO", log_file: str = "", log_format: str = "plain"
) -> dict[str, Any]:
    """A ``dictConfig`` dictionary for the root ``level`` and an optional file.

    ``log_format`` is ``plain`` (a line of text) or ``json`` (an object a
    line, ``ops.logformat``) for log collectors.

    Raises
    ------
    ValueError
        When ``level`` is not one of :data:`LEVELS`.
    """
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"the log level must be one of {', '.join(LEVELS)}")
    if log_format not in {"plain", "json"}:
        raise ValueError("the log format must be plain or json")

    handlers: dict[str, dict[str, Any]] = {
        "console": {"class": "logging.StreamHandler", "formatter": log_format}
    }
    if log_file:
        handlers["file"] = {
            "class": "logging.FileHandler",
            "filename": log_file_path(log_file),
            "encoding": "utf-8",
            "formatter": log_format,
        }

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {
                "format": "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"
            },
            "json": {"()": "ops.logformat.JsonFormatter"},
        },
        "handlers": handlers,
        "root": {"handlers": list(handlers), "level": level},
        "loggers": {
            # Protocol detail, wanted only when debugging; a line per PDU.
            "pynetdicom": {"level": "DEBUG" if level == "DEBUG" else "WARNING"},
            # Debug here is every SQL statement with its parameters.
            "django.db.backends": {"level": "INFO"},
            "axes": {"level": "WARNING"},
        },
    }
