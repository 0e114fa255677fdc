"""Uploads: receiving files with their metadata, the pending and processed lists, and the cleanup."""
from __future__ import annotations

import logging
import math
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from api.auth import principal
from api.errors import STORAGE_RETRY_AFTER_SECONDS, ApiError, ok
from api.inputs import client_key, cursor_arg, cursor_for, json_body, limit_arg, review_filter_arg, runtime, tenant_id
from api.openapi import endpoint
from api.schemas import CleanBody, CleanOut, FilesOut, PageQuery, ProcessedQuery, UploadForm, UploadHeaders, UploadOut
from database import Upload, UploadStatus
from service.follow import upload_entry
from service.housekeeping import purge_finished
from service.idempotency import KeyInProgress, KeyReused, abandon, begin, fingerprint, record_response
from service.image_check import inspect_image
from service.queries import ReviewFilter, uploads_with_status
from service.rate_limit import acquire_quota
from service.uploads import store_uploads
from service.webhook_targets import TargetRefused, parse_url, resolve
from service.webhooks import UploadRoute, route_for_upload
from storage import UploadRejected, display_name, validate_metadata

blueprint = Blueprint("uploads", __name__)
logger = logging.getLogger(__name__)
MAX_IDEMPOTENCY_KEY = 255


def _form_files() -> list[Any]:
    """The files of the multipart form; a form Werkzeug refuses within the size limit has too many parts."""
    try:
        return request.files.getlist("files") + request.files.getlist("file")
    except RequestEntityTooLarge:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is None or request.content_length > limit:
            raise
        raise ApiError(413, "too_many_fields",
                       f"The form has more than {request.max_form_parts} fields or a text field over "
                       f"{request.max_form_memory_size // 1024} KB; send the images in 'files' and the five metadata fields",
                       details={"max_fields": request.max_form_parts}) from None


@blueprint.post("/upload")
@endpoint("Upload receipt images with their metadata", form=UploadForm, headers=UploadHeaders, ok=UploadOut,
          rate_limited=True,
          errors={400: "no_files, invalid_metadata, empty_file, unsupported image (the file's index in details); "
                       "invalid_parameter (Idempotency-Key); invalid_callback_url, callback_not_allowed, "
                       "callback_unresolvable (callback_url)",
                  409: "idempotency_key_in_progress: a request with this Idempotency-Key is still being stored",
                  422: "idempotency_key_reused: the Idempotency-Key was used for other files or metadata",
                  413: "request_too_large, file_too_large, too_many_fields",
                  429: "rate_limited (uploads a minute) or too_many_files (per request)"})
def upload_files() -> Response:
    rt = runtime()
    settings = rt.settings
    wait = acquire_quota(rt, f"upload:{client_key()}", settings["UPLOAD_RATE_LIMIT_PER_MINUTE"], 60)
    if wait is not None:
        raise ApiError(429, "rate_limited", f"At most {settings['UPLOAD_RATE_LIMIT_PER_MINUTE']} uploads a minute; "
                       f"retry in {wait} s", retry_after=wait)
    files = [f for f in _form_files() if f and f.filename]
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

    route = _webhook_route()
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
        key = idempotency_key()
        if key is not None:
            files_print = [(original, staged.sha256) for original, staged, _ in entries]
            replay = _hold_key(rt, key, fingerprint(metadata, files_print, request.form.get("callback_url") or None))
            if replay is not None:
                return ok(replay)
        tenant = tenant_id()

        def remember(session: Any, uploads: list[Upload]) -> None:
            if key is not None:
                record_response(session, tenant, key, _upload_payload(uploads))

        try:
            stored = store_uploads(rt, entries, metadata, tenant, route, before_commit=remember)
        except BaseException as exc:
            if key is not None:
                abandon(rt, tenant, key)
            if isinstance(exc, UploadRejected):
                raise ApiError(exc.status, exc.code, exc.message) from None
            raise
    except OSError as exc:
        # A full or failing disk: nothing was kept (no file, no row), so the client can simply retry.
        logger.error("Upload not stored: %s: %s", type(exc).__name__, exc.strerror or exc)
        raise ApiError(503, "storage_unavailable", "The file could not be stored; retry shortly",
                       retry_after=STORAGE_RETRY_AFTER_SECONDS) from None
    finally:
        for staged in staged_files:
            rt.storage.finish_publish(staged)
    return ok(_upload_payload(stored))


def _upload_payload(stored: list[Upload]) -> dict[str, Any]:
    return {
        "files_uploaded": len(stored),
        "files_processed": [
            {**{name: entry[name] for name in ("original_name", "stored_name", "metadata", "id", "sha256", "duplicado_de",
                                               "status")},
             "status_url": f"/api/uploads/{entry['id']}"}
            for entry in map(upload_entry, stored)
        ],
    }


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not all(" " <= ch <= "~" for ch in key):
        raise ApiError(400, "invalid_parameter", f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable "
                       "ASCII characters", details={"field": "Idempotency-Key"})
    return key


def _hold_key(rt: Any, key: str, print_: str) -> dict[str, Any] | None:
    try:
        return begin(rt, tenant_id(), key, print_)
    except KeyReused:
        raise ApiError(422, "idempotency_key_reused", "This Idempotency-Key was used in the last 24 h for a request "
                       "with other files or metadata; use a new key for a new upload",
                       details={"field": "Idempotency-Key"}) from None
    except KeyInProgress:
        raise ApiError(409, "idempotency_key_in_progress", "A request with this Idempotency-Key is still being "
                       "stored; retry shortly", retry_after=1, details={"field": "Idempotency-Key"}) from None


def _webhook_route() -> UploadRoute | None:
    """Where this upload's webhooks go: the `callback_url` form field (a host the tenant registered)
    and the key's own webhook configuration; None for the tenant's plain configuration."""
    callback_url = request.form.get("callback_url") or None
    rt = runtime()
    try:
        route = route_for_upload(rt.db, tenant_id(), principal().key_id, callback_url)
        if callback_url is not None:
            # As documented: a host that does not resolve (or resolves to an address webhooks may not
            # reach) is refused now, not found out at the first delivery. Deliveries check again.
            resolve(parse_url(callback_url), rt.settings["WEBHOOK_ALLOW_PRIVATE"])
        return route
    except TargetRefused as exc:
        raise ApiError(400, exc.code, exc.message, details={"field": "callback_url"}) from None


def _list_files(statuses: tuple[str, ...], filtered: bool = False) -> Response:
    review = review_filter_arg() if filtered else ReviewFilter()
    page = uploads_with_status(runtime(), tenant_id(), statuses, limit_arg(), cursor_arg(), review)
    return ok({"count": len(page.rows), "files": [upload_entry(u) for u in page.rows],
               "next_cursor": cursor_for(page.last_id)})


@blueprint.get("/files/pending")
@endpoint("Uploads waiting for or under OCR", query=PageQuery, ok=FilesOut)
def files_pending() -> Response:
    return _list_files((UploadStatus.PENDING, UploadStatus.PROCESSING))


@blueprint.get("/files/processed")
@endpoint("Uploads processed or failed, by review and reconciliation state", query=ProcessedQuery, ok=FilesOut)
def files_processed() -> Response:
    return _list_files(UploadStatus.FINISHED, filtered=True)


@blueprint.post("/clean")
@endpoint("Remove finished uploads older than the retention", json=CleanBody, ok=CleanOut, admin=True)
def clean() -> Response:
    body = json_body()
    hours = body.get("retention_hours", runtime().settings["RETENTION_HOURS"])
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not math.isfinite(hours) \
            or not 0 <= hours <= 24 * 3650:
        raise ApiError(400, "invalid_parameter", "retention_hours must be a number of hours from 0 to 87600",
                       details={"field": "retention_hours"})
    report = purge_finished(runtime(), float(hours))
    return ok({"message": f"Removed {report['uploads_removed']} finished uploads older than {hours} h", **report})


