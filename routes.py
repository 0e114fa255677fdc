"""The HTTP API under /api: uploads, batches, results, status and metrics.

Every answer is JSON; every malformed input gets a 4xx with `{"success": false, "error": ...}`.
State lives in the database, so any web process (or host) can answer for work another one did.
"""
from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from hashlib import sha256
from typing import Any

import psutil
from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, ProcessCollector, generate_latest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

import config
from database import Batch, BatchState, RateLimit, Result, Upload, UploadStatus, WorkerState, iso, utcnow
from extraction.rules import RulesError, get_registry
from main_ocr_process import SUPPORTED_LANGUAGES
from storage import UploadRejected, build_stored_name, display_name, inspect_image, is_plain_name, validate_metadata
from worker import (
    Runtime,
    find_original,
    insert_batch,
    live_workers,
    loaded_orchestrator,
    new_request_id,
    process_identity,
    purge_finished,
    queued_manual_batches,
    recover_abandoned_batches,
    run_manual_batch,
    shared_orchestrator,
)

api = Blueprint("api", __name__, url_prefix="/api")
logger = logging.getLogger(__name__)

# \Z, not $ (which also matches before a final newline); ASCII digits only.
REQUEST_ID_PATTERN = re.compile(r"^BATCH_\d{8}_\d{6}_[0-9a-f]{3,12}\Z", re.ASCII)
DEFAULT_LIST_LIMIT = 1000
MAX_LIST_LIMIT = 10000
BATCH_POLL_SECONDS = 0.25
NAME_ATTEMPTS = 1000
STORE_ATTEMPTS = 3
STORAGE_RETRY_AFTER_SECONDS = 30


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.details = details


def runtime() -> Runtime:
    return current_app.extensions["ocr_runtime"]


def ok(payload: dict[str, Any], status: int = 200) -> Response:
    response = jsonify({"success": True, **payload})
    response.status_code = status
    return response


# --- input helpers ----------------------------------------------------------------------------
def json_body() -> dict[str, Any]:
    """The request's JSON object; an empty body is an empty object, anything malformed is a 400."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting like [[[[...]]]]
        raise ApiError(400, "malformed_json", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "The request body must be a JSON object")
    return body


def _bool_field(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_parameter", f"{name} must be true or false", details={"field": name})
    return value


def _limit_arg() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIST_LIMIT
    # isdigit() alone accepts "²" (int() refuses it) and 5,000-digit strings (above int()'s limit).
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_LIST_LIMIT:
        raise ApiError(400, "invalid_parameter", f"limit must be an integer from 1 to {MAX_LIST_LIMIT}",
                       details={"field": "limit"})
    return int(raw)


def _time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise ApiError(400, "invalid_parameter", f"{name} must be an ISO 8601 date or time",
                       details={"field": name}) from None
    return moment


def _client_key() -> str:
    api_key = request.headers.get("X-API-Key")
    if api_key and current_app.config["API_KEYS"]:
        return "key:" + sha256(api_key.encode("utf-8")).hexdigest()[:24]
    return f"ip:{request.remote_addr or 'unknown'}"


# --- uploads ----------------------------------------------------------------------------------
def _file_entry(upload: Upload) -> dict[str, Any]:
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


@api.post("/upload")
def upload_files() -> Response:
    rt = runtime()
    settings = rt.settings
    files = [f for f in request.files.getlist("files") + request.files.getlist("file") if f and f.filename]
    if not files:
        raise ApiError(400, "no_files", "Send one or more images in the multipart field 'files'")
    if len(files) > settings["MAX_FILES_PER_UPLOAD"]:
        raise ApiError(429, "too_many_files",
                       f"At most {settings['MAX_FILES_PER_UPLOAD']} files per upload; send the rest in another request",
                       retry_after=1, details={"received": len(files), "limit": settings["MAX_FILES_PER_UPLOAD"]})
    try:
        metadata = validate_metadata(request.form, settings["MAX_FORM_FIELD_LENGTH"])
    except UploadRejected as exc:
        raise ApiError(exc.status, exc.code, exc.message, details={"field": exc.field}) from None

    staged_files = []
    try:
        entries = []
        for index, file in enumerate(files):
            original = display_name(file.filename)
            try:
                staged = rt.storage.stage(file.stream, settings["MAX_FILE_SIZE"])
                staged_files.append(staged)
                if staged.size == 0:
                    raise UploadRejected("empty_file", "The file is empty")
                info = inspect_image(staged.path.read_bytes())
            except UploadRejected as exc:
                # One bad file rejects the request: nothing is stored, the client fixes and resends.
                raise ApiError(exc.status, exc.code, exc.message, details={"file": original, "index": index}) from None
            entries.append((original, staged, info))
        uploads = _store_uploads(rt, entries, metadata)
    except OSError as exc:
        # A full or failing disk: nothing was kept (no file, no row), so the client can simply retry.
        logger.error("Upload not stored: %s: %s", type(exc).__name__, exc.strerror or exc)
        raise ApiError(503, "storage_unavailable", "The file could not be stored; retry shortly",
                       retry_after=STORAGE_RETRY_AFTER_SECONDS) from None
    finally:
        for staged in staged_files:
            rt.storage.finish_publish(staged)
    return ok({
        "files_uploaded": len(uploads),
        "files_processed": [
            {key: entry[key] for key in ("original_name", "stored_name", "metadata", "id", "sha256", "duplicado_de", "status")}
            for entry in map(_file_entry, uploads)
        ],
    })


def _free_name(session: Any, rt: Runtime, metadata: dict[str, str], extension: str) -> str:
    for attempt in range(NAME_ATTEMPTS):
        name = build_stored_name(metadata, extension, attempt)
        taken = session.scalar(select(Upload.id).where(Upload.stored_name == name))
        if taken is None and rt.storage.locate(name) is None:
            return name
    raise ApiError(409, "name_exhausted", "Too many files with the same metadata; change horamin or nombre")


def _store_uploads(rt: Runtime, staged: list[tuple[str, Any, Any]], metadata: dict[str, str]) -> list[Upload]:
    """Records and files of one request, all or nothing.

    Each file is linked into the inbox inside the open transaction and the transaction is then
    committed; if the commit fails, the linked files are removed again.
    """
    for attempt in range(STORE_ATTEMPTS):
        published: list[tuple[Any, str]] = []
        with rt.db.session() as session:
            try:
                uploads = []
                for original, item, info in staged:
                    name = _free_name(session, rt, metadata, info.extension)
                    upload = Upload(stored_name=name, original_name=original, sha256=item.sha256,
                                    size_bytes=item.size, image_format=info.image_format, upload_metadata=metadata,
                                    duplicado_de=find_original(session, item.sha256))
                    session.add(upload)
                    session.flush()
                    rt.storage.publish(item, name)
                    published.append((item, name))
                    uploads.append(upload)
                session.commit()
                return uploads
            except BaseException as exc:
                # Files first: a rollback on a lost connection can raise too, and must not leave them behind.
                for item, name in published:
                    rt.storage.path("inbox", name).unlink(missing_ok=True)
                session.rollback()
                # Another request took one of the names between our check and our insert: retry.
                if isinstance(exc, (IntegrityError, FileExistsError)) and attempt + 1 < STORE_ATTEMPTS:
                    continue
                raise
    raise AssertionError("unreachable")


def _list_files(statuses: tuple[str, ...]) -> Response:
    limit = _limit_arg()
    with runtime().db.session() as session:
        uploads = session.scalars(select(Upload).where(Upload.status.in_(statuses)).order_by(Upload.id).limit(limit)).all()
    return ok({"count": len(uploads), "files": [_file_entry(u) for u in uploads]})


@api.get("/files/pending")
def files_pending() -> Response:
    return _list_files((UploadStatus.PENDING, UploadStatus.PROCESSING))


@api.get("/files/processed")
def files_processed() -> Response:
    return _list_files(UploadStatus.FINISHED)


@api.post("/clean")
def clean() -> Response:
    body = json_body()
    hours = body.get("retention_hours", runtime().settings["RETENTION_HOURS"])
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not math.isfinite(hours) \
            or not 0 <= hours <= 24 * 3650:
        raise ApiError(400, "invalid_parameter", "retention_hours must be a number of hours from 0 to 87600",
                       details={"field": "retention_hours"})
    report = purge_finished(runtime(), float(hours))
    return ok({"message": f"Removed {report['uploads_removed']} finished uploads older than {hours} h", **report})


# --- batches ----------------------------------------------------------------------------------
def acquire_rate_limit(rt: Runtime, key: str, interval_seconds: float) -> int | None:
    """None when the action is allowed now (and recorded); else the seconds to wait.

    Kept in the database so every gunicorn worker and host enforces the same limit.
    """
    if interval_seconds <= 0:
        return None
    now = utcnow()
    with rt.db.session() as session:
        allowed = session.execute(
            update(RateLimit).where(RateLimit.key == key, RateLimit.last_at <= now - timedelta(seconds=interval_seconds))
            .values(last_at=now)
        ).rowcount
        if allowed:
            session.commit()
            return None
        last = session.scalar(select(RateLimit.last_at).where(RateLimit.key == key))
        if last is None:
            session.add(RateLimit(key=key, last_at=now))
            try:
                session.commit()
                return None
            except IntegrityError:
                session.rollback()  # a concurrent request of the same client won
                last = session.scalar(select(RateLimit.last_at).where(RateLimit.key == key)) or now
        return max(1, math.ceil(interval_seconds - (now - last).total_seconds()))


def _create_manual_batch(rt: Runtime, profile: str, language: str, include_coordinates: bool, client: str) -> Batch:
    with rt.db.session() as session:
        waiting = (UploadStatus.PENDING, UploadStatus.PROCESSING)
        cutoff = session.scalar(select(func.max(Upload.id)).where(Upload.status.in_(waiting)))
        total = session.scalar(select(func.count()).select_from(Upload).where(Upload.status == UploadStatus.PENDING)) or 0
    now = utcnow()
    batch = Batch(request_id=new_request_id(now), source="manual", profile=profile, language=language,
                  include_coordinates=include_coordinates, client_key=client, cutoff_upload_id=cutoff or 0,
                  total_files=total, created_at=now)
    if cutoff is None:  # nothing to do: the batch is complete as soon as it exists
        batch.state, batch.started_at, batch.finished_at, batch.processing_time = BatchState.COMPLETED, now, now, 0.0
    return insert_batch(rt.db, batch)


def _run_here(rt: Runtime) -> None:
    """No worker is alive: this web process runs the queued manual batches itself, oldest first.

    Claims make this safe when several web processes do it at once. Batches abandoned by a web
    process that was recycled mid-run were put back in the queue and are picked up here too.
    """
    identity = process_identity("web")
    for batch_id in queued_manual_batches(rt.db):
        run_manual_batch(rt, shared_orchestrator(), identity, batch_id)


def _worker_will_run_it(rt: Runtime) -> bool:
    return bool(live_workers(rt.db, ready_only=False))


def _get_batch(rt: Runtime, batch_id: int) -> Batch:
    with rt.db.session() as session:
        return session.get(Batch, batch_id)


def _wait_for_batch(rt: Runtime, batch: Batch, timeout: float) -> Batch:
    """Wait while a worker processes the batch; take it over if no worker is alive to do it."""
    deadline = time.monotonic() + timeout
    while batch.state not in BatchState.FINISHED and time.monotonic() < deadline:
        if batch.state == BatchState.QUEUED and not _worker_will_run_it(rt):
            _run_here(rt)
        else:
            time.sleep(BATCH_POLL_SECONDS)
        batch = _get_batch(rt, batch.id)
    return batch


def _batch_files(rt: Runtime, request_id: str) -> list[dict[str, Any]]:
    with rt.db.session() as session:
        rows = session.execute(
            select(Upload.stored_name, Upload.status, Upload.error_code, Upload.error_message,
                   Result.processing_status, Result.coordinates_available, Result.confidence_average, Result.text_length)
            .outerjoin(Result, Result.upload_id == Upload.id)
            .where(Upload.request_id == request_id).order_by(Upload.id)
        ).all()
    files = []
    for row in rows:
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
    return files


def _batch_outcome(batch: Batch) -> str:
    if batch.state == BatchState.FAILED:
        return "error"
    if batch.error_count and not batch.processed_count:
        return "error"
    return "partial" if batch.error_count else "success"


@api.post("/ocr/process_batch")
def process_batch() -> Response:
    rt = runtime()
    body = json_body()
    profile = rt.default_profile if body.get("profile") is None else body["profile"]
    profiles = config.OCR_CONFIG["profiles"]
    if not isinstance(profile, str) or profile not in profiles:
        raise ApiError(400, "unknown_profile", f"Unknown profile; available: {', '.join(sorted(profiles))}",
                       details={"field": "profile"})
    language = "spa" if body.get("language") is None else body["language"]
    if language not in SUPPORTED_LANGUAGES:
        raise ApiError(400, "unsupported_language", f"language must be one of: {', '.join(SUPPORTED_LANGUAGES)}",
                       details={"field": "language"})
    include_coordinates = _bool_field(body, "include_coordinates", True)
    run_async = _bool_field(body, "async", False)

    client = _client_key()
    wait = acquire_rate_limit(rt, f"process_batch:{client}", rt.settings["PROCESS_BATCH_MIN_INTERVAL_SECONDS"])
    if wait is not None:
        raise ApiError(429, "rate_limited", f"One process_batch every {rt.settings['PROCESS_BATCH_MIN_INTERVAL_SECONDS']} s; "
                       f"retry in {wait} s", retry_after=wait)

    worker_alive = _worker_will_run_it(rt)
    if not worker_alive:
        recover_abandoned_batches(rt.db)
    batch = _create_manual_batch(rt, profile, language, include_coordinates, client)
    if run_async:
        if batch.state == BatchState.QUEUED and not worker_alive:
            threading.Thread(target=_run_here, args=(rt,), name="ocr-manual-batch", daemon=True).start()
        return ok({"status": "accepted", "request_id": batch.request_id, "state": batch.state,
                   "files_pending": batch.total_files, "status_url": f"/api/ocr/result/{batch.request_id}"}, 202)

    batch = _wait_for_batch(rt, batch, config.OCR_CONFIG["batch_processing"]["timeout_seconds"])
    if batch.state not in BatchState.FINISHED:
        return ok({"status": "processing", "request_id": batch.request_id, "state": batch.state,
                   "status_url": f"/api/ocr/result/{batch.request_id}"}, 202)
    return ok({
        "status": _batch_outcome(batch),
        "request_id": batch.request_id,
        "profile": batch.profile,
        "files_processed": batch.processed_count + batch.error_count,
        "files_failed": batch.error_count,
        "processing_time": f"{batch.processing_time or 0.0:.2f}s",
        "results": _batch_files(rt, batch.request_id),
    })


@api.get("/ocr/result/<request_id>")
def batch_result(request_id: str) -> Response:
    if not REQUEST_ID_PATTERN.match(request_id):
        raise ApiError(404, "not_found", "Unknown request_id")
    rt = runtime()
    with rt.db.session() as session:
        batch = session.scalar(select(Batch).where(Batch.request_id == request_id))
    if batch is None:
        raise ApiError(404, "not_found", "Unknown request_id")
    files = _batch_files(rt, request_id)
    finished = batch.processed_count + batch.error_count
    total = max(batch.total_files, finished, len(files))
    return ok({
        "request_id": batch.request_id,
        "state": batch.state,
        "status": _batch_outcome(batch) if batch.state in BatchState.FINISHED else batch.state,
        "source": batch.source,
        "profile": batch.profile,
        "language": batch.language,
        "created_at": iso(batch.created_at),
        "started_at": iso(batch.started_at),
        "finished_at": iso(batch.finished_at),
        "processing_time": batch.processing_time,
        "progress": {
            "total": total,
            "processed": batch.processed_count,
            "failed": batch.error_count,
            "remaining": max(0, total - finished) if batch.state not in BatchState.FINISHED else 0,
            "percent": 100.0 if batch.state in BatchState.FINISHED else round(100.0 * finished / total, 1) if total else 0.0,
        },
        "error": batch.error_message,
        "files": files,
    })


@api.get("/ocr/result_data/<filename>")
def result_data(filename: str) -> Response:
    # The name is only ever a database key here, never a path; odd names cannot exist in the table.
    if not is_plain_name(filename):
        raise ApiError(404, "not_found", "Unknown filename")
    with runtime().db.session() as session:
        row = session.execute(
            select(Upload.status, Result.document).outerjoin(Result, Result.upload_id == Upload.id)
            .where(Upload.stored_name == filename)
        ).first()
    if row is None:
        raise ApiError(404, "not_found", "Unknown filename")
    if row.document is None:
        raise ApiError(404, "result_not_ready", f"The file is {row.status}; its result is not ready yet",
                       details={"status": row.status})
    return ok({"filename": filename, "data": row.document})


@api.get("/extract_results")
def extract_results() -> Response:
    request_id = request.args.get("request_id")
    if request_id is not None and not REQUEST_ID_PATTERN.match(request_id):
        raise ApiError(400, "invalid_parameter", "request_id is not a batch id such as BATCH_20250711_143052_a8f",
                       details={"field": "request_id"})
    since, until = _time_arg("since"), _time_arg("until")
    if since and until and since > until:
        raise ApiError(400, "invalid_parameter", "since must not be after until", details={"field": "since"})
    limit = _limit_arg()
    query = select(Result.document).order_by(Result.id).limit(limit)
    if request_id:
        query = query.where(Result.request_id == request_id)
    if since:
        query = query.where(Result.created_at >= since)
    if until:
        query = query.where(Result.created_at <= until)
    with runtime().db.session() as session:
        documents = session.scalars(query).all()
    return ok({"count": len(documents), "results": documents})


# --- status, health, configuration, metrics ---------------------------------------------------
def _counts_by(session: Any, column: Any) -> dict[str, int]:
    return {key: count for key, count in session.execute(select(column, func.count()).group_by(column)).all()}


def _worker_summary(worker: WorkerState) -> dict[str, Any]:
    return {
        "worker_id": worker.worker_id, "hostname": worker.hostname, "pid": worker.pid, "state": worker.state,
        "models_loaded": worker.models_loaded, "rss_bytes": worker.rss_bytes,
        "images_processed": worker.images_processed, "heartbeat_at": iso(worker.heartbeat_at),
    }


@api.get("/status")
def status() -> Response:
    rt = runtime()
    with rt.db.session() as session:
        uploads = _counts_by(session, Upload.status)
        batches = _counts_by(session, Batch.state)
    workers = live_workers(rt.db)
    return ok({
        "status": "operational" if workers or not rt.settings["WORKER_ENABLED"] else "degraded",
        "timestamp": iso(utcnow()),
        "database": {"ok": True, "dialect": rt.db.dialect},
        "worker": {"alive": bool(workers), "enabled": rt.settings["WORKER_ENABLED"],
                   "workers": [_worker_summary(w) for w in workers]},
        "queue": {state: uploads.get(state, 0) for state in
                  (UploadStatus.PENDING, UploadStatus.PROCESSING, UploadStatus.PROCESSED, UploadStatus.ERROR)},
        "batches": {state: batches.get(state, 0) for state in
                    (BatchState.QUEUED, BatchState.RUNNING, BatchState.COMPLETED, BatchState.FAILED)},
        "default_profile": rt.default_profile,
        "profiles": sorted(config.OCR_CONFIG["profiles"]),
    })


@api.get("/metrics/batch")
def batch_metrics() -> Response:
    rt = runtime()
    with rt.db.session() as session:
        states = _counts_by(session, Batch.state)
        images, failed, busy = session.execute(
            select(func.coalesce(func.sum(Batch.processed_count), 0), func.coalesce(func.sum(Batch.error_count), 0),
                   func.coalesce(func.sum(Batch.processing_time), 0.0))
            .where(Batch.state.in_(BatchState.FINISHED))
        ).one()
        average_batch = session.scalar(select(func.avg(Batch.processing_time)).where(
            Batch.state.in_(BatchState.FINISHED), Batch.processed_count + Batch.error_count > 0))
        average_image = session.scalar(select(func.avg(Result.processing_time)).where(Result.processing_status == "success"))
        recent = session.scalars(select(Batch).order_by(Batch.id.desc()).limit(10)).all()
    return ok({
        "batches": {"total": sum(states.values()), **{s: states.get(s, 0) for s in
                    (BatchState.QUEUED, BatchState.RUNNING, BatchState.COMPLETED, BatchState.FAILED)}},
        "images": {"processed": int(images), "failed": int(failed)},
        "timing": {
            "average_batch_seconds": round(float(average_batch), 3) if average_batch is not None else None,
            "average_image_seconds": round(float(average_image), 4) if average_image is not None else None,
            "images_per_second": round((images + failed) / busy, 3) if busy else None,
        },
        "recent": [{
            "request_id": b.request_id, "source": b.source, "state": b.state, "profile": b.profile,
            "files": b.processed_count + b.error_count, "failed": b.error_count,
            "processing_time": b.processing_time, "created_at": iso(b.created_at),
        } for b in recent],
    })


def _models_loaded(workers: list[WorkerState]) -> list[str]:
    models = {model for worker in workers for model in worker.models_loaded or []}
    local = loaded_orchestrator()
    if local is not None:
        models.update(local.aplicador.predictors)
    return sorted(models)


@api.get("/health")
def health() -> Response:
    rt = runtime()
    database_ok = rt.db.ping()
    workers = live_workers(rt.db) if database_ok else []
    models = _models_loaded(workers)
    worker_ready = bool(workers)
    if not database_ok:
        state, code = "unhealthy", 503
    elif worker_ready or not rt.settings["WORKER_ENABLED"]:
        state, code = "healthy", 200
    else:
        state, code = "degraded", 200
    response = jsonify({
        "success": database_ok,
        "status": state,
        "timestamp": iso(utcnow()),
        "checks": {
            "database": {"ok": database_ok},
            "worker": {"ready": worker_ready, "required": rt.settings["WORKER_ENABLED"], "count": len(workers)},
            "models": {"loaded": models},
        },
    })
    response.status_code = code
    if code == 503:
        response.headers["Retry-After"] = "5"
    return response


@api.get("/config/extraction_rules")
def extraction_rules() -> Response:
    try:
        rules = get_registry().as_json()
    except RulesError as exc:
        raise ApiError(503, "rules_unavailable", f"The extraction rules could not be loaded: {exc}") from None
    return ok({"rules": rules})


@api.get("/config")
def api_config() -> Response:
    settings = runtime().settings
    return ok({
        "base_url": request.url_root,
        "endpoints": {
            "upload": "/api/upload",
            "process_batch": "/api/ocr/process_batch",
            "results": "/api/extract_results",
            "status": "/api/status",
            "health": "/api/health",
            "files_pending": "/api/files/pending",
            "files_processed": "/api/files/processed",
            "batch_result": "/api/ocr/result/<request_id>",
            "result_data": "/api/ocr/result_data/<filename>",
            "clean": "/api/clean",
            "metrics": "/api/metrics",
        },
        "limits": {
            "max_file_size": f"{settings['MAX_FILE_SIZE'] // (1024 * 1024)}MB",
            "max_request_size": f"{settings['MAX_CONTENT_LENGTH'] // (1024 * 1024)}MB",
            "max_batch_size": settings["MAX_FILES_PER_UPLOAD"],
            "allowed_extensions": sorted(config.ALLOWED_EXTENSIONS),
            "process_batch_min_interval_seconds": settings["PROCESS_BATCH_MIN_INTERVAL_SECONDS"],
        },
        "ocr": {"default_profile": settings["OCR_DEFAULT_PROFILE"], "profiles": sorted(config.OCR_CONFIG["profiles"]),
                "languages": list(SUPPORTED_LANGUAGES)},
        "auth": {"api_key_required": bool(settings["API_KEYS"]), "header": "X-API-Key"},
        "retention_hours": settings["RETENTION_HOURS"],
    })


def _metrics_snapshot(rt: Runtime) -> dict[str, Any]:
    with rt.db.session() as session:
        uploads = _counts_by(session, Upload.status)
        batches = _counts_by(session, Batch.state)
        results = session.scalar(select(func.count()).select_from(Result)) or 0
    workers = live_workers(rt.db)
    cache = {"hits": 0, "misses": 0, "entries": 0, "size_mb": 0.0}
    for worker in workers:
        for key in cache:
            cache[key] += (worker.cache_stats or {}).get(key, 0) or 0
    local = loaded_orchestrator()
    if local is not None:
        for key, value in local.aplicador.cache_stats().items():
            if key in cache:
                cache[key] += value or 0
    memory = psutil.virtual_memory()
    process = psutil.Process()
    return {
        "system": {
            "cpu_usage": psutil.cpu_percent(interval=None),
            "memory_usage": memory.percent,
            "memory_total_bytes": memory.total,
            "memory_available_bytes": memory.available,
            "disk_usage": psutil.disk_usage(rt.settings["DATA_DIR"]).percent,
        },
        "process": {"pid": process.pid, "rss_bytes": process.memory_info().rss, "threads": process.num_threads()},
        "ocr": {
            "models_loaded": len(_models_loaded(workers)),
            "models": _models_loaded(workers),
            "cache": cache,
            "total_processed": uploads.get(UploadStatus.PROCESSED, 0),
            "total_failed": uploads.get(UploadStatus.ERROR, 0),
            "workers": [_worker_summary(w) for w in workers],
        },
        "totals": {"uploads": uploads, "batches": batches, "results": results},
    }


def _prometheus_text(snapshot: dict[str, Any]) -> bytes:
    # A fresh registry per scrape: every figure comes from the database, so all web processes agree.
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    totals, ocr, system = snapshot["totals"], snapshot["ocr"], snapshot["system"]

    uploads = Gauge("ocr_uploads", "Uploads by status", ["status"], registry=registry)
    for status in (UploadStatus.PENDING, UploadStatus.PROCESSING, UploadStatus.PROCESSED, UploadStatus.ERROR):
        uploads.labels(status).set(totals["uploads"].get(status, 0))
    batches = Gauge("ocr_batches", "Batches by state", ["state"], registry=registry)
    for state in (BatchState.QUEUED, BatchState.RUNNING, BatchState.COMPLETED, BatchState.FAILED):
        batches.labels(state).set(totals["batches"].get(state, 0))
    worker_rss = Gauge("ocr_worker_rss_bytes", "Resident memory of each live worker", ["worker"], registry=registry)
    for worker in ocr["workers"]:
        worker_rss.labels(worker["worker_id"]).set(worker["rss_bytes"] or 0)
    single = {
        "ocr_results": ("Stored per-image results", totals["results"]),
        "ocr_workers_ready": ("Workers with a fresh heartbeat", len(ocr["workers"])),
        "ocr_models_loaded": ("OCR profiles loaded by live workers", ocr["models_loaded"]),
        "ocr_cache_hits": ("OCR result cache hits in live workers", ocr["cache"]["hits"]),
        "ocr_cache_misses": ("OCR result cache misses in live workers", ocr["cache"]["misses"]),
        "ocr_cache_entries": ("OCR result cache entries in live workers", ocr["cache"]["entries"]),
        "system_cpu_percent": ("Host CPU use", system["cpu_usage"]),
        "system_memory_percent": ("Host memory use", system["memory_usage"]),
        "system_disk_percent": ("Use of the disk holding the data directory", system["disk_usage"]),
    }
    for name, (description, value) in single.items():
        Gauge(name, description, registry=registry).set(value)
    return generate_latest(registry)


def prometheus_metrics() -> Response:
    return Response(_prometheus_text(_metrics_snapshot(runtime())), content_type=CONTENT_TYPE_LATEST)


@api.get("/metrics")
def metrics() -> Response:
    output = request.args.get("format", "json")
    if output not in {"json", "prometheus"}:
        raise ApiError(400, "invalid_parameter", "format must be json or prometheus", details={"field": "format"})
    if output == "prometheus":
        return prometheus_metrics()
    return ok(_metrics_snapshot(runtime()))
