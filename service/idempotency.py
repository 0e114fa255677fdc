"""`Idempotency-Key` of upload requests: the same key with the same body within 24 h answers the
first response and stores nothing new; with another body it is refused.

The key's row is inserted (unique per tenant and key) before anything is stored, so of two
requests with one key arriving together exactly one goes on; the other waits for the first's
response, or for its failure (the row is then removed and it tries again).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from database import IdempotencyKey, utcnow
from service.runtime import Runtime

logger = logging.getLogger(__name__)

IDEMPOTENCY_TTL = timedelta(hours=24)
# How long a request waits for another one holding the same key to finish its upload.
WAIT_SECONDS = 30.0
POLL_SECONDS = 0.1
# A key still without a response after this long belongs to a request that died (longer than any
# upload request may run: WEB_TIMEOUT_SECONDS is at most a few minutes).
ABANDONED_AFTER = timedelta(minutes=15)


class KeyReused(Exception):
    """The key was used within 24 h for a request with another body."""


class KeyInProgress(Exception):
    """The first request with the key is still storing its upload."""


def fingerprint(metadata: dict[str, Any], files: list[tuple[str, str]], callback_url: str | None = None) -> str:
    """sha256 over the metadata, each file's name and sha256 in order, and the upload's own
    callback URL when it has one (a retry told to call elsewhere is another request)."""
    body: dict[str, Any] = {"metadata": metadata, "files": [list(f) for f in files]}
    if callback_url is not None:  # absent from the body otherwise: earlier keys keep their fingerprint
        body["callback_url"] = callback_url
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def begin(rt: Runtime, tenant_id: int, key: str, print_: str) -> dict[str, Any] | None:
    """None when this request holds the key now (store, then `finish` or `abandon`); otherwise the
    first request's response to answer again. Raises KeyReused, KeyInProgress."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with rt.db.session() as session:
            try:
                session.add(IdempotencyKey(tenant_id=tenant_id, key=key, fingerprint=print_))
                session.commit()
                return None
            except IntegrityError:
                session.rollback()
            found = session.scalar(select(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id,
                                                                IdempotencyKey.key == key))
            now = utcnow()
            if found is not None and (found.created_at < now - IDEMPOTENCY_TTL or (
                    found.response is None and found.created_at < now - ABANDONED_AFTER)):
                # Expired but not purged yet, or left by a process that died before storing
                # anything (the response commits with the upload): the key is free again.
                session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == found.id))
                session.commit()
                continue
            if found is not None:
                if found.fingerprint != print_:
                    raise KeyReused(key)
                if found.response is not None:
                    return found.response
        if time.monotonic() > deadline:
            raise KeyInProgress(key)
        time.sleep(POLL_SECONDS)


def record_response(session: Any, tenant_id: int, key: str, response: dict[str, Any]) -> None:
    """The key's response, written in the transaction that stores the upload: both or neither."""
    session.execute(update(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key)
                    .values(response=response))


def abandon(rt: Runtime, tenant_id: int, key: str) -> None:
    """The request stored nothing: the key may be used again (a waiting request then goes on).
    Never raises: the request's own error is the one to answer (a row left behind is freed after
    ABANDONED_AFTER)."""
    try:
        with rt.db.session() as session:
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id,
                                                         IdempotencyKey.key == key, IdempotencyKey.response.is_(None)))
            session.commit()
    except Exception as exc:  # noqa: BLE001 - see above
        logger.warning("Idempotency key not released: %s", type(exc).__name__)


def purge_expired(session: Any) -> int:
    """Forget keys older than 24 h (housekeeping)."""
    return session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - IDEMPOTENCY_TTL)).rowcount
