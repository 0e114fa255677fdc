"""The service's tables: tenants and their keys, uploads, batches, results, the payment ledger,
rate limits and worker heartbeats."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from config import FIELDS
from database.core import Base, utcnow


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


# The tenant that owns the data of the deployment before tenants existed, the API_KEYS admin keys
# and anonymous local callers: created by migration 0002 with this id.
DEFAULT_TENANT_ID = 1
DEFAULT_TENANT_NAME = "default"


class Role:
    CLIENT = "client"
    ADMIN = "admin"  # its own tenant's admin endpoints; never another tenant's data
    SUPERADMIN = "superadmin"  # every tenant (X-Tenant): API_KEYS keys, anonymous local callers, keys made so
    ALL = (CLIENT, ADMIN, SUPERADMIN)



class Tenant(Base):
    """A customer of the deployment: every upload, batch, result and payment belongs to one."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A key of a tenant, stored only as the SHA-256 of the key (the key itself is shown once)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # client | admin
    name: Mapped[str | None] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the key, so an operator can tell keys apart in `keys list`.
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Upload(Base):
    """One received image: where it is in its life and who holds it."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), default=DEFAULT_TENANT_ID,
                                           server_default=str(DEFAULT_TENANT_ID), index=True)
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
    # The sha256 on the tenant's original of these bytes only (NULL on duplicates): the unique
    # constraint makes "first upload of these bytes" atomic when identical uploads arrive together.
    original_sha256: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Where the image is (image_store.py): "local" (the data directory) or "postgresql" (upload_images).
    # NULL on uploads stored before revision 0007 and by older releases: the local directory.
    image_store: Mapped[str | None] = mapped_column(String(16))
    # For a local image, the id of the data directory holding it (storage.Storage.identity).
    image_host: Mapped[str | None] = mapped_column(String(64))

    # sqlite_autoincrement: SQLite would otherwise hand a purged upload's id to the next one, and the
    # payment ledger (which outlives uploads) would take the new upload for the old one.
    __table_args__ = (Index("ix_uploads_status_id", "status", "id"),
                      UniqueConstraint("tenant_id", "original_sha256", name="uq_uploads_tenant_original"),
                      {"sqlite_autoincrement": True})


class UploadImage(Base):
    """The bytes of an image kept in the database (IMAGE_STORAGE=postgresql), in chunks of at most
    image_store.CHUNK_BYTES: any host reads any upload, and one dump holds rows and images."""

    __tablename__ = "upload_images"

    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Batch(Base):
    """One run of the OCR over a set of uploads: a manual process_batch or a worker round."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), default=DEFAULT_TENANT_ID,
                                           server_default=str(DEFAULT_TENANT_ID), index=True)
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
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), default=DEFAULT_TENANT_ID,
                                           server_default=str(DEFAULT_TENANT_ID), index=True)
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


class Payment(Base):
    """A payment seen on a receipt, remembered for PAYMENT_MEMORY_DAYS whatever the file retention:
    the ledger a later receipt of the same payment is checked against. No foreign key to the
    upload: the upload and its files may be purged long before the payment is forgotten."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    upload_id: Mapped[int] = mapped_column(Integer, unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    bank: Mapped[str | None] = mapped_column(String(128))
    reference: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    payment_date: Mapped[str | None] = mapped_column(String(64))
    upload_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    __table_args__ = (Index("ix_payments_reference_amount", "reference", "amount"),)


class RateLimit(Base):
    """Last time a client was allowed an action (or the start of its counting window, with the
    actions counted in it); shared by every process through the database."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    last_at: Mapped[datetime]
    hits: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


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


