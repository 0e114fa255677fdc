"""The id of the request being served: taken from a valid X-Request-ID header or generated.

It is kept in a context variable, so every log line written while serving the request, and every
error body, carries it, whatever thread serves the request.
"""
from __future__ import annotations

import contextvars
import functools
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

REQUEST_ID_HEADER = "X-Request-ID"
# What a client's id may look like: short, printable, no spaces (it goes into logs and headers).
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}\Z", re.ASCII)
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# The upload a worker is recording: its log lines name it, whichever host wrote them.
_upload: contextvars.ContextVar[int | None] = contextvars.ContextVar("upload_id", default=None)
F = TypeVar("F", bound=Callable[..., Any])


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


def current_upload_id() -> int | None:
    return _upload.get()


@contextmanager
def upload_scope(upload_id: int | None) -> Iterator[None]:
    """Log lines written inside carry this upload's id."""
    token = _upload.set(upload_id)
    try:
        yield
    finally:
        _upload.reset(token)


def logs_upload(function: F) -> F:
    """A function whose first argument is an upload (anything with `.id`) logs under its id."""
    @functools.wraps(function)
    def wrapper(upload: Any, *args: Any, **kwargs: Any) -> Any:
        with upload_scope(getattr(upload, "id", None)):
            return function(upload, *args, **kwargs)
    return wrapper  # type: ignore[return-value]
