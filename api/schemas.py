"""The API's bodies as pydantic models: the error envelope, paging, uploads, batches and results.

These are the shapes the views answer today (api/uploads.py, api/batches.py, api/results.py,
api/retries.py); api/schemas_ops.py has the operations endpoints'. Response models are `Closed`
(no undeclared key) unless the document is open by nature (the OCR result document, rules).
Request models ignore unknown keys, as the views do. See api/openapi.py for how they are used.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

import config
from reconciliation import ESTADOS

UploadState = Literal["pending", "processing", "processed", "error"]
BatchStateName = Literal["queued", "running", "completed", "failed"]
Timestamp = str  # ISO 8601, UTC
ProfileName = Literal[tuple(sorted(config.OCR_PROFILES))]  # type: ignore[valid-type]
Language = Literal[config.SUPPORTED_LANGUAGES]  # type: ignore[valid-type]
REQUEST_ID_REGEX = r"^BATCH_[0-9]{8}_[0-9]{6}_[0-9a-f]{3,12}$"


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Success(Closed):
    success: Literal[True]


# --- errors -----------------------------------------------------------------------------------
class ErrorBody(Closed):
    code: str = Field(description="Machine-readable: invalid_parameter, not_found, unauthorized, rate_limited...")
    message: str
    request_id: str | None = Field(None, description="The X-Request-ID of the request, for the logs")
    details: dict[str, Any] | None = Field(None, description="What to point at, e.g. {\"field\": \"limit\"}")


class ErrorEnvelope(Closed):
    """Every error answer of the application."""
    success: Literal[False]
    error: ErrorBody


class ErrorInfo(Closed):
    code: str | None
    message: str | None


# --- paging -----------------------------------------------------------------------------------
class LimitQuery(BaseModel):
    limit: int = Field(100, ge=1, le=1000, description="Items per page")


class PageQuery(LimitQuery):
    cursor: str | None = Field(None, max_length=64, description="The next_cursor of the previous page")


NextCursor = Field(description="Pass as `cursor` for the next page; null on the last page")


# --- uploads ----------------------------------------------------------------------------------
class UploadForm(BaseModel):
    """multipart/form-data: the images and the five metadata fields (checked by the view)."""
    files: list[bytes] = Field(description="One or more images (png, jpg, gif, bmp, tiff, webp); `file` also works")
    numerosorteo: str | None = Field(None, pattern=r"^[A-Za-z0-9]{1,10}$")
    fechasorteo: str | None = Field(None, pattern=r"^[0-9]{8}$", description="YYYYMMDD")
    idWhatsapp: str | None = Field(None, description="e.g. 123456@lid")
    nombre: str | None = None
    horamin: str | None = Field(None, pattern=r"^([01][0-9]|2[0-3])-[0-5][0-9]$", description="HH-MM")
    callback_url: str | None = Field(None, description="Where this upload's webhooks go: a URL on one of the "
                                     "tenant's allowed_hosts (PUT /api/webhooks/config)")


class UploadHeaders(BaseModel):
    idempotency_key: str | None = Field(
        None, alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[ -~]+$",
        description="The same key with the same files and metadata within 24 h answers the first upload again "
                    "(nothing stored twice); with other files: 422 idempotency_key_reused")


class UploadedFile(Closed):
    id: int
    original_name: str
    stored_name: str
    metadata: dict[str, str]
    sha256: str
    duplicado_de: int | None = Field(description="The upload whose bytes these are, if any")
    status: UploadState
    status_url: str = Field(description="GET it to follow this upload: /api/uploads/<id>")


class UploadOut(Success):
    files_uploaded: int
    files_processed: list[UploadedFile]


class FileEntry(Closed):
    id: int
    original_name: str
    stored_name: str
    metadata: dict[str, str]
    sha256: str
    size_bytes: int
    status: UploadState
    duplicado_de: int | None
    request_id: str | None
    created_at: Timestamp | None
    processed_at: Timestamp | None
    error: ErrorInfo | None


class ListFilterQuery(BaseModel):
    """The review and reconciliation filters of the result lists."""
    revision: Literal["pendiente", "aprobado", "rechazado"] | None = Field(None, description="The review state")
    requiere_revision: Literal["true", "false"] | None = Field(None, description="Flagged by the service for review")
    conciliacion: Literal[ESTADOS] | None = Field(  # type: ignore[valid-type]
        None, description="The reconciliation state against the bank statements")


class ProcessedQuery(ListFilterQuery, PageQuery):
    pass


class FilesOut(Success):
    count: int
    files: list[FileEntry]
    next_cursor: str | None = NextCursor


class CleanBody(BaseModel):
    retention_hours: float = Field(24, ge=0, le=87600, strict=True, allow_inf_nan=False,
                                   description="Remove finished uploads older than this; default RETENTION_HOURS")


class CleanOut(Success):
    message: str
    retention_hours: float
    cutoff: Timestamp | None
    uploads_removed: int
    results_removed: int
    batches_removed: int
    payments_forgotten: int
    idempotency_keys_expired: int
    webhook_events_removed: int
    orphan_files_removed: int
    temp_files_removed: int
    uncommitted_uploads_removed: int
    removed: list[str]
    bytes_freed: int


# --- batches ----------------------------------------------------------------------------------
class ProcessBatchBody(BaseModel):
    error_codes: ClassVar[dict[str, str]] = {"profile": "unknown_profile", "language": "unsupported_language"}

    profile: ProfileName | None = Field(None, description="Default: OCR_DEFAULT_PROFILE")
    language: Language | None = Field(None, description="Accepted for compatibility; selects no model")
    include_coordinates: StrictBool = True
    async_: StrictBool = Field(False, alias="async", description="Answer 202 at once and run in the background")


class BatchFile(Closed):
    filename: str
    processing_status: str
    coordinates_available: int
    confidence_average: float
    text_length: int
    error: ErrorInfo | None = None


class BatchDone(Success):
    status: Literal["success", "partial", "error"]
    request_id: str
    profile: str | None
    files_processed: int
    files_failed: int
    processing_time: str = Field(description="e.g. \"1.25s\"")
    results: list[BatchFile]
    next_cursor: str | None = NextCursor
    status_url: str


class BatchAccepted(Success):
    """async: accepted (202); sync past the batch timeout: still processing (202)."""
    status: Literal["accepted", "processing"]
    request_id: str
    state: BatchStateName
    files_pending: int | None = None
    status_url: str


class Progress(Closed):
    total: int
    processed: int
    failed: int
    remaining: int
    percent: float


class BatchResultOut(Success):
    request_id: str
    state: BatchStateName
    status: str = Field(description="success/partial/error once finished, else the state")
    source: str
    profile: str | None
    language: str | None
    created_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    processing_time: float | None
    progress: Progress
    error: str | None
    files: list[BatchFile]
    next_cursor: str | None = NextCursor


class RequeuedOut(Success):
    requeued: list[int] = Field(description="Ids of the uploads sent back to the queue")
    count: int


# --- results ----------------------------------------------------------------------------------
class ResultDocument(Open):
    """One image's result document (open: its keys grow with the reader; see README)."""
    filename: str
    processing_status: str
    request_id: str | None = None
    metadata: dict[str, Any] | None = None
    processing_metadata: dict[str, Any] | None = None
    original_text_ocr: str | None = None
    extracted_fields: dict[str, Any] | None = None
    campos_detalle: dict[str, Any] | None = None
    validacion: dict[str, Any] | None = None


class ResultDataOut(Success):
    filename: str
    data: ResultDocument


class ResultFilterQuery(BaseModel):
    request_id: str | None = Field(None, pattern=REQUEST_ID_REGEX, description="Only this batch's documents")
    since: str | None = Field(None, description="ISO 8601 date or time (UTC unless it has an offset)")
    until: str | None = Field(None, description="ISO 8601 date or time (UTC unless it has an offset)")


class ResultPageQuery(ResultFilterQuery, ListFilterQuery, PageQuery):
    format: Literal["json", "csv", "ndjson"] = Field(
        "json", description="csv or ndjson: the same results streamed as CSV rows or JSON lines (every result after "
                            "the cursor; with `limit` one page, the next cursor in the X-Next-Cursor header)")


class ExportQuery(ResultFilterQuery, ListFilterQuery):
    pass


class ExtractResultsOut(Success):
    results: list[ResultDocument]
    count: int
    next_cursor: str | None = NextCursor
