"""Storing a bank statement export: parsed by the reconciliation library, stored with its
movements, and the tenant's receipts reconciled against it, all in one transaction.

A movement already stored for the tenant (same fingerprint, from an overlapping earlier export)
is skipped by the database itself (INSERT ... ON CONFLICT DO NOTHING on both dialects), so two
overlapping uploads arriving together still store each line once.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from database import BankStatement, StatementMovement
from reconciliation import ESTADOS, Statement
from reconciliation.sandbox import parse_in_child
from reconciliation.spec import FormatSpec
from service.conciliation import lock_tenant, reconcile_period, specs_in, write_files
from service.runtime import Runtime

INSERT_CHUNK = 1000  # rows per executemany


@dataclass(frozen=True)
class StoredStatement:
    statement: BankStatement
    outcome: dict[str, int]  # receipts reconciled by this upload, by state


def formats(rt: Runtime) -> dict[str, FormatSpec]:
    return specs_in(str(rt.settings["STATEMENT_FORMATS_DIR"]))


def parse(rt: Runtime, data: bytes, format_id: str) -> Statement:
    """The export's movements (StatementError naming the line otherwise); CPU only, no database.
    Run in a child process within STATEMENT_PARSE_MEMORY_MB and STATEMENT_PARSE_TIMEOUT_SECONDS
    (reconciliation/sandbox.py): a hostile file costs that child, never the web process."""
    settings = rt.settings
    return parse_in_child(data, format_id, settings["STATEMENT_FORMATS_DIR"], settings["STATEMENT_PARSE_MEMORY_MB"],
                          settings["STATEMENT_PARSE_TIMEOUT_SECONDS"])


def _movement_rows(tenant_id: int, statement_id: int, parsed: Statement) -> list[dict[str, Any]]:
    return [{"tenant_id": tenant_id, "statement_id": statement_id, "line": m.line, "movement_date": m.date,
             "movement_time": m.time, "reference": m.reference, "description": m.description,
             "direction": m.direction, "amount": m.amount, "balance": m.balance, "payer_phone": m.payer_phone,
             "payer_cedula": m.payer_cedula, "payer_rif": m.payer_rif, "payer_bank_code": m.payer_bank_code,
             "is_charge": m.is_commission, "fingerprint": m.fingerprint} for m in parsed.movements]


def _insert_new(session: Any, rows: list[dict[str, Any]]) -> None:
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # One statement compiled once, the rows as executemany parameters (batched into multi-row
    # INSERTs by SQLAlchemy's insertmanyvalues on both dialects).
    statement = insert(StatementMovement).on_conflict_do_nothing(index_elements=["tenant_id", "fingerprint"])
    for start in range(0, len(rows), INSERT_CHUNK):
        session.execute(statement, rows[start:start + INSERT_CHUNK])


def store_statement(rt: Runtime, tenant_id: int, filename: str, data: bytes, parsed: Statement) -> StoredStatement:
    covers = parsed.covers
    with rt.db.session() as session:
        # Taken before the inserts, so the reconciliation below sees the movements of every
        # statement committed before this one, and one committed after sees these.
        lock_tenant(session, tenant_id)
        stored = BankStatement(
            tenant_id=tenant_id, format=parsed.format_id, bank_code=parsed.bank_code, account=parsed.account,
            filename=filename[:255], sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
            period_start=covers[0] if covers else None, period_end=covers[1] if covers else None,
            movements_total=len(parsed.movements),
            credits_total=sum(1 for m in parsed.movements if m.is_credit and not m.is_commission))
        session.add(stored)
        session.flush()
        _insert_new(session, _movement_rows(tenant_id, stored.id, parsed))
        stored.movements_added = session.scalar(
            select(func.count()).select_from(StatementMovement).where(StatementMovement.statement_id == stored.id))
        files: list[tuple[str, dict]] = []
        states: Counter = reconcile_period(rt, session, tenant_id, *covers, files) if covers else Counter()
        session.commit()
    write_files(rt, files)
    return StoredStatement(stored, {estado: states.get(estado, 0) for estado in ESTADOS})
