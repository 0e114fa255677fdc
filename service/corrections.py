"""Corrections of an upload's fields and its review state, set by people after the OCR.

A correction is read the way extraction reads a value (extraction/corrections.py), recorded in
`corrections` (who, when, before, after) and written into the stored result, so that every read
path (the result row's columns, `/api/ocr/result_data`, `/api/extract_results` and its exports,
the result file) shows it without knowing about corrections; the extracted value stays in
`campos_detalle[field]["valor_extraido"]`. The reuse check and the reconciliation then run again on
the corrected payment, in the same transaction.

Concurrency: a correction first takes the tenant's reconciliation lock (service/conciliation.py
lock_tenant), then its row lock with an UPDATE of the result row (on SQLite the first write takes
the single write lock); a second correction of the same upload waits for the first to commit and
then reads its document, so neither is lost.
"""
from __future__ import annotations

import copy
import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import config
from database import (
    ApiKey,
    Correction,
    Result,
    Review,
    ReviewDecision,
    ReviewState,
    StaffAccount,
    Upload,
    UploadStatus,
    iso,
    utcnow,
)
from extraction.corrections import read_correction
from service.access import Principal
from service.conciliation import lock_tenant, reconcile_in, write_files
from service.learned_rules import propose_from_corrections
from service.results import set_field_columns
from service.reuse import flag_reuse
from service.runtime import Runtime
from service.webhooks import enqueue_upload_event
from validador_ocr import ValidadorOCR

logger = logging.getLogger(__name__)

MAX_NOTE_CHARS = 2000
ANONYMOUS_ACTOR = "anonymous"


class UploadNotFound(LookupError):
    """No upload of that id in the tenant (another tenant's answers exactly the same)."""


class NotProcessed(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class InvalidFields(ValueError):
    """Field values refused, {field: why}."""

    def __init__(self, reasons: dict[str, str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons


class CorrectionNotFound(LookupError):
    """No correction of that id on that upload of the tenant."""


class InvalidReview(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def actor_name(rt: Runtime, principal: Principal | None) -> str:
    """Who did it, as recorded: a person's display name, the key's name (or `key:<id>`), `admin` for an
    API_KEYS key, or anonymous."""
    if principal is None or principal.client_key.startswith("ip:"):
        return ANONYMOUS_ACTOR
    if principal.client_key.startswith("staff:"):  # a person's session (api/actor.py names them first)
        with rt.db.session() as session:
            name = session.scalar(select(StaffAccount.display_name).where(
                StaffAccount.id == int(principal.client_key.removeprefix("staff:"))))
        return name or principal.client_key
    if principal.key_id is None:
        return "admin"
    with rt.db.session() as session:
        name = session.scalar(select(ApiKey.name).where(ApiKey.id == principal.key_id))
    return name or f"key:{principal.key_id}"


def on_upload_changed(session: Session, upload: Upload, event: str, document: dict[str, Any] | None = None) -> None:
    """Called inside the transaction of every correction (`upload.corrected`) and review
    (`upload.reviewed`), before its commit: the webhook event is written with the change, so a
    receiver hears of every change that committed and of none that did not."""
    if document is None:
        document = session.scalar(select(Result.document).where(Result.upload_id == upload.id))
    enqueue_upload_event(session, upload, event, document)


def read_values(values: Any) -> dict[str, str | None]:
    """The canonical value of each field in a PATCH body; InvalidFields names every refused one."""
    if not isinstance(values, dict) or not values:
        raise InvalidFields({"_body": "envíe un objeto {campo: valor} con al menos un campo"})
    read: dict[str, str | None] = {}
    reasons: dict[str, str] = {}
    for field, raw in values.items():
        value, reason = read_correction(str(field), raw)
        if reason:
            reasons[str(field)] = reason
        else:
            read[str(field)] = value
    if reasons:
        raise InvalidFields(reasons)
    return read


def _locked_result(session: Session, tenant_id: int, upload_id: int) -> tuple[Upload, Result | None]:
    # The UPDATE before any read: it is the row's lock (see the module docstring).
    session.execute(update(Result).where(Result.upload_id == upload_id, Result.tenant_id == tenant_id)
                    .values(upload_id=Result.upload_id))
    upload = session.scalar(select(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant_id))
    if upload is None:
        raise UploadNotFound(upload_id)
    row = session.scalar(select(Result).where(Result.upload_id == upload_id))
    return upload, row


def corrected_document(document: dict[str, Any], values: dict[str, str | None], actor: str,
                       at: str) -> tuple[dict[str, Any], list[tuple[str, str | None, str | None]]]:
    """A new document with `values` as the fields' values, the extracted ones kept in campos_detalle,
    the validation made again; and the (field, before, after) that changed."""
    document = copy.deepcopy(document)
    fields = document.setdefault("extracted_fields", {})
    detail = document.setdefault("campos_detalle", {})
    changed = []
    for field, new in values.items():
        old = fields.get(field)
        if old == new:
            continue
        entry = dict(detail.get(field) or {})
        entry.setdefault("valor_extraido", entry.get("valor", old))
        entry["valor"] = new
        entry["corregido"] = {"valor": new, "anterior": old, "por": actor, "en": at}
        detail[field] = entry
        fields[field] = new
        changed.append((field, old, new))
    # A value set by hand is certain: the confidence checks of the validation do not apply to it.
    certain = {name: ({**info, "confianza": 1.0} if isinstance(info, dict) and "corregido" in info else info)
               for name, info in detail.items()}
    document["validacion"] = ValidadorOCR(config.EXTRACTION_CONFIG).validar(
        {name: fields.get(name) for name in config.FIELDS}, certain)
    # The reuse check runs again on the corrected payment and sets its own flag.
    document["posible_reutilizacion"] = None
    return document, changed


class _ReconciliationFailed(Exception):
    """The correction's reconciliation raised: its transaction is given up and made again without it."""


def apply_corrections(rt: Runtime, tenant_id: int, upload_id: int, values: dict[str, Any], actor: str,
                      actor_id: int | None = None) -> Upload:
    """Set fields of a processed upload by hand (see the module docstring); returns the upload.
    `actor_id` is the staff account acting (None for a key).

    Raises InvalidFields, UploadNotFound, NotProcessed."""
    return _correct(rt, tenant_id, upload_id, read_values(values), actor, actor_id, None)


def undo_correction(rt: Runtime, tenant_id: int, upload_id: int, correction_id: int, actor: str,
                    actor_id: int | None = None) -> Upload:
    """Put a corrected field back to the value it had before that correction: a correction of its
    own (`deshace` names the one undone), so history keeps both, and the receipt is reconciled
    again as after any correction. The value before is restored as stored, not read again.

    Raises CorrectionNotFound, UploadNotFound, NotProcessed."""
    with rt.db.session() as session:
        found = session.execute(select(Correction.campo, Correction.anterior).where(
            Correction.id == correction_id, Correction.upload_id == upload_id,
            Correction.tenant_id == tenant_id)).first()
    if found is None:
        raise CorrectionNotFound(correction_id)
    return _correct(rt, tenant_id, upload_id, {found.campo: found.anterior}, actor, actor_id, correction_id)


def _correct(rt: Runtime, tenant_id: int, upload_id: int, read: dict[str, str | None], actor: str,
             actor_id: int | None, undoes: int | None) -> Upload:
    try:
        return _store_correction(rt, tenant_id, upload_id, read, actor, reconcile=True, actor_id=actor_id,
                                 undoes=undoes)
    except _ReconciliationFailed:
        # A correction never fails for its reconciliation: it is stored unreconciled, and the
        # housekeeping sweep (retry_reconciliation) reconciles it and announces the state.
        logger.exception("Reconciliation of corrected upload %s failed; left to the sweep", upload_id)
        return _store_correction(rt, tenant_id, upload_id, read, actor, reconcile=False, actor_id=actor_id,
                                 undoes=undoes)


def _store_correction(rt: Runtime, tenant_id: int, upload_id: int, read: dict[str, str | None], actor: str,
                      reconcile: bool, actor_id: int | None = None, undoes: int | None = None) -> Upload:
    with rt.db.session() as session:
        # The tenant's reconciliation lock before the result row's: the order every reconciliation
        # run takes them in (a statement upload locks the tenant, then its receipts' rows).
        lock_tenant(session, tenant_id)
        upload, row = _locked_result(session, tenant_id, upload_id)
        if upload.status != UploadStatus.PROCESSED or row is None or row.processing_status != "success":
            raise NotProcessed(upload.status)
        now = utcnow()
        before = row.document
        document, changed = corrected_document(before, read, actor, iso(now))
        if not changed:
            session.rollback()
            return upload
        for field, old, new in changed:
            session.add(Correction(upload_id=upload.id, tenant_id=tenant_id, campo=field, anterior=old, nuevo=new,
                                   por=actor, en=now, por_cuenta=actor_id, deshace=undoes))
        if not reconcile:
            document["conciliacion"] = None  # not the corrected payment's: null until the sweep's run
        row.document = document
        set_field_columns(row, document["extracted_fields"])
        rewritten = [row, *flag_reuse(session, rt.settings, upload, row)]
        rewritten += _recheck_flagged_after(session, rt.settings, upload, actor, iso(now))
        files: list[tuple[str, dict]] = []
        if reconcile:
            _reconcile_corrected(rt, session, tenant_id, upload_id, files)
        on_upload_changed(session, upload, "upload.corrected", row.document)
        session.flush()
        for result in {id(r): r for r in rewritten}.values():
            rt.storage.write_result(result.filename, result.document)
        session.commit()
    write_files(rt, files)
    # What the correction teaches is proposed once it is committed (a proposal never fails it).
    propose_from_corrections(rt, tenant_id, upload_id, before, changed, actor)
    return upload


def _reconcile_corrected(rt: Runtime, session: Session, tenant_id: int, upload_id: int,
                         files: list[tuple[str, dict]]) -> None:
    """The corrected amount or reference may pay another credit, and the old one is free again.
    Reconciled in the correction's transaction, before its event is written, so upload.corrected
    carries the state the corrected payment has: one truth, never a conciliacion its own correction
    already changed. The receipts whose state this changes (this one too) get upload.reconciled."""
    try:
        reconcile_in(rt, session, tenant_id, upload_id, files)
    except Exception as exc:
        raise _ReconciliationFailed(upload_id) from exc


def _recheck_flagged_after(session: Session, settings: dict[str, Any], upload: Upload, actor: str,
                           at: str) -> list[Result]:
    """Results flagged as a reuse of this upload's payment were flagged for the value it had: each
    is checked again (its flag cleared first), in upload order, so a corrected misreading no longer
    flags the receipts it matched, and they point at the earliest presentation left."""
    pointing = Result.document[("posible_reutilizacion", "upload_id")].as_integer() == upload.id
    flagged_rows = session.scalars(select(Result).where(Result.tenant_id == upload.tenant_id, pointing,
                                                        Result.upload_id != upload.id).order_by(Result.upload_id)).all()
    rewritten: list[Result] = []
    for other in flagged_rows:
        other_upload = session.get(Upload, other.upload_id)
        if other_upload is None or other_upload.duplicado_de is not None:
            continue  # a duplicate of these bytes stays one whatever its fields say
        other.document, _ = corrected_document(other.document, {}, actor, at)
        rewritten += [other, *flag_reuse(session, settings, other_upload, other)]
    return rewritten


def read_review(body: Any) -> tuple[str, str | None]:
    if not isinstance(body, dict):
        raise InvalidReview("estado", "send {\"estado\": ..., \"nota\": ...}")
    estado = body.get("estado")
    if estado not in ReviewState.ALL:
        raise InvalidReview("estado", f"estado must be one of {', '.join(ReviewState.ALL)}")
    nota = body.get("nota")
    if nota is not None and (not isinstance(nota, str) or len(nota) > MAX_NOTE_CHARS):
        raise InvalidReview("nota", f"nota must be a text of at most {MAX_NOTE_CHARS} characters, or null")
    return estado, nota


# Approving a receipt with one of these empty is approving it anyway (the desk asks first).
ESSENTIAL_FIELDS = ("monto", "referencia", "fecha")
RECONCILED = "conciliado"


def approval_warnings(document: dict[str, Any] | None) -> list[str]:
    """What an approval of this result would be taken in spite of: `sin_<field>` for each empty
    essential field, `conciliacion_<estado>` when it is not reconciled (`sin_conciliacion` when
    it has no state at all)."""
    document = document or {}
    fields = document.get("extracted_fields") or {}
    found = [f"sin_{name}" for name in ESSENTIAL_FIELDS if fields.get(name) in (None, "")]
    state = (document.get("conciliacion") or {}).get("estado")
    if state != RECONCILED:
        found.append(f"conciliacion_{state}" if isinstance(state, str) else "sin_conciliacion")
    return found


def set_review(rt: Runtime, tenant_id: int, upload_id: int, body: Any, actor: str,
               actor_id: int | None = None) -> Upload:
    """Set the review state of an upload of the tenant, and log the decision (who, when, and for an
    approval what it was warned of: approval_warnings). Raises InvalidReview, UploadNotFound."""
    estado, nota = read_review(body)
    for attempt in range(2):
        with rt.db.session() as session:
            upload = session.scalar(select(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant_id))
            if upload is None:
                raise UploadNotFound(upload_id)
            warnings = None
            if estado == ReviewState.APPROVED:
                document = session.scalar(select(Result.document).where(Result.upload_id == upload_id))
                warnings = approval_warnings(document) or None
            values = {"estado": estado, "nota": nota, "por": actor, "en": utcnow(), "por_cuenta": actor_id,
                      "avisos": warnings}
            updated = session.execute(update(Review).where(Review.upload_id == upload_id, Review.tenant_id == tenant_id)
                                      .values(**values)).rowcount
            if not updated:
                session.add(Review(upload_id=upload_id, tenant_id=tenant_id, **values))
            session.add(ReviewDecision(upload_id=upload_id, tenant_id=tenant_id, **values))
            on_upload_changed(session, upload, "upload.reviewed")
            try:
                session.commit()
            except IntegrityError:
                # Another review of the same upload inserted its row first: update it instead.
                session.rollback()
                if attempt:
                    raise
                continue
            return upload
    raise AssertionError("unreachable")
