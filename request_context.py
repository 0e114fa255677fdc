"""The id of the request being served: taken from a valid X-Request-ID header or generated.

It is kept in a context variable, so every log line written while serving the request, and every
error body, carries it, whatever thread serves the request.
"""
from __future__ import annotations

import contextvars
import re
import uuid

REQUEST_ID_HEADER = "X-Request-ID"
# What a client's id may look like: short, printable, no spaces (it goes into logs and headers).
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}\Z", re.ASCII)
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def accepted_or_new(header_value: str | None) -> str:
    """The client's id when it is a safe token; a fresh one otherwise (never an error)."""
    if header_value and _VALID_REQUEST_ID.match(header_value):
        return header_value
    return uuid.uuid4().hex


def bind(request_id: str) -> contextvars.Token:
    return _current.set(request_id)


def unbind(token: contextvars.Token) -> None:
    _current.reset(token)


def current_request_id() -> str | None:
    return _current.get()
