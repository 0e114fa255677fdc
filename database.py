"""Tables and the engine/session factory.

The database is the source of truth for the state of every upload, batch and result; files on disk
follow it. SQLite (one file under data/, WAL, busy timeout) serves a single host; PostgreSQL serves
several processes or hosts when DATABASE_URL names it. Timestamps are naive UTC everywhere so that
both dialects compare them the same way.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from config import FIELDS

logger = logging.getLogger(__name__)

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


class UploadStatus:
    PENDING = "pending"
    PROCESSING = "processing"
    PROCESSED = "processed"
    ERROR = "error"
    FINISHED = (PROCESSED, ERROR)


class BatchState:
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    FINISHED = (COMPLETED, FAILED)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


class Upload(Base):
    """One received image: where it is in its life and who holds it."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stored_name: Mapped[str] = mapped_column(String(255), unique=True)
    original_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    image_format: Mapped[str | None] = mapped_column(String(16))
    # "metadata" is reserved on declarative classes; the column keeps the public name.
    upload_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    source: Mapped[str] = mapped_column(String(16), default="upload")  # upload | inbox
    status: Mapped[str] = mapped_column(String(16), default=UploadStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    duplicado_de: Mapped[int | None] = mapped_column(ForeignKey("uploads.id", ondelete="SET NULL"), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)

    __table_args__ = (Index("ix_uploads_status_id", "status", "id"),)


class Batch(Base):
    """One run of the OCR over a set of uploads: a manual process_batch or a worker round."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # manual | worker
    profile: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(16), default="spa")
    include_coordinates: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(16), default=BatchState.QUEUED, index=True)
    client_key: Mapped[str | None] = mapped_column(String(128))
    # A manual batch covers the uploads pending when it was requested: ids up to this one.
    cutoff_upload_id: Mapped[int | None] = mapped_column(Integer)
    total_files: Mapped[int] = mapped_column(Integer, default=0)
    processed_count: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    processing_time: Mapped[float | None] = mapped_column(Float)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    error_message: Mapped[str | None] = mapped_column(Text)


# The extracted fields stored as text columns (monto is numeric): every field of config.FIELDS.
RESULT_TEXT_FIELDS = tuple(name for name in FIELDS if name != "monto")


class Result(Base):
    """The per-image document, whole as JSON, with the extracted fields as columns for queries."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), unique=True)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255), index=True)
    processing_status: Mapped[str] = mapped_column(String(16))
    monto: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    referencia: Mapped[str | None] = mapped_column(String(64), index=True)
    telefono: Mapped[str | None] = mapped_column(String(32), index=True)
    cedula: Mapped[str | None] = mapped_column(String(32), index=True)
    fecha: Mapped[str | None] = mapped_column(String(64))
    banco_origen: Mapped[str | None] = mapped_column(String(128))
    banco_destino: Mapped[str | None] = mapped_column(String(128))
    concepto: Mapped[str | None] = mapped_column(String(255))
    beneficiario: Mapped[str | None] = mapped_column(String(255))
    cuenta_origen: Mapped[str | None] = mapped_column(String(64))
    cuenta_destino: Mapped[str | None] = mapped_column(String(64))
    tipo_transaccion: Mapped[str | None] = mapped_column(String(128))
    hora_operacion: Mapped[str | None] = mapped_column(String(32))
    identificador_fiscal: Mapped[str | None] = mapped_column(String(32))
    comprobante: Mapped[str | None] = mapped_column(String(64))
    canal_pago: Mapped[str | None] = mapped_column(String(128))
    confidence_average: Mapped[float | None] = mapped_column(Float)
    coordinates_available: Mapped[int | None] = mapped_column(Integer)
    text_length: Mapped[int | None] = mapped_column(Integer)
    profile_used: Mapped[str | None] = mapped_column(String(64))
    processing_time: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    document: Mapped[dict[str, Any]]


class RateLimit(Base):
    """Last time a client was allowed an action; shared by every process through the database."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    last_at: Mapped[datetime]


class WorkerState(Base):
    """Heartbeat of a worker process, so any web process can tell whether one is alive and ready."""

    __tablename__ = "workers"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # starting | ready | stopped
    models_loaded: Mapped[list[Any]] = mapped_column(default=list)
    cache_stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rss_bytes: Mapped[int | None] = mapped_column(BigInteger)
    images_processed: Mapped[int] = mapped_column(Integer, default=0)
    batches_processed: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while the worker writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("postgres://"):  # the scheme some hosting platforms hand out; SQLAlchemy wants the long one
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("sqlite"):
        kwargs: dict[str, Any] = {
            "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        }
        if ":memory:" in url or url.rstrip("/") == "sqlite:":
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    # pre_ping replaces connections a database restart killed, so the service recovers by itself.
    return create_engine(url, pool_pre_ping=True, pool_recycle=1800, pool_size=5, max_overflow=5,
                         connect_args={"connect_timeout": 5} if url.startswith("postgresql") else {})


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Set by migrations_runner.upgrade_to_head once the schema is current in this process.
        self.schema_ready = False
        self.schema_lock = threading.Lock()

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
