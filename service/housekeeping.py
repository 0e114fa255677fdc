"""Keeping disk and database in step: inbox files adopted, crash leftovers reconciled, receipts
whose reconciliation failed reconciled again, old work purged."""
from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.exc import IntegrityError

from database import (
    DEFAULT_TENANT_ID,
    Batch,
    BatchState,
    DeliveryState,
    Payment,
    RateLimit,
    Result,
    Upload,
    UploadStatus,
    WebhookDelivery,
    WebhookEvent,
    WorkerState,
    iso,
    utcnow,
)
from image_store import LOCAL, ImageRef
from service.conciliation import reconcile_upload
from service.idempotency import purge_expired as purge_expired_keys
from service.image_check import inspect_image
from service.jobs import INFRASTRUCTURE_FAULTS
from service.results import original_or_duplicate
from service.runtime import Runtime
from service.webhooks import enqueue_upload_event
from storage import (
    STATUS_DIRECTORY,
    UploadRejected,
    is_plain_name,
    is_service_name,
    metadata_from_stored_name,
    name_part,
    remove_file,
    validate_metadata,
)

logger = logging.getLogger(__name__)

INBOX_SCAN_LIMIT = 500
# Staging files of uploads are never younger than this when swept, whatever the retention.
MIN_TEMP_AGE_SECONDS = 3600
# A receipt is reconciled by the worker that finishes it right after its commit: the sweep leaves
# it that long, so it does not race a run that is about to happen anyway.
UNRECONCILED_MIN_AGE_SECONDS = 60
UNRECONCILED_SWEEP_LIMIT = 100


# --- files dropped into the inbox -------------------------------------------------------------
def adopt_inbox_files(rt: Runtime) -> int:
    """Register images put straight into data/inbox/ (no upload record) as uploads of the tenant
    `default`, so they get processed too; with IMAGE_STORAGE=postgresql (or s3) their bytes move
    into the database (or the bucket).

    Files named by the service (storage.is_service_name: an upload's id closes the name) are never
    adopted: they belong to an upload of some tenant, and one without a row is the leftover of a
    database restored from an older dump or of an upload that never committed, not a new image.
    """
    candidates = [path for path in rt.storage.inbox_candidates(rt.settings["INBOX_ADOPT_MIN_AGE_SECONDS"], time.time())
                  if not is_service_name(path.name)][:INBOX_SCAN_LIMIT]
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
    # A file refused as an image (too large, not an image) stays in this host's errors/.
    in_store = rt.images.kind != LOCAL and error is None
    with rt.db.session() as session:
        upload = Upload(stored_name=name, original_name=path.name, sha256=sha256, size_bytes=len(data),
                        image_format=info.image_format if info else None, upload_metadata=metadata, source="inbox",
                        tenant_id=DEFAULT_TENANT_ID, **original_or_duplicate(session, DEFAULT_TENANT_ID, sha256))
        if error is not None:
            upload.status = UploadStatus.ERROR
            upload.processed_at = utcnow()
            upload.error_code, upload.error_message = error.code, error.message
        session.add(upload)
        try:
            session.flush()
            if in_store:
                rt.images.put_bytes(session, upload, data)
            else:
                rt.images.mark_local(upload)
            if error is not None:  # failed as it is registered: its event commits with it
                enqueue_upload_event(session, upload, "upload.failed")
            session.commit()
        except IntegrityError:
            session.rollback()
            # Registered by another worker in the meantime. Its object in a bucket has this very key
            # (same name, same bytes): it stays.
            return False
    if in_store:
        # The bytes are in the database (or the bucket) with the row: the host's copy goes.
        remove_file(rt.storage.path("inbox", name))
    elif error is not None:
        rt.storage.move(name, "errors")
    logger.info("Registered inbox file %s%s", name, f" as error ({error.code})" if error else "")
    return True


def _adopted_name(name: str, extension: str | None) -> str:
    stem, _, _ext = name.rpartition(".")
    stem = stem or name
    safe = name_part(stem).strip("@") or f"inbox_{secrets.token_hex(4)}"
    candidate = f"{safe[:200]}.{extension or (_ext.lower() if _ext.isalnum() else 'bin')}"
    return candidate if is_plain_name(candidate) else f"inbox_{secrets.token_hex(4)}.{extension or 'bin'}"


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


# --- receipts left unreconciled ------------------------------------------------------------------
def unreconciled_receipts(rt: Runtime, limit: int = UNRECONCILED_SWEEP_LIMIT) -> list[tuple[int, int]]:
    """(tenant id, upload id) of processed receipts whose `conciliacion` is still null a while after
    they were recorded: the reconciliation after finishing (or after a correction) did not commit."""
    cutoff = utcnow() - timedelta(seconds=UNRECONCILED_MIN_AGE_SECONDS)
    with rt.db.session() as session:
        return [tuple(row) for row in session.execute(
            select(Result.tenant_id, Result.upload_id).join(Upload, Upload.id == Result.upload_id)
            .where(Result.processing_status == "success", Upload.status == UploadStatus.PROCESSED,
                   Result.document["conciliacion"].as_string().is_(None), Upload.processed_at < cutoff)
            .order_by(Result.upload_id).limit(limit))]


def retry_reconciliation(rt: Runtime) -> int:
    """Reconcile the receipts unreconciled_receipts finds; how many it reconciled.

    Several workers may sweep at once: reconcile_upload runs under the tenant's lock, and a second
    run over a receipt finds the state the first stored, so it changes nothing and tells nothing.
    The database failing again ends the sweep (the worker backs off; the next sweep resumes); a
    receipt that fails for its own reasons is logged and left for the next sweep."""
    done = 0
    for tenant_id, upload_id in unreconciled_receipts(rt):
        try:
            reconcile_upload(rt, tenant_id, upload_id)
        except INFRASTRUCTURE_FAULTS:
            raise
        except Exception:  # noqa: BLE001 - one receipt's failure must not stop the others
            logger.exception("Reconciliation of upload %s failed again", upload_id)
            continue
        done += 1
    if done:
        logger.info("Reconciled %d receipts whose reconciliation had failed", done)
    return done


# --- retention --------------------------------------------------------------------------------
def purge_finished(rt: Runtime, retention_hours: float) -> dict[str, Any]:
    """Remove finished uploads, their results and images older than the retention; never pending
    work, nor an upload whose image is on another host's own disk (its host removes both)."""
    now = utcnow()
    cutoff = now - timedelta(hours=retention_hours)
    finished_at = func.coalesce(Upload.processed_at, Upload.created_at)
    with rt.db.session() as session:
        rows = session.execute(
            select(*ImageRef.columns(), Upload.size_bytes)
            .where(Upload.status.in_(UploadStatus.FINISHED), finished_at < cutoff, rt.images.readable())).all()
    expired = [ImageRef(*row[:4]) for row in rows]
    sizes = {row.id: row.size_bytes for row in rows}
    removed_names: list[str] = []
    freed = 0
    results_removed = 0
    for start in range(0, len(expired), 500):
        chunk = expired[start:start + 500]
        ids = [ref.upload_id for ref in chunk]
        with rt.db.session() as session:
            # Locked, so that a requeue cannot take one back between deleting its image and its row.
            deleted = set(session.scalars(
                select(Upload.id).where(Upload.id.in_(ids), Upload.status.in_(UploadStatus.FINISHED))
                .with_for_update()).all())
            results_removed += session.execute(delete(Result).where(Result.upload_id.in_(deleted))).rowcount
            # Database images go in the transaction that deletes their rows: from any host, all at once.
            freed += rt.images.delete_in(session, [ref.upload_id for ref in chunk
                                                   if ref.in_database and ref.upload_id in deleted])
            session.execute(delete(Upload).where(Upload.id.in_(deleted)))
            session.commit()
        for ref in chunk:
            if ref.upload_id not in deleted:
                continue
            removed_names.append(ref.stored_name)
            freed += rt.images.remove_files(ref, sizes[ref.upload_id])
    with rt.db.session() as session:
        batches_removed = session.execute(
            delete(Batch).where(Batch.state.in_(BatchState.FINISHED), Batch.finished_at < cutoff)).rowcount
        session.execute(delete(RateLimit).where(RateLimit.last_at < now - timedelta(days=1)))
        # The payment ledger has its own, much longer memory: a receipt reused months later is still caught.
        payments_forgotten = session.execute(delete(Payment).where(
            Payment.created_at < now - timedelta(days=rt.settings["PAYMENT_MEMORY_DAYS"]))).rowcount
        session.execute(delete(WorkerState).where(WorkerState.heartbeat_at < now - timedelta(days=1)))
        keys_expired = purge_expired_keys(session)
        # Webhook events (their deliveries and attempts go with them) once settled and past both the
        # file retention and the retry window: the deliveries list keeps what a client can still act on.
        unsettled = exists().where(WebhookDelivery.event_id == WebhookEvent.id,
                                   WebhookDelivery.state.notin_(DeliveryState.FINISHED))
        webhook_events_removed = session.execute(delete(WebhookEvent).where(
            WebhookEvent.created_at < now - timedelta(hours=max(retention_hours, rt.settings["WEBHOOK_RETRY_HOURS"])),
            ~unsettled).execution_options(synchronize_session=False)).rowcount
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
        "payments_forgotten": payments_forgotten,
        "idempotency_keys_expired": keys_expired,
        "webhook_events_removed": webhook_events_removed,
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
