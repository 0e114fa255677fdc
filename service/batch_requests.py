"""Manual batches as the API sees them: requested, run here when no worker is alive, waited for, summarized."""
from __future__ import annotations

import importlib
import time
from typing import Any

from sqlalchemy import func, select

from database import Batch, BatchState, Result, Upload, UploadStatus, utcnow
from extraction.rules import get_registry
from main_ocr_process import shared_orchestrator
from service.batches import run_manual_batch
from service.blocking import run_blocking
from service.jobs import insert_batch, live_workers, queued_manual_batches
from service.runtime import Runtime, new_request_id, process_identity
from service.wakeup import wake_workers

BATCH_POLL_SECONDS = 0.25


def create_manual_batch(rt: Runtime, tenant_id: int, profile: str, language: str, include_coordinates: bool,
                        client: str) -> Batch:
    """A batch of the tenant's uploads pending now (never another tenant's)."""
    mine = Upload.tenant_id == tenant_id
    with rt.db.session() as session:
        waiting = (UploadStatus.PENDING, UploadStatus.PROCESSING)
        cutoff = session.scalar(select(func.max(Upload.id)).where(mine, Upload.status.in_(waiting)))
        total = session.scalar(select(func.count()).select_from(Upload).where(mine, Upload.status == UploadStatus.PENDING)) or 0
    now = utcnow()
    batch = Batch(request_id=new_request_id(now), source="manual", tenant_id=tenant_id, profile=profile, language=language,
                  include_coordinates=include_coordinates, client_key=client, cutoff_upload_id=cutoff or 0,
                  total_files=total, created_at=now)
    if cutoff is None:  # nothing to do: the batch is complete as soon as it exists
        batch.state, batch.started_at, batch.finished_at, batch.processing_time = BatchState.COMPLETED, now, now, 0.0
        return insert_batch(rt.db, batch)
    batch = insert_batch(rt.db, batch)
    wake_workers(rt)  # a live worker starts it now, not at its next poll
    return batch


def run_here(rt: Runtime) -> None:
    """No worker is alive: this web process runs the queued manual batches itself, oldest first.

    Claims make this safe when several web processes do it at once. Batches abandoned by a web
    process that was recycled mid-run were put back in the queue and are picked up here too.
    """
    identity = process_identity("web")
    # Loading the rules checks each pattern's time bound in a child process; under gevent a child
    # can only be watched from the event loop, never from the real thread the OCR runs in.
    get_registry().current  # noqa: B018 - the loading is the point
    # The same for the OCR runtime, imported on first use (web processes stay small until then):
    # OnnxTR imports huggingface_hub, whose import sets up an asyncio child watcher, which under
    # gevent fails in a real thread ("child watchers are only available on the default loop").
    importlib.import_module("ocr.models")
    for batch_id in queued_manual_batches(rt.db):
        run_blocking(run_manual_batch, rt, shared_orchestrator(), identity, batch_id)


def worker_will_run_it(rt: Runtime) -> bool:
    return bool(live_workers(rt.db, ready_only=False))


def _get_batch(rt: Runtime, batch_id: int) -> Batch:
    with rt.db.session() as session:
        return session.get(Batch, batch_id)


def wait_for_batch(rt: Runtime, batch: Batch, timeout: float) -> Batch:
    """Wait while a worker processes the batch; take it over if no worker is alive to do it."""
    deadline = time.monotonic() + timeout
    while batch.state not in BatchState.FINISHED and time.monotonic() < deadline:
        if batch.state == BatchState.QUEUED and not worker_will_run_it(rt):
            run_here(rt)
        else:
            time.sleep(BATCH_POLL_SECONDS)
        batch = _get_batch(rt, batch.id)
    return batch


def batch_files(rt: Runtime, batch: Batch, limit: int, after_id: int = 0) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the batch's files, and the upload id to continue after (None: the last page)."""
    with rt.db.session() as session:
        rows = session.execute(
            select(Upload.id, Upload.stored_name, Upload.status, Upload.error_code, Upload.error_message,
                   Result.processing_status, Result.coordinates_available, Result.confidence_average, Result.text_length)
            .outerjoin(Result, Result.upload_id == Upload.id)
            .where(Upload.request_id == batch.request_id, Upload.tenant_id == batch.tenant_id, Upload.id > after_id)
            .order_by(Upload.id).limit(limit + 1)
        ).all()
    last_id = rows[limit - 1].id if len(rows) > limit else None
    files = []
    for row in rows[:limit]:
        entry: dict[str, Any] = {
            "filename": row.stored_name,
            "processing_status": row.processing_status or row.status,
            "coordinates_available": row.coordinates_available or 0,
            "confidence_average": row.confidence_average or 0.0,
            "text_length": row.text_length or 0,
        }
        if row.error_code:
            entry["error"] = {"code": row.error_code, "message": row.error_message}
        files.append(entry)
    return files, last_id


def batch_outcome(batch: Batch) -> str:
    if batch.state == BatchState.FAILED:
        return "error"
    if batch.error_count and not batch.processed_count:
        return "error"
    return "partial" if batch.error_count else "success"
