"""The engine/session factory, the database clock and the declarative base every table uses.

The database is the source of truth for the state of every upload, batch and result; files on disk
follow it. SQLite (one file under data/, WAL, busy timeout) serves a single host; PostgreSQL serves
several processes or hosts when DATABASE_URL names it. Timestamps are naive UTC everywhere so that
both dialects compare them the same way.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool

# Seconds a connection waits for another writer before SQLite reports "database is locked".
SQLITE_BUSY_TIMEOUT_SECONDS = 15

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# The database server's clock as naive UTC. Leases and heartbeats are written and compared by
# processes on several hosts, so they all read this one clock; on SQLite (a single host) the
# clock SQLite reads is that host's.
_DATABASE_NOW = {
    "postgresql": "SELECT timezone('UTC', now())",
    "sqlite": "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')",
}


def database_now(session: Session) -> datetime:
    """The database's current time (naive UTC), read in `session` (on PostgreSQL: its transaction's start)."""
    value = session.scalar(text(_DATABASE_NOW[session.get_bind().dialect.name]))
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def iso(moment: datetime | None) -> str | None:
    """A stored naive-UTC timestamp as ISO 8601 with its zone spelled out."""
    return None if moment is None else moment.isoformat(timespec="milliseconds") + "Z"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while the worker writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# Seconds to wait for a pooled connection: short, so that an exhausted pool answers 503 at once
# instead of holding the request (SQLAlchemy's default is 30 s).
DEFAULT_POOL_TIMEOUT_SECONDS = 3.0


def make_engine(url: str, pool_timeout: float | None = None) -> Engine:
    if url.startswith("postgres://"):  # the scheme some hosting platforms hand out; SQLAlchemy wants the long one
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("sqlite"):
        kwargs: dict[str, Any] = {
            "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        }
        if ":memory:" in url or url.rstrip("/") == "sqlite:":
            kwargs["poolclass"] = StaticPool
        else:
            kwargs["pool_timeout"] = pool_timeout or DEFAULT_POOL_TIMEOUT_SECONDS
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    # pre_ping replaces connections a database restart killed, so the service recovers by itself.
    return create_engine(url, pool_pre_ping=True, pool_recycle=1800, pool_size=5, max_overflow=5,
                         pool_timeout=pool_timeout or DEFAULT_POOL_TIMEOUT_SECONDS,
                         connect_args={"connect_timeout": 5} if url.startswith("postgresql") else {})


class Database:
    def __init__(self, url: str, pool_timeout: float | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, pool_timeout)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Set by migrations_runner.upgrade_to_head once the schema is current in this process.
        self.schema_ready = False
        self.schema_lock = threading.Lock()
        # Set once anonymous access is known to be off (service/access.py): it never turns on again.
        self.anonymous_closed = False

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits nothing by itself and always closes."""
        session = self.sessions()
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def now(self) -> datetime:
        """The database's clock, for a timestamp computed before a session of its own is open."""
        with self.session() as session:
            return database_now(session)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except OperationalError:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
