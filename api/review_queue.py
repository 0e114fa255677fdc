"""The review desk's queue (read-only; corrections and decisions are api/follow.py's endpoints).

    GET /review_queue          ?estado=revisar|duplicado|reutilizacion|aprobado|rechazado|error|en_proceso|todos
                               &q=<reference, phone, cédula, name...>&numerosorteo=&fechasorteo=
                               &limit=&cursor=  (newest first)   or  &desde_id=<id> (only newer rows)
                               &format=csv: the filter's results as extract_results' CSV (UTF-8 with BOM, streamed)
    GET /review_queue/counts   the number of uploads in each state under the same q/sorteo filters
"""
from __future__ import annotations

from flask import Blueprint, Response, request, stream_with_context

from api.errors import ApiError, ok
from api.inputs import cursor_arg, cursor_for, limit_arg, runtime, tenant_id
from api.limits import limited_stream
from api.openapi import endpoint
from api.schemas_follow import QueueCountsOut, QueueFilterQuery, QueueOut, QueueQuery
from service.export import csv_lines, paged_rows
from service.review_queue import MAX_TEXT, STATES, QueueFilter, queue_counts, queue_documents, queue_page

blueprint = Blueprint("review_queue", __name__)


def _text_arg(name: str) -> str | None:
    value = (request.args.get(name) or "").strip()
    if len(value) > MAX_TEXT:
        raise ApiError(400, "invalid_parameter", f"{name} is longer than {MAX_TEXT} characters", details={"field": name})
    return value or None


def _filter() -> QueueFilter:
    estado = request.args.get("estado") or "todos"
    if estado not in STATES:
        raise ApiError(400, "invalid_parameter", f"estado must be one of {', '.join(STATES)}", details={"field": "estado"})
    return QueueFilter(tenant_id(), estado, _text_arg("q"), _text_arg("numerosorteo"), _text_arg("fechasorteo"))


def _newer_than() -> int | None:
    raw = request.args.get("desde_id")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
        raise ApiError(400, "invalid_parameter", "desde_id must be an upload id", details={"field": "desde_id"})
    return int(raw)


def _csv(which: QueueFilter) -> Response:
    # The same columns as GET /api/extract_results?format=csv (service/export.py), for this filter.
    rt = runtime()
    rows = paged_rows(lambda before, n: queue_documents(rt, which, before, n))
    response = Response(stream_with_context(csv_lines(rows)),
                        content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="comprobantes-{which.estado}.csv"'
    return response


@blueprint.get("/review_queue")
@endpoint("The review desk's queue, newest first, by state, text and sorteo; or its results as CSV",
          query=QueueQuery, ok=QueueOut, media={200: ("text/csv",)},
          errors={429: "too_many_concurrent: format=csv while the key has EXPORT_CONCURRENCY_PER_KEY exports open"})
def review_queue() -> Response:
    which = _filter()
    if request.args.get("format", "json") not in ("json", "csv"):
        raise ApiError(400, "invalid_parameter", "format must be json or csv", details={"field": "format"})
    if request.args.get("format") == "csv":
        return limited_stream(lambda: _csv(which))
    limit, newer = limit_arg(), _newer_than()
    page = queue_page(runtime(), which, limit, cursor_arg(), newer)
    return ok({"count": len(page.items), "items": page.items, "next_cursor": cursor_for(page.last_id)})


@blueprint.get("/review_queue/counts")
@endpoint("The number of uploads in each queue state under the same filters", query=QueueFilterQuery,
          ok=QueueCountsOut)
def review_queue_counts() -> Response:
    return ok({"counts": queue_counts(runtime(), _filter())})
