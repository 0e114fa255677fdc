"""Receipts against the tenant's stored bank statements: the `conciliacion` of every processed receipt.

The matching itself is the reconciliation library's (a pure function of receipts and credits);
this module chooses what to give it and stores what it says. A receipt's state depends only on the
credits of exactly its amount within the date window, and on the other receipts of that amount
that could take those credits. So each run works on one such *component* per amount: the
receipts and credits of that amount whose dates chain together within the window, found with
index range queries (`ix_movements_tenant_amount_date`, `ix_results_tenant_monto_fecha`), never a
scan of every movement. Receipts are given in upload order, so "the first presentation keeps the
credit" does not depend on which process ran first, and running again changes nothing.

Runs of one tenant are serialized (a PostgreSQL advisory lock; on SQLite the write that opens
the transaction holds the single write lock), and `conciliaciones.movement_id` is unique per
tenant as the last guard: one credit pays for one receipt even under concurrency.
"""
from __future__ import annotations

import copy
import hashlib
import logging
from collections import Counter, defaultdict
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from database import BankStatement, Conciliacion, Result, StatementMovement, Tenant, Upload, utcnow
from reconciliation import MatchSettings, Movement, Statement, reconcile
from reconciliation.spec import FormatSpec, load_specs
from service.conciliation_scope import RECEIPT_COLUMNS, Component, components_for, previous_seeds, receipt_of
from service.runtime import Runtime
from service.webhooks import enqueue_upload_events

logger = logging.getLogger(__name__)

RETRIES = 3


@lru_cache(maxsize=4)
def specs_in(directory: str) -> dict[str, FormatSpec]:
    """The formats of STATEMENT_FORMATS_DIR, read once per process (a change needs a restart)."""
    return load_specs(directory)


def window_of(rt: Runtime) -> timedelta:
    return timedelta(days=rt.settings["RECONCILIATION_DATE_WINDOW_DAYS"])


def lock_tenant(session: Any, tenant_id: int) -> None:
    """Serialize the reconciliation runs of one tenant until this transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(f"conciliacion|{tenant_id}".encode()).digest()[:8]
        session.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest, "big", signed=True))))
    else:  # a write first: SQLite's one write lock is then held, and every read after it is current
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(name=Tenant.name))


# --- what the library is given -----------------------------------------------------------------
def _library_movement(row: StatementMovement) -> Movement:
    return Movement(line=row.line, date=row.movement_date, time=row.movement_time, reference=row.reference,
                    description=row.description, direction=row.direction, amount=row.amount, balance=row.balance,
                    payer_phone=row.payer_phone, payer_cedula=row.payer_cedula, payer_rif=row.payer_rif,
                    payer_bank_code=row.payer_bank_code, is_commission=row.is_charge, fingerprint=row.fingerprint)


def _stored_statements(session: Any, tenant_id: int) -> list[BankStatement]:
    return list(session.scalars(select(BankStatement).where(BankStatement.tenant_id == tenant_id)
                                .order_by(BankStatement.id)))


def _statements(specs: dict[str, FormatSpec], stored_statements: list[BankStatement],
                credits: list[StatementMovement]) -> list[Statement]:
    """Every stored statement of the tenant (their spans decide `pendiente` / `no_encontrado`),
    each holding the component's credits it brought."""
    by_statement: dict[int, list[Movement]] = defaultdict(list)
    for row in credits:
        by_statement[row.statement_id].append(_library_movement(row))
    statements = []
    for stored in stored_statements:
        spec = specs.get(stored.format)
        statements.append(Statement(
            format_id=stored.format, bank_code=stored.bank_code, account=stored.account,
            movements=tuple(by_statement.get(stored.id, ())), period_start=stored.period_start,
            period_end=stored.period_end,
            reference_suffix_length=spec.reference_suffix_length if spec else 8,
            internal_reference_prefixes=spec.internal_reference_prefixes if spec else ()))
    return statements


# --- what is stored --------------------------------------------------------------------------------
def _with_ids(conciliacion: dict, ids: dict[str, tuple[int, int]]) -> dict:
    """The library's result with each movement's stored id and statement (`id`, `extracto`)."""
    def mark(movement: dict | None) -> None:
        if movement and movement.get("huella") in ids:
            movement["id"], movement["extracto"] = ids[movement["huella"]]

    result = copy.deepcopy(conciliacion)
    mark(result.get("movimiento"))
    for candidate in result.get("candidatos", ()):
        mark(candidate.get("movimiento"))
    mark((result.get("reutilizacion") or {}).get("movimiento"))
    return result


def _store(session: Any, tenant_id: int, outcomes: dict[int, dict], force: frozenset[int],
           files: list[tuple[str, dict]]) -> None:
    """Write each receipt's new state: its row and its document, and add its result file to
    `files`; unchanged ones are left alone, except those in `force` (a document just written by
    the worker or a correction)."""
    existing = {row.upload_id: row for row in session.scalars(
        select(Conciliacion).where(Conciliacion.upload_id.in_(list(outcomes))))}
    changed = {uid: new for uid, new in outcomes.items()
               if uid in force or uid not in existing or existing[uid].evidence != new}
    if not changed:
        return
    # Credits changing hands: free them all first, so the unique constraint never sees a credit twice.
    freed = False
    for uid, new in changed.items():
        row = existing.get(uid)
        if row is not None and row.movement_id is not None and row.movement_id != _movement_id(new):
            row.movement_id = None
            freed = True
    if freed:
        session.flush()
    # FOR UPDATE (PostgreSQL; SQLite's write lock is already held): a document is read, changed
    # and written back, and the reuse check of a receipt finishing now may be changing it too.
    results = {r.upload_id: r for r in session.scalars(
        select(Result).where(Result.upload_id.in_(list(changed))).order_by(Result.upload_id).with_for_update())}
    now = utcnow()
    moved: list[int] = []
    for uid, new in changed.items():
        result = results.get(uid)
        if result is None:
            continue
        document = copy.deepcopy(result.document)
        if _told_state(document.get("conciliacion")) != _told_state(new):
            moved.append(uid)
        validacion = document.setdefault("validacion", {})
        current = bool(validacion.get("requiere_revision"))
        row = existing.get(uid)
        if row is None:
            row = Conciliacion(tenant_id=tenant_id, upload_id=uid, base_requiere_revision=current)
            session.add(row)
        elif document.get("conciliacion") is None or current != (
                bool(row.base_requiere_revision) or bool((row.evidence or {}).get("requiere_revision"))):
            # A document fresh from the OCR, or one whose flag someone else (a correction) set
            # since the last run: its flag is the base reconciliation may raise.
            row.base_requiere_revision = current
        row.estado, row.movement_id, row.evidence, row.reconciled_at = new["estado"], _movement_id(new), new, now
        row.candidates = [c["movimiento"].get("id") for c in new.get("candidatos", ())]
        document["conciliacion"] = new
        validacion["requiere_revision"] = bool(row.base_requiere_revision) or bool(new.get("requiere_revision"))
        result.document = document
    session.flush()
    _announce(session, [(uid, results[uid].document) for uid in moved])
    files.extend((results[uid].filename, results[uid].document) for uid in changed if uid in results)


def _told_state(conciliacion: dict | None) -> tuple:
    """What upload.reconciled announces a change of: the state and the credits it names. Compared
    with the document's previous `conciliacion`, the one the receipt's last event carried; a
    receipt not reconciled yet (null) counts as `pendiente`, so a fresh receipt no statement covers
    yet adds no event to its upload.processed, and a run that finds the same match adds none."""
    if not conciliacion:
        return ("pendiente", None, ())
    candidates = tuple((c.get("movimiento") or {}).get("id") for c in conciliacion.get("candidatos", ()))
    return (conciliacion.get("estado"), _movement_id(conciliacion), candidates)


def _announce(session: Any, documents: list[tuple[int, dict]]) -> None:
    """upload.reconciled for each receipt whose state changed, in the transaction that stores it."""
    if not documents:
        return
    uploads = {u.id: u for u in session.scalars(select(Upload).where(Upload.id.in_([uid for uid, _ in documents])))}
    enqueue_upload_events(session, "upload.reconciled",
                          [(uploads[uid], document) for uid, document in documents if uid in uploads])


def _movement_id(conciliacion: dict) -> int | None:
    if conciliacion.get("estado") != "conciliado":
        return None
    return (conciliacion.get("movimiento") or {}).get("id")


def _run(rt: Runtime, session: Any, tenant_id: int, components: list[Component], loose: list[Any],
         files: list[tuple[str, dict]], force: frozenset[int] = frozenset()) -> Counter:
    """Reconcile the components (and receipts without amount or date) and store every outcome at
    once, so a credit moving from one receipt to another is freed before it is taken."""
    window = window_of(rt)
    stored = _stored_statements(session, tenant_id)
    specs = specs_in(str(rt.settings["STATEMENT_FORMATS_DIR"]))
    outcomes: dict[int, dict] = {}
    for component in components:
        rows = [component.receipts[uid] for uid in sorted(component.receipts)]
        outcomes.update(_outcomes(specs, stored, rows, list(component.credits.values()), window))
    if loose:
        outcomes.update(_outcomes(specs, stored, loose, [], window))
    if outcomes:
        _store(session, tenant_id, outcomes, force, files)
    return Counter(o["estado"] for o in outcomes.values())


def _outcomes(specs: dict[str, FormatSpec], stored: list[BankStatement], rows: list[Any],
              credits: list[StatementMovement], window: timedelta) -> dict[int, dict]:
    report = reconcile([receipt_of(r) for r in rows], _statements(specs, stored, credits),
                       MatchSettings(date_window_days=window.days))
    ids = {c.fingerprint: (c.id, c.statement_id) for c in credits}
    return {r.upload_id: _with_ids(report.results[str(r.upload_id)], ids) for r in rows}


# --- entry points ---------------------------------------------------------------------------------
def reconcile_upload(rt: Runtime, tenant_id: int, upload_id: int) -> str | None:
    """Reconcile one processed receipt (and whatever competes with it for a credit) in its own
    transaction; the receipt's `estado`, or None when it has no successful result. Called after a
    receipt is processed, and by the sweep that retries a failed one."""
    for attempt in range(RETRIES):
        try:
            with rt.db.session() as session:
                lock_tenant(session, tenant_id)
                files: list[tuple[str, dict]] = []
                estado = reconcile_in(rt, session, tenant_id, upload_id, files)
                session.commit()
            write_files(rt, files)
            return estado
        except IntegrityError:
            # Another process gave one of these credits away meanwhile: read again and decide again.
            if attempt == RETRIES - 1:
                raise
            logger.info("Reconciliation of upload %s met a concurrent one; retrying", upload_id)
    return None


def reconcile_in(rt: Runtime, session: Any, tenant_id: int, upload_id: int, files: list[tuple[str, dict]]) -> str | None:
    """reconcile_upload inside the caller's transaction (a correction), which took the tenant's
    lock (lock_tenant) before any row of the receipt: the order every run takes them in."""
    row = session.execute(select(*RECEIPT_COLUMNS).where(
        Result.upload_id == upload_id, Result.tenant_id == tenant_id,
        Result.processing_status == "success")).first()
    previous = session.scalar(select(Conciliacion).where(
        Conciliacion.upload_id == upload_id, Conciliacion.tenant_id == tenant_id))
    seeds = previous_seeds(previous.evidence if previous else None)
    if row is None and previous is not None:  # reprocessed into an error: it pays for nothing now
        session.delete(previous)
        session.flush()
    components, loose = components_for(session, tenant_id, [row] if row else [], window_of(rt), seeds)
    _run(rt, session, tenant_id, components, loose, files, force=frozenset({upload_id}))
    return session.scalar(select(Conciliacion.estado).where(Conciliacion.upload_id == upload_id))


def write_files(rt: Runtime, files: list[tuple[str, dict]]) -> None:
    """The result files of a committed run. After the commit, so the tenant's lock (and SQLite's
    write lock) is not held over thousands of file writes; the database is what every read path
    serves, and a file a crash left stale is rewritten by the receipt's next run."""
    rt.storage.write_results(files)


def reconcile_period(rt: Runtime, session: Any, tenant_id: int, first: date, last: date,
                     files: list[tuple[str, dict]]) -> Counter:
    """Inside the caller's transaction (a statement upload): every receipt whose state the days
    from `first` to `last` can change, their result files added to `files` (for write_files
    after the commit). Returns the count of each state among them."""
    lock_tenant(session, tenant_id)
    window = window_of(rt)
    rows = list(session.execute(select(*RECEIPT_COLUMNS).where(
        Result.tenant_id == tenant_id, Result.processing_status == "success",
        Result.fecha >= (first - window).isoformat(),
        Result.fecha < (last + window + timedelta(days=1)).isoformat())))
    components, loose = components_for(session, tenant_id, rows, window, period=(first, last))
    return _run(rt, session, tenant_id, components, loose, files)


def reconcile_after_finish(rt: Runtime, tenant_id: int, upload_id: int) -> None:
    """The worker's hook: a failure here never fails the image (its result is already stored);
    the receipt is reconciled again when a statement covering its date arrives."""
    try:
        reconcile_upload(rt, tenant_id, upload_id)
    except Exception:  # noqa: BLE001 - logged; the OCR result stands without its conciliacion
        logger.exception("Reconciliation of upload %s failed", upload_id)


__all__ = ["lock_tenant", "reconcile_after_finish", "reconcile_in", "reconcile_period", "reconcile_upload",
           "write_files"]
