"""Recording an image's outcome: the result row and file, duplicates served from their original,
and the check for a payment already presented on another image.

Finishing is conditional on still holding the claim. The result file is written before the row
is marked done and the image is moved after, so a crash at any point leaves a state the next
claim or the reconciliation of every round completes; moves and result writes are idempotent.
A finished receipt whose image or payment was presented before is flagged by service/reuse.py.
"""
from __future__ import annotations

import copy
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, select, update

import metrics
from database import RESULT_TEXT_FIELDS, Result, Upload, UploadStatus, iso, utcnow
from image_store import ImageRef
from service.conciliation import reconcile_after_finish
from service.reuse import flag_reuse
from service.runtime import Runtime
from service.webhooks import enqueue_upload_event

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
        tenant_id=upload.tenant_id,
        request_id=document.get("request_id"),
        filename=upload.stored_name,
        processing_status=document.get("processing_status", "success"),
        confidence_average=meta.get("confidence_average"),
        coordinates_available=meta.get("coordinates_available"),
        text_length=len(document.get("original_text_ocr") or ""),
        profile_used=meta.get("profile_used"),
        processing_time=meta.get("processing_time"),
        document=document,
    )
    set_field_columns(row, fields)
    return row


def set_field_columns(row: Result, fields: dict[str, Any]) -> None:
    """The field columns of a result (what SQL filters see) from its fields, extracted or corrected."""
    row.monto = _monto_value(fields.get("monto"))
    for name in RESULT_TEXT_FIELDS:
        setattr(row, name, _column_text(fields.get(name), Result.__table__.c[name]))


def finish_upload(rt: Runtime, worker_id: str, upload: Upload, document: dict[str, Any]) -> bool:
    """Record one image's outcome if this worker still holds it; False when the claim was lost.

    The result file is written inside the transaction, just before the commit: whenever a row
    says finished its file exists, and a worker that lost its claim writes nothing at all.
    """
    failed = document.get("processing_status") == "error"
    document.setdefault("processing_metadata", {}).update(upload_id=upload.id, duplicado_de=upload.duplicado_de)
    document.setdefault("posible_reutilizacion", None)
    # Filled right after the commit below (service/conciliation.py); null on a failed image.
    document["conciliacion"] = None
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
        repointed = flag_reuse(session, rt.settings, upload, row)
        session.add(row)
        session.flush()
        # The event commits with the outcome or not at all (the outbox): never one without the other.
        finished = session.get(Upload, upload.id)
        enqueue_upload_event(session, finished, "upload.failed" if failed else "upload.processed", row.document)
        rt.storage.write_result(upload.stored_name, row.document)
        for other in repointed:
            rt.storage.write_result(other.filename, other.document)
        session.commit()
    rt.images.settle(ImageRef.of(upload), UploadStatus.ERROR if failed else UploadStatus.PROCESSED)
    # Its own transaction, after the result is safe: one indexed query per amount, and a
    # concurrent run over the same credits retries there without touching this commit.
    reconcile_after_finish(rt, upload.tenant_id, upload.id)
    metrics.observe_image(document)
    return True


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


def original_or_duplicate(session: Any, tenant_id: int, sha256: str) -> dict[str, Any]:
    """The columns that make a new upload the tenant's original of these bytes, or a duplicate of it.

    The original holds `original_sha256`, unique per tenant: when identical uploads arrive together
    only one insert can claim it, and the others fail and retry as duplicates.
    """
    original = session.scalar(
        select(Upload.id).where(Upload.tenant_id == tenant_id, Upload.original_sha256 == sha256).limit(1))
    if original is None:
        return {"duplicado_de": None, "original_sha256": sha256}
    return {"duplicado_de": original, "original_sha256": None}
