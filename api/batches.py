"""Batches: process_batch (synchronous, or async with 202) and a batch's progress and files."""
from __future__ import annotations

import re
import threading

from flask import Blueprint, Response

import config
from api.errors import ApiError, ok
from api.inputs import bool_field, client_key, cursor_arg, cursor_for, json_body, limit_arg, runtime, tenant_id
from api.openapi import endpoint
from api.schemas import BatchAccepted, BatchDone, BatchResultOut, LimitQuery, PageQuery, ProcessBatchBody
from database import BatchState, iso
from service.batch_requests import batch_files, batch_outcome, create_manual_batch, run_here, wait_for_batch, worker_will_run_it
from service.jobs import recover_abandoned_batches
from service.queries import batch_by_request_id
from service.rate_limit import acquire_rate_limit

blueprint = Blueprint("batches", __name__)
# \Z, not $ (which also matches before a final newline); ASCII digits only.
REQUEST_ID_PATTERN = re.compile(r"^BATCH_\d{8}_\d{6}_[0-9a-f]{3,12}\Z", re.ASCII)


@blueprint.post("/ocr/process_batch")
@endpoint("Run OCR on every pending upload of the tenant (sync, or async with 202)", query=LimitQuery,
          json=ProcessBatchBody, ok={200: BatchDone, 202: BatchAccepted}, rate_limited=True,
          errors={400: "unknown_profile, unsupported_language, invalid_parameter, malformed_json",
                  429: "rate_limited: one process_batch per PROCESS_BATCH_MIN_INTERVAL_SECONDS per client"})
def process_batch() -> Response:
    rt = runtime()
    body = json_body()
    profile = rt.default_profile if body.get("profile") is None else body["profile"]
    profiles = config.OCR_PROFILES
    if not isinstance(profile, str) or profile not in profiles:
        raise ApiError(400, "unknown_profile", f"Unknown profile; available: {', '.join(sorted(profiles))}",
                       details={"field": "profile"})
    language = "spa" if body.get("language") is None else body["language"]
    if language not in config.SUPPORTED_LANGUAGES:
        raise ApiError(400, "unsupported_language", f"language must be one of: {', '.join(config.SUPPORTED_LANGUAGES)}",
                       details={"field": "language"})
    include_coordinates = bool_field(body, "include_coordinates", True)
    run_async = bool_field(body, "async", False)

    client = client_key()
    wait = acquire_rate_limit(rt, f"process_batch:{client}", rt.settings["PROCESS_BATCH_MIN_INTERVAL_SECONDS"])
    if wait is not None:
        raise ApiError(429, "rate_limited", f"One process_batch every {rt.settings['PROCESS_BATCH_MIN_INTERVAL_SECONDS']} s; "
                       f"retry in {wait} s", retry_after=wait)

    worker_alive = worker_will_run_it(rt)
    if not worker_alive:
        recover_abandoned_batches(rt.db)
    batch = create_manual_batch(rt, tenant_id(), profile, language, include_coordinates, client)
    if run_async:
        if batch.state == BatchState.QUEUED and not worker_alive:
            threading.Thread(target=run_here, args=(rt,), name="ocr-manual-batch", daemon=True).start()
        return ok({"status": "accepted", "request_id": batch.request_id, "state": batch.state,
                   "files_pending": batch.total_files, "status_url": f"/api/ocr/result/{batch.request_id}"}, 202)

    batch = wait_for_batch(rt, batch, rt.batch_timeout_seconds)
    if batch.state not in BatchState.FINISHED:
        return ok({"status": "processing", "request_id": batch.request_id, "state": batch.state,
                   "status_url": f"/api/ocr/result/{batch.request_id}"}, 202)
    files, last_id = batch_files(rt, batch, limit_arg())
    return ok({
        "status": batch_outcome(batch),
        "request_id": batch.request_id,
        "profile": batch.profile,
        "files_processed": batch.processed_count + batch.error_count,
        "files_failed": batch.error_count,
        "processing_time": f"{batch.processing_time or 0.0:.2f}s",
        "results": files,
        # The rest of a large batch's files: GET status_url?cursor=next_cursor.
        "next_cursor": cursor_for(last_id),
        "status_url": f"/api/ocr/result/{batch.request_id}",
    })


@blueprint.get("/ocr/result/<request_id>")
@endpoint("A batch's progress and one page of its files", query=PageQuery, ok=BatchResultOut,
          errors={404: "not_found: no batch with this request_id in the tenant"})
def batch_result(request_id: str) -> Response:
    if not REQUEST_ID_PATTERN.match(request_id):
        raise ApiError(404, "not_found", "Unknown request_id")
    rt = runtime()
    batch = batch_by_request_id(rt, tenant_id(), request_id)
    if batch is None:
        raise ApiError(404, "not_found", "Unknown request_id")
    files, last_id = batch_files(rt, batch, limit_arg(), cursor_arg())
    finished = batch.processed_count + batch.error_count
    total = max(batch.total_files, finished)
    return ok({
        "request_id": batch.request_id,
        "state": batch.state,
        "status": batch_outcome(batch) if batch.state in BatchState.FINISHED else batch.state,
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
        "next_cursor": cursor_for(last_id),
    })


