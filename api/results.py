"""Results: one image's document and the consolidated documents of a batch or a time range."""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request, stream_with_context

from api.batches import REQUEST_ID_PATTERN
from api.errors import ApiError, ok
from api.inputs import cursor_arg, cursor_for, limit_arg, review_filter_arg, runtime, tenant_id, time_arg
from api.limits import limited_stream
from api.openapi import endpoint
from api.schemas import ExportQuery, ExtractResultsOut, ResultDataOut, ResultPageQuery
from service.export import csv_lines, paged_rows
from service.queries import ResultFilter, page_end, result_of, result_rows_with_review, result_texts
from storage import is_plain_name

blueprint = Blueprint("results", __name__)
FORMATS = ("json", "csv", "ndjson")


@blueprint.get("/ocr/result_data/<filename>")
@endpoint("One image's result document", ok=ResultDataOut,
          errors={404: "not_found (no such file in the tenant) or result_not_ready (details.status)"})
def result_data(filename: str) -> Response:
    # The name is only ever a database key here, never a path; odd names cannot exist in the table.
    if not is_plain_name(filename):
        raise ApiError(404, "not_found", "Unknown filename")
    row = result_of(runtime(), tenant_id(), filename)
    if row is None:
        raise ApiError(404, "not_found", "Unknown filename")
    if row.document is None:
        raise ApiError(404, "result_not_ready", f"The file is {row.status}; its result is not ready yet",
                       details={"status": row.status})
    return ok({"filename": filename, "data": row.document})


def _result_filter() -> ResultFilter:
    request_id = request.args.get("request_id")
    if request_id is not None and not REQUEST_ID_PATTERN.match(request_id):
        raise ApiError(400, "invalid_parameter", "request_id is not a batch id such as BATCH_20250711_143052_a8f",
                       details={"field": "request_id"})
    since, until = time_arg("since"), time_arg("until")
    if since and until and since > until:
        raise ApiError(400, "invalid_parameter", "since must not be after until", details={"field": "since"})
    return ResultFilter(tenant_id(), request_id, since, until, review_filter_arg())


def _first_fetched(rows: Iterator[Any]) -> Iterator[Any]:
    """The rows, with the first fetched now: a database failure answers 503 before the body starts."""
    first = next(rows, None)
    return iter(()) if first is None else itertools.chain([first], rows)


def _rows(rt: Any, which: ResultFilter, limit: int | None, after: int = 0) -> Iterator[tuple[int, str]]:
    return _first_fetched(paged_rows(lambda last, n: result_texts(rt, which, n, last or after), limit, start=after))


def _flat_export(output: str) -> Response:
    """`format=csv|ndjson`: every matching result after the cursor, or a page of them with `limit`
    (the next page's cursor then in the `X-Next-Cursor` header, empty on the last page)."""
    rt, which, after = runtime(), _result_filter(), cursor_arg()
    limit = limit_arg() if "limit" in request.args else None
    headers = {}
    if limit is not None:
        headers["X-Next-Cursor"] = cursor_for(page_end(rt, which, limit, after)) or ""
    if output == "ndjson":
        rows = _rows(rt, which, limit, after)
        return Response(stream_with_context(document + "\n" for _id, document in rows), headers=headers,
                        content_type="application/x-ndjson; charset=utf-8")
    rows = _first_fetched(paged_rows(lambda last, n: result_rows_with_review(rt, which, n, last or after), limit,
                                     start=after))
    headers["Content-Disposition"] = 'attachment; filename="extract_results.csv"'
    return Response(stream_with_context(csv_lines(rows)), headers=headers, content_type="text/csv; charset=utf-8")


@blueprint.get("/extract_results")
@endpoint("One page of result documents, filtered by batch, time, review or reconciliation; or CSV/NDJSON",
          query=ResultPageQuery, ok=ExtractResultsOut, media={200: ("text/csv", "application/x-ndjson")},
          errors={429: "too_many_concurrent: the key has EXPORT_CONCURRENCY_PER_KEY csv/ndjson streams open"},
          answer_headers={200: {"X-Next-Cursor": "format=csv|ndjson with limit: the next page's cursor (empty on the "
                                                 "last page)"}})
def extract_results() -> Response:
    """One page of documents; the body is written as the rows arrive (`count` and `next_cursor` last).
    `format=csv|ndjson` streams the same results as CSV rows or JSON lines."""
    output = request.args.get("format", "json")
    if output not in FORMATS:
        raise ApiError(400, "invalid_parameter", f"format must be one of {', '.join(FORMATS)}", details={"field": "format"})
    if output != "json":
        return limited_stream(lambda: _flat_export(output))
    limit = limit_arg()
    # One row more than asked tells whether another page follows.
    rows = _rows(runtime(), _result_filter(), limit + 1, cursor_arg())

    def body() -> Iterator[str]:
        yield '{"success": true, "results": ['
        count, last_sent, more = 0, None, False
        for result_id, document in rows:
            if count == limit:
                more = True
                break
            yield ("," if count else "") + document
            count, last_sent = count + 1, result_id
        yield f'], "count": {count}, "next_cursor": {json.dumps(cursor_for(last_sent if more else None))}}}'

    return Response(stream_with_context(body()), content_type="application/json")


@blueprint.get("/extract_results/export")
@endpoint("Every matching result document as JSON lines (streamed)", query=ExportQuery, ok={200: None},
          errors={429: "too_many_concurrent: the key has EXPORT_CONCURRENCY_PER_KEY exports open"},
          media={200: ("application/x-ndjson",)})
def export_results() -> Response:
    """Every matching document as JSON lines, streamed: memory stays flat at any size."""
    which = _result_filter()

    def build() -> Response:
        rows = _rows(runtime(), which, None)
        return Response(stream_with_context(document + "\n" for _id, document in rows),
                        content_type="application/x-ndjson; charset=utf-8")

    return limited_stream(build)
