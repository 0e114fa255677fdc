"""Results: one image's document and the consolidated documents of a batch or a time range."""
from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Blueprint, Response, request, stream_with_context

from api.batches import REQUEST_ID_PATTERN
from api.errors import ApiError, ok
from api.inputs import cursor_arg, cursor_for, limit_arg, runtime, tenant_id, time_arg
from service.queries import ResultFilter, result_documents, result_of
from storage import is_plain_name

blueprint = Blueprint("results", __name__)


@blueprint.get("/ocr/result_data/<filename>")
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


@blueprint.get("/extract_results")
def extract_results() -> Response:
    page = result_documents(runtime(), _result_filter(), limit_arg(), cursor_arg())
    return ok({"count": len(page.rows), "results": page.rows, "next_cursor": cursor_for(page.last_id)})


EXPORT_PAGE_ROWS = 200


@blueprint.get("/extract_results/export")
def export_results() -> Response:
    """Every matching document as JSON lines, streamed page by page: memory stays flat at any size."""
    rt, which = runtime(), _result_filter()

    def lines() -> Iterator[str]:
        after = 0
        while True:
            page = result_documents(rt, which, EXPORT_PAGE_ROWS, after)
            for document in page.rows:
                yield json.dumps(document, ensure_ascii=False) + "\n"
            if page.last_id is None:
                return
            after = page.last_id

    return Response(stream_with_context(lines()), content_type="application/x-ndjson; charset=utf-8")


