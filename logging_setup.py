"""Log lines of every process: text or JSON (LOG_FORMAT), each with the host that wrote it (HOST_NAME:
several hosts log to one collector), the request id it belongs to and the upload a worker was recording."""
from __future__ import annotations

import json
import logging
import socket
import sys
from datetime import datetime, timezone

from request_context import current_request_id, current_upload_id

TEXT_FORMAT = ("%(asctime)s %(levelname)s %(host)s [%(process)d] %(name)s upload=%(upload_id)s [%(request_id)s]: "
               "%(message)s")
# Set once per process by configure_logging (HOST_NAME); the machine's name until then.
_host = {"name": socket.gethostname()}


class RequestIdFilter(logging.Filter):
    """Adds the host, the request id and the upload id to every record the service's handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id() or "-"
        if getattr(record, "upload_id", None) is None:
            upload_id = current_upload_id()
            record.upload_id = "-" if upload_id is None else upload_id
        record.host = _host["name"]
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "host": getattr(record, "host", None) or _host["name"],
            "pid": record.process,
            "request_id": getattr(record, "request_id", None) or current_request_id() or _access_request_id(record),
            "upload_id": _upload_id(record),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (a test's capture, a redirected stream), not the one at set-up."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _upload_id(record: logging.LogRecord) -> int | None:
    value = getattr(record, "upload_id", None)
    if value is None or value == "-":
        return current_upload_id()
    return value


def _access_request_id(record: logging.LogRecord) -> str | None:
    """gunicorn's access lines are written after the request, with the response's headers as arguments."""
    if record.name == "gunicorn.access" and isinstance(record.args, dict):
        return record.args.get("{x-request-id}o") or None
    return None


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str, log_format: str = "text", host_name: str | None = None) -> None:
    """The root logger writes to stderr once per process, in the chosen format."""
    if host_name:
        _host["name"] = host_name
    root = logging.getLogger()
    root.setLevel(level.upper())
    # Alembic narrates every check at INFO; migrations_runner logs the upgrades that happen.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    for handler in root.handlers:
        if getattr(handler, "_ocr_service", False):
            handler.setFormatter(make_formatter(log_format))
            return
    handler = StderrHandler()
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(RequestIdFilter())
    handler._ocr_service = True  # type: ignore[attr-defined]
    root.addHandler(handler)
