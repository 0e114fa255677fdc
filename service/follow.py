"""One upload as a client follows it: status, batch, flags, review, corrections and result."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from database import Batch, Correction, Result, Review, ReviewDecision, ReviewState, Upload, iso
from image_store import ImageRef
from service.runtime import Runtime


def review_view(review: Review | None) -> dict[str, Any]:
    if review is None:
        return {"estado": ReviewState.PENDING, "nota": None, "por": None, "en": None, "por_cuenta": None, "avisos": None}
    return {"estado": review.estado, "nota": review.nota, "por": review.por, "en": iso(review.en),
            "por_cuenta": review.por_cuenta, "avisos": review.avisos}


def decision_view(decision: ReviewDecision) -> dict[str, Any]:
    return {"estado": decision.estado, "nota": decision.nota, "por": decision.por, "por_cuenta": decision.por_cuenta,
            "avisos": decision.avisos, "en": iso(decision.en)}


def correction_view(c: Correction) -> dict[str, Any]:
    return {"id": c.id, "campo": c.campo, "anterior": c.anterior, "nuevo": c.nuevo, "por": c.por,
            "por_cuenta": c.por_cuenta, "deshace": c.deshace, "en": iso(c.en)}


def upload_entry(upload: Upload) -> dict[str, Any]:
    """An upload as the lists and the upload answer show it; `upload_view` adds the rest."""
    return {
        "id": upload.id,
        "original_name": upload.original_name,
        "stored_name": upload.stored_name,
        "metadata": upload.upload_metadata,
        "sha256": upload.sha256,
        "size_bytes": upload.size_bytes,
        "status": upload.status,
        "duplicado_de": upload.duplicado_de,
        "request_id": upload.request_id,
        "created_at": iso(upload.created_at),
        "processed_at": iso(upload.processed_at),
        "error": {"code": upload.error_code, "message": upload.error_message} if upload.error_code else None,
    }


def upload_view(rt: Runtime, tenant_id: int, upload_id: int) -> dict[str, Any] | None:
    """The `upload` of `GET /api/uploads/<id>`; None when the tenant has no upload of that id."""
    with rt.db.session() as session:
        upload = session.scalar(select(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant_id))
        if upload is None:
            return None
        document = session.scalar(select(Result.document).where(Result.upload_id == upload.id))
        review = session.get(Review, upload.id)
        corrections = session.scalars(select(Correction).where(Correction.upload_id == upload.id)
                                      .order_by(Correction.id)).all()
        decisions = session.scalars(select(ReviewDecision).where(ReviewDecision.upload_id == upload.id)
                                    .order_by(ReviewDecision.id)).all()
        batch = None
        if upload.request_id:
            batch = session.execute(select(Batch.request_id, Batch.state).where(
                Batch.request_id == upload.request_id, Batch.tenant_id == tenant_id)).first()
    validation = (document or {}).get("validacion") or {}
    return {
        **upload_entry(upload),
        "batch": {"request_id": batch.request_id, "state": batch.state} if batch else None,
        "posible_reutilizacion": (document or {}).get("posible_reutilizacion"),
        "requiere_revision": validation.get("requiere_revision") if document else None,
        "review": review_view(review),
        "corrections": [correction_view(c) for c in corrections],
        "decisiones": [decision_view(d) for d in decisions],
        "conciliacion": (document or {}).get("conciliacion"),
        "result": document,
        "image_url": f"/api/uploads/{upload.id}/image",
    }


def upload_image(rt: Runtime, tenant_id: int, upload_id: int) -> tuple[Any, str | None] | None:
    """(a readable file of the stored image, its format) of the tenant's upload; None when there is
    none (or the image is gone: purged). Wherever the image is stored, any host reads it."""
    with rt.db.session() as session:
        found = session.execute(select(*ImageRef.columns(), Upload.image_format, Upload.status)
                                .where(Upload.id == upload_id, Upload.tenant_id == tenant_id)).first()
    if found is None:
        return None
    handle = rt.images.open(ImageRef(*found[:4]), found.status)
    return None if handle is None else (handle, found.image_format)
