"""Results: one image's document and the consolidated documents of a batch or a time range."""
from __future__ import annotations

from flask import Blueprint, Response, request
from sqlalchemy import select

from api.batches import REQUEST_ID_PATTERN
from api.errors import ApiError, ok
from api.inputs import limit_arg, runtime, time_arg
from database import Result, Upload
from storage import is_plain_name

blueprint = Blueprint("results", __name__)


@blueprint.get("/ocr/result_data/<filename>")
def result_data(filename: str) -> Response:
    # The name is only ever a database key here, never a path; odd names cannot exist in the table.
    if not is_plain_name(filename):
        raise ApiError(404, "not_found", "Unknown filename")
    with runtime().db.session() as session:
        row = session.execute(
            select(Upload.status, Result.document).outerjoin(Result, Result.upload_id == Upload.id)
            .where(Upload.stored_name == filename)
        ).first()
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
    limit = limit_arg()
    query = select(Result.document).order_by(Result.id).limit(limit)
    if request_id:
        query = query.where(Result.request_id == request_id)
    if since:
        query = query.where(Result.created_at >= since)
    if until:
        query = query.where(Result.created_at <= until)
    with runtime().db.session() as session:
        documents = session.scalars(query).all()
    return ok({"count": len(documents), "results": documents})


