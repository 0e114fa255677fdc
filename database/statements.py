"""Bank statements a tenant uploaded, their movements, and each receipt's reconciliation state.

A movement is stored once per tenant: its fingerprint (reconciliation/movement.py, a hash of what
the line says) is unique per tenant, so an overlapping re-upload inserts only the new lines. A
credit pays for one receipt: `conciliaciones.movement_id` is set only while the receipt is
`conciliado`, and is unique per tenant, so two processes can never both give one credit away.
"""
from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, Numeric, String, Text, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from database.core import Base, utcnow
from database.models import Result


class BankStatement(Base):
    """One uploaded export: what it is, the days it covers, and what it added."""

    __tablename__ = "statements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(64))
    bank_code: Mapped[str] = mapped_column(String(4))
    account: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    movements_total: Mapped[int] = mapped_column(Integer, default=0)  # lines the file holds
    movements_added: Mapped[int] = mapped_column(Integer, default=0)  # of them, not known before
    credits_total: Mapped[int] = mapped_column(Integer, default=0)  # incoming payments, charges excluded


class StatementMovement(Base):
    """A statement line, as the library read it (amounts exact, always positive)."""

    __tablename__ = "movements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id", ondelete="CASCADE"), index=True)
    line: Mapped[int] = mapped_column(Integer)
    movement_date: Mapped[date] = mapped_column(Date)
    movement_time: Mapped[time | None] = mapped_column(Time)
    reference: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    direction: Mapped[str] = mapped_column(String(8))  # credito | debito
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    balance: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    payer_phone: Mapped[str | None] = mapped_column(String(32))
    payer_cedula: Mapped[str | None] = mapped_column(String(32))
    payer_rif: Mapped[str | None] = mapped_column(String(32))
    payer_bank_code: Mapped[str | None] = mapped_column(String(4))
    is_charge: Mapped[bool] = mapped_column(Boolean, default=False)  # commission, tax, maintenance
    fingerprint: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("tenant_id", "fingerprint", name="uq_movements_tenant_fingerprint"),
        # A receipt's candidates: equal amount, date within the window (one index range per receipt).
        Index("ix_movements_tenant_amount_date", "tenant_id", "amount", "movement_date"),
        Index("ix_movements_tenant_date", "tenant_id", "movement_date"),
    )


class Conciliacion(Base):
    """The reconciliation state of one processed receipt (its upload), recomputed when a
    statement arrives or the receipt is processed or corrected; `evidence` is the document's
    `conciliacion` object as served."""

    __tablename__ = "conciliaciones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), unique=True)
    estado: Mapped[str] = mapped_column(String(16))  # conciliado | ambiguo | no_encontrado | pendiente
    # Set only while `conciliado`: unique per tenant, so one credit pays for one receipt.
    movement_id: Mapped[int | None] = mapped_column(ForeignKey("movements.id", ondelete="SET NULL"))
    candidates: Mapped[list[Any]] = mapped_column(default=list)  # movement ids of an `ambiguo`
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The document's validacion.requiere_revision before reconciliation raised it, so a receipt
    # that stops being `ambiguo` gets its own value back.
    base_requiere_revision: Mapped[bool | None] = mapped_column(Boolean)
    reconciled_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("tenant_id", "movement_id", name="uq_conciliaciones_tenant_movement"),
        Index("ix_conciliaciones_tenant_estado", "tenant_id", "estado"),
    )


# The receipts a credit could pay: equal amount, date within the window (fecha is ISO text).
RESULTS_AMOUNT_DATE_INDEX = Index("ix_results_tenant_monto_fecha", Result.tenant_id, Result.monto, Result.fecha)
# The receipts a new statement's days affect (their state may go from pendiente to no_encontrado).
RESULTS_DATE_INDEX = Index("ix_results_tenant_fecha", Result.tenant_id, Result.fecha)
