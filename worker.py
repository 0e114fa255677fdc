"""Claiming uploads and running them through the OCR: the background loop and manual batches.

Exactly-once across processes and hosts rests on the database, never on process memory:

* A claim turns `pending` rows (or `processing` rows whose lease expired: their holder died) into
  `processing` rows owned by this worker (`claimed_by`) until `lease_expires_at`. PostgreSQL picks
  candidates with `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait on or
  take each other's rows; the `UPDATE` repeats the claimable test, which on SQLite (one writer at a
  time, no row locks) is the compare-and-set that keeps two claimers from taking the same row.
* While a worker lives, a heartbeat thread renews its leases; when it dies they expire and the
  next claim takes the rows over. A row that keeps killing its workers is given up after
  MAX_CLAIM_ATTEMPTS.
* Finishing is conditional on still holding the claim. The result file is written before the row
  is marked done and the image is moved after, so a crash at any point leaves a state the next
  claim or the reconciliation of every round completes; moves and result writes are idempotent.
* A stop (SIGTERM) waits for the OCR chunk in hand only (a few images): the rest of the batch is
  handed back, its images returned to the inbox and its attempts refunded.
* A finished receipt whose payment (origin bank, reference, amount) is already on record from
  another image is flagged `posible_reutilizacion`, pointing at the earliest upload of it.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Optional

import psutil
from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import aliased

import config
from aplicador_ocr import PAGES_PER_CALL
from database import (
    RESULT_TEXT_FIELDS,
    Batch,
    BatchState,
    Database,
    RateLimit,
    Result,
    Upload,
    UploadStatus,
    WorkerState,
    iso,
    utcnow,
)
from main_ocr_process import ImagenLote, OrquestadorOCR, error_document
from process_wide import process_wide
from storage import (
    STATUS_DIRECTORY,
    Storage,
    UploadRejected,
    inspect_image,
    is_plain_name,
    metadata_from_stored_name,
    name_part,
    remove_file,
    validate_metadata,
)

logger = logging.getLogger(__name__)

MAX_CLAIM_ATTEMPTS = 3
# Images per OCR call inside a batch: the engine runs PAGES_PER_CALL pages per inference anyway.
OCR_CHUNK_IMAGES = PAGES_PER_CALL
HEARTBEAT_SECONDS = 2.0
# A worker whose heartbeat is older than this is not counted as alive...
LIVE_WORKER_SECONDS = 15.0
# ...and after this long its claims are taken over (heartbeats come every HEARTBEAT_SECONDS).
LOST_WORKER_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0
INBOX_SCAN_LIMIT = 500
# Temp files of uploads are never younger than this when swept, whatever the retention.
MIN_TEMP_AGE_SECONDS = 3600
PARENT_PID_ENV = "OCR_WORKER_PARENT_PID"
# Asked between chunks of a batch: true once the process is shutting down.
StopCheck = Optional[Callable[[], bool]]


def new_request_id(now: datetime | None = None) -> str:
    moment = now or utcnow()
    return f"BATCH_{moment:%Y%m%d_%H%M%S}_{secrets.token_hex(2)[:3]}"


def process_identity(role: str) -> str:
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Runtime:
    """What the web app and the worker share: settings, database and storage."""

    settings: dict[str, Any]
    db: Database
    storage: Storage

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "Runtime":
        runtime = cls(settings=settings, db=Database(settings["DATABASE_URL"]),
                      storage=Storage(settings["ASYNC_DIRECTORIES"]))
        runtime.storage.ensure_directories()
        return runtime

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings["CLAIM_LEASE_SECONDS"])

    @property
    def batch_size(self) -> int:
        return max(1, config.OCR_CONFIG["batch_processing"]["max_images_per_batch"])

    @property
    def max_chunk_bytes(self) -> int:
        return config.OCR_CONFIG["batch_processing"]["max_batch_size_mb"] * 1024 * 1024

    @property
    def default_profile(self) -> str:
        return self.settings["OCR_DEFAULT_PROFILE"]


@process_wide
def shared_orchestrator() -> OrquestadorOCR:
    """The process's OrquestadorOCR; models load on first use and are shared by every thread."""
    return OrquestadorOCR()


def loaded_orchestrator() -> OrquestadorOCR | None:
    """The process's orchestrator if something already created it (never loads models)."""
    return shared_orchestrator.peek()


# --- claims -----------------------------------------------------------------------------------
def _retryable() -> Any:
    # Waiting rows: never claimed, handed back, or held by a worker whose lease ran out.
    return or_(Upload.status == UploadStatus.PENDING,
               and_(Upload.status == UploadStatus.PROCESSING, Upload.lease_expires_at < utcnow()))


def _claimable(max_upload_id: int | None) -> Any:
    original = aliased(Upload)
    # A duplicate waits for its original, so its result can be reused instead of a second OCR.
    original_unfinished = exists().where(
        original.id == Upload.duplicado_de,
        original.status.in_((UploadStatus.PENDING, UploadStatus.PROCESSING)),
    )
    condition = and_(_retryable(), Upload.attempts < MAX_CLAIM_ATTEMPTS, ~original_unfinished)
    if max_upload_id is not None:
        condition = and_(condition, Upload.id <= max_upload_id)
    return condition


def claim_uploads(db: Database, worker_id: str, limit: int, lease: timedelta,
                  request_id: str | None = None, max_upload_id: int | None = None) -> list[Upload]:
    """Atomically take up to `limit` uploads for this worker; each row goes to exactly one claimer."""
    now = utcnow()
    with db.session() as session:
        candidates = session.scalars(
            select(Upload.id).where(_claimable(max_upload_id)).order_by(Upload.id).limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not candidates:
            session.rollback()
            return []
        claimed_ids = session.scalars(
            update(Upload)
            .where(Upload.id.in_(candidates), _claimable(max_upload_id))
            .values(status=UploadStatus.PROCESSING, claimed_by=worker_id, claimed_at=now,
                    lease_expires_at=now + lease, attempts=Upload.attempts + 1, request_id=request_id)
            .returning(Upload.id)
            .execution_options(synchronize_session=False)
        ).all()
        session.commit()
        if not claimed_ids:
            return []
        return list(session.scalars(select(Upload).where(Upload.id.in_(claimed_ids)).order_by(Upload.id)).all())


def renew_leases(db: Database, worker_id: str, lease: timedelta) -> None:
    expires = utcnow() + lease
    with db.session() as session:
        session.execute(update(Upload).where(Upload.claimed_by == worker_id, Upload.status == UploadStatus.PROCESSING)
                        .values(lease_expires_at=expires))
        session.execute(update(Batch).where(Batch.claimed_by == worker_id, Batch.state == BatchState.RUNNING)
                        .values(lease_expires_at=expires))
        session.commit()


def release_claims(db: Database, worker_id: str, refund_attempt: bool = True) -> int:
    """Hand this worker's unfinished uploads back to the queue.

    After a shutdown or a database outage the images were not at fault, so the attempt is given
    back; after an unexpected error it counts, so a file that always breaks a round is given up.
    """
    attempts = Upload.attempts - 1 if refund_attempt else Upload.attempts
    now = utcnow()
    with db.session() as session:
        released = session.execute(
            update(Upload).where(Upload.claimed_by == worker_id, Upload.status == UploadStatus.PROCESSING)
            .values(status=UploadStatus.PENDING, claimed_by=None, lease_expires_at=None, attempts=attempts,
                    request_id=None)
        ).rowcount
        held = and_(Batch.claimed_by == worker_id, Batch.state == BatchState.RUNNING)
        session.execute(update(Batch).where(held, Batch.source == "manual")
                        .values(state=BatchState.QUEUED, claimed_by=None, lease_expires_at=None))
        # A worker round cannot be resumed (its files go back to the queue for any round), and
        # left running its lease would be renewed by the heartbeat for ever.
        session.execute(update(Batch).where(held, Batch.source != "manual")
                        .values(state=BatchState.FAILED, finished_at=now, claimed_by=None, lease_expires_at=None,
                                error_message="interrupted; unfinished files went back to the queue"))
        session.commit()
        return released


def hand_back(rt: Runtime, worker_id: str, refund_attempt: bool = True) -> int:
    """Release this worker's claims with their images back in the inbox, where pending files live.

    Files move first, while the claim still keeps every other worker away from them; if the
    release then fails, the rows stay claimed until their lease expires and claims find the files
    wherever they are.
    """
    with rt.db.session() as session:
        names = session.scalars(select(Upload.stored_name).where(
            Upload.claimed_by == worker_id, Upload.status == UploadStatus.PROCESSING)).all()
    for name in names:
        rt.storage.move(name, "inbox")
    return release_claims(rt.db, worker_id, refund_attempt)


def give_up_poison_uploads(rt: Runtime) -> int:
    """Rows that failed MAX_CLAIM_ATTEMPTS rounds (or killed as many workers) are errors, not work."""
    now = utcnow()
    with rt.db.session() as session:
        names = session.scalars(
            update(Upload)
            .where(_retryable(), Upload.attempts >= MAX_CLAIM_ATTEMPTS)
            .values(status=UploadStatus.ERROR, processed_at=now, claimed_by=None, lease_expires_at=None,
                    error_code="too_many_attempts",
                    error_message=f"Processing was interrupted {MAX_CLAIM_ATTEMPTS} times")
            .returning(Upload.stored_name)
        ).all()
        session.commit()
    for name in names:
        rt.storage.move(name, "errors")
    return len(names)


def recover_abandoned_batches(db: Database) -> None:
    """Manual batches whose runner died go back to the queue; worker rounds are closed as failed."""
    now = utcnow()
    with db.session() as session:
        stale = and_(Batch.state == BatchState.RUNNING, Batch.lease_expires_at < now)
        session.execute(update(Batch).where(stale, Batch.source == "manual")
                        .values(state=BatchState.QUEUED, claimed_by=None, lease_expires_at=None))
        session.execute(update(Batch).where(stale, Batch.source != "manual")
                        .values(state=BatchState.FAILED, finished_at=now, error_message="worker lost"))
        session.commit()


def expire_leases_of_lost_workers(db: Database) -> int:
    """Workers whose heartbeat stopped are gone (killed, out of memory, host down): end their
    leases now, so their uploads and batches are taken over without waiting for the full lease.
    A worker that was only cut off loses nothing but duplicate work: finishing needs the claim."""
    now = utcnow()
    with db.session() as session:
        lost = session.scalars(
            update(WorkerState)
            .where(WorkerState.state.in_(("starting", "ready")),
                   WorkerState.heartbeat_at < now - timedelta(seconds=LOST_WORKER_SECONDS))
            .values(state="lost")
            .returning(WorkerState.worker_id)
        ).all()
        if lost:
            session.execute(update(Upload).where(Upload.claimed_by.in_(lost), Upload.status == UploadStatus.PROCESSING)
                            .values(lease_expires_at=now))
            session.execute(update(Batch).where(Batch.claimed_by.in_(lost), Batch.state == BatchState.RUNNING)
                            .values(lease_expires_at=now))
        session.commit()
    for worker_id in lost:
        logger.warning("Worker %s stopped sending heartbeats; its work is taken over", worker_id)
    return len(lost)


def claim_batch(db: Database, worker_id: str, batch_id: int, lease: timedelta) -> bool:
    now = utcnow()
    with db.session() as session:
        taken = session.execute(
            update(Batch).where(Batch.id == batch_id, Batch.state == BatchState.QUEUED)
            .values(state=BatchState.RUNNING, claimed_by=worker_id, lease_expires_at=now + lease,
                    started_at=func.coalesce(Batch.started_at, now))
        ).rowcount
        session.commit()
        return taken == 1


def live_workers(db: Database, ready_only: bool = True) -> list[WorkerState]:
    """Workers with a fresh heartbeat; with ready_only=False also those still loading models."""
    cutoff = utcnow() - timedelta(seconds=LIVE_WORKER_SECONDS)
    states = ("ready",) if ready_only else ("ready", "starting")
    with db.session() as session:
        return list(session.scalars(select(WorkerState).where(WorkerState.state.in_(states),
                                                              WorkerState.heartbeat_at >= cutoff)).all())


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


def _reused_document(rt: Runtime, upload: Upload, request_id: str) -> dict[str, Any] | None:
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


def _chunks(uploads: list[Upload], max_bytes: int, max_count: int = OCR_CHUNK_IMAGES) -> list[list[Upload]]:
    # Bounds the bytes held in memory at once; one oversized image still forms its own chunk.
    # Few images per chunk: results are recorded as they come, and a stop waits for one chunk only.
    chunks: list[list[Upload]] = [[]]
    size = 0
    for upload in uploads:
        if chunks[-1] and (size + upload.size_bytes > max_bytes or len(chunks[-1]) >= max_count):
            chunks.append([])
            size = 0
        chunks[-1].append(upload)
        size += upload.size_bytes
    return [chunk for chunk in chunks if chunk]


def process_claimed(rt: Runtime, orchestrator: OrquestadorOCR, worker_id: str, uploads: list[Upload],
                    batch: Batch, should_stop: StopCheck = None) -> tuple[int, int]:
    """OCR claimed uploads under a batch; returns (processed, failed) among those this worker finished.

    When should_stop() turns true the rest is left claimed, for the caller to hand back.
    """
    processed = failed = 0

    def record(upload: Upload, document: dict[str, Any]) -> None:
        nonlocal processed, failed
        if finish_upload(rt, worker_id, upload, document):
            if document.get("processing_status") == "error":
                failed += 1
            else:
                processed += 1

    for chunk in _chunks(uploads, rt.max_chunk_bytes):
        if should_stop is not None and should_stop():
            break
        items: list[ImagenLote] = []
        to_ocr: list[Upload] = []
        for upload in chunk:
            path = rt.storage.move(upload.stored_name, "processing")
            reused = _reused_document(rt, upload, batch.request_id) if path else None
            if path is None:
                record(upload, error_document(upload.stored_name, upload.upload_metadata, batch.request_id,
                                              batch.profile, batch.language, "file_missing",
                                              "The image file is no longer in storage"))
            elif reused is not None:
                record(upload, reused)
            else:
                try:
                    items.append(ImagenLote(upload.stored_name, path.read_bytes(), upload.upload_metadata))
                    to_ocr.append(upload)
                except OSError as exc:
                    record(upload, error_document(upload.stored_name, upload.upload_metadata, batch.request_id,
                                                  batch.profile, batch.language, "file_unreadable", str(exc)))
        try:
            documents = orchestrator.procesar_lote_imagenes(items, batch.profile, batch.language, batch.request_id,
                                                            batch.include_coordinates)
        except ValueError as exc:  # the batch names a profile this deployment no longer has
            documents = [error_document(i.filename, i.metadata, batch.request_id, batch.profile, batch.language,
                                        "unknown_profile", str(exc)) for i in items]
        for upload, document in zip(to_ocr, documents):
            record(upload, document)
    return processed, failed


def _add_counts(db: Database, batch_id: int, processed: int, failed: int) -> None:
    with db.session() as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(
            processed_count=Batch.processed_count + processed, error_count=Batch.error_count + failed))
        session.commit()


def _close_batch(db: Database, batch_id: int, state: str = BatchState.COMPLETED, error: str | None = None) -> None:
    now = utcnow()
    with db.session() as session:
        batch = session.get(Batch, batch_id)
        if batch is None:
            return
        batch.state = state
        batch.finished_at = now
        batch.claimed_by = None
        batch.lease_expires_at = None
        batch.error_message = error
        batch.total_files = max(batch.total_files, batch.processed_count + batch.error_count)
        batch.processing_time = round((now - (batch.started_at or batch.created_at)).total_seconds(), 3)
        session.commit()


def run_manual_batch(rt: Runtime, orchestrator: OrquestadorOCR, worker_id: str, batch_id: int,
                     should_stop: StopCheck = None) -> int:
    """Process what was pending when the batch was requested. Returns images finished here.

    Stopped half-way, the batch stays running under this claim: the caller's hand_back requeues it.
    """
    if not claim_batch(rt.db, worker_id, batch_id, rt.lease):
        return 0
    with rt.db.session() as session:
        batch = session.get(Batch, batch_id)
    done = 0
    try:
        while True:
            if should_stop is not None and should_stop():
                return done
            uploads = claim_uploads(rt.db, worker_id, rt.batch_size, rt.lease, batch.request_id, batch.cutoff_upload_id)
            if not uploads:
                break
            processed, failed = process_claimed(rt, orchestrator, worker_id, uploads, batch, should_stop)
            _add_counts(rt.db, batch_id, processed, failed)
            done += processed + failed
            renew_leases(rt.db, worker_id, rt.lease)
    except DBAPIError:
        raise  # the loop backs off and releases the batch for a retry
    except Exception as exc:
        logger.exception("Batch %s failed", batch.request_id)
        hand_back(rt, worker_id, refund_attempt=False)
        _close_batch(rt.db, batch_id, BatchState.FAILED, f"{type(exc).__name__}: {exc}")
        return done
    _close_batch(rt.db, batch_id)
    logger.info("Batch %s done: %d images", batch.request_id, done)
    return done


def insert_batch(db: Database, batch: Batch) -> Batch:
    """Store a new batch under a fresh request id, drawing another if the short id is taken."""
    for _ in range(10):
        with db.session() as session:
            session.add(batch)
            try:
                session.commit()
                return batch
            except IntegrityError:
                session.rollback()  # the rollback makes the object new again, ready for another try
        batch.request_id = new_request_id()
    raise RuntimeError("Could not allocate a unique batch request id")


def run_worker_round(rt: Runtime, orchestrator: OrquestadorOCR, worker_id: str, should_stop: StopCheck = None) -> int:
    """One round of the background worker: claim what is pending and process it with the default profile.

    Stopped half-way, the round closes with what it finished; the rest stays claimed for hand_back.
    """
    uploads = claim_uploads(rt.db, worker_id, rt.batch_size, rt.lease)
    if not uploads:
        return 0
    now = utcnow()
    batch = insert_batch(rt.db, Batch(
        request_id=new_request_id(now), source="worker", profile=rt.default_profile, language="spa",
        include_coordinates=True, state=BatchState.RUNNING, total_files=len(uploads), created_at=now,
        started_at=now, claimed_by=worker_id, lease_expires_at=now + rt.lease))
    with rt.db.session() as session:
        session.execute(update(Upload).where(Upload.id.in_([u.id for u in uploads]), Upload.claimed_by == worker_id)
                        .values(request_id=batch.request_id))
        session.commit()
    processed, failed = process_claimed(rt, orchestrator, worker_id, uploads, batch, should_stop)
    _add_counts(rt.db, batch.id, processed, failed)
    stopped = should_stop is not None and should_stop()
    unfinished = len(uploads) - processed - failed
    _close_batch(rt.db, batch.id, error=f"stopped with {unfinished} files unfinished" if stopped and unfinished else None)
    logger.info("Worker batch %s: %d processed, %d failed", batch.request_id, processed, failed)
    return processed + failed


def queued_manual_batches(db: Database) -> list[int]:
    with db.session() as session:
        return list(session.scalars(select(Batch.id).where(Batch.state == BatchState.QUEUED).order_by(Batch.id)).all())


# --- files dropped into the inbox -------------------------------------------------------------
def adopt_inbox_files(rt: Runtime) -> int:
    """Register images put straight into data/inbox/ (no upload record) so they get processed too."""
    candidates = rt.storage.inbox_candidates(rt.settings["INBOX_ADOPT_MIN_AGE_SECONDS"], time.time())[:INBOX_SCAN_LIMIT]
    if not candidates:
        return 0
    with rt.db.session() as session:
        known = set(session.scalars(select(Upload.stored_name).where(Upload.stored_name.in_([p.name for p in candidates]))))
    adopted = 0
    for path in candidates:
        if path.name not in known and _adopt(rt, path):
            adopted += 1
    return adopted


def _adopt(rt: Runtime, path: Any) -> bool:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False  # another worker adopted and renamed it first
    error: UploadRejected | None = None
    try:
        if len(data) > rt.settings["MAX_FILE_SIZE"]:
            raise UploadRejected("file_too_large", "The file is larger than the upload limit", status=413)
        info = inspect_image(data)
        extension = info.extension
    except UploadRejected as exc:
        error, extension, info = exc, None, None
    name = _adopted_name(path.name, extension)
    if name != path.name:
        target = rt.storage.path("inbox", name)
        if target.exists():
            name = f"{target.stem}_{secrets.token_hex(3)}{target.suffix}"
            target = rt.storage.path("inbox", name)
        try:
            os.rename(path, target)  # only one concurrent adopter wins the rename
        except FileNotFoundError:
            return False
    try:
        metadata = validate_metadata(metadata_from_stored_name(name), rt.settings["MAX_FORM_FIELD_LENGTH"])
    except UploadRejected:
        metadata = {}
    sha256 = hashlib.sha256(data).hexdigest()
    with rt.db.session() as session:
        upload = Upload(stored_name=name, original_name=path.name, sha256=sha256, size_bytes=len(data),
                        image_format=info.image_format if info else None, upload_metadata=metadata, source="inbox",
                        duplicado_de=find_original(session, sha256))
        if error is not None:
            upload.status = UploadStatus.ERROR
            upload.processed_at = utcnow()
            upload.error_code, upload.error_message = error.code, error.message
        session.add(upload)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False  # registered by another worker in the meantime
    if error is not None:
        rt.storage.move(name, "errors")
    logger.info("Registered inbox file %s%s", name, f" as error ({error.code})" if error else "")
    return True


def _adopted_name(name: str, extension: str | None) -> str:
    stem, _, _ext = name.rpartition(".")
    stem = stem or name
    safe = name_part(stem).strip("@") or f"inbox_{secrets.token_hex(4)}"
    candidate = f"{safe[:200]}.{extension or (_ext.lower() if _ext.isalnum() else 'bin')}"
    return candidate if is_plain_name(candidate) else f"inbox_{secrets.token_hex(4)}.{extension or 'bin'}"


def find_original(session: Any, sha256: str) -> int | None:
    """The first upload of the same bytes, if any: later copies point at it instead of being OCR'd."""
    return session.scalar(
        select(Upload.id).where(Upload.sha256 == sha256, Upload.duplicado_de.is_(None)).order_by(Upload.id).limit(1)
    )


def reconcile_files(rt: Runtime, at_start: bool = False) -> int:
    """Put images a crash left in processing/ where their row says they belong.

    A finished row's image belongs in processed/ or errors/: checked every round, so an image that
    a dead worker recorded but never moved does not wait for a restart. Pending and processing rows
    are left alone: the next claim finds their image wherever it is, and moving it from here could
    pull it from under a worker that has just claimed it. At start-up only, an image without any
    row goes to the inbox, where the scan registers it.
    """
    names = [p.name for p in rt.storage.dirs["processing"].iterdir() if p.is_file() and not p.name.startswith(".")]
    if not names:
        return 0
    with rt.db.session() as session:
        status = dict(session.execute(select(Upload.stored_name, Upload.status).where(Upload.stored_name.in_(names))).all())
    moved = 0
    for name in names:
        state = status.get(name)
        if state in UploadStatus.FINISHED:
            rt.storage.move(name, STATUS_DIRECTORY[state])
        elif state is None and at_start:
            rt.storage.move(name, "inbox")
        else:
            continue
        moved += 1
    return moved


# --- retention --------------------------------------------------------------------------------
def purge_finished(rt: Runtime, retention_hours: float) -> dict[str, Any]:
    """Remove finished uploads, their results and files older than the retention; never pending work."""
    now = utcnow()
    cutoff = now - timedelta(hours=retention_hours)
    finished_at = func.coalesce(Upload.processed_at, Upload.created_at)
    with rt.db.session() as session:
        expired = session.execute(
            select(Upload.id, Upload.stored_name).where(Upload.status.in_(UploadStatus.FINISHED), finished_at < cutoff)
        ).all()
    removed_names: list[str] = []
    freed = 0
    results_removed = 0
    for start in range(0, len(expired), 500):
        chunk = expired[start:start + 500]
        ids = [row.id for row in chunk]
        with rt.db.session() as session:
            results_removed += session.execute(delete(Result).where(Result.upload_id.in_(ids))).rowcount
            deleted = set(session.scalars(
                delete(Upload).where(Upload.id.in_(ids), Upload.status.in_(UploadStatus.FINISHED))
                .returning(Upload.stored_name)
            ).all())
            session.commit()
        for row in chunk:
            if row.stored_name not in deleted:
                continue
            removed_names.append(row.stored_name)
            freed += rt.storage.remove_upload_files(row.stored_name)
    with rt.db.session() as session:
        batches_removed = session.execute(
            delete(Batch).where(Batch.state.in_(BatchState.FINISHED), Batch.finished_at < cutoff)).rowcount
        session.execute(delete(RateLimit).where(RateLimit.last_at < now - timedelta(days=1)))
        session.execute(delete(WorkerState).where(WorkerState.heartbeat_at < now - timedelta(days=1)))
        session.commit()
    orphans, orphan_bytes = _remove_orphan_files(rt, cutoff)
    stale_temp = rt.storage.stale_temp_files(time.time() - max(retention_hours * 3600, MIN_TEMP_AGE_SECONDS))
    interrupted, interrupted_bytes = _remove_uncommitted_uploads(rt, stale_temp)
    freed += orphan_bytes + interrupted_bytes + sum(remove_file(path) for path in stale_temp)
    return {
        "retention_hours": retention_hours,
        "cutoff": iso(cutoff),
        "uploads_removed": len(removed_names),
        "results_removed": results_removed,
        "batches_removed": batches_removed,
        "orphan_files_removed": orphans,
        "temp_files_removed": len(stale_temp),
        "uncommitted_uploads_removed": interrupted,
        "removed": removed_names,
        "bytes_freed": freed,
    }


def _remove_uncommitted_uploads(rt: Runtime, stale_temp: list[Any]) -> tuple[int, int]:
    """Inbox files of uploads interrupted between linking and committing (the web process died).

    Such a file is still hard-linked to its stale staging file and has no row: the client never got
    a 200, so it is removed with the staging file rather than registered by the inbox scan.
    """
    staged_inodes = set()
    for path in stale_temp:
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if path.parent == rt.storage.dirs["inbox"] and stat.st_nlink > 1:
            staged_inodes.add(stat.st_ino)
    if not staged_inodes:
        return 0, 0
    linked = [Path(entry.path) for entry in os.scandir(rt.storage.dirs["inbox"])
              if not entry.name.startswith(".") and entry.inode() in staged_inodes]
    if not linked:
        return 0, 0
    with rt.db.session() as session:
        known = set(session.scalars(select(Upload.stored_name).where(Upload.stored_name.in_([p.name for p in linked]))))
    uncommitted = [path for path in linked if path.name not in known]
    return len(uncommitted), sum(remove_file(path) for path in uncommitted)


def _remove_orphan_files(rt: Runtime, cutoff: datetime) -> tuple[int, int]:
    """Old finished-state files with no row (a crash between deleting the row and the file)."""
    limit = cutoff.replace(tzinfo=timezone.utc).timestamp()
    candidates: dict[Any, str] = {}
    for key in ("processed", "errors", "results"):
        for path in rt.storage.dirs[key].iterdir():
            if path.is_file() and not path.name.startswith(".") and path.stat().st_mtime < limit:
                candidates[path] = path.name.removesuffix(".json") if key == "results" else path.name
    if not candidates:
        return 0, 0
    with rt.db.session() as session:
        known = set(session.scalars(select(Upload.stored_name).where(Upload.stored_name.in_(set(candidates.values())))))
    orphans = [path for path, name in candidates.items() if name not in known]
    return len(orphans), sum(remove_file(path) for path in orphans)


# --- the loop ---------------------------------------------------------------------------------
class Worker:
    """The background worker of one process: preloads the models, then polls and processes."""

    def __init__(self, rt: Runtime, orchestrator: OrquestadorOCR | None = None, worker_id: str | None = None) -> None:
        self.rt = rt
        self.orchestrator = orchestrator
        self.worker_id = worker_id or process_identity("worker")
        self.stop_event = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self._busy_since: float | None = None
        self._last_cleanup = time.monotonic()
        self._state = "starting"
        self.images_processed = 0
        self.batches_processed = 0
        self._parent_pid = int(os.environ.get(PARENT_PID_ENV, "0") or 0)
        # Set when a failed round could not hand its claims back (the database was away): the
        # heartbeat would renew those leases for ever, so the next round hands them back first.
        # The value is the refund_attempt to use.
        self._claims_to_hand_back: bool | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Register, load and warm the models, and report ready: only then does work get claimed."""
        self.rt.db.ensure_schema()
        self._state = "starting"
        self.publish_heartbeat()
        if self.orchestrator is None:
            self.orchestrator = shared_orchestrator()
        if self.rt.settings.get("PRELOAD_MODELS", True):
            self.orchestrator.preload(self.rt.default_profile)
        reconcile_files(self.rt, at_start=True)
        self._state = "ready"
        self.publish_heartbeat()
        self._heartbeat_thread = threading.Thread(target=self._heartbeat_loop, name="ocr-heartbeat", daemon=True)
        self._heartbeat_thread.start()
        logger.info("Worker %s ready (models: %s)", self.worker_id, ", ".join(self._models_loaded()) or "none")

    def stop(self) -> None:
        self.stop_event.set()

    def shutdown(self) -> None:
        self.stop_event.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(timeout=HEARTBEAT_SECONDS * 2)
        try:
            hand_back(self.rt, self.worker_id)
            self._state = "stopped"
            self.publish_heartbeat()
            logger.info("Worker %s stopped", self.worker_id)
        except DBAPIError:
            logger.warning("Database unavailable at shutdown; leases of %s will expire by themselves", self.worker_id)

    def run(self) -> None:
        """Poll until stopped. Database outages back off and resume; nothing is lost meanwhile."""
        backoff = 0.0
        while not self.stop_event.is_set():
            if self._parent_pid and os.getppid() != self._parent_pid:
                logger.warning("Parent process %s is gone; worker exits", self._parent_pid)
                break
            try:
                if self._state != "ready":
                    self.start()
                if self._claims_to_hand_back is not None:
                    hand_back(self.rt, self.worker_id, self._claims_to_hand_back)
                    self._claims_to_hand_back = None
                worked = self.tick()
                if backoff:
                    logger.info("Database reachable again; worker resumes")
                backoff = 0.0
            except DBAPIError as exc:
                backoff = min(MAX_BACKOFF_SECONDS, max(1.0, backoff * 2))
                logger.warning("Database error in worker (%s); retrying in %.0fs", type(exc).__name__, backoff)
                self._release_after_failure(refund_attempt=True)
                self.stop_event.wait(backoff)
                continue
            except Exception:
                # A bug or a full disk must not kill the loop: give the work back and try again later.
                backoff = min(MAX_BACKOFF_SECONDS, max(1.0, backoff * 2))
                logger.exception("Worker round failed; retrying in %.0fs", backoff)
                self._release_after_failure(refund_attempt=False)
                self.stop_event.wait(backoff)
                continue
            if not worked:
                self.stop_event.wait(self.rt.settings["WORKER_POLL_INTERVAL_SECONDS"])
        self.shutdown()

    def run_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self._run_started, name="ocr-worker", daemon=True)
        thread.start()
        return thread

    def _run_started(self) -> None:
        try:
            self.start()
        except DBAPIError:
            logger.warning("Database unavailable at worker start; retrying in the loop")
        self.run()

    def _release_after_failure(self, refund_attempt: bool) -> None:
        try:
            hand_back(self.rt, self.worker_id, refund_attempt)
        except Exception:
            # The database is still away (or a move failed): retried before the next round.
            self._claims_to_hand_back = refund_attempt

    # --- one round ----------------------------------------------------------------------------
    def tick(self) -> int:
        """Everything due now, in order: recovery, manual batches, inbox registration, a worker round."""
        expire_leases_of_lost_workers(self.rt.db)
        give_up_poison_uploads(self.rt)
        recover_abandoned_batches(self.rt.db)
        done = 0
        self._busy_since = time.monotonic()
        try:
            for batch_id in queued_manual_batches(self.rt.db):
                if self.stop_event.is_set():
                    break
                done += self._count(run_manual_batch(self.rt, self.orchestrator, self.worker_id, batch_id,
                                                     self.stop_event.is_set))
            adopt_inbox_files(self.rt)
            reconcile_files(self.rt)
            if not self.stop_event.is_set():
                done += self._count(run_worker_round(self.rt, self.orchestrator, self.worker_id, self.stop_event.is_set))
        finally:
            self._busy_since = None
        self._maybe_cleanup()
        return done

    def _count(self, images: int) -> int:
        if images:
            self.images_processed += images
            self.batches_processed += 1
        return images

    def _maybe_cleanup(self) -> None:
        interval = self.rt.settings.get("CLEANUP_INTERVAL_SECONDS", 0)
        if interval <= 0 or time.monotonic() - self._last_cleanup < interval:
            return
        self._last_cleanup = time.monotonic()
        report = purge_finished(self.rt, self.rt.settings["RETENTION_HOURS"])
        if report["uploads_removed"] or report["temp_files_removed"]:
            logger.info("Retention cleanup removed %d uploads and %d temp files",
                        report["uploads_removed"], report["temp_files_removed"])

    # --- heartbeat ----------------------------------------------------------------------------
    def _models_loaded(self) -> list[str]:
        return sorted(self.orchestrator.aplicador.predictors) if self.orchestrator else []

    def publish_heartbeat(self) -> None:
        now = utcnow()
        values = dict(
            hostname=socket.gethostname(), pid=os.getpid(), state=self._state, models_loaded=self._models_loaded(),
            cache_stats=self.orchestrator.aplicador.cache_stats() if self.orchestrator else {},
            rss_bytes=psutil.Process().memory_info().rss, images_processed=self.images_processed,
            batches_processed=self.batches_processed, heartbeat_at=now,
        )
        with self.rt.db.session() as session:
            row = session.get(WorkerState, self.worker_id)
            if row is None:
                session.add(WorkerState(worker_id=self.worker_id, started_at=now, **values))
            else:
                for key, value in values.items():
                    setattr(row, key, value)
            session.commit()

    def _heartbeat_loop(self) -> None:
        timeout = config.OCR_CONFIG["batch_processing"]["timeout_seconds"]
        while not self.stop_event.wait(HEARTBEAT_SECONDS):
            try:
                self.publish_heartbeat()
                busy = self._busy_since
                # A batch stuck past the timeout stops being renewed, so another worker can take it over.
                if busy is None or time.monotonic() - busy < timeout:
                    renew_leases(self.rt.db, self.worker_id, self.rt.lease)
            except DBAPIError:
                logger.debug("Heartbeat skipped: database unavailable")
            except Exception:
                logger.exception("Heartbeat failed")
