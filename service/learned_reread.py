"""Re-reading a tenant's pending receipts with its learned rules, asked for when a rule is accepted
(POST /api/learned_rules/<id>/accept with {"releer_pendientes": true}).

Pending means processed, still `pendiente` in review, and never corrected by hand: a person's
value or decision is never overwritten. Each receipt is re-read in its own transaction, the way a
correction is written (service/corrections.py): the tenant's reconciliation lock, then the result
row's; the new fields go into the document, its columns and file; the reuse check and the
reconciliation run again on the new payment; an `upload.corrected` event is written with it. The
extraction itself is not run again on the image: the learned rules read the stored words
(extraction/learning.py apply_learned), and only the fields they own change.
"""
from __future__ import annotations

import logging

from sqlalchemy import exists, select, update

from database import Correction, Result, Review, ReviewState, Upload, UploadStatus
from extraction.learning import LearnedRule, apply_learned
from service.conciliation import lock_tenant, reconcile_in, write_files
from service.results import set_field_columns
from service.reuse import flag_reuse
from service.runtime import Runtime
from service.webhooks import enqueue_upload_event

logger = logging.getLogger(__name__)

MAX_REREAD = 200  # receipts re-read by one acceptance (newest first)


def _pending(tenant_id: int) -> list:
    """The conditions of a receipt to re-read (on Result joined with Upload)."""
    corrected = exists().where(Correction.upload_id == Result.upload_id)
    decided = exists().where(Review.upload_id == Result.upload_id, Review.estado != ReviewState.PENDING)
    return [Result.tenant_id == tenant_id, Upload.tenant_id == tenant_id, Upload.status == UploadStatus.PROCESSED,
            Result.processing_status == "success", ~corrected, ~decided]


def _query(tenant_id: int, *more):
    return select(Result.upload_id).join(Upload, Upload.id == Result.upload_id).where(*_pending(tenant_id), *more)


def reread_pending(rt: Runtime, tenant_id: int, rules: list[LearnedRule]) -> int:
    """Re-read the tenant's pending receipts with `rules` (its active ones); how many changed."""
    if not rules:
        return 0
    with rt.db.session() as session:
        upload_ids = session.scalars(_query(tenant_id).order_by(Result.upload_id.desc()).limit(MAX_REREAD)).all()
    changed = 0
    for upload_id in upload_ids:
        try:
            changed += _reread_one(rt, tenant_id, upload_id, rules)
        except Exception:  # noqa: BLE001 - one receipt's failure leaves it as it was, the rest go on
            logger.exception("Re-reading upload %s with the learned rules failed", upload_id)
    return changed


def _reread_one(rt: Runtime, tenant_id: int, upload_id: int, rules: list[LearnedRule]) -> bool:
    files: list[tuple[str, dict]] = []
    with rt.db.session() as session:
        lock_tenant(session, tenant_id)
        session.execute(update(Result).where(Result.upload_id == upload_id, Result.tenant_id == tenant_id)
                        .values(upload_id=Result.upload_id))  # the row's lock, as a correction takes it
        upload = session.get(Upload, upload_id)
        row = session.scalar(select(Result).where(Result.upload_id == upload_id))
        if upload is None or row is None or session.scalar(_query(tenant_id, Result.upload_id == upload_id)) is None:
            return False  # corrected, decided or gone since it was listed
        document = apply_learned(row.document, rules)
        if document is None or document.get("extracted_fields") == row.document.get("extracted_fields"):
            return False
        document["posible_reutilizacion"] = None  # the reuse check runs again on the new payment
        row.document = document
        set_field_columns(row, document["extracted_fields"])
        rewritten = [row, *flag_reuse(session, rt.settings, upload, row)]
        reconcile_in(rt, session, tenant_id, upload_id, files)
        enqueue_upload_event(session, upload, "upload.corrected", row.document)
        session.flush()
        for result in {id(r): r for r in rewritten}.values():
            rt.storage.write_result(result.filename, result.document)
        session.commit()
    write_files(rt, files)
    return True
