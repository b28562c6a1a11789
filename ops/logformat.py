"""One JSON object per log line, for log collectors (NIMBUS_LOG_FORMAT=json).

Only fixed fields are written: never a record's ``extra`` attributes, which
a library could fill with a data set's elements. Messages themselves carry
no patient data by the house rule (STYLE.md, habit 7; config/logs.py holds
the loggers that would write it at debug level above it).
"""

import datetime
import json
import logging


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(
                record.created, tz=datetime.UTC
            ).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
