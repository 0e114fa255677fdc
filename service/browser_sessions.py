"""Server-side records of the review desk's browser sessions.

The cookie carries a random token; the table keeps its SHA-256, whose session it is (a staff
account or an API key's digest) and until when it lives. Signing out ends the row, so a saved
cookie and CSRF token are worth nothing afterwards; disabling an account or resetting its password
ends all of its rows; a revoked key fails the key check made on every request. A session's
lifetime slides with use, written at most once a minute so reading pages is not a write each time.

Every function lets database errors through: the caller answers 503, never lets the request in.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from database import BrowserSession, Database, StaffAccount, utcnow

TOUCH_EVERY = timedelta(minutes=1)
# Ended and expired rows are deleted when a new session opens, this long after they ended.
KEEP_ENDED = timedelta(days=1)


@dataclass(frozen=True)
class LiveSession:
    token_hash: str
    staff_id: int | None
    key_digest: str | None
    tenant_id: int | None  # the staff account's tenant
    staff_role: str | None
    display_name: str | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def open_session(db: Database, lifetime: timedelta, staff_id: int | None = None, key_digest: str | None = None) -> str:
    """A new session's token (to put in the cookie; only its hash is stored)."""
    if (staff_id is None) == (key_digest is None):
        raise ValueError("a session is a staff account's or a key's")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with db.session() as session:
        session.execute(delete(BrowserSession).where(BrowserSession.expires_at < now - KEEP_ENDED))
        session.add(BrowserSession(token_hash=token_hash(token), staff_id=staff_id, key_digest=key_digest,
                                   created_at=now, last_seen_at=now, expires_at=now + lifetime))
        session.commit()
    return token


def live_session(db: Database, token: str, lifetime: timedelta) -> LiveSession | None:
    """The session of this token if it has not ended or expired (and its account is enabled)."""
    digest = token_hash(token)
    now = utcnow()
    with db.session() as session:
        row = session.execute(
            select(BrowserSession, StaffAccount)
            .outerjoin(StaffAccount, StaffAccount.id == BrowserSession.staff_id)
            .where(BrowserSession.token_hash == digest, BrowserSession.ended_at.is_(None),
                   BrowserSession.expires_at > now)).first()
        if row is None:
            return None
        record, account = row
        if record.staff_id is not None and (account is None or account.disabled_at is not None):
            return None
        if now - record.last_seen_at >= TOUCH_EVERY:
            session.execute(update(BrowserSession).where(BrowserSession.token_hash == digest)
                            .values(last_seen_at=now, expires_at=now + lifetime))
            session.commit()
        return LiveSession(digest, record.staff_id, record.key_digest, account.tenant_id if account else None,
                           account.role if account else None, account.display_name if account else None)


def end_session(db: Database, token: str) -> None:
    with db.session() as session:
        session.execute(update(BrowserSession).where(BrowserSession.token_hash == token_hash(token),
                                                     BrowserSession.ended_at.is_(None)).values(ended_at=utcnow()))
        session.commit()


def end_sessions_of_staff(session: Session, staff_id: int, at: datetime | None = None) -> None:
    """Inside the caller's transaction: every session of the account ends with it."""
    session.execute(update(BrowserSession).where(BrowserSession.staff_id == staff_id, BrowserSession.ended_at.is_(None))
                    .values(ended_at=at or utcnow()))


def end_sessions_of_key(db: Database, key_digest: str) -> None:
    with db.session() as session:
        session.execute(update(BrowserSession).where(BrowserSession.key_digest == key_digest,
                                                     BrowserSession.ended_at.is_(None)).values(ended_at=utcnow()))
        session.commit()
