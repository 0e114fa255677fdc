"""The reuse check: a receipt whose image or payment was already presented is flagged for review.

* The same bytes as an earlier upload of the tenant (`duplicado_de`): reason `misma_imagen`.
* The same payment on another image: the reference and amount of a payment in the ledger (and its
  date, when both receipts show one). The same origin bank gives `mismo_pago` with confidence
  `alta`; a bank missing on either side (painted over, unread) still matches as
  `mismo_pago_sin_banco`, confidence `media`; two different banks are two payments.

Every flagged document gets `posible_reutilizacion` (the earliest presentation, the reason and
confidence) and `validacion.requiere_revision`. Payments live in their own ledger (`payments`),
kept PAYMENT_MEMORY_DAYS whatever the file retention, and are compared within the tenant unless
REUSE_CHECK_ACROSS_TENANTS is set; a match in another tenant names none of its uploads.
"""
from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete, func, select

from database import Payment, Result, Upload, iso, utcnow

SAME_IMAGE, SAME_PAYMENT, SAME_PAYMENT_NO_BANK = "misma_imagen", "mismo_pago", "mismo_pago_sin_banco"
CONFIDENCE = {SAME_IMAGE: "exacta", SAME_PAYMENT: "alta", SAME_PAYMENT_NO_BANK: "media"}


def _payment_of(upload: Upload, row: Result) -> Payment | None:
    """The ledger entry of a readable receipt; None without a reference or an amount, so receipts
    that merely lack them are never matched with each other."""
    if row.processing_status != "success" or not row.referencia or row.monto is None:
        return None
    return Payment(tenant_id=upload.tenant_id, upload_id=upload.id, filename=upload.stored_name,
                   request_id=row.request_id, sha256=upload.sha256, bank=row.banco_origen, reference=row.referencia,
                   amount=row.monto, payment_date=row.fecha, upload_metadata=upload.upload_metadata)


def _reason(one: Payment, other: Payment) -> str | None:
    """Why two payments are the same one, or None when they are not."""
    if one.payment_date and other.payment_date and one.payment_date != other.payment_date:
        return None
    if one.bank and other.bank:
        return SAME_PAYMENT if one.bank == other.bank else None
    return SAME_PAYMENT_NO_BANK


def _lock_payment(session: Any, reference: str, amount: Any) -> None:
    """Serialize the check for one payment, so two images of it finishing at once see each other.

    PostgreSQL: a transaction-scoped advisory lock on a hash of reference and amount (the bank may
    be missing, so it is not part of the key). SQLite needs nothing: the UPDATE that opened the
    transaction holds the database's single write lock until commit.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"{reference}|{amount}".encode("utf-8")).digest()[:8]
    session.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest, "big", signed=True))))


def _entry(earlier: Payment | Upload, reason: str, viewer_tenant: int, request_id: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"reason": reason, "confidence": CONFIDENCE[reason]}
    if earlier.tenant_id != viewer_tenant:
        entry["other_tenant"] = True  # another customer's upload: nothing of it is shown
    elif isinstance(earlier, Payment):
        entry.update(upload_id=earlier.upload_id, filename=earlier.filename, request_id=earlier.request_id,
                     metadata=earlier.upload_metadata)
    else:
        entry.update(upload_id=earlier.id, filename=earlier.stored_name, request_id=request_id,
                     metadata=earlier.upload_metadata)
    entry["detected_at"] = iso(utcnow())
    return entry


def flagged(document: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """A new document (SQLAlchemy notices a JSON change only when the value is replaced) flagged for review."""
    validation = dict(document.get("validacion") or {})
    warnings = [w for w in validation.get("advertencias") or [] if not str(w).startswith("posible_reutilizacion")]
    validation.update(requiere_revision=True, advertencias=[*warnings, f"posible_reutilizacion: {entry['reason']}"])
    return {**document, "posible_reutilizacion": entry, "validacion": validation}


def _duplicate_entry(session: Any, upload: Upload) -> dict[str, Any]:
    original = session.get(Upload, upload.duplicado_de)
    if original is None:  # purged meanwhile
        return {"reason": SAME_IMAGE, "confidence": CONFIDENCE[SAME_IMAGE], "upload_id": upload.duplicado_de,
                "detected_at": iso(utcnow())}
    request_id = session.scalar(select(Result.request_id).where(Result.upload_id == original.id))
    return _entry(original, SAME_IMAGE, upload.tenant_id, request_id)


def flag_reuse(session: Any, settings: dict[str, Any], upload: Upload, row: Result) -> list[Result]:
    """Flag `row` if its image or payment was presented before, and record its payment.

    Every later presentation points at the earliest one. Workers may finish them out of order, so
    when this upload is the earliest, results flagged before it finished are pointed here; those
    results are returned so their files can be rewritten too.
    """
    if upload.duplicado_de is not None:
        row.document = flagged(row.document, _duplicate_entry(session, upload))
        return []
    payment = _payment_of(upload, row)
    if payment is None:
        return []
    _lock_payment(session, payment.reference, payment.amount)
    session.execute(delete(Payment).where(Payment.upload_id == upload.id))  # a retried finish records it once
    query = select(Payment).where(Payment.reference == payment.reference, Payment.amount == payment.amount,
                                  Payment.sha256 != upload.sha256)
    if not settings["REUSE_CHECK_ACROSS_TENANTS"]:
        query = query.where(Payment.tenant_id == upload.tenant_id)
    matches = [(other, reason) for other in session.scalars(query.order_by(Payment.upload_id)).all()
               if (reason := _reason(payment, other)) is not None]
    session.add(payment)
    if not matches:
        return []
    earliest, reason = matches[0]
    if earliest.upload_id < upload.id:
        row.document = flagged(row.document, _entry(earliest, reason, upload.tenant_id))
        return []
    later = {other.upload_id: (other, reason) for other, reason in matches}
    # FOR UPDATE: reconciliation (service/conciliation.py) may be rewriting one of these documents now.
    repointed = list(session.scalars(select(Result).where(Result.upload_id.in_(later))
                                     .order_by(Result.upload_id).with_for_update()).all())
    for result in repointed:
        other, reason = later[result.upload_id]
        result.document = flagged(result.document, _entry(payment, reason, other.tenant_id))
    return repointed
