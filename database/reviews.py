"""What people and clients add to an upload after the OCR: corrections of its fields, its review
state, and the idempotency keys of upload requests."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from database.core import Base, utcnow


class ReviewState:
    PENDING = "pendiente"
    APPROVED = "aprobado"
    REJECTED = "rechazado"
    ALL = (PENDING, APPROVED, REJECTED)


class Correction(Base):
    """One field of one upload set by hand: the value before and after, who and when. The latest
    correction of a field is its value; the extracted one stays in the result's campos_detalle."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    campo: Mapped[str] = mapped_column(String(32), index=True)
    anterior: Mapped[str | None] = mapped_column(Text)
    nuevo: Mapped[str | None] = mapped_column(Text)
    por: Mapped[str] = mapped_column(String(160))
    en: Mapped[datetime] = mapped_column(default=utcnow)
    # The staff account that made it (null for an API key); the correction this one undid.
    por_cuenta: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id", ondelete="SET NULL"))
    deshace: Mapped[int | None] = mapped_column(Integer)


class Review(Base):
    """The review state of an upload; an upload without a row is `pendiente`."""

    __tablename__ = "reviews"

    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    estado: Mapped[str] = mapped_column(String(16), default=ReviewState.PENDING)
    nota: Mapped[str | None] = mapped_column(Text)
    por: Mapped[str] = mapped_column(String(160))
    en: Mapped[datetime] = mapped_column(default=utcnow)
    por_cuenta: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id", ondelete="SET NULL"))
    # What the decision was warned of and taken anyway (see database/staff.py ReviewDecision).
    avisos: Mapped[list[Any] | None]

    __table_args__ = (Index("ix_reviews_tenant_estado", "tenant_id", "estado"),)


class IdempotencyKey(Base):
    """An `Idempotency-Key` of an upload request: the row is inserted before the upload is stored,
    so of two requests with one key only one stores anything; the other answers the stored response."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    # NULL while the first request is still storing its upload.
    response: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    __table_args__ = (UniqueConstraint("tenant_id", "key", name="uq_idempotency_tenant_key"),)
