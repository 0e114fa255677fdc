"""Results: one image's document and the consolidated documents of a batch or a time range."""
from __future__ import annotations

from flask import Blueprint, Response, request

from api.batches import REQUEST_ID_PATTERN
from api.errors import ApiError, ok
from api.inputs import limit_arg, runtime, time_arg
from service.queries import result_documents, result_of
from storage import is_plain_name

blueprint = Blueprint("results", __name__)


@blueprint.get("/ocr/result_data/<filename>")
def result_data(filename: str) -> Response:
    # The name is only ever a database key here, never a path; odd names cannot exist in the table.
    if not is_plain_name(filename):
        raise ApiError(404, "not_found", "Unknown filename")
    row = result_of(runtime(), filename)
    if row is None:
        raise ApiError(404, "not_found", "Unknown filename")
    if row.document is None:
        raise ApiError(404, "result_not_ready", f"The file is {row.status}; its result is not ready yet",
                       details={"status": row.status})
    return ok({"filename": filename, "data": row.document})


@blueprint.get("/extract_results")
def extract_results() -> Response:
    request_id = request.args.get("request_id")
    if request_id is not None and not REQUEST_ID_PATTERN.match(request_id):
        raise ApiError(400, "invalid_parameter", "request_id is not a batch id such as BATCH_20250711_143052_a8f",
                       details={"field": "request_id"})
    since, until = time_arg("since"), time_arg("until")
    if since and until and since > until:
        raise ApiError(400, "invalid_parameter", "since must not be after until", details={"field": "since"})
    documents = result_documents(runtime(), request_id, since, until, limit_arg())
    return ok({"count": len(documents), "results": documents})


