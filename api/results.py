"""Results: one image's document and the consolidated documents of a batch or a time range."""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request, stream_with_context

from api.batches import REQUEST_ID_PATTERN
from api.errors import ApiError, ok
from api.inputs import cursor_arg, cursor_for, limit_arg, runtime, tenant_id, time_arg
from api.openapi import endpoint
from api.schemas import ExtractResultsOut, ResultDataOut, ResultFilterQuery, ResultPageQuery
from service.queries import ResultFilter, result_of, result_texts
from storage import is_plain_name

blueprint = Blueprint("results", __name__)


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
    return ResultFilter(tenant_id(), request_id, since, until)


def _rows(rt: Any, which: ResultFilter, limit: int | None, after: int = 0) -> Iterator[tuple[int, str]]:
    """The rows, with the first fetched now: a database failure answers 503 before the body starts."""
    rows = result_texts(rt, which, limit, after)
    first = next(rows, None)
    return iter(()) if first is None else itertools.chain([first], rows)


@blueprint.get("/extract_results")
@endpoint("One page of result documents, filtered by batch or time", query=ResultPageQuery, ok=ExtractResultsOut)
def extract_results() -> Response:
    """One page of documents; the body is written as the rows arrive (`count` and `next_cursor` last)."""
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
@endpoint("Every matching result document as JSON lines (streamed)", query=ResultFilterQuery, ok={200: None},
          media={200: ("application/x-ndjson",)})
def export_results() -> Response:
    """Every matching document as JSON lines, streamed: memory stays flat at any size."""
    rows = _rows(runtime(), _result_filter(), None)
    return Response(stream_with_context(document + "\n" for _id, document in rows),
                    content_type="application/x-ndjson; charset=utf-8")
