"""Running batches: claimed uploads through the OCR in small chunks, manual batches and worker rounds."""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from aplicador_ocr import PAGES_PER_CALL
from database import Batch, BatchState, Database, Upload, database_now
from image_store import ImageRef
from main_ocr_process import ImagenLote, OrquestadorOCR, error_document
from request_context import logs_upload
from service.jobs import (
    INFRASTRUCTURE_FAULTS,
    claim_batch,
    claim_uploads,
    fair_claim_size,
    hand_back,
    insert_batch,
    next_tenant_with_work,
    renew_leases,
)
from service.learned_rules import apply_to_document
from service.results import finish_upload, reused_document
from service.runtime import Runtime, new_request_id

logger = logging.getLogger(__name__)

# Images per OCR call inside a batch: the engine runs PAGES_PER_CALL pages per inference anyway.
OCR_CHUNK_IMAGES = PAGES_PER_CALL
# Asked between chunks of a batch: true once the process is shutting down.
StopCheck = Optional[Callable[[], bool]]


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

    @logs_upload
    def record(upload: Upload, document: dict[str, Any], learned: bool = True) -> None:
        nonlocal processed, failed
        if learned:  # the tenant's accepted learned rules, for its receipts of their layouts
            document = apply_to_document(rt, upload.tenant_id, document)
        try:
            finished = finish_upload(rt, worker_id, upload, document)
        except INFRASTRUCTURE_FAULTS:
            raise  # the disk or the database: the whole round goes back, no attempt counted
        except Exception as exc:
            # Something in this image's outcome cannot be recorded: it fails alone, the round goes on.
            logger.exception("Recording the result of upload %s failed", upload.id)
            document = error_document(upload.stored_name, upload.upload_metadata, batch.request_id, batch.profile,
                                      batch.language, "result_not_recorded", f"{type(exc).__name__}: {exc}")
            finished = finish_upload(rt, worker_id, upload, document)
        if finished:
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
            # An OSError reading a stored image is the disk's failure, not the image's: it propagates.
            image = rt.images.read_for_processing(ImageRef.of(upload))
            reused = reused_document(rt, upload, batch.request_id) if image is not None else None
            if image is None:
                record(upload, error_document(upload.stored_name, upload.upload_metadata, batch.request_id,
                                              batch.profile, batch.language, "file_missing",
                                              "The image file is no longer in storage"))
            elif reused is not None:
                record(upload, reused, learned=False)
            else:
                items.append(ImagenLote(upload.stored_name, image, upload.upload_metadata))
                to_ocr.append(upload)
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
    with db.session() as session:
        now = database_now(session)  # started_at came from the database's clock too
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
            uploads = claim_uploads(rt.db, worker_id, rt.batch_size, rt.lease, batch.request_id, batch.cutoff_upload_id,
                                    batch.tenant_id, readable=rt.images.readable())
            if not uploads:
                break
            processed, failed = process_claimed(rt, orchestrator, worker_id, uploads, batch, should_stop)
            _add_counts(rt.db, batch_id, processed, failed)
            done += processed + failed
            renew_leases(rt.db, worker_id, rt.lease)
    except (DBAPIError, *INFRASTRUCTURE_FAULTS):
        raise  # the loop backs off and releases the batch for a retry
    except Exception as exc:
        logger.exception("Batch %s failed", batch.request_id)
        hand_back(rt, worker_id, refund_attempt=False)
        _close_batch(rt.db, batch_id, BatchState.FAILED, f"{type(exc).__name__}: {exc}")
        return done
    _close_batch(rt.db, batch_id)
    logger.info("Batch %s done: %d images", batch.request_id, done)
    return done


def run_worker_round(rt: Runtime, orchestrator: OrquestadorOCR, worker_id: str, should_stop: StopCheck = None) -> int:
    """One round of the background worker: claim what is pending and process it with the default profile.

    Stopped half-way, the round closes with what it finished; the rest stays claimed for hand_back.
    """
    readable = rt.images.readable()  # never an image on another host's own disk
    tenant_id = next_tenant_with_work(rt.db, readable)
    # Its share of the burst, not the whole of it: an idle worker beside it reads the rest.
    size = 0 if tenant_id is None else fair_claim_size(rt.db, worker_id, rt.batch_size, tenant_id, readable)
    uploads = claim_uploads(rt.db, worker_id, size, rt.lease, tenant_id=tenant_id, readable=readable) if size else []
    if not uploads:
        return 0
    now = rt.db.now()  # its lease is compared with the database's clock
    batch = insert_batch(rt.db, Batch(
        request_id=new_request_id(now), source="worker", tenant_id=tenant_id, profile=rt.default_profile, language="spa",
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
