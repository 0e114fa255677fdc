"""The operations endpoints' bodies (api/ops.py): status, health, configuration, rules and metrics."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from api.schemas import BatchStateName, Closed, Success, Timestamp


class WorkerSummary(Closed):
    worker_id: str
    hostname: str
    pid: int
    state: str
    models_loaded: list[str] | None
    rss_bytes: int | None
    images_processed: int | None
    heartbeat_at: Timestamp | None


class DatabaseStatus(Closed):
    ok: bool
    dialect: str | None = Field(None, description="Admins only")


class WorkerStatus(Closed):
    alive: bool
    enabled: bool
    workers: list[WorkerSummary] = Field(description="Admins only; empty for client keys")


class QueueCounts(Closed):
    pending: int
    processing: int
    processed: int
    error: int


class BatchCounts(Closed):
    queued: int
    running: int
    completed: int
    failed: int


class StatusOut(Success):
    status: Literal["operational", "degraded"]
    timestamp: Timestamp
    database: DatabaseStatus
    worker: WorkerStatus
    queue: QueueCounts
    batches: BatchCounts
    default_profile: str
    profiles: list[str]


class BatchTotals(BatchCounts):
    total: int


class ImageCounts(Closed):
    processed: int
    failed: int


class Timing(Closed):
    average_batch_seconds: float | None
    average_image_seconds: float | None
    images_per_second: float | None


class RecentBatch(Closed):
    request_id: str
    source: str
    state: BatchStateName
    profile: str | None
    files: int
    failed: int
    processing_time: float | None
    created_at: Timestamp | None


class BatchMetricsOut(Success):
    batches: BatchTotals
    images: ImageCounts
    timing: Timing
    recent: list[RecentBatch]


class DatabaseCheck(Closed):
    ok: bool


class WorkerCheck(Closed):
    ready: bool
    required: bool
    count: int | None = None
    # /health/ready only: this host (HOST_NAME), whether it runs a worker or is web_only, and the
    # live workers on it and on other hosts.
    host: str | None = None
    mode: Literal["worker", "web_only"] | None = None
    on_host: int | None = None
    elsewhere: int | None = None


class ModelsCheck(Closed):
    loaded: list[str]


class HealthChecks(Closed):
    database: DatabaseCheck
    worker: WorkerCheck
    models: ModelsCheck


class HealthOut(Closed):
    """200 healthy/degraded, 503 unhealthy (the database does not answer)."""
    success: bool
    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: Timestamp
    checks: HealthChecks


class ReadyOut(Closed):
    """200 ready, 503 not_ready."""
    success: bool
    status: Literal["ready", "not_ready"]
    timestamp: Timestamp
    checks: HealthChecks


class LiveOut(Success):
    status: Literal["alive"]
    timestamp: Timestamp


class Rules(Closed):
    id: Any
    version: Any
    source: str
    sha256: str | None
    loaded_at: str | None
    last_reload_error: str | None
    fields: list[str]
    rules: dict[str, Any] = Field(description="The rules document as loaded (open)")


class RulesOut(Success):
    rules: Rules


class Limits(Closed):
    max_file_size: str
    max_request_size: str
    max_batch_size: int
    allowed_extensions: list[str]
    process_batch_min_interval_seconds: float


class OcrConfig(Closed):
    default_profile: str
    profiles: list[str]
    languages: list[str]
    language_note: str


class AuthConfig(Closed):
    api_key_required: bool
    header: str
    also_accepted: str


class ConfigOut(Success):
    base_url: str
    endpoints: dict[str, str]
    limits: Limits
    ocr: OcrConfig
    auth: AuthConfig
    retention_hours: float


class MetricsQuery(BaseModel):
    format: Literal["json", "prometheus"] = Field("json", description="prometheus: the text exposition format")


class FieldCorrections(Closed):
    correcciones: int = Field(description="Corrections made to this field")
    resultados_corregidos: int = Field(description="Results whose field was corrected at least once")
    precision: float | None = Field(description="Share of stored results whose field was left as read")


class CorrectionFigures(Closed):
    """The live accuracy of the extraction, per field of config.FIELDS."""
    por_campo: dict[str, FieldCorrections]
    total: int
    resultados: int


class MetricsOut(Success):
    system: dict[str, Any]
    process: dict[str, Any]
    ocr: dict[str, Any]
    totals: dict[str, Any]
    corrections: CorrectionFigures
