"""Admin requeue of errored uploads: one by id, or every errored upload of a batch.

An error caused by the machine (a full disk, a database away) is not the image's fault; after the
fault is fixed an operator sends the images back to the queue. Admins only, within their tenant.
"""
from __future__ import annotations

from flask import Blueprint, Response

from api.batches import REQUEST_ID_PATTERN
from api.errors import ApiError, ok
from api.inputs import runtime, tenant_id
from api.openapi import endpoint
from api.schemas import RequeuedOut
from database import Upload
from service.jobs import requeue_errored
from service.queries import batch_by_request_id

blueprint = Blueprint("retries", __name__)


@blueprint.post("/uploads/<int:upload_id>/retry")
@endpoint("Send an errored upload back to the queue", ok=RequeuedOut, admin=True,
          errors={404: "not_found: no such upload in the tenant",
                  409: "not_retryable: the upload is not errored, or its image is gone"})
def retry_upload(upload_id: int) -> Response:
    rt = runtime()
    with rt.db.session() as session:
        upload = session.get(Upload, upload_id)
    if upload is None or upload.tenant_id != tenant_id():
        raise ApiError(404, "not_found", "No upload with this id")
    requeued = requeue_errored(rt, tenant_id(), upload_id=upload_id)
    if not requeued:
        raise ApiError(409, "not_retryable", "Only an errored upload whose image is still stored can be retried",
                       details={"status": upload.status})
    return ok({"requeued": requeued, "count": len(requeued)})


@blueprint.post("/batches/<request_id>/retry")
@endpoint("Send every errored upload of a batch back to the queue", ok=RequeuedOut, admin=True,
          errors={404: "not_found: no such batch in the tenant"})
def retry_batch(request_id: str) -> Response:
    rt = runtime()
    if not REQUEST_ID_PATTERN.match(request_id) or batch_by_request_id(rt, tenant_id(), request_id) is None:
        raise ApiError(404, "not_found", "No batch with this request id")
    requeued = requeue_errored(rt, tenant_id(), request_id=request_id)
    return ok({"requeued": requeued, "count": len(requeued)})
