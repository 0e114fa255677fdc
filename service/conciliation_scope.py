"""Which receipts and credits one reconciliation run must look at: one *component* per amount.

A receipt's state depends only on the credits of exactly its amount within the date window, and
on the other receipts of that amount that could take those credits, and so on: the receipts and
credits of one amount whose dates chain together within the window. Each component is found with
index range queries (`ix_movements_tenant_amount_date`, `ix_results_tenant_monto_fecha`), never
a scan of every movement. A statement touching thousands of receipts prefetches the days around
it in two range queries instead, and queries one amount alone only when its chain leaves them.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from database import Result, StatementMovement
from reconciliation import CREDIT, Receipt

# A component whose dates keep chaining past this many rounds is cut there (a safety bound; with
# a window of days it takes months of daily receipts of one amount, each a day from the next).
MAX_EXPANSION_ROUNDS = 12
PREFETCH_MARGIN_WINDOWS = 4  # days around a statement's period prefetched, in windows

RECEIPT_COLUMNS = (Result.upload_id, Result.monto, Result.fecha, Result.referencia, Result.telefono, Result.cedula,
                   Result.banco_origen, Result.banco_destino)


def receipt_of(row: Any) -> Receipt:
    fields = {"monto": None if row.monto is None else f"{row.monto:.2f}", "fecha": (row.fecha or "")[:10] or None,
              "referencia": row.referencia, "telefono": row.telefono, "cedula": row.cedula,
              "banco_origen": row.banco_origen, "banco_destino": row.banco_destino}
    return Receipt.from_fields(row.upload_id, fields)


@dataclass
class Component:
    receipts: dict[int, Any]  # upload id -> receipt row
    credits: dict[int, StatementMovement]  # movement id -> row


def _credit_query(tenant_id: int) -> Any:
    return select(StatementMovement).where(StatementMovement.tenant_id == tenant_id,
                                           StatementMovement.direction == CREDIT, StatementMovement.is_charge.is_(False))


def _receipt_query(tenant_id: int) -> Any:
    return select(*RECEIPT_COLUMNS).where(Result.tenant_id == tenant_id, Result.processing_status == "success")


def _fecha_between(first: date, last: date) -> Any:
    # fecha is ISO text: a range of days is a range of strings.
    return (Result.fecha >= first.isoformat(), Result.fecha < (last + timedelta(days=1)).isoformat())


class _Database:
    """Credits and receipts of one amount, asked of the database (one range query each)."""

    def __init__(self, session: Any, tenant_id: int) -> None:
        self.session, self.tenant_id = session, tenant_id

    def credits(self, amount: Decimal, first: date, last: date) -> list[StatementMovement]:
        return list(self.session.scalars(_credit_query(self.tenant_id).where(
            StatementMovement.amount == amount, StatementMovement.movement_date >= first,
            StatementMovement.movement_date <= last)))

    def receipts(self, amount: Decimal, first: date, last: date) -> list[Any]:
        return list(self.session.execute(_receipt_query(self.tenant_id).where(
            Result.monto == amount, *_fecha_between(first, last))))


class _Prefetched(_Database):
    """Every credit and receipt of the days around a period, grouped by amount; what lies
    outside those days is asked of the database."""

    def __init__(self, session: Any, tenant_id: int, first: date, last: date, window: timedelta) -> None:
        super().__init__(session, tenant_id)
        margin = window * PREFETCH_MARGIN_WINDOWS
        self.first, self.last = first - margin, last + margin
        self.by_amount: dict[Decimal, list[StatementMovement]] = defaultdict(list)
        for row in session.scalars(_credit_query(tenant_id).where(
                StatementMovement.movement_date >= self.first, StatementMovement.movement_date <= self.last)):
            self.by_amount[row.amount].append(row)
        self.receipts_by_amount: dict[Decimal, list[Any]] = defaultdict(list)
        for row in session.execute(_receipt_query(tenant_id).where(*_fecha_between(self.first, self.last))):
            if row.monto is not None:
                self.receipts_by_amount[row.monto].append(row)

    def credits(self, amount: Decimal, first: date, last: date) -> list[StatementMovement]:
        if first < self.first or last > self.last:
            return super().credits(amount, first, last)
        return [c for c in self.by_amount.get(amount, ()) if first <= c.movement_date <= last]

    def receipts(self, amount: Decimal, first: date, last: date) -> list[Any]:
        if first < self.first or last > self.last:
            return super().receipts(amount, first, last)
        low, high = first.isoformat(), (last + timedelta(days=1)).isoformat()
        return [r for r in self.receipts_by_amount.get(amount, ()) if low <= (r.fecha or "") < high]


def _component(source: _Database, amount: Decimal, low: date, high: date, window: timedelta) -> Component:
    """The receipts and credits of `amount` whose dates chain, within the window, to [low, high]."""
    receipts: dict[int, Any] = {}
    credits: dict[int, StatementMovement] = {}
    for _ in range(MAX_EXPANSION_ROUNDS):
        credits.update((c.id, c) for c in source.credits(amount, low - window, high + window))
        days = [low, high, *(c.movement_date for c in credits.values())]
        receipts.update((r.upload_id, r) for r in source.receipts(amount, min(days) - window, max(days) + window))
        dates = [d for d in (receipt_of(r).fecha for r in receipts.values()) if d]
        new_low, new_high = min([low, *dates]), max([high, *dates])
        if (new_low, new_high) == (low, high):
            break
        low, high = new_low, new_high
    return Component(receipts, credits)


def components_for(session: Any, tenant_id: int, rows: list[Any], window: timedelta,
                   also: list[tuple[Decimal, date]] = (), period: tuple[date, date] | None = None,
                   ) -> tuple[list[Component], list]:
    """One component per amount around these receipt rows (and these (amount, day) seeds); the
    receipts without amount or date apart. `period`: prefetch the days around it."""
    by_amount: dict[Decimal, list[date]] = defaultdict(list)
    loose = []
    for row in rows:
        receipt = receipt_of(row)
        if receipt.monto is None or receipt.fecha is None:
            loose.append(row)
        else:
            by_amount[row.monto].append(receipt.fecha)
    for amount, day in also:
        by_amount[amount].append(day)
    source = _Prefetched(session, tenant_id, *period, window) if period else _Database(session, tenant_id)
    components = [_component(source, amount, min(days), max(days), window) for amount, days in by_amount.items()]
    return components, loose  # one per amount: components of different amounts never share a row


def previous_seeds(evidence: dict | None) -> list[tuple[Decimal, date]]:
    """(amount, day) of the credits a receipt's previous state named: after a correction or a
    reprocessing, the receipts that competed with it for them are decided again."""
    found = []
    evidence = evidence or {}
    movements = [evidence.get("movimiento"), (evidence.get("reutilizacion") or {}).get("movimiento"),
                 *(c.get("movimiento") for c in evidence.get("candidatos", ()))]
    for movement in movements:
        try:
            found.append((Decimal(movement["monto"]), date.fromisoformat(movement["fecha"])))
        except (TypeError, KeyError, ValueError, ArithmeticError):
            continue
    return found
