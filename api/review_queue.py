"""The review desk's queue (read-only; corrections and decisions are api/follow.py's endpoints).

    GET /review_queue          ?estado=revisar|duplicado|reutilizacion|aprobado|rechazado|error|en_proceso|todos
                               &q=<reference, phone, cédula, name...>&numerosorteo=&fechasorteo=
                               &limit=&cursor=  (newest first)   or  &desde_id=<id> (only newer rows)
                               &format=csv: the filter's results as extract_results' CSV (UTF-8 with BOM, streamed)
                               &format=xlsx: the same receipts as a workbook (Spanish titles, numbers, dates)
                               (both exports take &cursor=: only the receipts below that id)
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
from service.export_xlsx import MIME as XLSX_MIME
from service.export_xlsx import xlsx_chunks
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


def _rows(rt, which: QueueFilter, below: int):
    """The filter's rows below the cursor, a page at a time (no connection held while the client reads)."""
    return paged_rows(lambda before, n: queue_documents(rt, which, before, n), start=below or None)


def _csv(which: QueueFilter, below: int) -> Response:
    # The same columns as GET /api/extract_results?format=csv (service/export.py), for this filter.
    rt = runtime()
    response = Response(stream_with_context(csv_lines(_rows(rt, which, below))),
                        content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="comprobantes-{which.estado}.csv"'
    return response


def _xlsx(which: QueueFilter, below: int) -> Response:
    rt = runtime()
    chunks = xlsx_chunks(_rows(rt, which, below), rt.settings["DESK_TIME_ZONE"])
    response = Response(stream_with_context(chunks), content_type=XLSX_MIME)
    response.headers["Content-Disposition"] = f'attachment; filename="comprobantes-{which.estado}.xlsx"'
    return response


@blueprint.get("/review_queue")
@endpoint("The review desk's queue, newest first, by state, text and sorteo; or its results as CSV or XLSX",
          query=QueueQuery, ok=QueueOut, media={200: ("text/csv", XLSX_MIME)},
          errors={429: "too_many_concurrent: format=csv or xlsx while the key has EXPORT_CONCURRENCY_PER_KEY exports open"})
def review_queue() -> Response:
    which = _filter()
    if request.args.get("format", "json") not in ("json", "csv", "xlsx"):
        raise ApiError(400, "invalid_parameter", "format must be json, csv or xlsx", details={"field": "format"})
    if request.args.get("format") == "csv":
        return limited_stream(lambda: _csv(which, cursor_arg()))
    if request.args.get("format") == "xlsx":
        return limited_stream(lambda: _xlsx(which, cursor_arg()))
    limit, newer = limit_arg(), _newer_than()
    page = queue_page(runtime(), which, limit, cursor_arg(), newer)
    return ok({"count": len(page.items), "items": page.items, "next_cursor": cursor_for(page.last_id)})


@blueprint.get("/review_queue/counts")
@endpoint("The number of uploads in each queue state under the same filters", query=QueueFilterQuery,
          ok=QueueCountsOut)
def review_queue_counts() -> Response:
    return ok({"counts": queue_counts(runtime(), _filter())})
