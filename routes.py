"""The HTTP API under /api: one blueprint made of the api/ package's parts.

Every answer is JSON; every malformed input gets a 4xx with `{"success": false, "error": ...}`.
State lives in the database, so any web process (or host) can answer for work another one did.

    api/uploads.py   POST /upload, GET /files/pending, GET /files/processed, POST /clean
    api/batches.py   POST /ocr/process_batch, GET /ocr/result/<request_id>
    api/results.py   GET /ocr/result_data/<filename>, GET /extract_results
    api/ops.py       GET /status, /health, /health/live, /health/ready, /config,
                     /config/extraction_rules, /metrics, /metrics/batch
    api/retries.py   POST /uploads/<id>/retry, POST /batches/<request_id>/retry (admin)
    api/follow.py    GET /uploads/<id>, GET /uploads/<id>/image, PATCH /uploads/<id>/fields,
                     POST /uploads/<id>/review
    api/review_queue.py  GET /review_queue, /review_queue/counts (the review desk's queue)
    api/webhooks.py  GET/PUT /webhooks/config (admin), GET /webhooks/deliveries,
                     POST /webhooks/deliveries/<id>/resend
    api/statements.py POST/GET /statements, GET /statements/<id>/movements,
                     GET /conciliacion/no_conciliados, GET /conciliacion/resumen
    api/learned_rules.py GET /learned_rules, GET /learned_rules/<id>, POST /learned_rules/<id>/accept,
                     POST /learned_rules/<id>/switch_off (admin): rules taught by corrections
    api/docs.py      GET /openapi.json, GET /docs (built from the declarations, api/openapi.py)
"""
from __future__ import annotations

from flask import Blueprint

from api import (
    batches,
    docs,
    follow,
    learned_rules,
    ops,
    results,
    retries,
    review_queue,
    statements,
    uploads,
    webhooks,
)
from api.errors import ApiError
from api.ops import prometheus_metrics

api = Blueprint("api", __name__, url_prefix="/api")
for part in (uploads, follow, batches, results, ops, retries, review_queue, webhooks, statements, learned_rules, docs):
    api.register_blueprint(part.blueprint)

__all__ = ["ApiError", "api", "prometheus_metrics"]
