"""Per-key limits on the expensive requests: streamed exports and statement parses at once."""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any, Callable

from flask import Response

from api.errors import ApiError
from api.inputs import client_key, runtime
from service.rate_limit import ConcurrencyLimit

RETRY_AFTER_SECONDS = 5
EXPORTS = ConcurrencyLimit()
STATEMENTS = ConcurrencyLimit()


def _refused(what: str, limit: int) -> ApiError:
    return ApiError(429, "too_many_concurrent", f"At most {limit} {what} at once per key; retry when one ends",
                    retry_after=RETRY_AFTER_SECONDS)


def limited_stream(build: Callable[[], Response]) -> Response:
    """The streamed export `build()` makes, counted against the caller's EXPORT_CONCURRENCY_PER_KEY
    until it closes (the client read it all, or went away)."""
    limit = runtime().settings["EXPORT_CONCURRENCY_PER_KEY"]
    client = client_key()
    if not EXPORTS.acquire(client, limit):
        raise _refused("exports", limit)
    released = threading.Event()

    def release() -> None:  # once: at the body's end or when the response closes, whichever is first
        if not released.is_set():
            released.set()
            EXPORTS.release(client)

    try:
        response = build()
    except BaseException:
        release()
        raise
    response.response = _then(response.response, release)
    response.call_on_close(release)
    return response


def _then(body: Iterable[Any], done: Callable[[], None]) -> Iterator[Any]:
    try:
        yield from body
    finally:
        done()


def statement_slot() -> str:
    """Take one of the caller's STATEMENT_CONCURRENCY_PER_KEY slots (429 when none is free); give it
    back with STATEMENTS.release(the returned client)."""
    limit = runtime().settings["STATEMENT_CONCURRENCY_PER_KEY"]
    client = client_key()
    if not STATEMENTS.acquire(client, limit):
        raise _refused("statements", limit)
    return client
