"""Operations: status, health (live, ready and the seed's combined check), configuration and metrics."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

import config
from api.auth import is_admin
from api.errors import ApiError, ok
from api.inputs import runtime, tenant_id
from api.openapi import endpoint
from api.prometheus import prometheus_text
from api.schemas_ops import BatchMetricsOut, ConfigOut, HealthOut, LiveOut, MetricsOut, MetricsQuery, ReadyOut, RulesOut, StatusOut
from database import BatchState, UploadStatus, iso, utcnow
from extraction.rules import RulesError, get_registry
from service.access import keys_configured
from service.jobs import live_workers
from service.monitoring import health_check, metrics_snapshot, models_loaded, worker_summary
from service.queries import batch_figures, queue_counts

blueprint = Blueprint("ops", __name__)


@blueprint.get("/status")
@endpoint("The deployment (admins) or the tenant's queue (client keys)", ok=StatusOut)
def status() -> Response:
    """The deployment for admins; for a client key, its own tenant's queue and no system details."""
    rt = runtime()
    admin = is_admin()
    uploads, batches = queue_counts(rt, None if admin else tenant_id())
    workers = live_workers(rt.db)
    return ok({
        "status": "operational" if workers or not rt.settings["WORKER_ENABLED"] else "degraded",
        "timestamp": iso(utcnow()),
        "database": {"ok": True, "dialect": rt.db.dialect} if admin else {"ok": True},
        "worker": {"alive": bool(workers), "enabled": rt.settings["WORKER_ENABLED"],
                   "workers": [worker_summary(w) for w in workers] if admin else []},
        "queue": {state: uploads.get(state, 0) for state in
                  (UploadStatus.PENDING, UploadStatus.PROCESSING, UploadStatus.PROCESSED, UploadStatus.ERROR)},
        "batches": {state: batches.get(state, 0) for state in
                    (BatchState.QUEUED, BatchState.RUNNING, BatchState.COMPLETED, BatchState.FAILED)},
        "default_profile": rt.default_profile,
        "profiles": sorted(config.OCR_PROFILES),
    })


@blueprint.get("/metrics/batch")
@endpoint("The tenant's batch counts, timing and recent batches", ok=BatchMetricsOut)
def batch_metrics() -> Response:
    figures = batch_figures(runtime(), tenant_id())
    states, recent = figures.states, figures.recent
    return ok({
        "batches": {"total": sum(states.values()), **{s: states.get(s, 0) for s in
                    (BatchState.QUEUED, BatchState.RUNNING, BatchState.COMPLETED, BatchState.FAILED)}},
        "images": {"processed": figures.images, "failed": figures.failed},
        "timing": {
            "average_batch_seconds": None if figures.average_batch_seconds is None else round(figures.average_batch_seconds, 3),
            "average_image_seconds": None if figures.average_image_seconds is None else round(figures.average_image_seconds, 4),
            "images_per_second": round((figures.images + figures.failed) / figures.busy_seconds, 3)
            if figures.busy_seconds else None,
        },
        "recent": [{
            "request_id": b.request_id, "source": b.source, "state": b.state, "profile": b.profile,
            "files": b.processed_count + b.error_count, "failed": b.error_count,
            "processing_time": b.processing_time, "created_at": iso(b.created_at),
        } for b in recent],
    })


def _health_response(body: dict[str, Any], code: int) -> Response:
    response = jsonify(body)
    response.status_code = code
    if code == 503:
        response.headers["Retry-After"] = "5"
    return response


@blueprint.get("/health")
@endpoint("Database, worker and models (503 when the database does not answer)", ok={200: HealthOut, 503: HealthOut},
          public=True)
def health() -> Response:
    rt = runtime()
    check = health_check(rt)
    if not check.database_ok:
        state, code = "unhealthy", 503
    elif check.worker_ready or not rt.settings["WORKER_ENABLED"]:
        state, code = "healthy", 200
    else:
        state, code = "degraded", 200
    return _health_response({
        "success": check.database_ok,
        "status": state,
        "timestamp": iso(utcnow()),
        "checks": {
            "database": {"ok": check.database_ok},
            "worker": {"ready": check.worker_ready, "required": rt.settings["WORKER_ENABLED"], "count": len(check.workers)},
            "models": {"loaded": check.models},
        },
    }, code)


@blueprint.get("/health/live")
@endpoint("The process answers", ok=LiveOut, public=True)
def health_live() -> Response:
    """The process answers: nothing else is checked (a restart would not fix the database)."""
    return ok({"status": "alive", "timestamp": iso(utcnow())})


@blueprint.get("/health/ready")
@endpoint("Work sent now will be done (503 not_ready otherwise)", ok={200: ReadyOut, 503: ReadyOut}, public=True)
def health_ready() -> Response:
    """Work sent to this host now will be done: the database answers and this host's own worker
    (HOST_NAME) is alive with its models loaded; a worker on another host does not count. A web-only
    host (WORKER_ENABLED off: its web processes run batches themselves) says so as mode web_only."""
    rt = runtime()
    check = health_check(rt)
    web_only = not rt.settings["WORKER_ENABLED"]
    ready = check.database_ok and (web_only or check.host_worker_ready)
    return _health_response({
        "success": ready,
        "status": "ready" if ready else "not_ready",
        "timestamp": iso(utcnow()),
        "checks": {"database": {"ok": check.database_ok},
                   "worker": {"ready": check.host_worker_ready, "required": not web_only, "host": check.host,
                              "mode": "web_only" if web_only else "worker", "on_host": len(check.host_workers),
                              "elsewhere": len(check.workers) - len(check.host_workers)},
                   "models": {"loaded": models_loaded(check.host_workers)}},
    }, 200 if ready else 503)


@blueprint.get("/config/extraction_rules")
@endpoint("The active extraction rules", ok=RulesOut, errors={503: "rules_unavailable or database_unavailable"})
def extraction_rules() -> Response:
    try:
        rules = get_registry().as_json()
    except RulesError as exc:
        raise ApiError(503, "rules_unavailable", f"The extraction rules could not be loaded: {exc}") from None
    return ok({"rules": rules})


@blueprint.get("/config")
@endpoint("Endpoints, limits, OCR profiles and authentication of this deployment", ok=ConfigOut)
def api_config() -> Response:
    settings = runtime().settings
    return ok({
        "base_url": request.url_root,
        "endpoints": {
            "upload": "/api/upload",
            "process_batch": "/api/ocr/process_batch",
            "results": "/api/extract_results",
            "results_export": "/api/extract_results/export",
            "status": "/api/status",
            "health": "/api/health",
            "health_live": "/api/health/live",
            "health_ready": "/api/health/ready",
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
        "ocr": {"default_profile": settings["OCR_DEFAULT_PROFILE"], "profiles": sorted(config.OCR_PROFILES),
                "languages": list(config.SUPPORTED_LANGUAGES),
                "language_note": "accepted for compatibility; it selects no model"},
        "auth": {"api_key_required": keys_configured(settings, runtime().db), "header": "X-API-Key",
                 "also_accepted": "Authorization: Bearer <key>"},
        "retention_hours": settings["RETENTION_HOURS"],
    })


def _prometheus() -> Response:
    return Response(prometheus_text(metrics_snapshot(runtime())), content_type=CONTENT_TYPE_LATEST)


@endpoint("Prometheus metrics of the deployment (GET /metrics)", ok={200: None}, media={200: ("text/plain",)}, admin=True)
def prometheus_metrics() -> Response:
    return _prometheus()


@blueprint.get("/metrics")
@endpoint("Service metrics as JSON, or as Prometheus text with format=prometheus", query=MetricsQuery, ok=MetricsOut,
          media={200: ("text/plain",)}, admin=True)
def metrics() -> Response:
    output = request.args.get("format", "json")
    if output not in {"json", "prometheus"}:
        raise ApiError(400, "invalid_parameter", "format must be json or prometheus", details={"field": "format"})
    if output == "prometheus":
        return _prometheus()
    return ok(metrics_snapshot(runtime()))
