"""Read-only questions about statements and reconciliation, always for one tenant: the statements,
a statement's movements with the receipt each one pays, credits with no receipt, the day summary."""
from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select

from database import BankStatement, Conciliacion, Result, StatementMovement, Upload, iso
from reconciliation import CREDIT, ESTADOS
from service.queries import Page, _page
from service.runtime import Runtime


def statements_page(rt: Runtime, tenant_id: int, limit: int, after_id: int = 0) -> Page:
    with rt.db.session() as session:
        page = _page(session, select(BankStatement.id, BankStatement).where(BankStatement.tenant_id == tenant_id),
                     BankStatement.id, after_id, limit)
    return Page(rows=[row[1] for row in page.rows], last_id=page.last_id)


def statement_of(rt: Runtime, tenant_id: int, statement_id: int) -> BankStatement | None:
    with rt.db.session() as session:
        return session.scalar(select(BankStatement).where(BankStatement.id == statement_id,
                                                          BankStatement.tenant_id == tenant_id))


def _with_receipt() -> Any:
    """Movements with the receipt (upload) each one conciliates, if any."""
    return (select(StatementMovement.id, StatementMovement, Upload.id.label("upload_id"), Upload.stored_name)
            .outerjoin(Conciliacion, and_(Conciliacion.movement_id == StatementMovement.id,
                                          Conciliacion.tenant_id == StatementMovement.tenant_id))
            .outerjoin(Upload, Upload.id == Conciliacion.upload_id))


def movements_page(rt: Runtime, tenant_id: int, statement_id: int, limit: int, after_id: int = 0) -> Page:
    query = _with_receipt().where(StatementMovement.tenant_id == tenant_id, StatementMovement.statement_id == statement_id)
    with rt.db.session() as session:
        return _page(session, query, StatementMovement.id, after_id, limit)


def unmatched_credits_page(rt: Runtime, tenant_id: int, limit: int, after_id: int = 0,
                           first: date | None = None, last: date | None = None) -> Page:
    """Money that arrived with no receipt: credits (charges aside) no receipt conciliates."""
    query = _with_receipt().where(StatementMovement.tenant_id == tenant_id, StatementMovement.direction == CREDIT,
                                  StatementMovement.is_charge.is_(False), Conciliacion.id.is_(None))
    if first:
        query = query.where(StatementMovement.movement_date >= first)
    if last:
        query = query.where(StatementMovement.movement_date <= last)
    with rt.db.session() as session:
        return _page(session, query, StatementMovement.id, after_id, limit)


def movement_entry(row: StatementMovement) -> dict[str, Any]:
    return {"id": row.id, "extracto": row.statement_id, "linea": row.line, "fecha": row.movement_date.isoformat(),
            "hora": row.movement_time.strftime("%H:%M") if row.movement_time else None, "referencia": row.reference,
            "descripcion": row.description, "tipo": row.direction, "monto": f"{row.amount:.2f}",
            "saldo": None if row.balance is None else f"{row.balance:.2f}", "telefono_pagador": row.payer_phone,
            "cedula_pagador": row.payer_cedula, "rif_pagador": row.payer_rif, "banco_pagador": row.payer_bank_code,
            "comision": row.is_charge, "huella": row.fingerprint}


def _cents(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def daily_summary(rt: Runtime, tenant_id: int, first: date, last: date) -> list[dict[str, Any]]:
    """Per day from `first` to `last`: credits received and matched (count and money), credits with
    no receipt, and the tenant's receipts of that date by reconciliation state."""
    def empty() -> dict[str, Any]:
        return {"creditos_recibidos": 0, "monto_recibido": Decimal("0.00"), "creditos_conciliados": 0,
                "monto_conciliado": Decimal("0.00"), "creditos_sin_recibo": 0, "monto_sin_recibo": Decimal("0.00"),
                "recibos": 0, **{f"recibos_{estado}": 0 for estado in ESTADOS}}

    days: dict[str, dict[str, Any]] = defaultdict(empty)
    with rt.db.session() as session:
        credits = session.execute(
            select(StatementMovement.movement_date, StatementMovement.amount, Conciliacion.id)
            .outerjoin(Conciliacion, Conciliacion.movement_id == StatementMovement.id)
            .where(StatementMovement.tenant_id == tenant_id, StatementMovement.direction == CREDIT,
                   StatementMovement.is_charge.is_(False), StatementMovement.movement_date >= first,
                   StatementMovement.movement_date <= last))
        for day, amount, matched in credits:
            entry = days[day.isoformat()]
            amount = _cents(amount)
            entry["creditos_recibidos"] += 1
            entry["monto_recibido"] += amount
            key = "conciliado" if matched is not None else "sin_recibo"
            entry["creditos_conciliados" if matched is not None else "creditos_sin_recibo"] += 1
            entry[f"monto_{key}"] += amount
        receipts = session.execute(
            select(func.substr(Result.fecha, 1, 10), Conciliacion.estado)
            .outerjoin(Conciliacion, Conciliacion.upload_id == Result.upload_id)
            .where(Result.tenant_id == tenant_id, Result.processing_status == "success",
                   Result.fecha >= first.isoformat(), Result.fecha < f"{last.isoformat()}~"))
        for day, estado in receipts:
            entry = days[day]
            entry["recibos"] += 1
            entry[f"recibos_{estado or 'pendiente'}"] += 1
    return [{"fecha": day, **{k: (f"{v:.2f}" if isinstance(v, Decimal) else v) for k, v in values.items()}}
            for day, values in sorted(days.items())]


def statement_entry(row: BankStatement) -> dict[str, Any]:
    return {"id": row.id, "formato": row.format, "banco": row.bank_code, "cuenta": row.account,
            "archivo": row.filename, "sha256": row.sha256, "tamano_bytes": row.size_bytes,
            "subido_en": iso(row.uploaded_at),
            "desde": row.period_start.isoformat() if row.period_start else None,
            "hasta": row.period_end.isoformat() if row.period_end else None,
            "movimientos": row.movements_total, "movimientos_nuevos": row.movements_added,
            "movimientos_conocidos": row.movements_total - row.movements_added, "creditos": row.credits_total}
