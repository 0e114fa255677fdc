"""Recording an image's outcome: the result row and file, duplicates served from their original,
and the check for a payment already presented on another image.

Finishing is conditional on still holding the claim. The result file is written before the row
is marked done and the image is moved after, so a crash at any point leaves a state the next
claim or the reconciliation of every round completes; moves and result writes are idempotent.
A finished receipt whose payment (origin bank, reference, amount) is already on record from
another image is flagged `posible_reutilizacion`, pointing at the earliest upload of it.
"""
from __future__ import annotations

import copy
import hashlib
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, func, select, update

import metrics
from database import RESULT_TEXT_FIELDS, Result, Upload, UploadStatus, iso, utcnow
from service.runtime import Runtime

logger = logging.getLogger(__name__)


# --- results ----------------------------------------------------------------------------------
def _monto_value(value: Any) -> Decimal | None:
    """The extractor's normalized amount ("1234.56") as a number for queries; anything else is None."""
    text = str(value).strip() if value is not None else ""
    if not text.replace(".", "", 1).isdigit():
        return None
    try:
        return Decimal(text).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


def _column_text(value: Any, column: Any) -> str | None:
    if value is None or value == "":
        return None
    length = getattr(column.type, "length", None)
    text = str(value)
    return text[:length] if length else text


def result_row(upload: Upload, document: dict[str, Any]) -> Result:
    fields = document.get("extracted_fields") or {}
    meta = document.get("processing_metadata") or {}
    row = Result(
        upload_id=upload.id,
        request_id=document.get("request_id"),
        filename=upload.stored_name,
        processing_status=document.get("processing_status", "success"),
        monto=_monto_value(fields.get("monto")),
        confidence_average=meta.get("confidence_average"),
        coordinates_available=meta.get("coordinates_available"),
        text_length=len(document.get("original_text_ocr") or ""),
        profile_used=meta.get("profile_used"),
        processing_time=meta.get("processing_time"),
        document=document,
    )
    for name in RESULT_TEXT_FIELDS:
        setattr(row, name, _column_text(fields.get(name), Result.__table__.c[name]))
    return row


def finish_upload(rt: Runtime, worker_id: str, upload: Upload, document: dict[str, Any]) -> bool:
    """Record one image's outcome if this worker still holds it; False when the claim was lost.

    The result file is written inside the transaction, just before the commit: whenever a row
    says finished its file exists, and a worker that lost its claim writes nothing at all.
    """
    failed = document.get("processing_status") == "error"
    document.setdefault("processing_metadata", {}).update(upload_id=upload.id, duplicado_de=upload.duplicado_de)
    document.setdefault("posible_reutilizacion", None)
    error = document.get("error") or {}
    with rt.db.session() as session:
        updated = session.execute(
            update(Upload)
            .where(Upload.id == upload.id, Upload.claimed_by == worker_id, Upload.status == UploadStatus.PROCESSING)
            .values(status=UploadStatus.ERROR if failed else UploadStatus.PROCESSED, processed_at=utcnow(),
                    claimed_by=None, lease_expires_at=None, request_id=document.get("request_id"),
                    error_code=error.get("code"), error_message=error.get("message"))
        ).rowcount
        if updated != 1:
            session.rollback()
            logger.warning("Lost the claim on upload %s before finishing it; its new owner completes it", upload.id)
            return False
        session.execute(delete(Result).where(Result.upload_id == upload.id))
        row = result_row(upload, document)
        repointed = flag_payment_reuse(session, upload, row)
        session.add(row)
        session.flush()
        rt.storage.write_result(upload.stored_name, row.document)
        for other in repointed:
            rt.storage.write_result(other.filename, other.document)
        session.commit()
    rt.storage.move(upload.stored_name, "errors" if failed else "processed")
    metrics.observe_image(document)
    return True


# --- the same payment on another image --------------------------------------------------------
def _payment_key(row: Result) -> tuple[str | None, str, Decimal] | None:
    """(origin bank, reference, amount) of a readable receipt; None when either of the last two is missing,
    so receipts that merely lack a reference or an amount are never matched with each other."""
    if row.processing_status != "success" or not row.referencia or row.monto is None:
        return None
    return row.banco_origen, row.referencia, row.monto


def _lock_payment(session: Any, key: tuple[Any, ...]) -> None:
    """Serialize the check for one payment, so two images of it finishing at once see each other.

    PostgreSQL: a transaction-scoped advisory lock on a hash of the payment. SQLite needs nothing:
    the UPDATE that opened the transaction holds the database's single write lock until commit.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(repr(key).encode("utf-8")).digest()[:8]
    session.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest, "big", signed=True))))


def _reuse_entry(upload: Upload, request_id: str | None) -> dict[str, Any]:
    return {"upload_id": upload.id, "filename": upload.stored_name, "request_id": request_id,
            "metadata": upload.upload_metadata, "detected_at": iso(utcnow())}


def flag_payment_reuse(session: Any, upload: Upload, row: Result) -> list[Result]:
    """Mark a receipt whose payment (origin bank, reference, amount) was already presented on
    another image: the fraud of reusing one payment's receipt. Exact copies of the same bytes are
    duplicates (duplicado_de) instead, and keep the verdict copied from their original.

    Every later presentation points at the earliest upload of the payment. Workers may finish them
    out of order, so when this upload is the earliest, results flagged before it finished are
    pointed here; those results are returned so their files can be rewritten too.
    """
    key = None if upload.duplicado_de is not None else _payment_key(row)
    if key is None:
        return []
    _lock_payment(session, key)
    bank, reference, amount = key
    matches = session.execute(
        select(Result, Upload).join(Upload, Upload.id == Result.upload_id)
        .where(Result.upload_id != upload.id, Upload.sha256 != upload.sha256, Result.processing_status == "success",
               Result.referencia == reference, Result.monto == amount, Result.banco_origen.is_not_distinct_from(bank))
        .order_by(Upload.id)
    ).all()
    if not matches:
        return []
    first_result, first_upload = matches[0]
    if first_upload.id < upload.id:
        row.document = {**row.document, "posible_reutilizacion": _reuse_entry(first_upload, first_result.request_id)}
        return []
    entry = _reuse_entry(upload, row.request_id)
    for result, _ in matches:
        # A new dict: SQLAlchemy only notices a JSON column change when the value is replaced.
        result.document = {**result.document, "posible_reutilizacion": entry}
    return [result for result, _ in matches]


def reused_document(rt: Runtime, upload: Upload, request_id: str) -> dict[str, Any] | None:
    """A duplicate's document, copied from its original's result: same bytes, no second OCR."""
    if upload.duplicado_de is None:
        return None
    with rt.db.session() as session:
        found = session.execute(
            select(Upload.stored_name, Result.document)
            .join(Result, Result.upload_id == Upload.id)
            .where(Upload.id == upload.duplicado_de, Upload.status == UploadStatus.PROCESSED,
                   Result.processing_status == "success")
        ).first()
    if found is None:
        return None
    original_name, original_document = found
    document = copy.deepcopy(original_document)
    document.update(request_id=request_id, filename=upload.stored_name, metadata=upload.upload_metadata)
    document["processing_metadata"].update(
        timestamp=iso(utcnow()), processing_time=0.0, cache_hit=True, reused_from=original_name)
    return document


def find_original(session: Any, sha256: str) -> int | None:
    """The first upload of the same bytes, if any: later copies point at it instead of being OCR'd."""
    return session.scalar(
        select(Upload.id).where(Upload.sha256 == sha256, Upload.duplicado_de.is_(None)).order_by(Upload.id).limit(1)
    )
