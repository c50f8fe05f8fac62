"""Logging for every process: plain text for a terminal, or one JSON object per line for log shippers.

Job and session ids travel as `extra={"job_id": ..., "session_id": ...}` and become fields of the
JSON line, so an operator can follow one job across the api, scheduler and executor logs.
"""

import json
import logging
import sys
from datetime import UTC, datetime

CONTEXT_FIELDS = (
    "job_id",
    "session_id",
    "dispatch_id",
    "backend",
    "executor_id",
    "instance_id",
    # the api's access log
    "http_method",
    "http_path",
    "http_status",
    "duration_ms",
    "user_id",
)


class JsonFormatter(logging.Formatter):
    def __init__(self, process_role: str) -> None:
        super().__init__()
        self.process_role = process_role

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.process_role,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                document[name] = value if isinstance(value, int | float) else str(value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document)


def configure_logging(level: str, log_format: str, process_role: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(process_role))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that are chatty at INFO.
    for noisy in ("aiormq", "aio_pika", "qiskit", "stevedore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
