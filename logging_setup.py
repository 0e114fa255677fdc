"""Log lines of every process: text or JSON (LOG_FORMAT), each with the request id it belongs to."""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from request_context import current_request_id

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "request_id": getattr(record, "request_id", None) or current_request_id() or _access_request_id(record),
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


def _access_request_id(record: logging.LogRecord) -> str | None:
    """gunicorn's access lines are written after the request, with the response's headers as arguments."""
    if record.name == "gunicorn.access" and isinstance(record.args, dict):
        return record.args.get("{x-request-id}o") or None
    return None


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str, log_format: str = "text") -> None:
    """The root logger writes to stderr once per process, in the chosen format."""
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
