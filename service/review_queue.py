"""The review desk's queue: a tenant's uploads newest first, by desk state, sorteo and text, with
counts per state. Read-only, like service/queries.py; corrections and decisions are elsewhere
(service/corrections.py), so the desk shows exactly what the API's own lists would.

States (`estado`): `revisar` (processed, flagged by the service, not decided yet), `duplicado`
(the same bytes as an earlier upload), `reutilizacion` (the same payment on another image),
`aprobado`, `rechazado`, `error`, `en_proceso` (pending or processing), `todos`.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, Text, and_, cast, func, or_, select

from database import Result, Review, ReviewState, Upload, UploadStatus
from service.queries import ReviewFilter
from service.runtime import Runtime

STATES = ("revisar", "duplicado", "reutilizacion", "aprobado", "rechazado", "error", "en_proceso", "todos")
# The fields a queue row shows (result columns: corrected values once corrected).
ROW_FIELDS = ("monto", "referencia", "banco_origen", "fecha", "telefono", "cedula", "beneficiario")
MAX_TEXT = 100


def _reuse_flag() -> Any:
    # JSON null and a missing key both read as SQL NULL on SQLite and PostgreSQL.
    return Result.document["posible_reutilizacion"].as_string()


def _like(column: Any, needle: str) -> Any:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")


@dataclass(frozen=True)
class QueueFilter:
    tenant_id: int
    estado: str = "todos"
    texto: str | None = None
    numerosorteo: str | None = None
    fechasorteo: str | None = None

    def _state(self, estado: str) -> list[Any]:
        if estado == "revisar":
            return [Upload.status == UploadStatus.PROCESSED,
                    *ReviewFilter(ReviewState.PENDING, True).conditions(Upload.id, self.tenant_id)]
        if estado == "duplicado":
            return [Upload.duplicado_de.is_not(None)]
        if estado == "reutilizacion":
            return [Upload.duplicado_de.is_(None), _reuse_flag().is_not(None)]
        if estado in (ReviewState.APPROVED, ReviewState.REJECTED):
            return ReviewFilter(estado).conditions(Upload.id, self.tenant_id)
        if estado == "error":
            return [Upload.status == UploadStatus.ERROR]
        if estado == "en_proceso":
            return [Upload.status.in_((UploadStatus.PENDING, UploadStatus.PROCESSING))]
        return []

    def _common(self) -> list[Any]:
        found: list[Any] = [Upload.tenant_id == self.tenant_id]
        if self.numerosorteo:
            found.append(Upload.upload_metadata["numerosorteo"].as_string() == self.numerosorteo)
        if self.fechasorteo:
            found.append(Upload.upload_metadata["fechasorteo"].as_string() == self.fechasorteo)
        if self.texto:
            needle = self.texto.strip().lower()
            columns = [Result.referencia, Result.telefono, Result.cedula, Result.beneficiario, Result.comprobante,
                       Upload.original_name, Upload.stored_name, cast(Upload.upload_metadata, String)]
            options = [_like(column, needle) for column in columns]
            digits = "".join(ch for ch in needle if ch.isdigit())
            if digits and digits != needle:  # "0414-123.45.67" finds 04141234567
                options += [_like(column, digits) for column in (Result.referencia, Result.telefono, Result.cedula)]
            found.append(or_(*options))
        return found

    def conditions(self, estado: str | None = None) -> list[Any]:
        return self._common() + self._state(estado or self.estado)


def _base(columns: list[Any]) -> Any:
    return (select(*columns).select_from(Upload)
            .outerjoin(Result, Result.upload_id == Upload.id)
            .outerjoin(Review, and_(Review.upload_id == Upload.id, Review.tenant_id == Upload.tenant_id)))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _row(row: Any) -> dict[str, Any]:
    upload, result = row.Upload, row
    return {
        "id": upload.id,
        "original_name": upload.original_name,
        "stored_name": upload.stored_name,
        "metadata": upload.upload_metadata,
        "status": upload.status,
        "error": {"code": upload.error_code, "message": upload.error_message} if upload.error_code else None,
        "created_at": upload.created_at.isoformat() if upload.created_at else None,
        "duplicado_de": upload.duplicado_de,
        "posible_reutilizacion": result.reuse,
        # SQLite hands a JSON boolean inside a path back as 0/1.
        "requiere_revision": None if result.flag is None else bool(result.flag),
        "revision": row.estado or ReviewState.PENDING,
        "nota": row.nota,
        "campos": {name: _text(getattr(result, name)) for name in ROW_FIELDS},
    }


@dataclass(frozen=True)
class QueuePage:
    items: list[dict[str, Any]]
    last_id: int | None  # continue below this id; None on the last page


def queue_page(rt: Runtime, which: QueueFilter, limit: int, before_id: int = 0, newer_than: int | None = None) -> QueuePage:
    """Newest first, below `before_id` (0: from the newest); or, with `newer_than`, the rows above it."""
    columns = [Upload, Review.estado, Review.nota, Result.document["posible_reutilizacion"].label("reuse"),
               Result.document[("validacion", "requiere_revision")].label("flag"),
               *(getattr(Result, name) for name in ROW_FIELDS)]
    query = _base(columns).where(*which.conditions())
    if newer_than is not None:
        query = query.where(Upload.id > newer_than)
    elif before_id:
        query = query.where(Upload.id < before_id)
    with rt.db.session() as session:
        rows = session.execute(query.order_by(Upload.id.desc()).limit(limit + 1)).all()
        items = [_row(row) for row in rows[:limit]]
    more = len(rows) > limit and newer_than is None
    return QueuePage(items=items, last_id=items[-1]["id"] if more else None)


def queue_documents(rt: Runtime, which: QueueFilter, before_id: int | None = None,
                    limit: int | None = None) -> Iterator[tuple[Any, ...]]:
    """(id, document JSON text, estado, nota, por, en) of the filter's rows that have a result, newest
    first (older than `before_id`, at most `limit`): the rows service/export.py writes as CSV, a page
    at a time (service.export.paged_rows)."""
    query = (_base([Upload.id, cast(Result.document, Text), Review.estado, Review.nota, Review.por, Review.en])
             .where(Result.id.is_not(None), *which.conditions()).order_by(Upload.id.desc()))
    if before_id:  # None or 0: from the newest
        query = query.where(Upload.id < before_id)
    if limit is not None:
        query = query.limit(limit)
    with rt.db.session() as session:
        yield from session.execute(query.execution_options(yield_per=50))


def queue_counts(rt: Runtime, which: QueueFilter) -> dict[str, int]:
    """How many uploads each state holds under the same sorteo and text filters."""
    with rt.db.session() as session:
        return {estado: int(session.scalar(_base([func.count(Upload.id)]).where(*which.conditions(estado))) or 0)
                for estado in STATES}
